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
  constexpr size_t kAhead = 6;
  const auto& entries = part.entries;
  for (size_t i = 0; i < entries.size() && i < kAhead; ++i) node->Prefetch(pkt.Key(entries[i]));
  for (size_t i = 0; i < entries.size(); ++i) {
    const wire::Entry& e = entries[i];
    if (i + kAhead < entries.size()) node->Prefetch(pkt.Key(entries[i + kAhead]));
    // Entries ascend (checked by the decoder), so everything at or below our max is a
    // prefix: already reflected locally.
    if (e.version <= node->max_version()) {
      ++stats_.entries_skipped;
      continue;
    }
    const bool tombstone = e.status == static_cast<uint8_t>(wire::EntryStatus::kTombstone);
    const std::string_view key = pkt.Key(e);
    const std::string_view value = pkt.Value(e);
    node->ApplyEntry(e.version, key, value, tombstone, now_us);
    ++stats_.entries_applied;
    if (events_ != nullptr) {
      events_->OnKey(*node, tombstone ? KeyEvent::kDeleted : KeyEvent::kSet, key, value,
                     e.version);
    }
  }
}

}  // namespace scuttle
