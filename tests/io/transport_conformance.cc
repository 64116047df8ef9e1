// The transport conformance suite (tests/io/transport_conformance.h): every check here
// runs against each backend the test programs instantiate it for.
#include "tests/io/transport_conformance.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "io/socket.h"
#include "io/xdp_transport.h"

namespace scuttle::io::conformance {

Endpoint Loopback(uint16_t port) { return *Endpoint::Parse("127.0.0.1:" + std::to_string(port)); }

TransportOptions Options(IoKind kind, size_t max_datagram_bytes) {
  TransportOptions o;
  o.kind = kind;
  o.bind = Loopback();
  o.max_datagram_bytes = max_datagram_bytes;
  o.rx_buffer_count = 64;
  o.tx_slot_count = 64;
  return o;
}

std::vector<uint8_t> Pattern(size_t len, uint32_t seed) {
  std::vector<uint8_t> v(len);
  for (size_t j = 0; j < len; ++j) v[j] = static_cast<uint8_t>(seed * 131 + j * 7 + (j >> 8));
  return v;
}

bool Send(Transport& t, const Endpoint& to, const std::vector<uint8_t>& bytes) {
  std::span<uint8_t> slot = t.AcquireTx(bytes.size());
  if (slot.size() != bytes.size()) return false;
  std::copy(bytes.begin(), bytes.end(), slot.begin());
  t.CommitTx(to, bytes.size());
  return true;
}

std::vector<std::vector<uint8_t>> ReceiveN(Transport& t, size_t want) {
  std::vector<std::vector<uint8_t>> got;
  EXPECT_TRUE(PollUntil(
      t, [&] { return got.size() >= want; },
      [&](const RxDatagram& d) { got.emplace_back(d.data.begin(), d.data.end()); }));
  return got;
}

void DrainSends(Transport& t, uint64_t packets) {
  EXPECT_TRUE(PollUntil(
      t, [&] { return t.stats().tx_packets + t.stats().drop(Drop::kTxError) >= packets; },
      [](const RxDatagram&) {}));
}

// --- The veth pair -------------------------------------------------------------------------

int Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

namespace {

Veth* g_veth = nullptr;
int g_self_ns = -1;

// Removes the namespaces when the test program ends (gtest runs environments' TearDown
// after failures too).
class VethCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    if (g_veth == nullptr || !g_veth->skip_reason.empty()) return;
    Sh("ip netns del " + g_veth->a);
    Sh("ip netns del " + g_veth->b);
  }
};
[[maybe_unused]] ::testing::Environment* const kVethCleanup =
    ::testing::AddGlobalTestEnvironment(new VethCleanup);

}  // namespace

const Veth& VethPair() {
  if (g_veth != nullptr) return *g_veth;
  g_veth = new Veth();
  Veth& v = *g_veth;
  const std::string id = std::to_string(::getpid());
  v.a = "s19-" + id + "-a";
  v.b = "s19-" + id + "-b";
  v.dev_a = "s19a" + id;
  v.dev_b = "s19b" + id;
  if (::geteuid() != 0) {
    v.skip_reason = "not root: the AF_XDP tests need CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF";
    return v;
  }
  if (Sh("ip netns add " + v.a) != 0) {
    v.skip_reason = "`ip netns add` failed: no network namespaces here";
    return v;
  }
  g_self_ns = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  const bool ok =
      Sh("ip netns add " + v.b) == 0 &&
      Sh("ip link add " + v.dev_a + " netns " + v.a + " type veth peer name " + v.dev_b + " netns " + v.b) == 0 &&
      Sh("ip -n " + v.a + " addr add 10.19.0.1/24 dev " + v.dev_a) == 0 &&
      Sh("ip -n " + v.b + " addr add 10.19.0.2/24 dev " + v.dev_b) == 0 &&
      Sh("ip -n " + v.a + " addr add fd19::1/64 dev " + v.dev_a + " nodad") == 0 &&
      Sh("ip -n " + v.b + " addr add fd19::2/64 dev " + v.dev_b + " nodad") == 0 &&
      Sh("ip -n " + v.a + " link set " + v.dev_a + " up") == 0 &&
      Sh("ip -n " + v.b + " link set " + v.dev_b + " up") == 0 &&
      Sh("ip -n " + v.a + " link set lo up") == 0 && Sh("ip -n " + v.b + " link set lo up") == 0;
  EXPECT_TRUE(ok) << "could not build the veth pair between " << v.a << " and " << v.b;
  if (!ok) v.skip_reason = "veth set-up failed";
  return v;
}

