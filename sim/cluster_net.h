// The simulated network of the cluster simulator (DESIGN §11): a virtual clock, one event
// queue for datagrams, gossip ticks and client writes, and the per-link fault model.
//
// Determinism: events are ordered by (time, sequence number); the sequence number is
// assigned at push time, so two runs that push the same events in the same order pop them
// in the same order, bit for bit. All randomness comes from the caller's Rng.
//
// Bounds (STYLE "every queue has a bound"): the datagram pool holds at most
// `max_inflight` datagrams; a push beyond that is refused and the caller counts the drop.
// Datagram buffers are recycled, so steady state allocates nothing per packet.
#ifndef SCUTTLE_SIM_CLUSTER_NET_H_
#define SCUTTLE_SIM_CLUSTER_NET_H_

#include <cstdint>
#include <queue>
#include <span>
#include <vector>

#include "engine/rng.h"
#include "engine/types.h"

namespace scuttle::sim {

// One direction of one link. Every datagram is judged independently.
struct LinkModel {
  double loss = 0;  // P(datagram dropped)
  double dup = 0;   // P(datagram delivered twice, independent delays)
  TimeUs base_delay_us = 2 * kUsPerMs;
  TimeUs jitter_us = 3 * kUsPerMs;           // added delay: uniform [0, jitter) or exponential
  bool exponential_jitter = false;           // jitter ~ Exp(mean = jitter_us), capped at 20x mean
  double reorder = 0;                        // P(an extra delay, so later datagrams overtake it)
  TimeUs reorder_delay_us = 300 * kUsPerMs;  // the extra delay: uniform [0, this)
};

// Draws one datagram's one-way delay under `m`.
TimeUs DrawDelay(const LinkModel& m, Rng& rng);

enum class SimEventKind : uint8_t { kDatagram, kTick, kWrite, kProbeTimer, kRumorTimer };

struct SimEvent {
  TimeUs at = 0;
  uint64_t seq = 0;
  SimEventKind kind = SimEventKind::kTick;
  uint32_t node = 0;  // receiver (datagram) or the ticking node
  uint32_t from = 0;  // datagram sender
  uint32_t slot = 0;  // datagram pool slot
  uint64_t tag = 0;   // tick: the node incarnation it belongs to
};

class EventQueue {
 public:
  void Push(SimEvent e) {
    e.seq = next_seq_++;
    heap_.push(e);
  }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  const SimEvent& top() const { return heap_.top(); }
  SimEvent Pop() {
    SimEvent e = heap_.top();
    heap_.pop();
    return e;
  }

 private:
  struct Later {
    bool operator()(const SimEvent& a, const SimEvent& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };
  std::priority_queue<SimEvent, std::vector<SimEvent>, Later> heap_;
  uint64_t next_seq_ = 0;
};

// Bounded pool of in-flight datagram buffers, recycled through a free list.
class DatagramPool {
 public:
  explicit DatagramPool(size_t max_inflight) : max_inflight_(max_inflight) {}
  // Copies bytes into a free slot; false when max_inflight datagrams are already held.
  bool Alloc(std::span<const uint8_t> bytes, uint32_t* slot);
  std::vector<uint8_t>& Get(uint32_t slot) { return bufs_[slot]; }
  void Free(uint32_t slot) {
    free_.push_back(slot);
    --inflight_;
  }
  size_t inflight() const { return inflight_; }
  size_t peak_inflight() const { return peak_; }

 private:
  size_t max_inflight_;
  std::vector<std::vector<uint8_t>> bufs_;
  std::vector<uint32_t> free_;
  size_t inflight_ = 0;
  size_t peak_ = 0;
};

}  // namespace scuttle::sim

#endif  // SCUTTLE_SIM_CLUSTER_NET_H_
