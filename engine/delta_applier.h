// Applying a received delta (seed 000), part by part, under loss, duplication and
// reordering. Every outcome of a part is counted; remote input is never asserted on.
//
// For a part {node, from, gc', max', entries} against local (gc, max):
//   - generation older than ours → stale_generation (dropped); newer → state replaced.
//   - reset: from == 0, gc' > gc and max < gc' (we really missed a GC) → ResetTo(gc'),
//     then apply every entry.
//   - gap: from > max → dropped (applying it could skip updates we never saw).
//   - stale: max' <= max → no-op (old or duplicate).
//   - missed_gc: not a reset, yet the sender's gc is above our max and our gc: it may
//     have collected deletes we never saw → dropped (only a reset can follow).
//   - behind_reset: we are mid-reset (max < gc) and the sender had reached neither our gc
//     by its gc nor by its own max → dropped (its sets could resurrect deleted keys).
//   - otherwise apply, in version order, only entries above max (those at or below are
//     already reflected, and re-applying a set could resurrect a key whose tombstone we
//     GC'd), then max = max'.
// Each applied part raises (gc, max) lexicographically.
#ifndef SCUTTLE_ENGINE_DELTA_APPLIER_H_
#define SCUTTLE_ENGINE_DELTA_APPLIER_H_

#include <cstdint>
#include <vector>

#include "engine/cluster.h"
#include "engine/events.h"
#include "wire/packet.h"

namespace scuttle {

enum class PartOutcome : uint8_t {
  kApplied,
  kReset,
  kGap,
  kStale,
  kBehindReset,  // we are mid-reset and the sender had not reached our last_gc_version
  kMissedGc,     // incremental part from a sender whose gc is past our max and gc
  kStaleGeneration,
  kSelf,        // a part about our own node: we are its only writer
  kForgotten,   // a node (generation) we forgot recently: not re-learned (seed 002)
  kNodeLimit,   // unknown node and the cluster is at Limits::max_nodes
  kKeyLimit,    // would exceed Limits::max_keys_per_node: dropped whole, nothing applied
  kCount,
};
inline constexpr size_t kPartOutcomeCount = static_cast<size_t>(PartOutcome::kCount);
const char* PartOutcomeName(PartOutcome o);

class DeltaApplier {
 public:
  struct Stats {
    uint64_t parts[kPartOutcomeCount] = {};
    uint64_t entries_applied = 0;
    uint64_t entries_skipped = 0;  // at or below local max: already reflected
    uint64_t generations_replaced = 0;
  };

  DeltaApplier(Cluster* cluster, const Limits& limits, EventSink* events)
      : cluster_(cluster), limits_(limits), events_(events) {}

  // Applies every part of a decoded SynAck/Ack.
  void Apply(const wire::DecodedPacket& pkt, TimeUs now_us);
  PartOutcome ApplyPart(const wire::DecodedPacket& pkt, const wire::NodeDeltaView& part,
                        TimeUs now_us);
  // Counts an outcome of ApplyPart called directly (Apply counts its own).
  void Count(PartOutcome o) { ++stats_.parts[static_cast<size_t>(o)]; }
  const Stats& stats() const { return stats_; }

 private:
  void ApplyEntries(NodeState* node, const wire::DecodedPacket& pkt,
                    const wire::NodeDeltaView& part, TimeUs now_us);

  Cluster* cluster_;
  Limits limits_;
  EventSink* events_;
  Stats stats_;
  std::vector<NodeState::Update> updates_;  // ApplyEntries' batch (reused; ≤ one packet's)
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_DELTA_APPLIER_H_
