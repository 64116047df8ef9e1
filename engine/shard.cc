#include "engine/shard.h"

#include <sodium.h>

#include <cassert>

#include "engine/membership.h"

namespace scuttle {

uint64_t ShardHash(std::string_view key) {
  static_assert(crypto_shorthash_siphash24_BYTES == 8);
  static_assert(crypto_shorthash_siphash24_KEYBYTES == kShardHashKey.size());
  unsigned char out[8];
  crypto_shorthash_siphash24(out, reinterpret_cast<const unsigned char*>(key.data()),
                             key.size(), kShardHashKey.data());
  // Little-endian by definition (SipHash's output order), whatever the host.
  uint64_t h = 0;
  for (int i = 7; i >= 0; --i) h = (h << 8) | out[i];
  return h;
}

uint16_t ShardOf(std::string_view key, uint16_t shard_count) {
  assert(shard_count >= 1 && shard_count <= kMaxShards);
  if (shard_count <= 1) return 0;
  return static_cast<uint16_t>(ShardHash(key) % shard_count);
}

bool IsReplicatedToAllShards(std::string_view key) {
  return key.starts_with(kReservedKeyPrefix);
}

}  // namespace scuttle
