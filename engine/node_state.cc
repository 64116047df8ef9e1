#include "engine/node_state.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>

#include "absl/hash/hash.h"
#include "wire/absl_compat.h"

namespace scuttle {

const KvArena NodeState::kNoArena;

size_t NodeState::KeyHash::operator()(uint32_t idx) const {
  return (*this)(s->KeyOf(s->store_->slots[idx]));
}
size_t NodeState::KeyHash::operator()(std::string_view key) const {
  return absl::Hash<absl::string_view>{}(AV(key));
}
bool NodeState::KeyEq::operator()(uint32_t a, std::string_view k) const {
  return s->KeyOf(s->store_->slots[a]) == k;
}

uint32_t NodeState::Slab::Append() {
  constexpr uint32_t kPageSlots = 1u << kPageShift;
  if (size_ < kPageSlots) {
    if (size_ == first_page_slots_) {
      // Grow the first page by doubling; slots are plain data, so a copy moves them.
      const uint32_t grown = std::max(kFirstPageSlots, 2 * first_page_slots_);
      std::unique_ptr<Slot[]> page(new Slot[grown]);
      if (size_ > 0) std::memcpy(page.get(), pages_[0].get(), size_t{size_} * sizeof(Slot));
      if (pages_.empty()) {
        pages_.push_back(std::move(page));
      } else {
        pages_[0] = std::move(page);
      }
      first_page_slots_ = grown;
    }
  } else if ((size_ & kMask) == 0 && (size_ >> kPageShift) == pages_.size()) {
    pages_.push_back(std::unique_ptr<Slot[]>(new Slot[kPageSlots]));
  }
  (*this)[size_] = Slot{};
  return size_++;
}

size_t NodeState::Slab::bytes() const {
  const size_t full_pages = pages_.empty() ? 0 : pages_.size() - 1;
  return (first_page_slots_ + (full_pages << kPageShift)) * sizeof(Slot) +
         pages_.capacity() * sizeof(void*);
}

NodeState::NodeState(std::string name, Generation generation)
    : name_(std::move(name)), generation_(generation) {}

uint32_t NodeState::Find(std::string_view key) const {
  if (store_ == nullptr) return kNoSlot;
  auto it = store_->key_set.find(key);
  return it == store_->key_set.end() ? kNoSlot : *it;
}

void NodeState::ForEachAbove(Version v, absl::FunctionRef<bool(const Slot&)> fn) const {
  if (store_ == nullptr) return;
  const Store& st = *store_;
  for (auto it = st.by_version.upper_bound(v); it != st.by_version.end(); ++it) {
    if (!fn(st.slots[it->second])) return;
  }
}

void NodeState::Scan(std::string_view prefix, absl::FunctionRef<void(const Slot&)> fn) const {
  if (store_ == nullptr) return;
  for (uint32_t idx : store_->key_set) {
    const Slot& s = store_->slots[idx];
    if (s.status != KeyStatus::kTombstone && KeyOf(s).substr(0, prefix.size()) == prefix) fn(s);
  }
}

// Removes slot idx from the version/tombstone/TTL indexes (not from the key set).
void NodeState::Unindex(uint32_t idx) {
  Store& st = *store_;
  Slot& s = st.slots[idx];
  st.by_version.erase(s.version);
  if (s.status == KeyStatus::kTombstone) {
    st.tombstones_by_time.erase({s.time_us, s.version});
    st.tombstones_by_version.erase(s.version);
    --st.num_tombstones;
  } else if (s.status == KeyStatus::kExpiring) {
    st.ttl_index.erase({s.time_us, s.version});
  }
  st.arena.Free(s.key_len + s.value_len);
}

uint32_t NodeState::Write(Version version, std::string_view key, std::string_view value,
                          KeyStatus status, TimeUs time_us) {
  if (store_ == nullptr) store_ = std::make_unique<Store>(this);
  Store& st = *store_;
  uint32_t idx = Find(key);
  const bool fresh = idx == kNoSlot;
  if (fresh) {
    if (st.free_slots.empty()) {
      idx = st.slots.Append();
    } else {
      idx = st.free_slots.back();
      st.free_slots.pop_back();
    }
  } else {
    Unindex(idx);
  }
  Slot& s = st.slots[idx];
  s.version = version;
  s.kv = st.arena.Append(key, value);
  s.key_len = static_cast<uint16_t>(key.size());
  s.value_len = static_cast<uint32_t>(value.size());
  s.status = status;
  s.time_us = time_us;
  if (fresh) st.key_set.insert(idx);
  st.by_version.emplace(version, idx);
  if (status == KeyStatus::kTombstone) {
    st.tombstones_by_time.insert({time_us, version});
    st.tombstones_by_version.insert(version);
    ++st.num_tombstones;
  } else if (status == KeyStatus::kExpiring) {
    st.ttl_index.insert({time_us, version});
  }
  MaybeCompact();
  return idx;
}

void NodeState::RemoveSlot(uint32_t idx) {
  Unindex(idx);
  store_->key_set.erase(idx);
  store_->free_slots.push_back(idx);
}

void NodeState::ReleaseIfEmpty() {
  if (store_ != nullptr && store_->key_set.empty()) store_.reset();
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
  if (idx == kNoSlot || slot(idx).status == KeyStatus::kTombstone) return 0;
  // The tombstone keeps the key only; the old value becomes arena garbage.
  Write(++max_version_, key, {}, KeyStatus::kTombstone, now_us);
  return max_version_;
}

size_t NodeState::ExpireDue(TimeUs now_us, absl::FunctionRef<void(std::string_view)> fn) {
  size_t n = 0;
  while (store_ != nullptr && !store_->ttl_index.empty() &&
         store_->ttl_index.begin()->first <= now_us) {
    const uint32_t idx = store_->by_version.at(store_->ttl_index.begin()->second);
    // Copy the key out: Delete rewrites the slot into the arena.
    const std::string key(KeyOf(slot(idx)));
    Delete(key, now_us);
    fn(key);
    ++n;
  }
  return n;
}

TimeUs NodeState::NextExpiry() const {
  return num_expiring() == 0 ? std::numeric_limits<TimeUs>::max()
                             : store_->ttl_index.begin()->first;
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
  store_.reset();
  max_version_ = 0;
  last_gc_version_ = last_gc_version;
}

size_t NodeState::GcTombstones(TimeUs now_us, TimeUs grace_us, Version max_removable_version) {
  if (store_ == nullptr) return 0;
  Store& st = *store_;
  size_t removed = 0;
  auto it = st.tombstones_by_time.begin();
  while (it != st.tombstones_by_time.end() && it->first + grace_us <= now_us) {
    const Version v = it->second;
    if (v > max_removable_version) {
      ++it;
      continue;
    }
    it = st.tombstones_by_time.erase(it);
    st.tombstones_by_version.erase(v);
    const uint32_t idx = st.by_version.at(v);
    // Already out of the tombstone indexes: let RemoveSlot treat it as a plain slot.
    st.slots[idx].status = KeyStatus::kSet;
    --st.num_tombstones;
    RemoveSlot(idx);
    if (v > last_gc_version_) last_gc_version_ = v;
    ++removed;
  }
  ReleaseIfEmpty();
  return removed;
}

size_t NodeState::GcTombstonesUpTo(Version v) {
  if (store_ == nullptr) return 0;
  Store& st = *store_;
  size_t removed = 0;
  while (!st.tombstones_by_version.empty() && *st.tombstones_by_version.begin() <= v) {
    const Version tv = *st.tombstones_by_version.begin();
    const uint32_t idx = st.by_version.at(tv);
    RemoveSlot(idx);  // drops it from both tombstone indexes
    if (tv > last_gc_version_) last_gc_version_ = tv;
    ++removed;
  }
  ReleaseIfEmpty();
  return removed;
}

void NodeState::MaybeCompact() {
  Store& st = *store_;
  if (!st.arena.ShouldCompact()) return;
  KvArena fresh;
  for (uint32_t idx : st.key_set) {
    Slot& s = st.slots[idx];
    s.kv = fresh.Append(KeyOf(s), ValueOf(s));
  }
  st.arena.Swap(fresh);
}

size_t NodeState::OverheadBytes() const {
  if (store_ == nullptr) return 0;
  const Store& st = *store_;
  // Store + slab + hash set (slot index + control byte per bucket) + version index; btree
  // nodes are estimated from their value size and a 70% fill.
  const size_t slab = st.slots.bytes();
  const size_t set = st.key_set.capacity() * (sizeof(uint32_t) + 1);
  const size_t btree = st.by_version.size() * (sizeof(Version) + sizeof(uint32_t)) * 10 / 7;
  const size_t tomb = st.tombstones_by_time.size() * (16 + 8) * 10 / 7;
  const size_t ttl = st.ttl_index.size() * 16 * 10 / 7;
  return sizeof(Store) + slab + set + btree + tomb + ttl + st.arena.allocated_bytes() -
         st.arena.live_bytes();
}

}  // namespace scuttle
