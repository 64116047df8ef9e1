// The deterministic cluster simulator (DESIGN §11; TigerBeetle's VOPR, FoundationDB's
// simulation): many real Engines in one process on a virtual clock, talking through a
// simulated network with loss, duplication, reordering, delay, partitions, crashes and
// restarts, and clock skew. One seed reproduces a run bit for bit.
//
//   ClusterSimConfig cfg;  cfg.nodes = 20;  cfg.seed = 7;  cfg.link.loss = 0.1;
//   ClusterSim sim(cfg);
//   const ClusterSimStats& s = sim.Run();   // s.invariant_violations, s.converged, ...
//
// Time: global virtual time starts at kStartUs; node i sees
//   local(t) = t + offset_i + (t - kStartUs) * drift_i
// and ticks every gossip_interval / (1 + drift_i), each period jittered by ±tick_jitter.
// A round is one gossip_interval of global time. Writes, faults and whole-cluster checks
// happen on round boundaries (writes at random instants inside the round).
//
// Fault model (all drawn from the one seeded Rng):
//   - per datagram on a link (LinkModel, or link_override(from, to)): loss, duplication,
//     delay = base + uniform/exponential jitter, reordering = an occasional extra delay;
//   - partition at round partition_at into `partition_groups` random groups, healed at
//     heal_at; datagrams crossing groups are dropped at send and at delivery;
//   - crash: each round each up node crashes with probability crash_rate (at most
//     max_down_fraction of the cluster down at once); its engine is destroyed, datagrams
//     it already sent are still delivered, datagrams to it are dropped. With probability
//     restart_prob it restarts after [restart_min_rounds, restart_max_rounds] rounds as a
//     fresh engine with the same name and endpoint and generation + 1.
//   - Random faults and writes stop at fault_stop_round / write_stop_round so that
//     convergence (within converge_bound_rounds of the last fault/write) and failure
//     detection (within dead_bound_rounds of a crash) can be checked.
// Endpoints are fake: node i is 127.x.y.z:7400 with x.y.z = i + 1; no socket is touched.
#ifndef SCUTTLE_SIM_CLUSTER_SIM_H_
#define SCUTTLE_SIM_CLUSTER_SIM_H_

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/rng.h"
#include "sim/cluster_checker.h"
#include "sim/cluster_net.h"

namespace scuttle::sim {

struct ClusterSimConfig {
  uint32_t nodes = 10;
  uint64_t seed = 1;
  uint32_t rounds = 100;

  // ---- Time ----
  TimeUs gossip_interval_us = kUsPerSec;
  // EpidemicConfig::rumor_interval_us: hot verdicts (and rumors, with rumor on) run their
  // cycles on this clock, as in scuttled (--rumor_interval_ms=20); 0 = once a round.
  TimeUs rumor_interval_us = 20 * kUsPerMs;
  double tick_jitter = 0.1;        // each tick period uniform in interval * (1 ± this)
  TimeUs max_clock_offset_us = 0;  // node clock offsets uniform in [-this, this]
  double max_drift = 0;            // node clock rates uniform in 1 ± this (e.g. 1e-4)

  // ---- Network ----
  LinkModel link;
  // Optional per-link model (directional); when set it replaces `link`.
  std::function<LinkModel(uint32_t from, uint32_t to)> link_override;
  size_t max_inflight_packets = 1 << 20;

  // ---- Faults (rounds are 0-based; 0 for partition_at means no partition) ----
  uint32_t partition_at = 0;
  uint32_t heal_at = 0;
  uint32_t partition_groups = 2;
  double crash_rate = 0;
  double restart_prob = 0.75;
  uint32_t restart_min_rounds = 3;
  uint32_t restart_max_rounds = 20;
  double max_down_fraction = 0.25;
  // Pauses (a SIGSTOP, a long GC): each round each up node pauses with probability
  // pause_rate for pause_us; a paused node neither ticks nor receives (its socket buffer
  // overflows), then resumes with a late tick (Lifeguard local health, engine/probe.h).
  double pause_rate = 0;
  TimeUs pause_us = 5 * kUsPerSec;
  // 0 = automatic (see Resolve()).
  uint32_t fault_stop_round = 0;
  uint32_t write_stop_round = 0;

