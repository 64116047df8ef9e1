// Membership: phi-accrual failure detection (Hayashibara et al.; Cassandra and chitchat
// anchor the defaults), member states and peer choice per gossip round (DESIGN §5).
//
// Heartbeats are not versioned: each node bumps its own every round and digests carry it.
// When a digest shows a node's heartbeat rising, that is an arrival for the detector.
// phi(t) = (t - last_arrival) / mean_interval * log10(e) (exponential inter-arrivals, as
// Cassandra and chitchat use). The mean starts from initial_interval as a prior worth one
// sample, is a running mean until `window` samples, then an exponential moving average
// with weight 1/window — a few words per node instead of a window of samples. (Starting
// from the first sample alone is wrong: two heartbeats relayed by different peers a few
// ms apart would set a tiny mean and fire false suspicions for minutes.)
//
// States: alive -> suspect (phi >= threshold / 2) -> dead (phi >= threshold); a heartbeat
// brings a node back to alive. A node gossiping `leaving` is `left` at once. A node dead
// or left for dead_node_grace is forgotten.
#ifndef SCUTTLE_ENGINE_MEMBERSHIP_H_
#define SCUTTLE_ENGINE_MEMBERSHIP_H_

#include <cstdint>
#include <vector>

#include "engine/events.h"
#include "engine/rng.h"
#include "engine/types.h"
#include "wire/endpoint.h"

namespace scuttle {

class Cluster;
class NodeState;

struct MembershipConfig {
  double phi_threshold = 8.0;
  int window = 1000;
  TimeUs initial_interval_us = 5 * kUsPerSec;
  TimeUs max_interval_us = 10 * kUsPerSec;
  TimeUs dead_node_grace_us = 24 * 3600 * kUsPerSec;
};

enum class MemberState : uint8_t { kAlive, kSuspect, kDead, kLeft };
const char* MemberStateName(MemberState s);

// Per-node detector record, embedded in NodeState.
struct Liveness {
  MemberState state = MemberState::kAlive;
  TimeUs last_arrival_us = -1;     // -1: not discovered yet
  double mean_interval_us = 0;     // 0: no interval sampled yet (the prior is used)
  uint32_t samples = 0;
  TimeUs state_since_us = 0;
};

// Starts the detector clock for a node first learned at now (from a digest or a delta).
void InitLiveness(Liveness& l, TimeUs now_us);

class Membership {
 public:
  explicit Membership(const MembershipConfig* config) : config_(config) {}

  // A node was created (joined) at now.
  void OnDiscovered(NodeState& node, TimeUs now_us) const;
  // The node's heartbeat rose at now (from a digest or its own packet).
  void OnHeartbeat(NodeState& node, TimeUs now_us, EventSink* events) const;
  // Re-evaluates every node; forgets those dead/left for dead_node_grace (remembering
  // them for 10 × dead_node_grace so stale gossip does not re-learn them). Returns the number
  // forgotten. `max_remembered` bounds that memory.
  size_t Update(Cluster& cluster, TimeUs now_us, EventSink* events,
                size_t max_remembered = 1 << 16) const;
  double Phi(const NodeState& node, TimeUs now_us) const;

  // Chooses this round's peers: up to `fanout` distinct alive peers; with probability
  // dead/(alive+1) one dead peer (to notice it recovering); and a seed when few peers are
  // known or by a small chance (so partitions heal). Deterministic given rng.
  void ChoosePeers(const Cluster& cluster, int fanout, const std::vector<Endpoint>& seeds,
                   Rng& rng, std::vector<Endpoint>* out) const;

 private:
  void SetState(NodeState& node, MemberState s, TimeUs now_us, EventSink* events) const;
  const MembershipConfig* config_;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_MEMBERSHIP_H_
