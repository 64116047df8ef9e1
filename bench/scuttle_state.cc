// scuttle_state: the state-size suite (DESIGN §12, issue #7).
//
// How the engine's per-packet work grows with the state, measured on the engine's own parts
// (NodeState, DeltaBuilder via bench::DeltaEncoder, DeltaApplier, DigestBuilder) in one
// process, next to a memcpy of one 65,507-byte datagram measured in the same run:
//
//   vs keys per node (--keys=1000,...,10000000):
//     fill       NodeState::Set per key while building the owner (ns/key), heap bytes/key
//     build      plan + encode the delta for a peer missing the owner's last 100 versions
//     apply      decode + apply a fresh 100-entry delta (100 random overwrites) to a replica
//                holding the same K keys (ns per entry)
//     gc         GcTombstones over D = min(K/10, 20000) expired tombstones (ns per tombstone)
//   vs nodes (--owners=10,...,10000, 100 keys each):
//     digest     DigestBuilder::Plan for one 65,507-byte packet (partial past ~900 nodes)
//     build      the delta for a peer missing the last 10 versions of 10 owners (the peer
//                digest lists every owner, so only up to 500 owners: one packet's digest)
//     sim        the cluster simulator (sim/cluster_sim.h: every engine, virtual network, no
//                faults, 1 write per node per 10 rounds): wall ms per node per round and
//                gossip bytes per node per round, as N grows
//
// Every timing: warm-up, then --reps batches (min/median/max of the per-op mean per batch).
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/delta_fixture.h"
#include "bench/json_out.h"
#include "engine/cluster.h"
#include "engine/delta_applier.h"
#include "engine/delta_builder.h"
#include "engine/digest.h"
#include "engine/node_state.h"
#include "nlohmann/json.hpp"
#include "sim/flags.h"
#include "wire/absl_compat.h"
#include "wire/packet.h"
#ifdef SCUTTLE_BENCH_HAVE_SIM
#include "sim/cluster_sim.h"
#endif

ABSL_FLAG(bool, quick, false,
          "CI size: --keys=1000,10000 --owners=10,100 --sim_nodes=10,50 --reps=2 "
          "--sim_budget_s=5 and 5 ms batches (each unless given)");
ABSL_FLAG(std::vector<std::string>, keys,
          std::vector<std::string>({"1000", "10000", "100000", "1000000", "10000000"}),
          "keys per node of the vs-keys rows");
ABSL_FLAG(std::vector<std::string>, owners,
          std::vector<std::string>({"10", "100", "1000", "10000"}),
          "owners (100 keys each) of the vs-nodes rows");
ABSL_FLAG(std::vector<std::string>, sim_nodes,
          std::vector<std::string>({"10", "100", "1000", "3000"}),
          "cluster sizes of the simulator rows (rounds until --sim_budget_s)");
ABSL_FLAG(int32_t, reps, 5, "timed batches per row, 1..100");
ABSL_FLAG(double, sim_budget_s, 90, "wall-clock budget of each simulator row, 0.1..36000");
ABSL_FLAG(std::string, out, "", "write the JSON here (default: stdout)");

