#include "sim/cluster_cli.h"

#include <sys/resource.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "sim/flags.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "sim/cluster_faults.h"
#include "wire/absl_compat.h"

namespace scuttle::sim {
namespace {

constexpr int kUsageError = 2;

using Flag = sim::FlagSpec;
using sim::ParseFlags;

template <typename T>
std::function<absl::Status(std::string_view)> Int(T* out, uint64_t lo, uint64_t hi) {
  return [=](std::string_view v) -> absl::Status {
    uint64_t x = 0;
    if (!absl::SimpleAtoi(AV(v), &x) || x < lo || x > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", AV(v), "' is not an integer in [", lo, ", ", hi, "]"));
    }
    *out = static_cast<T>(x);
    return absl::OkStatus();
  };
}

std::function<absl::Status(std::string_view)> Real(double* out, double lo, double hi) {
  return [=](std::string_view v) -> absl::Status {
    double x = 0;
    if (!absl::SimpleAtod(AV(v), &x) || !(x >= lo && x <= hi)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", AV(v), "' is not a number in [", lo, ", ", hi, "]"));
    }
    *out = x;
    return absl::OkStatus();
  };
}

std::function<absl::Status(std::string_view)> Bool(bool* out) {
  return [=](std::string_view) {
    *out = true;
    return absl::OkStatus();
  };
}

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
  bool reorder = false;
  bool exp_jitter = false;
  bool json = false;
  bool no_confirm = false;
  double pause_ms = 5000;
  bool no_check = false;
  bool no_frontier_gc = false;
  bool help = false;
  uint32_t soak = 0;
  double delay_ms = 2, jitter_ms = 3, skew_ms = 0, drift_ppm = 0, grace_s = 3600;
  std::string bug = "none";
  double bug_p = 0.2;
};

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

int ClusterCommand(std::span<const std::string_view> args, std::ostream& out, std::ostream& err) {
  CliOptions o;
  ClusterSimConfig& c = o.cfg;
  c.rounds = 100;
  const Flag flags[] = {
      {"nodes", "N", "cluster size", Int(&c.nodes, 1, 1u << 20)},
      {"seed", "S", "master seed: one seed reproduces a run bit for bit",
       Int(&c.seed, 0, UINT64_MAX)},
      {"rounds", "R", "gossip rounds (gossip intervals of virtual time)",
       Int(&c.rounds, 1, 1u << 24)},
      {"loss", "P", "per-datagram loss probability", Real(&c.link.loss, 0, 1)},
      {"dup", "P", "per-datagram duplication probability", Real(&c.link.dup, 0, 1)},
      {"reorder", "", "reorder: 10% of datagrams get up to 300 ms extra delay", Bool(&o.reorder)},
      {"delay-ms", "MS", "base one-way delay (default 2)", Real(&o.delay_ms, 0, 60000)},
      {"jitter-ms", "MS", "delay jitter (default 3)", Real(&o.jitter_ms, 0, 60000)},
      {"exp-jitter", "", "exponential instead of uniform jitter", Bool(&o.exp_jitter)},
      {"partition-at", "R1", "split the cluster at round R1", Int(&c.partition_at, 1, 1u << 24)},
      {"heal-at", "R2", "heal the partition at round R2 (> R1)", Int(&c.heal_at, 1, 1u << 24)},
      {"partition-groups", "G", "number of partition groups (default 2)",
       Int(&c.partition_groups, 2, 1u << 20)},
      {"crash-rate", "P", "per node per round crash probability", Real(&c.crash_rate, 0, 1)},
      {"pause-rate", "P", "per node per round probability of a pause (SIGSTOP-like)",
       Real(&c.pause_rate, 0, 1)},
      {"pause-ms", "MS", "length of each pause (default 5000)", Real(&o.pause_ms, 1, 1e7)},
      {"no-confirm", "", "phi-only detection (no probes, verdicts or refutations)",
       Bool(&o.no_confirm)},
      {"ignore-refutation", "", "planted bug: dead stays dead within a generation",
       Bool(&c.membership.testonly_ignore_refutation)},
      {"restart-prob", "P", "probability a crashed node restarts (default 0.75)",
       Real(&c.restart_prob, 0, 1)},
      {"keys", "K", "keys per owner", Int(&c.keys, 1, 1u << 24)},
      {"keys-nodes", "M", "only M evenly spaced owners write (default: every node)",
       Int(&c.key_nodes, 1, 1u << 20)},
      {"fresh-keys", "", "each set a new key, each delete one of the owner's live keys",
       Bool(&c.fresh_keys)},
      {"write-rate", "W", "writes per round across the cluster", Real(&c.write_rate, 0, 1e7)},
      {"delete-ratio", "D", "fraction of writes that delete", Real(&c.delete_ratio, 0, 1)},
      {"ttl-ratio", "P", "fraction of sets with a TTL", Real(&c.ttl_ratio, 0, 1)},
      {"value-bytes", "B", "max value size (default 48)", Int(&c.value_max_bytes, 1, 60 * 1024)},
      {"max-packet-bytes", "B", "engine max_packet_bytes (default 65507)",
       Int(&c.max_packet_bytes, 256, 65507)},
      {"fanout", "F", "gossip fanout (default 3)", Int(&c.fanout, 1, 64)},
      {"tombstone-grace-s", "S", "tombstone GC grace in seconds (default 3600)",
       Real(&o.grace_s, 0, 1e9)},
      {"clock-skew-ms", "MS", "max node clock offset", Real(&o.skew_ms, 0, 1e8)},
      {"drift-ppm", "PPM", "max node clock drift", Real(&o.drift_ppm, 0, 1e5)},
      {"write-start", "R", "first round with writes (default 0)",
       Int(&c.write_start_round, 0, 1u << 24)},
      {"write-stop", "R", "writes stop before round R (default rounds - converge bound)",
       Int(&c.write_stop_round, 1, 1u << 24)},
      {"stop-when-converged", "", "end the run once converged after the last write/fault",
       Bool(&c.stop_when_converged)},
      {"no-frontier-gc", "", "tombstones go by grace only (EngineConfig::frontier_gc off)",
       Bool(&o.no_frontier_gc)},
      {"converge-bound", "R", "rounds allowed to converge after the last fault/write (default 40)",
       Int(&c.converge_bound_rounds, 1, 1u << 24)},
      {"dead-bound", "R", "rounds within which a crash must be detected (default from detector)",
       Int(&c.dead_bound_rounds, 1, 1u << 24)},
      {"max-inflight", "N", "bound on in-flight datagrams (default 1048576)",
       Int(&c.max_inflight_packets, 1, 1u << 30)},
      {"strict-seed-invariant", "", "literal full-history seed-000 replay",
       Bool(&c.strict_seed_invariant)},
      {"stale-regression-is-violation", "", "count stale regressions as violations",
       Bool(&c.stale_regression_is_violation)},
      {"no-check", "", "skip the per-packet invariant checkers", Bool(&o.no_check)},
      {"plant-bug", "NAME", "none|drop-tombstones|gap-applied|inflate-max",
       [&](std::string_view v) {
         o.bug = std::string(v);
         return ParsePlantedBug(v).status();
       }},
      {"plant-bug-p", "P", "probability a delta part is corrupted (default 0.2)",
       Real(&o.bug_p, 0, 1)},
      {"soak", "N", "run N consecutive seeds from --seed with random fault mixes",
       Int(&o.soak, 1, 1u << 30)},
      {"json", "", "print JSON", Bool(&o.json)},
      {"help", "", "this text", Bool(&o.help)},
  };
  if (absl::Status s = ParseFlags(args, flags); !s.ok()) {
    err << "scuttle-sim cluster: " << s.message() << " (see scuttle-sim cluster --help)\n";
    return kUsageError;
  }
  if (o.help) {
    out << "usage: scuttle-sim cluster [flags]\n  many engines on a virtual clock and a faulty "
           "simulated network, with invariant checkers\nflags:\n";
    for (const Flag& f : flags) {
      out << absl::StrFormat("  --%-26s %s\n", AV(absl::StrCat(AV(f.name), " ", AV(f.value))),
                             AV(f.help));
    }
    return 0;
  }
  if ((c.partition_at > 0) != (c.heal_at > 0) ||
      (c.partition_at > 0 && c.heal_at <= c.partition_at)) {
    err << "scuttle-sim cluster: --partition-at and --heal-at go together, with R2 > R1\n";
    return kUsageError;
  }
  if (c.heal_at >= c.rounds) {
    err << "scuttle-sim cluster: --heal-at must be below --rounds\n";
    return kUsageError;
  }
  c.link.reorder = o.reorder ? 0.1 : 0;
  c.link.base_delay_us = static_cast<TimeUs>(o.delay_ms * kUsPerMs);
  c.link.jitter_us = static_cast<TimeUs>(o.jitter_ms * kUsPerMs);
  c.link.exponential_jitter = o.exp_jitter;
  c.pause_us = static_cast<TimeUs>(o.pause_ms * kUsPerMs);
  c.membership.confirm = !o.no_confirm;
  c.tombstone_grace_us = static_cast<TimeUs>(o.grace_s * kUsPerSec);
  c.max_clock_offset_us = static_cast<TimeUs>(o.skew_ms * kUsPerMs);
  c.max_drift = o.drift_ppm * 1e-6;
  c.check_invariants = !o.no_check;
  c.frontier_gc = !o.no_frontier_gc;
  c.value_min_bytes = std::min<uint32_t>(c.value_min_bytes, c.value_max_bytes);
  if (o.soak > 0) return RunSoak(o, out, err);
  const PlantedBug bug = *ParsePlantedBug(o.bug);
  if (bug != PlantedBug::kNone) {
    const double p = o.bug_p;
    c.tamper = [bug, p](uint32_t, uint32_t, std::vector<uint8_t>* d, Rng& rng) {
      return PlantBug(bug, p, d, rng);
    };
  }
  ClusterSim sim(c);
  const ClusterSimStats& s = sim.Run();
  const nlohmann::json j = StatsJson(s, sim);
  if (o.json) {
    out << j.dump(2) << "\n";
  } else {
    PrintText(j, out);
  }
  return s.invariant_violations > 0 ? 1 : 0;
}

int RunClusterCommand(int argc, char** argv) {
  std::vector<std::string_view> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return ClusterCommand(args, std::cout, std::cerr);
}

}  // namespace scuttle::sim
