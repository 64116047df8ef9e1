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
    nodes_.emplace(std::string(name), std::move(state));
    return p;
  }
  if (generation <= it->second->generation()) return it->second.get();
  auto state = std::make_unique<NodeState>(std::string(name), generation);
  NodeState* p = state.get();
  std::replace(order_.begin(), order_.end(), it->second.get(), p);
  it->second = std::move(state);
  *replaced = true;
  return p;
}

void Cluster::Erase(std::string_view name) {
  assert(name != self_->name());
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  order_.erase(std::find(order_.begin(), order_.end(), it->second.get()));
  nodes_.erase(it);
}

}  // namespace scuttle