namespace scuttle::bench {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

json Dist(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return nullptr;
  return {{"min", v.front()}, {"median", v[v.size() / 2]}, {"max", v.back()}, {"n", v.size()}};
}

struct Options {
  std::vector<size_t> keys = {1000, 10000, 100000, 1000000, 10000000};
  std::vector<size_t> owners = {10, 100, 1000, 10000};
  std::vector<size_t> sim_nodes = {10, 100, 1000, 3000};
  int reps = 5;
  double batch_s = 0.05;
  double sim_budget_s = 90;
  std::string out;
};

// Runs op in batches of n (calibrated to ~batch_s), reps times; returns per-op seconds.
std::vector<double> TimeBatches(const Options& o, const std::function<void()>& op) {
  size_t n = 1;
  for (;;) {  // calibrate (doubles as warm-up)
    const auto t0 = Clock::now();
    for (size_t i = 0; i < n; ++i) op();
    const double s = Seconds(t0, Clock::now());
    if (s >= o.batch_s / 4 || n >= (1u << 22)) {
      n = std::max<size_t>(1, static_cast<size_t>(static_cast<double>(n) * o.batch_s / std::max(s, 1e-9)));
      break;
    }
    n *= 4;
  }
  std::vector<double> per_op;
  for (int r = 0; r < o.reps; ++r) {
    const auto t0 = Clock::now();
    for (size_t i = 0; i < n; ++i) op();
    per_op.push_back(Seconds(t0, Clock::now()) / static_cast<double>(n));
  }
  return per_op;
}

std::vector<double> Scale(std::vector<double> v, double f) {
  for (double& x : v) x *= f;
  return v;
}

std::string OwnerName(size_t i) {
  char b[32];
  std::snprintf(b, sizeof(b), "owner-%05zu", i);
  return b;
}

json Memcpy(const Options& o) {
  std::vector<uint8_t> src(wire::kMaxUdpPayloadBytes, 0x5a), dst(wire::kMaxUdpPayloadBytes);
  auto t = TimeBatches(o, [&] {
    std::memcpy(dst.data(), src.data(), src.size());
    asm volatile("" : : "r"(dst.data()) : "memory");
  });
  return Dist(Scale(t, 1e6));
}

json VsKeys(const Options& o, size_t k) {
  std::fprintf(stderr, "scuttle_state: %zu keys per node\n", k);
  const size_t heap0 = HeapBytesInUse();
  auto owner_cluster = std::make_unique<Cluster>("owner-000", 1);
  NodeState& owner = owner_cluster->self();
  const auto f0 = Clock::now();
  FillOwner(owner, k);
  const double fill_s = Seconds(f0, Clock::now());
  const double heap_per_key = static_cast<double>(HeapBytesInUse() - heap0) / static_cast<double>(k);

  // Build: a peer missing the last 100 versions.
  DeltaEncoder enc;
  const Version missing = std::min<Version>(100, owner.max_version());
  PeerDigest peer({{&owner, owner.max_version() - missing}});
  size_t entries = 0;
  auto build = TimeBatches(o, [&] {
    auto p = enc.Encode(*owner_cluster, peer.packet());
    if (p.empty()) std::abort();
    entries = p.size();
  });

  // Apply: the replica holds the same K keys; the owner overwrites 100 random keys per delta.
  auto replica_cluster = std::make_unique<Cluster>("replica", 1);
  bool replaced = false;
  NodeState* replica = replica_cluster->Upsert("owner-000", 1, &replaced);
  FillReplica(*replica, k);
  // The default Limits cap a node at 4M keys (scuttled --max_keys_per_node); lift it so the
  // 10M row measures the data structures rather than the refusal.
  Limits limits;
  limits.max_keys_per_node = 64 << 20;
  DeltaApplier applier(replica_cluster.get(), limits, nullptr);
  uint64_t rng = 12345, round = 0;
  auto next = [&] {
    rng += 0x9e3779b97f4a7c15ull;
    uint64_t z = rng;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  std::vector<std::vector<uint8_t>> batch;
  std::vector<double> apply_ns;
  const int apply_batches = o.reps;
  const size_t per_batch = 64;
  char key[kKeyBytes], value[kValueBytes];
  uint64_t applied_entries = 0;
  for (int b = -1; b < apply_batches; ++b) {  // b = -1: warm-up
    batch.clear();
    Version planned = replica->max_version();
    for (size_t d = 0; d < per_batch; ++d) {
      for (int w = 0; w < 100; ++w) {
        const uint64_t i = next() % k;
        MakeKey(i, key);
        MakeValue(i, ++round, value);
        owner.Set({key, kKeyBytes}, {value, kValueBytes});
      }
      PeerDigest p({{&owner, planned}});
      auto pkt = enc.Encode(*owner_cluster, p.packet());
      if (pkt.empty()) std::abort();
      planned = owner.max_version();
      batch.emplace_back(pkt.begin(), pkt.end());
    }
    const uint64_t e0 = applier.stats().entries_applied;
    const auto t0 = Clock::now();
    for (const auto& dg : batch) {
      wire::DecodedPacket pkt;
      wire::DropReason reason;
      if (!wire::Decode(dg, wire::DecodeLimits{}, &pkt, &reason)) std::abort();
      applier.Apply(pkt, 0);
    }
    const double s = Seconds(t0, Clock::now());
    const uint64_t n = applier.stats().entries_applied - e0;
    if (b >= 0 && n > 0) apply_ns.push_back(s * 1e9 / static_cast<double>(n));
    if (b >= 0) applied_entries += n;
  }
  if (replica->max_version() != owner.max_version()) {
    std::fprintf(stderr, "scuttle_state: replica did not keep up (%llu vs %llu)\n",
                 static_cast<unsigned long long>(replica->max_version()),
                 static_cast<unsigned long long>(owner.max_version()));
  }

  // GC: D tombstones, all expired.
  const size_t d = std::min<size_t>(std::max<size_t>(k / 10, 1), 20000);
  std::vector<double> gc_ns;
  const TimeUs grace = 1000;
  for (int r = 0; r < o.reps && (static_cast<size_t>(r) + 1) * d <= k; ++r) {
    for (size_t i = static_cast<size_t>(r) * d; i < (static_cast<size_t>(r) + 1) * d; ++i) {
      MakeKey(i, key);
      (void)owner.Delete({key, kKeyBytes}, /*now_us=*/10);
    }
    const auto t0 = Clock::now();
    const size_t removed = owner.GcTombstones(/*now_us=*/10 + grace, grace, UINT64_MAX);
    const double s = Seconds(t0, Clock::now());
    if (removed > 0) gc_ns.push_back(s * 1e9 / static_cast<double>(removed));
  }

  json j = {{"keys", k},
            {"fill_ns_per_key", fill_s * 1e9 / static_cast<double>(k)},
            {"heap_bytes_per_key", heap_per_key},
            {"build_missing_versions", missing},
            {"build_datagram_bytes", entries},
            {"build_us", Dist(Scale(build, 1e6))},
            {"apply_ns_per_entry", Dist(apply_ns)},
            {"apply_entries_measured", applied_entries},
            {"gc_tombstones_per_rep", d},
            {"gc_ns_per_tombstone", Dist(gc_ns)},
            {"memcpy_us", Memcpy(o)},
            {"rss_bytes", RssBytes()}};
  return j;
}

json VsOwners(const Options& o, size_t owners) {
  std::fprintf(stderr, "scuttle_state: %zu owners x 100 keys\n", owners);
  constexpr size_t kKeys = 100;
  auto cluster = std::make_unique<Cluster>(OwnerName(0), 1);
  std::vector<NodeState*> ns = {&cluster->self()};
  for (size_t i = 1; i < owners; ++i) {
    bool replaced = false;
    ns.push_back(cluster->Upsert(OwnerName(i), 1, &replaced));
  }
  for (NodeState* n : ns) FillOwner(*n, kKeys);

  DigestBuilder db;
  size_t planned = 0;
  auto digest = TimeBatches(o, [&] { planned = db.Plan(*cluster, wire::kMaxUdpPayloadBytes - 1024); });

  json build = nullptr;
  size_t build_bytes = 0;
  if (owners <= 500) {
    std::vector<PeerDigest::Row> rows;
    for (size_t i = 0; i < ns.size(); ++i) {
      rows.push_back({ns[i], ns[i]->max_version() - (i < 10 ? 10 : 0)});
    }
    PeerDigest peer(rows);
    DeltaEncoder enc;
    build = Dist(Scale(TimeBatches(o, [&] {
                         auto p = enc.Encode(*cluster, peer.packet());
                         if (p.empty()) std::abort();
                         build_bytes = p.size();
                       }),
                       1e6));
  }
  json j = {{"nodes", owners},
            {"keys_per_node", kKeys},
            {"digest_us", Dist(Scale(digest, 1e6))},
            {"digest_planned_bytes", planned},
            {"build_us", build},
            {"build_datagram_bytes", build_bytes}};
  return j;
}

#ifdef SCUTTLE_BENCH_HAVE_SIM
json Sim(const Options& o, size_t n) {
  std::fprintf(stderr, "scuttle_state: simulator, %zu nodes\n", n);
  sim::ClusterSimConfig c;
  c.nodes = static_cast<uint32_t>(n);
  c.seed = 3;
  c.rounds = 1000000;
  c.check_invariants = false;
  c.write_rate = static_cast<double>(n) / 10;
  c.keys = 64;
  c.link.base_delay_us = 200;
  c.link.jitter_us = 300;
  sim::ClusterSim s(c);
  // Bootstrap: rounds until membership has spread (not measured), then measured rounds.
  const uint32_t warm = n >= 5000 ? 5 : 10;
  const auto w0 = Clock::now();
  s.RunRounds(warm);
  const double warm_s = Seconds(w0, Clock::now());
  const uint64_t b0 = s.stats().bytes_sent;
  const auto t0 = Clock::now();
  uint32_t rounds = 0;
  const double budget = o.sim_budget_s;
  while (rounds < 20 && Seconds(t0, Clock::now()) < budget) {
    s.RunRounds(1);
    ++rounds;
  }
  const double secs = Seconds(t0, Clock::now());
  const uint64_t bytes = s.stats().bytes_sent - b0;
  return {{"nodes", n},
          {"rounds_measured", rounds},
          {"warmup_rounds", warm},
          {"warmup_s", warm_s},
          {"ms_per_node_round", secs * 1e3 / static_cast<double>(rounds) / static_cast<double>(n)},
          {"bytes_per_node_round",
           static_cast<double>(bytes) / static_cast<double>(rounds) / static_cast<double>(n)}};
}
#endif

std::vector<size_t> ListFlag(const absl::Flag<std::vector<std::string>>& flag,
                             std::string_view name, std::vector<size_t> quick_value) {
  if (absl::GetFlag(FLAGS_quick) && !cli::FlagSet(name)) return quick_value;
  absl::StatusOr<std::vector<int64_t>> v = cli::IntList(name, absl::GetFlag(flag), 1, 100000000);
  if (!v.ok()) cli::BadFlag("scuttle_state", SV(v.status().message()));
  return std::vector<size_t>(v->begin(), v->end());
}

int Main(int argc, char** argv) {
  constexpr std::string_view kFiles[] = {"bench/scuttle_state.cc"};
  cli::ParseFlagsOrExit(argc, argv, "scuttle_state",
                        "usage: scuttle_state [flags]\n  delta build/apply/GC cost vs keys per "
                        "node and vs nodes (+ the simulator)",
                        cli::FlagsDefinedIn(kFiles));
  Options o;
  const bool quick = absl::GetFlag(FLAGS_quick);
  o.keys = ListFlag(FLAGS_keys, "keys", {1000, 10000});
  o.owners = ListFlag(FLAGS_owners, "owners", {10, 100});
  o.sim_nodes = ListFlag(FLAGS_sim_nodes, "sim_nodes", {10, 50});
  o.reps = cli::QuickOr(quick, FLAGS_reps, 2);
  if (quick) o.batch_s = 0.005;
  o.sim_budget_s = cli::QuickOr(quick, FLAGS_sim_budget_s, 5.0);
  o.out = absl::GetFlag(FLAGS_out);
  for (absl::Status st : {cli::InRange("reps", o.reps, 1, 100),
                          cli::InRange("sim_budget_s", o.sim_budget_s, 0.1, 36000.0)}) {
    if (!st.ok()) cli::BadFlag("scuttle_state", SV(st.message()));
  }
  json vk = json::array(), vn = json::array();
  for (size_t k : o.keys) vk.push_back(VsKeys(o, k));
  std::vector<json> sims;
#ifdef SCUTTLE_BENCH_HAVE_SIM
  for (size_t n : o.sim_nodes) sims.push_back(Sim(o, n));
#endif
  std::vector<size_t> all = o.owners;
  for (size_t n : o.sim_nodes)
    if (std::find(all.begin(), all.end(), n) == all.end()) all.push_back(n);
  std::sort(all.begin(), all.end());
  for (size_t n : all) {
    json row = std::find(o.owners.begin(), o.owners.end(), n) != o.owners.end()
                   ? VsOwners(o, n)
                   : json{{"nodes", n}, {"keys_per_node", 100}, {"build_us", nullptr}, {"digest_us", nullptr}};
    for (const json& s : sims) {
      if (s["nodes"].get<size_t>() == n) {
        row["sim_ms_per_node_round"] = s["ms_per_node_round"];
        row["sim_bytes_per_node_round"] = s["bytes_per_node_round"];
        row["sim"] = s;
      }
    }
    vn.push_back(row);
  }
  json doc = {{"suite", "state"},
              {"config", {{"reps", o.reps}, {"batch_s", o.batch_s}, {"key_bytes", kKeyBytes},
                          {"value_bytes", kValueBytes}}},
              {"vs_keys", vk},
              {"vs_nodes", vn}};
  return WriteJson(doc, o.out);
}

}  // namespace
}  // namespace scuttle::bench

int main(int argc, char** argv) { return scuttle::bench::Main(argc, argv); }