void Enter(const std::string& ns) {
  if (ns.empty() && g_self_ns < 0) return;  // never left: no veth pair was set up
  const int fd = ns.empty() ? ::dup(g_self_ns) : ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << ns;
  ASSERT_EQ(::setns(fd, CLONE_NEWNET), 0) << ns;
  ::close(fd);
}

bool HasXdp(const std::string& ns, const std::string& dev) {
  return Sh("ip -n " + ns + " link show dev " + dev + " | grep -q ' xdp'") == 0;
}

absl::StatusOr<std::unique_ptr<Transport>> OpenIn(const std::string& ns, const TransportOptions& o) {
  Enter(ns);
  auto t = OpenTransport(o);
  Enter("");
  return t;
}

// --- The fixture ---------------------------------------------------------------------------

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  const Backend& b = info.param;
  if (b.kind == IoKind::kUring) return "uring";
  if (b.kind == IoKind::kEpoll) return "epoll";
  return std::string(b.mode == XdpMode::kSkb ? "xdp_skb" : "xdp_drv") +
         (b.peer == IoKind::kXdp ? "_xdp_peer" : "_epoll_peer");
}

void TransportTest::SetUp() {
  if (IsXdp() && !VethPair().skip_reason.empty()) GTEST_SKIP() << VethPair().skip_reason;
}

void TransportTest::TearDown() {
  if (IsXdp()) Enter("");
}

TransportOptions TransportTest::Opts(size_t max_datagram_bytes) const {
  TransportOptions o = Options(GetParam().kind, max_datagram_bytes);
  o.xdp.mode = GetParam().mode;
  // A kernel-socket peer's UDP GSO run crosses a veth as one super-packet, and generic
  // (skb) XDP hands it to the XSK whole (native XDP on veth turns the peer's GSO off).
  // docs/xdp.md: on veth use drv mode (what auto picks), or no GSO on the peer.
  if (IsXdp() && GetParam().mode == XdpMode::kSkb) o.udp_gso = false;
  return o;
}

absl::StatusOr<std::unique_ptr<Transport>> TransportTest::TryOpen(TransportOptions o) {
  if (!IsXdp()) return OpenTransport(o);
  const Veth& v = VethPair();
  const Endpoint a4 = *Endpoint::Parse("10.19.0.1:0"), b4 = *Endpoint::Parse("10.19.0.2:0");
  int side = opens_++ == 0 ? 0 : 1;
  Endpoint bind = o.bind;
  if (bind.family == 4 && std::equal(bind.addr.begin(), bind.addr.begin() + 4, a4.addr.begin())) side = 0;
  if (bind.family == 4 && std::equal(bind.addr.begin(), bind.addr.begin() + 4, b4.addr.begin())) side = 1;
  if (bind == Loopback(bind.port)) {
    Endpoint e = side == 0 ? a4 : b4;
    e.port = bind.port;
    o.bind = e;
  }
  const IoKind wanted = side == 0 ? IoKind::kXdp : GetParam().peer;
  o.kind = wanted == IoKind::kXdp && !xsk_used_[side] ? IoKind::kXdp : IoKind::kEpoll;
  auto t = OpenIn(side == 0 ? v.a : v.b, o);
  if (t.ok() && o.kind == IoKind::kXdp) xsk_used_[side] = true;
  return t;
}

