// scuttle_gso: real-MTU batching figures (issue #17 item 3, DESIGN §9).
//
// An "exchange" is one 16-byte request answered with 63,000 bytes of reply, shaped as
//   one      one 63,000 B datagram (IP-fragmented as ~43 fragments on a 1,500 B MTU link)
//   mtu      45 datagrams of 1,400 B (each fits a 1,500 B MTU: no fragments)
// Servers, one per row, all measured in the same run with interleaved repetitions:
//   raw_mmsg_one        blocking recvmmsg + sendmmsg of one 63,000 B datagram: THE BASELINE
//   raw_mmsg_mtu        the same loop sending 45 x 1,400 B with one sendmmsg
//   raw_gso_mtu         the same loop sending 45 x 1,400 B with one sendmsg + UDP_SEGMENT
//   {uring,epoll}_one   io::Transport: AcquireTx/CommitTx one 63,000 B datagram, Flush
//   {uring,epoll}_mtu   io::Transport: 45 x 1,400 B commits, Flush (GSO on: one send)
//   {uring,epoll}_mtu_nogso  the same with TransportOptions::udp_gso = false
// The client (one thread, a plain socket with UDP_GRO on, so GSO replies may arrive
// coalesced as on any GRO-enabled receiver) sends a request and counts reply bytes until
// all 63,000 arrived or 50 ms passed (a lost exchange), then sends the next.
// Reported per row: exchanges/s, server and client CPU ns per exchange (thread CPU
// clocks), delivered fraction; and exchanges/s and server CPU as ratios to raw_mmsg_one of
// the same repetition. Cores: "one" pins both threads to CPU 0, "two" to CPUs 0 and 1.
//
// Across a real link (bench/gso_veth): `scuttle_gso serve --listen=IP:PORT` in one network
// namespace, `scuttle_gso client --to=IP:PORT --shape=one|mtu --exchanges=N` in another.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/json_out.h"
#include "io/clock.h"
#include "io/transport.h"
#include "nlohmann/json.hpp"
#include "sim/flags.h"
#include "wire/absl_compat.h"

// Loopback (no command): every row on this machine.
ABSL_FLAG(bool, quick, false, "CI size: --reps=1 --duration_ms=50 (each unless given)");
ABSL_FLAG(int32_t, reps, 5, "repetitions, interleaved, 1..100");
ABSL_FLAG(int32_t, duration_ms, 400, "measured time per row, 1..600000");
ABSL_FLAG(std::string, out, "", "write the JSON here (default: stdout)");
// serve
ABSL_FLAG(std::string, listen, "0.0.0.0:7417", "serve: address to serve on");
ABSL_FLAG(std::string, io, "uring", "serve: transport, uring | epoll");
// client
ABSL_FLAG(std::string, to, "", "client: the server's IP:PORT");
ABSL_FLAG(std::string, shape, "mtu", "client: reply shape, one | mtu");
ABSL_FLAG(uint64_t, exchanges, 1000, "client: exchanges to run, 1..10^9");
ABSL_FLAG(bool, stop, false, "client: stop the server afterwards");

namespace scuttle::bench {
namespace {

constexpr size_t kSeg = 1400;
constexpr size_t kSegs = 45;
constexpr size_t kReplyBytes = kSeg * kSegs;  // 63,000
constexpr size_t kReqBytes = 16;
constexpr uint8_t kShapeOne = 1;
constexpr uint8_t kShapeMtu = 2;
constexpr uint8_t kShapeStop = 3;
constexpr int64_t kLossTimeoutUs = 50'000;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "scuttle_gso: %s (%s)\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

void Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

sockaddr_in ToSin(const Endpoint& ep) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(ep.port);
  std::memcpy(&a.sin_addr, ep.addr.data(), 4);
  return a;
}

int OpenSocket(const Endpoint& bind) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  const int buf = 4 << 20;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  }
  sockaddr_in a = ToSin(bind);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) Die("bind");
  return fd;
}

