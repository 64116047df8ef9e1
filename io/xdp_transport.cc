#include "io/xdp_transport.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/capability.h>
#include <linux/ethtool.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "io/clock.h"
#include "io/xdp/scuttle_xdp_config.h"
#include "io/xdp_neigh.h"
#include "io/xdp_program.h"
#include "spdlog/spdlog.h"

namespace scuttle::io {

struct XdpTransport::Rings {
  xsk_ring_prod fill{};
  xsk_ring_cons comp{};
  xsk_ring_cons rx{};
  xsk_ring_prod tx{};
};

namespace {

// In copy mode the kernel writes a received frame XDP_PACKET_HEADROOM (256) bytes into
// the chunk, so at most this much fits; the program passes longer frames to the kernel.
// Headroom the kernel leaves before a received frame, beyond XDP_PACKET_HEADROOM: 256 + 6
// + 14 (Ethernet) + 20 (IPv4) + 8 (UDP) = 304, so an IPv4 payload starts 8-byte aligned.
constexpr uint32_t kRxHeadroom = 6;
constexpr uint32_t kRxFrameCapacity = XdpTransport::kFrameBytes - XDP_PACKET_HEADROOM - kRxHeadroom;
constexpr uint32_t kRxBatch = 64;
constexpr int kMaxRxBatchesPerPoll = 8;
constexpr size_t kMaxUmemBytes = size_t{1} << 30;
constexpr size_t kEthBytes = 14;
constexpr size_t kIp4Bytes = 20;
constexpr size_t kIp6Bytes = 40;
constexpr size_t kUdpBytes = 8;

uint32_t Pow2AtLeast(size_t n) { return std::bit_ceil(static_cast<uint32_t>(std::max<size_t>(n, 8))); }

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// RFC 1071 ones'-complement sum, 32 bits at a time into a 64-bit accumulator. Returns the
// unfolded sum; Fold() finishes it.
uint64_t SumBytes(const uint8_t* p, size_t len, uint64_t sum = 0) {
  while (len >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    sum += ntohl(w);
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    sum += Load16(p);
    p += 2;
    len -= 2;
  }
  if (len == 1) sum += static_cast<uint64_t>(p[0]) << 8;
  return sum;
}
uint16_t Fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

bool HasCap(const __user_cap_data_struct* data, int cap) {
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

bool AddressMatches(const sockaddr* sa, const Endpoint& ep) {
  if (sa == nullptr) return false;
  if (ep.family == 4 && sa->sa_family == AF_INET) {
    return std::memcmp(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, ep.addr.data(), 4) == 0;
  }
  if (ep.family == 6 && sa->sa_family == AF_INET6) {
    return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, ep.addr.data(), 16) == 0;
  }
  return false;
}

bool IsWildcard(const Endpoint& ep) {
  return std::all_of(ep.addr.begin(), ep.addr.end(), [](uint8_t b) { return b == 0; });
}

}  // namespace

std::string MissingXdpCapabilities() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) return "";  // cannot tell: let the kernel say
  std::vector<std::string> missing;
  if (!HasCap(data, CAP_NET_ADMIN)) missing.push_back("CAP_NET_ADMIN");
  if (!HasCap(data, CAP_NET_RAW)) missing.push_back("CAP_NET_RAW");
  if (!HasCap(data, CAP_BPF) && !HasCap(data, CAP_SYS_ADMIN)) {
    missing.push_back("CAP_BPF (or CAP_SYS_ADMIN)");
  }
  return absl::StrJoin(missing, ", ");
}

absl::StatusOr<XdpInterface> FindXdpInterface(const Endpoint& bind, const std::string& name) {
  XdpInterface out;
  if (!name.empty()) {
    out.name = name;
  } else if (IsWildcard(bind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "io: --io=xdp binds one interface queue: give --xdp_interface, or a listen address "
        "held by an interface (not ", bind.ToString(), ")"));
  } else {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return ErrnoStatus(errno, "io: getifaddrs");
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      if (AddressMatches(i->ifa_addr, bind)) {
        out.name = i->ifa_name;
        break;
      }
    }
    ::freeifaddrs(list);
    if (out.name.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("io: no interface holds ", bind.ToString(), " (needed by --io=xdp)"));
    }
  }
  if (out.name.size() >= IFNAMSIZ) return absl::InvalidArgumentError("io: interface name too long");
  out.ifindex = static_cast<int>(::if_nametoindex(out.name.c_str()));
  if (out.ifindex == 0) {
    return absl::FailedPreconditionError(absl::StrCat("io: no interface named ", out.name));
  }
  ScopedFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "io: socket");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, out.name.c_str(), out.name.size());
  if (::ioctl(fd.get(), SIOCGIFMTU, &ifr) != 0) return ErrnoStatus(errno, "io: SIOCGIFMTU");
  out.mtu = static_cast<uint32_t>(ifr.ifr_mtu);
  if (::ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) return ErrnoStatus(errno, "io: SIOCGIFHWADDR");
  if (ifr.ifr_hwaddr.sa_family != 1 /* ARPHRD_ETHER */) {
    return absl::FailedPreconditionError(
        absl::StrCat("io: ", out.name, " is not an Ethernet interface; --io=xdp needs one"));
  }
  std::memcpy(out.mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  ifr.ifr_data = reinterpret_cast<char*>(&ch);
  if (::ioctl(fd.get(), SIOCETHTOOL, &ifr) == 0) out.queues = std::max(ch.rx_count, ch.combined_count);
  return out;
}

