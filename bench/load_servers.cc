// scuttle_load's servers (bench/load_servers.h).
#include "bench/load_servers.h"

#include "bench/load_common.h"

namespace scuttle::bench {
namespace {

// Reply bytes for the *_copy raw servers: a source bigger than any reply, copied into
// rotating send buffers (the footprint of io::Transport's tx slots).
class ReplyFiller {
 public:
  static constexpr size_t kSourceBytes = 256 * 1024;
  explicit ReplyFiller(size_t reply_bytes)
      : reply_bytes_(reply_bytes), source_(kSourceBytes), tx_(size_t{kServerBatch} * kBufBytes) {
    for (size_t i = 0; i < kSourceBytes; ++i) source_.data[i] = static_cast<uint8_t>(i * 131);
    source_.data[0] = kReplyTag;
  }
  // Fills send buffer `buf` (< kServerBatch; not in flight) with the next reply.
  uint8_t* Fill(uint32_t buf) {
    uint8_t* out = tx_.data + size_t{buf} * kBufBytes;
    const size_t from = (offset_ += 4099) % (kSourceBytes - reply_bytes_);
    std::memcpy(out + 1, source_.data + from + 1, reply_bytes_ - 1);
    out[0] = kReplyTag;
    return out;
  }

 private:
  size_t reply_bytes_;
  Mapped source_;
  Mapped tx_;
  size_t offset_ = 0;
};

// The physical reference: recvmmsg + sendmmsg, replies from one constant buffer (or, with
// `copy`, each reply first copied into a rotating send buffer).
class RawMmsgServer final : public Server {
 public:
  RawMmsgServer(size_t reply_bytes, bool copy)
      : fd_(OpenUdp(kSockBuf, Net().server_ip)), reply_(reply_bytes, kReplyTag), rx_bufs_(kServerBatch * kBufBytes) {
    if (copy) filler_ = std::make_unique<ReplyFiller>(reply_bytes);
    timeval tv{0, kServerPollUs};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawMmsgServer() override { ::close(fd_); }
  uint16_t port() const override { return PortOf(fd_); }

  void Run(const std::atomic<bool>& stop, ServerCounters& c) override {
    std::vector<mmsghdr> rx(kServerBatch), tx(kServerBatch);
    std::vector<iovec> rx_iov(kServerBatch), tx_iov(kServerBatch);
    std::vector<sockaddr_in6> names(kServerBatch);
    for (uint32_t i = 0; i < kServerBatch; ++i) {
      rx_iov[i] = {rx_bufs_.data + size_t{i} * kBufBytes, kBufBytes};
      rx[i].msg_hdr = {};
      rx[i].msg_hdr.msg_name = &names[i];
      rx[i].msg_hdr.msg_iov = &rx_iov[i];
      rx[i].msg_hdr.msg_iovlen = 1;
      tx_iov[i] = {reply_.data(), reply_.size()};
      tx[i].msg_hdr = {};
      tx[i].msg_hdr.msg_iov = &tx_iov[i];
      tx[i].msg_hdr.msg_iovlen = 1;
    }
    while (!stop.load(std::memory_order_relaxed)) {
      for (uint32_t i = 0; i < kServerBatch; ++i) rx[i].msg_hdr.msg_namelen = sizeof(sockaddr_in6);
      const int n = ::recvmmsg(fd_, rx.data(), kServerBatch, MSG_WAITFORONE, nullptr);
      if (n <= 0) continue;  // timeout (stop check) or EINTR
      uint32_t j = 0;
      for (int i = 0; i < n; ++i) {
        if (rx[i].msg_len == 0 || rx_iov[i].iov_base == nullptr) continue;
        if (static_cast<const uint8_t*>(rx_iov[i].iov_base)[0] != kReqTag) continue;
        tx[j].msg_hdr.msg_name = &names[i];
        tx[j].msg_hdr.msg_namelen = rx[i].msg_hdr.msg_namelen;
        // sendmmsg is synchronous: rotating buffers only reproduce the cache footprint.
        if (filler_) tx_iov[j].iov_base = filler_->Fill(next_buf_++ % kServerBatch);
        ++j;
      }
      uint32_t sent = 0;
      while (sent < j) {
        const int r = ::sendmmsg(fd_, tx.data() + sent, j - sent, 0);
        if (r < 0) {
          if (errno == EINTR) continue;
          c.drops.fetch_add(j - sent, std::memory_order_relaxed);
          break;
        }
        sent += static_cast<uint32_t>(r);
      }
    }
  }

 private:
  int fd_;
  std::vector<uint8_t> reply_;
  Mapped rx_bufs_;
  std::unique_ptr<ReplyFiller> filler_;
  uint32_t next_buf_ = 0;
};

// The io_uring reference: what io/uring_transport.cc does, minus the Transport API —
// one ring, registered socket, multishot recvmsg on a provided-buffer ring, sendmsg SQEs
// from a constant reply buffer, one io_uring_enter per iteration (submit + wait).
class RawUringServer final : public Server {
 public:
  static constexpr unsigned kBufEntries = 256;
  static constexpr socklen_t kNameBytes = 48;
  static constexpr size_t kStride = (sizeof(io_uring_recvmsg_out) + kNameBytes + kMaxDatagram + 63) & ~size_t{63};
  static constexpr uint64_t kRecv = 1, kSend = 2;

