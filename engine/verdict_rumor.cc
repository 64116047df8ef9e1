// Verdict rumors (engine/verdict_rumor.h; seed 001, Demers et al. §1.4).
#include "engine/verdict_rumor.h"

#include <algorithm>
#include <cassert>

namespace scuttle {

HotVerdict& VerdictRumors::Add(std::string_view name, Generation generation, uint8_t kind,
                               uint64_t heartbeat) {
  std::erase_if(hot_, [&](const HotVerdict& v) { return v.name == name; });
  if (hot_.size() >= capacity_) {
    hot_.erase(hot_.begin());
    ++stats_.dropped_full;
  }
  HotVerdict v;
  v.name = std::string(name);
  v.generation = generation;
  v.kind = kind;
  v.heartbeat = heartbeat;
  v.seq = next_seq_++;
  if (next_seq_ == 0) next_seq_ = 1;  // 0 means "no feedback wanted" on the wire
  ++stats_.hot;
  hot_.push_back(std::move(v));
  assert(hot_.size() <= capacity_);
  return hot_.back();
}

bool VerdictRumors::OnFeedback(uint32_t seq, std::string_view name, bool news) {
  for (HotVerdict& v : hot_) {
    if (v.seq != seq || v.name != name) continue;
    if (news) {
      v.cycle_result = 2;
    } else if (v.cycle_result == 0) {
      v.cycle_result = 1;
    }
    return true;
  }
  ++stats_.stale_feedback;
  return false;
}

// Demers §1.4, feedback + counter, one judgement per cycle: "knew" from every contact that
// answered counts one unnecessary cycle; any "news" resets the count (consecutive reading);
// silence changes nothing.
void VerdictRumors::EndCycle(uint32_t k) {
  assert(k >= 1);
  const uint32_t max_cycles = MaxCycles(k);
  std::erase_if(hot_, [&](HotVerdict& v) {
    if (v.cycle_result == 1) ++v.counter;
    if (v.cycle_result == 2) v.counter = 0;
    v.cycle_result = 0;
    if (v.counter >= k) {
      ++stats_.lost_interest;
      return true;
    }
    if (v.cycles >= max_cycles) {
      ++stats_.capped;
      return true;
    }
    return false;
  });
}

}  // namespace scuttle
