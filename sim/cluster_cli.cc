#include "sim/cluster_cli.h"

#include <sys/resource.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "sim/cluster_faults.h"
#include "engine/shard.h"
#include "sim/flags.h"
#include "sim/sharded_sim.h"
#include "wire/absl_compat.h"

// `scuttle-sim cluster` flags. --seed and --json are shared by every command
// (sim/demers_cli.cc). Probabilities are percentages; 0 for a bound means automatic.
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_DECLARE_FLAG(bool, json);
ABSL_FLAG(uint32_t, nodes, 10, "cluster size, 1..1048576");
ABSL_FLAG(uint32_t, rounds, 100, "gossip rounds (gossip intervals of virtual time), 1..2^24");
ABSL_FLAG(double, loss_pct, 0, "per-datagram loss, percent");
ABSL_FLAG(double, dup_pct, 0, "per-datagram duplication, percent");
ABSL_FLAG(bool, reorder, false, "10% of datagrams get up to 300 ms extra delay");
ABSL_FLAG(double, delay_ms, 2, "base one-way delay");
ABSL_FLAG(double, jitter_ms, 3, "delay jitter");
ABSL_FLAG(bool, exp_jitter, false, "exponential instead of uniform jitter");
ABSL_FLAG(uint32_t, partition_at_round, 0, "split the cluster at this round (0: never)");
ABSL_FLAG(uint32_t, heal_at_round, 0,
          "heal the partition at this round (> --partition_at_round, < --rounds)");
ABSL_FLAG(uint32_t, partition_groups, 2, "number of partition groups, 2..1048576");
ABSL_FLAG(double, crash_pct, 0, "per node per round crash probability, percent");
ABSL_FLAG(double, pause_pct, 0,
          "per node per round probability of a pause (SIGSTOP-like), percent");
ABSL_FLAG(double, pause_ms, 5000, "length of each pause");
ABSL_FLAG(bool, confirm, true,
          "probes, verdicts and refutations confirm a suspicion (--noconfirm: phi only)");
ABSL_FLAG(bool, old_detector, false,
          "the detector before #16's idle-cost work (same-run baseline): full fanout every "
          "round, no unanswered-Syn probe, one ping-req round");
ABSL_FLAG(int32_t, quiet_after_rounds, -1,
          "quiet rounds after this many idle rounds (0: never quiet; -1: engine default)");
ABSL_FLAG(int32_t, quiet_syn_period, -1,
          "a quiet node starts one handshake every this many rounds (-1: engine default)");
ABSL_FLAG(int32_t, quiet_heartbeats, -1,
          "a quiet Syn carries at most this many heartbeats, a rotating slice (0: all; -1: "
          "engine default)");
ABSL_FLAG(int32_t, quiet_buckets, -1,
          "a quiet Syn carries at most this many bucket hashes (0: as a busy Syn; -1: engine "
          "default)");
ABSL_FLAG(int32_t, syn_probe, -1,
          "an unanswered Syn makes its peer suspect: 1 on, 0 off, -1 engine default");
ABSL_FLAG(int32_t, probe_indirect_rounds, 0,
          "ping-req rounds before a verdict (0: engine default)");
ABSL_FLAG(double, prior_ms, -1,
          "phi prior mean interval (-1: the simulator's 2000; 0: the gossip interval)");
ABSL_FLAG(bool, ignore_refutation, false, "planted bug: dead stays dead within a generation");
ABSL_FLAG(double, restart_pct, 75, "probability a crashed node restarts, percent");
ABSL_FLAG(uint32_t, keys, 16, "keys per owner, 1..2^24");
ABSL_FLAG(uint32_t, key_nodes, 0, "only this many evenly spaced owners write (0: every node)");
ABSL_FLAG(bool, fresh_keys, false, "each set a new key, each delete one of the owner's live keys");
ABSL_FLAG(double, writes_per_round, 4, "writes per round across the cluster");
ABSL_FLAG(double, delete_pct, 20, "share of writes that delete, percent");
ABSL_FLAG(double, ttl_pct, 0, "share of sets with a TTL, percent");
ABSL_FLAG(uint32_t, value_max_bytes, 48, "largest value, 1..61440");
ABSL_FLAG(uint32_t, max_packet_bytes, 65507, "engine max_packet_bytes, 256..65507");
ABSL_FLAG(uint32_t, fanout, 3, "gossip fanout, 1..64");
ABSL_FLAG(double, tombstone_grace_s, 3600, "tombstone GC grace");
ABSL_FLAG(double, clock_skew_ms, 0, "max node clock offset");
ABSL_FLAG(double, drift_ppm, 0, "max node clock drift");
ABSL_FLAG(uint32_t, write_start_round, 0, "first round with writes");
ABSL_FLAG(uint32_t, write_stop_round, 0,
          "writes stop before this round (0: --rounds minus the converge bound)");
