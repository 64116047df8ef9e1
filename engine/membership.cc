#include "engine/membership.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/cluster.h"
#include "engine/node_state.h"

namespace scuttle {

const char* MemberStateName(MemberState s) {
  switch (s) {
    case MemberState::kAlive: return "alive";
    case MemberState::kSuspect: return "suspect";
    case MemberState::kDead: return "dead";
    case MemberState::kLeft: return "left";
  }
  return "unknown";
}

void InitLiveness(Liveness& l, TimeUs now_us) {
  l = Liveness{};
  l.last_arrival_us = now_us;
  l.state_since_us = now_us;
}

void Membership::OnDiscovered(NodeState& node, TimeUs now_us) const {
  InitLiveness(node.liveness, now_us);
}

void Membership::OnHeartbeat(NodeState& node, TimeUs now_us, EventSink* events) const {
  Liveness& l = node.liveness;
  if (l.last_arrival_us >= 0) {
    const double interval = static_cast<double>(now_us - l.last_arrival_us);
    // Long silences (a partition, a pause) are not samples of the normal rhythm.
    if (interval > 0 && interval <= static_cast<double>(config_->max_interval_us)) {
      if (l.mean_interval_us == 0) {
        l.mean_interval_us = static_cast<double>(config_->initial_interval_us);
      }
      // The prior counts as one sample.
      const double n = std::min<double>(l.samples + 2.0, std::max(config_->window, 1));
      l.mean_interval_us += (interval - l.mean_interval_us) / n;
      ++l.samples;
    }
  }
  l.last_arrival_us = now_us;
  if (node.leaving) {
    if (l.state != MemberState::kLeft) SetState(node, MemberState::kLeft, now_us, events);
  } else if (l.state != MemberState::kAlive) {
    SetState(node, MemberState::kAlive, now_us, events);
  }
}

double Membership::Phi(const NodeState& node, TimeUs now_us) const {
  const Liveness& l = node.liveness;
  if (l.last_arrival_us < 0) return 0;
  const double mean = l.mean_interval_us > 0 ? l.mean_interval_us
                                             : static_cast<double>(config_->initial_interval_us);
  const double elapsed = static_cast<double>(std::max<TimeUs>(0, now_us - l.last_arrival_us));
  return elapsed / mean * M_LOG10E;
}

void Membership::SetState(NodeState& node, MemberState s, TimeUs now_us,
                          EventSink* events) const {
  node.liveness.state = s;
  node.liveness.state_since_us = now_us;
  if (events == nullptr) return;
  switch (s) {
    case MemberState::kAlive: events->OnMember(node, MemberEvent::kAlive); break;
    case MemberState::kSuspect: events->OnMember(node, MemberEvent::kSuspect); break;
    case MemberState::kDead: events->OnMember(node, MemberEvent::kDead); break;
    case MemberState::kLeft: events->OnMember(node, MemberEvent::kLeft); break;
  }
}

size_t Membership::Update(Cluster& cluster, TimeUs now_us, EventSink* events,
                          size_t max_remembered) const {
  std::vector<std::string> forget;
  for (NodeState* node : cluster.nodes()) {
    if (node == &cluster.self()) continue;
    Liveness& l = node->liveness;
    if (node->leaving && l.state != MemberState::kLeft) {
      SetState(*node, MemberState::kLeft, now_us, events);
    }
    if (l.state == MemberState::kLeft || l.state == MemberState::kDead) {
      if (now_us - l.state_since_us >= config_->dead_node_grace_us) forget.push_back(node->name());
      continue;
    }
    const double phi = Phi(*node, now_us);
    if (phi >= config_->phi_threshold) {
      SetState(*node, MemberState::kDead, now_us, events);
    } else if (phi >= config_->phi_threshold / 2) {
      if (l.state != MemberState::kSuspect) SetState(*node, MemberState::kSuspect, now_us, events);
    } else if (l.state == MemberState::kSuspect) {
      SetState(*node, MemberState::kAlive, now_us, events);
    }
  }
  for (const std::string& name : forget) {
    if (events != nullptr) events->OnMember(*cluster.Find(name), MemberEvent::kForgotten);
    // Remember for long after every peer should have forgotten too (their grace or clock
    // may differ); the memory is bounded by max_remembered.
    cluster.Forget(name, now_us + 10 * config_->dead_node_grace_us, max_remembered);
  }
  return forget.size();
}

void Membership::ChoosePeers(const Cluster& cluster, int fanout,
                             const std::vector<Endpoint>& seeds, Rng& rng,
                             std::vector<Endpoint>* out) const {
  out->clear();
  std::vector<const NodeState*> alive;
  std::vector<const NodeState*> dead;
  for (const NodeState* node : cluster.nodes()) {
    if (node == &cluster.self() || !node->endpoint.valid()) continue;
    const MemberState s = node->liveness.state;
    if (s == MemberState::kAlive || s == MemberState::kSuspect) {
      alive.push_back(node);
    } else if (s == MemberState::kDead) {
      dead.push_back(node);
    }
  }
  // Partial Fisher-Yates: the first `fanout` alive nodes, uniformly.
  const size_t k = std::min<size_t>(static_cast<size_t>(std::max(fanout, 0)), alive.size());
  for (size_t i = 0; i < k; ++i) {
    std::swap(alive[i], alive[i + rng.Below(alive.size() - i)]);
    out->push_back(alive[i]->endpoint);
  }
  if (!dead.empty() && rng.Chance(static_cast<double>(dead.size()) / (alive.size() + 1.0))) {
    out->push_back(dead[rng.Below(dead.size())]->endpoint);
  }
  // Seeds: always while we know fewer peers than seeds (bootstrap), else occasionally.
  if (!seeds.empty() && (alive.size() < seeds.size() || rng.Chance(0.1))) {
    const Endpoint& seed = seeds[rng.Below(seeds.size())];
    if (seed != cluster.self().endpoint &&
        std::find(out->begin(), out->end(), seed) == out->end()) {
      out->push_back(seed);
    }
  }
}

}  // namespace scuttle
