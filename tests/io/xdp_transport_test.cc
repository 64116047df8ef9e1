// AF_XDP transport tests (io/xdp_transport.h) over a veth pair between two network
// namespaces (tests/io/transport_conformance.h: s19-<pid>-a, s19-<pid>-b; removed at exit,
// also on failure). The shared conformance suite (TransportTest) runs here for generic
// (skb) and native (drv) XDP, against an AF_XDP peer and an epoll peer; this file adds
// what only XDP has: attach mode and detach on close, IPv6, traffic that is not ours
// keeps reaching the kernel, a crashed owner's program is removed by the next start,
// jumbo frames, and missing queues or capabilities are clear errors.
//
// Needs root (namespaces, XDP). Without it, or without network namespaces, every test
// reports itself skipped with the reason; any other failure fails.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "io/clock.h"
#include "io/socket.h"
#include "io/transport.h"
#include "io/xdp_transport.h"
#include "tests/io/transport_conformance.h"

namespace scuttle::io {
namespace {

using conformance::Backend;
using conformance::Enter;
using conformance::HasXdp;
using conformance::Pattern;
using conformance::PollUntil;
using conformance::Send;
using conformance::Sh;
using conformance::TransportTest;

// The conformance suite on AF_XDP (the first transport of each test; the second is the
// peer in the other namespace).
INSTANTIATE_TEST_SUITE_P(Xdp, TransportTest,
                         ::testing::Values(Backend{IoKind::kXdp, XdpMode::kSkb, IoKind::kXdp},
                                           Backend{IoKind::kXdp, XdpMode::kSkb, IoKind::kEpoll},
                                           Backend{IoKind::kXdp, XdpMode::kDrv, IoKind::kXdp},
                                           Backend{IoKind::kXdp, XdpMode::kDrv, IoKind::kEpoll}),
                         conformance::BackendName);

constexpr int64_t kDeadlineUs = conformance::kDeadlineUs;

struct Param {
  XdpMode mode;
  IoKind peer;  // kXdp or kEpoll, in namespace b
};

std::string ParamName(const ::testing::TestParamInfo<Param>& i) {
  return std::string(i.param.mode == XdpMode::kSkb ? "skb" : "drv") +
         (i.param.peer == IoKind::kXdp ? "_xdp_peer" : "_epoll_peer");
}

const conformance::Veth& V() { return conformance::VethPair(); }

class XdpTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (!conformance::VethPair().skip_reason.empty()) GTEST_SKIP() << conformance::VethPair().skip_reason;
  }
  void TearDown() override { Enter(""); }

  static TransportOptions Options(IoKind kind, const char* addr, size_t max_datagram = kMaxUdpPayloadBytes) {
    TransportOptions o;
    o.kind = kind;
    o.bind = *Endpoint::Parse(addr);
    o.max_datagram_bytes = max_datagram;
    o.rx_buffer_count = 64;
    o.tx_slot_count = 64;
    o.xdp.mode = GetParam().mode;
    // A kernel-socket peer's UDP GSO run crosses a veth as one super-packet, and generic
    // (skb) XDP hands it to the XSK whole (native XDP on veth turns the peer's GSO off).
    // docs/xdp.md: on veth use drv mode (what auto picks), or no GSO on the peer.
    o.udp_gso = GetParam().mode != XdpMode::kSkb;
    return o;
  }
  // Opens a transport inside namespace `ns`.
  static std::unique_ptr<Transport> OpenIn(const std::string& ns, const TransportOptions& o) {
    auto t = conformance::OpenIn(ns, o);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }
  std::unique_ptr<Transport> OpenA(size_t max_datagram = kMaxUdpPayloadBytes, const char* addr = "10.19.0.1:0") {
    return OpenIn(V().a, Options(IoKind::kXdp, addr, max_datagram));
  }
  std::unique_ptr<Transport> OpenB(size_t max_datagram = kMaxUdpPayloadBytes, const char* addr = "10.19.0.2:0") {
    return OpenIn(V().b, Options(GetParam().peer, addr, max_datagram));
  }
};

