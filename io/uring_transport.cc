#include "io/uring_transport.h"

#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "io/clock.h"
#include "spdlog/spdlog.h"

// liburing 2.3's copy of the uAPI predates these (Linux 6.2).
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

namespace scuttle::io {
namespace {

// user_data = slot << 8 | tag.
enum Tag : uint64_t {
  kRecvTag = 1,
  kWakeTag = 2,
  kSendTag = 3,
  kCancelTag = 4,
  kGsoSendTag = 5,
  kZcSendTag = 6,  // IORING_OP_SENDMSG_ZC of one slot
};
constexpr uint16_t kBufGroup = 0;
constexpr unsigned kFixedSocket = 0;  // index in the registered file table
// Space reserved for the source address in each receive buffer: 16 (recvmsg_out) + 48
// fits a sockaddr_in6 (28); 64 more hold the UDP_GRO cmsg, and the payload starts at
// offset 128, cache-line aligned.
constexpr socklen_t kRxNameBytes = 48;
constexpr size_t kRxControlBytes = 64;
static_assert(kGsoControlBytes <= kRxControlBytes);
constexpr size_t kRxHeaderBytes = sizeof(io_uring_recvmsg_out) + kRxNameBytes + kRxControlBytes;
static_assert(kRxHeaderBytes == 128);
constexpr unsigned kCqeBatch = 64;
// CQE batches per Poll: bounds the work of one iteration under a flood.
constexpr int kMaxReapPasses = 16;

// io_uring refusals that mean "use epoll instead" (DESIGN §9): seccomp (EPERM, EACCES),
// no io_uring at all (ENOSYS), a kernel without a needed feature (EINVAL, EOPNOTSUPP),
// locked-memory limits of pre-5.12 kernels (ENOMEM).
absl::Status RingError(int err, const char* what) {
  switch (err) {
    case EPERM:
    case EACCES:
    case ENOSYS:
    case EINVAL:
    case EOPNOTSUPP:
    case ENOMEM:
      return absl::UnimplementedError(
          absl::StrCat("io_uring unavailable: ", ErrnoStatus(err, what).message()));
    default:
      return ErrnoStatus(err, what);
  }
}

unsigned NextPow2(size_t n) { return static_cast<unsigned>(std::bit_ceil(std::max<size_t>(n, 1))); }

// Multishot recvmsg needs 6.0. When SINGLE_ISSUER/DEFER_TASKRUN (6.0/6.1) were refused we
// cannot infer it from setup, so ask uname rather than fail on the first Poll.
bool KernelAtLeast(int major, int minor) {
  utsname u;
  int ma = 0, mi = 0;
  if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> UringTransport::Open(const TransportOptions& o) {
  if (o.simulate_uring_errno != 0) {
    return RingError(o.simulate_uring_errno, "io_uring_queue_init (simulated)");
  }
  auto pool = TxPool::Create(o.tx_slot_count, TxSlotBytes(o));
  if (!pool.ok()) return pool.status();
  std::unique_ptr<UringTransport> t(new UringTransport(std::move(*pool)));
  if (absl::Status s = t->InitRing(o); !s.ok()) return s;
  if (absl::Status s = t->InitBufferRing(o); !s.ok()) return s;
  if (absl::Status s = t->InitSocket(o); !s.ok()) return s;
  return std::unique_ptr<Transport>(std::move(t));
}

absl::Status UringTransport::InitRing(const TransportOptions& o) {
  // SQ: every tx slot can hold one SENDMSG SQE between Flushes, plus recv/wake/cancel.
  // CQ: every in-flight send plus a full provided-buffer ring of receives, twice over;
  // the kernel also buffers overflow (IORING_FEAT_NODROP), this just keeps it rare.
  const unsigned sq = NextPow2(o.tx_slot_count + 8);
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN;
  p.cq_entries = NextPow2(2 * (o.tx_slot_count + NextPow2(o.rx_buffer_count)) + 16);
  int r = io_uring_queue_init_params(sq, &ring_, &p);
  if (r == -EINVAL) {
    spdlog::info("io: kernel refused IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN, using plain ring");
    p = io_uring_params{};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED;
    p.cq_entries = NextPow2(2 * (o.tx_slot_count + NextPow2(o.rx_buffer_count)) + 16);
    r = io_uring_queue_init_params(sq, &ring_, &p);
    if (r == 0 && !KernelAtLeast(6, 0)) {
      io_uring_queue_exit(&ring_);
      return RingError(EINVAL, "multishot recvmsg needs Linux 6.0");
    }
  }
  if (r < 0) return RingError(-r, "io_uring_queue_init");
  ring_ok_ = true;
  ring_flags_ = p.flags;
  return absl::OkStatus();
}

absl::Status UringTransport::InitBufferRing(const TransportOptions& o) {
  br_entries_ = NextPow2(o.rx_buffer_count);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t ring_bytes = (br_entries_ * sizeof(io_uring_buf) + page - 1) / page * page;
  auto mem = MappedRegion::Map(ring_bytes);  // page aligned, as the kernel requires
  if (!mem.ok()) return mem.status();
  br_mem_ = std::move(*mem);
  br_ = reinterpret_cast<io_uring_buf_ring*>(br_mem_.data());
  // liburing 2.3 has no io_uring_setup_buf_ring: register the ring by hand.
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br_);
  reg.ring_entries = br_entries_;
  reg.bgid = kBufGroup;
  if (int r = io_uring_register_buf_ring(&ring_, &reg, 0); r < 0) {
    return RingError(-r, "io_uring_register_buf_ring");
  }
  rx_buf_len_ = kRxHeaderBytes + o.max_datagram_bytes;  // larger datagrams: MSG_TRUNC
  rx_stride_ = (rx_buf_len_ + 63) & ~size_t{63};
  auto bufs = MappedRegion::Map(rx_stride_ * br_entries_);
  if (!bufs.ok()) return bufs.status();
  rx_buffers_ = std::move(*bufs);
  io_uring_buf_ring_init(br_);
  for (uint32_t i = 0; i < br_entries_; ++i) RecycleBuffer(static_cast<uint16_t>(i));
  io_uring_buf_ring_advance(br_, pending_recycles_);
  pending_recycles_ = 0;
  recv_msg_.msg_namelen = kRxNameBytes;
  recv_msg_.msg_controllen = kRxControlBytes;
  return absl::OkStatus();
}

absl::Status UringTransport::InitSocket(const TransportOptions& o) {
  // Blocking on purpose: on an O_NONBLOCK file io_uring completes with -EAGAIN instead
  // of waiting for readiness itself.
  auto sock = OpenUdpSocket(o.bind, {.nonblocking = false,
                                     .rcvbuf_bytes = o.socket_rcvbuf_bytes,
                                     .sndbuf_bytes = o.socket_sndbuf_bytes});
  if (!sock.ok()) return sock.status();
  sock_ = std::move(*sock);
  family_ = o.bind.family == 4 ? AF_INET : AF_INET6;
  auto local = LocalEndpoint(sock_.get());
  if (!local.ok()) return local.status();
  local_ = *local;
  const int fd = sock_.get();
  stats_.gso = o.udp_gso && ProbeUdpGso(fd);
  if (o.test_refuse_gso) RefuseGsoForTest(fd);
  stats_.gro = o.udp_gro && o.max_datagram_bytes == kMaxUdpPayloadBytes && EnableUdpGro(fd);
  tx_queue_ = std::make_unique<uint32_t[]>(tx_.capacity());
  // Every coalesced send carries at least two slots.
  if (stats_.gso) groups_ = GsoGroupPool(tx_.capacity() / 2 + 1);
  if (o.zerocopy_min_bytes > 0) InitZerocopy(o.zerocopy_min_bytes);
  if (int r = io_uring_register_files(&ring_, &fd, 1); r < 0) {
    return RingError(-r, "io_uring_register_files");
  }
  wake_ = ScopedFd(::eventfd(0, EFD_CLOEXEC));  // blocking: see above
  if (!wake_.valid()) return ErrnoStatus(errno, "io: eventfd");
  return absl::OkStatus();
}

// SENDMSG_ZC (Linux 6.1) is probed rather than assumed: without it every send copies.
void UringTransport::InitZerocopy(size_t min_bytes) {
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  const bool ok = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!ok) {
    spdlog::info("io: kernel has no IORING_OP_SENDMSG_ZC, zero-copy sends off");
    return;
  }
  zc_min_bytes_ = min_bytes;
  zc_report_ = KernelAtLeast(6, 2);
  zc_slot_res_ = std::make_unique<int32_t[]>(tx_.capacity());
  stats_.zerocopy = true;
}

UringTransport::~UringTransport() {
  if (!ring_ok_) return;
  if (started_ && owner_ == std::this_thread::get_id()) CancelAndDrain();
  io_uring_queue_exit(&ring_);
}

// Requests may still target our buffers: cancel them and wait for their CQEs before the
// buffers are unmapped (bounded: a stuck kernel must not hang shutdown forever).
void UringTransport::CancelAndDrain() {
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) return;
  io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
  io_uring_sqe_set_data64(sqe, kCancelTag);
  const int64_t deadline = MonotonicNowUs() + 1'000'000;
  // Committed but never prepared: nothing of the kernel's to wait for.
  while (tx_len_ > 0) {
    tx_.Release(tx_queue_[tx_head_]);
    tx_head_ = (tx_head_ + 1) % tx_.capacity();
    --tx_len_;
  }
  while ((recv_armed_ || wake_armed_ || tx_inflight_ > 0) && MonotonicNowUs() < deadline) {
    if (!Wait(100'000).ok()) break;
    ReapCompletions([](const RxDatagram&) {});
  }
}

absl::Status UringTransport::Start() {
  owner_ = std::this_thread::get_id();
  // liburing 2.3 declares io_uring_enable_rings but does not export it: call the
  // register opcode directly.
  if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) !=
      0) {
    return ErrnoStatus(errno, "io: IORING_REGISTER_ENABLE_RINGS");
  }
  started_ = true;
  ArmRecv();
  ArmWake();
  return absl::OkStatus();
}