absl::StatusOr<std::unique_ptr<Transport>> XdpTransport::Open(const TransportOptions& o) {
  std::unique_ptr<XdpTransport> t(new XdpTransport());
  if (absl::Status s = t->Init(o); !s.ok()) return s;
  return std::unique_ptr<Transport>(std::move(t));
}

absl::Status XdpTransport::Init(const TransportOptions& o) {
  if (std::string missing = MissingXdpCapabilities(); !missing.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "io: --io=xdp needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (or CAP_SYS_ADMIN); this "
        "process lacks ", missing));
  }
  auto iface = FindXdpInterface(o.bind, o.xdp.interface);
  if (!iface.ok()) return iface.status();
  if_ = *iface;
  if (if_.queues != 0 && o.xdp.queue >= if_.queues) {
    return absl::FailedPreconditionError(absl::StrCat("io: ", if_.name, " has ", if_.queues,
                                                      " receive queue(s); queue ", o.xdp.queue,
                                                      " does not exist (--xdp_queue)"));
  }
  if (o.xdp.queue >= SCUTTLE_XDP_MAX_QUEUES) {
    return absl::InvalidArgumentError(
        absl::StrCat("io: --xdp_queue must be below ", SCUTTLE_XDP_MAX_QUEUES));
  }
  if (o.xdp.umem_bytes > kMaxUmemBytes) {
    return absl::InvalidArgumentError("io: the UMEM is limited to 1 GiB");
  }
  if (o.xdp.umem_bytes != 0 && o.xdp.umem_bytes < 16 * kFrameBytes) {
    return absl::InvalidArgumentError("io: the UMEM needs at least 16 frames (64 KiB)");
  }

  // The UDP socket first: it holds the port (port 0 picks one) before the program
  // starts redirecting it.
  auto sock = OpenUdpSocket(o.bind, {.nonblocking = true,
                                     .rcvbuf_bytes = o.socket_rcvbuf_bytes,
                                     .sndbuf_bytes = o.socket_sndbuf_bytes});
  if (!sock.ok()) return sock.status();
  udp_ = std::move(*sock);
  family_ = o.bind.family == 4 ? AF_INET : AF_INET6;
  auto local = LocalEndpoint(udp_.get());
  if (!local.ok()) return local.status();
  local_ = *local;
  bound_any_ = IsWildcard(o.bind);
  max_datagram_bytes_ = o.max_datagram_bytes;
  tx_slot_bytes_ = TxSlotBytes(o);
  queue_ = o.xdp.queue;

  wake_ = ScopedFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_.valid()) return ErrnoStatus(errno, "io: eventfd");

  // Kernel-path receive buffers (mapped lazily; only large datagrams touch them deeply).
  const size_t stride = (o.max_datagram_bytes + 63) & ~size_t{63};
  auto kr = MappedRegion::Map(stride * kKernelRxBatch);
  if (!kr.ok()) return kr.status();
  krx_buffers_ = std::move(*kr);
  krx_msgs_ = std::make_unique<mmsghdr[]>(kKernelRxBatch);
  krx_iovs_ = std::make_unique<iovec[]>(kKernelRxBatch);
  krx_addrs_ = std::make_unique<sockaddr_storage[]>(kKernelRxBatch);
  for (size_t i = 0; i < kKernelRxBatch; ++i) {
    krx_iovs_[i] = {krx_buffers_.data() + i * stride, o.max_datagram_bytes};
    msghdr& h = krx_msgs_[i].msg_hdr;
    h = {};
    h.msg_name = &krx_addrs_[i];
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_iov = &krx_iovs_[i];
    h.msg_iovlen = 1;
  }

  if (o.xdp.umem_bytes != 0) {
    const size_t frames = o.xdp.umem_bytes / kFrameBytes;
    rx_frames_ = std::bit_floor(static_cast<uint32_t>(frames / 2));
    tx_frames_ = rx_frames_;
  } else {
    rx_frames_ = Pow2AtLeast(o.rx_buffer_count);
    tx_frames_ = static_cast<uint32_t>(o.tx_slot_count);
  }
  // Lazily backed: a slot's pages are touched only when a send that large is encoded.
  staging_stride_ = (tx_slot_bytes_ + 63) & ~size_t{63};
  auto staging = MappedRegion::Map(staging_stride_ * (tx_slot_bytes_ > kTxFrameCapacity ? kKernelTxBatch : 1));
  if (!staging.ok()) return staging.status();
  staging_ = std::move(*staging);
  ktx_msgs_ = std::make_unique<mmsghdr[]>(kKernelTxBatch);
  ktx_iovs_ = std::make_unique<iovec[]>(kKernelTxBatch);
  ktx_addrs_ = std::make_unique<sockaddr_storage[]>(kKernelTxBatch);
  tx_free_ = std::make_unique<uint32_t[]>(tx_frames_);
  // Low frames first, so a quiet node keeps reusing a few warm ones.
  for (uint32_t i = 0; i < tx_frames_; ++i) tx_free_[i] = rx_frames_ + tx_frames_ - 1 - i;
  tx_free_top_ = tx_frames_;
  tx_queue_ = std::make_unique<TxEntry[]>(tx_frames_);

  // The kernel charges the UMEM to the memory cgroup (5.11+), older ones to
  // RLIMIT_MEMLOCK: raise it if we may, and say so if we may not.
  rlimit lim{RLIM_INFINITY, RLIM_INFINITY};
  if (::setrlimit(RLIMIT_MEMLOCK, &lim) != 0) {
    const int err = errno;
    ::getrlimit(RLIMIT_MEMLOCK, &lim);
    if (lim.rlim_cur != lim.rlim_max) {
      lim.rlim_cur = lim.rlim_max;
      (void)::setrlimit(RLIMIT_MEMLOCK, &lim);
    }
    if (lim.rlim_max != RLIM_INFINITY) {
      spdlog::warn("io: setrlimit(RLIMIT_MEMLOCK, unlimited) refused ({}); kernels before 5.11 "
                   "need the {} byte UMEM to fit the limit ({} bytes)", std::strerror(err),
                   size_t{rx_frames_ + tx_frames_} * kFrameBytes, lim.rlim_max);
    }
  }
  auto area = MappedRegion::Map(size_t{rx_frames_ + tx_frames_} * kFrameBytes);
  if (!area.ok()) return area.status();
  umem_area_ = std::move(*area);

  auto neigh = NeighbourTable::Open(if_.ifindex);
  if (!neigh.ok()) return neigh.status();
  neigh_ = std::move(*neigh);

  auto prog = XdpProgram::Attach({.ifindex = if_.ifindex,
                                  .ifname = if_.name,
                                  .mode = o.xdp.mode,
                                  .port = local_.port,
                                  .queue = o.xdp.queue,
                                  .max_frame_bytes = kRxFrameCapacity});
  if (!prog.ok()) return prog.status();
  prog_ = std::move(*prog);
  if (absl::Status s = CreateSocket(o); !s.ok()) return s;

  spdlog::info("io: AF_XDP on {} queue {} ({} mode, {}), {} receive + {} send frames, port {}",
               if_.name, o.xdp.queue, xdp_mode(), stats_.xdp_zerocopy ? "zero-copy" : "copy",
               rx_frames_, tx_frames_, local_.port);
  return absl::OkStatus();
}

