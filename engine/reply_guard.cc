#include "engine/reply_guard.h"

#include <sodium.h>

#include <algorithm>
#include <cassert>
#include <cstring>

namespace scuttle {

ReplyGuard::ReplyGuard(const ReplyGuardConfig* config, const std::array<uint8_t, 16>& secret)
    : config_(config), secret_(secret), buckets_(std::max<size_t>(1, config->buckets)) {
  assert((buckets_.size() & (buckets_.size() - 1)) == 0);
}

// SipHash-2-4 (libsodium crypto_shorthash): a keyed PRF, so cookies cannot be predicted
// without the secret.
uint64_t ReplyGuard::Hash(const Endpoint& ep, uint64_t epoch) const {
  uint8_t in[1 + 2 + 16 + 8];
  in[0] = ep.family;
  std::memcpy(in + 1, &ep.port, 2);
  std::memcpy(in + 3, ep.addr.data(), 16);
  std::memcpy(in + 19, &epoch, 8);
  uint64_t h;
  crypto_shorthash(reinterpret_cast<unsigned char*>(&h), in, sizeof(in), secret_.data());
  return h == 0 ? 1 : h;
}

uint64_t ReplyGuard::CookieFor(const Endpoint& to, TimeUs now_us) const {
  const TimeUs epoch_us = std::max<TimeUs>(1, config_->cookie_epoch_us);
  return Hash(to, static_cast<uint64_t>(std::max<TimeUs>(0, now_us) / epoch_us));
}

bool ReplyGuard::Verified(const Endpoint& from, uint64_t echo, TimeUs now_us) const {
  if (echo == 0) return false;
  const TimeUs epoch_us = std::max<TimeUs>(1, config_->cookie_epoch_us);
  const uint64_t epoch = static_cast<uint64_t>(std::max<TimeUs>(0, now_us) / epoch_us);
  return echo == Hash(from, epoch) || (epoch > 0 && echo == Hash(from, epoch - 1));
}

ReplyGuard::Bucket& ReplyGuard::BucketOf(const Endpoint& ep) {
  return buckets_[Hash(ep, UINT64_MAX) & (buckets_.size() - 1)];
}

size_t ReplyGuard::Allowance(const Endpoint& from, size_t bytes_in, TimeUs now_us) {
  Bucket& b = BucketOf(from);
  const uint64_t burst = config_->unverified_burst_bytes;
  if (b.last_us < 0) {
    b.tokens = burst;
  } else if (now_us > b.last_us) {
    const uint64_t add = static_cast<uint64_t>(
        static_cast<__uint128_t>(now_us - b.last_us) * config_->unverified_bytes_per_sec / kUsPerSec);
    b.tokens = std::min<uint64_t>(burst, b.tokens + add);
  }
  b.last_us = std::max(b.last_us, now_us);
  const uint64_t cap = uint64_t{config_->amplification_factor} * bytes_in;
  return static_cast<size_t>(std::min(cap, b.tokens));
}

void ReplyGuard::Spend(const Endpoint& from, size_t bytes) {
  Bucket& b = BucketOf(from);
  b.tokens = b.tokens > bytes ? b.tokens - bytes : 0;
}

}  // namespace scuttle