  RawUringServer(size_t reply_bytes, bool copy)
      : fd_(OpenUdp(kSockBuf, Net().server_ip)),
        reply_(reply_bytes, kReplyTag),
        br_mem_(4096 * ((kBufEntries * sizeof(io_uring_buf) + 4095) / 4096)),
        bufs_(kStride * kBufEntries) {
    if (copy) filler_ = std::make_unique<ReplyFiller>(reply_bytes);
  }
  ~RawUringServer() override {
    if (ring_ok_) io_uring_queue_exit(&ring_);
    ::close(fd_);
  }
  uint16_t port() const override { return PortOf(fd_); }

  void Run(const std::atomic<bool>& stop, ServerCounters& c) override {
    Setup();
    slots_.resize(kServerBatch);
    free_.clear();
    for (uint32_t i = 0; i < kServerBatch; ++i) {
      Slot& s = slots_[i];
      s.iov = {reply_.data(), reply_.size()};
      s.msg = {};
      s.msg.msg_name = &s.addr;
      s.msg.msg_iov = &s.iov;
      s.msg.msg_iovlen = 1;
      free_.push_back(i);
    }
    ArmRecv();
    while (!stop.load(std::memory_order_relaxed)) {
      __kernel_timespec ts{0, kServerPollUs * 1000LL};
      io_uring_cqe* cqe = nullptr;
      const int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY) {
        errno = -r;
        Die("io_uring_submit_and_wait_timeout");
      }
      bool rearm = false;
      unsigned recycles = 0;
      io_uring_cqe* cqes[64];
      for (;;) {
        const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 64);
        for (unsigned k = 0; k < n; ++k) {
          const io_uring_cqe& e = *cqes[k];
          if (io_uring_cqe_get_data64(&e) == kRecv) {
            if (!(e.flags & IORING_CQE_F_MORE)) rearm = true;
            if (!(e.flags & IORING_CQE_F_BUFFER)) continue;
            const auto bid = static_cast<uint16_t>(e.flags >> IORING_CQE_BUFFER_SHIFT);
            uint8_t* buf = bufs_.data + size_t{bid} * kStride;
            io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, e.res, &recv_msg_);
            if (out != nullptr && !(out->flags & MSG_TRUNC)) {
              const auto* payload = static_cast<const uint8_t*>(io_uring_recvmsg_payload(out, &recv_msg_));
              const size_t len = io_uring_recvmsg_payload_length(out, e.res, &recv_msg_);
              if (len > 0 && payload[0] == kReqTag) Reply(io_uring_recvmsg_name(out), out->namelen, c);
            }
            io_uring_buf_ring_add(br_, buf, static_cast<unsigned>(kStride), bid,
                                  io_uring_buf_ring_mask(kBufEntries), recycles++);
          } else {
            const auto slot = static_cast<uint32_t>(io_uring_cqe_get_data64(&e) >> 8);
            if (e.res < 0) c.drops.fetch_add(1, std::memory_order_relaxed);
            free_.push_back(slot);
          }
        }
        io_uring_cq_advance(&ring_, n);
        if (n < 64) break;
      }
      if (recycles > 0) io_uring_buf_ring_advance(br_, recycles);
      if (rearm) ArmRecv();
    }
  }

