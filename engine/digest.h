// Digest construction (seed 000): what a Syn, SynAck or Ack tells a peer about every node
// this engine knows, and the compact per-bucket summary that replaces it in steady state
// (DESIGN §2 "digest scale").
#ifndef SCUTTLE_ENGINE_DIGEST_H_
#define SCUTTLE_ENGINE_DIGEST_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "engine/cluster.h"
#include "engine/delta_builder.h"
#include "wire/packet.h"

namespace scuttle {

// A node's id on the wire summary: a stable 64-bit hash of (name, generation). Stable
// across processes and builds (FNV-1a then a splitmix64 finalizer), never absl::Hash.
uint64_t SummaryNodeId(std::string_view name, Generation generation);

// The compact digest (DESIGN §2 "digest scale"). Steady state has almost nothing to say:
// a Syn carries a hash per bucket of nodes plus 16-bit heartbeats in an order both sides
// agree on, and only buckets whose hashes differ are listed entry by entry.
//
// Nodes are ordered by (id mod kFineBuckets, id). A bucket of a coarser count B (a power
// of two dividing kFineBuckets) is the union of fine buckets f with f mod B == b, so one
// fine table serves every B a peer may ask for. Per-node hashes cover (id, max_version,
// last_gc_version, leaving), never the heartbeat, so an idle cluster has equal buckets.
class SummaryIndex {
 public:
  static constexpr size_t kFineBuckets = wire::kMaxSummaryBuckets;

  // Brings the index up to date: the order when membership changed (cluster epoch), the
  // hashes when `values_changed` or the order was rebuilt. O(n log n) / O(n).
  void Refresh(const Cluster& cluster, bool values_changed);
  // With liveness, a node this engine holds dead hashes differently (bounded quiet
  // handshakes: deaths travel by anti-entropy too; docs/detection.md). Every node of a
  // cluster must agree on it, or their buckets never match.
  void set_liveness(bool on) { liveness_ = on; }

  uint64_t membership() const { return membership_; }
  uint32_t count() const { return static_cast<uint32_t>(order_.size()); }
  // Nodes in summary order (ids are recomputed when needed: 8 bytes a node, not 16).
  const std::vector<NodeState*>& order() const { return order_; }
  size_t self_position() const { return self_pos_; }
  uint64_t self_id() const { return self_id_; }
  // The hash of bucket b out of `buckets` (a power of two <= kFineBuckets).
  uint64_t BucketHash(size_t buckets, size_t b) const;
  static size_t BucketOf(uint64_t id, size_t buckets) { return id & (buckets - 1); }
  // Positions [begin, end) in order() of the nodes in fine bucket f.
  size_t FineBegin(size_t f) const { return fine_start_[f]; }
  size_t FineEnd(size_t f) const { return fine_start_[f + 1]; }
  // The bucket count a Syn uses for n nodes: about 32 nodes a bucket, at most
  // kFineBuckets, and at most a quarter of `budget_bytes`.
  static size_t ChooseBuckets(size_t n, size_t budget_bytes);

 private:
  struct Item {
    uint64_t id;
    NodeState* node;
  };
  std::vector<NodeState*> order_;
  std::vector<Item> sort_scratch_;  // emptied after each rebuild
  uint64_t self_id_ = 0;
  std::vector<uint32_t> fine_start_ = std::vector<uint32_t>(kFineBuckets + 1, 0);
  std::vector<uint64_t> fine_hash_ = std::vector<uint64_t>(kFineBuckets, 0);
  uint64_t membership_ = 0;
  uint64_t epoch_ = 0;
  bool liveness_ = false;
  size_t self_pos_ = 0;
};

class DigestBuilder {
 public:
  // Plans a digest of every node, or a rotating subset when it does not fit the budget
  // (then marked partial). Self is always included, and so is `peer` when given (a
  // SynAck's digest must tell the initiator what we hold of its own map, or its Ack could
  // not send it). Returns the wire bytes planned.
  size_t Plan(const Cluster& cluster, size_t budget_bytes, const NodeState* peer = nullptr);
  // Plans the entries of the nodes in `scope` (buckets out of `buckets`), rotating when
  // they do not fit; `peer` is listed when its bucket is in scope. buckets == 0 means every
  // bucket (the whole digest, as Plan). The digest is always marked partial: nodes outside
  // the scope are not unknown to us. Returns the wire bytes planned.
  // With `fill_rest`, room left after a complete scope goes to other nodes, rotating.
  size_t PlanScope(const Cluster& cluster, const SummaryIndex& index, uint16_t buckets,
                   std::span<const uint16_t> scope, size_t budget_bytes,
                   const NodeState* peer = nullptr, bool fill_rest = false,
                   bool list_self = false);
  // Adds a summary to the planned digest: `buckets` bucket hashes (0: none) and up to
  // `max_heartbeats` positional heartbeats, rotating. Returns the wire bytes planned.
  size_t PlanSummary(const SummaryIndex& index, size_t buckets, size_t max_heartbeats,
                     size_t budget_bytes);
  // Plans no entries at all (a summary-only Syn).
  size_t PlanNone() {
    planned_.clear();
    blob_bytes_ = 0;
    scoped_ = false;
    partial_ = true;
    return 0;
  }
  // Drops any planned summary (Plan/PlanScope keep it until the next Write).
  void ClearSummary() { summary_ = nullptr; }
  // Entries flag the nodes this engine holds dead (wire::kNodeDead).
  void set_liveness(bool on) { liveness_ = on; }
  size_t blob_bytes() const { return blob_bytes_; }
  // REQUIRES: Plan() was called and the cluster has not changed since.
  bool Write(wire::PacketEncoder& enc, BlobWriter& blob) const;

 private:
  size_t PlanList(std::span<const NodeState* const> candidates, size_t budget_bytes,
                  const NodeState* must1, const NodeState* must2, size_t* cursor);

  // Candidates of a scoped digest; given back above this many (one per member would be
  // N² entries over a simulated cluster).
  static constexpr size_t kKeepScratch = 1024;
  std::vector<const NodeState*> planned_;
  std::vector<const NodeState*> scratch_;
  size_t blob_bytes_ = 0;
  bool partial_ = false;
  size_t cursor_ = 0;        // rotation start for partial digests
  size_t scope_cursor_ = 0;  // rotation start within scoped digests
  size_t extra_cursor_ = 0;  // rotation start of entries beyond the scope
  // Scope (written as Digest.scope / scope_buckets).
  bool scoped_ = false;
  uint16_t scope_buckets_ = 0;
  std::span<const uint16_t> scope_;
  // Summary.
  const SummaryIndex* summary_ = nullptr;
  size_t summary_buckets_ = 0;
  size_t hb_base_ = 0;
  size_t hb_count_ = 0;
  size_t hb_cursor_ = 0;
  bool liveness_ = false;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_DIGEST_H_