std::unique_ptr<Transport> TransportTest::Open(const TransportOptions& o) {
  auto t = TryOpen(o);
  if (!t.ok() && GetParam().kind == IoKind::kUring && t.status().code() == absl::StatusCode::kUnimplemented) {
    skipped_ = true;
    return nullptr;
  }
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

// What went through an AF_XDP transport's rings rather than its kernel socket.
uint64_t RedirectedByProgram(Transport& t) { return static_cast<XdpTransport&>(t).program_redirected(); }

// --- The checks ----------------------------------------------------------------------------

TEST_P(TransportTest, NameAndEphemeralPort) {
  OPEN_OR_SKIP(t, Opts());
  const char* name = GetParam().kind == IoKind::kUring ? "io_uring" : IsXdp() ? "xdp" : "epoll";
  EXPECT_STREQ(t->name(), name);
  EXPECT_EQ(t->local_endpoint().family, 4);
  EXPECT_NE(t->local_endpoint().port, 0);
}

// Both ways, 1 B to 65,507 B. Xdp: 1 B .. 1,400 B fit a frame and the MTU; 3,000 B
// exceeds the veth's 1,500 B MTU and 65,507 B any frame: those two take the kernel
// socket (fragmented). Each round is flushed alone: the first datagram to a new
// neighbour goes through the kernel, which resolves it, the next round out of the rings.
TEST_P(TransportTest, SendsAndReceivesABatch) {
  OPEN_OR_SKIP(a, Opts());
  OPEN_OR_SKIP(b, Opts());
  // Element-wise order: the default operator< on vector<uint8_t> inlines a memcmp that
  // GCC 12 at -O3 flags with a bogus -Wstringop-overread.
  auto byte_order = [](const std::vector<uint8_t>& x, const std::vector<uint8_t>& y) {
    return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end(),
                                        [](uint8_t p, uint8_t q) { return p < q; });
  };
  for (Transport* from : {a.get(), b.get()}) {
    Transport* to = from == a.get() ? b.get() : a.get();
    const uint64_t rx0 = to->stats().rx_packets, rx_bytes0 = to->stats().rx_bytes;
    const uint64_t tx0 = from->stats().tx_packets, tx_bytes0 = from->stats().tx_bytes;
    std::vector<std::vector<uint8_t>> sent;
    uint32_t seed = 0;
    for (int round = 0; round < 3; ++round) {
      for (size_t len : {size_t{1}, size_t{64}, size_t{1400}, size_t{3000}, kMaxUdpPayloadBytes}) {
        sent.push_back(Pattern(len, seed++));
        ASSERT_TRUE(Send(*from, to->local_endpoint(), sent.back()));
      }
      ASSERT_TRUE(from->Flush().ok());
    }
    std::vector<std::vector<uint8_t>> got;
    bool from_ok = true, aligned = true;
    ASSERT_TRUE(PollUntil(
        *to, [&] { return got.size() >= sent.size(); },
        [&](const RxDatagram& d) {
          from_ok = from_ok && d.from == from->local_endpoint() && !d.truncated;
          // The decoder reads in place and needs 8-byte aligned payloads.
          aligned = aligned && reinterpret_cast<uintptr_t>(d.data.data()) % 8 == 0;
          got.emplace_back(d.data.begin(), d.data.end());
        }))
        << "got " << got.size() << " of " << sent.size();
    EXPECT_TRUE(from_ok);
    EXPECT_TRUE(aligned) << "a payload was not 8-byte aligned";
    std::sort(sent.begin(), sent.end(), byte_order);
    std::sort(got.begin(), got.end(), byte_order);
    EXPECT_TRUE(got == sent) << "payload bytes differ";
    EXPECT_EQ(to->stats().rx_packets - rx0, sent.size());

    // The sender learns of completions on its next Poll (io_uring) or at Flush (epoll).
    ASSERT_TRUE(PollUntil(
        *from, [&] { return from->stats().tx_packets - tx0 == sent.size(); }, [](const RxDatagram&) {}));
    EXPECT_EQ(from->stats().tx_bytes - tx_bytes0, to->stats().rx_bytes - rx_bytes0);
    EXPECT_EQ(from->stats().drop(Drop::kTxError), 0u);
    EXPECT_EQ(to->stats().drop(Drop::kRxError), 0u);
  }
  if (IsXdp()) {  // what fit went through the XSK: a received more than the kernel handed it
    EXPECT_GE(RedirectedByProgram(*a), 3u);
    EXPECT_GE(a->stats().rx_packets - a->stats().xdp_rx_kernel, 3u);
    EXPECT_GE(a->stats().tx_packets - a->stats().xdp_tx_kernel, 3u);
  }
}

TEST_P(TransportTest, RepliesFlowBothWays) {
  OPEN_OR_SKIP(a, Opts(1500));
  OPEN_OR_SKIP(b, Opts(1500));
  // Many more round trips than buffers or slots: both pools must recycle.
  constexpr int kRounds = 500;
  int pongs = 0;
  ASSERT_TRUE(Send(*a, b->local_endpoint(), Pattern(100, 0)));
  ASSERT_TRUE(a->Flush().ok());
  const int64_t deadline = MonotonicNowUs() + 2 * kDeadlineUs;
  while (pongs < kRounds && MonotonicNowUs() < deadline) {
    ASSERT_TRUE(b->Poll(1'000, [&](const RxDatagram& d) {
                   std::vector<uint8_t> echo(d.data.begin(), d.data.end());
                   ASSERT_TRUE(Send(*b, d.from, echo));
                 }).ok());
    ASSERT_TRUE(b->Flush().ok());
    ASSERT_TRUE(a->Poll(1'000, [&](const RxDatagram& d) {
                   ++pongs;
                   ASSERT_TRUE(
                       Send(*a, d.from, std::vector<uint8_t>(d.data.begin(), d.data.end())));
                 }).ok());
    ASSERT_TRUE(a->Flush().ok());
  }
  EXPECT_EQ(pongs, kRounds);
  if (IsXdp()) {
    EXPECT_GT(RedirectedByProgram(*a), 400u) << "the frames did not recycle";
  }
}

