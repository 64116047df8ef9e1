// The simulator with engine shards (issue #18, docs/shards.md): every simulated node runs
// `shards` engines, shard s of a node gossiping only with shard s of the others, keys
// split by ShardOf (engine/shard.h), liveness decided once on shard 0 and published to the
// other shards (engine/member_feed.h).
//
// Shards of different nodes share nothing but the faults that hit a whole node, so the run
// is one ClusterSim per shard stepped round by round in lockstep:
//   - shard 0 draws every fault (crashes, restarts, partitions, heals) from its seed and
//     the others mirror them at the same instant, so a node's shards crash, restart (same
//     new generation) and sit in the same partition group together;
//   - the workload is split: each shard writes write_rate / shards of its own keys;
//   - at the end of each round, each up node's shard 0 publishes its membership changes
//     and that node's other shards apply them: the channel is modelled as one round of lag,
//     and the other shards' dead bound is widened by that lag;
//   - each shard's ClusterSim keeps its own invariant checkers (versions and (gc, max)
//     only rise, no deleted key returns, the seed invariant, bounded convergence, crashed
//     nodes declared dead, live nodes not dead), so every checker covers sharded clusters.
// Pauses are not mirrored: pause_rate must be 0 (a paused process stops all its shards,
// which needs sub-round mirroring).
#ifndef SCUTTLE_SIM_SHARDED_SIM_H_
#define SCUTTLE_SIM_SHARDED_SIM_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "sim/cluster_sim.h"

namespace scuttle::sim {

struct ShardedSimStats {
  uint16_t shards = 0;
  uint64_t invariant_violations = 0;  // summed over shards
  bool converged = false;             // every shard converged
  uint64_t writes = 0;
  uint64_t crashes = 0;    // shard 0's (the node-level faults)
  uint64_t restarts = 0;
  uint64_t membership_records = 0;  // records shard 0 published, summed over nodes
  uint64_t external_suspicions = 0;  // probes started by shards other than 0 (must be 0)
  std::vector<ClusterSimStats> per_shard;
};

class ShardedSim {
 public:
  // REQUIRES: 1 <= shards <= kMaxShards; config.pause_rate == 0.
  ShardedSim(ClusterSimConfig config, uint16_t shards);
  ~ShardedSim();

  const ShardedSimStats& Run();
  void RunRounds(uint32_t n);
  const ShardedSimStats& Finish();

  uint16_t shards() const { return static_cast<uint16_t>(sims_.size()); }
  ClusterSim& shard(uint16_t s) { return *sims_[s]; }
  const ShardedSimStats& stats() const { return stats_; }

 private:
  void MirrorFaults();
  void PublishMembership();

  std::vector<std::unique_ptr<ClusterSim>> sims_;
  std::vector<uint32_t> mirrored_groups_;
  std::vector<MemberRecord> records_;  // scratch
  ShardedSimStats stats_;
  bool finished_ = false;
};

}  // namespace scuttle::sim

#endif  // SCUTTLE_SIM_SHARDED_SIM_H_
