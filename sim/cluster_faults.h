// Planted protocol bugs for the cluster simulator: a network hook that re-encodes a
// SynAck/Ack with its delta parts edited, so a test can check that the invariant
// checkers notice (a checker that never fires is not a checker).
#ifndef SCUTTLE_SIM_CLUSTER_FAULTS_H_
#define SCUTTLE_SIM_CLUSTER_FAULTS_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/rng.h"

namespace scuttle::sim {

enum class PlantedBug : uint8_t {
  kNone,
  // Removes every tombstone entry of a part, keeping from/max: the receiver claims the
  // deletes and never applies them (a delete is lost; the key lives on).
  kDropTombstones,
  // Removes the first entry of a part, keeping from_version_excluded: a gapped delta
  // (really starting after that entry) presented as contiguous, so it is applied.
  kGapApplied,
  // Claims max_version 1000 above the part's last entry (a truncated delta claiming more
  // than it carries).
  kInflateMax,
};
absl::StatusOr<PlantedBug> ParsePlantedBug(std::string_view s);
const char* PlantedBugName(PlantedBug b);

// Re-encodes `datagram` (a SynAck or Ack) with `bug` applied to each non-empty delta part
// with probability `p`. Returns true when it changed the datagram; other message types,
// undecodable datagrams and unlucky draws leave it untouched.
bool PlantBug(PlantedBug bug, double p, std::vector<uint8_t>* datagram, Rng& rng);

}  // namespace scuttle::sim

#endif  // SCUTTLE_SIM_CLUSTER_FAULTS_H_
