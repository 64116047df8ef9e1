// Membership: phi-accrual failure detection (Hayashibara et al.; Cassandra and chitchat
// anchor the defaults), member states and peer choice per gossip round (DESIGN §5).
//
// Heartbeats are not versioned: each node bumps its own every round and digests carry it.
// When a digest shows a node's heartbeat rising, that is an arrival for the detector.
// phi(t) = (t - last_arrival) / mean_interval * log10(e) (exponential inter-arrivals, as
// Cassandra and chitchat use).
//
// Young-node prior (#16 item 2). The mean is a Bayesian-style blend of a prior and the
// samples: with n samples x_1..x_n (n < window),
//     mean = (w * prior + x_1 + ... + x_n) / (w + n),
// where prior = initial_interval (0: the gossip interval, filled in by the Engine — a
// heartbeat rises once a round, so that is the rate a healthy peer shows) and w =
// prior_weight samples. A node we met a second ago is thus judged by the interval it is
// expected to keep, not by an arbitrary 5 s guess (which made a node killed 1 s after
// joining take ~240 intervals to be declared dead), and one or two unlucky gaps cannot
// swing the estimate: each sample moves it by 1/(w + n). From `window` samples on it is an
// exponential moving average with weight 1/window — a few words per node instead of a
// window of samples. (Starting from the first sample alone is wrong: two heartbeats relayed
// by different peers a few ms apart would set a tiny mean and fire false suspicions.)
//
// States without confirmation (confirm = false, the old detector): alive -> suspect (phi
// >= threshold / 2) -> dead (phi >= threshold). With confirmation (DESIGN §5, SWIM §4,
// Lifeguard; the default): phi >= suspect_phi only makes a node suspect; the Engine then
// probes it directly and through probe_relays members (engine/probe.cc) and only a probe
// round with no answer declares it dead, a verdict it gossips. phi >= threshold (scaled by
// the observer's local health) still declares dead on its own, as a backstop for when no
// probe can be sent. A heartbeat or a probe ack brings a node back to alive (the suspect's
// refutation). A node gossiping `leaving` is `left` at once. A node dead or left for
// dead_node_grace is forgotten.
//
// Peer choice is uniform by default. With spatial_exponent a > 0 it is Demers et al.'s
// spatial distribution (§3.1, "spatial distributions"; DESIGN §3): a peer at distance d is
// chosen with probability proportional to Q(d)^-a, where Q(d) is the number of candidate
// peers within distance d of this node. a = 2 is the distribution the paper recommends:
// most exchanges stay near, yet every distance keeps being used, so updates still reach
// far sites. Distances come from locality labels ("region/zone/rack") that each node writes
// under the reserved key kLocalityKey of its own map, so they replicate like any key and
// the wire format is unchanged.
#ifndef SCUTTLE_ENGINE_MEMBERSHIP_H_
#define SCUTTLE_ENGINE_MEMBERSHIP_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
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
  // The prior mean inter-arrival time; 0 = the gossip interval (Engine fills it in).
  TimeUs initial_interval_us = 0;
  // How many samples the prior is worth (see the young-node prior above).
  double prior_weight = 4;
  // Confirmation by probes (SWIM / Lifeguard). Off: the phi-only detector.
  bool confirm = true;
  // phi at which a node becomes suspect and is probed. 2 = a silence of 4.6 mean
  // intervals: rare for a live peer whose heartbeat arrives every round or two, and a
  // false suspicion costs only a ping and an ack of ~150 bytes.
  double suspect_phi = 2.0;
  // Direct probe timeout; the indirect round gets twice this. 0 = the gossip interval.
  // Both are multiplied by (1 + local health), Lifeguard's local health multiplier.
  TimeUs probe_timeout_us = 0;
  // The handshake as a probe (SWIM §3's ping of the period): the first Syn of a round
  // that gets no SynAck by the next tick, from a peer we heard nothing newer from since,
  // makes that peer suspect, and the probes below confirm or clear it. This is what
  // detects a crash quickly when heartbeats travel slowly (quiet rounds, large N); it only
  // ever starts a ping, so a lost SynAck costs a ping and an ack. Needs `confirm`.
  bool probe_unanswered_syn = false;  // off by default: see docs/detection.md
  int probe_relays = 3;  // k members asked to ping a suspect for us (SWIM's ping-req)
  // Indirect rounds before a verdict: each sends a direct ping and k ping-reqs through
  // freshly chosen relays and waits one probe timeout (the first waits two: relayed acks
  // take four hops). Rounds are independent tries against loss: at 20% loss one round
  // misses a live suspect with p ~ 0.36 × 0.59^3 ~ 0.07, three with p ~ 4e-4 (before the
  // heartbeats a busy round brings, which clear most of those too). 1 = SWIM's single
  // ping-req round; each round more adds one probe timeout to a real crash.
  int probe_indirect_rounds = 1;
  int max_probes = 8;    // suspects confirmed at once (bounded state)
  // Liveness is decided elsewhere (issue #18: shard 0 of this node, engine/member_feed.h):
  // heartbeats are still recorded as arrivals, but this detector never changes a state,
  // declares, confirms or forgets; only SetExternalState does.
  bool external = false;
  // Test only: a planted bug. Dead stays dead whatever heartbeat or refutation arrives
  // within the generation, so the simulator's false-death check must catch it.
  bool testonly_ignore_refutation = false;
  TimeUs max_interval_us = 10 * kUsPerSec;
  TimeUs dead_node_grace_us = 24 * 3600 * kUsPerSec;
  // Peer choice: 0 = uniform; a > 0 = P(peer at distance d) ∝ Q(d)^-a (see above).
  // REQUIRES: 0 <= spatial_exponent <= kMaxSpatialExponent.
  double spatial_exponent = 0;
};
inline constexpr double kMaxSpatialExponent = 8;

