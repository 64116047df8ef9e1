// ZerocopyTracker: send slots lent to the kernel by MSG_ZEROCOPY until it says it is done.
//
// With MSG_ZEROCOPY the kernel keeps reading a send's buffer after sendmsg returns; the
// slot may be reused only when the completion notification arrives on the socket's error
// queue. The kernel numbers a socket's successful zero-copy sends 0, 1, 2, ... (a send
// that fails does not take a number) and notifies ranges [lo, hi] of those numbers,
// usually in order and coalesced, but not necessarily in order. The tracker remembers,
// per number, which slots the send carried (one, or a whole GSO run), and hands them back
// once notified. Fixed size, no allocation after construction: a send that does not fit
// (HasRoom false) is sent by copy instead.
#ifndef SCUTTLE_IO_ZEROCOPY_H_
#define SCUTTLE_IO_ZEROCOPY_H_

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace scuttle::io {

class ZerocopyTracker {
 public:
  // capacity: the most slots (and so sends) that may wait at once, e.g. the tx pool size.
  explicit ZerocopyTracker(size_t capacity = 0)
      : cap_(capacity),
        sends_(std::make_unique<Send[]>(capacity)),
        slots_(std::make_unique<uint32_t[]>(capacity)) {}

  // True when a send of `slots` slots can be tracked now.
  bool HasRoom(size_t slots) const { return sends_len_ < cap_ && slots_len_ + slots <= cap_; }
  // Records the socket's next zero-copy send number as carrying slots[0..n).
  // REQUIRES: HasRoom(n).
  void Add(const uint32_t* slots, size_t n) {
    assert(HasRoom(n));
    Send& s = sends_[(sends_head_ + sends_len_) % cap_];
    s.first = (slots_head_ + slots_len_) % cap_;
    s.count = static_cast<uint32_t>(n);
    s.done = false;
    for (size_t k = 0; k < n; ++k) slots_[(s.first + k) % cap_] = slots[k];
    slots_len_ += n;
    ++sends_len_;
    pending_ += n;
  }
  // The kernel's notification for sends lo..hi (inclusive, modulo 2^32): calls
  // release(slot) for every slot of those sends still waiting. Numbers it does not know
  // (already notified, never sent) are ignored. Returns the number of sends completed.
  template <typename F>
  size_t Complete(uint32_t lo, uint32_t hi, F&& release) {
    size_t completed = 0;
    const uint32_t span = hi - lo;
    for (size_t k = 0; k < sends_len_; ++k) {
      const uint32_t id = head_id_ + static_cast<uint32_t>(k);
      if (id - lo > span) continue;
      Send& s = sends_[(sends_head_ + k) % cap_];
      if (s.done) continue;
      s.done = true;
      ++completed;
      pending_ -= s.count;
      for (uint32_t j = 0; j < s.count; ++j) release(slots_[(s.first + j) % cap_]);
    }
    // Forget the finished prefix (an out-of-order notification leaves a hole until the
    // older sends are notified too).
    while (sends_len_ > 0 && sends_[sends_head_].done) {
      const Send& s = sends_[sends_head_];
      slots_head_ = (slots_head_ + s.count) % cap_;
      slots_len_ -= s.count;
      sends_head_ = (sends_head_ + 1) % cap_;
      --sends_len_;
      ++head_id_;
    }
    return completed;
  }
  // Slots waiting for a notification.
  size_t pending_slots() const { return pending_; }
  size_t capacity() const { return cap_; }

 private:
  struct Send {
    size_t first;  // position of its first slot in slots_
    uint32_t count;
    bool done;
  };
  size_t cap_;
  std::unique_ptr<Send[]> sends_;  // ring: send numbers head_id_ ... head_id_ + sends_len_ - 1
  size_t sends_head_ = 0;
  size_t sends_len_ = 0;
  uint32_t head_id_ = 0;
  std::unique_ptr<uint32_t[]> slots_;  // ring of the sends' slots, in send order
  size_t slots_head_ = 0;
  size_t slots_len_ = 0;
  size_t pending_ = 0;
};

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_ZEROCOPY_H_
