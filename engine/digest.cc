#include "engine/digest.h"

namespace scuttle {

// ---- Digest ------------------------------------------------------------------------------

size_t DigestBuilder::Plan(const Cluster& cluster, size_t budget_bytes, const NodeState* peer) {
  planned_.clear();
  blob_bytes_ = 0;
  const auto& nodes = cluster.nodes();
  auto cost = [](const NodeState* n) { return sizeof(wire::DigestEntry) + n->name().size(); };
  // Self (and the peer) are always listed, even past the budget (callers reserve room).
  size_t used = cost(&cluster.self());
  planned_.push_back(&cluster.self());
  if (peer != nullptr && peer != &cluster.self()) {
    used += cost(peer);
    planned_.push_back(peer);
  }
  // Rotate through the others so every node is advertised within a few rounds even when
  // the whole digest does not fit (DESIGN §2 "rotating partial digest").
  const size_t n = nodes.size();
  size_t i = 0;
  for (; i < n; ++i) {
    const NodeState* node = nodes[(cursor_ + i) % n];
    if (node == &cluster.self() || node == peer) continue;
    if (used + cost(node) > budget_bytes) break;
    used += cost(node);
    planned_.push_back(node);
  }
  partial_ = planned_.size() < n;
  // Next time, start at the first node that did not fit.
  cursor_ = partial_ ? (cursor_ + i) % n : 0;
  for (const NodeState* node : planned_) blob_bytes_ += node->name().size();
  return used;
}

bool DigestBuilder::Write(wire::PacketEncoder& enc, BlobWriter& blob) const {
  auto entries = enc.AllocDigest(planned_.size(), partial_);
  if (entries.size() != planned_.size()) return false;
  for (size_t i = 0; i < planned_.size(); ++i) {
    const NodeState& node = *planned_[i];
    wire::DigestEntry& e = entries[i];
    e.node = MakeNodeRef(node, blob.Put(node.name()));
    e.heartbeat = node.heartbeat;
    e.last_gc_version = node.last_gc_version();
    e.max_version = node.max_version();
  }
  return true;
}

}  // namespace scuttle
