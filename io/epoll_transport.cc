#include "io/epoll_transport.h"

#include <sys/epoll.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "spdlog/spdlog.h"

namespace scuttle::io {
namespace {

// sendmmsg/recvmmsg take at most UIO_MAXIOV messages per call.
constexpr size_t kMaxMsgsPerCall = 1024;
// recvmmsg calls per Poll when the socket stays full: bounded so timers, commands and
// the after-batch flush still run under a flood (level-triggered epoll resumes later).
constexpr int kMaxRxBatchesPerPoll = 4;
constexpr uint64_t kSockTag = 1;
constexpr uint64_t kWakeTag = 2;

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> EpollTransport::Open(const TransportOptions& o) {
  auto pool = TxPool::Create(o.tx_slot_count, TxSlotBytes(o));
  if (!pool.ok()) return pool.status();
  std::unique_ptr<EpollTransport> t(new EpollTransport(std::move(*pool)));
  if (absl::Status s = t->Init(o); !s.ok()) return s;
  return std::unique_ptr<Transport>(std::move(t));
}

absl::Status EpollTransport::Init(const TransportOptions& o) {
  auto sock = OpenUdpSocket(o.bind, {.nonblocking = true,
                                     .rcvbuf_bytes = o.socket_rcvbuf_bytes,
                                     .sndbuf_bytes = o.socket_sndbuf_bytes});
  if (!sock.ok()) return sock.status();
  sock_ = std::move(*sock);
  family_ = o.bind.family == 4 ? AF_INET : AF_INET6;
  auto local = LocalEndpoint(sock_.get());
  if (!local.ok()) return local.status();
  local_ = *local;
  max_datagram_bytes_ = o.max_datagram_bytes;
  stats_.gso = o.udp_gso && ProbeUdpGso(sock_.get());
  if (o.test_refuse_gso) RefuseGsoForTest(sock_.get());
  stats_.gro = o.udp_gro && o.max_datagram_bytes == kMaxUdpPayloadBytes &&
               EnableUdpGro(sock_.get());

  wake_ = ScopedFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_.valid()) return ErrnoStatus(errno, "io: eventfd");
  epoll_ = ScopedFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return ErrnoStatus(errno, "io: epoll_create1");
  epoll_event ev{.events = EPOLLIN, .data = {.u64 = kSockTag}};
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, sock_.get(), &ev) != 0) {
    return ErrnoStatus(errno, "io: epoll_ctl(socket)");
  }
  ev = {.events = EPOLLIN, .data = {.u64 = kWakeTag}};
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    return ErrnoStatus(errno, "io: epoll_ctl(eventfd)");
  }

  // One preallocated mmsghdr per receive buffer: a Poll allocates nothing.
  rx_count_ = std::clamp<size_t>(o.rx_buffer_count, 1, kMaxMsgsPerCall);
  rx_stride_ = (o.max_datagram_bytes + 63) & ~size_t{63};
  auto region = MappedRegion::Map(rx_stride_ * rx_count_);
  if (!region.ok()) return region.status();
  rx_buffers_ = std::move(*region);
  rx_msgs_ = std::make_unique<mmsghdr[]>(rx_count_);
  rx_iovs_ = std::make_unique<iovec[]>(rx_count_);
  rx_addrs_ = std::make_unique<sockaddr_storage[]>(rx_count_);
  if (stats_.gro) rx_control_ = std::make_unique<RxControl[]>(rx_count_);
  for (size_t i = 0; i < rx_count_; ++i) {
    rx_iovs_[i] = {rx_buffers_.data() + i * rx_stride_, o.max_datagram_bytes};
    msghdr& h = rx_msgs_[i].msg_hdr;
    h = {};
    h.msg_name = &rx_addrs_[i];
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_iov = &rx_iovs_[i];
    h.msg_iovlen = 1;
    if (stats_.gro) {
      h.msg_control = rx_control_[i].bytes;
      h.msg_controllen = kGsoControlBytes;
    }
  }

  if (o.zerocopy_min_bytes > 0) {
    const int one = 1;
    if (::setsockopt(sock_.get(), SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) == 0) {
      zc_min_bytes_ = o.zerocopy_min_bytes;
      zc_ = ZerocopyTracker(tx_.capacity());
      stats_.zerocopy = true;
    } else {
      spdlog::info("io: SO_ZEROCOPY refused ({}), zero-copy sends off",
                   std::string(ErrnoStatus(errno, "setsockopt").message()));
    }
  }

  tx_queue_ = std::make_unique<uint32_t[]>(tx_.capacity());
  const size_t per_call = std::min(tx_.capacity(), kMaxMsgsPerCall);
  tx_msgs_ = std::make_unique<mmsghdr[]>(per_call);
  tx_runs_ = std::make_unique<uint32_t[]>(per_call);
  if (stats_.gso) {
    // Every coalesced send carries at least two slots.
    tx_group_count_ = per_call / 2 + 1;
    tx_groups_ = std::make_unique<GsoGroup[]>(tx_group_count_);
  }
  return absl::OkStatus();
}