absl::Status XdpTransport::CreateSocket(const TransportOptions& o) {
  rings_ = std::make_unique<Rings>();
  const bool skb = prog_->mode() == XdpMode::kSkb;
  if (skb && o.xdp.zerocopy == XdpZerocopy::kOn) {
    return absl::FailedPreconditionError(
        "io: --xdp_zerocopy=on needs native (drv) XDP; generic (skb) mode always copies");
  }
  bool try_zc = !skb && o.xdp.zerocopy != XdpZerocopy::kOff;
  const std::string where = absl::StrCat(if_.name, " queue ", o.xdp.queue);
  for (;;) {
    xsk_umem_config ucfg{.fill_size = rx_frames_,
                         .comp_size = Pow2AtLeast(tx_frames_),
                         .frame_size = kFrameBytes,
                         .frame_headroom = kRxHeadroom,
                         .flags = 0};
    int err = xsk_umem__create(&umem_, umem_area_.data(), umem_area_.size(), &rings_->fill,
                               &rings_->comp, &ucfg);
    if (err != 0) {
      umem_ = nullptr;
      return ErrnoStatus(-err, "io: registering the AF_XDP UMEM (xsk_umem__create)");
    }
    xsk_socket_config scfg{};
    scfg.rx_size = rx_frames_;
    scfg.tx_size = Pow2AtLeast(tx_frames_);
    scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // our program, not libxdp's
    scfg.bind_flags = static_cast<uint16_t>(XDP_USE_NEED_WAKEUP | (try_zc ? XDP_ZEROCOPY : XDP_COPY));
    // EBUSY: a socket closed just before (a restart) releases its queue from a kernel
    // work item, a moment later. Bounded retry, then the error.
    for (int attempt = 0; attempt < 100; ++attempt) {
      err = xsk_socket__create(&xsk_, if_.name.c_str(), o.xdp.queue, umem_, &rings_->rx,
                               &rings_->tx, &scfg);
      if (err != -EBUSY) break;
      timespec pause{.tv_sec = 0, .tv_nsec = 10'000'000};
      ::nanosleep(&pause, nullptr);
    }
    if (err == 0) break;
    xsk_ = nullptr;
    xsk_umem__delete(umem_);
    umem_ = nullptr;
    if (try_zc && o.xdp.zerocopy == XdpZerocopy::kAuto) {
      spdlog::info("io: zero-copy AF_XDP refused on {} ({}); using copy mode", where,
                   std::strerror(-err));
      try_zc = false;
      continue;
    }
    std::string why = std::strerror(-err);
    if (err == -EOPNOTSUPP && try_zc) why += "; the driver has no zero-copy AF_XDP (--xdp_zerocopy=auto falls back to copy)";
    if (err == -EINVAL) why += "; check the queue exists and the interface is up";
    if (err == -EBUSY) why += "; another AF_XDP socket is bound to this queue";
    return absl::FailedPreconditionError(
        absl::StrCat("io: binding the AF_XDP socket to ", where, ": ", why));
  }
  stats_.xdp_zerocopy = try_zc;
  xsk_fd_ = xsk_socket__fd(xsk_);
  if (int err = xsk_socket__update_xskmap(xsk_, prog_->xsk_map_fd()); err != 0) {
    return ErrnoStatus(-err, "io: registering the AF_XDP socket in the XDP program's map");
  }
  // Every receive frame goes to the fill ring at once.
  uint32_t idx = 0;
  if (xsk_ring_prod__reserve(&rings_->fill, rx_frames_, &idx) != rx_frames_) {
    return absl::InternalError("io: AF_XDP fill ring smaller than the receive frames");
  }
  for (uint32_t i = 0; i < rx_frames_; ++i) {
    *xsk_ring_prod__fill_addr(&rings_->fill, idx + i) = uint64_t{i} * kFrameBytes;
  }
  xsk_ring_prod__submit(&rings_->fill, rx_frames_);
  return absl::OkStatus();
}

