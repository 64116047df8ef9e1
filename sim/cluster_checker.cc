#include "sim/cluster_checker.h"

#include <algorithm>
#include <ostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"
#include "wire/packet.h"

namespace scuttle::sim {

const char* ViolationKindName(ViolationKind k) {
  switch (k) {
    case ViolationKind::kNonMonotonic:
      return "non_monotonic";
    case ViolationKind::kResetWithoutGcRaise:
      return "reset_without_gc_raise";
    case ViolationKind::kVersionOrder:
      return "version_order";
    case ViolationKind::kSeedInvariant:
      return "seed_invariant";
    case ViolationKind::kSeedInvariantStrict:
      return "seed_invariant_strict";
    case ViolationKind::kResurrection:
      return "resurrection";
    case ViolationKind::kStaleRegression:
      return "stale_regression";
    case ViolationKind::kPhantom:
      return "phantom";
    case ViolationKind::kOwnerModel:
      return "owner_model";
    case ViolationKind::kNotConverged:
      return "not_converged";
    case ViolationKind::kLiveDeclaredDead: return "live_declared_dead";
    case ViolationKind::kNotDeclaredDead:
      return "not_declared_dead";
    case ViolationKind::kCount:
      break;
  }
  return "unknown";
}

std::string Violation::ToString() const {
  return absl::StrCat("VIOLATION ", ViolationKindName(kind), " seed=", seed, " round=", round,
                      " replica=", replica, " owner=", owner, " gen=", generation, " key='", key,
                      "': ", detail);
}

int32_t ClusterChecker::OwnerHistory::KeyId(std::string_view key) const {
  auto it = key_ids.find(AV(key));
  return it == key_ids.end() ? -1 : static_cast<int32_t>(it->second);
}

ClusterChecker::ClusterChecker(Options options, std::vector<std::string> names)
    : options_(options),
      names_(std::move(names)),
      histories_(names_.size()),
      snap_stamp_(names_.size(), 0) {
  for (uint32_t i = 0; i < names_.size(); ++i) index_.emplace(names_[i], i);
}

int32_t ClusterChecker::OwnerIndex(std::string_view name) const {
  auto it = index_.find(AV(name));
  return it == index_.end() ? -1 : static_cast<int32_t>(it->second);
}

ClusterChecker::OwnerHistory* ClusterChecker::History(uint32_t owner, Generation gen) {
  auto& m = histories_[owner];
  auto it = m.find(gen);
  return it == m.end() ? nullptr : it->second.get();
}

void ClusterChecker::Record(Violation v) {
  if (v.kind == ViolationKind::kStaleRegression && !options_.stale_regression_is_violation) {
    ++anomalies_;
    ++by_kind_[static_cast<size_t>(v.kind)];
    if (recorded_anomalies_.size() < options_.max_recorded) {
      recorded_anomalies_.push_back(std::move(v));
    }
    return;
  }
  ++total_;
  ++by_kind_[static_cast<size_t>(v.kind)];
  if (recorded_.size() >= options_.max_recorded) return;
  if (options_.log != nullptr) *options_.log << v.ToString() << "\n";
  recorded_.push_back(std::move(v));
}

void ClusterChecker::Flag(ViolationKind kind, uint32_t replica, uint32_t owner, Generation gen,
                          std::string_view key, std::string detail) {
  Violation v;
  v.kind = kind;
  v.seed = options_.seed;
  v.round = round_;
  v.replica = replica < names_.size() ? names_[replica] : "?";
  v.owner = owner < names_.size() ? names_[owner] : "?";
  v.generation = gen;
  v.key = std::string(key);
  v.detail = std::move(detail);
  if (delivering_ || !snaps_.empty()) absl::StrAppend(&v.detail, " [", packet_desc_, "]");
  Record(std::move(v));
}

// ---- Owner history -----------------------------------------------------------------------

void ClusterChecker::OnOwnerKey(uint32_t owner, Generation gen, KeyEvent event,
                                std::string_view key, std::string_view value, Version version) {
  auto& slot = histories_[owner][gen];
  if (slot == nullptr) slot = std::make_unique<OwnerHistory>();
  OwnerHistory& h = *slot;
  // DESIGN §1: each write takes max_version + 1, so an owner's versions are dense.
  if (version != h.key_of_version.size() + 1) {
    Flag(ViolationKind::kOwnerModel, owner, owner, gen, key,
         absl::StrCat("owner wrote version ", version, " after ", h.key_of_version.size()));
    if (version <= h.key_of_version.size()) return;
    h.key_of_version.resize(version - 1, UINT32_MAX);
  }
  auto [it, inserted] = h.key_ids.emplace(std::string(key), h.keys.size());
  if (inserted) {
    h.keys.emplace_back(key);
    h.per_key.emplace_back();
    h.stamp.push_back(0);
  }
  const uint32_t kid = it->second;
  const bool del = event != KeyEvent::kSet;
  uint32_t vid = 0;
  if (!del) {
    vid = static_cast<uint32_t>(h.values.size());
    h.values.emplace_back(value);
  }
  h.per_key[kid].push_back(Update{version, vid, del});
  h.key_of_version.push_back(kid);
}

void ClusterChecker::CheckOwnerModel(uint32_t owner, const NodeState& self) {
  OwnerHistory* h = History(owner, self.generation());
  size_t live = 0;
  if (h != nullptr) {
    for (uint32_t kid = 0; kid < h->keys.size(); ++kid) {
      const Update& u = h->per_key[kid].back();
      const uint32_t idx = self.Find(h->keys[kid]);
      const bool held_live =
          idx != NodeState::kNoSlot && self.slot(idx).status != KeyStatus::kTombstone;
      if (!u.del) ++live;
      if (held_live != !u.del ||
          (held_live && (self.slot(idx).version != u.version ||
                         self.ValueOf(self.slot(idx)) != h->values[u.value]))) {
        Flag(ViolationKind::kOwnerModel, owner, owner, self.generation(), h->keys[kid],
             "owner's own map differs from its recorded history");
      }
    }
  }
  if (self.num_live() != live) {
    Flag(ViolationKind::kOwnerModel, owner, owner, self.generation(), "",
         absl::StrCat("owner holds ", self.num_live(), " live keys, history says ", live));
  }
}

// ---- Around a delivery -------------------------------------------------------------------

void ClusterChecker::BeforeDeliver(uint32_t replica, uint32_t from, const Engine& engine,
                                   std::span<const uint8_t> datagram) {
  snaps_.clear();
  captured_.clear();
  delivering_ = true;
  from_ = from;
  ++deliveries_;
  wire::PacketHeader header;
  if (!wire::PeekHeader(datagram, &header)) return;
  wire::DecodeLimits limits;
  limits.max_key_bytes = engine.config().limits.max_key_bytes;
  limits.max_value_bytes = engine.config().limits.max_value_bytes;
  limits.max_digest_entries = engine.config().limits.max_nodes;
  wire::DecodedPacket pkt;
  wire::DropReason reason;
  if (!wire::Decode(datagram, limits, &pkt, &reason)) return;
  // Every message carrying a delta (SynAck, Ack, and any later kind such as welcome chunks).
  if (pkt.num_parts() == 0) return;
  packet_desc_ = absl::StrCat(wire::MessageTypeName(pkt.type), " from ",
                              from < names_.size() ? names_[from] : "?");
  for (size_t i = 0; i < pkt.num_parts(); ++i) {
    const std::string_view name = pkt.Name(*pkt.part(i).node);
    const int32_t owner = OwnerIndex(name);
    if (owner < 0 || static_cast<uint32_t>(owner) == replica) continue;
    if (snap_stamp_[owner] == deliveries_) continue;  // one snapshot per owner
    snap_stamp_[owner] = deliveries_;
    PartSnap s{std::string(name), static_cast<uint32_t>(owner), false, 0, 0, 0};
    if (const NodeState* n = engine.FindNode(name); n != nullptr) {
      s.existed = true;
      s.gen = n->generation();
      s.gc = n->last_gc_version();
      s.max = n->max_version();
    }
    snaps_.push_back(std::move(s));
  }
}

void ClusterChecker::OnReplicaKey(const NodeState& node, KeyEvent /*event*/, std::string_view key,
                                  Version version) {
  if (!delivering_) return;
  const int32_t owner = OwnerIndex(node.name());
  if (owner < 0) return;
  captured_.push_back(
      Captured{static_cast<uint32_t>(owner), node.generation(), false, std::string(key), version});
}

void ClusterChecker::OnReplicaReset(const NodeState& node) {
  if (!delivering_) return;
  const int32_t owner = OwnerIndex(node.name());
  if (owner < 0) return;
  captured_.push_back(Captured{static_cast<uint32_t>(owner), node.generation(), true, "", 0});
}

void ClusterChecker::AfterDeliver(uint32_t replica, const Engine& engine) {
  delivering_ = false;
  // Group the captured events by owner, keeping their order within an owner.
  std::stable_sort(captured_.begin(), captured_.end(),
                   [](const Captured& a, const Captured& b) { return a.owner < b.owner; });
  for (const PartSnap& snap : snaps_) CheckPart(replica, engine, snap);
  snaps_.clear();
  captured_.clear();
}

void ClusterChecker::CheckPart(uint32_t replica, const Engine& engine, const PartSnap& snap) {
  const NodeState* rs = engine.FindNode(snap.name);
  if (rs == nullptr) return;  // not admitted (node limit)
  const Generation gen = rs->generation();
  const bool same_gen = snap.existed && gen == snap.gen;
  auto lo = std::lower_bound(captured_.begin(), captured_.end(), snap.owner,
                             [](const Captured& c, uint32_t o) { return c.owner < o; });
  auto hi = std::upper_bound(captured_.begin(), captured_.end(), snap.owner,
                             [](uint32_t o, const Captured& c) { return o < c.owner; });
  const bool reset = std::any_of(lo, hi, [](const Captured& c) { return c.reset; });
  if (snap.existed && gen < snap.gen) {
    Flag(ViolationKind::kNonMonotonic, replica, snap.owner, gen, "",
         absl::StrCat("generation went back from ", snap.gen));
  }
  if (same_gen) {
    const auto before = std::make_pair(snap.gc, snap.max);
    const auto after = std::make_pair(rs->last_gc_version(), rs->max_version());
    if (after < before) {
      Flag(ViolationKind::kNonMonotonic, replica, snap.owner, gen, "",
           absl::StrCat("(gc, max) fell from (", snap.gc, ", ", snap.max, ") to (", after.first,
                        ", ", after.second, ")"));
    }
    if (reset && rs->last_gc_version() <= snap.gc) {
      Flag(ViolationKind::kResetWithoutGcRaise, replica, snap.owner, gen, "",
           absl::StrCat("reset kept gc at ", rs->last_gc_version(), " (was ", snap.gc, ")"));
    }
  }
  OwnerHistory* h = History(snap.owner, gen);
  if (h == nullptr) {
    if (rs->num_keys() > 0 || rs->max_version() > 0) {
      Flag(ViolationKind::kPhantom, replica, snap.owner, gen, "",
           absl::StrCat("replica holds ", rs->num_keys(), " keys, max_version ", rs->max_version(),
                        " of a generation that never wrote"));
    }
    return;
  }
  if (rs->max_version() > h->key_of_version.size()) {
    Flag(ViolationKind::kPhantom, replica, snap.owner, gen, "",
         absl::StrCat("replica max_version ", rs->max_version(),
                      " is beyond the owner's last write ", h->key_of_version.size()));
  }
  // Versions rise: applied entries ascend above the old max (restarting at 0 on a reset);
  // no resurrection: a set applied here must not be older than a delete already covered.
  Version last = same_gen ? snap.max : 0;
  const Version covered_before = same_gen ? std::max(snap.gc, snap.max) : 0;
  ++pass_;
  for (auto it = lo; it != hi; ++it) {
    if (it->gen != gen) continue;
    if (it->reset) {
      last = 0;
      continue;
    }
    if (it->version <= last) {
      Flag(ViolationKind::kVersionOrder, replica, snap.owner, gen, it->key,
           absl::StrCat("applied version ", it->version, " after ", last));
    }
    last = it->version;
    const int32_t kid = h->KeyId(it->key);
    if (kid < 0) {
      CheckUnknownKey(replica, *rs, snap.owner, it->key);
      continue;
    }
    const auto& ups = h->per_key[kid];
    auto up = std::upper_bound(ups.begin(), ups.end(), it->version,
                               [](Version v, const Update& u) { return v < u.version; });
    auto prev = up == ups.begin() ? ups.end() : up - 1;
    const bool is_set = prev != ups.end() && prev->version == it->version && !prev->del;
    for (; is_set && up != ups.end(); ++up) {
      if (!up->del) continue;
      if (up->version <= covered_before) {
        const Update& last_up = ups.back();
        // Nothing after the delete: no sender can legitimately hold the older set.
        const bool last = &*up == &ups.back();
        Flag(last ? ViolationKind::kResurrection : ViolationKind::kStaleRegression, replica,
             snap.owner, gen, it->key,
             absl::StrCat("set v", it->version, " applied although delete v", up->version,
                          " was already covered by (gc, max) = (", snap.gc, ", ", snap.max,
                          "); the owner's last update is v", last_up.version,
                          last_up.del ? " (delete)" : " (set)", "; now (gc, max) = (",
                          rs->last_gc_version(), ", ", rs->max_version(), ")"));
      }
      break;
    }
  }
  const bool full = !same_gen || reset;
  if (full) {
    ++full_checks_;
    CheckAllKeys(replica, *rs, *h, snap.owner);
    return;
  }
  const Version top = std::min<Version>(rs->max_version(), h->key_of_version.size());
  for (Version v = snap.max + 1; v <= top; ++v) {
    const uint32_t kid = h->key_of_version[v - 1];
    if (kid == UINT32_MAX || h->stamp[kid] == pass_) continue;
    h->stamp[kid] = pass_;
    CheckKey(replica, *rs, *h, snap.owner, kid);
  }
  for (auto it = lo; it != hi; ++it) {
    if (it->reset || it->gen != gen) continue;
    const int32_t kid = h->KeyId(it->key);
    if (kid < 0 || h->stamp[kid] == pass_) continue;
    h->stamp[kid] = pass_;
    CheckKey(replica, *rs, *h, snap.owner, static_cast<uint32_t>(kid));
  }
}

void ClusterChecker::CheckAllKeys(uint32_t replica, const NodeState& rs, OwnerHistory& h,
                                  uint32_t owner) {
  for (uint32_t kid = 0; kid < h.keys.size(); ++kid) CheckKey(replica, rs, h, owner, kid);
  rs.ForEachAbove(0, [&](const NodeState::Slot& s) {
    const std::string_view key = rs.KeyOf(s);
    if (h.KeyId(key) < 0) CheckUnknownKey(replica, rs, owner, key);
    return true;
  });
}

void ClusterChecker::CheckUnknownKey(uint32_t replica, const NodeState& rs, uint32_t owner,
                                     std::string_view key) {
  Flag(ViolationKind::kPhantom, replica, owner, rs.generation(), key,
       "replica holds a key its owner never wrote");
}

// One key of one owner at one replica; see the header for the rules.
void ClusterChecker::CheckKey(uint32_t replica, const NodeState& rs, OwnerHistory& h,
                              uint32_t owner, uint32_t kid) {
  ++keys_checked_;
  const auto& ups = h.per_key[kid];
  const Update& u = ups.back();
  const std::string& key = h.keys[kid];
  const Generation gen = rs.generation();
  const Version m = rs.max_version();
  const Version t = std::max(m, rs.last_gc_version());
  const uint32_t idx = rs.Find(key);
  const NodeState::Slot* s = idx == NodeState::kNoSlot ? nullptr : &rs.slot(idx);
  const bool live = s != nullptr && s->status != KeyStatus::kTombstone;
  if (s != nullptr) {
    auto it = std::lower_bound(ups.begin(), ups.end(), s->version,
                               [](const Update& x, Version v) { return x.version < v; });
    if (it == ups.end() || it->version != s->version || it->del == live ||
        (live && rs.ValueOf(*s) != h.values[it->value])) {
      Flag(ViolationKind::kPhantom, replica, owner, gen, key,
           absl::StrCat("replica holds v", s->version, live ? " (set)" : " (tombstone)",
                        " which does not match the owner's history"));
      return;
    }
  }
  const bool covered = u.del ? u.version <= t : u.version <= m;
  if (covered && (live == u.del || (live && s->version != u.version))) {
    Flag(ViolationKind::kSeedInvariant, replica, owner, gen, key,
         absl::StrCat("replica (gc=", rs.last_gc_version(), ", max=", m, ") holds ",
                      s == nullptr ? std::string("nothing")
                                   : absl::StrCat(live ? "set v" : "tombstone v", s->version),
                      " but the owner's last update v", u.version, u.del ? " (delete)" : " (set)",
                      " is covered and not reflected"));
    return;
  }
  // Literal seed-000 replay over the full history: inside a reset window (m < d <= gc) the
  // delete d is skipped, so a set it superseded at version in (m, d) would come back.
  if (options_.strict_seed_invariant && covered && u.del && u.version > m && ups.size() >= 2) {
    const Update& p = ups[ups.size() - 2];
    if (!p.del && p.version > m) {
      Flag(ViolationKind::kSeedInvariantStrict, replica, owner, gen, key,
           absl::StrCat("full-history replay on (gc=", rs.last_gc_version(), ", max=", m,
                        ") applies set v", p.version, " and skips its delete v", u.version));
    }
  }
}

// ---- Whole-cluster checks ----------------------------------------------------------------

size_t ClusterChecker::CompareMaps(std::string_view replica, const NodeState& rs,
                                   const NodeState& os, ViolationKind kind) {
  size_t bad = 0;
  const int32_t r = OwnerIndex(replica);
  const int32_t o = OwnerIndex(os.name());
  auto flag = [&](std::string_view key, std::string detail) {
    ++bad;
    Flag(kind, static_cast<uint32_t>(r), static_cast<uint32_t>(o), os.generation(), key,
         std::move(detail));
  };
  os.ForEachAbove(0, [&](const NodeState::Slot& s) {
    if (s.status == KeyStatus::kTombstone) return true;
    const uint32_t idx = rs.Find(os.KeyOf(s));
    if (idx == NodeState::kNoSlot || rs.slot(idx).status == KeyStatus::kTombstone ||
        rs.ValueOf(rs.slot(idx)) != os.ValueOf(s)) {
      flag(os.KeyOf(s), absl::StrCat("owner has v", s.version, ", replica does not"));
    }
    return true;
  });
  rs.ForEachAbove(0, [&](const NodeState::Slot& s) {
    if (s.status == KeyStatus::kTombstone) return true;
    const uint32_t idx = os.Find(rs.KeyOf(s));
    if (idx == NodeState::kNoSlot || os.slot(idx).status == KeyStatus::kTombstone) {
      flag(rs.KeyOf(s), absl::StrCat("replica holds v", s.version, ", the owner does not"));
    }
    return true;
  });
  return bad;
}

}  // namespace scuttle::sim
