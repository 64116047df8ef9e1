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
// A full publication is bracketed by a begin and an end record carrying its number and,
// on the end record, how many records it holds. A reader that saw all of it (begin, that
// many records, end) drops every node it holds from shard 0 that the publication did not
// list: shard 0 forgot it while the reader was behind, and the forgotten record was lost
// with the overrun. A reader that missed part of it drops nothing (and asks again).
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
  enum class Mark : uint8_t {
    kNone,       // a node's state (or its forgetting)
    kFullBegin,  // a full publication starts: `generation` = its number
    kFullEnd,    // it ends: `generation` = its number, `count` = records between the marks
  };
  Generation generation = 0;
  MemberState state = MemberState::kAlive;
  bool forgotten = false;  // shard 0 forgot every generation <= `generation`
  uint8_t name_len = 0;
  char name[wire::kMaxNameBytes] = {};
  Mark mark = Mark::kNone;
  uint32_t count = 0;

  // REQUIRES: name.size() <= wire::kMaxNameBytes (node names are validated on entry).
  static MemberRecord Make(std::string_view name, Generation generation, MemberState state,
                           bool forgotten);
  static MemberRecord Marker(Mark mark, uint64_t publication, uint32_t count);
  std::string_view Name() const { return {name, name_len}; }
};
static_assert(std::is_trivially_copyable_v<MemberRecord>);
static_assert(sizeof(MemberRecord) == 80);

// Shard 0's side: what changed since the last call.
class MemberPublisher {
 public:
  // Appends a record for every node (self excluded) whose (generation, state) differs from
  // what was last published, and a forgotten record for every published node that is no
  // longer in `cluster`. With `full`, a record for every node (a reader's resync) between
  // a kFullBegin and a kFullEnd marker. O(nodes).
  void Collect(const Cluster& cluster, bool full, std::vector<MemberRecord>* out);
  size_t published() const { return published_.size(); }
  uint64_t full_publications() const { return full_publications_; }

 private:
  struct Published {
    Generation generation;
    MemberState state;
    uint64_t pass;
  };
  absl::flat_hash_map<std::string, Published> published_;
  uint64_t pass_ = 0;
  uint64_t full_publications_ = 0;
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
  // The end of a complete full publication forgets every node of the view it did not list
  // (a forgetting this reader missed); an incomplete one (a record missing, or its begin)
  // forgets nothing and is counted in full_incomplete().
  void Apply(const MemberRecord& r, Cluster& cluster, const Membership& membership,
             TimeUs now_us, EventSink* events, TimeUs remember_us, size_t max_names);
  // Brings nodes learned since the last call in line with the view. O(nodes) when the
  // cluster's node set changed, O(1) otherwise.
  void Sync(Cluster& cluster, const Membership& membership, TimeUs now_us, EventSink* events);
  size_t size() const { return view_.size(); }
  uint64_t records_applied() const { return records_applied_; }
  uint64_t full_complete() const { return full_complete_; }
  uint64_t full_incomplete() const { return full_incomplete_; }
  uint64_t dropped_unlisted() const { return dropped_unlisted_; }

 private:
  struct Entry {
    Generation generation;
    MemberState state;
    uint64_t listed;  // the last full publication (reader-local count) that listed it
  };
  void Align(NodeState& node, const Membership& membership, TimeUs now_us,
             EventSink* events) const;
  void Forget(std::string_view name, Generation generation, Cluster& cluster, TimeUs now_us,
              EventSink* events, TimeUs remember_us, size_t max_names);
  void EndFull(const MemberRecord& r, Cluster& cluster, TimeUs now_us, EventSink* events,
               TimeUs remember_us, size_t max_names);
  absl::flat_hash_map<std::string, Entry> view_;
  uint64_t synced_epoch_ = 0;
  uint64_t records_applied_ = 0;
  // The full publication being read: its number, records seen since its begin marker.
  bool in_full_ = false;
  uint64_t full_number_ = 0;
  uint64_t full_seen_ = 0;
  uint64_t full_pass_ = 0;  // incremented at each begin marker; Entry::listed compares to it
  uint64_t full_complete_ = 0;
  uint64_t full_incomplete_ = 0;
  uint64_t dropped_unlisted_ = 0;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_MEMBER_FEED_H_