XdpTransport::~XdpTransport() {
  // Out of the map first: the map's reference would keep the socket (and the queue it
  // binds) alive until the program is freed, which the kernel does later.
  if (prog_ != nullptr && xsk_ != nullptr) {
    const uint32_t queue = queue_;
    bpf_map_delete_elem(prog_->xsk_map_fd(), &queue);
  }
  if (xsk_ != nullptr) xsk_socket__delete(xsk_);
  if (umem_ != nullptr) xsk_umem__delete(umem_);
  // From here on the kernel stack gets our port's datagrams again.
  prog_.reset();
}

const char* XdpTransport::xdp_mode() const { return prog_ ? (prog_->mode() == XdpMode::kSkb ? "skb" : "drv") : "none"; }
uint64_t XdpTransport::program_redirected() const { return prog_ ? prog_->redirected() : 0; }
uint64_t XdpTransport::program_passed() const { return prog_ ? prog_->passed() : 0; }

uint8_t* XdpTransport::Frame(uint32_t frame) const {
  return umem_area_.data() + size_t{frame} * kFrameBytes;
}

// --- Send ----------------------------------------------------------------------------

std::span<uint8_t> XdpTransport::AcquireTx(size_t max_len) {
  AbortTx();
  if (max_len > tx_slot_bytes_) {
    stats_.CountDrop(Drop::kTxTooLarge);
    return {};
  }
  if (tx_free_top_ == 0) ReapCompletions();
  if (tx_free_top_ == 0) {
    stats_.CountDrop(Drop::kTxPoolFull);
    return {};
  }
  pending_staged_ = max_len > kTxFrameCapacity;
  if (pending_staged_ && ktx_len_ == kKernelTxBatch) FlushKernelSends();  // frees every slot
  pending_ = tx_free_[--tx_free_top_];
  pending_len_ = max_len;
  if (pending_staged_) return {Staging(ktx_len_), max_len};
  return {Frame(pending_) + kTxPayloadOffset, max_len};
}

void XdpTransport::AbortTx() {
  if (pending_ != UINT32_MAX) ReleaseFrame(pending_);
  pending_ = UINT32_MAX;
}

