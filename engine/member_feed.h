// Membership once (issue #18 item 4, docs/shards.md): in a node running several engine
// shards, only shard 0 detects failures (heartbeats, phi, probes, verdicts, forgetting).
// It publishes what it decides as MemberRecords; every other shard applies them and never
// decides liveness on its own (MembershipConfig::external).
//
// A record is an idempotent state, not a transition: "node `name` of `generation` is in
// `state`", or "shard 0 forgot `name` up to `generation`". A reader that applies any
// suffix of the stream in order ends where the writer is for every node the suffix
// mentions, so a reader that fell behind is repaired by a full re-publication
// (MemberPublisher::Collect with full = true), not by replaying history.
//
// Records are fixed-size and trivially copyable so a lock-free single-writer channel can
// carry them between threads (io/broadcast_ring.h); the simulator hands them over directly.
#ifndef SCUTTLE_ENGINE_MEMBER_FEED_H_
#define SCUTTLE_ENGINE_MEMBER_FEED_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/membership.h"
#include "engine/types.h"
#include "wire/packet.h"

namespace scuttle {

class Cluster;
class NodeState;

struct MemberRecord {
  Generation generation = 0;
  MemberState state = MemberState::kAlive;
  bool forgotten = false;  // shard 0 forgot every generation <= `generation`
  uint8_t name_len = 0;
  char name[wire::kMaxNameBytes] = {};

  // REQUIRES: name.size() <= wire::kMaxNameBytes (node names are validated on entry).
  static MemberRecord Make(std::string_view name, Generation generation, MemberState state,
                           bool forgotten);
  std::string_view Name() const { return {name, name_len}; }
};
static_assert(std::is_trivially_copyable_v<MemberRecord>);
static_assert(sizeof(MemberRecord) == 80);

// Shard 0's side: what changed since the last call.
class MemberPublisher {
 public:
  // Appends a record for every node (self excluded) whose (generation, state) differs from
  // what was last published, and a forgotten record for every published node that is no
  // longer in `cluster`. With `full`, a record for every node (a reader's resync). O(nodes).
  void Collect(const Cluster& cluster, bool full, std::vector<MemberRecord>* out);
  size_t published() const { return published_.size(); }

 private:
  struct Published {
    Generation generation;
    MemberState state;
    uint64_t pass;
  };
  absl::flat_hash_map<std::string, Published> published_;
  uint64_t pass_ = 0;
};

// A shard's side: the latest published state per node, and the rule that maps it onto the
// shard's own NodeStates (which it learns from its own gossip, possibly before shard 0).
class MemberView {
 public:
  // The state a node of `generation` has: the published state for that generation; dead
  // when shard 0 already knows a newer generation (a restart replaced it); alive when
  // shard 0 has not published this generation yet (it will, or forget it).
  MemberState StateOf(std::string_view name, Generation generation) const;
  // Records one published state and applies it to `cluster` at once. A forgotten record
  // forgets the node here too (Cluster::Forget until now + remember_us). Records about
  // more than max_names distinct nodes are ignored (the writer is bounded the same way).
  void Apply(const MemberRecord& r, Cluster& cluster, const Membership& membership,
             TimeUs now_us, EventSink* events, TimeUs remember_us, size_t max_names);
  // Brings nodes learned since the last call in line with the view. O(nodes) when the
  // cluster's node set changed, O(1) otherwise.
  void Sync(Cluster& cluster, const Membership& membership, TimeUs now_us, EventSink* events);
  size_t size() const { return view_.size(); }
  uint64_t records_applied() const { return records_applied_; }

 private:
  void Align(NodeState& node, const Membership& membership, TimeUs now_us,
             EventSink* events) const;
  absl::flat_hash_map<std::string, std::pair<Generation, MemberState>> view_;
  uint64_t synced_epoch_ = 0;
  uint64_t records_applied_ = 0;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_MEMBER_FEED_H_
