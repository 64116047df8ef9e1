// Cluster: every NodeState this engine knows, by name (one generation per name: a newer
// generation replaces the older state, never merges with it — DESIGN §1).
#ifndef SCUTTLE_ENGINE_CLUSTER_H_
#define SCUTTLE_ENGINE_CLUSTER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "engine/node_state.h"

namespace scuttle {

class Cluster {
 public:
  Cluster(std::string self_name, Generation self_generation);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  NodeState& self() { return *self_; }
  const NodeState& self() const { return *self_; }

  NodeState* Find(std::string_view name);
  const NodeState* Find(std::string_view name) const;
  // Creates the node, or replaces it when `generation` is newer than the one held.
  // Returns the (possibly new) state. REQUIRES: name != self name.
  NodeState* Upsert(std::string_view name, Generation generation, bool* replaced);
  // Removes a node entirely. REQUIRES: name != self name.
  void Erase(std::string_view name);
  // Forgetting (seed 002): removes the node and remembers (name, generation, heartbeat)
  // until `remember_until_us`, so digests from peers that have not forgotten it yet (clock
  // skew, late detection, a longer grace) cannot bring it back. What does bring it back is
  // news: a newer generation (it restarted) or, in the same generation, a heartbeat above
  // the one we forgot it at (it was only partitioned away). At most `max_remembered`
  // names are remembered; the oldest memory goes first.
  void Forget(std::string_view name, TimeUs remember_until_us, size_t max_remembered);
  // True when (name, generation, heartbeat) is no news about a node we forgot. Pass
  // heartbeat 0 when unknown (delta parts): then any generation not newer is refused.
  bool IsForgotten(std::string_view name, Generation generation, uint64_t heartbeat,
                   TimeUs now_us);
  size_t forgotten_count() const { return forgotten_.size(); }

  size_t size() const { return nodes_.size(); }
  // Stable iteration order is not guaranteed; `nodes()` is the insertion-ordered list of
  // live pointers, rebuilt on insert/erase, for deterministic iteration (the simulator
  // depends on runs being reproducible bit for bit).
  const std::vector<NodeState*>& nodes() const { return order_; }
  // Bumped whenever a node is added, replaced or removed (pointers may have changed).
  uint64_t epoch() const { return epoch_; }

 private:
  struct StrHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const;
  };
  struct StrEq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };
  // NodeStates come from fixed blocks (no per-node malloc header; a simulator holds N² of
  // them) and are owned by nodes_: a set of pointers looked up by the name they hold.
  class Pool {
   public:
    Pool() = default;
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;
    NodeState* New(std::string_view name, Generation generation);
    void Delete(NodeState* n);

   private:
    struct Storage {
      alignas(NodeState) unsigned char bytes[sizeof(NodeState)];
    };
    static constexpr size_t kBlock = 64;
    std::vector<std::unique_ptr<Storage[]>> blocks_;
    std::vector<void*> free_;
  };
  struct NodeHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return StrHash{}(s); }
    size_t operator()(const NodeState* n) const { return StrHash{}(n->name()); }
  };
  struct NodeEq {
    using is_transparent = void;
    static std::string_view N(std::string_view s) { return s; }
    static std::string_view N(const NodeState* n) { return n->name(); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return N(a) == N(b);
    }
  };
  Pool pool_;
  absl::flat_hash_set<NodeState*, NodeHash, NodeEq> nodes_;
  std::vector<NodeState*> order_;
  NodeState* self_;
  uint64_t epoch_ = 1;
  struct Forgotten {
    Generation generation;
    uint64_t heartbeat;
    TimeUs until_us;
  };
  absl::flat_hash_map<std::string, Forgotten, StrHash, StrEq> forgotten_;
  absl::btree_set<std::pair<TimeUs, std::string>> forgotten_by_time_;
  void ExpireForgotten(TimeUs now_us);
  void AppendOrder(NodeState* n);
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_CLUSTER_H_