io_uring_sqe* UringTransport::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr && started_) {  // SQ full (sized so this is rare): make room
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void UringTransport::ArmRecv() {
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) return;  // retried on the next Poll
  io_uring_prep_recvmsg_multishot(sqe, kFixedSocket, &recv_msg_, 0);
  sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufGroup;
  io_uring_sqe_set_data64(sqe, kRecvTag);
  recv_armed_ = true;
}

void UringTransport::ArmWake() {
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) return;
  io_uring_prep_read(sqe, wake_.get(), &wake_buf_, sizeof(wake_buf_), 0);
  io_uring_sqe_set_data64(sqe, kWakeTag);
  wake_armed_ = true;
}

std::span<uint8_t> UringTransport::AcquireTx(size_t max_len) {
  return tx_.AcquirePending(max_len, stats_);
}

void UringTransport::CommitTx(const Endpoint& to, std::span<const uint8_t> packet) {
  size_t offset = 0;
  bool bad_span = false;
  const uint32_t i = tx_.TakePending(packet, &offset, &bad_span);
  if (bad_span) stats_.CountDrop(Drop::kTxBadSpan);
  if (i == TxPool::kNone) return;
  QueueTx(to, i, offset, packet.size());
}

void UringTransport::CommitTx(const Endpoint& to, size_t len) {
  const uint32_t i = tx_.TakePending(len);
  if (i == TxPool::kNone) return;
  QueueTx(to, i, 0, len);
}