std::span<uint8_t> EpollTransport::AcquireTx(size_t max_len) {
  return tx_.AcquirePending(max_len, stats_);
}

void EpollTransport::CommitTx(const Endpoint& to, std::span<const uint8_t> packet) {
  size_t offset = 0;
  bool bad_span = false;
  const uint32_t i = tx_.TakePending(packet, &offset, &bad_span);
  if (bad_span) stats_.CountDrop(Drop::kTxBadSpan);
  if (i == TxPool::kNone) return;
  QueueTx(to, i, offset, packet.size());
}

void EpollTransport::CommitTx(const Endpoint& to, size_t len) {
  const uint32_t i = tx_.TakePending(len);
  if (i == TxPool::kNone) return;
  QueueTx(to, i, 0, len);
}

void EpollTransport::QueueTx(const Endpoint& to, uint32_t i, size_t offset, size_t len) {
  const socklen_t alen = ToSockaddr(to, family_, &tx_.slot(i).addr);
  if (alen == 0) {
    stats_.CountDrop(Drop::kTxBadAddress);
    tx_.Release(i);
    return;
  }
  tx_.Prepare(i, offset, len, alen);
  // Cannot overflow: every queued entry holds one of capacity() slots.
  tx_queue_[(tx_head_ + tx_len_) % tx_.capacity()] = i;
  ++tx_len_;
}

