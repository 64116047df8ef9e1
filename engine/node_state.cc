#include "engine/node_state.h"

#include <cassert>
#include <limits>

#include "absl/hash/hash.h"
#include "wire/absl_compat.h"

namespace scuttle {

size_t NodeState::KeyHash::operator()(uint32_t idx) const {
  return (*this)(s->KeyOf(s->slots_[idx]));
}
size_t NodeState::KeyHash::operator()(std::string_view key) const {
  return absl::Hash<absl::string_view>{}(AV(key));
}
bool NodeState::KeyEq::operator()(uint32_t a, std::string_view k) const {
  return s->KeyOf(s->slots_[a]) == k;
}

uint32_t NodeState::Slab::Append() {
  if ((size_ & kMask) == 0 && (size_ >> kPageShift) == pages_.size()) {
    pages_.push_back(std::unique_ptr<Slot[]>(new Slot[size_t{1} << kPageShift]));
  }
  pages_[size_ >> kPageShift][size_ & kMask] = Slot{};
  return size_++;
}

size_t NodeState::Slab::bytes() const {
  return pages_.size() * (sizeof(Slot) << kPageShift) + pages_.capacity() * sizeof(void*);
}

NodeState::NodeState(std::string name, Generation generation)
    : name_(std::move(name)),
      generation_(generation),
      key_set_(0, KeyHash{this}, KeyEq{this}) {}

uint32_t NodeState::Find(std::string_view key) const {
  auto it = key_set_.find(key);
  return it == key_set_.end() ? kNoSlot : *it;
}

void NodeState::ForEachAbove(Version v, absl::FunctionRef<bool(const Slot&)> fn) const {
  for (auto it = by_version_.upper_bound(v); it != by_version_.end(); ++it) {
    if (!fn(slots_[it->second])) return;
  }
}

void NodeState::Scan(std::string_view prefix, absl::FunctionRef<void(const Slot&)> fn) const {
  for (uint32_t idx : key_set_) {
    const Slot& s = slots_[idx];
    if (s.status != KeyStatus::kTombstone && KeyOf(s).substr(0, prefix.size()) == prefix) fn(s);
  }
}

// Removes slot idx from the version/tombstone/TTL indexes (not from the key set).
void NodeState::Unindex(uint32_t idx) {
  Slot& s = slots_[idx];
  by_version_.erase(s.version);
  if (s.status == KeyStatus::kTombstone) {
    tombstones_by_time_.erase({s.time_us, s.version});
    tombstones_by_version_.erase(s.version);
    --num_tombstones_;
  } else if (s.status == KeyStatus::kExpiring) {
    ttl_index_.erase({s.time_us, s.version});
  }
  arena_.Free(s.key_len + s.value_len);
}

uint32_t NodeState::Write(Version version, std::string_view key, std::string_view value,
                          KeyStatus status, TimeUs time_us) {
  uint32_t idx = Find(key);
  const bool fresh = idx == kNoSlot;
  if (fresh) {
    if (free_slots_.empty()) {
      idx = slots_.Append();
    } else {
      idx = free_slots_.back();
      free_slots_.pop_back();
    }
  } else {
    Unindex(idx);
  }
  Slot& s = slots_[idx];
  s.version = version;
  s.kv = arena_.Append(key, value);
  s.key_len = static_cast<uint16_t>(key.size());
  s.value_len = static_cast<uint32_t>(value.size());
  s.status = status;
  s.time_us = time_us;
  if (fresh) key_set_.insert(idx);
  by_version_.emplace(version, idx);
  if (status == KeyStatus::kTombstone) {
    tombstones_by_time_.insert({time_us, version});
    tombstones_by_version_.insert(version);
    ++num_tombstones_;
  } else if (status == KeyStatus::kExpiring) {
    ttl_index_.insert({time_us, version});
  }
  MaybeCompact();
  return idx;
}

void NodeState::RemoveSlot(uint32_t idx) {
  Unindex(idx);
  key_set_.erase(idx);
  free_slots_.push_back(idx);
}

Version NodeState::Set(std::string_view key, std::string_view value) {
  Write(++max_version_, key, value, KeyStatus::kSet, 0);
  return max_version_;
}

Version NodeState::SetWithTtl(std::string_view key, std::string_view value, TimeUs deadline_us) {
  Write(++max_version_, key, value, KeyStatus::kExpiring, deadline_us);
  return max_version_;
}

Version NodeState::Delete(std::string_view key, TimeUs now_us) {
  const uint32_t idx = Find(key);
  if (idx == kNoSlot || slots_[idx].status == KeyStatus::kTombstone) return 0;
  // The tombstone keeps the key only; the old value becomes arena garbage.
  Write(++max_version_, key, {}, KeyStatus::kTombstone, now_us);
  return max_version_;
}

size_t NodeState::ExpireDue(TimeUs now_us, absl::FunctionRef<void(std::string_view)> fn) {
  size_t n = 0;
  while (!ttl_index_.empty() && ttl_index_.begin()->first <= now_us) {
    const uint32_t idx = by_version_.at(ttl_index_.begin()->second);
    // Copy the key out: Delete rewrites the slot into the arena.
    const std::string key(KeyOf(slots_[idx]));
    Delete(key, now_us);
    fn(key);
    ++n;
  }
  return n;
}

TimeUs NodeState::NextExpiry() const {
  return ttl_index_.empty() ? std::numeric_limits<TimeUs>::max() : ttl_index_.begin()->first;
}

void NodeState::ApplyEntry(Version version, std::string_view key, std::string_view value,
                           bool tombstone, TimeUs now_us) {
  assert(version > max_version_);
  // A delete of a key we never held still keeps its death certificate: a peer holding an
  // older set may later ask us for deletes above its max_version (seed 000 invariant).
  Write(version, key, tombstone ? std::string_view() : value,
        tombstone ? KeyStatus::kTombstone : KeyStatus::kSet, tombstone ? now_us : 0);
  max_version_ = version;
}

void NodeState::RaiseMaxVersion(Version v) {
  assert(v >= max_version_);
  max_version_ = v;
}

void NodeState::ResetTo(Version last_gc_version) {
  arena_.Clear();
  slots_.Clear();
  free_slots_.clear();
  key_set_.clear();
  by_version_.clear();
  tombstones_by_time_.clear();
  tombstones_by_version_.clear();
  ttl_index_.clear();
  num_tombstones_ = 0;
  max_version_ = 0;
  last_gc_version_ = last_gc_version;
}

size_t NodeState::GcTombstones(TimeUs now_us, TimeUs grace_us, Version max_removable_version) {
  size_t removed = 0;
  auto it = tombstones_by_time_.begin();
  while (it != tombstones_by_time_.end() && it->first + grace_us <= now_us) {
    const Version v = it->second;
    if (v > max_removable_version) {
      ++it;
      continue;
    }
    it = tombstones_by_time_.erase(it);
    tombstones_by_version_.erase(v);
    const uint32_t idx = by_version_.at(v);
    // Already out of the tombstone indexes: let RemoveSlot treat it as a plain slot.
    slots_[idx].status = KeyStatus::kSet;
    --num_tombstones_;
    RemoveSlot(idx);
    if (v > last_gc_version_) last_gc_version_ = v;
    ++removed;
  }
  return removed;
}

size_t NodeState::GcTombstonesUpTo(Version v) {
  size_t removed = 0;
  while (!tombstones_by_version_.empty() && *tombstones_by_version_.begin() <= v) {
    const Version tv = *tombstones_by_version_.begin();
    const uint32_t idx = by_version_.at(tv);
    RemoveSlot(idx);  // drops it from both tombstone indexes
    if (tv > last_gc_version_) last_gc_version_ = tv;
    ++removed;
  }
  return removed;
}

void NodeState::MaybeCompact() {
  if (!arena_.ShouldCompact()) return;
  KvArena fresh;
  for (uint32_t idx : key_set_) {
    Slot& s = slots_[idx];
    s.kv = fresh.Append(KeyOf(s), ValueOf(s));
  }
  arena_.Swap(fresh);
}

size_t NodeState::OverheadBytes() const {
  // Slab + hash set (slot index + control byte per bucket) + version index; btree nodes
  // are estimated from their value size and a 70% fill.
  const size_t slab = slots_.bytes();
  const size_t set = key_set_.capacity() * (sizeof(uint32_t) + 1);
  const size_t btree = by_version_.size() * (sizeof(Version) + sizeof(uint32_t)) * 10 / 7;
  const size_t tomb = tombstones_by_time_.size() * (16 + 8) * 10 / 7;
  const size_t ttl = ttl_index_.size() * 16 * 10 / 7;
  return slab + set + btree + tomb + ttl + arena_.allocated_bytes() - arena_.live_bytes();
}

}  // namespace scuttle
