// scuttle_load: the packet-rate suite (DESIGN §12, issue #7).
//
// One server thread answers a closed-loop load generator thread over loopback UDP. Every
// engine figure is read as a ratio to a raw server doing the same datagram exchange on the
// same machine in the same run, with the same generator:
//
//   kind "echo"       request of S bytes -> reply of S bytes, S in {64, 1400, 65507}
//     raw_mmsg          blocking recvmmsg(MSG_WAITFORONE) + sendmmsg from a fixed buffer
//     raw_uring         io_uring: multishot recvmsg + provided-buffer ring + sendmsg SQEs,
//                       one io_uring_enter per iteration (submit sends + wait)
//     transport_uring   io::Transport (io_uring): Poll -> AcquireTx/CommitTx -> Flush
//     transport_epoll   io::Transport (epoll + recvmmsg/sendmmsg)
//     transport_*_sealed  the same, keyed: the generator seals every request with a fresh
//                       counter, the server opens it (replay-checked) and seals its reply
//                       in place in the send slot; same wire sizes as the plaintext rows
//   kind "handshake"  Syn -> SynAck -> Ack: the generator replays a recorded Syn (from a
//                     real client Engine) and, for every SynAck, the recorded Ack. Both echo
//                     the server's return-routability cookie, so the reply guard stays on.
//     engine_uring      Engine::OnPacket on io::Transport (io_uring), the loop io/node.cc runs
//     engine_epoll      the same on the epoll transport
//     engine_*_sealed   the same with a keyring on both sides (wire/seal.h): the generator
//                       seals each Syn and Ack afresh (new counter, in place in its send
//                       slot), so the server's replay window accepts every one
//     raw_mmsg/raw_uring  the same sizes (Syn, SynAck, Ack bytes) with synthetic content
//     raw_mmsg_copy/raw_uring_copy  the same, but every reply is first copied from a
//                       256 KiB source into one of kServerBatch rotating send buffers, as
//                       any real server must produce its reply bytes (the plain raw loops
//                       send one constant, cache-hot buffer: the physical limit, not a
//                       like-for-like server)
//   Handshake profiles size the server state so the SynAck is small / ~1,400 / ~65,507 B:
//     small: the server has no keys -> a digest-only SynAck (~100-200 B; 64 B cannot hold
//            a digest, so the 64 B point is covered by the echo rows);
//     1400:  2,000 keys x 64 B values, max_packet_bytes = 1400, client knows nothing;
//     65507: the same state, max_packet_bytes = 65507.
//   The replayed Syn says "I know nothing", so every SynAck plans and encodes a full delta.
//
// Cores: "one" pins the generator and the server to the same CPU, "two" to different ones.
// Repetitions are interleaved (rep-major), so drift on a shared machine hits every server.
// Allocations: global operator new is replaced by a counting one (bench/alloc_counter.h);
// the generator allocates nothing once running, so the delta over the measured window is
// the server's, reported per server packet (rx + tx).
//
// Output: JSON (--out=FILE, default stdout) with one row per run; bench/run summarizes.
#define SCUTTLE_BENCH_COUNT_ALLOCS
#include "bench/alloc_counter.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/replay.h"
#include "io/clock.h"
#include "io/transport.h"
#include "nlohmann/json.hpp"
#include "wire/packet.h"
#include "wire/seal.h"

namespace scuttle::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint8_t kReqTag = 0xA1;
constexpr uint8_t kAckTag = 0xA2;
constexpr uint8_t kReplyTag = 0xA3;
constexpr size_t kMaxDatagram = 65507;
constexpr size_t kBufBytes = 65536;
constexpr size_t kSockBuf = 4 << 20;
constexpr int kServerPollUs = 100'000;
constexpr uint32_t kServerBatch = 256;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "scuttle_load: %s (%s)\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

void PinSelf(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int r = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); r != 0) {
    errno = r;
    Die("pthread_setaffinity_np cpu " + std::to_string(cpu));
  }
}

void SetBuf(int fd, int opt, int force_opt, size_t bytes) {
  const int v = static_cast<int>(bytes);
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof(v)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
  }
}

// A UDP socket bound to 127.0.0.1:0.
int OpenUdp(size_t bufbytes) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  SetBuf(fd, SO_RCVBUF, SO_RCVBUFFORCE, bufbytes);
  SetBuf(fd, SO_SNDBUF, SO_SNDBUFFORCE, bufbytes);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) Die("bind");
  return fd;
}

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) Die("getsockname");
  return ntohs(a.sin_port);
}

