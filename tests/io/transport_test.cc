// Transport tests over loopback: the conformance suite on io_uring and epoll, the zero-copy
// tracker, backend selection and address conversion. Nothing sleeps: every wait is Poll()
// in a loop until a condition or a 5 s deadline (STYLE, Tests).
#include "io/transport.h"

#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "io/clock.h"
#include "io/socket.h"
#include "io/zerocopy.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/io/transport_conformance.h"

namespace scuttle::io {
namespace {

using conformance::Backend;
using conformance::Options;
using conformance::TransportTest;

// The conformance suite (tests/io/transport_conformance.cc) on both kernel backends over
// loopback; tests/io/xdp_transport_test.cc runs it on AF_XDP across a veth pair.
INSTANTIATE_TEST_SUITE_P(Backends, TransportTest,
                         ::testing::Values(Backend{IoKind::kUring}, Backend{IoKind::kEpoll}),
                         conformance::BackendName);

TEST(ZerocopyTrackerTest, ReleasesEachSendsSlotsOnceWhenNotified) {
  ZerocopyTracker z(8);
  std::vector<uint32_t> released;
  auto rel = [&](uint32_t s) { released.push_back(s); };
  const uint32_t a[] = {5}, b[] = {1, 2, 3}, c[] = {7}, d[] = {0, 4};
  z.Add(a, 1);  // send 0
  z.Add(b, 3);  // send 1
  z.Add(c, 1);  // send 2
  EXPECT_EQ(z.pending_slots(), 5u);
  EXPECT_FALSE(z.HasRoom(4));  // 5 + 4 > 8 slots
  EXPECT_TRUE(z.HasRoom(3));
  // Out of order: send 2 first; its slot comes back, sends 0 and 1 keep theirs.
  EXPECT_EQ(z.Complete(2, 2, rel), 1u);
  EXPECT_EQ(released, std::vector<uint32_t>({7}));
  EXPECT_EQ(z.pending_slots(), 4u);
  // A coalesced range covering an already-notified send releases nothing twice.
  EXPECT_EQ(z.Complete(0, 2, rel), 2u);
  EXPECT_EQ(released, std::vector<uint32_t>({7, 5, 1, 2, 3}));
  EXPECT_EQ(z.pending_slots(), 0u);
  // Unknown numbers (already done, or never sent) are ignored.
  EXPECT_EQ(z.Complete(0, 1, rel), 0u);
  EXPECT_EQ(z.Complete(3, 100, rel), 0u);
  // Numbering continues after the notified prefix; the ring wraps.
  for (int i = 0; i < 20; ++i) {
    z.Add(d, 2);  // send 3 + i
    EXPECT_EQ(z.Complete(3 + i, 3 + i, rel), 1u);
  }
  EXPECT_EQ(released.size(), 5u + 40u);
  EXPECT_EQ(z.pending_slots(), 0u);
  EXPECT_TRUE(z.HasRoom(8));
}

TEST(ZerocopyTrackerTest, IsBoundedBySendsAndSlots) {
  ZerocopyTracker z(3);
  const uint32_t s[] = {0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(z.HasRoom(1));
    z.Add(s, 1);
  }
  EXPECT_FALSE(z.HasRoom(1));
  // The oldest send stays unnotified: later completions do not make room past it for
  // sends, but their slots come back.
  size_t n = 0;
  EXPECT_EQ(z.Complete(1, 2, [&](uint32_t) { ++n; }), 2u);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(z.pending_slots(), 1u);
  EXPECT_FALSE(z.HasRoom(1));
  EXPECT_EQ(z.Complete(0, 0, [&](uint32_t) { ++n; }), 1u);
  EXPECT_TRUE(z.HasRoom(3));
}

// --- Backend selection -----------------------------------------------------------------

// Captures spdlog output for the duration of a test.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  int CountLines(const std::string& needle) const {
    std::istringstream in(out_.str());
    int n = 0;
    for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
    return n;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST(OpenTransportTest, AutoPicksUringWhenTheKernelAllowsIt) {
  TransportOptions o = Options(IoKind::kAuto);
  auto forced = OpenTransport(Options(IoKind::kUring));
  if (!forced.ok()) GTEST_SKIP() << "kernel refuses io_uring: " << forced.status();
  auto t = OpenTransport(o);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_STREQ((*t)->name(), "io_uring");
}

TEST(OpenTransportTest, AutoFallsBackToEpollWithOneLogLine) {
  LogCapture logs;
  TransportOptions o = Options(IoKind::kAuto);
  o.simulate_uring_errno = EPERM;  // what Docker's seccomp profile answers
  auto t = OpenTransport(o);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_STREQ((*t)->name(), "epoll");
  spdlog::default_logger()->flush();
  EXPECT_EQ(logs.CountLines("falling back to epoll"), 1);
  EXPECT_EQ(logs.CountLines("EPERM"), 1);
}

TEST(OpenTransportTest, ForcedUringReportsRefusal) {
  for (int err : {EPERM, EACCES, ENOSYS, EINVAL}) {
    TransportOptions o = Options(IoKind::kUring);
    o.simulate_uring_errno = err;
    auto t = OpenTransport(o);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), absl::StatusCode::kUnimplemented) << t.status();
  }
}

TEST(OpenTransportTest, RejectsBadOptions) {
  TransportOptions o = Options(IoKind::kEpoll);
  o.max_datagram_bytes = kMaxUdpPayloadBytes + 1;
  EXPECT_EQ(OpenTransport(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(IoKind::kEpoll);
  o.tx_slot_count = 0;
  EXPECT_EQ(OpenTransport(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(IoKind::kEpoll);
  o.bind = Endpoint{};
  EXPECT_EQ(OpenTransport(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SockaddrTest, RoundTrips) {
  for (const char* text : {"10.1.2.3:7400", "[2001:db8::1]:9", "[::1]:65535"}) {
    const Endpoint ep = *Endpoint::Parse(text);
    sockaddr_storage ss;
    const socklen_t len = ToSockaddr(ep, ep.family == 4 ? AF_INET : AF_INET6, &ss);
    ASSERT_GT(len, 0u);
    EXPECT_EQ(FromSockaddr(&ss, len), ep) << text;
  }
  // IPv4 on an IPv6 socket: v4-mapped out, plain IPv4 back.
  const Endpoint v4 = *Endpoint::Parse("10.1.2.3:7400");
  sockaddr_storage ss;
  const socklen_t len = ToSockaddr(v4, AF_INET6, &ss);
  ASSERT_EQ(len, sizeof(sockaddr_in6));
  EXPECT_EQ(FromSockaddr(&ss, len), v4);
  EXPECT_EQ(ToSockaddr(*Endpoint::Parse("[::1]:1"), AF_INET, &ss), 0u);
  EXPECT_FALSE(FromSockaddr(&ss, 1).valid());
}

}  // namespace
}  // namespace scuttle::io
