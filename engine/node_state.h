// NodeState: one node's replicated key-value map (DESIGN §1, §7), as held by any replica.
//
// Storage: keys and values in a KvArena; one 32-byte Slot per key (live or tombstone) in a
// slab; a key table (open addressing, linear probing) of slot indexes, each stored with 32
// bits of its key's hash, so a probe that meets another key almost never reads its slot or
// its arena bytes, and growth never rehashes a key; and ordered indexes:
//   - version log: (version, slot) appended on every write. Versions only rise (owner writes
//     take max+1, the applier only applies above max), so the log is sorted; an overwrite
//     or a GC leaves its old record behind as stale (the slot's version no longer matches),
//     readers skip it, and the log is compacted in bulk once stale records outnumber live
//     ones. "Every entry above version v" is a binary search and a scan of the records
//     written since v, O(log n + writes since v) (seed 000 deltas), and an overwrite costs
//     one append instead of an ordered-index erase + insert;
//   - tombstone index: (tombstone time, version), so GC pops expired tombstones in order;
//   - TTL index (owner only): (deadline, version), so expiry pops due keys in order.
// No operation scans all keys except Scan() (an admin read) and the compactions (amortized).
//
// Applying a delta into a large state is bound by cache misses (bucket, slot, key bytes: a
// chain of dependent loads per entry), so ApplyBatch() takes a part's entries at once and
// runs them through a software pipeline (hash, prefetch the bucket; probe, prefetch the
// slot; prefetch the key bytes; write), a few entries apart per stage, so the misses of
// neighbouring entries overlap.
//
// Memory: every replica holds a NodeState per known node, and in a large cluster most of
// them hold no key at all (only heartbeats), so all of the above lives in a Store that is
// allocated on the first key and released when the last key is GC'd or reset away. A
// NodeState without keys costs about 160 bytes; one with a few keys about 1 KB (the
// first slab page and the first arena chunk start small and double).
#ifndef SCUTTLE_ENGINE_NODE_STATE_H_
#define SCUTTLE_ENGINE_NODE_STATE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/functional/function_ref.h"
#include "engine/arena.h"
#include "engine/membership.h"
#include "engine/name_bytes.h"
#include "engine/types.h"
#include "wire/endpoint.h"

namespace scuttle {

class NodeState {
 public:
  struct Slot;

 private:
  // Records in fixed pages: growth never copies more than one page or doubles the
  // footprint, so the bookkeeping per key stays flat in state size (DESIGN §7, ≤ 64 B per
  // entry). The first page starts at kFirstPageSlots and doubles (copying) up to a full
  // page, so a node with a handful of keys does not pin a full page per replica.
  template <typename T, uint32_t kPageShift>
  class PagedArray {
   public:
    static constexpr uint32_t kFirstPageSlots = 2;
    T& operator[](uint32_t i) { return pages_[i >> kPageShift][i & kMask]; }
    const T& operator[](uint32_t i) const { return pages_[i >> kPageShift][i & kMask]; }
    uint32_t size() const { return size_; }
    // Appends a value-initialized record; returns its index.
    uint32_t Append();
    // Drops records [n, size) and the full pages they leave unused. REQUIRES: n <= size().
    void Truncate(uint32_t n);
    size_t bytes() const;

   private:
    static constexpr uint32_t kMask = (1u << kPageShift) - 1;
    std::vector<BlockPtr<T>> pages_;
    uint32_t size_ = 0;
    uint32_t first_page_slots_ = 0;  // capacity of pages_[0]
  };

 public:
  struct Slot {
    Version version;
    KvArena::Ref kv;  // key bytes, then value bytes
    uint32_t value_len;
    uint16_t key_len;
    KeyStatus status;
    uint8_t unused;
    TimeUs time_us;  // tombstone: when it became one here (GC clock); expiring: deadline
  };
  static_assert(sizeof(Slot) == 32);
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  // One entry of a delta for ApplyBatch.
  struct Update {
    Version version;
    std::string_view key;
    std::string_view value;
    bool tombstone;
  };
  // ApplyBatch keeps this many entries in flight per stage of its pipeline (see the file
  // comment): enough independent misses to cover the memory-level parallelism of a core.
  static constexpr size_t kStageDistance = 4;

  NodeState(std::string_view name, Generation generation);
  NodeState(const NodeState&) = delete;
  NodeState& operator=(const NodeState&) = delete;

  std::string_view name() const { return name_.view(); }
  Generation generation() const { return generation_; }
  Version max_version() const { return data_ == nullptr ? 0 : data_->max_version; }
  Version last_gc_version() const { return data_ == nullptr ? 0 : data_->last_gc_version; }