Endpoint BoundOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  Endpoint ep;
  ep.family = 4;
  ep.port = ntohs(a.sin_port);
  std::memcpy(ep.addr.data(), &a.sin_addr, 4);
  return ep;
}

// ---- Client ------------------------------------------------------------------------------

struct ClientResult {
  uint64_t exchanges = 0;
  uint64_t lost = 0;  // exchanges that did not get all bytes within the timeout
  uint64_t bytes = 0;
  int64_t wall_ns = 0;
  int64_t cpu_ns = 0;
};

// Runs `count` exchanges (or until `stop_after_us`) of `shape` against `to`.
ClientResult RunClient(int fd, const Endpoint& to, uint8_t shape, uint64_t count,
                       int64_t duration_us) {
  const sockaddr_in dst = ToSin(to);
  int one = 1;
  (void)::setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
  constexpr unsigned kBatch = 64;
  static thread_local std::vector<uint8_t> bufs(kBatch * 65536);
  mmsghdr msgs[kBatch];
  iovec iovs[kBatch];
  alignas(cmsghdr) uint8_t ctrl[kBatch][CMSG_SPACE(sizeof(int))];
  ClientResult r;
  const int64_t t0 = io::MonotonicNowUs();
  const int64_t c0 = ThreadCpuNs();
  uint64_t seq = 0;
  while (r.exchanges < count && io::MonotonicNowUs() - t0 < duration_us) {
    ++seq;
    uint8_t req[kReqBytes] = {shape};
    std::memcpy(req + 8, &seq, 8);
    if (::sendto(fd, req, sizeof(req), 0, reinterpret_cast<const sockaddr*>(&dst),
                 sizeof(dst)) < 0) {
      Die("sendto");
    }
    size_t got = 0;
    const int64_t deadline = io::MonotonicNowUs() + kLossTimeoutUs;
    while (got < kReplyBytes) {
      const int64_t left = deadline - io::MonotonicNowUs();
      if (left <= 0) break;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>((left + 999) / 1000)) <= 0) continue;
      for (unsigned i = 0; i < kBatch; ++i) {
        iovs[i] = {bufs.data() + i * 65536, 65536};
        msgs[i].msg_hdr = {};
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_control = ctrl[i];
        msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i]);
      }
      const int n = ::recvmmsg(fd, msgs, kBatch, MSG_DONTWAIT, nullptr);
      for (int i = 0; i < n; ++i) {
        const size_t len = msgs[i].msg_len;
        size_t seg = len;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != nullptr;
             c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
          if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int s = 0;
            std::memcpy(&s, CMSG_DATA(c), sizeof(s));
            if (s > 0) seg = static_cast<size_t>(s);
          }
        }
        for (size_t off = 0; off < len; off += seg) {
          uint64_t s = 0;
          std::memcpy(&s, bufs.data() + i * 65536 + off + 8, 8);
          if (s == seq) got += std::min(seg, len - off);  // late replies do not count
        }
      }
    }
    ++r.exchanges;
    r.bytes += got;
    if (got < kReplyBytes) ++r.lost;
  }
  r.wall_ns = (io::MonotonicNowUs() - t0) * 1000;
  r.cpu_ns = ThreadCpuNs() - c0;
  return r;
}

// ---- Servers -----------------------------------------------------------------------------

struct ServerResult {
  int64_t cpu_ns = 0;
};

