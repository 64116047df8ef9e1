#include "engine/membership.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/cluster.h"
#include "engine/node_state.h"
#include "wire/absl_compat.h"

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
        l.mean_interval_us = static_cast<float>(PriorUs());
      }
      // The prior counts as prior_weight samples: after n samples the mean is
      // (w * prior + sum) / (w + n) (see membership.h).
      const double w = std::max(config_->prior_weight, 0.0);
      const double n =
          std::min<double>(l.samples + 1.0 + w, std::max(config_->window, 1));
      l.mean_interval_us = static_cast<float>(l.mean_interval_us + (interval - l.mean_interval_us) / n);
      if (l.samples < UINT16_MAX) ++l.samples;
    }
  }
  l.last_arrival_us = now_us;
  if (config_->external) return;  // shard 0 decides (engine/member_feed.h)
  if (node.leaving) {
    if (l.state != MemberState::kLeft) SetState(node, MemberState::kLeft, now_us, events);
  } else if (l.state != MemberState::kAlive) {
    if (l.state == MemberState::kDead && config_->testonly_ignore_refutation) return;
    SetState(node, MemberState::kAlive, now_us, events);
  }
}

void Membership::OnProbeAck(NodeState& node, TimeUs now_us, EventSink* events) const {
  Liveness& l = node.liveness;
  l.last_arrival_us = std::max(l.last_arrival_us, now_us);
  if (config_->external) return;
  if (node.leaving || l.state == MemberState::kAlive || l.state == MemberState::kLeft) return;
  if (l.state == MemberState::kDead && config_->testonly_ignore_refutation) return;
  SetState(node, MemberState::kAlive, now_us, events);
}

bool Membership::SuspectUnanswered(NodeState& node, TimeUs now_us, EventSink* events,
                                   bool soft) const {
  if (node.leaving || node.liveness.state != MemberState::kAlive) return false;
  SetState(node, MemberState::kSuspect, now_us, events);
  node.liveness.held = true;
  node.liveness.soft = soft;
  return true;
}

bool Membership::Declare(NodeState& node, TimeUs now_us, EventSink* events) const {
  const MemberState s = node.liveness.state;
  if (config_->external) return false;
  if (s == MemberState::kDead || s == MemberState::kLeft) return false;
  SetState(node, MemberState::kDead, now_us, events);
  return true;
}

void Membership::Rebase(Cluster& cluster, TimeUs gap_us, TimeUs now_us) const {
  if (gap_us <= 0) return;
  for (NodeState* node : cluster.nodes()) {
    Liveness& l = node->liveness;
    if (l.last_arrival_us < 0) continue;
    l.last_arrival_us = std::min(now_us, l.last_arrival_us + gap_us);
  }
}

double Membership::Phi(const NodeState& node, TimeUs now_us) const {
  const Liveness& l = node.liveness;
  if (l.last_arrival_us < 0) return 0;
  const double mean = l.mean_interval_us > 0 ? l.mean_interval_us
                                             : PriorUs();
  const double elapsed = static_cast<double>(std::max<TimeUs>(0, now_us - l.last_arrival_us));
  return elapsed / mean * M_LOG10E;
}

void Membership::SetState(NodeState& node, MemberState s, TimeUs now_us,
                          EventSink* events) const {
  if ((node.liveness.state == MemberState::kDead) != (s == MemberState::kDead)) ++state_changes_;
  node.liveness.state = s;
  node.liveness.state_since_us = now_us;
  node.liveness.held = false;
  node.liveness.soft = false;
  if (events == nullptr) return;
  switch (s) {
    case MemberState::kAlive: events->OnMember(node, MemberEvent::kAlive); break;
    case MemberState::kSuspect: events->OnMember(node, MemberEvent::kSuspect); break;
    case MemberState::kDead: events->OnMember(node, MemberEvent::kDead); break;
    case MemberState::kLeft: events->OnMember(node, MemberEvent::kLeft); break;
  }
}

