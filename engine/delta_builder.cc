#include "engine/delta_builder.h"

#include <algorithm>
#include <cstring>

#include "engine/digest.h"
#include "wire/absl_compat.h"

namespace scuttle {

uint32_t BlobWriter::Put(std::string_view a, std::string_view b) {
  const uint32_t at = static_cast<uint32_t>(off);
  if (!a.empty()) std::memcpy(blob.data() + off, a.data(), a.size());
  if (!b.empty()) std::memcpy(blob.data() + off + a.size(), b.data(), b.size());
  off += a.size() + b.size();
  return at;
}

wire::NodeRef MakeNodeRef(const NodeState& node, uint32_t name_off) {
  wire::NodeRef r{};
  r.generation = node.generation();
  r.name_off = name_off;
  r.name_len = static_cast<uint8_t>(node.name().size());
  wire::SetNodeRefEndpoint(node.endpoint, &r);
  if (node.leaving) r.flags |= wire::kNodeLeaving;
  return r;
}

// ---- Delta -------------------------------------------------------------------------------

void PeerProjection::Reset(const wire::DecodedPacket& peer) {
  nodes.clear();
  Merge(peer);
  partial = peer.digest.partial;
}

void PeerProjection::Merge(const wire::DecodedPacket& peer) {
  for (const wire::DigestEntry& e : peer.digest.entries) {
    PeerView& v = nodes[AV(peer.Name(e.node))];
    if (!v.listed || e.node.generation > v.generation) {
      v = PeerView{true, e.node.generation, e.last_gc_version, e.max_version};
    } else if (e.node.generation == v.generation) {
      v.last_gc_version = std::max(v.last_gc_version, e.last_gc_version);
      v.max_version = std::max(v.max_version, e.max_version);
    }
  }
  if (!peer.digest.partial) partial = false;
}

void DeltaBuilder::SetProjection(const PeerProjection& projection) {
  peer_ = nullptr;
  peer_index_.clear();
  projection_ = &projection;
}

void DeltaBuilder::Advance(PeerProjection* projection) const {
  for (const Planned& p : planned_) {
    const NodeState& node = *p.c.node;
    PeerView& v = projection->nodes[std::string(node.name())];
    const bool same = v.listed && v.generation == node.generation();
    if (p.c.reset) {
      v.last_gc_version = node.last_gc_version();  // the applier's ResetTo
      v.max_version = 0;
    } else if (!same) {
      v.last_gc_version = 0;  // a new generation starts empty
      v.max_version = 0;
    }
    v.listed = true;
    v.generation = node.generation();
    v.max_version = std::max(v.max_version, p.max_version);
  }
}

void DeltaBuilder::SetPeerDigest(const wire::DecodedPacket& peer) {
  projection_ = nullptr;
  peer_ = &peer;
  peer_index_.clear();
  const auto& entries = peer.digest.entries;
  for (uint32_t i = 0; i < entries.size(); ++i) {
    peer_index_.emplace(peer.Name(entries[i].node), i);
  }
}

bool DeltaBuilder::UnlistedIsUnknown(const NodeState& node, bool partial) const {
  if (partial) return false;
  if (peer_ == nullptr || !peer_->digest.scoped || peer_->digest.scope_buckets == 0) return true;
  const uint16_t buckets = peer_->digest.scope_buckets;
  const uint64_t b = SummaryNodeId(node.name(), node.generation()) & (buckets - 1);
  const auto& scope = peer_->digest.scope;
  return std::binary_search(scope.begin(), scope.end(), b);  // ascending (checked by Decode)
}

PeerView DeltaBuilder::Lookup(const NodeState& node) const {
  PeerView v;
  if (projection_ != nullptr) {
    auto pit = projection_->nodes.find(AV(node.name()));
    return pit == projection_->nodes.end() ? v : pit->second;
  }
  auto it = peer_index_.find(std::string_view(node.name()));
  if (it == peer_index_.end()) return v;
  const wire::DigestEntry& e = peer_->digest.entries[it->second];
  v.listed = true;
  v.generation = e.node.generation;
  v.last_gc_version = e.last_gc_version;
  v.max_version = e.max_version;
  return v;
}

size_t DeltaBuilder::Plan(const Cluster& cluster, size_t budget_bytes) {
  candidates_.clear();
  if (peer_ == nullptr && projection_ == nullptr) {
    cache_valid_ = false;
    planned_.clear();
    entries_.clear();
    blob_bytes_ = 0;
    complete_ = false;
    return 0;
  }
  ++stats_.plans;
  const bool partial = peer_ != nullptr ? peer_->digest.partial : projection_->partial;
  for (const NodeState* node : cluster.nodes()) {
    const PeerView pv = Lookup(*node);
    if (pv.listed && pv.generation > node->generation()) continue;  // we are the stale one
    const bool unseen = !pv.listed || pv.generation < node->generation();
    // Unlisted in a partial digest, or outside a scoped digest's buckets: no information.
    if (!pv.listed && !UnlistedIsUnknown(*node, partial)) continue;
    const Version max_p = unseen ? 0 : pv.max_version;
    const Version gc_p = unseen ? 0 : pv.last_gc_version;
    const Version gc = node->last_gc_version();
    // seed 000: the peer missed a GC (its max is below our last_gc_version) -> reset. A peer
    // already mid-reset at our gc (gc_p >= gc) continues from its max instead.
    const bool reset = max_p < gc && gc_p < gc;
    // A peer mid-reset (max_p < gc_p) takes incremental parts only from a sender that has
    // seen its gc (see DeltaApplier); anything else would be dropped.
    if (!reset && max_p < gc_p && gc < gc_p && node->max_version() < gc_p) continue;
    Candidate c{node, reset ? 0 : max_p, reset ? gc : std::max(max_p, gc_p), reset, unseen, 0};
    if (!reset && node->max_version() <= max_p) continue;  // nothing new for the peer
    c.gap = node->max_version() - c.from;
    candidates_.push_back(c);
  }
  // Unseen nodes first, then the stalest (largest gap); name breaks ties deterministically.
  std::sort(candidates_.begin(), candidates_.end(), [](const Candidate& a, const Candidate& b) {
    if (a.unseen != b.unseen) return a.unseen;
    if (a.gap != b.gap) return a.gap > b.gap;
    return a.node->name() < b.node->name();
  });
  if (CachedPlanValid(cluster, budget_bytes)) {
    ++stats_.plan_cache_hits;
    return cache_.planned_bytes;
  }
  PlanCandidates(budget_bytes);
  cache_valid_ = true;
  cache_.cluster = &cluster;
  cache_.epoch = cluster.epoch();
  cache_.budget = budget_bytes;
  cached_candidates_.assign(candidates_.begin(), candidates_.end());
  cached_marks_.clear();
  for (const Candidate& c : candidates_) cached_marks_.push_back(MarkOf(*c.node));
  return cache_.planned_bytes;
}

bool DeltaBuilder::CachedPlanValid(const Cluster& cluster, size_t budget_bytes) const {
  if (!cache_valid_ || cache_.cluster != &cluster || cache_.epoch != cluster.epoch() ||
      cache_.budget != budget_bytes || cached_candidates_ != candidates_) {
    return false;
  }
  // Same epoch: every cached node pointer is still alive, so reading it is safe.
  for (size_t i = 0; i < candidates_.size(); ++i) {
    if (!(cached_marks_[i] == MarkOf(*candidates_[i].node))) return false;
  }
  return true;
}

void DeltaBuilder::PlanCandidates(size_t budget_bytes) {
  planned_.clear();
  entries_.clear();
  blob_bytes_ = 0;
  size_t budget = budget_bytes;
  blocked_ = false;
  complete_ = true;
  for (const Candidate& c : candidates_) {
    if (!PlanCandidate(c, &budget)) {
      complete_ = false;
      break;
    }
  }
  cache_.planned_bytes = budget_bytes - budget;
}

size_t DeltaBuilder::PlanRanges(const std::vector<VersionRange>& ranges, size_t budget_bytes) {
  peer_ = nullptr;
  projection_ = nullptr;
  cache_valid_ = false;
  planned_.clear();
  entries_.clear();
  blob_bytes_ = 0;
  size_t budget = budget_bytes;
  for (const VersionRange& r : ranges) {
    if (r.to <= r.from) continue;
    Candidate c{r.node, r.from, r.from, false, false, r.to - r.from, r.to};
    if (!PlanCandidate(c, &budget)) break;
  }
  return budget_bytes - budget;
}

// Plans one part; returns false when the budget is exhausted (stop planning).
bool DeltaBuilder::PlanCandidate(const Candidate& c, size_t* budget) {
  const size_t part_cost = wire::kPartWireBytes + c.node->name().size();
  if (part_cost > *budget) return false;
  size_t left = *budget - part_cost;
  const size_t first = entries_.size();
  size_t kv_bytes = 0;
  Version last = c.from;
  bool truncated = false;
  const Version cap = c.cap;
  const Version tomb_floor = c.tomb_floor;
  c.node->ForEachAbove(c.from, [&](const NodeState::Slot& s) {
    if (s.version > cap) return false;
    if (s.status == KeyStatus::kTombstone && s.version <= tomb_floor) return true;
    const size_t kv = size_t{s.key_len} + s.value_len;
    if (wire::kEntryWireBytes + kv > left) {
      truncated = true;
      return false;
    }
    left -= wire::kEntryWireBytes + kv;
    kv_bytes += kv;
    last = s.version;
    wire::Entry e;
    e.version = s.version;
    e.off = 0;
    e.value_len = s.value_len;
    e.key_len = s.key_len;
    e.status = static_cast<uint8_t>(s.status == KeyStatus::kTombstone
                                        ? wire::EntryStatus::kTombstone
                                        : wire::EntryStatus::kSet);
    e.reserved0 = 0;
    e.reserved1 = 0;
    entries_.push_back({c.node->KeyValueOf(s).data(), e});
    return true;
  });
  const size_t count = entries_.size() - first;
  if (truncated && count == 0) {
    // Not even the first entry fits: stop (the packet is full), and note it if nothing at
    // all was planned, so the caller can make room.
    blocked_ = planned_.empty();
    return false;
  }
  // seed 000: a truncated part claims only up to its last entry; a complete one claims the
  // node's max_version (skipped tombstones and overwritten versions included).
  const Version max_version = truncated ? last : std::min(c.cap, c.node->max_version());
  planned_.push_back(Planned{c, max_version, count, first, truncated});
  blob_bytes_ += c.node->name().size() + kv_bytes;
  *budget = left;
  return !truncated;
}

bool DeltaBuilder::Write(wire::PacketEncoder& enc, BlobWriter& blob) {
  for (const Planned& p : planned_) {
    const NodeState& node = *p.c.node;
    const wire::NodeRef ref = MakeNodeRef(node, blob.Put(node.name()));
    bool ok = false;
    auto out = enc.AddPart(ref, p.c.from, node.last_gc_version(), p.max_version,
                           node.max_version(), p.count, &ok);
    if (!ok) return false;
    // Key and value sit back to back in the arena, and entries written in version order sit
    // back to back too: copy each run of adjacent entries with one memcpy.
    const PlannedEntry* pe = entries_.data() + p.first;
    const char* run = nullptr;
    size_t run_bytes = 0;
    for (size_t i = 0; i < p.count; ++i) {
      if (pe[i].kv != run + run_bytes) {
        blob.Put(std::string_view(run, run_bytes));
        run = pe[i].kv;
        run_bytes = 0;
      }
      wire::Entry& e = out[i];
      e = pe[i].e;
      e.off = static_cast<uint32_t>(blob.off + run_bytes);
      run_bytes += size_t{e.key_len} + e.value_len;
    }
    blob.Put(std::string_view(run, run_bytes));
    ++stats_.parts;
    stats_.entries += p.count;
    if (p.c.reset) ++stats_.resets;
    if (p.truncated) ++stats_.truncated;
  }
  return true;
}

}  // namespace scuttle