void UringTransport::QueueTx(const Endpoint& to, uint32_t i, size_t offset, size_t len) {
  const socklen_t alen = ToSockaddr(to, family_, &tx_.slot(i).addr);
  if (alen == 0) {
    stats_.CountDrop(Drop::kTxBadAddress);
    tx_.Release(i);
    return;
  }
  tx_.Prepare(i, offset, len, alen);
  // Cannot overflow: every queued entry holds one of capacity() slots. SQEs are made at
  // Flush, when the whole batch is known and runs to one peer can be coalesced.
  tx_queue_[(tx_head_ + tx_len_) % tx_.capacity()] = i;
  ++tx_len_;
}

void UringTransport::PrepareSends() {
  const size_t cap = tx_.capacity();
  while (tx_len_ > 0) {
    auto at = [&](size_t k) { return tx_queue_[(tx_head_ + k) % cap]; };
    size_t run = 1;
    uint32_t g = GsoGroupPool::kNone;
    if (stats_.gso && tx_solo_ == 0) {
      run = GsoRunLength(tx_, at, tx_len_);
      if (run >= 2) g = groups_.Acquire();
      if (g == GsoGroupPool::kNone) run = 1;
    }
    io_uring_sqe* sqe = GetSqe();
    if (sqe == nullptr) {  // cannot happen with the SQ sized for the pool; never lose slots
      if (g != GsoGroupPool::kNone) groups_.Release(g);
      for (size_t k = 0; k < run; ++k) tx_.Release(at(k));
      stats_.CountDrop(Drop::kTxError, run);
    } else {
      const msghdr* msg;
      uint64_t id;
      size_t bytes = 0;
      if (g != GsoGroupPool::kNone) {
        GsoGroup& group = groups_.at(g);
        FillGsoGroup(tx_, group, at, run);
        for (uint32_t k = 0; k < group.count; ++k) bytes += group.iov[k].iov_len;
        msg = &group.msg;
        id = uint64_t{g} << 8;
      } else {
        msg = &tx_.slot(at(0)).msg;
        bytes = tx_.slot(at(0)).iov.iov_len;
        id = uint64_t{at(0)} << 8;
      }
      const bool gso = g != GsoGroupPool::kNone;
      // Zero-copy for lone datagrams only: a GSO run's iovecs lie in separate slots and
      // the kernel refuses (EMSGSIZE) a zero-copy skb of more than MAX_SKB_FRAGS pieces.
      if (stats_.zerocopy && !gso && bytes >= zc_min_bytes_) {
        io_uring_prep_sendmsg_zc(sqe, kFixedSocket, msg, 0);
        if (zc_report_) sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
        id |= kZcSendTag;
      } else {
        io_uring_prep_sendmsg(sqe, kFixedSocket, msg, 0);
        id |= gso ? kGsoSendTag : kSendTag;
      }
      sqe->flags |= IOSQE_FIXED_FILE;
      io_uring_sqe_set_data64(sqe, id);
      ++tx_inflight_;
    }
    tx_head_ = (tx_head_ + run) % cap;
    tx_len_ -= run;
    tx_solo_ -= std::min(tx_solo_, run);
  }
}

