// NodeState: one node's replicated key-value map (DESIGN §1, §7), as held by any replica.
//
// Storage: keys and values in a KvArena; one 32-byte Slot per key (live or tombstone) in a
// slab; a hash set of slot indexes keyed by the key bytes; and ordered indexes:
//   - version index: version -> slot, exactly one entry per slot, so "every entry above
//     version v" is a range scan, O(log n + k) for k entries emitted (seed 000 deltas);
//   - tombstone index: (tombstone time, version), so GC pops expired tombstones in order;
//   - TTL index (owner only): (deadline, version), so expiry pops due keys in order.
// No operation scans all keys except Scan() (an admin read) and Compact() (amortized).
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
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "engine/arena.h"
#include "engine/membership.h"
#include "engine/types.h"
#include "wire/endpoint.h"

namespace scuttle {

class NodeState {
 public:
  struct Slot;

 private:
  // Slots in fixed pages: growth never copies more than one page or doubles the
  // footprint, so the bookkeeping per key stays flat in state size (DESIGN §7, ≤ 64 B per
  // entry). The first page starts at kFirstPageSlots and doubles (copying) up to a full
  // page, so a node with a handful of keys does not pin 128 KiB per replica.
  class Slab {
   public:
    static constexpr uint32_t kPageShift = 12;  // 4096 slots = 128 KiB per page
    static constexpr uint32_t kFirstPageSlots = 4;
    Slot& operator[](uint32_t i) { return pages_[i >> kPageShift][i & kMask]; }
    const Slot& operator[](uint32_t i) const { return pages_[i >> kPageShift][i & kMask]; }
    uint32_t size() const { return size_; }
    uint32_t Append();
    size_t bytes() const;

   private:
    static constexpr uint32_t kMask = (1u << kPageShift) - 1;
    std::vector<std::unique_ptr<Slot[]>> pages_;
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

  NodeState(std::string name, Generation generation);
  NodeState(const NodeState&) = delete;
  NodeState& operator=(const NodeState&) = delete;

  const std::string& name() const { return name_; }
  Generation generation() const { return generation_; }
  Version max_version() const { return max_version_; }
  Version last_gc_version() const { return last_gc_version_; }

  // Membership fields carried by digests (not versioned). Declared so that they pack:
  // every replica holds one NodeState per known node (O(N²) over a cluster).
  Endpoint endpoint;
  bool leaving = false;
  uint64_t heartbeat = 0;
  Liveness liveness;  // failure-detector record (engine/membership.h)
  // Ack frontier (seed 002), learned from digests: for a peer, the max_version of OUR map
  // it last reported; for an owner, the last_gc_version it announced for its own map.
  Version acked_self_max = 0;
  Version owner_gc = 0;

  size_t num_keys() const { return store_ == nullptr ? 0 : store_->key_set.size(); }
  size_t num_live() const { return num_keys() - num_tombstones(); }
  size_t num_tombstones() const { return store_ == nullptr ? 0 : store_->num_tombstones; }
  size_t num_expiring() const { return store_ == nullptr ? 0 : store_->ttl_index.size(); }
  const KvArena& arena() const { return store_ == nullptr ? kNoArena : store_->arena; }

  // ---- Reads ----
  // Returns kNoSlot when the key is unknown (never set, or tombstone already GC'd).
  uint32_t Find(std::string_view key) const;
  // Starts loading the hash-table group of `key` (appliers call it a few entries ahead:
  // applying into a large state is bound by cache misses).
  void Prefetch(std::string_view key) const {
    if (store_ != nullptr) store_->key_set.prefetch(key);
  }
  // REQUIRES: idx is a slot index returned by Find (so the node holds keys).
  const Slot& slot(uint32_t idx) const { return store_->slots[idx]; }
  // REQUIRES (these three): s is one of this node's slots.
  std::string_view KeyOf(const Slot& s) const { return {store_->arena.At(s.kv), s.key_len}; }
  // Key bytes immediately followed by value bytes.
  std::string_view KeyValueOf(const Slot& s) const {
    return {store_->arena.At(s.kv), size_t{s.key_len} + s.value_len};
  }
  std::string_view ValueOf(const Slot& s) const {
    return {store_->arena.At(s.kv) + s.key_len, s.value_len};
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
  struct KeyHash {
    using is_transparent = void;
    const NodeState* s;
    size_t operator()(uint32_t idx) const;
    size_t operator()(std::string_view key) const;
  };
  struct KeyEq {
    using is_transparent = void;
    const NodeState* s;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, std::string_view k) const;
    bool operator()(std::string_view k, uint32_t a) const { return (*this)(a, k); }
  };

  // Writes (version, key, value, status, time) into the key's slot, creating it if needed,
  // keeping every index exact. Returns the slot index.
  uint32_t Write(Version version, std::string_view key, std::string_view value,
                 KeyStatus status, TimeUs time_us);
  void Unindex(uint32_t idx);
  void RemoveSlot(uint32_t idx);
  void MaybeCompact();
  // Frees the store once GC has removed every key.
  void ReleaseIfEmpty();

  // Everything a node holds only once it has a key (see the file comment).
  struct Store {
    explicit Store(const NodeState* owner) : key_set(0, KeyHash{owner}, KeyEq{owner}) {}
    size_t num_tombstones = 0;
    KvArena arena;
    Slab slots;
    std::vector<uint32_t> free_slots;
    absl::flat_hash_set<uint32_t, KeyHash, KeyEq> key_set;
    absl::btree_map<Version, uint32_t> by_version;
    absl::btree_set<std::pair<TimeUs, Version>> tombstones_by_time;
    absl::btree_set<Version> tombstones_by_version;
    absl::btree_set<std::pair<TimeUs, Version>> ttl_index;
  };
  static const KvArena kNoArena;

  std::string name_;
  Generation generation_;
  Version max_version_ = 0;
  Version last_gc_version_ = 0;
  std::unique_ptr<Store> store_;  // null while the node holds no key
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_NODE_STATE_H_
