#include "engine/digest.h"

#include <algorithm>
#include <bit>

namespace scuttle {

namespace {

uint64_t Mix64(uint64_t z) {  // splitmix64 finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t ValueHash(uint64_t id, const NodeState& n, bool liveness) {
  const bool dead = liveness && n.liveness.state == MemberState::kDead;
  return Mix64(id + 3 * Mix64(n.max_version()) + Mix64(n.last_gc_version() ^ 0x5bd1e995ULL) +
               (n.leaving ? 0x9e3779b97f4a7c15ULL : 0) + (dead ? 0x2545f4914f6cdd1dULL : 0));
}

}  // namespace

uint64_t SummaryNodeId(std::string_view name, Generation generation) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
  return Mix64(h ^ Mix64(generation));
}

// ---- Summary index -----------------------------------------------------------------------

void SummaryIndex::Refresh(const Cluster& cluster, bool values_changed) {
  const bool reorder = epoch_ != cluster.epoch();
  if (reorder) {
    epoch_ = cluster.epoch();
    std::vector<Item>& items = sort_scratch_;
    items.clear();
    items.reserve(cluster.nodes().size());
    membership_ = 0;
    for (NodeState* n : cluster.nodes()) {
      const uint64_t id = SummaryNodeId(n->name(), n->generation());
      items.push_back({id, n});
      membership_ += Mix64(id);
    }
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      const uint64_t fa = a.id & (kFineBuckets - 1), fb = b.id & (kFineBuckets - 1);
      return fa != fb ? fa < fb : a.id < b.id;
    });
    std::fill(fine_start_.begin(), fine_start_.end(), 0);
    for (const Item& it : items) ++fine_start_[(it.id & (kFineBuckets - 1)) + 1];
    for (size_t f = 0; f < kFineBuckets; ++f) fine_start_[f + 1] += fine_start_[f];
    // Exactly sized (resize would double): one entry per member in every replica.
    if (order_.capacity() != items.size()) order_ = std::vector<NodeState*>(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      order_[i] = items[i].node;
      if (items[i].node == &cluster.self()) {
        self_pos_ = i;
        self_id_ = items[i].id;
      }
    }
    items = std::vector<Item>();
  }
  if (!reorder && !values_changed) return;
  std::fill(fine_hash_.begin(), fine_hash_.end(), 0);
  for (size_t f = 0; f < kFineBuckets; ++f) {
    uint64_t h = 0;
    for (size_t i = fine_start_[f]; i < fine_start_[f + 1]; ++i) {
      const NodeState& n = *order_[i];
      h ^= ValueHash(SummaryNodeId(n.name(), n.generation()), n, liveness_);
    }
    fine_hash_[f] = h;
  }
}

uint64_t SummaryIndex::BucketHash(size_t buckets, size_t b) const {
  uint64_t h = 0;
  for (size_t f = b; f < kFineBuckets; f += buckets) h ^= fine_hash_[f];
  return h;
}

size_t SummaryIndex::ChooseBuckets(size_t n, size_t budget_bytes) {
  size_t b = std::bit_ceil(std::max<size_t>((n + 31) / 32, 1));
  b = std::min(b, kFineBuckets);
  while (b > 1 && b * sizeof(uint64_t) > budget_bytes / 4) b /= 2;
  return b;
}

// ---- Digest ------------------------------------------------------------------------------

size_t DigestBuilder::PlanList(std::span<const NodeState* const> candidates,
                               size_t budget_bytes, const NodeState* must1,
                               const NodeState* must2, size_t* cursor) {
  planned_.clear();
  blob_bytes_ = 0;
  auto cost = [](const NodeState* n) { return sizeof(wire::DigestEntry) + n->name().size(); };
  // The must-list nodes go in even past the budget (callers reserve room).
  size_t used = 0;
  for (const NodeState* m : {must1, must2}) {
    if (m == nullptr || (m == must2 && must1 == must2)) continue;
    used += cost(m);
    planned_.push_back(m);
  }
  // Rotate through the others so every node is advertised within a few rounds even when
  // the whole digest does not fit (DESIGN §2 "rotating partial digest").
  const size_t n = candidates.size();
  size_t i = 0;
  size_t start = n > 0 ? *cursor % n : 0;
  size_t listed = 0;
  for (; i < n; ++i) {
    const NodeState* node = candidates[(start + i) % n];
    if (node == must1 || node == must2) {
      ++listed;
      continue;
    }
    if (used + cost(node) > budget_bytes) break;
    used += cost(node);
    planned_.push_back(node);
    ++listed;
  }
  partial_ = listed < n;
  // Next time, start at the first node that did not fit. A list that fit whole (an empty
  // scope from a peer already in sync, a small bucket) leaves the cursor alone: resetting
  // it there made the tight digests of 600-byte packets list the same first nodes to every
  // out-of-sync peer, which then never learned the nodes further along the order.
  if (partial_) *cursor = (start + i) % n;
  for (const NodeState* node : planned_) blob_bytes_ += node->name().size();
  return used;
}

size_t DigestBuilder::Plan(const Cluster& cluster, size_t budget_bytes, const NodeState* peer) {
  scoped_ = false;
  const auto& nodes = cluster.nodes();
  const size_t used = PlanList({nodes.data(), nodes.size()}, budget_bytes, &cluster.self(),
                               peer != &cluster.self() ? peer : nullptr, &cursor_);
  // Self and the peer are in the candidate list too; "partial" counts them once.
  return used;
}