absl::Status UringTransport::Flush() {
  if (!started_) {
    if (absl::Status s = Start(); !s.ok()) return s;
  }
  PrepareSends();
  if (io_uring_sq_ready(&ring_) == 0) return absl::OkStatus();
  ++stats_.flushes;
  const int r = io_uring_submit(&ring_);
  // EBUSY/EAGAIN: CQ overflow backlog; the SQEs stay queued and go out with the next
  // enter (Poll reaps first).
  if (r < 0 && r != -EBUSY && r != -EAGAIN && r != -EINTR) {
    return ErrnoStatus(-r, "io: io_uring_submit");
  }
  return absl::OkStatus();
}

absl::Status UringTransport::Poll(int64_t timeout_us,
                                  absl::FunctionRef<void(const RxDatagram&)> on_datagram) {
  ++stats_.polls;
  if (!started_) {
    if (absl::Status s = Start(); !s.ok()) return s;
  }
  // Sends committed without a Flush go out with this enter, as before batching.
  PrepareSends();
  if (absl::Status s = Wait(timeout_us); !s.ok()) return s;
  ReapCompletions(on_datagram);
  // Re-arm what terminated; the SQEs go out with the next submit (Flush or Poll).
  if (!recv_armed_) {
    ++stats_.rx_rearms;
    ArmRecv();
  }
  if (!wake_armed_) ArmWake();
  return absl::OkStatus();
}

