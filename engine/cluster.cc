#include "engine/cluster.h"

#include <algorithm>
#include <cassert>
#include <new>

#include "absl/hash/hash.h"
#include "wire/absl_compat.h"

namespace scuttle {

size_t Cluster::StrHash::operator()(std::string_view s) const {
  return absl::Hash<absl::string_view>{}(AV(s));
}

NodeState* Cluster::Pool::New(std::string_view name, Generation generation) {
  if (free_.empty()) {
    blocks_.push_back(std::make_unique<Storage[]>(kBlock));
    for (size_t i = kBlock; i-- > 0;) free_.push_back(&blocks_.back()[i]);
  }
  void* p = free_.back();
  free_.pop_back();
  return new (p) NodeState(name, generation);
}

void Cluster::Pool::Delete(NodeState* n) {
  n->~NodeState();
  free_.push_back(n);
}

Cluster::Cluster(std::string self_name, Generation self_generation) {
  self_ = pool_.New(self_name, self_generation);
  AppendOrder(self_);
  nodes_.insert(self_);
}

Cluster::~Cluster() {
  for (NodeState* n : nodes_) pool_.Delete(n);
}

void Cluster::AppendOrder(NodeState* n) {
  // Grows by an eighth, not by doubling: a replica holds one of these per member, N² entries
  // over a simulated cluster (docs/detection.md "Memory per member").
  if (order_.size() == order_.capacity()) order_.reserve(order_.size() + order_.size() / 8 + 16);
  order_.push_back(n);
}

NodeState* Cluster::Find(std::string_view name) {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : *it;
}

const NodeState* Cluster::Find(std::string_view name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : *it;
}

NodeState* Cluster::Upsert(std::string_view name, Generation generation, bool* replaced) {
  assert(name != self_->name());
  *replaced = false;
  auto it = nodes_.find(name);
  if (it == nodes_.end()) {
    NodeState* p = pool_.New(name, generation);
    AppendOrder(p);
    ++epoch_;
    nodes_.insert(p);
    return p;
  }
  if (generation <= (*it)->generation()) return *it;
  NodeState* p = pool_.New(name, generation);
  NodeState* old = *it;
  std::replace(order_.begin(), order_.end(), old, p);
  nodes_.erase(it);
  pool_.Delete(old);  // invalidates `name` if it pointed into the old state
  nodes_.insert(p);
  ++epoch_;
  *replaced = true;
  return p;
}

void Cluster::Forget(std::string_view name_view, TimeUs remember_until_us,
                     size_t max_remembered) {
  const std::string name(name_view);  // the view may point into the state erased below
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
  NodeState* n = *it;
  order_.erase(std::find(order_.begin(), order_.end(), n));
  nodes_.erase(it);
  pool_.Delete(n);
  ++epoch_;
}

}  // namespace scuttle
