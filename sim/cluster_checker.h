// Invariant checkers of the cluster simulator (DESIGN §11), run around every delivered
// datagram on exactly the (replica, owner) pairs the datagram touched.
//
// The checker records every owner's full update history (each Set / Delete / TTL expiry
// with its version, seen through the owner's EventSink), per (owner name, generation).
// Around a delivery to replica R it snapshots R's (generation, last_gc_version,
// max_version) of every owner named in the datagram's delta, and afterwards checks:
//
//  - monotonic: (gc, max) per (R, owner, generation) only rises lexicographically; a
//    reset must raise gc; a generation never goes back; applied entry versions ascend
//    above the old max;
//  - seed 000 invariant, per key k of owner O at R, with m = R.max, T = max(R.max, R.gc):
//    replaying O's history onto R's live map (every set with version > m, every delete
//    with version > T, in version order) must give O's current map. Keys whose last
//    update is above the threshold are overwritten by the replay, so only the "covered"
//    keys constrain R: R's live value must equal O's. With strict_seed_invariant the
//    replay is the literal one over the *full* history: a delete d in (m, T] (inside a
//    reset window) that superseded a set s in (m, d) makes the replay resurrect s, which
//    the compacted form (one latest update per key, what a delta actually carries) does
//    not; see cluster_checker.cc;
//  - no resurrection: R never applies a set at version s of a key when R had already
//    covered (before this datagram, same generation) a delete d > s of that key and d is
//    O's last update of the key. When O has updated the key after d, the same event is
//    counted as a stale regression instead: a monotonic-read anomaly (the replica shows a value
//    older than a delete it had reflected) that the seed-000 invariant allows, since the
//    newer set is above R's max and still to come. It arises only through reset windows:
//    a sender whose max is past d may still hold the key's old set, because every delta it
//    received carried the key's newest version or, truncated, nothing for it. It is a
//    violation only with Options::stale_regression_is_violation;
//  - no phantom: every entry R holds matches an update in O's history (version, kind,
//    value).
// Which keys: after a plain apply that raised max from m to m', the keys O updated in
// (m, m'] plus the keys R's EventSink reported; after a reset, a new generation or a new
// node, all of O's keys. Owner writes and GC cannot break a replica's invariant (a new
// version is above every replica's max; GC removes only tombstones at or below max), so
// nothing else needs re-checking.
#ifndef SCUTTLE_SIM_CLUSTER_CHECKER_H_
#define SCUTTLE_SIM_CLUSTER_CHECKER_H_

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/engine.h"
#include "engine/events.h"
#include "engine/node_state.h"

namespace scuttle::sim {

enum class ViolationKind : uint8_t {
  kNonMonotonic,         // (gc, max) fell lexicographically, or a generation went back
  kResetWithoutGcRaise,  // a reset that did not raise last_gc_version
  kVersionOrder,         // an applied entry at or below the old max / out of order
  kSeedInvariant,        // seed 000 invariant (compacted replay)
  kSeedInvariantStrict,  // seed 000 invariant, literal full-history replay
  kResurrection,         // a key deleted at its owner came back at a replica
  kStaleRegression,      // a replica went back to a set older than a delete it had covered,
                         // of a key the owner has set again since (an anomaly; see below)
  kPhantom,              // a replica entry no owner write produced
  kOwnerModel,           // the owner's own map disagrees with its recorded history
  kNotConverged,         // after healing, a replica did not converge within the bound
  kNotDeclaredDead,      // a crashed node not dead/forgotten at a live node within the bound
  kLiveDeclaredDead,     // a node up and responsive for the bound still dead at a live node
                         // (a refutation lost or ignored; DESIGN §5)
  kCount,
};
const char* ViolationKindName(ViolationKind k);

struct Violation {
  ViolationKind kind;
  uint64_t seed = 0;
  uint32_t round = 0;
  std::string replica;
  std::string owner;
  Generation generation = 0;
  std::string key;
  std::string detail;
  std::string ToString() const;
};

class ClusterChecker {
 public:
  struct Options {
    uint64_t seed = 0;
    bool strict_seed_invariant = false;
    bool stale_regression_is_violation = false;
    size_t max_recorded = 32;
    std::ostream* log = nullptr;  // each recorded violation is printed here
  };
  ClusterChecker(Options options, std::vector<std::string> names);

  void set_round(uint32_t round) { round_ = round; }

  // ---- Owner side (the owner's EventSink, node == self) ----
  void OnOwnerKey(uint32_t owner, Generation gen, KeyEvent event, std::string_view key,
                  std::string_view value, Version version);