TEST_P(XdpTest, AttachesInTheRequestedModeAndDetachesOnClose) {
  auto a = OpenA();
  ASSERT_NE(a, nullptr);
  EXPECT_STREQ(a->name(), "xdp");
  EXPECT_NE(a->local_endpoint().port, 0);
  auto* x = static_cast<XdpTransport*>(a.get());
  EXPECT_STREQ(x->xdp_mode(), GetParam().mode == XdpMode::kSkb ? "skb" : "drv");
  EXPECT_FALSE(a->stats().xdp_zerocopy) << "veth has no zero-copy AF_XDP";
  EXPECT_TRUE(HasXdp(V().a, V().dev_a));
  a.reset();
  EXPECT_FALSE(HasXdp(V().a, V().dev_a)) << "program still attached after close";
}

// A 9,000 B MTU: native mode still attaches (the program is frags-aware; without
// "xdp.frags" veth refuses with "Peer MTU is too large to set XDP"), datagrams that fit
// a frame go through the XSK, and a jumbo datagram (8,972 B: one 9,000 B packet, larger
// than a UMEM frame) takes the kernel socket whole, both ways.
TEST_P(XdpTest, JumboMtuAttachesAndLargeFramesTakeTheKernel) {
  struct RestoreMtu {
    ~RestoreMtu() {
      Sh("ip -n " + V().a + " link set " + V().dev_a + " mtu 1500");
      Sh("ip -n " + V().b + " link set " + V().dev_b + " mtu 1500");
    }
  } restore;
  ASSERT_EQ(Sh("ip -n " + V().a + " link set " + V().dev_a + " mtu 9000"), 0);
  ASSERT_EQ(Sh("ip -n " + V().b + " link set " + V().dev_b + " mtu 9000"), 0);
  constexpr size_t kJumbo = 9000 - 28;
  auto a = OpenA();
  auto b = OpenB();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_STREQ(static_cast<XdpTransport*>(a.get())->xdp_mode(),
               GetParam().mode == XdpMode::kSkb ? "skb" : "drv");
  for (Transport* from : {b.get(), a.get()}) {
    Transport* to = from == a.get() ? b.get() : a.get();
    std::vector<std::vector<uint8_t>> sent;
    for (uint32_t round = 0; round < 2; ++round) {  // the first may resolve the neighbour
      for (size_t len : {size_t{1400}, kJumbo}) {
        sent.push_back(Pattern(len, round * 2 + static_cast<uint32_t>(len)));
        ASSERT_TRUE(Send(*from, to->local_endpoint(), sent.back()));
      }
      ASSERT_TRUE(from->Flush().ok());
    }
    std::vector<std::vector<uint8_t>> got;
    ASSERT_TRUE(PollUntil(*to, [&] { return got.size() >= sent.size(); }, [&](const RxDatagram& d) {
      got.emplace_back(d.data.begin(), d.data.end());
    }));
    auto order = [](const std::vector<uint8_t>& x, const std::vector<uint8_t>& y) { return x.size() < y.size() || (x.size() == y.size() && x[0] < y[0]); };
    std::sort(sent.begin(), sent.end(), order);
    std::sort(got.begin(), got.end(), order);
    EXPECT_TRUE(got == sent) << "payload bytes differ";
  }
  EXPECT_GE(a->stats().xdp_rx_kernel, 2u) << "jumbo datagrams are larger than a UMEM frame";
  EXPECT_GE(a->stats().xdp_tx_kernel, 2u);
  EXPECT_GE(static_cast<XdpTransport*>(a.get())->program_redirected(), 1u);
  EXPECT_EQ(a->stats().xdp_rx_dropped, 0u);
}