// Raw loop: blocking recvmmsg, then per request one sendmmsg (one or 45 datagrams) or
// one sendmsg with UDP_SEGMENT. The reply bytes come from a fixed buffer, stamped with the
// request's sequence number per datagram.
ServerResult RawServer(int fd, bool gso) {
  std::vector<uint8_t> reply(kReplyBytes + 65536);
  constexpr unsigned kBatch = 64;
  uint8_t reqs[kBatch][kReqBytes];
  iovec riov[kBatch];
  mmsghdr rmsg[kBatch];
  sockaddr_in from[kBatch];
  iovec siov[kSegs];
  mmsghdr smsg[kSegs];
  const int64_t c0 = ThreadCpuNs();
  for (;;) {
    for (unsigned i = 0; i < kBatch; ++i) {
      riov[i] = {reqs[i], kReqBytes};
      rmsg[i].msg_hdr = {};
      rmsg[i].msg_hdr.msg_name = &from[i];
      rmsg[i].msg_hdr.msg_namelen = sizeof(from[i]);
      rmsg[i].msg_hdr.msg_iov = &riov[i];
      rmsg[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = ::recvmmsg(fd, rmsg, kBatch, MSG_WAITFORONE, nullptr);
    if (n < 0) Die("recvmmsg");
    for (int i = 0; i < n; ++i) {
      const uint8_t shape = reqs[i][0];
      if (shape == kShapeStop) return {ThreadCpuNs() - c0};
      const size_t segs = shape == kShapeOne ? 1 : kSegs;
      const size_t seg = shape == kShapeOne ? kReplyBytes : kSeg;
      for (size_t k = 0; k < segs; ++k) std::memcpy(&reply[k * seg + 8], &reqs[i][8], 8);
      if (gso && segs > 1) {
        iovec v{reply.data(), kReplyBytes};
        alignas(cmsghdr) uint8_t ctrl[CMSG_SPACE(sizeof(uint16_t))] = {};
        msghdr h{};
        h.msg_name = &from[i];
        h.msg_namelen = sizeof(from[i]);
        h.msg_iov = &v;
        h.msg_iovlen = 1;
        h.msg_control = ctrl;
        h.msg_controllen = sizeof(ctrl);
        cmsghdr* c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        const uint16_t s16 = kSeg;
        std::memcpy(CMSG_DATA(c), &s16, sizeof(s16));
        if (::sendmsg(fd, &h, 0) < 0) Die("sendmsg UDP_SEGMENT");
        continue;
      }
      for (size_t k = 0; k < segs; ++k) {
        siov[k] = {reply.data() + k * seg, seg};
        smsg[k].msg_hdr = {};
        smsg[k].msg_hdr.msg_name = &from[i];
        smsg[k].msg_hdr.msg_namelen = sizeof(from[i]);
        smsg[k].msg_hdr.msg_iov = &siov[k];
        smsg[k].msg_hdr.msg_iovlen = 1;
      }
      if (::sendmmsg(fd, smsg, static_cast<unsigned>(segs), 0) < 0) Die("sendmmsg");
    }
  }
}

// io::Transport server: every reply datagram is a committed send slot (the engine's path).
ServerResult TransportServer(io::Transport& t) {
  const int64_t c0 = ThreadCpuNs();
  bool stop = false;
  struct Req {
    Endpoint from;
    uint8_t shape;
    uint8_t seq[8];
  };
  std::vector<Req> reqs;
  reqs.reserve(1024);
  while (!stop) {
    reqs.clear();
    absl::Status s = t.Poll(100'000, [&](const io::RxDatagram& d) {
      if (d.data.size() < kReqBytes || reqs.size() == reqs.capacity()) return;
      Req r{d.from, d.data[0], {}};
      std::memcpy(r.seq, d.data.data() + 8, 8);
      reqs.push_back(r);
    });
    if (!s.ok()) Die(std::string(s.message()));
    for (const Req& r : reqs) {
      if (r.shape == kShapeStop) {
        stop = true;
        break;
      }
      const size_t segs = r.shape == kShapeOne ? 1 : kSegs;
      const size_t seg = r.shape == kShapeOne ? kReplyBytes : kSeg;
      for (size_t k = 0; k < segs; ++k) {
        std::span<uint8_t> slot = t.AcquireTx(seg);
        if (slot.empty()) break;
        std::memcpy(slot.data() + 8, r.seq, 8);
        t.CommitTx(r.from, seg);
      }
    }
    if (absl::Status f = t.Flush(); !f.ok()) Die(std::string(f.message()));
  }
  return {ThreadCpuNs() - c0};
}

struct Row {
  std::string name;
  std::string server;  // raw_mmsg | raw_gso | uring | epoll
  uint8_t shape;
  bool gso;
};

std::unique_ptr<io::Transport> OpenTransport(const std::string& kind, bool gso,
                                             const Endpoint& bind) {
  io::TransportOptions o;
  o.kind = kind == "uring" ? io::IoKind::kUring : io::IoKind::kEpoll;
  o.bind = bind;
  o.udp_gso = gso;
  o.tx_slot_bytes = kReplyBytes;
  o.tx_slot_count = 256;
  auto t = io::OpenTransport(o);
  if (!t.ok()) {
    std::fprintf(stderr, "scuttle_gso: %s\n", std::string(t.status().message()).c_str());
    return nullptr;
  }
  return std::move(*t);
}

// One row, one repetition: server thread + client thread on loopback.
nlohmann::json RunRow(const Row& row, bool two_cores, int64_t duration_us) {
  const Endpoint lo = *Endpoint::Parse("127.0.0.1:0");
  int raw_fd = -1;
  std::unique_ptr<io::Transport> t;
  Endpoint server_ep;
  if (row.server == "raw_mmsg" || row.server == "raw_gso") {
    raw_fd = OpenSocket(lo);
    server_ep = BoundOf(raw_fd);
  } else {
    t = OpenTransport(row.server, row.gso, lo);
    if (t == nullptr) return nullptr;
    server_ep = t->local_endpoint();
  }
  ServerResult sr;
  std::thread server([&] {
    Pin(0);
    sr = raw_fd >= 0 ? RawServer(raw_fd, row.server == "raw_gso") : TransportServer(*t);
  });
  const int cfd = OpenSocket(lo);
  ClientResult cr;
  std::thread client([&] {
    Pin(two_cores ? 1 : 0);
    cr = RunClient(cfd, server_ep, row.shape, UINT64_MAX, duration_us);
    uint8_t stop[kReqBytes] = {kShapeStop};
    const sockaddr_in dst = ToSin(server_ep);
    ::sendto(cfd, stop, sizeof(stop), 0, reinterpret_cast<const sockaddr*>(&dst), sizeof(dst));
  });
  client.join();
  server.join();
  ::close(cfd);
  if (raw_fd >= 0) ::close(raw_fd);
  nlohmann::json j;
  j["row"] = row.name;
  j["cores"] = two_cores ? 2 : 1;
  j["exchanges"] = cr.exchanges;
  j["lost"] = cr.lost;
  j["exchanges_per_s"] = cr.wall_ns > 0 ? 1e9 * static_cast<double>(cr.exchanges) / cr.wall_ns : 0;
  j["server_cpu_ns_per_exchange"] =
      cr.exchanges > 0 ? static_cast<double>(sr.cpu_ns) / cr.exchanges : 0;
  j["client_cpu_ns_per_exchange"] =
      cr.exchanges > 0 ? static_cast<double>(cr.cpu_ns) / cr.exchanges : 0;
  j["delivered_fraction"] =
      cr.exchanges > 0 ? static_cast<double>(cr.bytes) / (cr.exchanges * kReplyBytes) : 0;
  if (t != nullptr) {
    j["tx_gso_sends"] = t->stats().tx_gso_sends;
    j["tx_packets"] = t->stats().tx_packets;
  }
  return j;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

[[noreturn]] void Bad(absl::Status st) { cli::BadFlag("scuttle_gso", SV(st.message())); }

int Loopback() {
  const bool quick = absl::GetFlag(FLAGS_quick);
  const int reps = cli::QuickOr(quick, FLAGS_reps, 1);
  const int ms = cli::QuickOr(quick, FLAGS_duration_ms, 50);
  if (absl::Status st = cli::InRange("reps", reps, 1, 100); !st.ok()) Bad(st);
  if (absl::Status st = cli::InRange("duration_ms", ms, 1, 600000); !st.ok()) Bad(st);
  const int64_t duration_us = int64_t{ms} * 1000;
  const std::vector<Row> rows = {
      {"raw_mmsg_one", "raw_mmsg", kShapeOne, false},
      {"raw_mmsg_mtu", "raw_mmsg", kShapeMtu, false},
      {"raw_gso_mtu", "raw_gso", kShapeMtu, true},
      {"uring_one", "uring", kShapeOne, true},
      {"uring_mtu", "uring", kShapeMtu, true},
      {"uring_mtu_nogso", "uring", kShapeMtu, false},
      {"epoll_one", "epoll", kShapeOne, true},
      {"epoll_mtu", "epoll", kShapeMtu, true},
      {"epoll_mtu_nogso", "epoll", kShapeMtu, false},
  };
  nlohmann::json runs = nlohmann::json::array();
  for (int rep = 0; rep < reps; ++rep) {
    for (bool two : {false, true}) {
      double base_rate = 0, base_cpu = 0;
      for (const Row& row : rows) {
        nlohmann::json j = RunRow(row, two, duration_us);
        if (j.is_null()) continue;  // io_uring refused here
        j["rep"] = rep;
        if (row.name == "raw_mmsg_one") {
          base_rate = j["exchanges_per_s"];
          base_cpu = j["server_cpu_ns_per_exchange"];
        }
        j["rate_vs_raw_one"] = base_rate > 0 ? j["exchanges_per_s"].get<double>() / base_rate : 0;
        j["server_cpu_vs_raw_one"] =
            base_cpu > 0 ? j["server_cpu_ns_per_exchange"].get<double>() / base_cpu : 0;
        runs.push_back(j);
      }
    }
  }
  // Summary: min/median/max of each ratio per (row, cores).
  std::map<std::pair<std::string, int>, std::vector<nlohmann::json>> by;
  for (const auto& j : runs) by[{j["row"], j["cores"]}].push_back(j);
  nlohmann::json summary = nlohmann::json::array();
  for (const auto& [key, js] : by) {
    nlohmann::json s;
    s["row"] = key.first;
    s["cores"] = key.second;
    for (const char* f : {"exchanges_per_s", "rate_vs_raw_one", "server_cpu_ns_per_exchange",
                          "server_cpu_vs_raw_one", "client_cpu_ns_per_exchange",
                          "delivered_fraction"}) {
      std::vector<double> v;
      for (const auto& j : js) v.push_back(j[f]);
      s[f] = {{"min", *std::min_element(v.begin(), v.end())},
              {"median", Median(v)},
              {"max", *std::max_element(v.begin(), v.end())}};
    }
    summary.push_back(s);
  }
  nlohmann::json out = {{"suite", "gso"}, {"reply_bytes", kReplyBytes}, {"segment_bytes", kSeg},
                        {"reps", reps}, {"runs", runs}, {"summary", summary}};
  if (WriteJson(out, absl::GetFlag(FLAGS_out)) != 0) return 1;
  // Table on stderr for a reader.
  for (const auto& s : summary) {
    std::fprintf(stderr, "%-16s cores=%d  rate/raw_one %.2f (%.2f..%.2f)  server cpu/raw_one %.2f  "
                 "cpu/exchange server %.0f ns client %.0f ns  delivered %.3f\n",
                 s["row"].get<std::string>().c_str(), s["cores"].get<int>(),
                 s["rate_vs_raw_one"]["median"].get<double>(),
                 s["rate_vs_raw_one"]["min"].get<double>(),
                 s["rate_vs_raw_one"]["max"].get<double>(),
                 s["server_cpu_vs_raw_one"]["median"].get<double>(),
                 s["server_cpu_ns_per_exchange"]["median"].get<double>(),
                 s["client_cpu_ns_per_exchange"]["median"].get<double>(),
                 s["delivered_fraction"]["median"].get<double>());
  }
  return 0;
}

// `serve --listen=IP:PORT [--io=uring|epoll]`: a Transport server until a stop request.
int Serve() {
  auto ep = Endpoint::Parse(absl::GetFlag(FLAGS_listen));
  if (!ep.ok()) Bad(absl::InvalidArgumentError("--listen: want IP:PORT"));
  const std::string io = absl::GetFlag(FLAGS_io);
  if (io != "uring" && io != "epoll") Bad(absl::InvalidArgumentError("--io: want uring or epoll"));
  auto t = OpenTransport(io, true, *ep);
  if (t == nullptr) return 1;
  std::fprintf(stderr, "serving on %s (%s, gso=%d)\n", t->local_endpoint().ToString().c_str(),
               t->name(), t->stats().gso);
  TransportServer(*t);
  return 0;
}

// `client --to=IP:PORT --shape=one|mtu --exchanges=N [--stop=1]`: one JSON line.
int Client() {
  auto to = Endpoint::Parse(absl::GetFlag(FLAGS_to));
  if (!to.ok()) Bad(absl::InvalidArgumentError("--to: want IP:PORT"));
  const std::string shape_name = absl::GetFlag(FLAGS_shape);
  if (shape_name != "one" && shape_name != "mtu") {
    Bad(absl::InvalidArgumentError("--shape: want one or mtu"));
  }
  const uint8_t shape = shape_name == "one" ? kShapeOne : kShapeMtu;
  const uint64_t n = absl::GetFlag(FLAGS_exchanges);
  if (absl::Status st = cli::InRange<uint64_t>("exchanges", n, 1, 1000000000); !st.ok()) Bad(st);
  const int fd = OpenSocket(*Endpoint::Parse("0.0.0.0:0"));
  const ClientResult r = RunClient(fd, *to, shape, n, INT64_MAX / 2);
  if (absl::GetFlag(FLAGS_stop)) {
    uint8_t stop[kReqBytes] = {kShapeStop};
    const sockaddr_in dst = ToSin(*to);
    ::sendto(fd, stop, sizeof(stop), 0, reinterpret_cast<const sockaddr*>(&dst), sizeof(dst));
  }
  nlohmann::json j = {{"shape", shape == kShapeOne ? "one" : "mtu"},
                      {"exchanges", r.exchanges},
                      {"lost_exchanges", r.lost},
                      {"delivered_fraction",
                       static_cast<double>(r.bytes) / (static_cast<double>(r.exchanges) * kReplyBytes)},
                      {"exchanges_per_s", 1e9 * static_cast<double>(r.exchanges) / r.wall_ns},
                      {"client_cpu_ns_per_exchange", static_cast<double>(r.cpu_ns) / r.exchanges}};
  std::cout << j.dump() << "\n";
  return 0;
}

}  // namespace
}  // namespace scuttle::bench

