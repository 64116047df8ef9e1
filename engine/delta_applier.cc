#include "engine/delta_applier.h"


namespace scuttle {

const char* PartOutcomeName(PartOutcome o) {
  switch (o) {
    case PartOutcome::kApplied: return "applied";
    case PartOutcome::kReset: return "reset";
    case PartOutcome::kGap: return "gap";
    case PartOutcome::kStale: return "stale";
    case PartOutcome::kForgotten: return "forgotten";
    case PartOutcome::kBehindReset: return "behind_reset";
    case PartOutcome::kMissedGc: return "missed_gc";
    case PartOutcome::kStaleGeneration: return "stale_generation";
    case PartOutcome::kSelf: return "self";
    case PartOutcome::kNodeLimit: return "node_limit";
    case PartOutcome::kKeyLimit: return "key_limit";
    case PartOutcome::kCount: break;
  }
  return "unknown";
}

const char* KeyEventName(KeyEvent e) {
  switch (e) {
    case KeyEvent::kSet: return "set";
    case KeyEvent::kDeleted: return "deleted";
    case KeyEvent::kExpired: return "expired";
  }
  return "unknown";
}

const char* MemberEventName(MemberEvent e) {
  switch (e) {
    case MemberEvent::kJoined: return "joined";
    case MemberEvent::kAlive: return "alive";
    case MemberEvent::kSuspect: return "suspect";
    case MemberEvent::kDead: return "dead";
    case MemberEvent::kLeft: return "left";
    case MemberEvent::kForgotten: return "forgotten";
    case MemberEvent::kRestarted: return "restarted";
  }
  return "unknown";
}

void DeltaApplier::Apply(const wire::DecodedPacket& pkt, TimeUs now_us) {
  for (size_t i = 0; i < pkt.num_parts(); ++i) {
    const PartOutcome o = ApplyPart(pkt, pkt.part(i), now_us);
    ++stats_.parts[static_cast<size_t>(o)];
  }
}

PartOutcome DeltaApplier::ApplyPart(const wire::DecodedPacket& pkt,
                                    const wire::NodeDeltaView& part, TimeUs now_us) {
  const std::string_view name = pkt.Name(*part.node);
  const Generation gen = part.node->generation;
  if (name == cluster_->self().name()) return PartOutcome::kSelf;
  NodeState* node = cluster_->Find(name);
  if (node == nullptr && cluster_->IsForgotten(name, gen, 0, now_us)) return PartOutcome::kForgotten;
  if (node == nullptr && cluster_->size() >= limits_.max_nodes) return PartOutcome::kNodeLimit;
  if (node != nullptr && gen < node->generation()) return PartOutcome::kStaleGeneration;
  if (node == nullptr || gen > node->generation()) {
    bool replaced = false;
    node = cluster_->Upsert(name, gen, &replaced);
    node->endpoint = wire::NodeRefEndpoint(*part.node);
    InitLiveness(node->liveness, now_us);
    if (replaced) ++stats_.generations_replaced;
    if (events_ != nullptr) {
      events_->OnMember(*node, replaced ? MemberEvent::kRestarted : MemberEvent::kJoined);
    }
  }
  const Version gc = node->last_gc_version();
  const Version max = node->max_version();
  const bool reset = part.from_version_excluded == 0 && part.last_gc_version > gc &&
                     max < part.last_gc_version;
  if (!reset) {
    if (part.from_version_excluded > max) return PartOutcome::kGap;
    if (part.max_version <= max) return PartOutcome::kStale;
    // Mid-reset (max < gc) we hold no key whose last update is a delete at or below gc. A
    // sender that had not seen version gc may still hold such a key as a set, so its
    // sets would resurrect it: accept only senders that reached gc (by max or by gc).
    if (max < gc && part.last_gc_version < gc && part.source_max_version < gc) {
      return PartOutcome::kBehindReset;
    }
    // seed 000: the sender collected tombstones above everything we hold (its gc is past
    // both our max and our gc), so deletes we never saw may be missing from this part.
    // Only a reset may follow; an incremental part built on a stale or projected view of
    // us is dropped.
    if (part.last_gc_version > max && part.last_gc_version > gc) return PartOutcome::kMissedGc;
  }
  // Bound the keys one node may hold (Limits): drop the part whole rather than apply half.
  if (node->num_keys() + part.entries.size() > limits_.max_keys_per_node &&
      !reset) {
    return PartOutcome::kKeyLimit;
  }
  if (reset) {
    if (part.entries.size() > limits_.max_keys_per_node) return PartOutcome::kKeyLimit;
    node->ResetTo(part.last_gc_version);
    if (events_ != nullptr) events_->OnReset(*node);
  }
  ApplyEntries(node, pkt, part, now_us);
  if (part.max_version > node->max_version()) node->RaiseMaxVersion(part.max_version);
  return reset ? PartOutcome::kReset : PartOutcome::kApplied;
}

void DeltaApplier::ApplyEntries(NodeState* node, const wire::DecodedPacket& pkt,
                                const wire::NodeDeltaView& part, TimeUs now_us) {
  const auto& entries = part.entries;
  // Entries ascend (checked by the decoder), so everything at or below our max is a
  // prefix: already reflected locally.
  size_t i = 0;
  while (i < entries.size() && entries[i].version <= node->max_version()) ++i;
  stats_.entries_skipped += i;
  // Decode the rest into a reused buffer and apply it as one run, so NodeState overlaps
  // the lookups of neighbouring entries (see NodeState::ApplyBatch); events follow, in
  // entry order. The buffer holds at most one packet's entries.
  updates_.clear();
  for (size_t k = i; k < entries.size(); ++k) {
    const wire::Entry& e = entries[k];
    updates_.push_back({e.version, pkt.Key(e), pkt.Value(e),
                        e.status == static_cast<uint8_t>(wire::EntryStatus::kTombstone)});
  }
  node->ApplyBatch(updates_, now_us);
  stats_.entries_applied += updates_.size();
  if (events_ != nullptr) {
    for (const NodeState::Update& u : updates_) {
      events_->OnKey(*node, u.tombstone ? KeyEvent::kDeleted : KeyEvent::kSet, u.key, u.value,
                     u.version);
    }
  }
  updates_.clear();  // its views point into the packet
}

}  // namespace scuttle