 private:
  struct Slot {
    msghdr msg;
    iovec iov;
    sockaddr_in6 addr;
  };

  void Setup() {
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = 4096;
    int r = io_uring_queue_init_params(1024, &ring_, &p);
    // ENOMEM right after many rings were torn down (teardown is asynchronous): retry.
    for (int i = 0; i < 20 && r == -ENOMEM; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      p = io_uring_params{};
      p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
      p.cq_entries = 4096;
      r = io_uring_queue_init_params(1024, &ring_, &p);
    }
    if (r == -EINVAL) {
      p = io_uring_params{};
      p.flags = IORING_SETUP_CQSIZE;
      p.cq_entries = 4096;
      r = io_uring_queue_init_params(1024, &ring_, &p);
    }
    if (r < 0) {
      errno = -r;
      Die("io_uring_queue_init_params");
    }
    ring_ok_ = true;
    if (io_uring_register_files(&ring_, &fd_, 1) < 0) Die("io_uring_register_files");
    br_ = reinterpret_cast<io_uring_buf_ring*>(br_mem_.data);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(br_);
    reg.ring_entries = kBufEntries;
    reg.bgid = 0;
    if (int e = io_uring_register_buf_ring(&ring_, &reg, 0); e < 0) {
      errno = -e;
      Die("io_uring_register_buf_ring");
    }
    io_uring_buf_ring_init(br_);
    for (unsigned i = 0; i < kBufEntries; ++i) {
      io_uring_buf_ring_add(br_, bufs_.data + size_t{i} * kStride, static_cast<unsigned>(kStride),
                            static_cast<uint16_t>(i), io_uring_buf_ring_mask(kBufEntries), i);
    }
    io_uring_buf_ring_advance(br_, kBufEntries);
    recv_msg_ = {};
    recv_msg_.msg_namelen = kNameBytes;
  }

  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void ArmRecv() {
    io_uring_sqe* sqe = Sqe();
    if (sqe == nullptr) return;
    io_uring_prep_recvmsg_multishot(sqe, 0, &recv_msg_, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, kRecv);
  }

