#include "sim/cluster_net.h"

#include <algorithm>
#include <cmath>

namespace scuttle::sim {

TimeUs DrawDelay(const LinkModel& m, Rng& rng) {
  TimeUs d = m.base_delay_us;
  if (m.jitter_us > 0) {
    if (m.exponential_jitter) {
      // 1 - Unit() is in (0, 1], so the log is finite.
      const double x = -std::log(1.0 - rng.Unit()) * static_cast<double>(m.jitter_us);
      d += static_cast<TimeUs>(std::min(x, 20.0 * static_cast<double>(m.jitter_us)));
    } else {
      d += static_cast<TimeUs>(rng.Below(static_cast<uint64_t>(m.jitter_us)));
    }
  }
  if (m.reorder > 0 && m.reorder_delay_us > 0 && rng.Chance(m.reorder)) {
    d += static_cast<TimeUs>(rng.Below(static_cast<uint64_t>(m.reorder_delay_us)));
  }
  return std::max<TimeUs>(d, 1);
}

bool DatagramPool::Alloc(std::span<const uint8_t> bytes, uint32_t* slot) {
  if (inflight_ >= max_inflight_) return false;
  if (free_.empty()) {
    *slot = static_cast<uint32_t>(bufs_.size());
    bufs_.emplace_back();
  } else {
    *slot = free_.back();
    free_.pop_back();
  }
  bufs_[*slot].assign(bytes.begin(), bytes.end());
  ++inflight_;
  peak_ = std::max(peak_, inflight_);
  return true;
}

}  // namespace scuttle::sim