  // Membership fields carried by digests (not versioned). Declared so that they pack:
  // every replica holds one NodeState per known node (O(N²) over a cluster).
  uint64_t heartbeat = 0;
  Liveness liveness;  // failure-detector record (engine/membership.h)
  Endpoint endpoint;
  bool leaving = false;
  // Ack frontier (seed 002), learned from digests: for a peer, the max_version of OUR map
  // it last reported; for an owner, the last_gc_version it announced for its own map.
  Version acked_self_max() const { return data_ == nullptr ? 0 : data_->acked_self_max; }
  Version owner_gc() const { return data_ == nullptr ? 0 : data_->owner_gc; }
  void set_acked_self_max(Version v) {
    if (v != 0 || data_ != nullptr) data().acked_self_max = v;
  }
  void set_owner_gc(Version v) {
    if (v != 0 || data_ != nullptr) data().owner_gc = v;
  }

  size_t num_keys() const { return store() == nullptr ? 0 : store()->keys.size(); }
  size_t num_live() const { return num_keys() - num_tombstones(); }
  size_t num_tombstones() const { return store() == nullptr ? 0 : store()->num_tombstones; }
  size_t num_expiring() const { return store() == nullptr ? 0 : store()->ttl_index.size(); }
  const KvArena& arena() const { return store() == nullptr ? kNoArena : store()->arena; }

  // ---- Reads ----
  // Returns kNoSlot when the key is unknown (never set, or tombstone already GC'd).
  uint32_t Find(std::string_view key) const;
  // Starts loading the key-table bucket of `key` (ApplyBatch does this for its batch).
  void Prefetch(std::string_view key) const;
  // REQUIRES: idx is a slot index returned by Find (so the node holds keys).
  const Slot& slot(uint32_t idx) const { return store()->slots[idx]; }
  // REQUIRES (these three): s is one of this node's slots.
  std::string_view KeyOf(const Slot& s) const { return {store()->arena.At(s.kv), s.key_len}; }
  // Key bytes immediately followed by value bytes.
  std::string_view KeyValueOf(const Slot& s) const {
    return {store()->arena.At(s.kv), size_t{s.key_len} + s.value_len};
  }
  std::string_view ValueOf(const Slot& s) const {
    return {store()->arena.At(s.kv) + s.key_len, s.value_len};
  }
  // Every slot with version > v, ascending. fn returns false to stop.
  void ForEachAbove(Version v, absl::FunctionRef<bool(const Slot&)> fn) const;
  // Live (non-tombstone) keys with the given prefix, in no particular order.
  void Scan(std::string_view prefix, absl::FunctionRef<void(const Slot&)> fn) const;

  // ---- Owner writes (REQUIRES: this is the local node's own map) ----
  // Each write takes version max_version()+1 (DESIGN §1). Limits are checked by callers.
  Version Set(std::string_view key, std::string_view value);
  Version SetWithTtl(std::string_view key, std::string_view value, TimeUs deadline_us);
  // Returns 0 (and writes nothing) when the key is absent or already deleted.
  Version Delete(std::string_view key, TimeUs now_us);
  // Turns every TTL key whose deadline is <= now into a tombstone (a new version, so the
  // expiry replicates as a delete). Calls fn(key) for each; returns the count.
  size_t ExpireDue(TimeUs now_us, absl::FunctionRef<void(std::string_view key)> fn);
  // Earliest TTL deadline, or INT64_MAX.
  TimeUs NextExpiry() const;

  // ---- Replica writes (the delta applier) ----
  // REQUIRES: version > max_version() (the applier drops stale entries first).
  void ApplyEntry(Version version, std::string_view key, std::string_view value, bool tombstone,
                  TimeUs now_us);
  // ApplyEntry for each update in order, with the lookups of neighbouring updates
  // overlapped (see the file comment). REQUIRES: versions strictly ascend, the first above
  // max_version().
  void ApplyBatch(std::span<const Update> updates, TimeUs now_us);
  // REQUIRES: v >= max_version().
  void RaiseMaxVersion(Version v);
  // seed 000 reset: forget every key, adopt the sender's last_gc_version, max_version = 0.
  void ResetTo(Version last_gc_version);

  // ---- GC (seed 000): remove tombstones older than grace, raise last_gc_version ----
  // Removes tombstones with time_us + grace_us <= now_us, and only those with
  // version <= max_removable_version (the ack frontier of seed 002, or UINT64_MAX).
  // Returns the number removed.
  size_t GcTombstones(TimeUs now_us, TimeUs grace_us, Version max_removable_version);
  // Ack-frontier GC (seed 002): removes every tombstone with version <= v at once, however
  // young, in O(k log n) through the tombstone-by-version index. Returns the number removed.
  size_t GcTombstonesUpTo(Version v);

  // Bytes of index/bookkeeping per key beyond key and value bytes (for benchmarks).
  size_t OverheadBytes() const;