// Uninitialized (lazily mapped) memory: big receive arrays touch only what they use.
struct Mapped {
  explicit Mapped(size_t n) : size(n) {
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) Die("mmap");
    data = static_cast<uint8_t*>(p);
  }
  ~Mapped() { ::munmap(data, size); }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;
  uint8_t* data;
  size_t size;
};

// The key every sealed server and the generator share (fixed: runs are reproducible).
const wire::Keyring& BenchKeyring() {
  static const wire::Keyring ring = [] {
    wire::KeyBytes key;
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(0x40 + i * 7);
    wire::Keyring r;
    if (!r.Install(key).ok()) Die("keyring install");
    return r;
  }();
  return ring;
}

// Seals the generator's datagrams as a keyed peer does: one sender id for the whole
// generator, a counter that rises by one per datagram (the server's replay window drops a
// repeated one as `replayed`).
struct GenSealer {
  const wire::Key* key = nullptr;
  wire::Cipher cipher = wire::Cipher::kAes256Gcm;
  uint64_t sender_id = 0x6c6f61642d67656eULL;  // "load-gen"
  uint64_t counter = 1;
  // Copies the plaintext datagram into `slot` and seals it there, in place; returns the
  // sealed length. REQUIRES: slot has plain.size() + kSealTrailerBytes bytes.
  size_t SealInto(std::span<const uint8_t> plain, uint8_t* slot) {
    std::memcpy(slot, plain.data(), plain.size());
    return wire::Seal(std::span<uint8_t>(slot, plain.size() + wire::kSealTrailerBytes),
                      plain.size(), wire::SealParams{key, cipher, sender_id, counter++})
        .size();
  }
};

// A plaintext datagram header for `len` bytes (header included): what wire::Seal needs.
void WriteHeader(uint8_t* d, size_t len) {
  wire::PacketHeader h{};
  h.magic = wire::kMagic;
  h.version = wire::kProtocolVersion;
  h.payload_bytes = static_cast<uint32_t>(len - wire::kHeaderBytes);
  std::memcpy(d, &h, sizeof(h));
}

