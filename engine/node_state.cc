#include "engine/node_state.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>

#include "absl/hash/hash.h"
#include "wire/absl_compat.h"

namespace scuttle {

const KvArena NodeState::kNoArena;

namespace {

inline void PrefetchRead(const void* p) { __builtin_prefetch(p, 0, 3); }

}  // namespace

// ---- PagedArray ----

template <typename T, uint32_t kPageShift>
uint32_t NodeState::PagedArray<T, kPageShift>::Append() {
  constexpr uint32_t kPageSlots = 1u << kPageShift;
  if (size_ < kPageSlots) {
    if (size_ == first_page_slots_) {
      // Grow the first page by doubling; records are plain data, so a copy moves them.
      const uint32_t grown = std::max(kFirstPageSlots, 2 * first_page_slots_);
      BlockPtr<T> page = AllocBlockOf<T>(grown);
      if (size_ > 0) std::memcpy(page.get(), pages_[0].get(), size_t{size_} * sizeof(T));
      if (pages_.empty()) {
        pages_.push_back(std::move(page));
      } else {
        pages_[0] = std::move(page);
      }
      first_page_slots_ = grown;
    }
  } else if ((size_ & kMask) == 0 && (size_ >> kPageShift) == pages_.size()) {
    pages_.push_back(AllocBlockOf<T>(kPageSlots));
  }
  (*this)[size_] = T{};
  return size_++;
}

template <typename T, uint32_t kPageShift>
void NodeState::PagedArray<T, kPageShift>::Truncate(uint32_t n) {
  assert(n <= size_);
  size_ = n;
  // Keep the first page and the page that holds record n (the next Append writes there).
  const size_t keep = std::max<size_t>(1, (size_t{n} >> kPageShift) + 1);
  if (pages_.size() > keep) pages_.resize(keep);
}

template <typename T, uint32_t kPageShift>
size_t NodeState::PagedArray<T, kPageShift>::bytes() const {
  const size_t full_pages = pages_.empty() ? 0 : pages_.size() - 1;
  return (first_page_slots_ + (full_pages << kPageShift)) * sizeof(T) +
         pages_.capacity() * sizeof(void*);
}

// ---- KeyTable ----

uint64_t NodeState::KeyTable::Hash(std::string_view key) {
  return absl::Hash<absl::string_view>{}(AV(key));
}

void NodeState::KeyTable::Prefetch(uint64_t hash) const {
  if (buckets_ != nullptr) PrefetchRead(&buckets_[HomeOf(Tag(hash))]);
}

void NodeState::KeyTable::Place(uint64_t bucket) {
  size_t i = HomeOf(static_cast<uint32_t>(bucket >> 32));
  while (buckets_[i] != 0) i = (i + 1) & mask_;
  buckets_[i] = bucket;
}

void NodeState::KeyTable::Grow() {
  // 2 buckets to start (16 bytes: most replicas of most nodes hold a key or two, and a
  // replica holds every node), then doubling.
  const uint32_t new_shift = buckets_ == nullptr ? 32 - 1 : shift_ - 1;
  const size_t old_capacity = buckets_ == nullptr ? 0 : capacity();
  BlockPtr<uint64_t> old = std::move(buckets_);
  shift_ = new_shift;
  const size_t new_capacity = size_t{1} << (32 - shift_);
  mask_ = static_cast<uint32_t>(new_capacity - 1);
  buckets_ = AllocBlockOf<uint64_t>(new_capacity);
  std::memset(buckets_.get(), 0, new_capacity * sizeof(uint64_t));
  for (size_t i = 0; i < old_capacity; ++i) {
    if (old[i] != 0) Place(old[i]);
  }
}

void NodeState::KeyTable::Insert(uint32_t idx, uint64_t hash) {
  if (buckets_ == nullptr || (size_ + 1) * 4 > capacity() * 3) Grow();
  Place((uint64_t{Tag(hash)} << 32) | (uint64_t{idx} + 1));
  ++size_;
}

void NodeState::KeyTable::Erase(uint32_t idx, uint64_t hash) {
  const uint64_t want = (uint64_t{Tag(hash)} << 32) | (uint64_t{idx} + 1);
  size_t i = HomeOf(Tag(hash));
  while (buckets_[i] != want) {
    assert(buckets_[i] != 0);
    i = (i + 1) & mask_;
  }
  // Backward-shift deletion: pull later members of the run into the hole unless their
  // home lies cyclically in (hole, their position].
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask_;
    if (buckets_[j] == 0) break;
    const size_t home = HomeOf(static_cast<uint32_t>(buckets_[j] >> 32));
    const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    buckets_[i] = buckets_[j];
    i = j;
  }
  buckets_[i] = 0;
  --size_;
}

