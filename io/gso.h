// UDP GSO and GRO plumbing shared by the kernel transports (DESIGN §9: "on links with a
// 1,500 B MTU, output is packed as MTU-sized datagrams and sent with UDP GSO in one call").
//
// Send: consecutive queued datagrams to the same destination whose sizes are all equal
// except a shorter last one form a run; a run of two or more goes to the kernel as ONE
// sendmsg whose iovecs are the slots' bytes and whose UDP_SEGMENT cmsg is the common size.
// The kernel cuts it back into the same datagrams (each its own UDP/IP packet, never an IP
// fragment), so a receiver without GRO sees exactly what was committed. The transport never
// pads or copies: equal sizes are the caller's business (an engine that fills datagrams to
// max_packet_bytes gets them for free).
//
// Receive: with UDP_GRO the kernel may hand over several same-sized datagrams from one
// source as one buffer with a UDP_GRO cmsg carrying the segment size; SplitGro cuts it
// back into datagrams before anyone sees it.
#ifndef SCUTTLE_IO_GSO_H_
#define SCUTTLE_IO_GSO_H_

#include <netinet/udp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "io/tx_pool.h"

namespace scuttle::io {

// Segments per GSO send: UDP_MAX_SEGMENTS is 64 on every kernel that has UDP_SEGMENT
// (newer ones allow 128).
inline constexpr size_t kMaxGsoSegments = 64;
// Bytes per GSO send: one UDP datagram's worth before segmentation.
inline constexpr size_t kMaxGsoBytes = 65000;
// Control space for one UDP_SEGMENT / UDP_GRO cmsg (the kernel writes an int for GRO).
inline constexpr size_t kGsoControlBytes = CMSG_SPACE(sizeof(int));

// True when the kernel knows UDP_SEGMENT on this socket (4.18+).
inline bool ProbeUdpGso(int fd) {
  int v = 0;
  socklen_t len = sizeof(v);
  return ::getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &len) == 0;
}
// Applies TransportOptions::test_refuse_gso (SO_NO_CHECK: the kernel then answers every
// UDP_SEGMENT send with EINVAL, as a route with a smaller MTU would).
inline void RefuseGsoForTest(int fd) {
  int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one));
}
// Turns UDP_GRO on; false when the kernel does not have it (5.0+).
inline bool EnableUdpGro(int fd) {
  int one = 1;
  return ::setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
}
// Errors of a GSO send that say "this run cannot be segmented here" (a segment above the
// route's MTU: EINVAL; a device without checksum offload: EIO) rather than "this peer is
// unreachable": the run is retried one datagram at a time.
inline bool IsGsoRefusal(int err) { return err == EINVAL || err == EIO || err == EMSGSIZE; }

// One coalesced send: its msghdr, iovecs and cmsg, and the slots it carries.
struct GsoGroup {
  msghdr msg;
  iovec iov[kMaxGsoSegments];
  uint32_t slots[kMaxGsoSegments];
  uint32_t count;
  alignas(cmsghdr) uint8_t control[kGsoControlBytes];
};

// A fixed pool of GsoGroups (io_uring keeps one per in-flight coalesced send).
class GsoGroupPool {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  explicit GsoGroupPool(size_t count = 0)
      : count_(count),
        groups_(std::make_unique<GsoGroup[]>(count)),
        free_(std::make_unique<uint32_t[]>(count)),
        free_top_(count) {
    for (size_t i = 0; i < count; ++i) free_[i] = static_cast<uint32_t>(count - 1 - i);
  }
  uint32_t Acquire() { return free_top_ == 0 ? kNone : free_[--free_top_]; }
  void Release(uint32_t i) { free_[free_top_++] = i; }
  GsoGroup& at(uint32_t i) { return groups_[i]; }
  size_t capacity() const { return count_; }

 private:
  size_t count_;
  std::unique_ptr<GsoGroup[]> groups_;
  std::unique_ptr<uint32_t[]> free_;
  size_t free_top_;
};

inline bool SameDestination(const TxPool::Slot& a, const TxPool::Slot& b) {
  return a.msg.msg_namelen == b.msg.msg_namelen &&
         std::memcmp(&a.addr, &b.addr, a.msg.msg_namelen) == 0;
}

// How many prepared slots, starting at queue position 0 (slot_at(k) gives the k-th),
// form one GSO run: 1 means "send alone". `avail` slots are queued.
template <typename SlotAt>
size_t GsoRunLength(TxPool& pool, SlotAt slot_at, size_t avail) {
  if (avail < 2) return avail;
  const TxPool::Slot& first = pool.slot(slot_at(0));
  const size_t seg = first.iov.iov_len;
  size_t total = seg;
  size_t n = 1;
  while (n < avail && n < kMaxGsoSegments) {
    const TxPool::Slot& s = pool.slot(slot_at(n));
    const size_t len = s.iov.iov_len;
    if (len > seg || len == 0 || total + len > kMaxGsoBytes || !SameDestination(first, s)) break;
    total += len;
    ++n;
    if (len < seg) break;  // only the last segment may be shorter
  }
  return n;
}

// Fills `g` for the n slots slot_at(0..n-1) (a run from GsoRunLength, n >= 2).
template <typename SlotAt>
void FillGsoGroup(TxPool& pool, GsoGroup& g, SlotAt slot_at, size_t n) {
  TxPool::Slot& first = pool.slot(slot_at(0));
  g.count = static_cast<uint32_t>(n);
  for (size_t k = 0; k < n; ++k) {
    g.slots[k] = slot_at(k);
    g.iov[k] = pool.slot(g.slots[k]).iov;
  }
  g.msg = {};
  g.msg.msg_name = &first.addr;
  g.msg.msg_namelen = first.msg.msg_namelen;
  g.msg.msg_iov = g.iov;
  g.msg.msg_iovlen = n;
  std::memset(g.control, 0, sizeof(g.control));
  g.msg.msg_control = g.control;
  g.msg.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
  cmsghdr* c = CMSG_FIRSTHDR(&g.msg);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  const auto seg = static_cast<uint16_t>(first.iov.iov_len);
  std::memcpy(CMSG_DATA(c), &seg, sizeof(seg));
}

// The segment size of a GRO-coalesced receive, 0 when the buffer is one datagram.
inline size_t GroSegmentBytes(const cmsghdr* c) {
  if (c == nullptr || c->cmsg_level != SOL_UDP || c->cmsg_type != UDP_GRO) return 0;
  int seg = 0;
  std::memcpy(&seg, CMSG_DATA(c), sizeof(seg));
  return seg > 0 ? static_cast<size_t>(seg) : 0;
}

// Calls emit(offset, len) for each datagram of a received buffer of `len` bytes whose GRO
// segment size is `seg` (0: one datagram). Returns the number of datagrams.
template <typename Emit>
size_t SplitGro(size_t len, size_t seg, Emit emit) {
  if (seg == 0 || seg >= len) {
    emit(size_t{0}, len);
    return 1;
  }
  size_t n = 0;
  for (size_t off = 0; off < len; off += seg, ++n) emit(off, std::min(seg, len - off));
  return n;
}

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_GSO_H_