int64_t ThreadCpuNs(std::thread& t) {
  clockid_t id;
  if (pthread_getcpuclockid(t.native_handle(), &id) != 0) return 0;
  timespec ts;
  if (clock_gettime(id, &ts) != 0) return 0;
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// ---- Servers ----------------------------------------------------------------------------

struct ServerCounters {
  std::atomic<uint64_t> drops{0};
};

class Server {
 public:
  virtual ~Server() = default;
  virtual uint16_t port() const = 0;
  virtual void Run(const std::atomic<bool>& stop, ServerCounters& c) = 0;
};

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
      : fd_(OpenUdp(kSockBuf)), reply_(reply_bytes, kReplyTag), rx_bufs_(kServerBatch * kBufBytes) {
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
      : fd_(OpenUdp(kSockBuf)),
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

io::TransportOptions TransportOpts(io::IoKind kind, size_t tx_slot_bytes, size_t zerocopy_min = 0) {
  io::TransportOptions o;
  o.zerocopy_min_bytes = zerocopy_min;
  o.kind = kind;
  o.bind = Endpoint::V4(INADDR_LOOPBACK, 0);
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
  uint64_t d = 0;
  for (uint64_t x : t.stats().drops) d += x;
  c.drops.store(d, std::memory_order_relaxed);
}

// The Transport API doing the raw servers' job: a request gets a reply slot, stamped, sent.
// Sealed: each request is opened (wire::Open into one reused buffer) and replay-checked,
// and each reply is sealed in place in its send slot, as the engine does; the datagrams
// on the wire keep the plaintext rows' sizes (the payload gives the trailer its 40 B).
class TransportServer final : public Server {
 public:
  TransportServer(io::IoKind kind, size_t reply_bytes, bool sealed)
      : t_(MustOpen(TransportOpts(kind, 0))),
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

// The engine on a transport, driven as io/node.cc's Runtime drives it (minus its timers).
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

// ---- Exchanges and the generator --------------------------------------------------------

struct Exchange {
  // Plaintext datagrams; `sealed`: the generator seals each copy it sends (GenSealer).
  std::vector<uint8_t> request;
  std::vector<uint8_t> ack;  // empty: none
  size_t reply_bytes = 0;    // as received (sealed: with the trailer)
  bool sealed = false;
  size_t WireBytes(const std::vector<uint8_t>& d) const {
    return d.empty() ? 0 : d.size() + (sealed ? wire::kSealTrailerBytes : 0);
  }
};

class CaptureSink final : public PacketSink {
 public:
  std::span<uint8_t> Acquire(size_t min_bytes) override {
    buf_.resize(std::max(min_bytes, kMaxDatagram + 1024));
    return buf_;
  }
  void Commit(const Endpoint& /*to*/, std::span<const uint8_t> packet) override {
    out.emplace_back(packet.begin(), packet.end());
  }
  void Abort() override {}
  std::vector<std::vector<uint8_t>> out;

 private:
  std::vector<uint8_t> buf_;
};

// Live handshakes from a fresh client Engine: returns the Syn it sent, the size of the
// SynAck it got, and the Ack it answered with, from its second handshake. The first one
// teaches it the server's return-routability cookie (that SynAck, to a still unverified
// source, is capped at 3x the Syn: engine/reply_guard.h); the second Syn and its Ack echo
// the cookie, so the server answers replays of them as it answers a verified peer. The
// client learns at most the capped first SynAck, so the Syn still asks for (nearly)
// everything. `sealed`: the client is keyed, and the recorded datagrams are opened back
// to plaintext for the generator to re-seal with its own counter. `gen_fd` is connected
// to the server.
Exchange RecordHandshake(int gen_fd, uint16_t server_port, bool sealed) {
  const Endpoint server = Endpoint::V4(INADDR_LOOPBACK, server_port);
  CaptureSink sink;
  EngineConfig c;
  c.cluster_id = "bench-load";
  c.node_name = "load-client";
  c.generation = 1;
  c.advertise = Endpoint::V4(INADDR_LOOPBACK, PortOf(gen_fd));
  c.rng_seed = 11;
  if (sealed) c.security.keyring = BenchKeyring();
  // The classic three-message handshake (a Syn with the full digest, a SynAck carrying the
  // delta): with compact digests the Syn is a summary and the delta comes in a fourth
  // message, which this closed loop (one reply per request) does not model.
  if constexpr (requires { c.digest_summaries; }) c.digest_summaries = false;
  Engine client(c, &sink, nullptr);
  Exchange ex;
  std::vector<uint8_t> buf(kBufBytes);
  for (int round = 0; round < 2; ++round) {
    sink.out.clear();
    client.SendSyn(server);
    if (sink.out.size() != 1) Die("client did not produce one Syn");
    ex.request = sink.out[0];
    sink.out.clear();
    if (::send(gen_fd, ex.request.data(), ex.request.size(), 0) < 0) Die("send Syn");
    pollfd pfd{gen_fd, POLLIN, 0};
    if (::poll(&pfd, 1, 2000) != 1) Die("no SynAck within 2 s");
    const ssize_t n = ::recv(gen_fd, buf.data(), buf.size(), 0);
    if (n <= 0) Die("recv SynAck");
    ex.reply_bytes = static_cast<size_t>(n);
    client.OnPacket(io::MonotonicNowUs(), server, std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    if (sink.out.size() != 1) Die("client did not answer the SynAck with one Ack");
    ex.ack = sink.out[0];
    if (::send(gen_fd, ex.ack.data(), ex.ack.size(), 0) < 0) Die("send Ack");
  }
  if (sealed) {
    ex.sealed = true;
    for (std::vector<uint8_t>* d : {&ex.request, &ex.ack}) {
      std::vector<uint8_t> plain(d->size());
      wire::Opened opened;
      wire::OpenError err;
      if (!wire::Open(*d, BenchKeyring(), plain, &opened, &err)) Die("open a recorded datagram");
      d->assign(opened.datagram.begin(), opened.datagram.end());
    }
  }
  return ex;
}

// `sealed`: request and ack become valid plaintext datagrams (header + tagged payload)
// whose sealed form has the given sizes.
Exchange Synthetic(size_t request, size_t reply, size_t ack, bool sealed) {
  if (sealed) {  // echo only (no ack)
    Exchange ex;
    ex.request.assign(request - wire::kSealTrailerBytes, 0x5a);
    WriteHeader(ex.request.data(), ex.request.size());
    ex.request[wire::kHeaderBytes] = kReqTag;
    ex.reply_bytes = reply;
    ex.sealed = true;
    return ex;
  }
  Exchange ex;
  ex.request.assign(std::max<size_t>(request, 1), 0x5a);
  ex.request[0] = kReqTag;
  if (ack > 0) {
    ex.ack.assign(ack, 0x5a);
    ex.ack[0] = kAckTag;
  }
  ex.reply_bytes = reply;
  return ex;
}

struct GenCounters {
  std::atomic<uint64_t> replies{0};
  std::atomic<uint64_t> stalls{0};
  size_t reply_min = SIZE_MAX;
  size_t reply_max = 0;
};

// Closed loop: `window` requests in flight; each reply is answered with the Ack (if any)
// and a new request, sent with one sendmmsg per received batch. 50 ms without a reply
// counts a stall and refills the window (datagrams lost to a full socket buffer).
void Generate(int fd, const Exchange& ex, uint32_t window, const std::atomic<bool>& stop, GenCounters& c) {
  Mapped rx_bufs(size_t{window} * kBufBytes);
  std::vector<mmsghdr> rx(window), tx(2 * size_t{window});
  std::vector<iovec> rx_iov(window);
  iovec req_iov{const_cast<uint8_t*>(ex.request.data()), ex.request.size()};
  iovec ack_iov{const_cast<uint8_t*>(ex.ack.data()), ex.ack.size()};
  for (uint32_t i = 0; i < window; ++i) {
    rx_iov[i] = {rx_bufs.data + size_t{i} * kBufBytes, kBufBytes};
    rx[i].msg_hdr = {};
    rx[i].msg_hdr.msg_iov = &rx_iov[i];
    rx[i].msg_hdr.msg_iovlen = 1;
  }
  for (auto& m : tx) {
    m.msg_hdr = {};
    m.msg_hdr.msg_iovlen = 1;
  }
  // Sealed: every datagram sent gets its own slot (sendmmsg copies, so slots are free
  // again after each batch), is copied there and sealed in place with the next counter.
  GenSealer sealer;
  sealer.key = &BenchKeyring().primary();
  sealer.cipher = wire::ResolveCipher(wire::Cipher::kAuto);
  const size_t slot_bytes =
      (std::max(ex.request.size(), ex.ack.size()) + wire::kSealTrailerBytes + 63) & ~size_t{63};
  Mapped tx_bufs(ex.sealed ? tx.size() * slot_bytes : 4096);
  std::vector<iovec> tx_iov(tx.size());
  auto put = [&](uint32_t k, const std::vector<uint8_t>& plain, iovec* shared) {
    if (!ex.sealed) {
      tx[k].msg_hdr.msg_iov = shared;
      return;
    }
    uint8_t* slot = tx_bufs.data + k * slot_bytes;
    tx_iov[k] = {slot, sealer.SealInto(plain, slot)};
    tx[k].msg_hdr.msg_iov = &tx_iov[k];
  };
  auto send_all = [&](uint32_t count) {
    uint32_t sent = 0;
    while (sent < count) {
      const int r = ::sendmmsg(fd, tx.data() + sent, count - sent, 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == ECONNREFUSED) return;  // server gone (shutdown)
        Die("generator sendmmsg");
      }
      sent += static_cast<uint32_t>(r);
    }
  };
  auto refill = [&] {
    for (uint32_t i = 0; i < window; ++i) put(i, ex.request, &req_iov);
    send_all(window);
  };
  refill();
  uint64_t replies = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const int n = ::recvmmsg(fd, rx.data(), window, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED) Die("generator recvmmsg");
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, 50) == 0 && !stop.load(std::memory_order_relaxed)) {
        c.stalls.fetch_add(1, std::memory_order_relaxed);
        refill();
      }
      continue;
    }
    uint32_t q = 0;
    for (int i = 0; i < n; ++i) {
      const size_t len = rx[i].msg_len;
      c.reply_min = std::min(c.reply_min, len);
      c.reply_max = std::max(c.reply_max, len);
      if (!ex.ack.empty()) put(q++, ex.ack, &ack_iov);
      put(q++, ex.request, &req_iov);
    }
    replies += static_cast<uint64_t>(n);
    c.replies.store(replies, std::memory_order_relaxed);
    send_all(q);
  }
}

