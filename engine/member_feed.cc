#include "engine/member_feed.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "engine/cluster.h"
#include "engine/node_state.h"
#include "wire/absl_compat.h"

namespace scuttle {

MemberRecord MemberRecord::Make(std::string_view name, Generation generation,
                                MemberState state, bool forgotten) {
  assert(name.size() <= wire::kMaxNameBytes);
  MemberRecord r;
  r.generation = generation;
  r.state = state;
  r.forgotten = forgotten;
  r.name_len = static_cast<uint8_t>(std::min(name.size(), wire::kMaxNameBytes));
  std::memcpy(r.name, name.data(), r.name_len);
  return r;
}

void MemberPublisher::Collect(const Cluster& cluster, bool full,
                              std::vector<MemberRecord>* out) {
  ++pass_;
  for (const NodeState* node : cluster.nodes()) {
    if (node == &cluster.self()) continue;
    const MemberState state = node->liveness.state;
    auto [it, fresh] = published_.try_emplace(AV(node->name()),
                                              Published{node->generation(), state, pass_});
    Published& p = it->second;
    const bool changed = fresh || p.generation != node->generation() || p.state != state;
    p = Published{node->generation(), state, pass_};
    if (changed || full) {
      out->push_back(MemberRecord::Make(node->name(), node->generation(), state, false));
    }
  }
  // Published before, gone now: shard 0 forgot it (seed 002 forgetting).
  for (auto it = published_.begin(); it != published_.end();) {
    if (it->second.pass == pass_) {
      ++it;
      continue;
    }
    out->push_back(MemberRecord::Make(SV(it->first), it->second.generation, it->second.state, true));
    published_.erase(it++);
  }
}

MemberState MemberView::StateOf(std::string_view name, Generation generation) const {
  auto it = view_.find(AV(name));
  if (it == view_.end() || it->second.first < generation) return MemberState::kAlive;
  if (it->second.first > generation) return MemberState::kDead;
  return it->second.second;
}

void MemberView::Align(NodeState& node, const Membership& membership, TimeUs now_us,
                       EventSink* events) const {
  const MemberState want = StateOf(node.name(), node.generation());
  if (node.liveness.state != want) membership.SetExternalState(node, want, now_us, events);
}

void MemberView::Apply(const MemberRecord& r, Cluster& cluster, const Membership& membership,
                       TimeUs now_us, EventSink* events, TimeUs remember_us, size_t max_names) {
  ++records_applied_;
  const std::string_view name = r.Name();
  if (name.empty() || name == cluster.self().name()) return;
  auto it = view_.find(AV(name));
  if (r.forgotten) {
    if (it != view_.end() && it->second.first <= r.generation) view_.erase(it);
    NodeState* node = cluster.Find(name);
    if (node == nullptr || node->generation() > r.generation) return;
    if (events != nullptr) events->OnMember(*node, MemberEvent::kForgotten);
    cluster.Forget(name, now_us + remember_us, max_names);
    return;
  }
  if (it == view_.end()) {
    if (view_.size() >= max_names) return;
    it = view_.emplace(std::string(name), std::make_pair(r.generation, r.state)).first;
  } else if (r.generation < it->second.first) {
    return;  // about an incarnation shard 0 already replaced
  } else {
    it->second = {r.generation, r.state};
  }
  if (NodeState* node = cluster.Find(name); node != nullptr) {
    Align(*node, membership, now_us, events);
  }
}

void MemberView::Sync(Cluster& cluster, const Membership& membership, TimeUs now_us,
                      EventSink* events) {
  if (cluster.epoch() == synced_epoch_) return;
  synced_epoch_ = cluster.epoch();
  for (NodeState* node : cluster.nodes()) {
    if (node != &cluster.self()) Align(*node, membership, now_us, events);
  }
}

}  // namespace scuttle
