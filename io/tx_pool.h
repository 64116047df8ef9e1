// TxPool: the preallocated send slots behind Transport::AcquireTx/CommitTx.
//
// Each slot is a datagram buffer plus the msghdr/iovec/sockaddr the kernel reads when it
// sends it, so a committed slot is ready for sendmmsg or an io_uring SENDMSG without any
// per-packet allocation (DESIGN §9, STYLE "preallocate on the hot path"). The pool is the
// bound on queued + in-flight sends; exhaustion is a counted drop, not an error.
#ifndef SCUTTLE_IO_TX_POOL_H_
#define SCUTTLE_IO_TX_POOL_H_

#include <sys/socket.h>
#include <sys/uio.h>

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"
#include "io/socket.h"
#include "io/transport.h"

namespace scuttle::io {

class TxPool {
 public:
  struct Slot {
    msghdr msg;
    iovec iov;
    sockaddr_storage addr;
  };
  static constexpr uint32_t kNone = UINT32_MAX;

  // slot_bytes: bytes per slot (TxSlotBytes(options)); count: number of slots.
  static absl::StatusOr<TxPool> Create(size_t count, size_t slot_bytes);
  TxPool(TxPool&&) = default;
  TxPool& operator=(TxPool&&) = default;

  size_t slot_bytes() const { return slot_bytes_; }
  size_t capacity() const { return count_; }
  size_t free_count() const { return free_top_; }

  // Takes a free slot; kNone when exhausted.
  uint32_t Acquire() {
    if (free_top_ == 0) return kNone;
    return free_[--free_top_];
  }
  // REQUIRES: `i` was acquired and is not yet released.
  void Release(uint32_t i) {
    assert(i < count_ && free_top_ < count_);
    free_[free_top_++] = i;
  }
  uint8_t* data(uint32_t i) const { return buffers_.data() + static_cast<size_t>(i) * stride_; }
  Slot& slot(uint32_t i) { return slots_[i]; }

  // The AcquireTx/CommitTx/AbortTx protocol shared by the backends: at most one slot is
  // "pending" (acquired, not yet committed).
  std::span<uint8_t> AcquirePending(size_t max_len, TransportStats& stats) {
    AbortPending();
    if (max_len > slot_bytes_) {
      stats.CountDrop(Drop::kTxTooLarge);
      return {};
    }
    pending_ = Acquire();
    if (pending_ == kNone) {
      stats.CountDrop(Drop::kTxPoolFull);
      return {};
    }
    pending_len_ = max_len;
    return {data(pending_), max_len};
  }
  // Returns the pending slot (kNone if there is none) and forgets it.
  // REQUIRES: len <= the acquired length.
  uint32_t TakePending(size_t len) {
    assert(len <= pending_len_);
    (void)len;
    const uint32_t i = pending_;
    pending_ = kNone;
    return i;
  }
  // Takes the pending slot to send `packet`, which must lie inside the acquired range;
  // *offset is where it starts. Returns kNone when nothing is pending, or when `packet`
  // lies outside the slot: then the slot is released and *bad_span set.
  uint32_t TakePending(std::span<const uint8_t> packet, size_t* offset, bool* bad_span) {
    *bad_span = false;
    const uint32_t i = pending_;
    if (i == kNone) return kNone;
    pending_ = kNone;
    const uint8_t* begin = data(i);
    // Compare as integers: the span may come from anywhere when the caller is wrong.
    const auto p = reinterpret_cast<uintptr_t>(packet.data());
    const auto b = reinterpret_cast<uintptr_t>(begin);
    if (packet.empty() || p < b || p - b > pending_len_ ||
        packet.size() > pending_len_ - (p - b)) {
      *bad_span = true;
      Release(i);
      return kNone;
    }
    *offset = p - b;
    return i;
  }
  void AbortPending() {
    if (pending_ != kNone) Release(pending_);
    pending_ = kNone;
  }

  // Fills slot i's msghdr for the `len` bytes at `offset` in the slot, to the
  // `addr_len`-byte address already in slot(i).addr.
  void Prepare(uint32_t i, size_t offset, size_t len, socklen_t addr_len) {
    assert(offset + len <= slot_bytes_);
    Slot& s = slots_[i];
    s.iov = {data(i) + offset, len};
    s.msg = {};
    s.msg.msg_name = &s.addr;
    s.msg.msg_namelen = addr_len;
    s.msg.msg_iov = &s.iov;
    s.msg.msg_iovlen = 1;
  }

 private:
  TxPool() = default;

  size_t count_ = 0;
  size_t slot_bytes_ = 0;
  size_t stride_ = 0;
  MappedRegion buffers_;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<uint32_t[]> free_;  // stack of free slot indices
  size_t free_top_ = 0;
  uint32_t pending_ = kNone;
  size_t pending_len_ = 0;
};

inline absl::StatusOr<TxPool> TxPool::Create(size_t count, size_t slot_bytes) {
  TxPool p;
  p.count_ = count;
  p.slot_bytes_ = slot_bytes;
  p.stride_ = (slot_bytes + 63) & ~size_t{63};  // slots start on cache lines
  auto region = MappedRegion::Map(p.stride_ * count);
  if (!region.ok()) return region.status();
  p.buffers_ = std::move(*region);
  p.slots_ = std::make_unique<Slot[]>(count);
  p.free_ = std::make_unique<uint32_t[]>(count);
  // Hand out low indices first so a lightly loaded node reuses a few warm slots.
  for (size_t i = 0; i < count; ++i) p.free_[i] = static_cast<uint32_t>(count - 1 - i);
  p.free_top_ = count;
  return p;
}

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_TX_POOL_H_
