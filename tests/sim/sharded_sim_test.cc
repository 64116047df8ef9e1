// Engine shards in the simulator (issue #18, sim/sharded_sim.h): every invariant checker
// of the cluster simulator, per shard, on nodes that run several engines.
#include "sim/sharded_sim.h"

#include <sstream>
#include <string>

#include "engine/node_state.h"
#include "engine/shard.h"
#include "gtest/gtest.h"
#include "tests/sim/scenario_config.h"

namespace scuttle::sim {
namespace {

std::string Describe(ShardedSim& sim) {
  std::ostringstream os;
  for (uint16_t s = 0; s < sim.shards(); ++s) {
    const ClusterSimStats& st = sim.shard(s).stats();
    os << "shard " << s << ": seed=" << sim.shard(s).config().seed
       << " violations=" << st.invariant_violations << " converged=" << st.converged
       << " writes=" << st.writes << "\n";
    for (const Violation& v : sim.shard(s).checker().recorded()) os << "  " << v.ToString() << "\n";
  }
  return os.str();
}

ClusterSimConfig Base(uint64_t seed, uint32_t nodes, uint32_t rounds) {
  return ScenarioConfig(seed, nodes, rounds, /*keys=*/64, /*write_rate=*/24);
}

// Each shard's engines hold only that shard's keys, and a node's shards share faults.
TEST(ShardedSim, KeysStayInTheirShardAndFaultsHitWholeNodes) {
  ClusterSimConfig c = Base(3, 12, 90);
  c.crash_rate = 0.02;
  c.restart_min_rounds = 2;
  c.restart_max_rounds = 8;
  c.link.loss = 0.05;
  ShardedSim sim(c, 3);
  sim.RunRounds(40);
  for (uint16_t s = 0; s < 3; ++s) {
    for (uint32_t i = 0; i < 12; ++i) {
      EXPECT_EQ(sim.shard(s).up(i), sim.shard(0).up(i));
      EXPECT_EQ(sim.shard(s).generation(i), sim.shard(0).generation(i));
      if (!sim.shard(s).up(i)) continue;
      for (const NodeState* n : sim.shard(s).engine(i).cluster().nodes()) {
        n->ForEachAbove(0, [&](const NodeState::Slot& slot) {
          EXPECT_EQ(ShardOf(n->KeyOf(slot), 3), s) << n->KeyOf(slot);
          return true;
        });
      }
    }
  }
  const ShardedSimStats& st = sim.Run();
  EXPECT_EQ(st.invariant_violations, 0u) << Describe(sim);
  EXPECT_TRUE(st.converged) << Describe(sim);
  EXPECT_GT(st.crashes, 0u);
  EXPECT_EQ(st.external_suspicions, 0u) << "only shard 0 decides liveness";
  for (const ClusterSimStats& ps : st.per_shard) EXPECT_GT(ps.writes, 0u);
}

// The acceptance run: 200 nodes x 4 shards with loss, a partition and crashes
// with restarts: 0 violations, every shard converged, crashed nodes declared dead on every
// shard (the membership checks run on each shard's engines). Nodes across the partition
// are rightly dead while it lasts (counted as false_deaths, on shard 0 as on the others);
// the live-not-dead checker asserts that their refutation wins after the heal.
TEST(ShardedSim, TwoHundredNodesFourShardsLossPartitionRestarts) {
  ClusterSimConfig c = Base(18, 200, 110);
  c.key_nodes = 20;
  c.link.loss = 0.05;
  c.partition_at = 15;
  c.heal_at = 30;
  c.crash_rate = 0.002;
  c.restart_prob = 0.5;  // some stay down: the dead checks run on every shard
  // Probes confirm a crash in a few rounds; the automatic bound (the phi backstop's, ~90
  // rounds) would leave no crashed node to check within the run.
  c.membership.initial_interval_us = 0;
  c.dead_bound_rounds = 25;
  c.restart_min_rounds = 3;
  c.restart_max_rounds = 10;
  ShardedSim sim(c, 4);
  const ShardedSimStats& st = sim.Run();
  EXPECT_EQ(st.invariant_violations, 0u) << Describe(sim);
  EXPECT_TRUE(st.converged) << Describe(sim);
  EXPECT_GT(st.crashes, 0u);
  EXPECT_GT(st.restarts, 0u);
  EXPECT_GT(st.membership_records, 0u);
  EXPECT_EQ(st.external_suspicions, 0u);
  for (const ClusterSimStats& ps : st.per_shard) {
    EXPECT_GT(ps.writes, 0u);
    EXPECT_GT(ps.dropped_partition, 0u);
    EXPECT_GT(ps.dead_checks, 0u);
    EXPECT_GT(ps.detection_intervals.size(), 0u);
  }
}

// One shard is the plain simulator: same seed, same trace.
TEST(ShardedSim, OneShardIsThePlainSimulator) {
  ClusterSimConfig c = Base(5, 8, 40);
  c.link.loss = 0.1;
  ClusterSim plain(c);
  const uint64_t want = plain.Run().trace_hash;
  ShardedSim one(c, 1);
  one.Run();
  EXPECT_EQ(one.shard(0).stats().trace_hash, want);
}

}  // namespace
}  // namespace scuttle::sim