ABSL_FLAG(bool, stop_when_converged, false,
          "end the run once converged after the last write or fault");
ABSL_FLAG(bool, frontier_gc, true,
          "tombstones also go by the ack frontier (--nofrontier_gc: by grace only)");
ABSL_FLAG(uint32_t, converge_bound_rounds, 0,
          "rounds allowed to converge after the last fault or write (0: automatic)");
ABSL_FLAG(uint32_t, dead_bound_rounds, 0,
          "rounds within which a crash must be detected (0: from the detector settings)");
ABSL_FLAG(uint32_t, max_inflight_packets, 1 << 20, "bound on in-flight datagrams, 1..2^30");
ABSL_FLAG(bool, strict_seed_invariant, false, "literal full-history seed-000 replay");
ABSL_FLAG(bool, stale_regression_is_violation, false, "count stale regressions as violations");
ABSL_FLAG(bool, check_invariants, true,
          "run the per-packet invariant checkers (--nocheck_invariants: skip them)");
ABSL_FLAG(std::string, plant_bug, "none", "none|drop-tombstones|gap-applied|inflate-max");
ABSL_FLAG(double, plant_bug_pct, 20, "probability a delta part is corrupted, percent");
ABSL_FLAG(uint32_t, shards, 1,
          "engine shards per node (docs/shards.md): above 1, every node runs one engine per "
          "shard (sim/sharded_sim.h), every checker runs per shard; no pauses");
ABSL_FLAG(uint32_t, soak_seeds, 0,
          "run this many consecutive seeds from --seed, each with a random fault mix "
          "(then only --nodes, --rounds and the checker flags apply)");