// Sends larger than a frame are encoded into staging slots and go to the kernel socket in
// batches (sendmmsg): more of them in one Flush than there are slots, mixed with sends
// that take the rings, all arrive intact (no slot reused before its batch went out).
TEST_P(XdpTest, OversizedSendsGoThroughTheKernelInBatches) {
  auto a = OpenA();
  auto b = OpenB();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::vector<std::vector<uint8_t>> sent;
  for (uint32_t i = 0; i < 40; ++i) {
    sent.push_back(Pattern(i % 4 == 3 ? 100 : 5000 + i, i));
    ASSERT_TRUE(Send(*a, b->local_endpoint(), sent.back()));
  }
  ASSERT_TRUE(a->Flush().ok());
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(PollUntil(*b, [&] { return got.size() >= sent.size(); }, [&](const RxDatagram& d) {
    got.emplace_back(d.data.begin(), d.data.end());
  })) << "got " << got.size();
  auto order = [](const std::vector<uint8_t>& x, const std::vector<uint8_t>& y) {
    return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end(),
                                        [](uint8_t p, uint8_t q) { return p < q; });
  };
  std::sort(sent.begin(), sent.end(), order);
  std::sort(got.begin(), got.end(), order);
  EXPECT_TRUE(got == sent) << "payload bytes differ";
  EXPECT_EQ(a->stats().tx_packets, sent.size());
  EXPECT_GE(a->stats().xdp_tx_kernel, 30u);  // the 30 oversized ones (and any neighbour miss)
  EXPECT_EQ(a->stats().drop(Drop::kTxError), 0u);
}

TEST_P(XdpTest, Ipv6BothWays) {
  auto a = OpenA(kMaxUdpPayloadBytes, "[fd19::1]:0");
  auto b = OpenB(kMaxUdpPayloadBytes, "[fd19::2]:0");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Send(*a, b->local_endpoint(), Pattern(1000, i)));
    ASSERT_TRUE(a->Flush().ok());
  }
  std::vector<Endpoint> from;
  ASSERT_TRUE(PollUntil(*b, [&] { return from.size() >= 3; }, [&](const RxDatagram& d) {
    EXPECT_EQ(std::vector<uint8_t>(d.data.begin(), d.data.end()), Pattern(1000, static_cast<uint32_t>(from.size())));
    from.push_back(d.from);
  }));
  EXPECT_EQ(from[0], a->local_endpoint());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Send(*b, a->local_endpoint(), Pattern(1000, i)));
    ASSERT_TRUE(b->Flush().ok());
  }
  int got = 0;
  ASSERT_TRUE(PollUntil(*a, [&] { return got >= 3; }, [&](const RxDatagram& d) {
    EXPECT_EQ(d.from, b->local_endpoint());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(d.data.data()) % 8, 0u);
    ++got;
  }));
  EXPECT_GE(static_cast<XdpTransport*>(a.get())->program_redirected(), 1u);
}

TEST_P(XdpTest, TrafficThatIsNotOursReachesTheKernel) {
  ASSERT_EQ(Sh("command -v ping"), 0) << "this test needs ping (Debian package iputils-ping)";
  auto a = OpenA();
  ASSERT_NE(a, nullptr);
  // ARP + ICMP (ping), IPv6 neighbour discovery + ICMPv6, and a TCP connection (what an
  // admin API or SSH needs) all still work with the program attached.
  EXPECT_EQ(Sh("ip netns exec " + V().b + " ip neigh flush all"), 0);
  EXPECT_EQ(Sh("ip netns exec " + V().b + " ping -c 1 -W 2 10.19.0.1"), 0) << "ping";
  EXPECT_EQ(Sh("ip netns exec " + V().b + " ping -6 -c 1 -W 2 fd19::1"), 0) << "ping -6";
  // Another UDP port and TCP in namespace a, through the kernel stack.
  Enter(V().a);
  auto other = OpenTransport(Options(IoKind::kEpoll, "10.19.0.1:0"));
  ScopedFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(0x0a130001);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);
  socklen_t sl = sizeof(sin);
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sin), &sl);
  Enter(V().b);
  ScopedFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{.tv_sec = 3, .tv_usec = 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  EXPECT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0) << "TCP";
  auto sender = OpenTransport(Options(IoKind::kEpoll, "10.19.0.2:0"));
  Enter("");
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(sender.ok()) << sender.status();
  ASSERT_TRUE(Send(**sender, (*other)->local_endpoint(), Pattern(20, 1)));
  ASSERT_TRUE((*sender)->Flush().ok());
  bool got = false;
  ASSERT_TRUE(PollUntil(**other, [&] { return got; }, [&](const RxDatagram&) { got = true; }));
  auto* x = static_cast<XdpTransport*>(a.get());
  EXPECT_GT(x->program_passed(), 0u);
  EXPECT_EQ(a->stats().rx_packets, 0u) << "the XSK took traffic that is not ours";
}