size_t Membership::Update(Cluster& cluster, TimeUs now_us, EventSink* events,
                          size_t max_remembered, int health, double silence_scale) const {
  if (config_->external) return 0;  // shard 0 decides and forgets (engine/member_feed.h)
  const double scale = std::max(silence_scale, 1.0);
  const double dead_phi = config_->phi_threshold * (1.0 + std::max(health, 0)) * scale;
  const double suspect_phi =
      (config_->confirm ? config_->suspect_phi : config_->phi_threshold / 2) * scale;
  std::vector<std::string> forget;
  for (NodeState* node : cluster.nodes()) {
    if (node == &cluster.self()) continue;
    Liveness& l = node->liveness;
    if (node->leaving && l.state != MemberState::kLeft) {
      SetState(*node, MemberState::kLeft, now_us, events);
    }
    if (l.state == MemberState::kLeft || l.state == MemberState::kDead) {
      if (now_us - l.state_since_us >= config_->dead_node_grace_us) forget.emplace_back(node->name());
      continue;
    }
    const double phi = Phi(*node, now_us);
    if (phi >= dead_phi) {
      SetState(*node, MemberState::kDead, now_us, events);
    } else if (phi >= suspect_phi) {
      if (l.state != MemberState::kSuspect) SetState(*node, MemberState::kSuspect, now_us, events);
    } else if (l.state == MemberState::kSuspect && !l.held) {
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

// ---- Locality --------------------------------------------------------------------------------

namespace {

// A label split into components; depth 0 when it is missing or invalid.
struct SplitLabel {
  std::string_view parts[kMaxLocalityDepth];
  int depth = 0;
};

// Invalid: empty, too long, an empty component, a byte outside '!'..'~', too deep.
SplitLabel Split(std::string_view label) {
  SplitLabel out;
  if (label.empty() || label.size() > kMaxLocalityBytes) return out;
  size_t start = 0;
  for (;;) {
    const size_t slash = label.find('/', start);
    const std::string_view part = label.substr(start, slash - start);
    if (part.empty() || out.depth == kMaxLocalityDepth) return SplitLabel{};
    for (char c : part) {
      if (c < '!' || c > '~') return SplitLabel{};
    }
    out.parts[out.depth++] = part;
    if (slash == std::string_view::npos) return out;
    start = slash + 1;
  }
}

int Distance(const SplitLabel& a, const SplitLabel& b) {
  if (a.depth == 0 || b.depth == 0) return kUnknownDistance;
  int common = 0;
  while (common < std::min(a.depth, b.depth) && a.parts[common] == b.parts[common]) ++common;
  return std::max(a.depth, b.depth) - common;
}

}  // namespace

absl::Status ValidateLocality(std::string_view label) {
  if (Split(label).depth > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("locality '", AV(label), "': want 1..", kMaxLocalityDepth,
                   " non-empty components joined by '/' (e.g. region/zone/rack), printable "
                   "ASCII without spaces, at most ",
                   kMaxLocalityBytes, " bytes"));
}

int LocalityDistance(std::string_view a, std::string_view b) {
  return Distance(Split(a), Split(b));
}

std::string_view LocalityOf(const NodeState& node) {
  const uint32_t idx = node.Find(kLocalityKey);
  if (idx == NodeState::kNoSlot) return {};
  const NodeState::Slot& slot = node.slot(idx);
  if (slot.status == KeyStatus::kTombstone) return {};
  return node.ValueOf(slot);
}

// ---- Peer choice -------------------------------------------------------------------------------

// Demers et al. §3.1: with the candidates sorted by distance, every peer at distance d
// weighs Q(d)^-a, Q(d) = candidates at distance <= d. Peers at one distance form a class,
// so a draw picks a class by (peers left in it) × Q(d)^-a, then a peer of the class
// uniformly; drawing without replacement keeps the k peers distinct. A handful of classes
// (at most kUnknownDistance + 1), so each draw is a short scan.
void Membership::ChooseSpatial(const NodeState& self, std::vector<const NodeState*>& alive,
                               size_t k, Rng& rng, std::vector<Endpoint>* out) const {
  const SplitLabel here = Split(LocalityOf(self));
  std::vector<std::pair<int, const NodeState*>> by_distance;
  by_distance.reserve(alive.size());
  for (const NodeState* node : alive) {
    const int d = here.depth == 0 ? kUnknownDistance : Distance(here, Split(LocalityOf(*node)));
    by_distance.emplace_back(d, node);
  }
  // Stable: ties keep the cluster's deterministic order, so a seed replays exactly.
  std::stable_sort(by_distance.begin(), by_distance.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  for (size_t i = 0; i < by_distance.size(); ++i) alive[i] = by_distance[i].second;

  struct Class {
    size_t begin;  // first peer not drawn yet
    size_t end;
    double weight;  // per peer: Q(d)^-a
  };
  Class classes[kUnknownDistance + 1];
  size_t num_classes = 0;
  for (size_t i = 0; i < by_distance.size();) {
    size_t j = i;
    while (j < by_distance.size() && by_distance[j].first == by_distance[i].first) ++j;
    assert(num_classes <= static_cast<size_t>(kUnknownDistance));
    classes[num_classes++] =
        Class{i, j, std::pow(static_cast<double>(j), -config_->spatial_exponent)};
    i = j;
  }
  for (size_t drawn = 0; drawn < k; ++drawn) {
    double total = 0;
    for (size_t c = 0; c < num_classes; ++c) {
      total += static_cast<double>(classes[c].end - classes[c].begin) * classes[c].weight;
    }
    double r = rng.Unit() * total;
    size_t pick = num_classes;
    for (size_t c = 0; c < num_classes; ++c) {
      const size_t left = classes[c].end - classes[c].begin;
      if (left == 0) continue;
      pick = c;  // the last non-empty class absorbs rounding at the top end
      r -= static_cast<double>(left) * classes[c].weight;
      if (r < 0) break;
    }
    assert(pick < num_classes);
    Class& cl = classes[pick];
    std::swap(alive[cl.begin], alive[cl.begin + rng.Below(cl.end - cl.begin)]);
    out->push_back(alive[cl.begin]->endpoint);
    ++cl.begin;
  }
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
  const size_t k = std::min<size_t>(static_cast<size_t>(std::max(fanout, 0)), alive.size());
  if (config_->spatial_exponent > 0) {
    ChooseSpatial(cluster.self(), alive, k, rng, out);
  } else {
    // Partial Fisher-Yates: the first `fanout` alive nodes, uniformly.
    for (size_t i = 0; i < k; ++i) {
      std::swap(alive[i], alive[i + rng.Below(alive.size() - i)]);
      out->push_back(alive[i]->endpoint);
    }
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