// Submits pending SQEs and waits for one CQE. With DEFER_TASKRUN completions only
// appear when we enter with GETEVENTS, which all three liburing calls do.
absl::Status UringTransport::Wait(int64_t timeout_us) {
  int r;
  if (timeout_us == 0 || io_uring_cq_ready(&ring_) > 0) {
    r = io_uring_submit_and_get_events(&ring_);
  } else if (timeout_us < 0) {
    r = io_uring_submit_and_wait(&ring_, 1);
  } else {
    __kernel_timespec ts{.tv_sec = timeout_us / 1'000'000,
                         .tv_nsec = (timeout_us % 1'000'000) * 1000};
    io_uring_cqe* cqe = nullptr;
    r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) {
    return ErrnoStatus(-r, "io: io_uring_enter");
  }
  return absl::OkStatus();
}

void UringTransport::ReapCompletions(absl::FunctionRef<void(const RxDatagram&)> on_datagram) {
  io_uring_cqe* cqes[kCqeBatch];
  for (int pass = 0; pass < kMaxReapPasses; ++pass) {
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kCqeBatch);
    for (unsigned k = 0; k < n; ++k) {
      const io_uring_cqe& cqe = *cqes[k];
      switch (io_uring_cqe_get_data64(&cqe) & 0xff) {
        case kRecvTag:
          HandleRecv(cqe, on_datagram);
          break;
        case kSendTag:
          FinishSend(static_cast<uint32_t>(io_uring_cqe_get_data64(&cqe) >> 8), cqe.res);
          break;
        case kGsoSendTag:
          FinishGsoSend(static_cast<uint32_t>(io_uring_cqe_get_data64(&cqe) >> 8), cqe.res);
          break;
        case kZcSendTag:
          HandleZcSend(cqe);
          break;
        case kWakeTag:
          wake_armed_ = false;
          if (cqe.res > 0) ++stats_.wakeups;
          break;
        default:  // kCancelTag
          break;
      }
    }
    io_uring_cq_advance(&ring_, n);
    // Give the batch's buffers back to the kernel in one release store.
    if (pending_recycles_ > 0) io_uring_buf_ring_advance(br_, pending_recycles_);
    pending_recycles_ = 0;
    if (n < kCqeBatch) break;
  }
}

void UringTransport::HandleRecv(const io_uring_cqe& cqe,
                                absl::FunctionRef<void(const RxDatagram&)> on_datagram) {
  // Without F_MORE the multishot request is over (ENOBUFS when the buffer ring ran dry,
  // or an error); Poll re-arms it after this batch's buffers are recycled.
  if (!(cqe.flags & IORING_CQE_F_MORE)) recv_armed_ = false;
  if (!(cqe.flags & IORING_CQE_F_BUFFER)) {
    // ENOBUFS leaves the datagram queued in the socket: not a drop. ECANCELED: shutdown.
    if (cqe.res != -ENOBUFS && cqe.res != -ECANCELED) stats_.CountDrop(Drop::kRxError);
    return;
  }
  const auto bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  uint8_t* buf = rx_buffers_.data() + size_t{bid} * rx_stride_;
  io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, cqe.res, &recv_msg_);
  if (out == nullptr) {
    stats_.CountDrop(Drop::kRxError);
  } else if (out->flags & MSG_TRUNC) {  // larger than max_datagram_bytes: never deliver
    stats_.CountDrop(Drop::kRxTruncated);
  } else {
    const size_t len = io_uring_recvmsg_payload_length(out, cqe.res, &recv_msg_);
    const auto* payload = static_cast<const uint8_t*>(io_uring_recvmsg_payload(out, &recv_msg_));
    const size_t seg =
        stats_.gro ? GroSegmentBytes(io_uring_recvmsg_cmsg_firsthdr(out, &recv_msg_)) : 0;
    RxDatagram d{FromSockaddr(io_uring_recvmsg_name(out), out->namelen), {}, false};
    const size_t count = SplitGro(len, seg, [&](size_t off, size_t part) {
      ++stats_.rx_packets;
      stats_.rx_bytes += part;
      d.data = {payload + off, part};
      on_datagram(d);
    });
    if (count > 1) ++stats_.rx_gro_batches;
  }
  RecycleBuffer(bid);
}

