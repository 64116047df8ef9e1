// ClusterSim: the convergence and membership checks, and the final report (stats).
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

using cluster_sim_internal::WallSeconds;

namespace {

constexpr uint64_t kFullRecheckPairs = uint64_t{2000} * 2000;

}  // namespace

bool ClusterSim::PairConverged(uint32_t replica, uint32_t owner) const {
  const Node& r = *nodes_[replica];
  const Node& o = *nodes_[owner];
  if (r.engine == nullptr || o.engine == nullptr || replica == owner) return true;
  const NodeState* s = r.engine->FindNode(o.name);
  return s != nullptr && s->generation() == o.gen &&
         s->max_version() == o.engine->self().max_version();
}

bool ClusterSim::Converged() const {
  const uint64_t n = nodes_.size();
  const uint64_t pairs = n * n;
  if (witness_ >= pairs) witness_ = 0;
  // Row-major over (replica, owner) pairs, starting at the last failure and wrapping.
  for (uint64_t k = 0; k < pairs; ++k) {
    const uint64_t p = (witness_ + k) % pairs;
    if (!PairConverged(static_cast<uint32_t>(p / n), static_cast<uint32_t>(p % n))) {
      witness_ = p;
      return false;
    }
  }
  return true;
}

// Called at the end of every round: convergence is measured from the last round with a
// write, crash, restart, partition, heal or TTL expiry.
void ClusterSim::CheckConvergence() {
  if (last_activity_round_ == round_) {
    stats_.converged = false;
    stats_.rounds_to_converge = -1;
    return;
  }
  // Staying converged costs a full pass over the N² pairs; past 2,000 nodes (seconds per
  // pass) it is re-verified every 8 rounds and at Finish().
  const uint64_t n = nodes_.size();
  if (stats_.converged && n * n > kFullRecheckPairs && (round_ - last_activity_round_) % 8 != 0) {
    return;
  }
  if (!Converged()) {
    stats_.converged = false;
    stats_.rounds_to_converge = -1;
    return;
  }
  if (stats_.converged) return;
  stats_.converged = true;
  stats_.rounds_to_converge = round_ - last_activity_round_;
  if (!config_.check_invariants) return;
  // Equal max_versions imply equal maps under the seed invariant; verify it outright once.
  for (const auto& r : nodes_) {
    if (r->engine == nullptr) continue;
    for (const auto& o : nodes_) {
      if (o->engine == nullptr || o.get() == r.get()) continue;
      checker_->CompareMaps(r->name, *r->engine->FindNode(o->name), o->engine->self(),
                            ViolationKind::kSeedInvariant);
    }
  }
}

// A node down for dead_bound_rounds must be dead (or left, or forgotten) at every up node.
// The bound runs from the latest of: the crash; the observer's own (re)start (it hears of
// the crashed node afresh, its detector starting from the initial interval); the last heal
// (the crashed node's last heartbeats, relayed late across the healed partition, are fresh
// arrivals to the detector). Checked once when a pair reaches the bound and at the end.
void ClusterSim::CheckMembership(bool final_check) {
  for (const auto& x : nodes_) {
    if (x->engine != nullptr) continue;
    for (const auto& r : nodes_) {
      if (r->engine == nullptr) continue;
      const uint32_t down_for =
          round_ - std::max({x->down_since, r->started_round, last_heal_round_});
      if (down_for < config_.dead_bound_rounds) continue;
      if (!final_check && down_for != config_.dead_bound_rounds) continue;
      ++stats_.dead_checks;
      const NodeState* s = r->engine->FindNode(x->name);
      if (s == nullptr || s->generation() > x->gen) continue;
      const MemberState st = s->liveness.state;
      if (st == MemberState::kDead || st == MemberState::kLeft) continue;
      Violation v;
      v.kind = ViolationKind::kNotDeclaredDead;
      v.seed = config_.seed;
      v.round = round_;
      v.replica = r->name;
      v.owner = x->name;
      v.generation = s->generation();
      v.detail = absl::StrCat("down since round ", x->down_since, " (", down_for, " rounds, bound ",
                              config_.dead_bound_rounds, ") but ", MemberStateName(st));
      checker_->Record(std::move(v));
    }
  }
}

// A node up, not paused and silent-free for live_bound_rounds must not be dead at any up
// observer that has held that verdict for live_bound_rounds too: its refutation (a higher
// heartbeat, pushed and gossiped) must have won.
void ClusterSim::CheckLiveNotDead() {
  const TimeUs bound = static_cast<TimeUs>(config_.live_bound_rounds) * config_.gossip_interval_us;
  for (const auto& x : nodes_) {
    if (x->engine == nullptr || now_us_ < x->paused_until_us + bound) continue;
    if (round_ - x->started_round < config_.live_bound_rounds) continue;
    if (!group_.empty() || round_ - last_heal_round_ < config_.live_bound_rounds) continue;
    for (const auto& r : nodes_) {
      if (r->engine == nullptr || r.get() == x.get() || now_us_ < r->paused_until_us) continue;
      const NodeState* s = r->engine->FindNode(x->name);
      if (s == nullptr || s->generation() != x->gen) continue;
      if (s->liveness.state != MemberState::kDead) continue;
      if (LocalTime(*r, now_us_) - s->liveness.state_since_us < bound) continue;
      Violation v;
      v.kind = ViolationKind::kLiveDeclaredDead;
      v.seed = config_.seed;
      v.round = round_;
      v.replica = r->name;
      v.owner = x->name;
      v.generation = s->generation();
      v.detail = absl::StrCat("up and responsive for ", config_.live_bound_rounds,
                              "+ rounds but dead here since ", s->liveness.state_since_us);
      checker_->Record(std::move(v));
    }
  }
}

