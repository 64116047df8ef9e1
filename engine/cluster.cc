#include "engine/cluster.h"

#include <algorithm>
#include <cassert>

#include "absl/hash/hash.h"
#include "wire/absl_compat.h"

namespace scuttle {

size_t Cluster::StrHash::operator()(std::string_view s) const {
  return absl::Hash<absl::string_view>{}(AV(s));
}

Cluster::Cluster(std::string self_name, Generation self_generation) {
  auto state = std::make_unique<NodeState>(self_name, self_generation);
  self_ = state.get();
  order_.push_back(self_);
  nodes_.emplace(std::move(self_name), std::move(state));
}

NodeState* Cluster::Find(std::string_view name) {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : it->second.get();
}

const NodeState* Cluster::Find(std::string_view name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : it->second.get();
}

NodeState* Cluster::Upsert(std::string_view name, Generation generation, bool* replaced) {
  assert(name != self_->name());
  *replaced = false;
  auto it = nodes_.find(name);
  if (it == nodes_.end()) {
    auto state = std::make_unique<NodeState>(std::string(name), generation);
    NodeState* p = state.get();
    order_.push_back(p);
    ++epoch_;
    nodes_.emplace(std::string(name), std::move(state));
    return p;
  }
  if (generation <= it->second->generation()) return it->second.get();
  auto state = std::make_unique<NodeState>(std::string(name), generation);
  NodeState* p = state.get();
  std::replace(order_.begin(), order_.end(), it->second.get(), p);
  it->second = std::move(state);
  ++epoch_;
  *replaced = true;
  return p;
}

void Cluster::Forget(std::string_view name, TimeUs remember_until_us, size_t max_remembered) {
  NodeState* node = Find(name);
  if (node == nullptr || node == self_) return;
  const Generation gen = node->generation();
  const uint64_t heartbeat = node->heartbeat;
  Erase(name);
  auto it = forgotten_.find(name);
  if (it != forgotten_.end()) {
    forgotten_by_time_.erase({it->second.until_us, it->first});
    forgotten_.erase(it);
  }
  while (!forgotten_by_time_.empty() && forgotten_.size() >= std::max<size_t>(max_remembered, 1)) {
    forgotten_.erase(forgotten_by_time_.begin()->second);
    forgotten_by_time_.erase(forgotten_by_time_.begin());
  }
  forgotten_.emplace(std::string(name), Forgotten{gen, heartbeat, remember_until_us});
  forgotten_by_time_.insert({remember_until_us, std::string(name)});
}

void Cluster::ExpireForgotten(TimeUs now_us) {
  while (!forgotten_by_time_.empty() && forgotten_by_time_.begin()->first <= now_us) {
    forgotten_.erase(forgotten_by_time_.begin()->second);
    forgotten_by_time_.erase(forgotten_by_time_.begin());
  }
}

bool Cluster::IsForgotten(std::string_view name, Generation generation, uint64_t heartbeat,
                          TimeUs now_us) {
  if (forgotten_.empty()) return false;
  ExpireForgotten(now_us);
  auto it = forgotten_.find(name);
  if (it == forgotten_.end()) return false;
  const Forgotten& f = it->second;
  return generation < f.generation || (generation == f.generation && heartbeat <= f.heartbeat);
}

void Cluster::Erase(std::string_view name) {
  assert(name != self_->name());
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  order_.erase(std::find(order_.begin(), order_.end(), it->second.get()));
  nodes_.erase(it);
  ++epoch_;
}

}  // namespace scuttle