// Keys under this prefix belong to scuttle itself; the admin API and Node refuse writes
// to them from applications.
inline constexpr std::string_view kReservedKeyPrefix = "__scuttle/";
// A node's locality label, in its own map: components from the widest to the narrowest
// ("eu-west/zone-b/rack-7"), joined by '/'.
inline constexpr std::string_view kLocalityKey = "__scuttle/locality";
inline constexpr size_t kMaxLocalityBytes = 255;
inline constexpr int kMaxLocalityDepth = 8;
// The distance of a peer whose label (or ours) is missing or malformed: farther than any
// two labels can be.
inline constexpr int kUnknownDistance = kMaxLocalityDepth + 1;

// OK for a label of 1..kMaxLocalityDepth non-empty components of printable ASCII (no
// space), at most kMaxLocalityBytes in all; InvalidArgument saying what is wrong.
absl::Status ValidateLocality(std::string_view label);
// The number of trailing components that differ, counted on the longer label:
// "eu/a/r1" to "eu/a/r2" is 1, to "eu/b/r1" is 2, to "us/a/r1" is 3, to "eu/a" is 1.
// kUnknownDistance when either label is empty or invalid (labels are remote input).
int LocalityDistance(std::string_view a, std::string_view b);
// The label a node gossips under kLocalityKey, or "" when it has none.
std::string_view LocalityOf(const NodeState& node);

enum class MemberState : uint8_t { kAlive, kSuspect, kDead, kLeft };
const char* MemberStateName(MemberState s);

// Per-node detector record, embedded in NodeState.
struct Liveness {
  TimeUs last_arrival_us = -1;     // -1: not discovered yet
  TimeUs state_since_us = 0;
  // 0: no interval sampled yet (the prior is used). A float: 24 bits hold a mean of up to
  // max_interval_us to well under a microsecond, and the record is one of N² in a simulator.
  float mean_interval_us = 0;
  uint16_t samples = 0;  // saturates (a --phi_window above 65,535 acts as 65,535)
  MemberState state = MemberState::kAlive;
  // Suspect because a Syn went unanswered (not because of phi): stays suspect until a
  // heartbeat, a probe ack or a verdict settles it, whatever phi says meanwhile.
  bool held : 1 = false;
  // Held because a digest flagged it dead (a third party's doubt, not ours): where gossip
  // lags, a relayed heartbeat still clears this one, as it did before (a thousand
  // members probing one flagged node each with their own small chance of a false verdict
  // would otherwise multiply false deaths under heavy loss).
  bool soft : 1 = false;
};
static_assert(sizeof(Liveness) == 24, "one per known node, N² of them in a simulator");