void XdpTransport::CommitTx(const Endpoint& to, size_t len) {
  if (pending_ == UINT32_MAX) return;
  const uint8_t* base = pending_staged_ ? Staging(ktx_len_) : Frame(pending_) + kTxPayloadOffset;
  CommitTx(to, std::span<const uint8_t>(base, std::min(len, pending_len_)));
}

void XdpTransport::CommitTx(const Endpoint& to, std::span<const uint8_t> packet) {
  const uint32_t frame = pending_;
  if (frame == UINT32_MAX) return;
  pending_ = UINT32_MAX;
  const uint8_t* base = pending_staged_ ? Staging(ktx_len_) : Frame(frame) + kTxPayloadOffset;
  const auto p = reinterpret_cast<uintptr_t>(packet.data());
  const auto b = reinterpret_cast<uintptr_t>(base);
  if (packet.empty() || p < b || p - b > pending_len_ || packet.size() > pending_len_ - (p - b)) {
    stats_.CountDrop(Drop::kTxBadSpan);
    ReleaseFrame(frame);
    return;
  }
  sockaddr_storage ss;
  if (ToSockaddr(to, family_, &ss) == 0) {
    stats_.CountDrop(Drop::kTxBadAddress);
    ReleaseFrame(frame);
    return;
  }
  uint32_t offset = kTxPayloadOffset + static_cast<uint32_t>(p - b);
  if (pending_staged_) {
    if (packet.size() > kTxFrameCapacity) {
      // Larger than any frame: the kernel sends (and fragments) it, in a batch.
      QueueKernelSend(to, p - b, packet.size());
      ReleaseFrame(frame);
      return;
    }
    // Encoded into the oversized staging slot but small enough for a frame: one copy.
    std::memcpy(Frame(frame) + kTxPayloadOffset, packet.data(), packet.size());
    offset = kTxPayloadOffset;
    ++stats_.xdp_tx_staged;
  }
  // Cannot overflow: every queued entry holds one of tx_frames_ frames.
  tx_queue_[(tx_head_ + tx_len_) % tx_frames_] =
      TxEntry{frame, offset, static_cast<uint32_t>(packet.size()), to};
  ++tx_len_;
}

void XdpTransport::SendThroughKernel(const Endpoint& to, const uint8_t* data, size_t len) {
  sockaddr_storage ss;
  const socklen_t alen = ToSockaddr(to, family_, &ss);
  if (alen == 0) {
    stats_.CountDrop(Drop::kTxBadAddress);
    return;
  }
  if (::sendto(udp_.get(), data, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&ss), alen) < 0) {
    stats_.CountDrop(Drop::kTxError);
    return;
  }
  ++stats_.tx_packets;
  stats_.tx_bytes += len;
  ++stats_.xdp_tx_kernel;
}

uint32_t XdpTransport::WriteHeaders(const TxEntry& e, const std::array<uint8_t, 6>& mac,
                                    const std::array<uint8_t, 16>& route_source) {
  const bool v4 = e.to.family == 4;
  const size_t ip_bytes = v4 ? kIp4Bytes : kIp6Bytes;
  const size_t hdr = kEthBytes + ip_bytes + kUdpBytes;
  if (ip_bytes + kUdpBytes + e.len > if_.mtu || e.offset < hdr) return 0;
  uint8_t* f = Frame(e.frame) + e.offset - hdr;
  // Source address: ours if bound to one of this family, else the route's choice.
  const bool own = !bound_any_ && local_.family == e.to.family;
  const uint8_t* src = own ? local_.addr.data() : route_source.data();

  std::memcpy(f, mac.data(), 6);
  std::memcpy(f + 6, if_.mac.data(), 6);
  Store16(f + 12, v4 ? 0x0800 : 0x86dd);
  uint8_t* ip = f + kEthBytes;
  uint8_t* udp = ip + ip_bytes;
  const uint16_t udp_len = static_cast<uint16_t>(kUdpBytes + e.len);
  uint64_t pseudo = 0;
  if (v4) {
    ip[0] = 0x45;
    ip[1] = 0;
    Store16(ip + 2, static_cast<uint16_t>(kIp4Bytes + udp_len));
    Store16(ip + 4, ip_id_++);
    Store16(ip + 6, 0x4000);  // DF: never larger than the MTU (checked above)
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    Store16(ip + 10, 0);
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, e.to.addr.data(), 4);
    Store16(ip + 10, Fold(SumBytes(ip, kIp4Bytes)));
    pseudo = SumBytes(ip + 12, 8) + IPPROTO_UDP + udp_len;
  } else {
    Store16(ip, 0x6000);
    Store16(ip + 2, 0);
    Store16(ip + 4, udp_len);
    ip[6] = IPPROTO_UDP;
    ip[7] = 64;
    std::memcpy(ip + 8, src, 16);
    std::memcpy(ip + 24, e.to.addr.data(), 16);
    pseudo = SumBytes(ip + 8, 32) + IPPROTO_UDP + udp_len;
  }
  Store16(udp, local_.port);
  Store16(udp + 2, e.to.port);
  Store16(udp + 4, udp_len);
  Store16(udp + 6, 0);
  // The UDP checksum covers the payload: computed for both families (optional for IPv4,
  // but it is the only end-to-end check a datagram has without a keyring).
  uint16_t csum = Fold(SumBytes(udp, udp_len, pseudo));
  if (csum == 0) csum = 0xffff;
  Store16(udp + 6, csum);
  return static_cast<uint32_t>(hdr + e.len);
}