TEST_P(TransportTest, OversizedDatagramIsCountedNotDelivered) {
  OPEN_OR_SKIP(big, Opts());
  OPEN_OR_SKIP(small, Opts(1500));
  ASSERT_TRUE(Send(*big, small->local_endpoint(), Pattern(kMaxUdpPayloadBytes, 1)));
  ASSERT_TRUE(Send(*big, small->local_endpoint(), Pattern(1500, 2)));
  ASSERT_TRUE(big->Flush().ok());
  std::vector<size_t> delivered;
  ASSERT_TRUE(PollUntil(
      *small, [&] { return small->stats().drop(Drop::kRxTruncated) == 1 && delivered.size() == 1; },
      [&](const RxDatagram& d) { delivered.push_back(d.data.size()); }));
  EXPECT_EQ(delivered, std::vector<size_t>{1500});
  EXPECT_EQ(small->stats().rx_packets, 1u);
}

TEST_P(TransportTest, SurvivesABurstLargerThanItsReceiveBuffers) {
  TransportOptions ro = Opts(1500);
  // io_uring: the multishot recv runs dry (ENOBUFS) and re-arms. Xdp: 16 frames.
  ro.rx_buffer_count = IsXdp() ? 16 : 8;
  TransportOptions so = Opts(1500);
  so.tx_slot_count = 1000;
  OPEN_OR_SKIP(rx, ro);
  OPEN_OR_SKIP(tx, so);
  // One datagram first, so the neighbour is resolved and the burst is one batch.
  ASSERT_TRUE(Send(*tx, rx->local_endpoint(), Pattern(8, 0)));
  ASSERT_TRUE(tx->Flush().ok());
  uint64_t got = 0;
  ASSERT_TRUE(PollUntil(*rx, [&] { return got == 1; }, [&](const RxDatagram&) { ++got; }));
  DrainSends(*tx, 1);  // its slot is free again (io_uring learns so on a Poll)
  constexpr uint64_t kBurst = 1000;
  for (uint64_t i = 0; i < kBurst; ++i) {
    ASSERT_TRUE(Send(*tx, rx->local_endpoint(), Pattern(64, static_cast<uint32_t>(i))));
  }
  ASSERT_TRUE(tx->Flush().ok());
  got = 0;
  if (!IsXdp()) {
    // A kernel socket holds the burst in its receive buffer: every datagram arrives.
    ASSERT_TRUE(PollUntil(
        *rx, [&] { return got == kBurst; }, [&](const RxDatagram&) { ++got; }));
  } else {
    // An XSK has no socket buffer: what the receive frames cannot hold is dropped by the
    // kernel and counted (XDP_STATISTICS), or lost earlier in the veth backlog; what
    // arrives is intact. Poll until the sender is done and nothing more comes.
    uint64_t last = UINT64_MAX;
    int quiet = 0;
    while (quiet < 20 && got < kBurst) {
      ASSERT_TRUE(tx->Poll(0, [](const RxDatagram&) {}).ok());
      ASSERT_TRUE(rx->Poll(5'000, [&](const RxDatagram& d) { got += d.data.size() == 64; }).ok());
      quiet = got == last ? quiet + 1 : 0;
      last = got;
    }
    EXPECT_GE(got, 16u) << "dropped " << rx->stats().xdp_rx_dropped;
    EXPECT_LE(got + rx->stats().xdp_rx_dropped, kBurst) << "received " << got;
    // The frames went back to the fill ring: a burst that fits arrives whole.
    for (uint32_t i = 0; i < 12; ++i) ASSERT_TRUE(Send(*tx, rx->local_endpoint(), Pattern(9, i)));
    ASSERT_TRUE(tx->Flush().ok());
    uint64_t small = 0;
    const int64_t deadline = MonotonicNowUs() + kDeadlineUs;
    while (small < 12 && MonotonicNowUs() < deadline) {
      ASSERT_TRUE(tx->Poll(0, [](const RxDatagram&) {}).ok());
      ASSERT_TRUE(rx->Poll(5'000, [&](const RxDatagram& d) { small += d.data.size() == 9; }).ok());
    }
    EXPECT_EQ(small, 12u);
  }
  EXPECT_EQ(rx->stats().drop(Drop::kRxError), 0u);
  if (GetParam().kind == IoKind::kUring) {
    EXPECT_GT(rx->stats().rx_rearms, 0u);
  }
}

TEST_P(TransportTest, TxPoolExhaustionReturnsEmptyAndCounts) {
  TransportOptions o = Opts(1500);
  o.tx_slot_count = 4;
  OPEN_OR_SKIP(a, o);
  OPEN_OR_SKIP(b, Opts());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Send(*a, b->local_endpoint(), Pattern(10, i)));
  EXPECT_TRUE(a->AcquireTx(10).empty());
  EXPECT_EQ(a->stats().drop(Drop::kTxPoolFull), 1u);
  EXPECT_TRUE(a->AcquireTx(1501).empty());
  EXPECT_EQ(a->stats().drop(Drop::kTxTooLarge), 1u);

  // Completed sends give their slots back.
  ASSERT_TRUE(a->Flush().ok());
  ASSERT_TRUE(PollUntil(
      *a, [&] { return a->stats().tx_packets == 4; }, [](const RxDatagram&) {}));
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(a->AcquireTx(1500).size(), 1500u) << i;
    a->AbortTx();  // an aborted slot is free again at once
  }
  // A commit with nothing acquired is ignored; a commit of a span outside the slot is
  // refused, counted, and gives the slot back at once (all four can be held again).
  a->CommitTx(b->local_endpoint(), std::span<const uint8_t>());
  EXPECT_EQ(a->stats().drop(Drop::kTxBadSpan), 0u) << "nothing was pending";
  std::span<uint8_t> s = a->AcquireTx(1500);
  ASSERT_EQ(s.size(), 1500u);
  a->CommitTx(b->local_endpoint(), std::span<const uint8_t>(s.data() + 1500, 1));
  EXPECT_EQ(a->stats().drop(Drop::kTxBadSpan), 1u);
  for (int i = 0; i < 4; ++i) {
    s = a->AcquireTx(1500);
    EXPECT_EQ(s.size(), 1500u) << i;
    a->CommitTx(b->local_endpoint(), std::span<const uint8_t>(s.data() + 1, 1500));  // past the end
  }
  EXPECT_EQ(a->stats().drop(Drop::kTxBadSpan), 5u);
  EXPECT_EQ(a->AcquireTx(1500).size(), 1500u);
  a->AbortTx();
}

TEST_P(TransportTest, WakeFromAnotherThreadUnblocksPoll) {
  OPEN_OR_SKIP(t, Opts());
  // Arm the transport first so the Wake lands on a blocked (or about to block) Poll.
  ASSERT_TRUE(t->Poll(0, [](const RxDatagram&) {}).ok());
  std::thread waker([&] { t->Wake(); });
  const int64_t start = MonotonicNowUs();
  while (t->stats().wakeups == 0 && MonotonicNowUs() - start < kDeadlineUs) {
    ASSERT_TRUE(t->Poll(30'000'000, [](const RxDatagram&) {}).ok());  // 30 s unless woken
  }
  waker.join();
  EXPECT_GE(t->stats().wakeups, 1u);
  EXPECT_LT(MonotonicNowUs() - start, kDeadlineUs);
}

TEST_P(TransportTest, BusyPortIsAClearError) {
  OPEN_OR_SKIP(a, Opts());
  TransportOptions o = Opts();
  o.bind = a->local_endpoint();
  auto b = TryOpen(o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition) << b.status();
  const std::string msg(b.status().message());
  EXPECT_NE(msg.find(a->local_endpoint().ToString()), std::string::npos) << msg;
  EXPECT_NE(msg.find("EADDRINUSE"), std::string::npos) << msg;
}

TEST_P(TransportTest, DualStackSocketNamesIpv4PeersAsIpv4) {
  // An XSK serves one address of one interface; xdp's IPv6 path: xdp_test Ipv6BothWays.
  if (IsXdp()) GTEST_SKIP() << "no dual-stack wildcard socket with xdp";
  TransportOptions o = Opts();
  o.bind = *Endpoint::Parse("[::]:0");
  auto v6 = OpenTransport(o);
  if (!v6.ok() && v6.status().code() == absl::StatusCode::kUnimplemented) GTEST_SKIP();
  if (!v6.ok()) GTEST_SKIP() << "no IPv6 here: " << v6.status();
  OPEN_OR_SKIP(v4, Opts());
  ASSERT_TRUE(Send(*v4, Loopback((*v6)->local_endpoint().port), Pattern(20, 3)));
  ASSERT_TRUE(v4->Flush().ok());
  Endpoint from;
  ASSERT_TRUE(PollUntil(
      **v6, [&] { return from.valid(); }, [&](const RxDatagram& d) { from = d.from; }));
  EXPECT_EQ(from, v4->local_endpoint());
  // And back: an IPv4 destination on the IPv6 socket goes out v4-mapped.
  ASSERT_TRUE(Send(**v6, from, Pattern(20, 4)));
  ASSERT_TRUE((*v6)->Flush().ok());
  bool got = false;
  ASSERT_TRUE(PollUntil(
      *v4, [&] { return got; }, [&](const RxDatagram&) { got = true; }));
}

TEST_P(TransportTest, SendToUnreachableFamilyIsCounted) {
  OPEN_OR_SKIP(a, Opts());
  ASSERT_FALSE(a->AcquireTx(10).empty());
  a->CommitTx(*Endpoint::Parse("[::1]:9"), 10);  // IPv6 peer, IPv4 socket
  EXPECT_EQ(a->stats().drop(Drop::kTxBadAddress), 1u);
}

// --- UDP GSO / GRO (io/gso.h) ------------------------------------------------------------

// 45 full 1,400 B datagrams and a short last one: what an engine emits for one peer when
// max_packet_bytes is the path MTU.
std::vector<std::vector<uint8_t>> MtuRun(uint32_t seed, size_t count = 45, size_t last = 700) {
  std::vector<std::vector<uint8_t>> v;
  for (size_t i = 0; i < count; ++i) v.push_back(Pattern(1400, seed + static_cast<uint32_t>(i)));
  v.push_back(Pattern(last, seed + static_cast<uint32_t>(count)));
  return v;
}

TEST_P(TransportTest, GsoRunGoesOutInOneSendAndArrivesAsTheSameDatagrams) {
  OPEN_OR_SKIP(a, Opts());
  OPEN_OR_SKIP(b, Opts());
  const auto sent = MtuRun(7);
  for (const auto& d : sent) ASSERT_TRUE(Send(*a, b->local_endpoint(), d));
  ASSERT_TRUE(a->Flush().ok());
  const auto got = ReceiveN(*b, sent.size());
  EXPECT_TRUE(got == sent) << "datagrams differ or were reordered";
  DrainSends(*a, sent.size());
  EXPECT_EQ(a->stats().tx_packets, sent.size());
  EXPECT_EQ(a->stats().tx_bytes, b->stats().rx_bytes);
  EXPECT_EQ(b->stats().rx_packets, sent.size());
  if (IsXdp()) return;  // no UDP GSO on AF_XDP (a frame per datagram): the checks above apply
  if (!a->stats().gso) GTEST_SKIP() << "kernel without UDP_SEGMENT";
  EXPECT_EQ(a->stats().tx_gso_sends, 1u);
  EXPECT_EQ(a->stats().tx_gso_segments, sent.size());
  // Loopback hands a GSO send to a GRO socket whole: the receiver splits it.
  if (b->stats().gro) {
    EXPECT_GE(b->stats().rx_gro_batches, 1u);
  }
}

TEST_P(TransportTest, GroOffReceiverGetsTheSegmentsOneByOne) {
  OPEN_OR_SKIP(a, Opts());
  TransportOptions ob = Opts();
  ob.udp_gro = false;
  OPEN_OR_SKIP(b, ob);
  EXPECT_FALSE(b->stats().gro);
  const auto sent = MtuRun(11);
  for (const auto& d : sent) ASSERT_TRUE(Send(*a, b->local_endpoint(), d));
  ASSERT_TRUE(a->Flush().ok());
  EXPECT_TRUE(ReceiveN(*b, sent.size()) == sent);
  EXPECT_EQ(b->stats().rx_gro_batches, 0u);
}

TEST_P(TransportTest, GroNeedsFullSizeReceiveBuffers) {
  OPEN_OR_SKIP(b, Opts(1500));
  EXPECT_FALSE(b->stats().gro);  // a coalesced buffer would not fit: GRO stays off
}

TEST_P(TransportTest, OnlySameSizeRunsToOnePeerAreCoalesced) {
  OPEN_OR_SKIP(a, Opts());
  OPEN_OR_SKIP(b, Opts());
  OPEN_OR_SKIP(c, Opts());
  // b: 3 x 1000 then 900 (one run); c: 500; b: 1000, 1200 (a longer one ends the run);
  // b: 3 x 800 (a run).
  std::vector<std::pair<Transport*, std::vector<uint8_t>>> plan;
  uint32_t seed = 100;
  for (size_t len : {1000, 1000, 1000, 900}) plan.push_back({b.get(), Pattern(len, seed++)});
  plan.push_back({c.get(), Pattern(500, seed++)});
  for (size_t len : {1000, 1200, 800, 800, 800}) plan.push_back({b.get(), Pattern(len, seed++)});
  std::vector<std::vector<uint8_t>> to_b, to_c;
  for (auto& [dst, bytes] : plan) {
    ASSERT_TRUE(Send(*a, dst->local_endpoint(), bytes));
    (dst == b.get() ? to_b : to_c).push_back(bytes);
  }
  ASSERT_TRUE(a->Flush().ok());
  EXPECT_TRUE(ReceiveN(*b, to_b.size()) == to_b);
  EXPECT_TRUE(ReceiveN(*c, to_c.size()) == to_c);
  DrainSends(*a, plan.size());
  EXPECT_EQ(a->stats().tx_packets, plan.size());
  if (IsXdp()) return;  // no UDP GSO on AF_XDP (a frame per datagram): the checks above apply
  if (!a->stats().gso) GTEST_SKIP() << "kernel without UDP_SEGMENT";
  // Runs: [1000 x3, 900], [500], [1000] (1200 is longer), [1200, 800] (a shorter one ends
  // a run), [800, 800].
  EXPECT_EQ(a->stats().tx_gso_sends, 3u);
  EXPECT_EQ(a->stats().tx_gso_segments, 4u + 2u + 2u);
}

TEST_P(TransportTest, GsoOffSendsEachDatagramAlone) {
  TransportOptions oa = Opts();
  oa.udp_gso = false;
  OPEN_OR_SKIP(a, oa);
  OPEN_OR_SKIP(b, Opts());
  EXPECT_FALSE(a->stats().gso);
  const auto sent = MtuRun(21, 10);
  for (const auto& d : sent) ASSERT_TRUE(Send(*a, b->local_endpoint(), d));
  ASSERT_TRUE(a->Flush().ok());
  EXPECT_TRUE(ReceiveN(*b, sent.size()) == sent);
  DrainSends(*a, sent.size());
  EXPECT_EQ(a->stats().tx_gso_sends, 0u);
}

TEST_P(TransportTest, RefusedGsoRunIsResentOneByOne) {
  TransportOptions oa = Opts();
  oa.test_refuse_gso = true;
  OPEN_OR_SKIP(a, oa);
  OPEN_OR_SKIP(b, Opts());
  if (IsXdp()) GTEST_SKIP() << "no UDP GSO on AF_XDP: nothing to refuse";
  if (!a->stats().gso) GTEST_SKIP() << "kernel without UDP_SEGMENT";
  const auto sent = MtuRun(31, 20);
  for (const auto& d : sent) ASSERT_TRUE(Send(*a, b->local_endpoint(), d));
  ASSERT_TRUE(a->Flush().ok());
  // io_uring learns of the refusal from a completion and resends at the next Flush.
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(PollUntil(
      *b,
      [&] {
        EXPECT_TRUE(a->Poll(0, [](const RxDatagram&) {}).ok());
        EXPECT_TRUE(a->Flush().ok());
        return got.size() >= sent.size();
      },
      [&](const RxDatagram& d) { got.emplace_back(d.data.begin(), d.data.end()); }));
  EXPECT_TRUE(got == sent);
  DrainSends(*a, sent.size());
  EXPECT_EQ(a->stats().tx_gso_fallbacks, 1u);
  EXPECT_EQ(a->stats().tx_gso_sends, 0u);
  EXPECT_EQ(a->stats().tx_packets, sent.size());
  EXPECT_EQ(a->stats().drop(Drop::kTxError), 0u);
}

// --- Zero-copy sends (TransportOptions::zerocopy_min_bytes) ----------------------------

// Polls the sender until no slot waits for a zero-copy notification any more.
void DrainZerocopy(Transport& t) {
  EXPECT_TRUE(PollUntil(t, [&] { return t.stats().tx_zc_pending == 0; }, [](const RxDatagram&) {}));
}

// A small pool reused round after round: a slot handed back before the kernel's
// notification would be overwritten by the next round while the kernel may still read it.
// Checks every byte, the threshold, and that the free slots never exceed the pool minus
// the slots still waiting for a notification.
TEST_P(TransportTest, ZerocopySendsArriveIntactAndHoldSlotsUntilNotified) {
  constexpr size_t kSlots = 6;
  TransportOptions oa = Opts();
  oa.tx_slot_count = kSlots;
  oa.zerocopy_min_bytes = 2000;
  OPEN_OR_SKIP(a, oa);
  OPEN_OR_SKIP(b, Opts());
  if (IsXdp()) GTEST_SKIP() << "MSG_ZEROCOPY is for kernel sockets; AF_XDP sends from UMEM frames";
  if (!a->stats().zerocopy) GTEST_SKIP() << "kernel without zero-copy UDP sends";
  uint32_t seed = 1;
  uint64_t large = 0, total = 0;
  for (int round = 0; round < 40; ++round) {
    std::vector<std::vector<uint8_t>> sent;
    for (size_t k = 0; k < kSlots - 1; ++k) {
      sent.push_back(Pattern(k == 0 ? 100 : 3000 + 8 * k, seed++));  // one below the threshold
      ASSERT_TRUE(Send(*a, b->local_endpoint(), sent.back()));
      large += k != 0;
    }
    total += sent.size();
    ASSERT_TRUE(a->Flush().ok());
    ASSERT_TRUE(a->Poll(0, [](const RxDatagram&) {}).ok());
    // Count the free slots (queued, never flushed: aborted below).
    const uint64_t pending = a->stats().tx_zc_pending;
    size_t free_slots = 0;
    while (!a->AcquireTx(64).empty()) {
      a->CommitTx(Endpoint::V4(INADDR_LOOPBACK, 9), 0);  // held; cleared by a send below
      ++free_slots;
    }
    EXPECT_LE(free_slots + pending, kSlots) << "round " << round;
    ASSERT_TRUE(a->Flush().ok());  // the 0-byte datagrams to the discard port
    total += free_slots;
    const auto got = ReceiveN(*b, sent.size());
    EXPECT_TRUE(got == sent) << "round " << round;
    DrainZerocopy(*a);
    DrainSends(*a, total);
  }
  EXPECT_EQ(a->stats().tx_zc_sends, large);
  EXPECT_LE(a->stats().tx_zc_copied, large);
  EXPECT_EQ(a->stats().tx_zc_pending, 0u);
  EXPECT_EQ(a->stats().drop(Drop::kTxError), 0u);
}

// GSO runs stay copying sends (their iovecs span more pages than a zero-copy skb may
// hold); a lone 65 KB datagram goes zero-copy.
TEST_P(TransportTest, ZerocopyLeavesGsoRunsToCopyingSends) {
  TransportOptions oa = Opts();
  oa.zerocopy_min_bytes = 16384;
  OPEN_OR_SKIP(a, oa);
  OPEN_OR_SKIP(b, Opts());
  if (IsXdp()) GTEST_SKIP() << "MSG_ZEROCOPY and GSO are for kernel sockets";
  if (!a->stats().zerocopy || !a->stats().gso) GTEST_SKIP() << "no zero-copy or GSO here";
  uint64_t total = 0;
  for (uint32_t round = 0; round < 3; ++round) {
    auto sent = MtuRun(100 * round);
    for (const auto& d : sent) ASSERT_TRUE(Send(*a, b->local_endpoint(), d));
    sent.push_back(Pattern(kMaxUdpPayloadBytes, round));
    ASSERT_TRUE(Send(*a, b->local_endpoint(), sent.back()));
    ASSERT_TRUE(a->Flush().ok());
    EXPECT_TRUE(ReceiveN(*b, sent.size()) == sent);
    total += sent.size();
    DrainSends(*a, total);
    DrainZerocopy(*a);
  }
  EXPECT_EQ(a->stats().tx_zc_sends, 3u);  // the 65 KB datagrams
  EXPECT_EQ(a->stats().tx_gso_sends, 3u);
  EXPECT_EQ(a->stats().tx_gso_fallbacks, 0u);
}

TEST_P(TransportTest, ZerocopyOffByDefault) {
  OPEN_OR_SKIP(a, Opts());
  EXPECT_FALSE(a->stats().zerocopy);
}

}  // namespace scuttle::io::conformance