// ---- Runs ---------------------------------------------------------------------------------

struct Profile {
  std::string label;
  size_t max_packet_bytes;
  size_t keys;
};
const Profile kProfiles[] = {{"small", 65507, 0}, {"1400", 1650, 2000}, {"65507", 65507, 2000}};

struct RunSpec {
  std::string kind;    // echo | handshake
  std::string server;  // raw_mmsg | raw_uring | transport_* | engine_*
  std::string size_label;
  const Profile* profile = nullptr;  // handshake
  size_t request = 0, reply = 0, ack = 0;
  int cores = 1;
  int rep = 0;
};

struct Options {
  double warmup_s = 0.3;
  double duration_s = 1.0;
  int reps = 3;
  int window_small = 64;
  int window_large = 16;
  int cpu_a = 0, cpu_b = 1;
  std::string out;
  std::string only_server;  // substring filter
  std::string only_size;    // exact size label filter
  std::string only_kind;    // echo | handshake
  size_t zerocopy_min = 0;  // > 0: also engine_{uring,epoll}_zc rows with this threshold
};

// "*_sealed" servers are keyed (BenchKeyring) and the generator seals what it sends them.
bool IsSealed(const std::string& server) {
  return server.size() > 7 && server.compare(server.size() - 7, 7, "_sealed") == 0;
}

