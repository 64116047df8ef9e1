// Replay protection for sealed datagrams (DESIGN §8 "Security").
//
// Every sealed datagram carries (sender_id, counter): sender_id is random per engine
// incarnation, counter rises by one per datagram sent to anyone. A receiver keeps, per
// sender_id, the highest counter seen and a bitmap of the kWindowBits counters below it
// (the sliding window of IPsec, RFC 4303 §3.4.3 / RFC 6479, and WireGuard): a counter
// inside the window that was seen is a replay; one below the window is stale. Counters
// arrive with gaps (a sender talks to many peers) and reordered (loss, retransmitted
// welcome chunks), so the window is 1,024 wide, about ten gossip rounds of one sender's
// traffic at fanout 3 with every reply.
//
// Only datagrams whose tag verified reach the table, so a sender without the key cannot
// create entries or move a window. The table is bounded (max_senders): a new sender evicts
// the one heard from least recently, which in practice is a past incarnation of a
// restarted node (its sender_id is never used again). Evictions are counted.
#ifndef SCUTTLE_ENGINE_REPLAY_H_
#define SCUTTLE_ENGINE_REPLAY_H_

#include <cstddef>
#include <cstdint>

#include "absl/container/flat_hash_map.h"

namespace scuttle {

enum class ReplayVerdict : uint8_t { kFresh, kReplayed, kStale };

class ReplayWindow {
 public:
  static constexpr uint64_t kWindowBits = 1024;

  ReplayVerdict Check(uint64_t counter) const;
  // REQUIRES: Check(counter) == kFresh.
  void Mark(uint64_t counter);
  uint64_t top() const { return top_; }

 private:
  bool Bit(uint64_t c) const { return (bits_[(c / 64) % kWords] >> (c % 64)) & 1; }
  static constexpr size_t kWords = kWindowBits / 64;
  bool any_ = false;
  uint64_t top_ = 0;
  uint64_t bits_[kWords] = {};
};

class ReplayTable {
 public:
  // REQUIRES: max_senders >= 1.
  explicit ReplayTable(size_t max_senders) : max_senders_(max_senders) {}

  // Checks (sender_id, counter) and, when fresh, records it.
  ReplayVerdict Accept(uint64_t sender_id, uint64_t counter);
  size_t size() const { return senders_.size(); }
  uint64_t evictions() const { return evictions_; }

 private:
  struct Slot {
    ReplayWindow window;
    uint64_t last_use = 0;
  };
  size_t max_senders_;
  uint64_t clock_ = 0;
  uint64_t evictions_ = 0;
  absl::flat_hash_map<uint64_t, Slot> senders_;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_REPLAY_H_