  // ---- Workload: write_rate writes per round to random up owners' own maps ----
  uint32_t keys = 16;
  double write_rate = 4;
  double delete_ratio = 0.2;
  double ttl_ratio = 0;  // fraction of sets with a TTL of 1..10 rounds
  uint32_t value_min_bytes = 1;
  uint32_t value_max_bytes = 48;
  // Only this many owners write (evenly spaced node indexes, the first in the middle of
  // the index range, so not a seed); 0 = every node. Large clusters use a few owners: the
  // question there is how fast a write spreads, not N² maps.
  uint32_t key_nodes = 0;
  uint32_t write_start_round = 0;  // writes happen in [write_start_round, write_stop_round)
  // Each set writes a key never used before and each delete removes one of the owner's
  // live keys: every delete leaves a tombstone that nothing but GC removes (the
  // tombstone-bound workload; with a fixed key set, a key's tombstone is replaced by its
  // next set, which bounds tombstones whatever GC does).
  bool fresh_keys = false;

  // ---- Shards (issue #18, sim/sharded_sim.h) ----
  // This simulation is shard `shard` of nodes running `shard_count` engine shards: the
  // workload writes only keys with ShardOf(key, shard_count) == shard.
  uint16_t shard = 0;
  uint16_t shard_count = 1;

  // ---- Engine ----
  size_t max_packet_bytes = wire::kMaxUdpPayloadBytes;
  int fanout = 3;
  // EngineConfig quiet rounds (#16 idle cost): -1 = the engine default, 0 = off.
  int quiet_after_rounds = -1;
  int quiet_syn_period = -1;
  // Bounded quiet Syns (EngineConfig::quiet_heartbeats / quiet_buckets): -1 = the engine
  // default, 0 = unbounded.
  int quiet_heartbeats = -1;
  int quiet_buckets = -1;
  TimeUs tombstone_grace_us = 3600 * kUsPerSec;
  bool frontier_gc = true;  // EngineConfig::frontier_gc (seed 002 ack-frontier GC)
  uint32_t num_seeds = 3;
  // The simulator's default detector is tuned to the round length so crashes are
  // detected within a test's rounds (engine defaults: 5 s / 10 s).
  MembershipConfig membership = [] {
    MembershipConfig m;
    m.initial_interval_us = 2 * kUsPerSec;
    m.max_interval_us = 4 * kUsPerSec;
    return m;
  }();

  // ---- Checking ----
  bool check_invariants = true;
  bool strict_seed_invariant = false;
  bool stale_regression_is_violation = false;  // see ClusterChecker
  uint32_t converge_bound_rounds = 0;          // 0 = automatic
  uint32_t dead_bound_rounds = 0;              // 0 = automatic, from the detector settings
  // A node up and not paused for this many rounds must not be dead anywhere (its
  // refutation must have won).
  uint32_t live_bound_rounds = 10;
  size_t max_recorded_violations = 32;
  // Ends the run at the first converged round after the last write, fault and heal (and
  // with no restart pending), instead of running every round: sweeps ask how many rounds
  // a write takes to spread, and a converged 10,000-node round costs a full check.
  bool stop_when_converged = false;
  std::ostream* log = nullptr;  // violations are printed here as they are found

