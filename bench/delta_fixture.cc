#include "bench/delta_fixture.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace scuttle::bench {
namespace {

// splitmix64 finalizer: a bijection on 64-bit values.
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

void MakeKey(uint64_t i, char out[kKeyBytes]) {
  uint64_t h = Mix(i) >> 4;  // 60 bits: 15 hex digits, still a bijection on i < 2^60
  out[0] = 'k';
  for (size_t d = kKeyBytes - 1; d >= 1; --d) {
    out[d] = kHex[h & 0xf];
    h >>= 4;
  }
}

void MakeValue(uint64_t i, uint64_t round, char out[kValueBytes]) {
  uint64_t h = Mix(i * 0x9e3779b97f4a7c15ull + round);
  for (size_t d = 0; d < kValueBytes; ++d) {
    out[d] = static_cast<char>('a' + (h & 0xf));
    h = (d % 8 == 7) ? Mix(h) : h >> 4;
  }
}

void FillOwner(NodeState& node, size_t n) {
  char key[kKeyBytes];
  char value[kValueBytes];
  for (size_t i = 0; i < n; ++i) {
    MakeKey(i, key);
    MakeValue(i, 0, value);
    node.Set({key, kKeyBytes}, {value, kValueBytes});
  }
}

void FillReplica(NodeState& node, size_t n) {
  char key[kKeyBytes];
  char value[kValueBytes];
  for (size_t i = 0; i < n; ++i) {
    MakeKey(i, key);
    MakeValue(i, 0, value);
    node.ApplyEntry(node.max_version() + 1, {key, kKeyBytes}, {value, kValueBytes},
                    /*tombstone=*/false, /*now_us=*/0);
  }
}

size_t HeapBytesInUse() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

size_t RssBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long pages_total = 0;
  unsigned long pages_rss = 0;
  const int got = std::fscanf(f, "%lu %lu", &pages_total, &pages_rss);
  std::fclose(f);
  return got == 2 ? pages_rss * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

PeerDigest::PeerDigest(const std::vector<Row>& rows) : slot_(kSlotBytes) {
  wire::EncodeOptions opts;
  opts.cluster_id = kClusterId;
  opts.sender.name_len = 4;  // "peer", at blob offset 0
  opts.sender.generation = 1;
  wire::PacketEncoder enc(slot_, opts);
  size_t blob_bytes = 4;
  for (const Row& r : rows) blob_bytes += r.node->name().size();
  BlobWriter blob{enc.AllocBlob(blob_bytes)};
  std::span<wire::DigestEntry> entries = enc.AllocDigest(rows.size(), /*partial=*/false);
  if (blob.blob.size() != blob_bytes || entries.size() != rows.size()) std::abort();
  blob.Put("peer");
  for (size_t i = 0; i < rows.size(); ++i) {
    const NodeState& node = *rows[i].node;
    entries[i].node = MakeNodeRef(node, blob.Put(node.name()));
    entries[i].heartbeat = node.heartbeat;
    entries[i].last_gc_version = node.last_gc_version();
    entries[i].max_version = rows[i].max_version;
  }
  const std::span<const uint8_t> datagram = enc.Finish(wire::MessageType::kSyn);
  wire::DropReason reason;
  if (datagram.empty() || !wire::Decode(datagram, wire::DecodeLimits{}, &packet_, &reason)) {
    std::fprintf(stderr, "PeerDigest: could not build the digest packet\n");
    std::abort();
  }
}

std::span<const uint8_t> DeltaEncoder::Encode(const Cluster& cluster,
                                              const wire::DecodedPacket& peer) {
  // Mirrors Engine::Send(to, kAck, /*with_digest=*/false, &peer).
  const NodeState& self = cluster.self();
  wire::EncodeOptions opts;
  opts.cluster_id = kClusterId;
  opts.sender = MakeNodeRef(self, 0);
  wire::PacketEncoder enc(slot_, opts);
  size_t budget = enc.Remaining() > 64 ? enc.Remaining() - 64 - self.name().size() : 0;
  if (!reuse_plans_ && budget > 0) {
    flip_ = !flip_;
    budget -= flip_ ? 1 : 0;
  }
  builder_.SetPeerDigest(peer);
  builder_.Plan(cluster, budget);
  const size_t blob_bytes = self.name().size() + builder_.blob_bytes();
  BlobWriter blob{enc.AllocBlob(blob_bytes)};
  bool ok = blob.blob.size() == blob_bytes;
  if (ok) blob.Put(self.name());
  if (ok) ok = builder_.Write(enc, blob);
  std::span<const uint8_t> packet = ok ? enc.Finish(wire::MessageType::kAck)
                                       : std::span<const uint8_t>();
  builder_.ClearPeer();
  return packet;
}

}  // namespace scuttle::bench