// Starts the detector clock for a node first learned at now (from a digest or a delta).
void InitLiveness(Liveness& l, TimeUs now_us);

class Membership {
 public:
  explicit Membership(const MembershipConfig* config) : config_(config) {}

  // A node was created (joined) at now.
  void OnDiscovered(NodeState& node, TimeUs now_us) const;
  // The node's heartbeat rose at now (from a digest or its own packet).
  void OnHeartbeat(NodeState& node, TimeUs now_us, EventSink* events) const;
  // The node answered a probe at now: proof of life without a new heartbeat (not a
  // sample of the arrival rhythm).
  void OnProbeAck(NodeState& node, TimeUs now_us, EventSink* events) const;
  // A Syn to this alive node went unanswered: suspect it (held until settled) so the
  // Engine probes it. Returns false when it was not alive.
  bool SuspectUnanswered(NodeState& node, TimeUs now_us, EventSink* events,
                         bool soft = false) const;
  // A confirmed (or gossiped) dead verdict. Returns false when the node was already dead
  // or left.
  bool Declare(NodeState& node, TimeUs now_us, EventSink* events) const;
  // external mode: the state shard 0 published (engine/member_feed.h).
  void SetExternalState(NodeState& node, MemberState s, TimeUs now_us, EventSink* events) const {
    SetState(node, s, now_us, events);
  }
  // Lifeguard local health: this observer was itself silent for `gap` (a paused process,
  // a late timer); every peer's silence clock is shifted by it, capped at now, so our own
  // stall is not read as theirs.
  void Rebase(Cluster& cluster, TimeUs gap_us, TimeUs now_us) const;
  // Re-evaluates every node; forgets those dead/left for dead_node_grace (remembering
  // them for 10 × dead_node_grace so stale gossip does not re-learn them). Returns the number
  // forgotten. `max_remembered` bounds that memory.
  // `health` (Lifeguard's local health multiplier, >= 0) scales the phi-only dead threshold.
  // `silence_scale` (>= 1) scales both phi thresholds: the observer's quiet rounds bring it
  // that many times fewer heartbeat vectors than the rhythm its means were learned on.
  size_t Update(Cluster& cluster, TimeUs now_us, EventSink* events,
                size_t max_remembered = 1 << 16, int health = 0,
                double silence_scale = 1) const;
  double Phi(const NodeState& node, TimeUs now_us) const;
  // Bumped whenever a node becomes dead or stops being dead (the summary hashes that with
  // bounded quiet handshakes, EngineConfig::quiet_heartbeats).
  uint64_t state_changes() const { return state_changes_; }

  // Chooses this round's peers: up to `fanout` distinct alive peers (uniformly, or by the
  // spatial distribution when spatial_exponent > 0); with probability dead/(alive+1) one
  // dead peer (to notice it recovering); and a seed when few peers are known or by a
  // small chance (so partitions heal). Deterministic given rng.
  void ChoosePeers(const Cluster& cluster, int fanout, const std::vector<Endpoint>& seeds,
                   Rng& rng, std::vector<Endpoint>* out) const;

 private:
  void SetState(NodeState& node, MemberState s, TimeUs now_us, EventSink* events) const;
  // The prior mean; 1 s when neither it nor the gossip interval was set.
  double PriorUs() const {
    return static_cast<double>(config_->initial_interval_us > 0 ? config_->initial_interval_us
                                                                : kUsPerSec);
  }
  // Appends `k` distinct peers of `alive` drawn with weights Q(d)^-a. Reorders `alive`.
  void ChooseSpatial(const NodeState& self, std::vector<const NodeState*>& alive, size_t k,
                     Rng& rng, std::vector<Endpoint>* out) const;
  const MembershipConfig* config_;
  mutable uint64_t state_changes_ = 0;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_MEMBERSHIP_H_
