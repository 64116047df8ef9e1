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

MemberRecord MemberRecord::Marker(Mark mark, uint64_t publication, uint32_t count) {
  MemberRecord r;
  r.mark = mark;
  r.generation = publication;
  r.count = count;
  return r;
}

void MemberPublisher::Collect(const Cluster& cluster, bool full,
                              std::vector<MemberRecord>* out) {
  ++pass_;
  const size_t first = out->size();
  if (full) {
    ++full_publications_;
    out->push_back(MemberRecord::Marker(MemberRecord::Mark::kFullBegin, full_publications_, 0));
  }
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
  if (full) {
    // Nodes are bounded by limits.max_nodes, far below 2^32.
    const auto listed = static_cast<uint32_t>(out->size() - first - 1);
    out->push_back(MemberRecord::Marker(MemberRecord::Mark::kFullEnd, full_publications_, listed));
  }
}

MemberState MemberView::StateOf(std::string_view name, Generation generation) const {
  auto it = view_.find(AV(name));
  if (it == view_.end() || it->second.generation < generation) return MemberState::kAlive;
  if (it->second.generation > generation) return MemberState::kDead;
  return it->second.state;
}

void MemberView::Align(NodeState& node, const Membership& membership, TimeUs now_us,
                       EventSink* events) const {
  const MemberState want = StateOf(node.name(), node.generation());
  if (node.liveness.state != want) membership.SetExternalState(node, want, now_us, events);
}

void MemberView::Forget(std::string_view name, Generation generation, Cluster& cluster,
                        TimeUs now_us, EventSink* events, TimeUs remember_us, size_t max_names) {
  NodeState* node = cluster.Find(name);
  if (node == nullptr || node->generation() > generation) return;
  if (events != nullptr) events->OnMember(*node, MemberEvent::kForgotten);
  cluster.Forget(name, now_us + remember_us, max_names);
}

void MemberView::EndFull(const MemberRecord& r, Cluster& cluster, TimeUs now_us,
                         EventSink* events, TimeUs remember_us, size_t max_names) {
  const bool complete = in_full_ && r.generation == full_number_ && r.count == full_seen_;
  in_full_ = false;
  if (!complete) {
    ++full_incomplete_;
    return;
  }
  ++full_complete_;
  // Every node shard 0 holds was listed: one it did not list was forgotten meanwhile.
  for (auto it = view_.begin(); it != view_.end();) {
    if (it->second.listed == full_pass_) {
      ++it;
      continue;
    }
    ++dropped_unlisted_;
    Forget(SV(it->first), it->second.generation, cluster, now_us, events, remember_us,
           max_names);
    view_.erase(it++);
  }
}

void MemberView::Apply(const MemberRecord& r, Cluster& cluster, const Membership& membership,
                       TimeUs now_us, EventSink* events, TimeUs remember_us, size_t max_names) {
  ++records_applied_;
  switch (r.mark) {
    case MemberRecord::Mark::kFullBegin:
      in_full_ = true;
      full_number_ = r.generation;
      full_seen_ = 0;
      ++full_pass_;
      return;
    case MemberRecord::Mark::kFullEnd:
      EndFull(r, cluster, now_us, events, remember_us, max_names);
      return;
    case MemberRecord::Mark::kNone:
      break;
    default:
      return;  // unknown mark: not ours to interpret
  }
  if (in_full_) ++full_seen_;
  const std::string_view name = r.Name();
  if (name.empty() || name == cluster.self().name()) return;
  auto it = view_.find(AV(name));
  if (r.forgotten) {
    if (it != view_.end() && it->second.generation <= r.generation) view_.erase(it);
    Forget(name, r.generation, cluster, now_us, events, remember_us, max_names);
    return;
  }
  if (it == view_.end()) {
    if (view_.size() >= max_names) return;
    it = view_.emplace(std::string(name), Entry{r.generation, r.state, 0}).first;
  }
  if (in_full_) it->second.listed = full_pass_;  // shard 0 holds it
  if (r.generation < it->second.generation) return;  // an incarnation shard 0 replaced
  it->second.generation = r.generation;
  it->second.state = r.state;
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