// "*_zc" engine servers send datagrams of at least zerocopy_min bytes zero-copy.
std::unique_ptr<Server> MakeServer(const RunSpec& s, size_t zerocopy_min = 0) {
  if (s.server == "raw_mmsg") return std::make_unique<RawMmsgServer>(s.reply, false);
  if (s.server == "raw_uring") return std::make_unique<RawUringServer>(s.reply, false);
  if (s.server == "raw_mmsg_copy") return std::make_unique<RawMmsgServer>(s.reply, true);
  if (s.server == "raw_uring_copy") return std::make_unique<RawUringServer>(s.reply, true);
  const bool sealed = IsSealed(s.server);
  const io::IoKind k = s.server.find("uring") != std::string::npos ? io::IoKind::kUring : io::IoKind::kEpoll;
  if (s.server.rfind("transport_", 0) == 0) return std::make_unique<TransportServer>(k, s.reply, sealed);
  const bool zc = s.server.ends_with("_zc");
  return std::make_unique<EngineServer>(k, s.profile->max_packet_bytes, s.profile->keys, sealed,
                                        zc ? zerocopy_min : 0);
}

nlohmann::json RunOne(const RunSpec& spec, const Options& o) {
  const int server_cpu = o.cpu_b;
  const int gen_cpu = spec.cores == 1 ? o.cpu_b : o.cpu_a;
  std::atomic<bool> stop_server{false}, stop_gen{false};
  ServerCounters sc;
  std::promise<uint16_t> ready;
  auto ready_f = ready.get_future();
  std::thread server_thread([&] {
    PinSelf(server_cpu);
    std::unique_ptr<Server> server = MakeServer(spec, o.zerocopy_min);
    ready.set_value(server->port());
    server->Run(stop_server, sc);
  });
  const uint16_t port = ready_f.get();
  const int gen_fd = OpenUdp(2 * kSockBuf);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  if (::connect(gen_fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) Die("connect");

  const bool sealed = IsSealed(spec.server);
  Exchange ex = spec.server.rfind("engine_", 0) == 0 ? RecordHandshake(gen_fd, port, sealed)
                                                     : Synthetic(spec.request, spec.reply, spec.ack, sealed);
  const uint32_t window = static_cast<uint32_t>(ex.reply_bytes > 8192 ? o.window_large : o.window_small);
  GenCounters gc;
  std::thread gen_thread([&] {
    PinSelf(gen_cpu);
    Generate(gen_fd, ex, window, stop_gen, gc);
  });

  auto sleep_s = [](double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); };
  sleep_s(o.warmup_s);
  const auto t0 = Clock::now();
  const uint64_t r0 = gc.replies.load();
  const uint64_t a0 = AllocCount(), b0 = AllocBytes();
  const uint64_t st0 = gc.stalls.load();
  const int64_t scpu0 = ThreadCpuNs(server_thread), gcpu0 = ThreadCpuNs(gen_thread);
  sleep_s(o.duration_s);
  const int64_t scpu1 = ThreadCpuNs(server_thread), gcpu1 = ThreadCpuNs(gen_thread);
  const uint64_t a1 = AllocCount(), b1 = AllocBytes();
  const uint64_t r1 = gc.replies.load();
  const uint64_t st1 = gc.stalls.load();
  const auto t1 = Clock::now();
  stop_gen = true;
  gen_thread.join();
  stop_server = true;
  server_thread.join();
  ::close(gen_fd);

  const double dt = std::chrono::duration<double>(t1 - t0).count();
  const double exchanges = static_cast<double>(r1 - r0);
  // Server packets per exchange: request in, reply out, ack in.
  const double per_ex = ex.ack.empty() ? 2.0 : 3.0;
  nlohmann::json j;
  j["kind"] = spec.kind;
  j["server"] = spec.server;
  j["size"] = spec.size_label;
  j["cores"] = spec.cores;
  j["rep"] = spec.rep;
  j["sealed"] = sealed;
  j["request_bytes"] = ex.WireBytes(ex.request);
  j["reply_bytes"] = ex.reply_bytes;
  j["ack_bytes"] = ex.WireBytes(ex.ack);
  j["window"] = window;
  j["seconds"] = dt;
  j["exchanges_per_s"] = exchanges / dt;
  j["packets_per_s"] = exchanges * per_ex / dt;
  j["reply_gbit_per_s"] = exchanges * static_cast<double>(ex.reply_bytes) * 8 / dt / 1e9;
  j["server_cpu_us_per_exchange"] = exchanges > 0 ? static_cast<double>(scpu1 - scpu0) / 1e3 / exchanges : 0;
  j["gen_cpu_us_per_exchange"] = exchanges > 0 ? static_cast<double>(gcpu1 - gcpu0) / 1e3 / exchanges : 0;
  j["server_cpu_util"] = static_cast<double>(scpu1 - scpu0) / 1e9 / dt;
  j["allocs_per_packet"] = exchanges > 0 ? static_cast<double>(a1 - a0) / (exchanges * per_ex) : 0;
  j["alloc_bytes_per_packet"] = exchanges > 0 ? static_cast<double>(b1 - b0) / (exchanges * per_ex) : 0;
  j["allocs_in_window"] = a1 - a0;
  j["stalls"] = st1 - st0;
  j["server_drops"] = sc.drops.load();
  j["reply_min"] = gc.reply_min == SIZE_MAX ? 0 : gc.reply_min;
  j["reply_max"] = gc.reply_max;
  return j;
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* name) -> const char* {
      const size_t n = std::strlen(name);
      return a.compare(0, n, name) == 0 ? a.c_str() + n : nullptr;
    };
    if (a == "--quick") {
      o.warmup_s = 0.05;
      o.duration_s = 0.1;
      o.reps = 1;
    } else if (const char* v = val("--warmup=")) {
      o.warmup_s = std::atof(v);
    } else if (const char* v = val("--duration=")) {
      o.duration_s = std::atof(v);
    } else if (const char* v = val("--reps=")) {
      o.reps = std::atoi(v);
    } else if (const char* v = val("--out=")) {
      o.out = v;
    } else if (const char* v = val("--server=")) {
      o.only_server = v;
    } else if (const char* v = val("--size=")) {
      o.only_size = v;
    } else if (const char* v = val("--kind=")) {
      o.only_kind = v;
    } else if (const char* v = val("--window_small=")) {
      o.window_small = std::atoi(v);
    } else if (const char* v = val("--window_large=")) {
      o.window_large = std::atoi(v);
    } else if (const char* v = val("--zerocopy_min_bytes=")) {
      o.zerocopy_min = static_cast<size_t>(std::atoll(v));
    } else {
      std::fprintf(stderr,
                   "usage: scuttle_load [--quick] [--warmup=S] [--duration=S] [--reps=N] "
                   "[--out=FILE] [--server=SUBSTR] [--size=LABEL] [--kind=echo|handshake] "
                   "[--window_small=N] [--window_large=N] [--zerocopy_min_bytes=N]\n");
      return 2;
    }
  }
  cpu_set_t avail;
  CPU_ZERO(&avail);
  sched_getaffinity(0, sizeof(avail), &avail);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &avail)) cpus.push_back(c);
  std::vector<int> core_counts = {1};
  if (cpus.size() >= 2) {
    o.cpu_a = cpus[0];
    o.cpu_b = cpus[1];
    core_counts.push_back(2);
  } else {
    o.cpu_a = o.cpu_b = cpus.at(0);
  }

  // Calibration: each handshake profile's Syn/SynAck/Ack sizes, for the raw servers.
  struct Sizes {
    size_t syn, synack, ack;
  };
  std::vector<Sizes> sizes;
  for (const Profile& p : kProfiles) {
    RunSpec s;
    s.server = "engine_epoll";
    s.profile = &p;
    std::atomic<bool> stop{false};
    ServerCounters sc;
    std::unique_ptr<Server> server = MakeServer(s);
    std::thread t([&] { server->Run(stop, sc); });
    const int fd = OpenUdp(kSockBuf);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(server->port());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) Die("connect");
    Exchange ex = RecordHandshake(fd, server->port(), false);
    sizes.push_back({ex.request.size(), ex.reply_bytes, ex.ack.size()});
    stop = true;
    t.join();
    ::close(fd);
    std::fprintf(stderr, "scuttle_load: profile %s: Syn %zu B, SynAck %zu B, Ack %zu B\n",
                 p.label.c_str(), ex.request.size(), ex.reply_bytes, ex.ack.size());
  }

  std::vector<RunSpec> specs;
  for (int rep = 0; rep < o.reps; ++rep) {
    for (int cores : core_counts) {
      for (size_t sz : {size_t{64}, size_t{1400}, kMaxDatagram}) {
        for (const char* srv : {"raw_mmsg", "raw_uring", "transport_uring", "transport_epoll",
                                "transport_uring_sealed", "transport_epoll_sealed"}) {
          RunSpec s;
          s.kind = "echo";
          s.server = srv;
          s.size_label = std::to_string(sz);
          s.request = s.reply = sz;
          s.cores = cores;
          s.rep = rep;
          specs.push_back(s);
        }
      }
      for (size_t pi = 0; pi < std::size(kProfiles); ++pi) {
        for (const char* srv : {"raw_mmsg", "raw_uring", "raw_mmsg_copy", "raw_uring_copy",
                                "engine_uring", "engine_epoll", "engine_uring_sealed",
                                "engine_epoll_sealed", "engine_uring_zc", "engine_epoll_zc"}) {
          if (o.zerocopy_min == 0 && std::string_view(srv).ends_with("_zc")) continue;
          RunSpec s;
          s.kind = "handshake";
          s.server = srv;
          s.size_label = kProfiles[pi].label;
          s.profile = &kProfiles[pi];
          s.request = sizes[pi].syn;
          s.reply = sizes[pi].synack;
          s.ack = sizes[pi].ack;
          s.cores = cores;
          s.rep = rep;
          specs.push_back(s);
        }
      }
    }
  }
  nlohmann::json runs = nlohmann::json::array();
  for (const RunSpec& s : specs) {
    if (!o.only_server.empty() && s.server.find(o.only_server) == std::string::npos &&
        s.server.rfind("raw_", 0) != 0) {
      continue;
    }
    if ((!o.only_size.empty() && s.size_label != o.only_size) ||
        (!o.only_kind.empty() && s.kind != o.only_kind)) {
      continue;
    }
    nlohmann::json j = RunOne(s, o);
    std::fprintf(stderr, "%-9s %-16s %-6s cores=%d rep=%d  %10.0f exch/s  %7.2f us/exch(server cpu)  allocs/pkt=%.4f stalls=%llu\n",
                 s.kind.c_str(), s.server.c_str(), s.size_label.c_str(), s.cores, s.rep,
                 j["exchanges_per_s"].get<double>(), j["server_cpu_us_per_exchange"].get<double>(),
                 j["allocs_per_packet"].get<double>(),
                 static_cast<unsigned long long>(j["stalls"].get<uint64_t>()));
    runs.push_back(std::move(j));
  }
  nlohmann::json doc;
  doc["suite"] = "packet_rate";
  doc["config"] = {{"warmup_s", o.warmup_s}, {"duration_s", o.duration_s}, {"reps", o.reps},
                   {"window_small", o.window_small}, {"window_large", o.window_large},
                   {"cpus", cpus}, {"server_batch", kServerBatch}};
  doc["runs"] = std::move(runs);
  const std::string text = doc.dump(1);
  if (o.out.empty()) {
    std::cout << text << "\n";
  } else {
    std::ofstream f(o.out);
    f << text << "\n";
    if (!f) Die("write " + o.out);
  }
  return 0;
}

}  // namespace
}  // namespace scuttle::bench

int main(int argc, char** argv) { return scuttle::bench::Main(argc, argv); }