 private:
  // Key table: open addressing with linear probing over 64-bit buckets holding
  // (32 hash bits << 32 | slot index + 1); 0 is empty. The home bucket is the top bits of
  // the stored hash bits, so growing re-places buckets from what they hold (no key is read
  // or rehashed) and a probe compares the stored bits before touching a slot. Deletion
  // shifts the run back (no tombstones). Load stays at most 3/4.
  class KeyTable {
   public:
    static uint64_t Hash(std::string_view key);
    static uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }
    size_t size() const { return size_; }
    bool allocated() const { return buckets_ != nullptr; }
    size_t capacity() const { return allocated() ? size_t{mask_} + 1 : 0; }
    size_t HomeOf(uint32_t tag) const { return tag >> shift_; }
    const uint64_t* bucket(size_t i) const { return &buckets_[i]; }
    size_t mask() const { return mask_; }
    void Prefetch(uint64_t hash) const;
    // REQUIRES: no bucket holds idx.
    void Insert(uint32_t idx, uint64_t hash);
    // REQUIRES: idx was inserted with this hash.
    void Erase(uint32_t idx, uint64_t hash);

   private:
    void Grow();
    void Place(uint64_t bucket);
    BlockPtr<uint64_t> buckets_;
    uint32_t shift_ = 32;
    uint32_t mask_ = 0;
    size_t size_ = 0;
  };
  // One version-log record (12 bytes, 4-aligned, so a page packs them).
  struct LogRecord {
    uint32_t version_lo;
    uint32_t version_hi;
    uint32_t idx;
    Version version() const { return (Version{version_hi} << 32) | version_lo; }
  };
  // Slot pages are 2 MiB (65,536 slots, one huge page each: slots are read at random);
  // log pages 48 KiB (4,096 records: the log is read and written in order).
  using Slab = PagedArray<Slot, 16>;
  using VersionLog = PagedArray<LogRecord, 12>;

  uint32_t FindHashed(std::string_view key, uint64_t hash) const;
  // The slot of the first bucket whose stored hash bits match (the likely owner of the
  // key), or kNoSlot: a prefetch hint, not an answer.
  uint32_t ProbeHint(uint64_t hash) const;
  // Writes (version, key, value, status, time) into the key's slot, creating it if needed,
  // keeping every index exact. Returns the slot index.
  uint32_t Write(Version version, std::string_view key, std::string_view value,
                 KeyStatus status, TimeUs time_us) {
    return WriteHashed(version, key, KeyTable::Hash(key), value, status, time_us);
  }
  uint32_t WriteHashed(Version version, std::string_view key, uint64_t hash,
                       std::string_view value, KeyStatus status, TimeUs time_us);
  // The slot holding `version` (binary search of the version log), or kNoSlot.
  uint32_t SlotOfVersion(Version version) const;
  // Index of the first log record with version > v.
  uint32_t LogUpperBound(Version v) const;
  void Unindex(uint32_t idx);
  void RemoveSlot(uint32_t idx);
  // Compacts the version log (CompactLog) or the log and the arena together (Compact) when
  // their garbage calls for it; amortized O(1) per write.
  void MaybeCompact();
  void CompactLog();
  void Compact();
  // Frees the store once GC has removed every key.
  void ReleaseIfEmpty();

  // Everything a node holds only once it has a key (see the file comment).
  struct Store {
    size_t num_tombstones = 0;
    KvArena arena;
    Slab slots;  // a free slot has version 0 (no write takes version 0)
    std::vector<uint32_t> free_slots;
    KeyTable keys;
    VersionLog log;
    uint32_t log_stale = 0;  // records whose slot moved on (overwritten or removed)
    absl::btree_set<std::pair<TimeUs, Version>> tombstones_by_time;
    absl::btree_set<Version> tombstones_by_version;
    absl::btree_set<std::pair<TimeUs, Version>> ttl_index;
  };
  static const KvArena kNoArena;

  // Versions and keys: all zero / empty for most members of a large idle cluster (a peer
  // that never wrote, of an observer that never wrote), so they live out of line,
  // allocated on the first non-zero version (DESIGN §7; docs/detection.md "Memory per
  // member"). The key store is a second, larger step, taken on the first key.
  struct Data {
    Version max_version = 0;
    Version last_gc_version = 0;
    Version acked_self_max = 0;
    Version owner_gc = 0;
    std::unique_ptr<Store> store;  // null while the node holds no key
  };
  Data& data() {
    if (data_ == nullptr) data_ = std::make_unique<Data>();
    return *data_;
  }
  Store* store() const { return data_ == nullptr ? nullptr : data_->store.get(); }
  void EnsureStore() {
    Data& d = data();
    if (d.store == nullptr) d.store = std::make_unique<Store>();
  }

  NameBytes name_;
  Generation generation_;
  std::unique_ptr<Data> data_;  // null while every version is 0 and no key is held
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_NODE_STATE_H_
