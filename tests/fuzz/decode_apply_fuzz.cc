// libFuzzer target for the receive path (DESIGN §8, §11): every datagram a peer can send.
//
// Per input, deterministically:
//   1. wire::Decode into an 8-aligned copy (as a transport's receive buffer is aligned).
//   2. When it decodes: apply its delta directly with a DeltaApplier to a pre-populated
//      replica (fuzz_fixture.h), checking seed 000's monotonicity ((gc, max) never goes
//      back for a node of unchanged generation) and the NodeState index invariants; and when
//      it carries a digest, build + encode the delta that digest asks for, which must decode.
//   3. Feed it to a fresh Engine (warmed up with a valid Ack) through OnPacket, then run
//      rounds later in time (GC, membership, Syns). Every datagram the engine emits must
//      decode, and the encoder's planning-bug guard must never fire.
//   4. The sealed path (wire/seal.h, DESIGN §8) on an engine with a keyring: the raw input
//      (garbage, truncated, wrong key), the input sealed with the engine's key (it must
//      open; the opened datagram then meets the decoder), the same sealed datagram again
//      (must be counted as replayed), and a copy with one bit flipped (must never open).
//   5. The compressed path (wire/compress.h) on an engine with zstd on: the raw input, the
//      input compressed (must inflate), and that compressed datagram cut short (must be a
//      counted bad_compression drop).
// A broken invariant aborts, so libFuzzer (and fuzz_corpus_replay) report it as a crash.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cluster.h"
#include "engine/delta_applier.h"
#include "engine/delta_builder.h"
#include "engine/engine.h"
#include "tests/fuzz/fuzz_fixture.h"
#include "wire/packet.h"