TEST_P(XdpTest, ACrashedOwnersProgramIsRemovedByTheNextStart) {
  // A child attaches and dies without detaching (as kill -9 would leave it).
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    Enter(V().a);
    auto t = OpenTransport(Options(IoKind::kXdp, "10.19.0.1:0"));
    uint16_t port = t.ok() ? (*t)->local_endpoint().port : 0;
    (void)!::write(pipefd[1], &port, sizeof(port));
    ::_exit(t.ok() ? 0 : 1);  // no destructors: the program stays attached
  }
  uint16_t port = 0;
  ASSERT_EQ(::read(pipefd[0], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  ::close(pipefd[0]);
  ::close(pipefd[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_NE(port, 0);
  ASSERT_TRUE(HasXdp(V().a, V().dev_a)) << "the crashed owner's program should still be there";
  // The next start (any port: the owner is gone) removes it and attaches its own.
  auto a = OpenA();
  ASSERT_NE(a, nullptr);
  auto b = OpenB();
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(Send(*b, a->local_endpoint(), Pattern(10, 1)));
  ASSERT_TRUE(b->Flush().ok());
  bool got = false;
  ASSERT_TRUE(PollUntil(*a, [&] { return got; }, [&](const RxDatagram&) { got = true; }));
  a.reset();
  EXPECT_FALSE(HasXdp(V().a, V().dev_a));
}

TEST_P(XdpTest, MissingQueueIsAClearError) {
  TransportOptions o = Options(IoKind::kXdp, "10.19.0.1:0");
  o.xdp.queue = 5;
  Enter(V().a);
  auto t = OpenTransport(o);
  Enter("");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("queue 5"), std::string::npos) << t.status();
  EXPECT_FALSE(HasXdp(V().a, V().dev_a));
}

TEST_P(XdpTest, WildcardBindWithoutInterfaceIsAClearError) {
  Enter(V().a);
  auto t = OpenTransport(Options(IoKind::kXdp, "0.0.0.0:0"));
  Enter("");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("--xdp_interface"), std::string::npos) << t.status();
}

TEST_P(XdpTest, MissingCapabilitiesAreNamed) {
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    Enter(V().a);
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    ::syscall(SYS_capget, &hdr, data);
    data[CAP_BPF / 32].effective &= ~(1u << (CAP_BPF % 32));
    data[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
    ::syscall(SYS_capset, &hdr, data);
    auto t = OpenTransport(Options(IoKind::kXdp, "10.19.0.1:0"));
    const std::string msg = t.ok() ? "opened" : std::string(t.status().message());
    (void)!::write(pipefd[1], msg.data(), msg.size());
    ::_exit(0);
  }
  ::close(pipefd[1]);
  char buf[512] = {};
  const ssize_t n = ::read(pipefd[0], buf, sizeof(buf) - 1);
  ::close(pipefd[0]);
  ::waitpid(child, nullptr, 0);
  const std::string msg(buf, n > 0 ? static_cast<size_t>(n) : 0);
  EXPECT_NE(msg.find("lacks CAP_BPF (or CAP_SYS_ADMIN)"), std::string::npos) << msg;
  EXPECT_FALSE(HasXdp(V().a, V().dev_a));
}

INSTANTIATE_TEST_SUITE_P(Veth, XdpTest,
                         ::testing::Values(Param{XdpMode::kSkb, IoKind::kXdp},
                                           Param{XdpMode::kSkb, IoKind::kEpoll},
                                           Param{XdpMode::kDrv, IoKind::kXdp},
                                           Param{XdpMode::kDrv, IoKind::kEpoll}),
                         ParamName);

TEST(XdpOpenTest, AutoNeverPicksXdp) {
  TransportOptions o;
  o.kind = IoKind::kAuto;
  o.bind = *Endpoint::Parse("127.0.0.1:0");
  auto t = OpenTransport(o);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_STRNE((*t)->name(), "xdp");
}

}  // namespace
}  // namespace scuttle::io

