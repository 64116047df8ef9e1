// Cluster: every NodeState this engine knows, by name (one generation per name: a newer
// generation replaces the older state, never merges with it — DESIGN §1).
#ifndef SCUTTLE_ENGINE_CLUSTER_H_
#define SCUTTLE_ENGINE_CLUSTER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/node_state.h"

namespace scuttle {

class Cluster {
 public:
  Cluster(std::string self_name, Generation self_generation);

  NodeState& self() { return *self_; }
  const NodeState& self() const { return *self_; }

  NodeState* Find(std::string_view name);
  const NodeState* Find(std::string_view name) const;
  // Creates the node, or replaces it when `generation` is newer than the one held.
  // Returns the (possibly new) state. REQUIRES: name != self name.
  NodeState* Upsert(std::string_view name, Generation generation, bool* replaced);
  // Removes a node entirely (forgetting, seed 002). REQUIRES: name != self name.
  void Erase(std::string_view name);

  size_t size() const { return nodes_.size(); }
  // Stable iteration order is not guaranteed; `nodes()` is the insertion-ordered list of
  // live pointers, rebuilt on insert/erase, for deterministic iteration (the simulator
  // depends on runs being reproducible bit for bit).
  const std::vector<NodeState*>& nodes() const { return order_; }

 private:
  struct StrHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const;
  };
  struct StrEq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };
  absl::flat_hash_map<std::string, std::unique_ptr<NodeState>, StrHash, StrEq> nodes_;
  std::vector<NodeState*> order_;
  NodeState* self_;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_CLUSTER_H_