  void Reply(const void* name, socklen_t namelen, ServerCounters& c) {
    if (free_.empty()) {
      c.drops.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    io_uring_sqe* sqe = Sqe();
    if (sqe == nullptr) {
      c.drops.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const uint32_t i = free_.back();
    free_.pop_back();
    Slot& s = slots_[i];
    const socklen_t len = std::min<socklen_t>(namelen, sizeof(s.addr));
    std::memcpy(&s.addr, name, len);
    s.msg.msg_namelen = len;
    if (filler_) s.iov.iov_base = filler_->Fill(i);  // slot i owns buffer i until it completes
    io_uring_prep_sendmsg(sqe, 0, &s.msg, 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, (uint64_t{i} << 8) | kSend);
  }

  int fd_;
  std::vector<uint8_t> reply_;
  io_uring ring_{};
  bool ring_ok_ = false;
  Mapped br_mem_;
  Mapped bufs_;
  io_uring_buf_ring* br_ = nullptr;
  msghdr recv_msg_{};
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  std::unique_ptr<ReplyFiller> filler_;
};

io::TransportOptions TransportOpts(io::IoKind kind, size_t tx_slot_bytes, size_t zerocopy_min = 0,
                                   io::XdpMode xdp_mode = io::XdpMode::kAuto) {
  io::TransportOptions o;
  o.zerocopy_min_bytes = zerocopy_min;
  o.kind = kind;
  o.bind = Endpoint::V4(Net().server_ip, 0);
  o.xdp.mode = xdp_mode;
  o.max_datagram_bytes = io::kMaxUdpPayloadBytes;
  o.tx_slot_bytes = tx_slot_bytes;
  o.rx_buffer_count = kServerBatch;
  o.tx_slot_count = kServerBatch;
  o.socket_rcvbuf_bytes = kSockBuf;
  o.socket_sndbuf_bytes = kSockBuf;
  return o;
}

std::unique_ptr<io::Transport> MustOpen(const io::TransportOptions& o) {
  auto t = io::OpenTransport(o);
  for (int i = 0; i < 20 && !t.ok(); ++i) {  // e.g. ENOMEM while old rings tear down
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    t = io::OpenTransport(o);
  }
  if (!t.ok()) {
    std::fprintf(stderr, "scuttle_load: OpenTransport: %s\n", std::string(t.status().message()).c_str());
    std::exit(1);
  }
  return std::move(*t);
}

void CountTransportDrops(const io::Transport& t, ServerCounters& c) {
  const io::TransportStats& st = t.stats();
  uint64_t d = st.xdp_rx_dropped;
  for (uint64_t x : st.drops) d += x;
  c.drops.store(d, std::memory_order_relaxed);
  c.rx_packets.store(st.rx_packets, std::memory_order_relaxed);
  c.tx_packets.store(st.tx_packets, std::memory_order_relaxed);
  c.rx_kernel.store(st.xdp_rx_kernel, std::memory_order_relaxed);
  c.tx_kernel.store(st.xdp_tx_kernel, std::memory_order_relaxed);
}

// The Transport API doing the raw servers' job: a request gets a reply slot, stamped, sent.
// Sealed: each request is opened (wire::Open into one reused buffer) and replay-checked,
// and each reply is sealed in place in its send slot, as the engine does; the datagrams
// on the wire keep the plaintext rows' sizes (the payload gives the trailer its 40 B).
class TransportServer final : public Server {
 public:
  TransportServer(io::IoKind kind, size_t reply_bytes, bool sealed,
                  io::XdpMode xdp_mode = io::XdpMode::kAuto)
      : t_(MustOpen(TransportOpts(kind, 0, 0, xdp_mode))),
        reply_bytes_(reply_bytes),
        sealed_(sealed),
        open_buf_(sealed ? kBufBytes : 0),
        replay_(64) {
    sealer_.key = &BenchKeyring().primary();
    sealer_.cipher = wire::ResolveCipher(wire::Cipher::kAuto);
    sealer_.sender_id = 0x6c6f61642d737276ULL;  // "load-srv"
  }
  uint16_t port() const override { return t_->local_endpoint().port; }
  void Run(const std::atomic<bool>& stop, ServerCounters& c) override {
    while (!stop.load(std::memory_order_relaxed)) {
      absl::Status s = t_->Poll(kServerPollUs, [&](const io::RxDatagram& d) {
        if (sealed_) return ReplySealed(d);
        if (d.data.empty() || d.data[0] != kReqTag) return;
        std::span<uint8_t> slot = t_->AcquireTx(reply_bytes_);
        if (slot.empty()) return;
        slot[0] = kReplyTag;
        t_->CommitTx(d.from, reply_bytes_);
      });
      if (!s.ok()) Die(std::string(s.message()));
      if (absl::Status f = t_->Flush(); !f.ok()) Die(std::string(f.message()));
      CountTransportDrops(*t_, c);
      if (sealed_) c.drops.fetch_add(open_drops_, std::memory_order_relaxed);  // cumulative
    }
  }

 private:
  void ReplySealed(const io::RxDatagram& d) {
    wire::Opened opened;
    wire::OpenError err;
    if (!wire::Open(d.data, BenchKeyring(), open_buf_, &opened, &err) ||
        replay_.Accept(opened.sender_id, opened.counter) != ReplayVerdict::kFresh ||
        opened.datagram.size() <= wire::kHeaderBytes || opened.datagram[wire::kHeaderBytes] != kReqTag) {
      ++open_drops_;
      return;
    }
    std::span<uint8_t> slot = t_->AcquireTx(reply_bytes_);
    if (slot.empty()) return;
    const size_t plain = reply_bytes_ - wire::kSealTrailerBytes;
    WriteHeader(slot.data(), plain);
    slot[wire::kHeaderBytes] = kReplyTag;
    const std::span<const uint8_t> sealed = wire::Seal(
        slot, plain, wire::SealParams{sealer_.key, sealer_.cipher, sealer_.sender_id, sealer_.counter++});
    t_->CommitTx(d.from, sealed.size());
  }

  std::unique_ptr<io::Transport> t_;
  size_t reply_bytes_;
  bool sealed_;
  std::vector<uint8_t> open_buf_;
  ReplayTable replay_;
  GenSealer sealer_;
  uint64_t open_drops_ = 0;
};

// The engine on a transport, driven as node/node.cc's Runtime drives it (minus its timers).
class EngineServer final : public Server, public PacketSink {
 public:
  EngineServer(io::IoKind kind, size_t max_packet_bytes, size_t keys, bool sealed,
               size_t zerocopy_min = 0)
      : t_(MustOpen(TransportOpts(kind, max_packet_bytes + 1024, zerocopy_min))),
        engine_(Config(max_packet_bytes, t_->local_endpoint(), sealed), this, nullptr) {
    const TimeUs now = io::MonotonicNowUs();
    for (size_t i = 0; i < keys; ++i) {
      char key[32], value[64];
      std::snprintf(key, sizeof(key), "key-%011zu", i);
      std::memset(value, 'a' + static_cast<int>(i % 26), sizeof(value));
      if (!engine_.Set(key, std::string_view(value, sizeof(value)), now).ok()) Die("engine Set");
    }
  }
  uint16_t port() const override { return t_->local_endpoint().port; }
  void Run(const std::atomic<bool>& stop, ServerCounters& c) override {
    while (!stop.load(std::memory_order_relaxed)) {
      absl::Status s = t_->Poll(kServerPollUs, [&](const io::RxDatagram& d) {
        engine_.OnPacket(io::MonotonicNowUs(), d.from, d.data);
      });
      if (!s.ok()) Die(std::string(s.message()));
      if (absl::Status f = t_->Flush(); !f.ok()) Die(std::string(f.message()));
      CountTransportDrops(*t_, c);
      // Datagrams the engine refused before decoding (bad tag, replayed, ...) count too.
      uint64_t refused = 0;
      for (uint64_t x : engine_.stats().security.drops) refused += x;
      c.drops.fetch_add(refused, std::memory_order_relaxed);
    }
  }
  std::span<uint8_t> Acquire(size_t min_bytes) override { return t_->AcquireTx(min_bytes); }
  void Commit(const Endpoint& to, std::span<const uint8_t> packet) override { t_->CommitTx(to, packet); }
  void Abort() override { t_->AbortTx(); }

  // The reply guard (engine/reply_guard.h) stays on, as in scuttled: the replayed Syn and
  // Ack echo the server's return-routability cookie (RecordHandshake), so every SynAck
  // takes the verified-peer path. Sealed: keyed like the generator, verify in and out.
  static EngineConfig Config(size_t max_packet_bytes, const Endpoint& self, bool sealed) {
    EngineConfig c;
    c.cluster_id = "bench-load";
    c.node_name = "load-server";
    c.generation = 1;
    c.advertise = self;
    c.max_packet_bytes = max_packet_bytes;
    c.rng_seed = 7;
    if (sealed) c.security.keyring = BenchKeyring();
    return c;
  }

 private:
  std::unique_ptr<io::Transport> t_;
  Engine engine_;
};

}  // namespace

// "*_zc" engine servers send datagrams of at least zerocopy_min bytes zero-copy.
std::unique_ptr<Server> MakeServer(const RunSpec& s, size_t zerocopy_min) {
  if (s.server == "raw_mmsg") return std::make_unique<RawMmsgServer>(s.reply, false);
  if (s.server == "raw_uring") return std::make_unique<RawUringServer>(s.reply, false);
  if (s.server == "raw_mmsg_copy") return std::make_unique<RawMmsgServer>(s.reply, true);
  if (s.server == "raw_uring_copy") return std::make_unique<RawUringServer>(s.reply, true);
  const bool sealed = IsSealed(s.server);
  // AF_XDP (bench/xdp_veth): native or generic XDP on the veth end holding server_ip.
  if (s.server == "transport_xdp_drv" || s.server == "transport_xdp_skb") {
    return std::make_unique<TransportServer>(io::IoKind::kXdp, s.reply, false,
                                             s.server.ends_with("drv") ? io::XdpMode::kDrv : io::XdpMode::kSkb);
  }
  const io::IoKind k = s.server.find("uring") != std::string::npos ? io::IoKind::kUring : io::IoKind::kEpoll;
  if (s.server.rfind("transport_", 0) == 0) return std::make_unique<TransportServer>(k, s.reply, sealed);
  const bool zc = s.server.ends_with("_zc");
  return std::make_unique<EngineServer>(k, s.profile->max_packet_bytes, s.profile->keys, sealed,
                                        zc ? zerocopy_min : 0);
}

}  // namespace scuttle::bench