  // Test hook: adjusts each engine's config before it starts (e.g. its keyring).
  std::function<void(uint32_t node, EngineConfig* config)> configure_engine;
  // Test hook: may rewrite a datagram just before delivery (a planted protocol bug, see
  // sim/cluster_faults.h); returns true when it changed it.
  std::function<bool(uint32_t from, uint32_t to, std::vector<uint8_t>* datagram, Rng& rng)> tamper;
};

struct ClusterSimStats {
  uint32_t nodes = 0;
  uint32_t rounds = 0;
  uint64_t seed = 0;
  // Traffic.
  uint64_t packets_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t packets_delivered = 0;
  uint64_t dropped_loss = 0;
  uint64_t dropped_partition = 0;
  uint64_t dropped_down = 0;        // receiver crashed
  uint64_t dropped_queue_full = 0;  // max_inflight_packets reached
  uint64_t dropped_no_route = 0;    // an endpoint that is no simulated node
  uint64_t duplicated = 0;
  uint64_t tampered = 0;
  size_t peak_inflight = 0;
  double bytes_per_node_per_round = 0;
  // The same over the second half of the rounds run (steady state: joining is over).
  double tail_bytes_per_node_per_round = 0;
  uint64_t tail_start_bytes = 0;
  uint32_t tail_start_round = 0;
  // Engine send counters by message type, summed over every engine incarnation.
  uint64_t packets_by_type[wire::kMessageTypeCount] = {};
  uint64_t bytes_by_type[wire::kMessageTypeCount] = {};
  // Workload and faults.
  uint64_t writes = 0;
  uint64_t deletes = 0;
  uint64_t write_errors = 0;  // writes the engine refused (e.g. cannot fit a packet)
  uint64_t crashes = 0;
  uint64_t restarts = 0;
  uint64_t pauses = 0;
  uint64_t dropped_paused = 0;  // datagrams to a paused node
  // Failure detection (DESIGN §5, engine/probe.h): for each (crash, observer) pair, the
  // gossip intervals from the crash to the observer marking the node dead.
  std::vector<double> detection_intervals;
  uint64_t false_deaths = 0;          // dead events about a node that was up and not paused
  uint64_t paused_declared_dead = 0;  // dead events about a node paused (or just woken)
  uint64_t refutations_sent = 0;      // summed engine ProbeStats
  uint64_t refutations_applied = 0;
  uint64_t probes_started = 0;
  uint64_t confirmed_dead = 0;
  uint64_t verdicts_applied = 0;
  uint64_t suspicions_from_digest = 0;  // dead flags in digests that made a node probe
  // Verdict rumors (engine/verdict_rumor.h), summed engine ProbeStats.
  uint64_t verdict_pushes = 0;
  uint64_t verdict_feedback_knew = 0;
  uint64_t verdict_feedback_new = 0;
  uint64_t verdicts_dropped_full = 0;
  uint64_t verdict_cycles = 0;
  uint64_t late_ticks = 0;
  uint64_t quiet_rounds = 0;    // engine rounds ticked quiet (EngineConfig::quiet_after_rounds)
  uint64_t syn_unanswered = 0;  // suspicions raised by an unanswered Syn
  // Tombstones held per replica (over every owner it knows, its own map included),
  // sampled at the end of every round: the maximum over replicas and rounds, and the
  // maximum over replicas at the last round. Only owners that ever deleted are visited.
  uint64_t max_tombstones_per_replica = 0;
  uint64_t final_max_tombstones_per_replica = 0;
  std::vector<uint64_t> max_tombstones_by_round;  // the maximum over replicas, by round
  std::vector<uint32_t> deletes_per_round;        // owner deletes and TTL expiries, by round
  // Engine counters summed over every engine incarnation.
  uint64_t parts[kPartOutcomeCount] = {};
  uint64_t entries_applied = 0;
  uint64_t deltas_truncated = 0;
  uint64_t resets_sent = 0;
  uint64_t tombstones_gced = 0;           // by grace (seed 000)
  uint64_t tombstones_gced_frontier = 0;  // by the ack frontier (seed 002)
  uint64_t keys_expired = 0;
  uint64_t engine_drops[kEngineDropCount] = {};
  uint64_t decode_drops[wire::kDropReasonCount] = {};
  // Checks.
  uint64_t invariant_violations = 0;
  uint64_t stale_regressions = 0;  // anomalies, unless stale_regression_is_violation
  uint64_t violations_by_kind[static_cast<size_t>(ViolationKind::kCount)] = {};
  uint64_t keys_checked = 0;
  bool converged = false;
  int64_t rounds_to_converge = -1;  // rounds after the quiet point; -1 if never
  uint32_t quiet_round = 0;         // first round with no faults or writes pending
  uint32_t dead_checks = 0;         // (crashed node, live node) pairs checked for kDead
  uint64_t trace_hash = 0;          // over every delivered datagram and every write
  double wall_seconds = 0;
};

class ClusterSim {
 public:
  static constexpr TimeUs kStartUs = 1000 * kUsPerSec;

  explicit ClusterSim(ClusterSimConfig config);
  ~ClusterSim();
  ClusterSim(const ClusterSim&) = delete;
  ClusterSim& operator=(const ClusterSim&) = delete;

  // Runs every remaining round, then the final checks; returns the stats.
  const ClusterSimStats& Run();
  // Runs `n` rounds (faults, writes, gossip, checks per round).
  void RunRounds(uint32_t n);
  // Final checks (owner models, membership) and stats; Run() calls it.
  const ClusterSimStats& Finish();