  // ---- Around one delivery to `replica` ----
  // REQUIRES: engine outlives AfterDeliver; datagram is what the engine will be given.
  void BeforeDeliver(uint32_t replica, uint32_t from, const Engine& engine,
                     std::span<const uint8_t> datagram);
  // Replica-side events during the delivery (forwarded by the replica's EventSink).
  void OnReplicaKey(const NodeState& node, KeyEvent event, std::string_view key, Version version);
  void OnReplicaReset(const NodeState& node);
  void AfterDeliver(uint32_t replica, const Engine& engine);

  // ---- Whole-cluster checks ----
  // Compares every key of `owner` at `replica` with the owner's map (both the same
  // generation); returns the number of mismatches (each recorded as `kind`).
  size_t CompareMaps(std::string_view replica, const NodeState& replica_state,
                     const NodeState& owner_state, ViolationKind kind);
  // The owner's own map must equal the replay of its recorded history.
  void CheckOwnerModel(uint32_t owner, const NodeState& self);
  void Record(Violation v);

  // Anomalies (stale regressions unless they count as violations) are counted apart.
  uint64_t violations() const { return total_; }
  uint64_t anomalies() const { return anomalies_; }
  const std::vector<Violation>& recorded_anomalies() const { return recorded_anomalies_; }
  uint64_t violations_of(ViolationKind k) const { return by_kind_[static_cast<size_t>(k)]; }
  const std::vector<Violation>& recorded() const { return recorded_; }
  uint64_t keys_checked() const { return keys_checked_; }
  uint64_t full_checks() const { return full_checks_; }

 private:
  struct Update {
    Version version;
    uint32_t value;  // index into OwnerHistory::values; unused for deletes
    bool del;
  };
  struct OwnerHistory {
    absl::flat_hash_map<std::string, uint32_t> key_ids;
    std::vector<std::string> keys;
    std::vector<std::vector<Update>> per_key;  // ascending versions
    std::vector<uint32_t> key_of_version;      // [v - 1]: versions are dense per owner
    std::vector<std::string> values;
    std::vector<uint64_t> stamp;  // per key: last check pass that saw it
    int32_t KeyId(std::string_view key) const;
  };
  struct PartSnap {
    std::string name;
    uint32_t owner;
    bool existed;
    Generation gen;
    Version gc;
    Version max;
  };
  struct Captured {
    uint32_t owner;
    Generation gen;
    bool reset;
    std::string key;
    Version version;
  };

  OwnerHistory* History(uint32_t owner, Generation gen);
  void CheckPart(uint32_t replica, const Engine& engine, const PartSnap& snap);
  void CheckEvents(uint32_t replica, const PartSnap& snap, Generation gen);
  void CheckAllKeys(uint32_t replica, const NodeState& rs, OwnerHistory& h, uint32_t owner);
  void CheckKey(uint32_t replica, const NodeState& rs, OwnerHistory& h, uint32_t owner,
                uint32_t kid);
  void CheckUnknownKey(uint32_t replica, const NodeState& rs, uint32_t owner, std::string_view key);
  void Flag(ViolationKind kind, uint32_t replica, uint32_t owner, Generation gen,
            std::string_view key, std::string detail);
  int32_t OwnerIndex(std::string_view name) const;

  Options options_;
  std::vector<std::string> names_;
  absl::flat_hash_map<std::string, uint32_t> index_;
  // Per owner index: generation -> history.
  std::vector<std::map<Generation, std::unique_ptr<OwnerHistory>>> histories_;
  uint32_t round_ = 0;

  // Scratch for the delivery in progress.
  std::vector<PartSnap> snaps_;
  std::vector<Captured> captured_;
  bool delivering_ = false;
  uint32_t from_ = 0;
  std::string packet_desc_;  // "synack from n00003" for violation details
  uint64_t pass_ = 0;
  uint64_t deliveries_ = 0;
  std::vector<uint64_t> snap_stamp_;  // per owner: the delivery that snapshotted it

  uint64_t total_ = 0;
  uint64_t anomalies_ = 0;
  std::vector<Violation> recorded_anomalies_;
  uint64_t by_kind_[static_cast<size_t>(ViolationKind::kCount)] = {};
  std::vector<Violation> recorded_;
  uint64_t keys_checked_ = 0;
  uint64_t full_checks_ = 0;
};

}  // namespace scuttle::sim

#endif  // SCUTTLE_SIM_CLUSTER_CHECKER_H_