absl::Status EpollTransport::Flush() {
  if (tx_len_ > 0) ++stats_.flushes;
  const size_t cap = tx_.capacity();
  bool copy_only = false;  // a zero-copy batch was refused: copy the rest of this Flush
  while (tx_len_ > 0) {
    // One mmsghdr per lone datagram or per GSO run (io/gso.h). A call is either all
    // zero-copy (MSG_ZEROCOPY applies to the whole sendmmsg) or all copying.
    size_t m = 0, used = 0, groups = 0, zc_slots = 0;
    int zc = -1;  // unknown until the first message
    const size_t per_call = std::min(cap, kMaxMsgsPerCall);
    while (used < tx_len_ && m < per_call) {
      auto at = [&, base = used](size_t k) { return tx_queue_[(tx_head_ + base + k) % cap]; };
      size_t run = 1;
      if (stats_.gso && used >= tx_solo_ && groups < tx_group_count_) {
        run = GsoRunLength(tx_, at, tx_len_ - used);
      }
      size_t bytes = 0;
      for (size_t k = 0; k < run; ++k) bytes += tx_.slot(at(k)).iov.iov_len;
      // Zero-copy for lone datagrams only: a GSO run's iovecs lie in separate slots and
      // the kernel refuses (EMSGSIZE) a zero-copy skb of more than MAX_SKB_FRAGS pieces.
      const int want = stats_.zerocopy && !copy_only && run == 1 && bytes >= zc_min_bytes_ &&
                       zc_.HasRoom(zc_slots + run);
      if (zc >= 0 && want != zc) break;
      zc = want;
      if (zc) zc_slots += run;
      if (run >= 2) {
        FillGsoGroup(tx_, tx_groups_[groups], at, run);
        tx_msgs_[m].msg_hdr = tx_groups_[groups++].msg;
      } else {
        tx_msgs_[m].msg_hdr = tx_.slot(at(0)).msg;
      }
      tx_msgs_[m].msg_len = 0;
      tx_runs_[m++] = static_cast<uint32_t>(run);
      used += run;
    }
    const int r =
        ::sendmmsg(sock_.get(), tx_msgs_.get(), static_cast<unsigned>(m), zc == 1 ? MSG_ZEROCOPY : 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && zc == 1 && (errno == ENOBUFS || errno == EOPNOTSUPP)) {
      // No memory left for notifications (optmem), or no zero-copy here: copy instead.
      ++stats_.tx_zc_fallbacks;
      copy_only = true;
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      // Socket buffer full: keep the rest queued (bounded by the pool) and let EPOLLOUT
      // tell Poll when to retry.
      ++stats_.tx_retries;
      SetWantWritable(true);
      return absl::OkStatus();
    }
    if (r < 0 && tx_runs_[0] > 1 && IsGsoRefusal(errno)) {
      // The route cannot take this run segmented: resend its datagrams one by one.
      ++stats_.tx_gso_fallbacks;
      tx_solo_ = tx_runs_[0];
      continue;
    }
    // An error belongs to the first unsent message: drop it and go on with the rest.
    const size_t sent = r < 0 ? 1 : static_cast<size_t>(r);
    size_t consumed = 0;
    for (size_t k = 0; k < sent; ++k) {
      const size_t run = tx_runs_[k];
      if (r < 0) {
        stats_.CountDrop(Drop::kTxError, run);
      } else {
        stats_.tx_packets += run;
        stats_.tx_bytes += tx_msgs_[k].msg_len;
        if (run > 1) {
          ++stats_.tx_gso_sends;
          stats_.tx_gso_segments += run;
        }
      }
      if (r >= 0 && zc == 1) {
        // The kernel still reads these slots: they come back with the notification.
        ++stats_.tx_zc_sends;
        uint32_t run_slots[kMaxGsoSegments];
        for (size_t j = 0; j < run; ++j) run_slots[j] = tx_queue_[(tx_head_ + consumed + j) % cap];
        zc_.Add(run_slots, run);
      } else {
        for (size_t j = 0; j < run; ++j) tx_.Release(tx_queue_[(tx_head_ + consumed + j) % cap]);
      }
      consumed += run;
    }
    stats_.tx_zc_pending = zc_.pending_slots();
    tx_head_ = (tx_head_ + consumed) % cap;
    tx_len_ -= consumed;
    tx_solo_ -= std::min(tx_solo_, consumed);
  }
  SetWantWritable(false);
  return absl::OkStatus();
}

