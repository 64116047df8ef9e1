// Shards (issue #18, docs/shards.md): one Engine per core, each a complete Scuttlebutt
// instance over a slice of every owner's keys.
//
// The partition is part of the wire contract: every node of a cluster must put a key in
// the same shard, whatever its CPU, compiler, process or seed. So the hash is fixed and
// specified, not absl::Hash (seeded per process) nor std::hash (implementation-defined):
//
//   ShardHash(key) = SipHash-2-4(key bytes, key = kShardHashKey), read as a little-endian
//                    uint64 (the SipHash reference output order)
//   ShardOf(key, n) = ShardHash(key) mod n
//
// SipHash-2-4 is libsodium's crypto_shorthash_siphash24, already linked for sealing and
// the reply guard. Keyed with a public constant it is just a well-mixed hash: every output
// bit depends on every input bit, so `mod n` is uniform for any n (FNV-1a's low bits, by
// contrast, depend only on the low bits of each byte). Changing kShardHashKey or the
// reduction is a wire format break (engine/shard_test.cc pins golden values).
//
// Node metadata under the reserved prefix (kReservedKeyPrefix, engine/membership.h) is not
// partitioned: the runtime writes it to every shard, since each shard's peer choice reads
// it (locality) from its own replica of the owner's map.
#ifndef SCUTTLE_ENGINE_SHARD_H_
#define SCUTTLE_ENGINE_SHARD_H_

#include <array>
#include <cstdint>
#include <string_view>

namespace scuttle {

// At most this many shards per node (the runtime's `--shards`); a packet header names the
// shard in 16 bits, the bound keeps per-node port ranges and thread counts sane.
inline constexpr uint16_t kMaxShards = 256;

// The SipHash key of the partition: the ASCII bytes "scuttle/shard/v1".
inline constexpr std::array<uint8_t, 16> kShardHashKey = {
    's', 'c', 'u', 't', 't', 'l', 'e', '/', 's', 'h', 'a', 'r', 'd', '/', 'v', '1'};

// Stable across platforms, processes and seeds (see above).
uint64_t ShardHash(std::string_view key);

// The shard that owns `key` in a node with `shard_count` shards.
// REQUIRES: 1 <= shard_count <= kMaxShards.
uint16_t ShardOf(std::string_view key, uint16_t shard_count);

// True for keys every shard holds (node metadata, see above) rather than ShardOf's.
bool IsReplicatedToAllShards(std::string_view key);

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_SHARD_H_
