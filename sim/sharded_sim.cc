#include "sim/sharded_sim.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "engine/shard.h"

namespace scuttle::sim {

ShardedSim::ShardedSim(ClusterSimConfig config, uint16_t shards) {
  assert(shards >= 1 && shards <= kMaxShards && config.pause_rate == 0);
  shards = std::clamp<uint16_t>(shards, 1, kMaxShards);
  config.pause_rate = 0;
  config.shard_count = shards;
  config.write_rate /= shards;
  auto hook = config.configure_engine;
  for (uint16_t s = 0; s < shards; ++s) {
    ClusterSimConfig c = config;
    c.shard = s;
    c.configure_engine = [hook, s, shards](uint32_t node, EngineConfig* e) {
      e->shard = s;
      e->shard_count = shards;
      e->membership.external = s != 0;
      if (hook) hook(node, e);
    };
    if (s > 0) {
      // Faults come from shard 0 (MirrorFaults); the stop rounds and bounds are shard 0's,
      // the dead bound widened by the publication lag.
      const ClusterSimConfig& c0 = sims_[0]->config();
      c.crash_rate = 0;
      c.partition_at = 0;
      c.heal_at = 0;
      c.fault_stop_round = c0.fault_stop_round;
      c.write_stop_round = c0.write_stop_round;
      c.converge_bound_rounds = c0.converge_bound_rounds;
      c.dead_bound_rounds = c0.dead_bound_rounds + 2;
      // Distinct streams for the shard's network and workload.
      c.seed = config.seed * 1000003 + s;
    }
    sims_.push_back(std::make_unique<ClusterSim>(std::move(c)));
  }
  stats_.shards = shards;
}

ShardedSim::~ShardedSim() = default;

// A node's shards are one process: they are up, down and restarted together, with the
// same generation, and in the same partition group.
void ShardedSim::MirrorFaults() {
  ClusterSim& s0 = *sims_[0];
  const bool groups_changed = s0.partition_groups() != mirrored_groups_;
  mirrored_groups_ = s0.partition_groups();
  for (size_t s = 1; s < sims_.size(); ++s) {
    ClusterSim& sim = *sims_[s];
    if (groups_changed) {
      if (mirrored_groups_.empty()) {
        sim.Heal();
      } else {
        sim.Partition(mirrored_groups_);
      }
    }
    for (uint32_t i = 0; i < s0.size(); ++i) {
      const Generation want = s0.generation(i);
      if (sim.up(i) && (!s0.up(i) || sim.generation(i) != want)) sim.Crash(i);
      while (s0.up(i) && !sim.up(i) && sim.generation(i) < want) sim.Restart(i);
    }
  }
}

void ShardedSim::PublishMembership() {
  ClusterSim& s0 = *sims_[0];
  for (uint32_t i = 0; i < s0.size(); ++i) {
    if (!s0.up(i)) continue;
    records_.clear();
    s0.mutable_engine(i).CollectMembership(false, &records_);
    stats_.membership_records += records_.size();
    for (size_t s = 1; s < sims_.size(); ++s) {
      if (sims_[s]->up(i)) sims_[s]->mutable_engine(i).ApplyMembership(records_);
    }
  }
}

void ShardedSim::RunRounds(uint32_t n) {
  for (uint32_t r = 0; r < n; ++r) {
    sims_[0]->RunRounds(1);  // draws this round's faults at its start
    MirrorFaults();          // ... which the other shards take at the same instant
    for (size_t s = 1; s < sims_.size(); ++s) sims_[s]->RunRounds(1);
    PublishMembership();
  }
}

const ShardedSimStats& ShardedSim::Run() {
  const uint32_t rounds = sims_[0]->config().rounds;
  if (sims_[0]->round() < rounds) RunRounds(rounds - sims_[0]->round());
  return Finish();
}

const ShardedSimStats& ShardedSim::Finish() {
  if (finished_) return stats_;
  finished_ = true;
  stats_.converged = true;
  for (size_t s = 0; s < sims_.size(); ++s) {
    ClusterSim& sim = *sims_[s];
    if (s > 0) {
      for (uint32_t i = 0; i < sim.size(); ++i) {
        if (sim.up(i)) stats_.external_suspicions += sim.engine(i).probe_stats().suspicions;
      }
    }
    const ClusterSimStats& st = sim.Finish();
    stats_.invariant_violations += st.invariant_violations;
    stats_.converged = stats_.converged && st.converged;
    stats_.writes += st.writes;
    stats_.per_shard.push_back(st);
  }
  stats_.crashes = stats_.per_shard[0].crashes;
  stats_.restarts = stats_.per_shard[0].restarts;
  return stats_;
}

}  // namespace scuttle::sim