void EpollTransport::ReapZerocopy() {
  // Bounded: a notification covers a range of sends, so a few reads usually suffice.
  for (int i = 0; i < 64 && zc_.pending_slots() > 0; ++i) {
    alignas(cmsghdr) uint8_t control[128];
    msghdr msg{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    if (::recvmsg(sock_.get(), &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (!((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
            (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR))) {
        continue;
      }
      sock_extended_err ee;
      std::memcpy(&ee, CMSG_DATA(c), sizeof(ee));
      if (ee.ee_errno != 0 || ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY) continue;
      const size_t n = zc_.Complete(ee.ee_info, ee.ee_data, [&](uint32_t s) { tx_.Release(s); });
      if (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) stats_.tx_zc_copied += n;
    }
  }
  stats_.tx_zc_pending = zc_.pending_slots();
}

void EpollTransport::SetWantWritable(bool want) {
  if (want == want_writable_) return;
  epoll_event ev{.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data = {.u64 = kSockTag}};
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, sock_.get(), &ev) == 0) want_writable_ = want;
}

absl::Status EpollTransport::Poll(int64_t timeout_us,
                                  absl::FunctionRef<void(const RxDatagram&)> on_datagram) {
  ++stats_.polls;
  if (zc_.pending_slots() > 0) ReapZerocopy();
  bool readable = rx_backlog_;
  if (!readable) {
    if (absl::Status s = Wait(timeout_us, &readable); !s.ok()) return s;
  }
  rx_backlog_ = false;
  for (int b = 0; readable && b < kMaxRxBatchesPerPoll; ++b) {
    const int n = ReceiveBatch(on_datagram);
    // While traffic flows, go straight to recvmmsg next time (one system call per batch,
    // like a bare recvmmsg loop); one EAGAIN when it stops sends us back to epoll_wait.
    rx_backlog_ = n > 0;
    readable = n == static_cast<int>(rx_count_);
  }
  return absl::OkStatus();
}

absl::Status EpollTransport::Wait(int64_t timeout_us, bool* readable) {
  epoll_event events[2];
  timespec ts{.tv_sec = timeout_us / 1'000'000, .tv_nsec = (timeout_us % 1'000'000) * 1000};
  // epoll_pwait2 (5.11) keeps microsecond timers exact; epoll_wait rounds to ms.
  int n = ::epoll_pwait2(epoll_.get(), events, 2, timeout_us < 0 ? nullptr : &ts, nullptr);
  if (n < 0 && errno == ENOSYS) {
    const int ms = timeout_us < 0 ? -1 : static_cast<int>((timeout_us + 999) / 1000);
    n = ::epoll_wait(epoll_.get(), events, 2, ms);
  }
  if (n < 0) return errno == EINTR ? absl::OkStatus() : ErrnoStatus(errno, "io: epoll_wait");
  for (int i = 0; i < n; ++i) {
    if (events[i].data.u64 == kWakeTag) {
      DrainWakeFd();
      continue;
    }
    if (events[i].events & EPOLLERR) ReapZerocopy();
    if (events[i].events & (EPOLLIN | EPOLLERR)) *readable = true;
    if (events[i].events & EPOLLOUT) (void)Flush();
  }
  return absl::OkStatus();
}

int EpollTransport::ReceiveBatch(absl::FunctionRef<void(const RxDatagram&)> on_datagram) {
  const int n =
      ::recvmmsg(sock_.get(), rx_msgs_.get(), static_cast<unsigned>(rx_count_), 0, nullptr);
  if (n < 0) {
    // EAGAIN: nothing queued after all. Anything else (e.g. an ICMP error surfacing as
    // ECONNREFUSED) is about some peer, not about this socket: count and go on.
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      stats_.CountDrop(Drop::kRxError);
    }
    return 0;
  }
  for (int i = 0; i < n; ++i) {
    const msghdr& h = rx_msgs_[i].msg_hdr;
    if (h.msg_flags & MSG_TRUNC) {  // larger than max_datagram_bytes: never deliver
      stats_.CountDrop(Drop::kRxTruncated);
      continue;
    }
    const size_t len = rx_msgs_[i].msg_len;
    const size_t seg =
        stats_.gro && h.msg_controllen > 0 ? GroSegmentBytes(CMSG_FIRSTHDR(&h)) : 0;
    const auto* base = static_cast<const uint8_t*>(rx_iovs_[i].iov_base);
    RxDatagram d{FromSockaddr(h.msg_name, h.msg_namelen), {}, false};
    const size_t count = SplitGro(len, seg, [&](size_t off, size_t part) {
      ++stats_.rx_packets;
      stats_.rx_bytes += part;
      d.data = {base + off, part};
      on_datagram(d);
    });
    if (count > 1) ++stats_.rx_gro_batches;
  }
  // The kernel overwrote the name and control lengths it used; the rest is intact.
  for (int i = 0; i < n; ++i) {
    rx_msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    if (stats_.gro) rx_msgs_[i].msg_hdr.msg_controllen = kGsoControlBytes;
  }
  return n;
}

void EpollTransport::DrainWakeFd() {
  uint64_t v;
  if (::read(wake_.get(), &v, sizeof(v)) == sizeof(v)) ++stats_.wakeups;
}

void EpollTransport::Wake() {
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated: a wake is already pending.
  (void)!::write(wake_.get(), &one, sizeof(one));
}

}  // namespace scuttle::io