// `scuttle_gso [flags]` runs every row on loopback; `scuttle_gso serve|client [flags]` is
// one end of a real link. Each mode takes only its own flags.
int main(int argc, char** argv) {
  using scuttle::bench::Loopback;
  const std::string_view cmd = argc > 1 ? argv[1] : "";
  const bool sub = cmd == "serve" || cmd == "client";
  const std::vector<std::string> flags =
      cmd == "serve"    ? std::vector<std::string>{"listen", "io"}
      : cmd == "client" ? std::vector<std::string>{"to", "shape", "exchanges", "stop"}
                        : std::vector<std::string>{"quick", "reps", "duration_ms", "out"};
  const std::string name = sub ? "scuttle_gso " + std::string(cmd) : "scuttle_gso";
  std::vector<char*> args(argv, argv + argc);
  if (sub) args.erase(args.begin() + 1);
  scuttle::cli::ParseFlagsOrExit(
      static_cast<int>(args.size()), args.data(), name,
      "usage: " + name +
          " [flags]\n  UDP GSO (45 x 1,400 B) vs one 63,000 B datagram; modes: (none) every "
          "row on loopback, serve, client (bench/gso_veth)",
      flags);
  if (cmd == "serve") return scuttle::bench::Serve();
  if (cmd == "client") return scuttle::bench::Client();
  return Loopback();
}