size_t DigestBuilder::PlanScope(const Cluster& cluster, const SummaryIndex& index,
                                uint16_t buckets, std::span<const uint16_t> scope,
                                size_t budget_bytes, const NodeState* peer, bool fill_rest,
                                bool list_self) {
  // The scope vector comes off the top.
  const size_t scope_bytes = 16 + scope.size() * sizeof(uint16_t);
  budget_bytes = budget_bytes > scope_bytes ? budget_bytes - scope_bytes : 0;
  if (buckets == 0) {
    const size_t used = Plan(cluster, budget_bytes, peer);
    scoped_ = true;
    scope_buckets_ = 0;
    scope_ = {};
    return used + scope_bytes;
  }
  // The peer is listed unconditionally when in scope (its own updates then flow in this
  // exchange), and so are we when `list_self` (an Ack introduces its sender).
  scratch_.clear();
  const NodeState* must_peer = nullptr;
  const NodeState* must_self = nullptr;
  for (uint16_t b : scope) {
    for (size_t f = b; f < SummaryIndex::kFineBuckets; f += buckets) {
      for (size_t i = index.FineBegin(f); i < index.FineEnd(f); ++i) {
        const NodeState* n = index.order()[i];
        scratch_.push_back(n);
        if (n == peer) must_peer = n;
        if (n == &cluster.self() && list_self) must_self = n;
      }
    }
  }
  size_t used = PlanList(scratch_, budget_bytes, must_peer, must_self, &scope_cursor_);
  // A scope of most buckets (a joining peer) lists most members; keep a small scratch for
  // the steady state's few differing buckets and give the large one back.
  if (scratch_.capacity() > kKeepScratch) scratch_ = std::vector<const NodeState*>();
  scoped_ = true;
  scope_buckets_ = buckets;
  scope_ = scope;
  if (fill_rest && !partial_) {
    // Memberships differ, so heartbeats cannot travel by position: spend the rest of the
    // budget on entries outside the scope, rotating (listed entries carry heartbeats and
    // introduce nodes; outside the scope they say nothing about unlisted nodes).
    std::vector<bool> in_scope(buckets, false);
    for (uint16_t b : scope) in_scope[b] = true;
    const auto& order = index.order();
    const size_t n = order.size();
    size_t k = 0;
    for (; k < n; ++k) {
      const NodeState* node = order[(extra_cursor_ + k) % n];
      const uint64_t id = SummaryNodeId(node->name(), node->generation());
      if (in_scope[SummaryIndex::BucketOf(id, buckets)]) continue;
      const size_t cost = sizeof(wire::DigestEntry) + node->name().size();
      if (used + cost > budget_bytes) break;
      used += cost;
      planned_.push_back(node);
      blob_bytes_ += node->name().size();
    }
    extra_cursor_ = n > 0 ? (extra_cursor_ + k) % n : 0;
  }
  return used + scope_bytes;
}

size_t DigestBuilder::PlanSummary(const SummaryIndex& index, size_t buckets,
                                  size_t max_heartbeats, size_t budget_bytes) {
  summary_ = &index;
  summary_buckets_ = buckets;
  const size_t n = index.count();
  const size_t fixed = 64 + buckets * sizeof(uint64_t);
  // Heartbeats take at most half of what is left, so listed entries keep room.
  const size_t room =
      budget_bytes > 2 * fixed ? (budget_bytes / 2 - fixed) / sizeof(uint16_t) : 0;
  hb_count_ = std::min({n, max_heartbeats, room});
  hb_base_ = n > 0 ? hb_cursor_ % n : 0;
  hb_cursor_ = hb_count_ < n ? hb_base_ + hb_count_ : 0;
  return fixed + hb_count_ * sizeof(uint16_t);
}

bool DigestBuilder::Write(wire::PacketEncoder& enc, BlobWriter& blob) const {
  if (summary_ != nullptr) {
    const SummaryIndex& index = *summary_;
    const auto& order = index.order();
    enc.SetSummary(index.membership(), index.count(), static_cast<uint32_t>(hb_base_),
                   order[index.self_position()]->heartbeat);
    if (summary_buckets_ > 0) {
      auto b = enc.AllocSummaryBuckets(summary_buckets_);
      if (b.size() != summary_buckets_) return false;
      for (size_t i = 0; i < summary_buckets_; ++i) b[i] = index.BucketHash(summary_buckets_, i);
    }
    if (hb_count_ > 0) {
      auto hb = enc.AllocHeartbeats(hb_count_);
      if (hb.size() != hb_count_) return false;
      for (size_t i = 0; i < hb_count_; ++i) {
        hb[i] = static_cast<uint16_t>(order[(hb_base_ + i) % order.size()]->heartbeat);
      }
    }
  }
  if (scoped_) {
    auto sc = enc.AllocScope(scope_.size(), scope_buckets_);
    if (sc.size() != scope_.size()) return false;
    std::copy(scope_.begin(), scope_.end(), sc.begin());
  }
  auto entries = enc.AllocDigest(planned_.size(), partial_);
  if (entries.size() != planned_.size()) return false;
  for (size_t i = 0; i < planned_.size(); ++i) {
    const NodeState& node = *planned_[i];
    wire::DigestEntry& e = entries[i];
    e.node = MakeNodeRef(node, blob.Put(node.name()));
    if (liveness_ && node.liveness.state == MemberState::kDead) e.node.flags |= wire::kNodeDead;
    e.heartbeat = node.heartbeat;
    e.last_gc_version = node.last_gc_version();
    e.max_version = node.max_version();
  }
  return true;
}

}  // namespace scuttle
