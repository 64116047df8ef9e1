// ClusterSim: crashes, restarts, pauses, partitions and the random fault schedule (the
// planted protocol bugs the checkers must catch are in cluster_faults.h).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sim/cluster_sim.h"
#include "sim/cluster_sim_node.h"
#include "wire/absl_compat.h"

namespace scuttle::sim {

using cluster_sim_internal::Mix;

// ---- Faults ------------------------------------------------------------------------------

void ClusterSim::Crash(uint32_t node) {
  Node& n = *nodes_[node];
  if (n.engine == nullptr) return;
  if (config_.check_invariants) checker_->CheckOwnerModel(node, n.engine->self());
  AbsorbStats(*n.engine);
  n.engine.reset();
  n.down_since = round_;
  n.crashed_at_us = now_us_;
  n.restart_round = -1;
  ++stats_.crashes;
  Hash(Mix(0xc0ffee) ^ node);
  MarkActivity();
}

void ClusterSim::Restart(uint32_t node) {
  Node& n = *nodes_[node];
  if (n.engine != nullptr) return;
  ++n.gen;  // DESIGN §1: a restart takes a new, larger generation
  n.fresh_live.clear();
  StartEngine(n);
  ScheduleTick(n, static_cast<TimeUs>(rng_.Below(config_.gossip_interval_us)));
  n.restart_round = -1;
  ++stats_.restarts;
  Hash(Mix(0xbeef) ^ node);
  MarkActivity();
}

void ClusterSim::Pause(uint32_t node, TimeUs duration_us) {
  Node& n = *nodes_[node];
  if (n.engine == nullptr) return;
  n.paused_until_us = std::max(n.paused_until_us, now_us_ + duration_us);
  ++stats_.pauses;
  Hash(Mix(0x9a05e) ^ node);
  MarkActivity();
}

bool ClusterSim::paused(uint32_t node) const { return now_us_ < nodes_[node]->paused_until_us; }

// Names are "n%05u": the index is the number.
void ClusterSim::OnDeadEvent(uint32_t /*observer*/, const NodeState& node) {
  const uint32_t x = static_cast<uint32_t>(std::atoi(node.name().data() + 1));
  if (x >= nodes_.size()) return;
  const Node& n = *nodes_[x];
  if (node.generation() != n.gen) return;  // an older incarnation: rightly dead
  if (n.engine == nullptr) {
    stats_.detection_intervals.push_back(static_cast<double>(now_us_ - n.crashed_at_us) /
                                         static_cast<double>(config_.gossip_interval_us));
  } else if (now_us_ < n.paused_until_us + 3 * config_.gossip_interval_us) {
    ++stats_.paused_declared_dead;
  } else {
    ++stats_.false_deaths;
  }
}

void ClusterSim::Partition(const std::vector<uint32_t>& group_of_node) {
  group_ = group_of_node;
  group_.resize(nodes_.size(), 0);
  MarkActivity();
}

void ClusterSim::Heal() {
  group_.clear();
  last_heal_round_ = round_;
  MarkActivity();
}

bool ClusterSim::Partitioned(uint32_t a, uint32_t b) const {
  return !group_.empty() && group_[a] != group_[b];
}

void ClusterSim::RandomFaults() {
  const ClusterSimConfig& c = config_;
  if (c.partition_at > 0 && round_ == c.partition_at) {
    std::vector<uint32_t> perm(nodes_.size());
    for (uint32_t i = 0; i < perm.size(); ++i) perm[i] = i;
    for (uint32_t i = 0; i + 1 < perm.size(); ++i) {
      std::swap(perm[i], perm[i + rng_.Below(perm.size() - i)]);
    }
    std::vector<uint32_t> groups(nodes_.size());
    for (uint32_t i = 0; i < perm.size(); ++i) {
      groups[perm[i]] = i % std::max<uint32_t>(c.partition_groups, 1);
    }
    Partition(groups);
  }
  if (c.heal_at > 0 && round_ == c.heal_at) Heal();
  for (auto& n : nodes_) {
    if (n->engine == nullptr && n->restart_round >= 0 && n->restart_round <= round_) {
      Restart(n->index);
    }
  }
  if (c.pause_rate > 0 && round_ > 0 && round_ < c.fault_stop_round) {
    for (auto& n : nodes_) {
      if (n->engine != nullptr && !paused(n->index) && rng_.Chance(c.pause_rate)) {
        Pause(n->index, c.pause_us);
      }
    }
  }
  if (c.crash_rate <= 0 || round_ >= c.fault_stop_round || round_ == 0) return;
  uint32_t down = 0;
  for (auto& n : nodes_) down += n->engine == nullptr;
  const uint32_t max_down =
      static_cast<uint32_t>(c.max_down_fraction * static_cast<double>(nodes_.size()));
  for (auto& n : nodes_) {
    if (n->engine == nullptr || !rng_.Chance(c.crash_rate) || down >= max_down) continue;
    Crash(n->index);
    ++down;
    if (rng_.Chance(c.restart_prob)) {
      const uint32_t span =
          c.restart_max_rounds - std::min(c.restart_min_rounds, c.restart_max_rounds);
      n->restart_round = round_ + c.restart_min_rounds + rng_.Below(span + 1);
    }
  }
}

}  // namespace scuttle::sim