void ClusterSim::AbsorbStats(const Engine& e) {
  for (size_t i = 0; i < kPartOutcomeCount; ++i) stats_.parts[i] += e.apply_stats().parts[i];
  stats_.entries_applied += e.apply_stats().entries_applied;
  stats_.deltas_truncated += e.build_stats().truncated;
  stats_.resets_sent += e.build_stats().resets;
  stats_.tombstones_gced += e.stats().tombstones_gced;
  stats_.tombstones_gced_frontier += e.stats().tombstones_gced_frontier;
  stats_.keys_expired += e.stats().keys_expired;
  for (size_t i = 0; i < kEngineDropCount; ++i) stats_.engine_drops[i] += e.stats().engine_drops[i];
  const ProbeStats& p = e.probe_stats();
  stats_.refutations_sent += p.refutations_sent;
  stats_.refutations_applied += p.refutations_applied;
  stats_.probes_started += p.suspicions;
  stats_.confirmed_dead += p.confirmed_dead;
  stats_.verdicts_applied += p.verdicts_applied;
  stats_.suspicions_from_digest += p.suspicions_from_digest;
  stats_.verdict_pushes += p.verdict_pushes;
  stats_.verdict_feedback_knew += p.verdict_feedback_knew;
  stats_.verdict_feedback_new += p.verdict_feedback_new;
  stats_.verdicts_dropped_full += p.verdicts_dropped_full;
  stats_.verdict_cycles += p.verdict_cycles;
  stats_.late_ticks += p.late_ticks;
  stats_.quiet_rounds += e.stats().quiet_rounds;
  stats_.syn_unanswered += e.stats().syn_unanswered;
  for (size_t t = 0; t < wire::kMessageTypeCount; ++t) {
    stats_.packets_by_type[t] += e.stats().packets_out[t];
    stats_.bytes_by_type[t] += e.stats().bytes_out[t];
  }
  for (size_t i = 0; i < wire::kDropReasonCount; ++i) {
    stats_.decode_drops[i] += e.stats().decode_drops[i];
  }
}

const ClusterSimStats& ClusterSim::Finish() {
  if (finished_) return stats_;
  finished_ = true;
  if (round_ > 0) checker_->set_round(round_ - 1);
  if (stats_.converged && !Converged()) {
    stats_.converged = false;
    stats_.rounds_to_converge = -1;
  }
  for (const auto& n : nodes_) {
    if (n->engine == nullptr) continue;
    if (config_.check_invariants) checker_->CheckOwnerModel(n->index, n->engine->self());
    AbsorbStats(*n->engine);
  }
  if (round_ > 0) {
    --round_;  // the checks describe the last round run
    CheckMembership(true);
    CheckLiveNotDead();
    ++round_;
  }
  stats_.rounds = round_;
  stats_.quiet_round = last_activity_round_ + 1;
  // Bounded convergence: once the quiet window is at least the bound, not having
  // converged within it is a violation.
  const uint32_t quiet = round_ > last_activity_round_ + 1 ? round_ - last_activity_round_ - 1 : 0;
  const bool late = stats_.converged &&
                    stats_.rounds_to_converge > static_cast<int64_t>(config_.converge_bound_rounds);
  if ((!stats_.converged && quiet >= config_.converge_bound_rounds) || late) {
    Violation v;
    v.kind = ViolationKind::kNotConverged;
    v.seed = config_.seed;
    v.round = round_ > 0 ? round_ - 1 : 0;
    v.detail = late ? absl::StrCat("converged only after ", stats_.rounds_to_converge,
                                   " quiet rounds; bound ", config_.converge_bound_rounds)
                    : absl::StrCat("not converged ", quiet, " rounds after the last fault/write");
    for (const auto& r : nodes_) {
      if (r->engine == nullptr || !v.replica.empty()) continue;
      for (const auto& o : nodes_) {
        if (o->engine == nullptr || o.get() == r.get()) continue;
        const NodeState* s = r->engine->FindNode(o->name);
        if (s == nullptr || s->generation() != o->gen ||
            s->max_version() != o->engine->self().max_version()) {
          v.replica = r->name;
          v.owner = o->name;
          v.generation = o->gen;
          absl::StrAppend(&v.detail, "; e.g. replica holds ",
                          s == nullptr
                              ? std::string("nothing")
                              : absl::StrCat("gen ", s->generation(), " max ", s->max_version()),
                          ", owner max ", o->engine->self().max_version());
          break;
        }
      }
    }
    checker_->Record(std::move(v));
  }
  stats_.invariant_violations = checker_->violations();
  stats_.stale_regressions = checker_->violations_of(ViolationKind::kStaleRegression);
  for (size_t k = 0; k < static_cast<size_t>(ViolationKind::kCount); ++k) {
    stats_.violations_by_kind[k] = checker_->violations_of(static_cast<ViolationKind>(k));
  }
  stats_.keys_checked = checker_->keys_checked();
  stats_.peak_inflight = pool_.peak_inflight();
  stats_.bytes_per_node_per_round =
      round_ == 0 ? 0
                  : static_cast<double>(stats_.bytes_sent) /
                        (static_cast<double>(nodes_.size()) * static_cast<double>(round_));
  if (round_ > stats_.tail_start_round) {
    stats_.tail_bytes_per_node_per_round =
        static_cast<double>(stats_.bytes_sent - stats_.tail_start_bytes) /
        (static_cast<double>(nodes_.size()) * static_cast<double>(round_ - stats_.tail_start_round));
  }
  stats_.wall_seconds = WallSeconds() - wall_start_;
  return stats_;
}

}  // namespace scuttle::sim
