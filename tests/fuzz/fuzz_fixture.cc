#include "tests/fuzz/fuzz_fixture.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "engine/delta_builder.h"
#include "engine/node_state.h"

namespace scuttle::fuzz {
namespace {

// "n<i>" gossips from 127.0.0.1:7400+i; other names have no address.
Endpoint EndpointFor(std::string_view name) {
  if (name.size() >= 2 && name[0] == 'n' && name[1] >= '0' && name[1] <= '9') {
    return PeerEndpoint(name[1] - '0');
  }
  return Endpoint{};
}

wire::NodeRef Ref(std::string_view name, Generation gen, uint8_t flags, uint32_t name_off) {
  wire::NodeRef r{};
  r.generation = gen;
  r.name_off = name_off;
  r.name_len = static_cast<uint8_t>(name.size());
  wire::SetNodeRefEndpoint(EndpointFor(name), &r);
  r.flags |= flags;
  return r;
}

// One remote node's writes, in version order, as its owner made them.
struct NodeHistory {
  std::string name;
  Generation generation;
  std::vector<EntrySpec> writes;
  Version gc_through;  // tombstones at or below this version are GC'd by the owner
  Version reset_gc;    // > 0: the replica only saw a reset to this gc (mid-reset, max 0)
};

std::vector<NodeHistory> History() {
  std::vector<NodeHistory> h;
  NodeHistory n1{"n1", 3, {}, 55, 0};
  Version v = 0;
  for (int i = 0; i < 40; ++i) n1.writes.push_back({++v, Cat("k", i), Cat("v0-", i)});
  for (int i = 0; i < 10; ++i) n1.writes.push_back({++v, Cat("k", i), Cat("v1-", i)});
  for (int i = 10; i < 20; ++i) n1.writes.push_back({++v, Cat("k", i), "", true});
  h.push_back(std::move(n1));
  h.push_back(NodeHistory{"n2", 1, {}, 0, 30});
  NodeHistory n3{"n3", 9, {}, 0, 0};
  for (int i = 1; i <= 5; ++i) n3.writes.push_back({Version(i), Cat("key/", i), std::string(i * 7, 'x')});
  h.push_back(std::move(n3));
  return h;
}

}  // namespace

Endpoint PeerEndpoint(int i) { return Endpoint::V4(0x7f000001, static_cast<uint16_t>(7400 + i)); }

EngineConfig SelfConfig() {
  EngineConfig c;
  c.cluster_id = std::string(kClusterId);
  c.node_name = std::string(kSelfName);
  c.generation = 7;
  c.advertise = PeerEndpoint(0);
  c.seeds = {PeerEndpoint(1), PeerEndpoint(5)};
  c.rng_seed = 7;
  return c;
}

EngineConfig PeerConfig(int i) {
  EngineConfig c;
  c.cluster_id = std::string(kClusterId);
  c.node_name = Cat("n", i);
  c.generation = 1;
  c.advertise = PeerEndpoint(i);
  c.seeds = {PeerEndpoint(0)};
  c.rng_seed = 100 + static_cast<uint64_t>(i);
  return c;
}

void PopulateReplica(Cluster* cluster) {
  // Tombstones up to gc_through are old enough for GC at kStartUs; later ones are fresh.
  constexpr TimeUs kGraceUs = 3600 * kUsPerSec;
  for (const NodeHistory& h : History()) {
    bool replaced = false;
    NodeState* node = cluster->Upsert(h.name, h.generation, &replaced);
    node->endpoint = EndpointFor(h.name);
    if (h.reset_gc > 0) node->ResetTo(h.reset_gc);
    for (const EntrySpec& w : h.writes) {
      const TimeUs t = w.version <= h.gc_through ? kStartUs - 2 * kGraceUs : kStartUs;
      node->ApplyEntry(w.version, w.key, w.value, w.tombstone, t);
    }
    node->GcTombstones(kStartUs, kGraceUs, h.gc_through);
    CheckNodeState(*node);
  }
}

std::vector<uint8_t> WarmupPacket() {
  PacketSpec spec;
  spec.type = wire::MessageType::kAck;
  spec.sender = "n1";
  spec.sender_generation = 3;
  for (const NodeHistory& h : History()) {
    // What the owner sends a peer that never saw it (seed 000 reset when gc > 0): the last
    // write of each key, tombstones only above gc, ascending by version.
    std::map<std::string, EntrySpec> last;
    Version max = 0;
    for (const EntrySpec& w : h.writes) {
      last[w.key] = w;
      max = std::max(max, w.version);
    }
    PartSpec p;
    p.node = h.name;
    p.generation = h.generation;
    p.gc = h.reset_gc > 0 ? h.reset_gc : h.gc_through;
    p.max = max;
    for (const auto& [key, w] : last) {
      if (!(w.tombstone && w.version <= h.gc_through)) p.entries.push_back(w);
    }
    std::sort(p.entries.begin(), p.entries.end(),
              [](const EntrySpec& a, const EntrySpec& b) { return a.version < b.version; });
    spec.parts.push_back(std::move(p));
  }
  return Encode(spec);
}

std::span<uint8_t> ScratchSlot() {
  static std::vector<uint64_t> slot((wire::kMaxUdpPayloadBytes + 1024) / 8);
  return {reinterpret_cast<uint8_t*>(slot.data()), slot.size() * 8};
}

std::vector<uint8_t> Encode(const PacketSpec& spec) {
  const std::span<uint8_t> bytes = ScratchSlot();
  wire::EncodeOptions opts;
  opts.cluster_id = spec.cluster_id;
  opts.shard = spec.shard;
  opts.shard_count = spec.shard_count;
  opts.sender = Ref(spec.sender, spec.sender_generation, 0, 0);
  wire::PacketEncoder enc(bytes, opts);
  size_t blob_bytes = spec.sender.size();
  for (const DigestSpec& d : spec.digest) blob_bytes += d.node.size();
  for (const PartSpec& p : spec.parts) {
    blob_bytes += p.node.size();
    for (const EntrySpec& e : p.entries) blob_bytes += e.key.size() + e.value.size();
  }
  BlobWriter blob{enc.AllocBlob(blob_bytes)};
  if (blob.blob.size() != blob_bytes) Fail("Encode", "blob does not fit");
  blob.Put(spec.sender);
  const bool has_digest =
      spec.type == wire::MessageType::kSyn || spec.type == wire::MessageType::kSynAck;
  if (has_digest) {
    std::span<wire::DigestEntry> out = enc.AllocDigest(spec.digest.size(), spec.partial);
    if (out.size() != spec.digest.size()) Fail("Encode", "digest does not fit");
    for (size_t i = 0; i < spec.digest.size(); ++i) {
      const DigestSpec& d = spec.digest[i];
      out[i].node = Ref(d.node, d.generation, d.flags, blob.Put(d.node));
      out[i].heartbeat = d.heartbeat;
      out[i].last_gc_version = d.gc;
      out[i].max_version = d.max;
    }
  }
  for (const PartSpec& p : spec.parts) {
    const wire::NodeRef ref = Ref(p.node, p.generation, p.flags, blob.Put(p.node));
    bool ok = false;
    std::span<wire::Entry> out = enc.AddPart(ref, p.from, p.gc, p.max,
                                             p.source_max == 0 ? p.max : p.source_max,
                                             p.entries.size(), &ok);
    if (!ok) Fail("Encode", "part does not fit");
    for (size_t i = 0; i < p.entries.size(); ++i) {
      const EntrySpec& e = p.entries[i];
      out[i] = wire::Entry{};
      out[i].version = e.version;
      out[i].key_len = static_cast<uint16_t>(e.key.size());
      out[i].value_len = static_cast<uint32_t>(e.value.size());
      out[i].status = static_cast<uint8_t>(e.tombstone ? wire::EntryStatus::kTombstone
                                                       : wire::EntryStatus::kSet);
      out[i].off = blob.Put(e.key, e.value);
    }
  }
  const std::span<const uint8_t> packet = enc.Finish(spec.type);
  if (packet.empty()) Fail("Encode", "Finish failed");
  return std::vector<uint8_t>(packet.begin(), packet.end());
}

std::span<uint8_t> CheckingSink::Acquire(size_t min_bytes) {
  // One buffer for the process: a fresh 66 KB allocation per send costs an mmap/munmap
  // pair under ASan. The span is exactly min_bytes, so overruns still land outside it.
  static std::vector<uint64_t> buf;
  if (buf.size() * 8 < min_bytes) buf.resize((min_bytes + 7) / 8);
  return {reinterpret_cast<uint8_t*>(buf.data()), min_bytes};
}

void CheckingSink::Commit(const Endpoint& /*to*/, std::span<const uint8_t> packet) {
  ++committed;
  // Decode from an 8-aligned copy, as a receiver's buffer would be.
  std::vector<uint64_t> copy((packet.size() + 7) / 8);
  std::memcpy(copy.data(), packet.data(), packet.size());
  std::span<const uint8_t> datagram(reinterpret_cast<const uint8_t*>(copy.data()),
                                    packet.size());
  std::vector<uint64_t> opened_buf;
  if (keyring != nullptr) {
    opened_buf.resize(copy.size());
    wire::Opened opened;
    wire::OpenError err;
    if (!wire::Open(datagram, *keyring,
                    {reinterpret_cast<uint8_t*>(opened_buf.data()), opened_buf.size() * 8},
                    &opened, &err)) {
      Fail("the engine emitted a sealed datagram that does not open", "");
    }
    datagram = opened.datagram;
  }
  std::vector<uint64_t> inflated_buf;
  wire::PacketHeader h;
  if (wire::PeekHeader(datagram, &h) && (h.flags & wire::kFlagCompressed) != 0) {
    // A compressing engine's datagram (wire/compress.h): a peer inflates it first.
    static wire::Compressor inflater(1, wire::kMaxUdpPayloadBytes);
    inflated_buf.resize((wire::kMaxUdpPayloadBytes + 7) / 8 + 8);
    std::span<const uint8_t> out;
    wire::DecompressError err;
    if (!inflater.Decompress(
            datagram,
            {reinterpret_cast<uint8_t*>(inflated_buf.data()), inflated_buf.size() * 8}, &out,
            &err)) {
      Fail("the engine emitted a compressed datagram that does not decompress", "");
    }
    datagram = out;
  }
  wire::DecodedPacket decoded;
  wire::DropReason reason;
  if (!wire::Decode(datagram, wire::DecodeLimits{}, &decoded, &reason)) {
    Fail("the engine emitted a datagram its peers drop", wire::DropReasonName(reason));
  }
  if (keep) kept.emplace_back(packet.begin(), packet.end());
}

void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz invariant broken: %s: %s\n", what, detail.c_str());
  std::abort();
}

void CheckNodeState(const NodeState& node) {
  size_t count = 0;
  size_t tombstones = 0;
  Version prev = 0;
  bool ok = true;
  std::string why;
  node.ForEachAbove(0, [&](const NodeState::Slot& s) {
    ++count;
    if (s.version <= prev) why = "version index not ascending";
    if (s.version > node.max_version()) why = "slot above max_version";
    if (s.status == KeyStatus::kTombstone) ++tombstones;
    const uint32_t idx = node.Find(node.KeyOf(s));
    if (idx == NodeState::kNoSlot || &node.slot(idx) != &s) why = "key does not find its slot";
    prev = s.version;
    ok = why.empty();
    return ok;
  });
  if (!ok) Fail(why.c_str(), std::string(node.name()));
  if (count != node.num_keys()) {
    Fail("version index size != key count",
         absl::StrCat(std::string(node.name()), ": ", count, " vs ", node.num_keys()));
  }
  if (tombstones != node.num_tombstones()) Fail("tombstone count", std::string(node.name()));
}

}  // namespace scuttle::fuzz