namespace scuttle::fuzz {
namespace {

struct NodeMark {
  Generation generation;
  Version gc;
  Version max;
};

std::map<std::string, NodeMark, std::less<>> Marks(const Cluster& cluster) {
  std::map<std::string, NodeMark, std::less<>> m;
  for (const NodeState* n : cluster.nodes()) {
    m[std::string(n->name())] = {n->generation(), n->last_gc_version(), n->max_version()};
  }
  return m;
}

void CheckCluster(const Cluster& cluster, const std::map<std::string, NodeMark, std::less<>>& before) {
  for (const NodeState* n : cluster.nodes()) {
    CheckNodeState(*n);
    auto it = before.find(n->name());
    if (it == before.end()) continue;
    const NodeMark& b = it->second;
    if (n->generation() < b.generation) Fail("generation went back", std::string(n->name()));
    if (n->generation() != b.generation) continue;
    const bool rose = n->last_gc_version() > b.gc ||
                      (n->last_gc_version() == b.gc && n->max_version() >= b.max);
    if (!rose) {
      Fail("(gc, max) went back (seed 000)",
           absl::StrCat(std::string(n->name()), ": (", b.gc, ",", b.max, ") -> (", n->last_gc_version(), ",",
                        n->max_version(), ")"));
    }
  }
}

// The delta a peer with this digest is missing, encoded as Engine::Send would, must decode.
void BuildAnswer(const Cluster& cluster, const wire::DecodedPacket& peer) {
  const std::span<uint8_t> bytes = ScratchSlot();
  const NodeState& self = cluster.self();
  wire::EncodeOptions opts;
  opts.cluster_id = kClusterId;
  opts.sender = MakeNodeRef(self, 0);
  wire::PacketEncoder enc(bytes, opts);
  const size_t budget = enc.Remaining() - 64 - self.name().size();
  DeltaBuilder builder;
  builder.SetPeerDigest(peer);
  builder.Plan(cluster, budget);
  const size_t blob_bytes = self.name().size() + builder.blob_bytes();
  BlobWriter blob{enc.AllocBlob(blob_bytes)};
  if (blob.blob.size() != blob_bytes) Fail("planned blob does not fit", "");
  blob.Put(self.name());
  if (!builder.Write(enc, blob)) Fail("planned delta does not fit", "");
  const std::span<const uint8_t> packet = enc.Finish(wire::MessageType::kAck);
  if (packet.empty()) Fail("encoder refused a planned delta", "");
  std::vector<uint64_t> copy((packet.size() + 7) / 8);
  std::memcpy(copy.data(), packet.data(), packet.size());
  wire::DecodedPacket decoded;
  wire::DropReason reason;
  if (!wire::Decode({reinterpret_cast<const uint8_t*>(copy.data()), packet.size()},
                    wire::DecodeLimits{}, &decoded, &reason)) {
    Fail("built delta does not decode", wire::DropReasonName(reason));
  }
  // And a peer that missed everything can apply it without breaking its indexes.
  Cluster peer_state("peer", 1);
  DeltaApplier applier(&peer_state, Limits{}, nullptr);
  applier.Apply(decoded, kStartUs);
  for (const NodeState* n : peer_state.nodes()) CheckNodeState(*n);
}

void DirectApply(const wire::DecodedPacket& pkt) {
  Cluster cluster(std::string(kSelfName), 7);
  PopulateReplica(&cluster);
  if (pkt.type == wire::MessageType::kSyn || pkt.type == wire::MessageType::kSynAck) {
    BuildAnswer(cluster, pkt);
  }
  if (pkt.type != wire::MessageType::kSynAck && pkt.type != wire::MessageType::kAck) return;
  const auto before = Marks(cluster);
  Limits limits;
  limits.max_nodes = 8;           // small bounds, so the limit paths are reachable
  limits.max_keys_per_node = 64;
  DeltaApplier applier(&cluster, limits, nullptr);
  applier.Apply(pkt, kStartUs + kUsPerSec);
  CheckCluster(cluster, before);
  // Applying the same packet again must change nothing (duplicates are stale, seed 000).
  const auto after = Marks(cluster);
  applier.Apply(pkt, kStartUs + 2 * kUsPerSec);
  CheckCluster(cluster, after);
}

void RunEngine(std::span<const uint8_t> datagram) {
  static const std::vector<uint8_t> warmup = WarmupPacket();
  CheckingSink sink;
  Engine engine(SelfConfig(), &sink, nullptr);
  if (!engine.Set("local/a", "1", kStartUs).ok() || !engine.Set("local/b", "2", kStartUs).ok() ||
      !engine.Delete("local/a", kStartUs).ok()) {
    Fail("local writes failed", "");
  }
  engine.OnPacket(kStartUs, PeerEndpoint(1), warmup);
  if (engine.cluster().size() != 4) Fail("warm-up packet not applied", "");
  const auto before = Marks(engine.cluster());
  engine.OnPacket(kStartUs + 1, PeerEndpoint(2), datagram);
  CheckCluster(engine.cluster(), before);
  // Later rounds: heartbeat/GC/TTL/membership and Syns to every peer the packet taught us.
  engine.OnTick(kStartUs + kUsPerSec);
  engine.OnTick(kStartUs + 2 * 3600 * kUsPerSec);  // past tombstone_grace: GC runs
  engine.OnTick(kStartUs + 50 * 3600 * kUsPerSec);  // past dead_node_grace: forgetting
  CheckCluster(engine.cluster(), {});
  if (engine.stats().engine_drops[static_cast<size_t>(EngineDrop::kEncodeFailed)] != 0) {
    Fail("engine encode failed (planning bug guard)", "");
  }
}

void RunSealed(std::span<const uint8_t> datagram) {
  wire::KeyBytes key;
  key.fill(0x5c);
  CheckingSink sink;
  EngineConfig cfg = SelfConfig();
  if (!cfg.security.keyring.Install(key).ok()) Fail("keyring install failed", "");
  Engine engine(cfg, &sink, nullptr);
  sink.keyring = &engine.config().security.keyring;
  const SecurityStats& sec = engine.stats().security;
  engine.OnPacket(kStartUs, PeerEndpoint(2), datagram);
  if (datagram.size() < wire::kHeaderBytes) return;
  // Seal the input as a peer holding the key would (header as associated data).
  std::vector<uint64_t> buf((datagram.size() + wire::kSealTrailerBytes + 7) / 8);
  const std::span<uint8_t> bytes(reinterpret_cast<uint8_t*>(buf.data()), buf.size() * 8);
  std::memcpy(bytes.data(), datagram.data(), datagram.size());
  const std::span<const uint8_t> sealed = wire::Seal(
      bytes, datagram.size(),
      wire::SealParams{&engine.config().security.keyring.primary(), engine.cipher(), 99, 1});
  // Its magic and length field decide whether it is well framed (the sealer trusts its
  // caller; the receiver reads a header without the magic as clear, and refuses it).
  wire::PacketHeader h;
  std::memcpy(&h, datagram.data(), wire::kHeaderBytes);
  const bool framed =
      h.magic == wire::kMagic && h.payload_bytes == datagram.size() - wire::kHeaderBytes;
  const uint64_t opened0 = sec.opened_in;
  engine.OnPacket(kStartUs + 1, PeerEndpoint(2), sealed);
  if (framed && sec.opened_in != opened0 + 1) Fail("sealed input did not open", "");
  if (!framed && sec.opened_in != opened0) Fail("misframed sealed input opened", "");
  const uint64_t replayed0 = sec.drops[static_cast<size_t>(SecurityDrop::kReplayed)];
  engine.OnPacket(kStartUs + 2, PeerEndpoint(2), sealed);
  if (framed && sec.drops[static_cast<size_t>(SecurityDrop::kReplayed)] != replayed0 + 1) {
    Fail("replayed sealed datagram not counted", "");
  }
  std::vector<uint64_t> flipped_buf(buf);
  uint8_t* f = reinterpret_cast<uint8_t*>(flipped_buf.data());
  size_t pos = datagram[0] % sealed.size();
  if (pos >= 2 && pos < 4) pos = 4;  // a flipped version byte: still a sealed datagram
  f[pos] ^= static_cast<uint8_t>(1u << (datagram.back() % 8));
  const uint64_t opened1 = sec.opened_in;
  engine.OnPacket(kStartUs + 3, PeerEndpoint(2), {f, sealed.size()});
  if (sec.opened_in != opened1) Fail("a sealed datagram with a flipped bit opened", "");
  if (engine.stats().engine_drops[static_cast<size_t>(EngineDrop::kEncodeFailed)] != 0) {
    Fail("engine encode failed on the sealed path", "");
  }
}

// The compressed path (wire/compress.h): on an engine with compression on, the raw input
// (which may carry kFlagCompressed over garbage), the input compressed as a peer would
// (it must inflate and then meet the decoder exactly as the plain input did), and that
// compressed datagram cut short (a counted bad_compression drop, never a crash).
void RunCompressed(std::span<const uint8_t> datagram) {
  CheckingSink sink;
  EngineConfig cfg = SelfConfig();
  cfg.compression.mode = wire::Compression::kZstd;
  Engine engine(cfg, &sink, nullptr);
  const EngineStats& st = engine.stats();
  engine.OnPacket(kStartUs, PeerEndpoint(2), datagram);
  wire::PacketHeader h;
  if (!wire::PeekHeader(datagram, &h) || h.magic != wire::kMagic || h.flags != 0 ||
      h.payload_bytes != datagram.size() - wire::kHeaderBytes) {
    return;
  }
  static wire::Compressor deflater(1, wire::kMaxUdpPayloadBytes);
  std::vector<uint64_t> buf((datagram.size() + 7) / 8);
  const std::span<uint8_t> bytes(reinterpret_cast<uint8_t*>(buf.data()), datagram.size());
  std::memcpy(bytes.data(), datagram.data(), datagram.size());
  const size_t n = deflater.CompressInPlace(bytes, bytes.size());
  if (n == datagram.size()) return;  // sent plain: nothing new to test
  const uint64_t in0 = st.compression.compressed_in;
  engine.OnPacket(kStartUs + 1, PeerEndpoint(2), bytes.first(n));
  if (st.compression.compressed_in != in0 + 1) Fail("compressed input did not inflate", "");
  const size_t bad = static_cast<size_t>(wire::DropReason::kBadCompression);
  const uint64_t bad0 = st.decode_drops[bad];
  wire::PacketHeader ch;
  std::memcpy(&ch, bytes.data(), wire::kHeaderBytes);
  ch.payload_bytes -= 1;
  std::memcpy(bytes.data(), &ch, wire::kHeaderBytes);
  engine.OnPacket(kStartUs + 2, PeerEndpoint(2), bytes.first(n - 1));
  if (st.decode_drops[bad] != bad0 + 1) Fail("truncated compressed datagram not counted", "");
}

}  // namespace
}  // namespace scuttle::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scuttle;
  // Transports hand the engine 8-aligned receive buffers; so does this target.
  std::vector<uint64_t> aligned((size + 7) / 8);
  if (size > 0) std::memcpy(aligned.data(), data, size);
  const std::span<const uint8_t> datagram(reinterpret_cast<const uint8_t*>(aligned.data()), size);
  wire::DecodedPacket pkt;
  wire::DropReason reason;
  if (wire::Decode(datagram, wire::DecodeLimits{}, &pkt, &reason)) fuzz::DirectApply(pkt);
  fuzz::RunEngine(datagram);
  fuzz::RunSealed(datagram);
  fuzz::RunCompressed(datagram);
  return 0;
}