  // ---- Direct control, for tests ----
  void Crash(uint32_t node);
  void Restart(uint32_t node);
  void Pause(uint32_t node, TimeUs duration_us);
  bool paused(uint32_t node) const;
  void Partition(const std::vector<uint32_t>& group_of_node);
  void Heal();
  absl::Status Write(uint32_t node, std::string_view key, std::string_view value);
  absl::Status Erase(uint32_t node, std::string_view key);

  uint32_t round() const { return round_; }
  TimeUs now_us() const { return now_us_; }
  uint32_t size() const { return static_cast<uint32_t>(nodes_.size()); }
  bool up(uint32_t node) const;
  // REQUIRES: up(node).
  const Engine& engine(uint32_t node) const;
  // REQUIRES: up(node). For tests that change an engine between rounds (SetKeyring).
  Engine& mutable_engine(uint32_t node);
  const std::string& name(uint32_t node) const;
  // The node's current (or, while down, last) generation.
  Generation generation(uint32_t node) const;
  // Partition group per node; empty when healed.
  const std::vector<uint32_t>& partition_groups() const { return group_; }
  const ClusterChecker& checker() const { return *checker_; }
  const ClusterSimStats& stats() const { return stats_; }
  const ClusterSimConfig& config() const { return config_; }
  // True when every up node holds every up owner's current generation at its max_version.
  // Resumes the scan at the pair that failed last time, so the rounds before convergence
  // cost about the pairs that converged since (not N² each).
  bool Converged() const;

 private:
  struct Node;
  class NodeSink;
  class NodeEvents;

  void Resolve();
  TimeUs LocalTime(const Node& n, TimeUs t) const;
  void StartEngine(Node& n);
  void ScheduleTick(Node& n, TimeUs after);
  void BeginRound();
  void EndRound();
  void ScheduleWrites();
  void RandomFaults();
  void ProcessUntil(TimeUs end);
  void OnTick(const SimEvent& e);
  void OnEngineTimer(const SimEvent& e);
  // Arms (or moves earlier) the node's probe timer (Engine::ProbeDueUs) and rumor clock
  // (Engine::RumorCycleDueUs), as scuttled's loop does after every event.
  void ArmTimers(Node& n);
  void ArmTimer(Node& n, SimEventKind kind, TimeUs due_local, TimeUs* armed_at);
  void OnDatagram(const SimEvent& e);
  void DoWrite();
  void Send(uint32_t from, const Endpoint& to, std::span<const uint8_t> bytes);
  int32_t NodeOf(const Endpoint& ep) const;
  bool Partitioned(uint32_t a, uint32_t b) const;
  void AbsorbStats(const Engine& e);
  void CheckConvergence();
  void CheckMembership(bool final_check);
  void CheckLiveNotDead();
  void OnDeadEvent(uint32_t observer, const NodeState& node);
  void MarkActivity() { last_activity_round_ = round_; }
  void Hash(uint64_t x);
  bool PairConverged(uint32_t replica, uint32_t owner) const;
  void SampleTombstones();
  void OnOwnerDelete(uint32_t owner);
  uint32_t PickOwner();
  bool Settled() const;

  ClusterSimConfig config_;
  Rng rng_;
  Rng tamper_rng_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::unique_ptr<ClusterChecker> checker_;
  EventQueue queue_;
  DatagramPool pool_;
  std::vector<uint32_t> group_;  // partition group per node; empty when healed
  uint32_t round_ = 0;
  TimeUs now_us_ = kStartUs;
  uint32_t last_activity_round_ = 0;
  uint32_t last_heal_round_ = 0;
  bool finished_ = false;
  ClusterSimStats stats_;
  double wall_start_ = 0;
  // One send buffer for every node: engines run one at a time and Commit copies the
  // datagram into the network, so a per-node 64 KiB buffer would only cost memory.
  std::vector<uint8_t> send_buf_;
  std::vector<uint32_t> deleters_;  // owners that ever deleted (tombstone sampling)
  std::vector<bool> is_deleter_;
  mutable uint64_t witness_ = 0;  // Converged(): replica * N + owner of the last failure
};

}  // namespace scuttle::sim

#endif  // SCUTTLE_SIM_CLUSTER_SIM_H_
