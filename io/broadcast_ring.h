// BroadcastRing: a lock-free single-writer, many-reader ring of fixed-size records
// (issue #18 "membership once", docs/shards.md). Shard 0's thread publishes membership
// records (engine/member_feed.h); every other shard's thread reads all of them at its own
// pace. The writer never waits and never allocates; readers never write to the ring
// except one flag.
//
// Each slot is a seqlock: the writer marks it odd (2p+1) while writing position p, then
// even (2p+2). A reader copies the slot and re-reads the sequence: unchanged and equal to
// 2p+2 means it read position p whole. The payload is stored as relaxed atomic words, so
// the racing copy is defined behaviour (and clean under TSan); its order is carried by the
// fences around it.
//
// A reader that falls more than `capacity` records behind gets kOverrun: it must skip to
// the head and ask for a resync (RequestResync); the writer answers by publishing its
// full state (records are idempotent states, so a full publication repairs any gap).
#ifndef SCUTTLE_IO_BROADCAST_RING_H_
#define SCUTTLE_IO_BROADCAST_RING_H_

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

namespace scuttle {

template <typename T>
class BroadcastRing {
  static_assert(std::is_trivially_copyable_v<T>);
  static constexpr size_t kWords = (sizeof(T) + 7) / 8;

 public:
  // REQUIRES: capacity is a power of two >= 2.
  explicit BroadcastRing(size_t capacity)
      : mask_(capacity - 1), slots_(std::make_unique<Slot[]>(capacity)) {
    assert(capacity >= 2 && (capacity & (capacity - 1)) == 0);
  }
  BroadcastRing(const BroadcastRing&) = delete;
  BroadcastRing& operator=(const BroadcastRing&) = delete;

  size_t capacity() const { return mask_ + 1; }
  // The next position the writer will fill (= records published so far).
  uint64_t head() const { return head_.load(std::memory_order_acquire); }

  // ---- Writer (one thread) ----
  void Publish(const T& value) {
    const uint64_t p = head_.load(std::memory_order_relaxed);
    Slot& s = slots_[p & mask_];
    uint64_t words[kWords] = {};
    std::memcpy(words, &value, sizeof(T));
    s.seq.store(2 * p + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    for (size_t i = 0; i < kWords; ++i) s.words[i].store(words[i], std::memory_order_relaxed);
    s.seq.store(2 * p + 2, std::memory_order_release);
    head_.store(p + 1, std::memory_order_release);
  }
  // True once per reader request since the last call: publish the full state now.
  bool TakeResyncRequest() { return resync_.exchange(false, std::memory_order_acq_rel); }

  // ---- Readers (one Reader per thread) ----
  enum class Read { kOk, kEmpty, kOverrun };
  class Reader {
   public:
    // Starts at the oldest record still in the ring.
    explicit Reader(const BroadcastRing* ring) : ring_(ring) {
      const uint64_t h = ring->head();
      next_ = h > ring->capacity() ? h - ring->capacity() : 0;
    }
    Read Next(T* out) {
      const uint64_t h = ring_->head();
      if (next_ >= h) return Read::kEmpty;
      if (h - next_ > ring_->capacity()) return Read::kOverrun;
      const Slot& s = ring_->slots_[next_ & ring_->mask_];
      const uint64_t want = 2 * next_ + 2;
      if (s.seq.load(std::memory_order_acquire) != want) return Read::kOverrun;
      uint64_t words[kWords];
      for (size_t i = 0; i < kWords; ++i) words[i] = s.words[i].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.seq.load(std::memory_order_relaxed) != want) return Read::kOverrun;
      std::memcpy(out, words, sizeof(T));
      ++next_;
      return Read::kOk;
    }
    // After kOverrun: skip to the head first, then ask the writer for its full state, so
    // that publication lands after the new cursor.
    void Resync(BroadcastRing* ring) {
      next_ = ring->head();
      ring->resync_.store(true, std::memory_order_release);
      ++resyncs_;
    }
    uint64_t position() const { return next_; }
    uint64_t resyncs() const { return resyncs_; }

   private:
    const BroadcastRing* ring_;
    uint64_t next_ = 0;
    uint64_t resyncs_ = 0;
  };

 private:
  struct Slot {
    std::atomic<uint64_t> seq{0};
    std::atomic<uint64_t> words[kWords] = {};
  };
  const size_t mask_;
  std::unique_ptr<Slot[]> slots_;
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<bool> resync_{false};
};

}  // namespace scuttle

#endif  // SCUTTLE_IO_BROADCAST_RING_H_
