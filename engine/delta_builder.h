// Digest and delta construction (seed 000), planned first and then written straight into a
// PacketEncoder slot.
//
// Planning decides, within a byte budget, which nodes and which entries go out, and keeps
// each chosen entry as its wire record plus where its key/value bytes live; writing copies
// those records and bytes into the packet without walking the version index or reading a
// slot again. Planning costs O(log n + k) per node for k entries emitted (DESIGN §7),
// writing O(k).
//
// Plan cache: a plan is a pure function of (the candidate parts, the state of their nodes,
// the budget). The engine plans a SynAck twice (once to size the digest, once for real),
// and a peer that is far behind keeps sending the same digest until it catches up, so the
// last plan is kept and reused when nothing it depends on changed. Validity rests on
// NodeState's contract that every change to the slots above a version changes the node's
// (generation, max_version, last_gc_version, num_keys), and on Cluster::epoch() changing
// whenever a NodeState is created, replaced or destroyed (node pointers stay valid).
#ifndef SCUTTLE_ENGINE_DELTA_BUILDER_H_
#define SCUTTLE_ENGINE_DELTA_BUILDER_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/cluster.h"
#include "engine/epidemic.h"
#include "wire/packet.h"

namespace scuttle {

// Writes blob bytes sequentially into the packet's blob.
struct BlobWriter {
  std::span<uint8_t> blob;
  size_t off = 0;
  uint32_t Put(std::string_view a, std::string_view b = {});
};

// Fills a wire NodeRef for `node` whose name is at blob offset name_off.
wire::NodeRef MakeNodeRef(const NodeState& node, uint32_t name_off);

// What a peer's digest says it holds of one node.
struct PeerView {
  bool listed = false;  // the node appears in the digest
  Generation generation = 0;
  Version last_gc_version = 0;
  Version max_version = 0;
};

// A sender-side model of what one peer holds, per node name (welcome sessions, seed 002):
// initialised from the peer's digest and advanced by what each sent delta claims.
struct PeerProjection {
  absl::flat_hash_map<std::string, PeerView> nodes;
  bool partial = false;  // built from a partial digest: unlisted nodes are unknown

  // Replaces the projection with `peer`'s digest.
  void Reset(const wire::DecodedPacket& peer);
  // Raises each node to the digest's view (the peer may have learned more elsewhere).
  void Merge(const wire::DecodedPacket& peer);
};

class DeltaBuilder {
 public:
  struct Stats {
    uint64_t parts = 0;      // written
    uint64_t resets = 0;     // written
    uint64_t entries = 0;    // written
    uint64_t truncated = 0;  // parts written that stop short of what the peer misses
    uint64_t plans = 0;      // Plan() calls that reached planning
    uint64_t plan_cache_hits = 0;
  };

  // Indexes the peer's digest by name.
  // REQUIRES: the packet stays alive until Write() returns.
  void SetPeerDigest(const wire::DecodedPacket& peer);
  // Plans against a projection instead of a received digest (same planning rules).
  // REQUIRES: the projection stays alive and unchanged until Write() returns.
  void SetProjection(const PeerProjection& projection);
  // Drops the peer digest or projection; the last plan stays cached.
  void ClearPeer() {
    peer_ = nullptr;
    projection_ = nullptr;
  }
  // Plans the delta the peer is missing, in seed-000 order: nodes the peer has never seen
  // first, then the stalest; entries ascend by version so a truncated part is a valid
  // prefix whose max_version is its last entry. Returns the wire bytes planned. Reuses the
  // previous plan when it was made for the same cluster, budget and candidates and none of
  // their nodes changed since (see the file comment).
  size_t Plan(const Cluster& cluster, size_t budget_bytes);
  // Plans parts for explicit version ranges (rumors, direct mail): every entry of each
  // node with version in (from, to], truncated like any delta. Clears the peer digest.
  size_t PlanRanges(const std::vector<VersionRange>& ranges, size_t budget_bytes);
  size_t blob_bytes() const { return blob_bytes_; }
  // After Plan: true when nothing was planned because the first entry due did not fit.
  bool blocked() const { return blocked_; }
  // After Plan: true when every candidate was planned in full (the peer, as seen by the
  // digest or projection, misses nothing beyond this delta).
  bool complete() const { return complete_; }
  // After Plan/Write: raises `projection` by what the planned parts claim (their
  // max_version, a reset's last_gc_version), i.e. the peer's state once it applies them.
  void Advance(PeerProjection* projection) const;
  bool Write(wire::PacketEncoder& enc, BlobWriter& blob);
  // The parts planned, as (node, from, max) — for rumor feedback bookkeeping.
  size_t planned_parts() const { return planned_.size(); }
  VersionRange planned_range(size_t i) const {
    return {planned_[i].c.node, planned_[i].c.from, planned_[i].max_version};
  }
  const Stats& stats() const { return stats_; }

 private:
  struct Candidate {
    const NodeState* node;
    Version from;        // from_version_excluded
    Version tomb_floor;  // tombstones at or below this are not needed by the peer
    bool reset;
    bool unseen;
    uint64_t gap;
    Version cap = UINT64_MAX;  // stop after this version (ranges)
    bool operator==(const Candidate&) const = default;
  };
  struct Planned {
    Candidate c;
    Version max_version;  // what the part claims: the node's max, or the last entry sent
    size_t count;
    size_t first;         // its entries are entries_[first, first + count)
    bool truncated;
  };
  // What a cached plan depends on besides the candidates: the state of each candidate's
  // node when it was planned.
  struct NodeMark {
    Generation generation;
    Version max_version;
    Version last_gc_version;
    size_t num_keys;
    bool operator==(const NodeMark&) const = default;
  };
  static NodeMark MarkOf(const NodeState& n) {
    return {n.generation(), n.max_version(), n.last_gc_version(), n.num_keys()};
  }
  PeerView Lookup(const NodeState& node) const;
  // True when a node the peer's digest does not list is unknown to the peer (send it all).
  bool UnlistedIsUnknown(const NodeState& node, bool partial) const;
  // True when planned_/entries_ hold the plan for these candidates (just computed).
  bool CachedPlanValid(const Cluster& cluster, size_t budget_bytes) const;
  void PlanCandidates(size_t budget_bytes);
  bool PlanCandidate(const Candidate& c, size_t* budget);

  const wire::DecodedPacket* peer_ = nullptr;
  const PeerProjection* projection_ = nullptr;
  absl::flat_hash_map<std::string_view, uint32_t> peer_index_;
  std::vector<Candidate> candidates_;
  std::vector<Planned> planned_;
  // The entries chosen while planning: the wire record (its blob offset is set when
  // written) and the key bytes, followed by the value bytes, in the node's arena.
  struct PlannedEntry {
    const char* kv;
    wire::Entry e;
  };
  std::vector<PlannedEntry> entries_;
  size_t blob_bytes_ = 0;
  bool blocked_ = false;
  bool complete_ = false;
  // The plan held in planned_/entries_, and what it was made from (Plan only; PlanRanges
  // and an empty plan leave no cache).
  struct CacheKey {
    const Cluster* cluster = nullptr;
    uint64_t epoch = 0;
    size_t budget = 0;
    size_t planned_bytes = 0;
  };
  bool cache_valid_ = false;
  CacheKey cache_;
  std::vector<Candidate> cached_candidates_;
  std::vector<NodeMark> cached_marks_;
  Stats stats_;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_DELTA_BUILDER_H_