NodeState::NodeState(std::string_view name, Generation generation)
    : name_(name), generation_(generation) {}

uint32_t NodeState::Find(std::string_view key) const {
  if (store() == nullptr) return kNoSlot;
  return FindHashed(key, KeyTable::Hash(key));
}

uint32_t NodeState::FindHashed(std::string_view key, uint64_t hash) const {
  const KeyTable& t = store()->keys;
  if (!t.allocated()) return kNoSlot;
  const uint32_t tag = KeyTable::Tag(hash);
  for (size_t i = t.HomeOf(tag);; i = (i + 1) & t.mask()) {
    const uint64_t b = *t.bucket(i);
    if (b == 0) return kNoSlot;
    if (static_cast<uint32_t>(b >> 32) != tag) continue;
    const uint32_t idx = static_cast<uint32_t>(b) - 1;
    const Slot& s = store()->slots[idx];
    if (s.key_len == key.size() && KeyBytesEqual(store()->arena.At(s.kv), key.data(), key.size())) {
      return idx;
    }
  }
}

void NodeState::Prefetch(std::string_view key) const {
  if (store() != nullptr) store()->keys.Prefetch(KeyTable::Hash(key));
}

uint32_t NodeState::LogUpperBound(Version v) const {
  const VersionLog& log = store()->log;
  uint32_t lo = 0;
  uint32_t hi = log.size();
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (log[mid].version() <= v) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

uint32_t NodeState::SlotOfVersion(Version version) const {
  const uint32_t i = LogUpperBound(version);
  if (i == 0) return kNoSlot;
  const LogRecord& r = store()->log[i - 1];
  if (r.version() != version || store()->slots[r.idx].version != version) return kNoSlot;
  return r.idx;
}

void NodeState::ForEachAbove(Version v, absl::FunctionRef<bool(const Slot&)> fn) const {
  if (store() == nullptr) return;
  const Store& st = *store();
  const uint32_t n = st.log.size();
  for (uint32_t i = LogUpperBound(v); i < n; ++i) {
    const LogRecord& r = st.log[i];
    const Slot& s = st.slots[r.idx];
    if (s.version != r.version()) continue;  // stale: overwritten or removed since
    if (!fn(s)) return;
  }
}

void NodeState::Scan(std::string_view prefix, absl::FunctionRef<void(const Slot&)> fn) const {
  if (store() == nullptr) return;
  const Store& st = *store();
  for (uint32_t idx = 0; idx < st.slots.size(); ++idx) {
    const Slot& s = st.slots[idx];
    if (s.version == 0) continue;  // free
    if (s.status != KeyStatus::kTombstone && KeyOf(s).substr(0, prefix.size()) == prefix) fn(s);
  }
}

// Retires slot idx's current version from the tombstone/TTL indexes and leaves its log
// record stale (not from the key table).
void NodeState::Unindex(uint32_t idx) {
  Store& st = *store();
  Slot& s = st.slots[idx];
  ++st.log_stale;
  if (s.status == KeyStatus::kTombstone) {
    st.tombstones_by_time.erase({s.time_us, s.version});
    st.tombstones_by_version.erase(s.version);
    --st.num_tombstones;
  } else if (s.status == KeyStatus::kExpiring) {
    st.ttl_index.erase({s.time_us, s.version});
  }
  st.arena.Free(s.key_len + s.value_len);
}

uint32_t NodeState::WriteHashed(Version version, std::string_view key, uint64_t hash,
                                std::string_view value, KeyStatus status, TimeUs time_us) {
  assert(version != 0);
  EnsureStore();
  Store& st = *store();
  uint32_t idx = FindHashed(key, hash);
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
  if (fresh) st.keys.Insert(idx, hash);
  LogRecord& r = st.log[st.log.Append()];
  r.version_lo = static_cast<uint32_t>(version);
  r.version_hi = static_cast<uint32_t>(version >> 32);
  r.idx = idx;
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
  Store& st = *store();
  Slot& s = st.slots[idx];
  st.keys.Erase(idx, KeyTable::Hash(KeyOf(s)));
  s.version = 0;  // free: its log records are stale
  st.free_slots.push_back(idx);
}

void NodeState::ReleaseIfEmpty() {
  if (store() != nullptr && store()->keys.size() == 0) data_->store.reset();
}

Version NodeState::Set(std::string_view key, std::string_view value) {
  Write(++data().max_version, key, value, KeyStatus::kSet, 0);
  return data_->max_version;
}

Version NodeState::SetWithTtl(std::string_view key, std::string_view value, TimeUs deadline_us) {
  Write(++data().max_version, key, value, KeyStatus::kExpiring, deadline_us);
  return data_->max_version;
}

Version NodeState::Delete(std::string_view key, TimeUs now_us) {
  const uint32_t idx = Find(key);
  if (idx == kNoSlot || slot(idx).status == KeyStatus::kTombstone) return 0;
  // The tombstone keeps the key only; the old value becomes arena garbage.
  Write(++data().max_version, key, {}, KeyStatus::kTombstone, now_us);
  return data_->max_version;
}

size_t NodeState::ExpireDue(TimeUs now_us, absl::FunctionRef<void(std::string_view)> fn) {
  size_t n = 0;
  while (store() != nullptr && !store()->ttl_index.empty() &&
         store()->ttl_index.begin()->first <= now_us) {
    const uint32_t idx = SlotOfVersion(store()->ttl_index.begin()->second);
    assert(idx != kNoSlot);
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
                             : store()->ttl_index.begin()->first;
}

void NodeState::ApplyEntry(Version version, std::string_view key, std::string_view value,
                           bool tombstone, TimeUs now_us) {
  assert(version > max_version());
  // A delete of a key we never held still keeps its death certificate: a peer holding an
  // older set may later ask us for deletes above its max_version (seed 000 invariant).
  Write(version, key, tombstone ? std::string_view() : value,
        tombstone ? KeyStatus::kTombstone : KeyStatus::kSet, tombstone ? now_us : 0);
  data_->max_version = version;
}

void NodeState::ApplyBatch(std::span<const Update> updates, TimeUs now_us) {
  const size_t n = updates.size();
  if (n == 0) return;
  EnsureStore();
  // A software pipeline over groups of kStageDistance updates, so the cache misses of
  // different entries overlap (each entry's chain of dependent loads is independent of the
  // others'): hash the keys and prefetch their home buckets; walk their probe runs (now
  // arriving) and prefetch the slot of the first bucket whose stored hash bits match;
  // prefetch those slots' key bytes in the arena; write. A stage handles a whole group
  // back to back, so its prefetches sit next to each other in the instruction stream and
  // their TLB walks and misses overlap too (one entry's write is long enough to fill the
  // reorder window: interleaved with writes, each prefetch waited for its own walk).
  // The early stages only warm the cache: the write looks the key up again, so entries of
  // the run that insert or collide with each other stay exact, whatever the table did in
  // between.
  constexpr size_t kG = kStageDistance;
  constexpr size_t kRing = 4 * kG;  // the groups in flight: hashed, probed, prefetched, written
  static_assert((kRing & (kRing - 1)) == 0);
  uint64_t hash[kRing];
  uint32_t cand[kRing];
  const Store& st = *store();
  const size_t groups = (n + kG - 1) / kG;
  for (size_t g = 0; g < groups + 3; ++g) {
    if (g < groups) {
      for (size_t k = g * kG; k < std::min(n, (g + 1) * kG); ++k) {
        const uint64_t h = KeyTable::Hash(updates[k].key);
        hash[k % kRing] = h;
        st.keys.Prefetch(h);
      }
    }
    if (g >= 1 && g - 1 < groups) {
      for (size_t k = (g - 1) * kG; k < std::min(n, g * kG); ++k) {
        const size_t i = k % kRing;
        cand[i] = ProbeHint(hash[i]);
        if (cand[i] != kNoSlot) PrefetchRead(&st.slots[cand[i]]);
      }
    }
    if (g >= 2 && g - 2 < groups) {
      for (size_t k = (g - 2) * kG; k < std::min(n, (g - 1) * kG); ++k) {
        const size_t i = k % kRing;
        if (cand[i] != kNoSlot) PrefetchRead(st.arena.At(st.slots[cand[i]].kv));
      }
    }
    if (g >= 3 && g - 3 < groups) {
      for (size_t k = (g - 3) * kG; k < std::min(n, (g - 2) * kG); ++k) {
        const Update& u = updates[k];
        assert(u.version > max_version());
        // As ApplyEntry (a delete keeps its death certificate).
        WriteHashed(u.version, u.key, hash[k % kRing], u.tombstone ? std::string_view() : u.value,
                    u.tombstone ? KeyStatus::kTombstone : KeyStatus::kSet,
                    u.tombstone ? now_us : 0);
        data_->max_version = u.version;
      }
    }
  }
}

uint32_t NodeState::ProbeHint(uint64_t hash) const {
  const KeyTable& t = store()->keys;
  if (!t.allocated()) return kNoSlot;
  const uint32_t tag = KeyTable::Tag(hash);
  for (size_t j = t.HomeOf(tag);; j = (j + 1) & t.mask()) {
    const uint64_t b = *t.bucket(j);
    if (b == 0) return kNoSlot;
    if (static_cast<uint32_t>(b >> 32) == tag) return static_cast<uint32_t>(b) - 1;
  }
}

void NodeState::RaiseMaxVersion(Version v) {
  assert(v >= max_version());
  if (v != 0) data().max_version = v;
}

void NodeState::ResetTo(Version last_gc_version) {
  if (data_ == nullptr && last_gc_version == 0) return;
  Data& d = data();
  d.store.reset();
  d.max_version = 0;
  d.last_gc_version = last_gc_version;
}

size_t NodeState::GcTombstones(TimeUs now_us, TimeUs grace_us, Version max_removable_version) {
  if (store() == nullptr) return 0;
  Store& st = *store();
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
    const uint32_t idx = SlotOfVersion(v);
    assert(idx != kNoSlot);
    // Already out of the tombstone indexes: let RemoveSlot treat it as a plain slot.
    st.slots[idx].status = KeyStatus::kSet;
    --st.num_tombstones;
    RemoveSlot(idx);
    if (v > data_->last_gc_version) data_->last_gc_version = v;
    ++removed;
  }
  ReleaseIfEmpty();
  return removed;
}

size_t NodeState::GcTombstonesUpTo(Version v) {
  if (store() == nullptr) return 0;
  Store& st = *store();
  size_t removed = 0;
  while (!st.tombstones_by_version.empty() && *st.tombstones_by_version.begin() <= v) {
    const Version tv = *st.tombstones_by_version.begin();
    const uint32_t idx = SlotOfVersion(tv);
    assert(idx != kNoSlot);
    RemoveSlot(idx);  // drops it from both tombstone indexes
    if (tv > data_->last_gc_version) data_->last_gc_version = tv;
    ++removed;
  }
  ReleaseIfEmpty();
  return removed;
}

void NodeState::MaybeCompact() {
  Store& st = *store();
  // The log holds one live record per key; compact it once stale records outnumber them, so
  // scans skip at most as many records as they emit and the amortized cost per write stays
  // O(1). The arena compacts once garbage outweighs live bytes.
  const bool log_due = st.log_stale > 64 && st.log_stale > st.log.size() - st.log_stale;
  const bool arena_due = st.arena.ShouldCompact();
  if (!log_due && !arena_due) return;
  // Both passes read every log record's slot at random (one DRAM miss each): that read is
  // most of their cost, so when the log is due and the arena is at least half-way due they
  // share one pass instead of running back to back.
  if (arena_due || (st.arena.dead_bytes() > (1u << 19) &&
                    2 * st.arena.dead_bytes() > st.arena.live_bytes())) {
    Compact();
  } else {
    CompactLog();
  }
}

void NodeState::CompactLog() {
  Store& st = *store();
  VersionLog& log = st.log;
  constexpr uint32_t kAhead = 32;
  const uint32_t n = log.size();
  uint32_t out = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (i + kAhead < n) PrefetchRead(&st.slots[log[i + kAhead].idx]);
    const LogRecord r = log[i];
    if (st.slots[r.idx].version == r.version()) log[out++] = r;
  }
  log.Truncate(out);
  st.log_stale = 0;
}