namespace scuttle::sim {
namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

double PeakRssMb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

struct CliOptions {
  ClusterSimConfig cfg;
  uint16_t shards = 1;
  bool json = false;
  uint32_t soak = 0;
  PlantedBug bug = PlantedBug::kNone;
  double bug_p = 0.2;
};

double Pct(const absl::Flag<double>& flag) { return absl::GetFlag(flag) / 100.0; }

absl::Status CheckPct(std::string_view name, const absl::Flag<double>& flag) {
  return cli::InRange<double>(name, absl::GetFlag(flag), 0, 100);
}

// The flags --soak_seeds reads; each seed draws its own fault mix and workload, so any
// other flag of the command would be ignored, and is refused.
constexpr std::string_view kSoakFlags[] = {"nodes",
                                           "rounds",
                                           "seed",
                                           "soak_seeds",
                                           "strict_seed_invariant",
                                           "stale_regression_is_violation"};

absl::Status CheckSoakFlags() {
  std::vector<std::string> ignored;
  for (std::string& name : ClusterFlags()) {
    if (std::find(std::begin(kSoakFlags), std::end(kSoakFlags), name) == std::end(kSoakFlags)) {
      ignored.push_back(std::move(name));
    }
  }
  const std::vector<std::string_view> names(ignored.begin(), ignored.end());
  return cli::RefuseSetFlags(names, "--soak_seeds (each seed draws its own fault mix)");
}

absl::Status CheckRanges() {
  constexpr uint32_t k24 = 1u << 24;
  for (absl::Status s : {
           cli::InRange<uint32_t>("nodes", absl::GetFlag(FLAGS_nodes), 1, 1u << 20),
           cli::InRange<uint32_t>("rounds", absl::GetFlag(FLAGS_rounds), 1, k24),
           CheckPct("loss_pct", FLAGS_loss_pct),
           CheckPct("dup_pct", FLAGS_dup_pct),
           cli::InRange<double>("delay_ms", absl::GetFlag(FLAGS_delay_ms), 0, 60000),
           cli::InRange<double>("jitter_ms", absl::GetFlag(FLAGS_jitter_ms), 0, 60000),
           cli::InRange<uint32_t>("partition_at_round", absl::GetFlag(FLAGS_partition_at_round), 0,
                                  k24),
           cli::InRange<uint32_t>("heal_at_round", absl::GetFlag(FLAGS_heal_at_round), 0, k24),
           cli::InRange<uint32_t>("partition_groups", absl::GetFlag(FLAGS_partition_groups), 2,
                                  1u << 20),
           CheckPct("crash_pct", FLAGS_crash_pct),
           CheckPct("pause_pct", FLAGS_pause_pct),
           cli::InRange<double>("pause_ms", absl::GetFlag(FLAGS_pause_ms), 1, 1e7),
           CheckPct("restart_pct", FLAGS_restart_pct),
           cli::InRange<uint32_t>("keys", absl::GetFlag(FLAGS_keys), 1, k24),
           cli::InRange<uint32_t>("key_nodes", absl::GetFlag(FLAGS_key_nodes), 0, 1u << 20),
           cli::InRange<double>("writes_per_round", absl::GetFlag(FLAGS_writes_per_round), 0, 1e7),
           CheckPct("delete_pct", FLAGS_delete_pct),
           CheckPct("ttl_pct", FLAGS_ttl_pct),
           cli::InRange<uint32_t>("value_max_bytes", absl::GetFlag(FLAGS_value_max_bytes), 1,
                                  60 * 1024),
           cli::InRange<uint32_t>("max_packet_bytes", absl::GetFlag(FLAGS_max_packet_bytes), 256,
                                  65507),
           cli::InRange<uint32_t>("fanout", absl::GetFlag(FLAGS_fanout), 1, 64),
           cli::InRange<double>("tombstone_grace_s", absl::GetFlag(FLAGS_tombstone_grace_s), 0,
                                1e9),
           cli::InRange<double>("clock_skew_ms", absl::GetFlag(FLAGS_clock_skew_ms), 0, 1e8),
           cli::InRange<double>("drift_ppm", absl::GetFlag(FLAGS_drift_ppm), 0, 1e5),
           cli::InRange<uint32_t>("write_start_round", absl::GetFlag(FLAGS_write_start_round), 0,
                                  k24),
           cli::InRange<uint32_t>("write_stop_round", absl::GetFlag(FLAGS_write_stop_round), 0,
                                  k24),
           cli::InRange<uint32_t>("converge_bound_rounds",
                                  absl::GetFlag(FLAGS_converge_bound_rounds), 0, k24),
           cli::InRange<uint32_t>("dead_bound_rounds", absl::GetFlag(FLAGS_dead_bound_rounds), 0,
                                  k24),
           cli::InRange<uint32_t>("max_inflight_packets", absl::GetFlag(FLAGS_max_inflight_packets),
                                  1, 1u << 30),
           CheckPct("plant_bug_pct", FLAGS_plant_bug_pct),
           cli::InRange<uint32_t>("soak_seeds", absl::GetFlag(FLAGS_soak_seeds), 0, 1u << 30),
           cli::InRange<uint32_t>("shards", absl::GetFlag(FLAGS_shards), 1, kMaxShards),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Reads and checks every flag of the command.
absl::StatusOr<CliOptions> ClusterFromFlags() {
  if (absl::Status s = CheckRanges(); !s.ok()) return s;
  CliOptions o;
  o.json = absl::GetFlag(FLAGS_json);
  o.soak = absl::GetFlag(FLAGS_soak_seeds);
  if (o.soak > 0) {
    if (absl::Status s = CheckSoakFlags(); !s.ok()) return s;
  }
  absl::StatusOr<PlantedBug> bug = ParsePlantedBug(absl::GetFlag(FLAGS_plant_bug));
  if (!bug.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--plant_bug: ", bug.status().message()));
  }
  o.bug = *bug;
  o.bug_p = Pct(FLAGS_plant_bug_pct);
  ClusterSimConfig& c = o.cfg;
  c.nodes = absl::GetFlag(FLAGS_nodes);
  c.seed = absl::GetFlag(FLAGS_seed);
  c.rounds = absl::GetFlag(FLAGS_rounds);
  c.link.loss = Pct(FLAGS_loss_pct);
  c.link.dup = Pct(FLAGS_dup_pct);
  c.link.reorder = absl::GetFlag(FLAGS_reorder) ? 0.1 : 0;
  c.link.base_delay_us = static_cast<TimeUs>(absl::GetFlag(FLAGS_delay_ms) * kUsPerMs);
  c.link.jitter_us = static_cast<TimeUs>(absl::GetFlag(FLAGS_jitter_ms) * kUsPerMs);
  c.link.exponential_jitter = absl::GetFlag(FLAGS_exp_jitter);
  c.partition_at = absl::GetFlag(FLAGS_partition_at_round);
  c.heal_at = absl::GetFlag(FLAGS_heal_at_round);
  c.partition_groups = absl::GetFlag(FLAGS_partition_groups);
  c.crash_rate = Pct(FLAGS_crash_pct);
  c.pause_rate = Pct(FLAGS_pause_pct);
  c.pause_us = static_cast<TimeUs>(absl::GetFlag(FLAGS_pause_ms) * kUsPerMs);
  c.membership.confirm = absl::GetFlag(FLAGS_confirm);
  c.membership.testonly_ignore_refutation = absl::GetFlag(FLAGS_ignore_refutation);
  const bool old_detector = absl::GetFlag(FLAGS_old_detector);
  const int32_t quiet_after = absl::GetFlag(FLAGS_quiet_after_rounds);
  const int32_t quiet_period = absl::GetFlag(FLAGS_quiet_syn_period);
  const int32_t syn_probe = absl::GetFlag(FLAGS_syn_probe);
  const int32_t probe_rounds = absl::GetFlag(FLAGS_probe_indirect_rounds);
  const double prior_ms = absl::GetFlag(FLAGS_prior_ms);
  if (quiet_after < -1 || quiet_after > 1000 || quiet_period < -1 || quiet_period == 0 ||
      quiet_period > 1000 || syn_probe < -1 || syn_probe > 1 || probe_rounds < 0 ||
      probe_rounds > 100 || prior_ms < -1 || prior_ms > 1e7) {
    return absl::InvalidArgumentError(
        "--quiet_after_rounds -1..1000, --quiet_syn_period -1 or 1..1000, --syn_probe -1..1, "
        "--probe_indirect_rounds 0..100, --prior_ms -1..1e7");
  }
  const int32_t quiet_hb = absl::GetFlag(FLAGS_quiet_heartbeats);
  const int32_t quiet_buckets = absl::GetFlag(FLAGS_quiet_buckets);
  if (quiet_hb < -1 || quiet_hb > 1024 || quiet_buckets < -1 || quiet_buckets > 1024) {
    return absl::InvalidArgumentError("--quiet_heartbeats and --quiet_buckets: -1..1024");
  }
  if (quiet_hb >= 0) c.quiet_heartbeats = quiet_hb;
  if (quiet_buckets >= 0) c.quiet_buckets = quiet_buckets;
  if (old_detector) {
    c.quiet_heartbeats = 0;
    c.quiet_buckets = 0;
    c.quiet_after_rounds = 0;
    c.membership.probe_unanswered_syn = false;
    c.membership.probe_indirect_rounds = 1;
  }
  if (quiet_after >= 0) c.quiet_after_rounds = quiet_after;
  if (quiet_period > 0) c.quiet_syn_period = quiet_period;
  if (syn_probe >= 0) c.membership.probe_unanswered_syn = syn_probe == 1;
  if (probe_rounds > 0) c.membership.probe_indirect_rounds = probe_rounds;
  if (prior_ms >= 0) c.membership.initial_interval_us = static_cast<TimeUs>(prior_ms * kUsPerMs);
  c.restart_prob = Pct(FLAGS_restart_pct);
  c.keys = absl::GetFlag(FLAGS_keys);
  c.key_nodes = absl::GetFlag(FLAGS_key_nodes);
  c.fresh_keys = absl::GetFlag(FLAGS_fresh_keys);
  c.write_rate = absl::GetFlag(FLAGS_writes_per_round);
  c.delete_ratio = Pct(FLAGS_delete_pct);
  c.ttl_ratio = Pct(FLAGS_ttl_pct);
  c.value_max_bytes = absl::GetFlag(FLAGS_value_max_bytes);
  c.value_min_bytes = std::min<uint32_t>(c.value_min_bytes, c.value_max_bytes);
  c.max_packet_bytes = absl::GetFlag(FLAGS_max_packet_bytes);
  c.fanout = static_cast<int>(absl::GetFlag(FLAGS_fanout));
  c.tombstone_grace_us = static_cast<TimeUs>(absl::GetFlag(FLAGS_tombstone_grace_s) * kUsPerSec);
  c.max_clock_offset_us = static_cast<TimeUs>(absl::GetFlag(FLAGS_clock_skew_ms) * kUsPerMs);
  c.max_drift = absl::GetFlag(FLAGS_drift_ppm) * 1e-6;
  c.write_start_round = absl::GetFlag(FLAGS_write_start_round);
  c.write_stop_round = absl::GetFlag(FLAGS_write_stop_round);
  c.stop_when_converged = absl::GetFlag(FLAGS_stop_when_converged);
  c.frontier_gc = absl::GetFlag(FLAGS_frontier_gc);
  c.converge_bound_rounds = absl::GetFlag(FLAGS_converge_bound_rounds);
  c.dead_bound_rounds = absl::GetFlag(FLAGS_dead_bound_rounds);
  c.max_inflight_packets = absl::GetFlag(FLAGS_max_inflight_packets);
  c.strict_seed_invariant = absl::GetFlag(FLAGS_strict_seed_invariant);
  c.stale_regression_is_violation = absl::GetFlag(FLAGS_stale_regression_is_violation);
  c.check_invariants = absl::GetFlag(FLAGS_check_invariants);
  if ((c.partition_at > 0) != (c.heal_at > 0) ||
      (c.partition_at > 0 && c.heal_at <= c.partition_at)) {
    return absl::InvalidArgumentError(
        "--partition_at_round and --heal_at_round go together, heal after partition");
  }
  if (c.heal_at >= c.rounds) {
    return absl::InvalidArgumentError("--heal_at_round must be below --rounds");
  }
  o.shards = static_cast<uint16_t>(absl::GetFlag(FLAGS_shards));
  if (o.shards > 1 && c.pause_rate > 0) {
    // A paused process stops all its shards at once, which the lockstep rounds of
    // ShardedSim cannot mirror.
    return absl::InvalidArgumentError("--pause_pct does not apply with --shards above 1");
  }
  return o;
}

nlohmann::json StatsJson(const ClusterSimStats& s, const ClusterSim& sim) {
  nlohmann::json j;
  j["nodes"] = s.nodes;
  j["rounds"] = s.rounds;
  j["seed"] = s.seed;
  j["invariant_violations"] = s.invariant_violations;
  nlohmann::json kinds = nlohmann::json::object();
  for (size_t k = 0; k < static_cast<size_t>(ViolationKind::kCount); ++k) {
    if (k == static_cast<size_t>(ViolationKind::kStaleRegression) &&
        !sim.config().stale_regression_is_violation) {
      continue;
    }
    if (s.violations_by_kind[k] > 0) {
      kinds[ViolationKindName(static_cast<ViolationKind>(k))] = s.violations_by_kind[k];
    }
  }
  j["violations_by_kind"] = kinds;
  nlohmann::json first = nlohmann::json::array();
  for (const Violation& v : sim.checker().recorded()) first.push_back(v.ToString());
  j["violations"] = first;
  j["stale_regressions"] = s.stale_regressions;
  nlohmann::json anomalies = nlohmann::json::array();
  for (const Violation& v : sim.checker().recorded_anomalies()) anomalies.push_back(v.ToString());
  j["anomalies"] = anomalies;
  j["converged"] = s.converged;
  j["rounds_to_converge"] = s.rounds_to_converge;
  j["quiet_round"] = s.quiet_round;
  j["bytes_per_node_per_round"] = s.bytes_per_node_per_round;
  j["tail_bytes_per_node_per_round"] = s.tail_bytes_per_node_per_round;
  nlohmann::json by_type = nlohmann::json::object();
  for (size_t t = 0; t < wire::kMessageTypeCount; ++t) {
    if (s.packets_by_type[t] == 0) continue;
    by_type[wire::MessageTypeName(static_cast<wire::MessageType>(t))] = {
        {"packets", s.packets_by_type[t]}, {"bytes", s.bytes_by_type[t]}};
  }
  j["sent_by_type"] = by_type;
  j["quiet_rounds"] = s.quiet_rounds;
  j["syn_unanswered"] = s.syn_unanswered;
  j["packets"] = s.packets_sent;
  j["packets_delivered"] = s.packets_delivered;
  j["bytes"] = s.bytes_sent;
  j["dropped"] = {{"loss", s.dropped_loss},
                  {"partition", s.dropped_partition},
                  {"down", s.dropped_down},
                  {"queue_full", s.dropped_queue_full},
                  {"no_route", s.dropped_no_route}};
  j["duplicated"] = s.duplicated;
  j["tampered"] = s.tampered;
  j["peak_inflight"] = s.peak_inflight;
  j["writes"] = s.writes;
  j["deletes"] = s.deletes;
  j["write_errors"] = s.write_errors;
  j["crashes"] = s.crashes;
  j["restarts"] = s.restarts;
  j["max_tombstones_per_replica"] = s.max_tombstones_per_replica;
  j["final_max_tombstones_per_replica"] = s.final_max_tombstones_per_replica;
  nlohmann::json parts = nlohmann::json::object();
  for (size_t i = 0; i < kPartOutcomeCount; ++i) {
    parts[PartOutcomeName(static_cast<PartOutcome>(i))] = s.parts[i];
  }
  j["parts"] = parts;
  j["entries_applied"] = s.entries_applied;
  j["deltas_truncated"] = s.deltas_truncated;
  j["resets_sent"] = s.resets_sent;
  j["tombstones_gced"] = s.tombstones_gced;
  j["tombstones_gced_frontier"] = s.tombstones_gced_frontier;
  j["keys_expired"] = s.keys_expired;
  j["keys_checked"] = s.keys_checked;
  j["dead_checks"] = s.dead_checks;
  {
    std::vector<double> d = s.detection_intervals;
    std::sort(d.begin(), d.end());
    auto q = [&](double p) {
      return d.empty() ? -1.0 : d[std::min(d.size() - 1, static_cast<size_t>(p * d.size()))];
    };
    j["detection"] = {{"samples", d.size()},   {"p50_intervals", q(0.5)},
                      {"p90_intervals", q(0.9)}, {"p99_intervals", q(0.99)},
                      {"max_intervals", d.empty() ? -1.0 : d.back()}};
  }
  j["pauses"] = s.pauses;
  j["false_deaths"] = s.false_deaths;
  j["paused_declared_dead"] = s.paused_declared_dead;
  j["refutations_sent"] = s.refutations_sent;
  j["refutations_applied"] = s.refutations_applied;
  j["probes_started"] = s.probes_started;
  j["confirmed_dead"] = s.confirmed_dead;
  j["verdicts_applied"] = s.verdicts_applied;
  j["suspicions_from_digest"] = s.suspicions_from_digest;
  j["verdict_pushes"] = s.verdict_pushes;
  j["verdict_feedback_knew"] = s.verdict_feedback_knew;
  j["verdict_feedback_new"] = s.verdict_feedback_new;
  j["verdicts_dropped_full"] = s.verdicts_dropped_full;
  j["verdict_cycles"] = s.verdict_cycles;
  j["late_ticks"] = s.late_ticks;
  nlohmann::json drops = nlohmann::json::object();
  for (size_t i = 0; i < kEngineDropCount; ++i) {
    if (s.engine_drops[i] > 0)
      drops[EngineDropName(static_cast<EngineDrop>(i))] = s.engine_drops[i];
  }
  for (size_t i = 0; i < wire::kDropReasonCount; ++i) {
    if (s.decode_drops[i] > 0) {
      drops[absl::StrCat("decode_", wire::DropReasonName(static_cast<wire::DropReason>(i)))] =
          s.decode_drops[i];
    }
  }
  j["engine_drops"] = drops;
  j["trace_hash"] = absl::StrFormat("%016x", s.trace_hash);
  j["wall_seconds"] = s.wall_seconds;
  j["cpu_seconds"] = CpuSeconds();  // the process's, for loaded machines
  j["peak_rss_mb"] = PeakRssMb();
  return j;
}

void PrintText(const nlohmann::json& j, std::ostream& out) {
  for (const auto& [k, v] : j.items()) {
    if (k == "violations" || k == "anomalies") {
      for (const auto& line : v) out << "  " << line.get<std::string>() << "\n";
      continue;
    }
    out << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
  }
}

int RunSoak(const CliOptions& o, std::ostream& out, std::ostream& err) {
  uint64_t failed = 0;
  for (uint32_t i = 0; i < o.soak; ++i) {
    const uint64_t seed = o.cfg.seed + i;
    ClusterSimConfig cfg = RandomFaultMix(seed, o.cfg.nodes, o.cfg.rounds);
    cfg.strict_seed_invariant = o.cfg.strict_seed_invariant;
    cfg.stale_regression_is_violation = o.cfg.stale_regression_is_violation;
    ClusterSim sim(cfg);
    const ClusterSimStats& s = sim.Run();
    out << absl::StrFormat(
        "seed=%d nodes=%d rounds=%d loss=%.2f dup=%.2f reorder=%.2f mtu=%d grace_rounds=%d "
        "crash=%.3f partition=%d-%d violations=%d stale_regressions=%d converged=%d "
        "rounds_to_converge=%d wall=%.2fs\n",
        seed, cfg.nodes, cfg.rounds, cfg.link.loss, cfg.link.dup, cfg.link.reorder,
        cfg.max_packet_bytes, cfg.tombstone_grace_us / cfg.gossip_interval_us, cfg.crash_rate,
        cfg.partition_at, cfg.heal_at, s.invariant_violations, s.stale_regressions, s.converged,
        s.rounds_to_converge, s.wall_seconds);
    if (s.invariant_violations > 0) {
      ++failed;
      for (const Violation& v : sim.checker().recorded()) err << "  " << v.ToString() << "\n";
    }
  }
  out << "soak: " << o.soak << " seeds, " << failed << " with violations\n";
  return failed > 0 ? 1 : 0;
}

// --shards above 1: the totals, then each shard's full report.
nlohmann::json ShardedJson(const ShardedSimStats& s, ShardedSim& sim) {
  nlohmann::json j;
  j["shards"] = s.shards;
  j["nodes"] = sim.shard(0).config().nodes;
  j["rounds"] = sim.shard(0).config().rounds;
  j["seed"] = sim.shard(0).config().seed;
  j["invariant_violations"] = s.invariant_violations;
  j["converged"] = s.converged;
  int64_t rounds_to_converge = 0;
  uint64_t packets = 0, bytes = 0, entries_applied = 0, dead_checks = 0, false_deaths = 0;
  double bytes_per_node_per_round = 0;
  for (const ClusterSimStats& st : s.per_shard) {
    // -1 (never converged) on any shard is the total's too.
    if (rounds_to_converge >= 0) {
      rounds_to_converge =
          st.rounds_to_converge < 0 ? -1 : std::max(rounds_to_converge, st.rounds_to_converge);
    }
    packets += st.packets_sent;
    bytes += st.bytes_sent;
    entries_applied += st.entries_applied;
    dead_checks += st.dead_checks;
    false_deaths += st.false_deaths;
    bytes_per_node_per_round += st.bytes_per_node_per_round;
  }
  j["rounds_to_converge"] = rounds_to_converge;  // the slowest shard's, -1 if one never did
  j["bytes_per_node_per_round"] = bytes_per_node_per_round;
  j["packets"] = packets;
  j["bytes"] = bytes;
  j["writes"] = s.writes;
  j["entries_applied"] = entries_applied;
  j["crashes"] = s.crashes;
  j["restarts"] = s.restarts;
  j["dead_checks"] = dead_checks;
  j["false_deaths"] = false_deaths;
  j["membership_records"] = s.membership_records;
  j["external_suspicions"] = s.external_suspicions;
  j["cpu_seconds"] = CpuSeconds();
  j["peak_rss_mb"] = PeakRssMb();
  nlohmann::json per = nlohmann::json::array();
  for (uint16_t i = 0; i < s.shards; ++i) per.push_back(StatsJson(s.per_shard[i], sim.shard(i)));
  j["per_shard"] = std::move(per);
  return j;
}

void PrintShardedText(const nlohmann::json& j, std::ostream& out) {
  for (const auto& [k, v] : j.items()) {
    if (k == "per_shard") continue;
    out << k << ": " << v.dump() << "\n";
  }
  const nlohmann::json& per = j["per_shard"];
  for (size_t i = 0; i < per.size(); ++i) {
    out << "--- shard " << i << "\n";
    PrintText(per[i], out);
  }
}

int RunSharded(const CliOptions& o, std::ostream& out) {
  ShardedSim sim(o.cfg, o.shards);
  const ShardedSimStats& s = sim.Run();
  const nlohmann::json j = ShardedJson(s, sim);
  if (o.json) {
    out << j.dump(2) << "\n";
  } else {
    PrintShardedText(j, out);
  }
  // A shard other than 0 that suspected a node decided liveness on its own: a violation
  // of "membership once" (engine/member_feed.h).
  return s.invariant_violations > 0 || s.external_suspicions > 0 ? 1 : 0;
}

}  // namespace

ClusterSimConfig RandomFaultMix(uint64_t seed, uint32_t nodes, uint32_t rounds) {
  Rng r(seed ^ 0x5eed5eed5eedull);
  auto pick = [&](std::initializer_list<double> xs) { return xs.begin()[r.Below(xs.size())]; };
  ClusterSimConfig c;
  c.seed = seed;
  c.nodes = nodes;
  c.rounds = rounds;
  c.link.loss = pick({0, 0.05, 0.15, 0.3});
  c.link.dup = pick({0, 0.05, 0.2});
  c.link.reorder = pick({0, 0.1, 0.3});
  c.link.exponential_jitter = r.Chance(0.5);
  c.link.jitter_us = static_cast<TimeUs>(pick({1, 5, 50})) * kUsPerMs;
  c.max_clock_offset_us = static_cast<TimeUs>(pick({0, 0.5, 30})) * kUsPerSec;
  c.max_drift = pick({0, 1e-4, 1e-2});
  c.tick_jitter = pick({0, 0.1, 0.3});
  c.max_packet_bytes = static_cast<size_t>(pick({65507, 1400, 1300}));
  c.tombstone_grace_us = static_cast<TimeUs>(pick({3600, 3, 10})) * kUsPerSec;
  c.keys = static_cast<uint32_t>(pick({4, 16, 64}));
  c.write_rate = pick({1, 4, 12});
  c.delete_ratio = pick({0.1, 0.3, 0.5});
  c.ttl_ratio = pick({0, 0, 0.1});
  c.value_max_bytes = static_cast<uint32_t>(pick({8, 48, 160}));
  c.fanout = static_cast<int>(pick({2, 3}));
  // Catching up is bandwidth-bound: a restarted node refetches every owner's map through
  // max_packet_bytes-sized deltas, so small packets get a longer bound.
  // Short tombstone grace makes lagging replicas reset and refetch whole maps, and fanout
  // 2 with 30% loss thins the exchanges: the harshest mixes need ~100 rounds at 1300 bytes.
  c.converge_bound_rounds = c.max_packet_bytes >= 65507  ? 30
                            : c.max_packet_bytes >= 1400 ? 80
                                                         : 100;
  const uint32_t quiet = c.converge_bound_rounds + 10;
  c.write_stop_round = rounds > quiet + 20 ? rounds - quiet : rounds / 3;
  if (r.Chance(0.4) && c.write_stop_round > 20) {
    c.partition_at = 5 + static_cast<uint32_t>(r.Below(c.write_stop_round / 2));
    c.heal_at =
        std::min(c.write_stop_round, c.partition_at + 5 + static_cast<uint32_t>(r.Below(25)));
    c.partition_groups = static_cast<uint32_t>(pick({2, 3}));
  }
  if (r.Chance(0.4)) {
    c.crash_rate = pick({0.005, 0.01, 0.03});
    c.restart_min_rounds = 2;
    c.restart_max_rounds = 15;
  }
  return c;
}

std::vector<std::string> ClusterFlags() {
  constexpr std::string_view kFiles[] = {"sim/cluster_cli.cc"};
  std::vector<std::string> names = cli::FlagsDefinedIn(kFiles);
  names.insert(names.end(), {"seed", "json"});
  return names;
}

int ClusterCommand(std::ostream& out, std::ostream& err) {
  absl::StatusOr<CliOptions> o = ClusterFromFlags();
  if (!o.ok()) {
    err << "scuttle-sim cluster: " << o.status().message() << "\n";
    return cli::kExitBadFlags;
  }
  if (o->soak > 0) return RunSoak(*o, out, err);
  ClusterSimConfig& c = o->cfg;
  if (o->bug != PlantedBug::kNone) {
    const PlantedBug bug = o->bug;
    const double p = o->bug_p;
    c.tamper = [bug, p](uint32_t, uint32_t, std::vector<uint8_t>* d, Rng& rng) {
      return PlantBug(bug, p, d, rng);
    };
  }
  if (o->shards > 1) return RunSharded(*o, out);
  ClusterSim sim(c);
  const ClusterSimStats& s = sim.Run();
  const nlohmann::json j = StatsJson(s, sim);
  if (o->json) {
    out << j.dump(2) << "\n";
  } else {
    PrintText(j, out);
  }
  return s.invariant_violations > 0 ? 1 : 0;
}

}  // namespace scuttle::sim
