// No reflection amplification (DESIGN §8 "Security"), with or without a key.
//
// A UDP source address proves nothing: a 200-byte Syn with a spoofed source could draw a
// 65 KB SynAck (and a WelcomeRequest a whole snapshot) at a victim, the memcached/DNS
// reflection attack. So, as QUIC (RFC 9000 §8.1) and DNS cookies (RFC 7873) do, a source
// must prove it receives our packets before we send it more than it sent us:
//   - every datagram we send to address A carries cookie(A) = SipHash(secret, A, epoch),
//     and echoes the last cookie A's node gave us;
//   - a datagram from A whose echo equals cookie(A) (this epoch or the previous one) is
//     from a verified source: A read one of our packets;
//   - to an unverified source, the replies to one datagram total at most
//     amplification_factor × its size (3, as QUIC), and draw on a per-source token bucket
//     (source addresses hashed into a fixed array, so memory is bounded whatever the
//     flood), so a flood of tiny datagrams cannot make us send much either;
//   - welcome streams (seed 002 bulk join) serve verified sources only.
// Peers exchange cookies on their first handshake, so only its first reply is capped.
// The engine stays sans-IO: the secret and time come from its owner.
#ifndef SCUTTLE_ENGINE_REPLY_GUARD_H_
#define SCUTTLE_ENGINE_REPLY_GUARD_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/types.h"
#include "wire/endpoint.h"

namespace scuttle {

struct ReplyGuardConfig {
  bool enabled = true;
  // Replies to one datagram from an unverified source total at most this × its bytes.
  uint32_t amplification_factor = 3;
  // Per-source budget of reply bytes to unverified sources (token bucket).
  uint64_t unverified_bytes_per_sec = 64 * 1024;
  uint64_t unverified_burst_bytes = 16 * 1024;
  // Token buckets; source addresses are hashed onto them (a power of two).
  size_t buckets = 1024;
  // Cookies rotate with the epoch; the previous epoch's cookie is still accepted.
  TimeUs cookie_epoch_us = 120 * kUsPerSec;
};

class ReplyGuard {
 public:
  // REQUIRES: config outlives the guard; config->buckets is a power of two.
  ReplyGuard(const ReplyGuardConfig* config, const std::array<uint8_t, 16>& secret);

  // Never 0 (0 means "no cookie" on the wire).
  uint64_t CookieFor(const Endpoint& to, TimeUs now_us) const;
  bool Verified(const Endpoint& from, uint64_t echo, TimeUs now_us) const;
  // The reply bytes an unverified datagram of `bytes_in` bytes from `from` may draw:
  // min(factor × bytes_in, the tokens in its source's bucket).
  size_t Allowance(const Endpoint& from, size_t bytes_in, TimeUs now_us);
  // Takes `bytes` from the source's bucket (after a reply was sent).
  void Spend(const Endpoint& from, size_t bytes);

 private:
  uint64_t Hash(const Endpoint& ep, uint64_t epoch) const;
  struct Bucket {
    uint64_t tokens = 0;
    TimeUs last_us = -1;
  };
  Bucket& BucketOf(const Endpoint& ep);
  const ReplyGuardConfig* config_;
  std::array<uint8_t, 16> secret_;
  std::vector<Bucket> buckets_;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_REPLY_GUARD_H_