void XdpTransport::QueueKernelSend(const Endpoint& to, size_t offset, size_t len) {
  const socklen_t alen = ToSockaddr(to, family_, &ktx_addrs_[ktx_len_]);
  if (alen == 0) {
    stats_.CountDrop(Drop::kTxBadAddress);
    return;
  }
  ktx_iovs_[ktx_len_] = {Staging(ktx_len_) + offset, len};
  msghdr& h = ktx_msgs_[ktx_len_].msg_hdr;
  h = {};
  h.msg_name = &ktx_addrs_[ktx_len_];
  h.msg_namelen = alen;
  h.msg_iov = &ktx_iovs_[ktx_len_];
  h.msg_iovlen = 1;
  ++ktx_len_;
}

void XdpTransport::FlushKernelSends() {
  uint32_t done = 0;
  while (done < ktx_len_) {
    const int n = ::sendmmsg(udp_.get(), ktx_msgs_.get() + done, ktx_len_ - done, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      stats_.CountDrop(Drop::kTxError);  // this datagram; go on with the next
      ++done;
      continue;
    }
    for (int i = 0; i < n; ++i) {
      ++stats_.tx_packets;
      stats_.tx_bytes += ktx_iovs_[done + static_cast<uint32_t>(i)].iov_len;
      ++stats_.xdp_tx_kernel;
    }
    done += static_cast<uint32_t>(n);
  }
  ktx_len_ = 0;
}

absl::Status XdpTransport::Flush() {
  ReapCompletions();
  if (ktx_len_ > 0) FlushKernelSends();
  if (tx_len_ == 0) return absl::OkStatus();
  ++stats_.flushes;
  const int64_t now = MonotonicNowUs();
  uint32_t reserved = 0;
  uint32_t ring_idx = 0;
  const uint32_t ring_free = xsk_prod_nb_free(&rings_->tx, tx_len_);
  while (tx_len_ > 0) {
    const TxEntry& e = tx_queue_[tx_head_];
    NextHop& hop = neigh_->Lookup(e.to, now);
    uint32_t frame_len = 0;
    if (hop.kind == NextHop::Kind::kDirect && !hop.nudge) {
      if (reserved == ring_free) break;  // TX ring full: the rest waits for completions
      frame_len = WriteHeaders(e, hop.mac, hop.source);
    }
    if (frame_len == 0) {
      // Not for the rings: an unresolved or stale neighbour (this send makes the kernel
      // resolve it), another route, or larger than the MTU.
      if (hop.kind == NextHop::Kind::kUnresolved) ++stats_.xdp_neigh_misses;
      hop.nudge = false;
      SendThroughKernel(e.to, Frame(e.frame) + e.offset, e.len);
      ReleaseFrame(e.frame);
    } else {
      if (reserved == 0) xsk_ring_prod__reserve(&rings_->tx, ring_free, &ring_idx);
      xdp_desc* d = xsk_ring_prod__tx_desc(&rings_->tx, ring_idx + reserved);
      d->addr = uint64_t{e.frame} * kFrameBytes + e.offset - (frame_len - e.len);
      d->len = frame_len;
      d->options = 0;
      ++reserved;
      ++stats_.tx_packets;
      stats_.tx_bytes += e.len;
    }
    tx_head_ = (tx_head_ + 1) % tx_frames_;
    --tx_len_;
  }
  if (reserved > 0) {
    // Give back the reservation we did not use, then publish the descriptors.
    rings_->tx.cached_prod -= ring_free - reserved;
    xsk_ring_prod__submit(&rings_->tx, reserved);
    tx_outstanding_ += reserved;
    Kick();
  }
  return absl::OkStatus();
}