void NodeState::Compact() {
  Store& st = *store();
  VersionLog& log = st.log;
  // One pass over the log: drop stale records, and copy each live key-value into a fresh
  // arena in version (log) order, so entries a delta sends together stay adjacent in the
  // arena (DeltaBuilder copies adjacent runs with one memcpy). Slots are prefetched two
  // distances ahead, their arena bytes one distance ahead (that address needs the slot).
  constexpr uint32_t kAhead = 16;
  const uint32_t n = log.size();
  KvArena fresh;
  fresh.Reserve(st.arena.live_bytes());
  uint32_t out = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (i + 2 * kAhead < n) PrefetchRead(&st.slots[log[i + 2 * kAhead].idx]);
    if (i + kAhead < n) {
      const LogRecord& ahead = log[i + kAhead];
      const Slot& s = st.slots[ahead.idx];
      if (s.version == ahead.version()) PrefetchRead(st.arena.At(s.kv));
    }
    const LogRecord r = log[i];
    Slot& s = st.slots[r.idx];
    if (s.version != r.version()) continue;  // stale
    log[out++] = r;
    s.kv = fresh.Append(KeyOf(s), ValueOf(s));
  }
  log.Truncate(out);
  st.log_stale = 0;
  st.arena.Swap(fresh);
}

size_t NodeState::OverheadBytes() const {
  if (store() == nullptr) return 0;
  const Store& st = *store();
  // Store + slab + key table (8 bytes a bucket) + version log (12 bytes a record, stale
  // ones included); btree nodes are estimated from their value size and a 70% fill.
  const size_t slab = st.slots.bytes();
  const size_t table = st.keys.capacity() * sizeof(uint64_t);
  const size_t log = st.log.bytes();
  const size_t tomb = st.tombstones_by_time.size() * (16 + 8) * 10 / 7;
  const size_t ttl = st.ttl_index.size() * 16 * 10 / 7;
  return sizeof(Store) + slab + table + log + tomb + ttl + st.arena.allocated_bytes() -
         st.arena.live_bytes();
}

}  // namespace scuttle

// A member without keys is one of N² records over a cluster (docs/detection.md "Memory per
// member"): keep it at 88 bytes (it was 144 before the versions and the key store moved out of line).
static_assert(sizeof(scuttle::NodeState) <= 88, "NodeState grew: see docs/detection.md");