void UringTransport::FinishSend(uint32_t slot, int32_t res) {
  if (res < 0) {
    stats_.CountDrop(Drop::kTxError);
  } else {
    ++stats_.tx_packets;
    stats_.tx_bytes += static_cast<uint64_t>(res);
  }
  tx_.Release(slot);
  --tx_inflight_;
}

void UringTransport::Requeue(const uint32_t* slots, size_t count) {
  const size_t cap = tx_.capacity();
  for (size_t k = count; k-- > 0;) {
    tx_head_ = (tx_head_ + cap - 1) % cap;
    tx_queue_[tx_head_] = slots[k];
  }
  tx_len_ += count;
  tx_solo_ += count;
}

void UringTransport::FinishGsoSend(uint32_t g, int32_t res) {
  GsoGroup& group = groups_.at(g);
  --tx_inflight_;
  if (res < 0 && IsGsoRefusal(-res)) {
    // The route cannot take this run segmented: put its datagrams back at the head of the
    // queue, to go out one by one with the next Flush (their msghdrs are still prepared).
    ++stats_.tx_gso_fallbacks;
    Requeue(group.slots, group.count);
  } else {
    if (res < 0) {
      stats_.CountDrop(Drop::kTxError, group.count);
    } else {
      stats_.tx_packets += group.count;
      stats_.tx_bytes += static_cast<uint64_t>(res);
      ++stats_.tx_gso_sends;
      stats_.tx_gso_segments += group.count;
    }
    for (uint32_t k = 0; k < group.count; ++k) tx_.Release(group.slots[k]);
  }
  groups_.Release(g);
}

// A zero-copy send completes twice: the result (with F_MORE when a notification follows),
// then the notification (F_NOTIF) once the kernel no longer reads the buffer. Only then
// may the slots be reused: until then they count in tx_zc_pending.
void UringTransport::HandleZcSend(const io_uring_cqe& cqe) {
  uint32_t slot = static_cast<uint32_t>(io_uring_cqe_get_data64(&cqe) >> 8);
  int32_t res = cqe.res;
  if (cqe.flags & IORING_CQE_F_NOTIF) {
    if (zc_report_ && (static_cast<uint32_t>(cqe.res) & IORING_NOTIF_USAGE_ZC_COPIED)) {
      ++stats_.tx_zc_copied;
    }
    --stats_.tx_zc_pending;
    res = zc_slot_res_[slot];
  } else if (cqe.flags & IORING_CQE_F_MORE) {
    if (res >= 0) ++stats_.tx_zc_sends;
    zc_slot_res_[slot] = res;
    ++stats_.tx_zc_pending;
    return;
  } else if (res >= 0) {
    ++stats_.tx_zc_sends;
  }
  if (res == -EOPNOTSUPP) {
    // This socket or kernel cannot send zero-copy after all: copy from now on, and send
    // the datagram again with the next Flush.
    spdlog::warn("io: zero-copy send refused ({}), copying sends from now on",
                 std::string(ErrnoStatus(-res, "sendmsg_zc").message()));
    stats_.zerocopy = false;
    ++stats_.tx_zc_fallbacks;
    --tx_inflight_;
    Requeue(&slot, 1);
    return;
  }
  FinishSend(slot, res);
}

void UringTransport::RecycleBuffer(uint16_t bid) {
  io_uring_buf_ring_add(br_, rx_buffers_.data() + size_t{bid} * rx_stride_,
                        static_cast<unsigned>(rx_buf_len_), bid,
                        io_uring_buf_ring_mask(br_entries_), pending_recycles_++);
}

void UringTransport::Wake() {
  const uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof(one));
}

}  // namespace scuttle::io