void XdpTransport::Kick() {
  // In copy mode each sendto moves a bounded batch (32 frames) from the TX ring into the
  // driver, so keep kicking while the kernel consumes; EAGAIN means the completion ring
  // is full: reap it and go on. Bounded by the ring size.
  const uint32_t max_kicks = Pow2AtLeast(tx_frames_) / 16 + 4;
  for (uint32_t i = 0; i < max_kicks; ++i) {
    const uint32_t consumed = __atomic_load_n(rings_->tx.consumer, __ATOMIC_ACQUIRE);
    if (consumed == rings_->tx.cached_prod) break;  // the kernel took everything
    if (!xsk_ring_prod__needs_wakeup(&rings_->tx) && stats_.xdp_zerocopy) break;
    if (::sendto(xsk_fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) continue;
    if (errno == EAGAIN || errno == EBUSY) {
      ReapCompletions();
      continue;
    }
    if (errno != ENOBUFS && errno != ENETDOWN) stats_.CountDrop(Drop::kTxError);
    break;
  }
}

void XdpTransport::ReapCompletions() {
  if (tx_outstanding_ == 0) return;
  uint32_t idx = 0;
  const uint32_t n = xsk_ring_cons__peek(&rings_->comp, tx_outstanding_, &idx);
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t addr = *xsk_ring_cons__comp_addr(&rings_->comp, idx + i);
    ReleaseFrame(static_cast<uint32_t>(addr / kFrameBytes));
  }
  if (n > 0) xsk_ring_cons__release(&rings_->comp, n);
  tx_outstanding_ -= n;
}

// --- Receive -------------------------------------------------------------------------

void XdpTransport::Deliver(const uint8_t* f, uint32_t len,
                           absl::FunctionRef<void(const RxDatagram&)> on_datagram) {
  // The program checked most of this; it is checked again because the frame is remote
  // input and the program may be a different build.
  RxDatagram d;
  const uint8_t* udp = nullptr;
  size_t room = 0;  // bytes from the UDP header to the end of the IP packet
  if (len >= kEthBytes + kIp4Bytes + kUdpBytes && Load16(f + 12) == 0x0800) {
    const uint8_t* ip = f + kEthBytes;
    const size_t total = Load16(ip + 2);
    if (ip[0] != 0x45 || ip[9] != IPPROTO_UDP || (Load16(ip + 6) & 0x3fff) != 0 ||
        total < kIp4Bytes + kUdpBytes || total > len - kEthBytes) {
      stats_.CountDrop(Drop::kRxError);
      return;
    }
    d.from.family = 4;
    std::memcpy(d.from.addr.data(), ip + 12, 4);
    udp = ip + kIp4Bytes;
    room = total - kIp4Bytes;
  } else if (len >= kEthBytes + kIp6Bytes + kUdpBytes && Load16(f + 12) == 0x86dd &&
             family_ == AF_INET6) {
    const uint8_t* ip = f + kEthBytes;
    const size_t payload = Load16(ip + 4);
    if ((ip[0] >> 4) != 6 || ip[6] != IPPROTO_UDP || payload < kUdpBytes ||
        payload > len - kEthBytes - kIp6Bytes) {
      stats_.CountDrop(Drop::kRxError);
      return;
    }
    d.from.family = 6;
    std::memcpy(d.from.addr.data(), ip + 8, 16);
    udp = ip + kIp6Bytes;
    room = payload;
  } else {
    stats_.CountDrop(Drop::kRxError);
    return;
  }
  const size_t udp_len = Load16(udp + 4);
  if (udp_len < kUdpBytes || udp_len > room || Load16(udp + 2) != local_.port) {
    stats_.CountDrop(Drop::kRxError);
    return;
  }
  const size_t bytes = udp_len - kUdpBytes;
  if (bytes > max_datagram_bytes_) {
    stats_.CountDrop(Drop::kRxTruncated);
    return;
  }
  d.from.port = Load16(udp);
  // The decoder reads FlatBuffers in place and wants the payload 8-byte aligned. The UMEM
  // headroom (kRxHeadroom) makes IPv4 payloads land aligned; an IPv6 one (20 bytes more
  // of header) is moved back over its already-read headers inside the frame.
  auto* payload = const_cast<uint8_t*>(udp + kUdpBytes);
  if (const size_t mis = reinterpret_cast<uintptr_t>(payload) & 7; mis != 0) {
    std::memmove(payload - mis, payload, bytes);
    payload -= mis;
    ++stats_.xdp_rx_realigned;
  }
  d.data = {payload, bytes};
  ++stats_.rx_packets;
  stats_.rx_bytes += bytes;
  on_datagram(d);
}

