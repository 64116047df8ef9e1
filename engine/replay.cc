#include "engine/replay.h"

#include <algorithm>
#include <cassert>

namespace scuttle {

ReplayVerdict ReplayWindow::Check(uint64_t c) const {
  if (!any_ || c > top_) return ReplayVerdict::kFresh;
  if (top_ - c >= kWindowBits) return ReplayVerdict::kStale;
  return Bit(c) ? ReplayVerdict::kReplayed : ReplayVerdict::kFresh;
}

void ReplayWindow::Mark(uint64_t c) {
  assert(Check(c) == ReplayVerdict::kFresh);
  if (!any_ || (c > top_ && c - top_ >= kWindowBits)) {
    std::fill(std::begin(bits_), std::end(bits_), 0);
    any_ = true;
    top_ = c;
  } else if (c > top_) {
    // Slide: counters (top_, c) were not seen; clear their bits (whole words when aligned).
    for (uint64_t x = top_ + 1; x < c;) {
      if (x % 64 == 0 && c - x >= 64) {
        bits_[(x / 64) % kWords] = 0;
        x += 64;
      } else {
        bits_[(x / 64) % kWords] &= ~(uint64_t{1} << (x % 64));
        ++x;
      }
    }
    top_ = c;
  }
  bits_[(c / 64) % kWords] |= uint64_t{1} << (c % 64);
}

ReplayVerdict ReplayTable::Accept(uint64_t sender_id, uint64_t counter) {
  ++clock_;
  auto it = senders_.find(sender_id);
  if (it == senders_.end()) {
    if (senders_.size() >= max_senders_) {
      auto victim = std::min_element(senders_.begin(), senders_.end(), [](const auto& a, const auto& b) {
        return a.second.last_use < b.second.last_use;
      });
      senders_.erase(victim);
      ++evictions_;
    }
    it = senders_.emplace(sender_id, Slot{}).first;
  }
  Slot& s = it->second;
  const ReplayVerdict v = s.window.Check(counter);
  if (v == ReplayVerdict::kFresh) {
    s.window.Mark(counter);
    s.last_use = clock_;
  }
  return v;
}

}  // namespace scuttle