int XdpTransport::ReceiveXsk(absl::FunctionRef<void(const RxDatagram&)> on_datagram) {
  uint32_t idx = 0;
  const uint32_t n = xsk_ring_cons__peek(&rings_->rx, kRxBatch, &idx);
  if (n == 0) return 0;
  for (uint32_t i = 0; i < n; ++i) {
    const xdp_desc* d = xsk_ring_cons__rx_desc(&rings_->rx, idx + i);
    const uint64_t addr = xsk_umem__add_offset_to_addr(d->addr);
    if (addr + d->len > umem_area_.size()) {
      stats_.CountDrop(Drop::kRxError);
      continue;
    }
    Deliver(umem_area_.data() + addr, d->len, on_datagram);
  }
  // The callbacks are done with the frames: straight back to the fill ring. It has room
  // for every receive frame, so the reservation cannot fall short.
  uint32_t fidx = 0;
  const uint32_t got = xsk_ring_prod__reserve(&rings_->fill, n, &fidx);
  for (uint32_t i = 0; i < got; ++i) {
    const uint64_t addr = xsk_umem__extract_addr(xsk_ring_cons__rx_desc(&rings_->rx, idx + i)->addr);
    *xsk_ring_prod__fill_addr(&rings_->fill, fidx + i) = addr - addr % kFrameBytes;
  }
  xsk_ring_prod__submit(&rings_->fill, got);
  xsk_ring_cons__release(&rings_->rx, n);
  return static_cast<int>(n);
}

int XdpTransport::ReceiveKernel(absl::FunctionRef<void(const RxDatagram&)> on_datagram) {
  const int n = ::recvmmsg(udp_.get(), krx_msgs_.get(), kKernelRxBatch, MSG_DONTWAIT, nullptr);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) stats_.CountDrop(Drop::kRxError);
    return 0;
  }
  for (int i = 0; i < n; ++i) {
    msghdr& h = krx_msgs_[i].msg_hdr;
    if (h.msg_flags & MSG_TRUNC) {
      stats_.CountDrop(Drop::kRxTruncated);
    } else {
      const size_t len = krx_msgs_[i].msg_len;
      RxDatagram d{FromSockaddr(h.msg_name, h.msg_namelen),
                   {static_cast<const uint8_t*>(krx_iovs_[i].iov_base), len},
                   false};
      ++stats_.rx_packets;
      stats_.rx_bytes += len;
      ++stats_.xdp_rx_kernel;
      on_datagram(d);
    }
    h.msg_namelen = sizeof(sockaddr_storage);
  }
  return n;
}

void XdpTransport::ReadXskStatistics() {
  xdp_statistics st{};
  socklen_t len = sizeof(st);
  if (::getsockopt(xsk_fd_, SOL_XDP, XDP_STATISTICS, &st, &len) == 0) {
    stats_.xdp_rx_dropped = st.rx_dropped + st.rx_invalid_descs + st.rx_ring_full;
  }
}

absl::Status XdpTransport::Poll(int64_t timeout_us,
                                absl::FunctionRef<void(const RxDatagram&)> on_datagram) {
  ++stats_.polls;
  ReapCompletions();
  if (tx_len_ > 0) (void)Flush();
  const bool ready = xsk_backlog_ || kernel_backlog_ ||
                     xsk_cons_nb_avail(&rings_->rx, 1) > 0;
  if (!ready && timeout_us != 0) {
    pollfd fds[3] = {
        {xsk_fd_, static_cast<short>(POLLIN | (tx_len_ > 0 ? POLLOUT : 0)), 0},
        {udp_.get(), POLLIN, 0},
        {wake_.get(), POLLIN, 0},
    };
    timespec ts{.tv_sec = timeout_us / 1'000'000, .tv_nsec = (timeout_us % 1'000'000) * 1000};
    const int r = ::ppoll(fds, 3, timeout_us < 0 ? nullptr : &ts, nullptr);
    if (r < 0 && errno != EINTR) return ErrnoStatus(errno, "io: ppoll");
    if (r > 0 && (fds[2].revents & POLLIN)) {
      uint64_t v;
      if (::read(wake_.get(), &v, sizeof(v)) == sizeof(v)) ++stats_.wakeups;
    }
    if (r > 0 && (fds[0].revents & POLLOUT)) (void)Flush();
    if (++polls_since_stats_ >= 16) {
      polls_since_stats_ = 0;
      ReadXskStatistics();
    }
  } else if (xsk_ring_prod__needs_wakeup(&rings_->fill)) {
    // Native mode with need_wakeup: the driver waits for a syscall to refill.
    ::recvfrom(xsk_fd_, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
  }
  xsk_backlog_ = false;
  for (int b = 0; b < kMaxRxBatchesPerPoll; ++b) {
    const int n = ReceiveXsk(on_datagram);
    xsk_backlog_ = n == static_cast<int>(kRxBatch);
    if (!xsk_backlog_) break;
  }
  const int k = ReceiveKernel(on_datagram);
  kernel_backlog_ = k == static_cast<int>(kKernelRxBatch);
  return absl::OkStatus();
}

void XdpTransport::Wake() {
  const uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof(one));
}

}  // namespace scuttle::io
