// Transport tests, run against both kernel backends over loopback. Nothing sleeps: every
// wait is Poll() in a loop until a condition or a 5 s deadline (STYLE, Tests).
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

namespace scuttle::io {
namespace {

constexpr int64_t kDeadlineUs = 5'000'000;

Endpoint Loopback(uint16_t port = 0) {
  return *Endpoint::Parse("127.0.0.1:" + std::to_string(port));
}

TransportOptions Options(IoKind kind, size_t max_datagram_bytes = kMaxUdpPayloadBytes) {
  TransportOptions o;
  o.kind = kind;
  o.bind = Loopback();
  o.max_datagram_bytes = max_datagram_bytes;
  o.rx_buffer_count = 64;
  o.tx_slot_count = 64;
  return o;
}

const char* KindName(IoKind k) { return k == IoKind::kUring ? "uring" : "epoll"; }

// Polls `t` until cond() or the deadline; returns cond().
template <typename Cond, typename OnDatagram>
bool PollUntil(Transport& t, Cond cond, OnDatagram on_datagram) {
  const int64_t deadline = MonotonicNowUs() + kDeadlineUs;
  while (!cond() && MonotonicNowUs() < deadline) {
    EXPECT_TRUE(t.Poll(10'000, on_datagram).ok());
  }
  return cond();
}

// Deterministic contents so the receiver can check every byte.
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

class TransportTest : public ::testing::TestWithParam<IoKind> {
 protected:
  // Opens a transport of the parameter's kind; skips the test if the kernel refuses
  // io_uring (the only acceptable reason to skip).
  std::unique_ptr<Transport> Open(const TransportOptions& o) {
    auto t = OpenTransport(o);
    if (!t.ok() && GetParam() == IoKind::kUring &&
        t.status().code() == absl::StatusCode::kUnimplemented) {
      skipped_ = true;
      return nullptr;
    }
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }
  bool skipped_ = false;
};

#define OPEN_OR_SKIP(var, opts)                                 \
  std::unique_ptr<Transport> var = Open(opts);                  \
  if (skipped_) GTEST_SKIP() << "kernel refuses io_uring here"; \
  ASSERT_NE(var, nullptr)

TEST_P(TransportTest, NameAndEphemeralPort) {
  OPEN_OR_SKIP(t, Options(GetParam()));
  EXPECT_STREQ(t->name(), GetParam() == IoKind::kUring ? "io_uring" : "epoll");
  EXPECT_EQ(t->local_endpoint().family, 4);
  EXPECT_NE(t->local_endpoint().port, 0);
}

TEST_P(TransportTest, SendsAndReceivesABatch) {
  OPEN_OR_SKIP(a, Options(GetParam()));
  OPEN_OR_SKIP(b, Options(GetParam()));
  std::vector<std::vector<uint8_t>> sent;
  uint32_t seed = 0;
  for (int round = 0; round < 3; ++round) {
    for (size_t len : {size_t{1}, size_t{1400}, kMaxUdpPayloadBytes}) {
      sent.push_back(Pattern(len, seed++));
      ASSERT_TRUE(Send(*a, b->local_endpoint(), sent.back()));
    }
  }
  ASSERT_TRUE(a->Flush().ok());

  std::vector<std::vector<uint8_t>> got;
  bool from_ok = true;
  ASSERT_TRUE(PollUntil(
      *b, [&] { return got.size() >= sent.size(); },
      [&](const RxDatagram& d) {
        from_ok = from_ok && d.from == a->local_endpoint() && !d.truncated;
        got.emplace_back(d.data.begin(), d.data.end());
      }));
  EXPECT_TRUE(from_ok);
  // Element-wise order: the default operator< on vector<uint8_t> inlines a memcmp that
  // GCC 12 at -O3 flags with a bogus -Wstringop-overread.
  auto byte_order = [](const std::vector<uint8_t>& x, const std::vector<uint8_t>& y) {
    return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end(),
                                        [](uint8_t p, uint8_t q) { return p < q; });
  };
  std::sort(sent.begin(), sent.end(), byte_order);
  std::sort(got.begin(), got.end(), byte_order);
  EXPECT_TRUE(got == sent) << "payload bytes differ";
  EXPECT_EQ(b->stats().rx_packets, sent.size());

  // The sender learns of completions on its next Poll (io_uring) or at Flush (epoll).
  ASSERT_TRUE(PollUntil(
      *a, [&] { return a->stats().tx_packets == sent.size(); }, [](const RxDatagram&) {}));
  EXPECT_EQ(a->stats().tx_bytes, b->stats().rx_bytes);
  EXPECT_EQ(a->stats().drop(Drop::kTxError), 0u);
}

TEST_P(TransportTest, RepliesFlowBothWays) {
  OPEN_OR_SKIP(a, Options(GetParam(), 1500));
  OPEN_OR_SKIP(b, Options(GetParam(), 1500));
  // Many more round trips than buffers or slots: both pools must recycle.
  constexpr int kRounds = 500;
  int pongs = 0;
  ASSERT_TRUE(Send(*a, b->local_endpoint(), Pattern(100, 0)));
  ASSERT_TRUE(a->Flush().ok());
  const int64_t deadline = MonotonicNowUs() + kDeadlineUs;
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
}

TEST_P(TransportTest, OversizedDatagramIsCountedNotDelivered) {
  OPEN_OR_SKIP(big, Options(GetParam()));
  OPEN_OR_SKIP(small, Options(GetParam(), 1500));
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
  TransportOptions ro = Options(GetParam(), 1500);
  ro.rx_buffer_count = 8;  // io_uring: the multishot recv runs dry (ENOBUFS) and re-arms
  TransportOptions so = Options(GetParam(), 1500);
  so.tx_slot_count = 1000;
  OPEN_OR_SKIP(rx, ro);
  OPEN_OR_SKIP(tx, so);
  constexpr uint64_t kBurst = 1000;
  for (uint64_t i = 0; i < kBurst; ++i) {
    ASSERT_TRUE(Send(*tx, rx->local_endpoint(), Pattern(64, static_cast<uint32_t>(i))));
  }
  ASSERT_TRUE(tx->Flush().ok());
  uint64_t got = 0;
  ASSERT_TRUE(PollUntil(
      *rx, [&] { return got == kBurst; }, [&](const RxDatagram&) { ++got; }));
  EXPECT_EQ(rx->stats().drop(Drop::kRxError), 0u);
  if (GetParam() == IoKind::kUring) {
    EXPECT_GT(rx->stats().rx_rearms, 0u);
  }
}

TEST_P(TransportTest, TxPoolExhaustionReturnsEmptyAndCounts) {
  TransportOptions o = Options(GetParam(), 1500);
  o.tx_slot_count = 4;
  OPEN_OR_SKIP(a, o);
  OPEN_OR_SKIP(b, Options(GetParam()));
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
  std::span<uint8_t> s = a->AcquireTx(1500);
  EXPECT_EQ(s.size(), 1500u);
  a->AbortTx();
}

TEST_P(TransportTest, WakeFromAnotherThreadUnblocksPoll) {
  OPEN_OR_SKIP(t, Options(GetParam()));
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
  OPEN_OR_SKIP(a, Options(GetParam()));
  TransportOptions o = Options(GetParam());
  o.bind = a->local_endpoint();
  auto b = OpenTransport(o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition) << b.status();
  const std::string msg(b.status().message());
  EXPECT_NE(msg.find(a->local_endpoint().ToString()), std::string::npos) << msg;
  EXPECT_NE(msg.find("EADDRINUSE"), std::string::npos) << msg;
}

TEST_P(TransportTest, DualStackSocketNamesIpv4PeersAsIpv4) {
  TransportOptions o = Options(GetParam());
  o.bind = *Endpoint::Parse("[::]:0");
  auto v6 = OpenTransport(o);
  if (!v6.ok() && v6.status().code() == absl::StatusCode::kUnimplemented) GTEST_SKIP();
  if (!v6.ok()) GTEST_SKIP() << "no IPv6 here: " << v6.status();
  OPEN_OR_SKIP(v4, Options(GetParam()));
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
  OPEN_OR_SKIP(a, Options(GetParam()));
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

// Receives until `want` datagrams arrived; returns them in arrival order.
std::vector<std::vector<uint8_t>> ReceiveN(Transport& t, size_t want) {
  std::vector<std::vector<uint8_t>> got;
  EXPECT_TRUE(PollUntil(
      t, [&] { return got.size() >= want; },
      [&](const RxDatagram& d) { got.emplace_back(d.data.begin(), d.data.end()); }));
  return got;
}

// Polls the sender until every committed datagram completed.
void DrainSends(Transport& t, uint64_t packets) {
  EXPECT_TRUE(PollUntil(
      t, [&] { return t.stats().tx_packets + t.stats().drop(Drop::kTxError) >= packets; },
      [](const RxDatagram&) {}));
}

TEST_P(TransportTest, GsoRunGoesOutInOneSendAndArrivesAsTheSameDatagrams) {
  OPEN_OR_SKIP(a, Options(GetParam()));
  OPEN_OR_SKIP(b, Options(GetParam()));
  const auto sent = MtuRun(7);
  for (const auto& d : sent) ASSERT_TRUE(Send(*a, b->local_endpoint(), d));
  ASSERT_TRUE(a->Flush().ok());
  const auto got = ReceiveN(*b, sent.size());
  EXPECT_TRUE(got == sent) << "datagrams differ or were reordered";
  DrainSends(*a, sent.size());
  EXPECT_EQ(a->stats().tx_packets, sent.size());
  EXPECT_EQ(a->stats().tx_bytes, b->stats().rx_bytes);
  EXPECT_EQ(b->stats().rx_packets, sent.size());
  if (!a->stats().gso) GTEST_SKIP() << "kernel without UDP_SEGMENT";
  EXPECT_EQ(a->stats().tx_gso_sends, 1u);
  EXPECT_EQ(a->stats().tx_gso_segments, sent.size());
  // Loopback hands a GSO send to a GRO socket whole: the receiver splits it.
  if (b->stats().gro) {
    EXPECT_GE(b->stats().rx_gro_batches, 1u);
  }
}

TEST_P(TransportTest, GroOffReceiverGetsTheSegmentsOneByOne) {
  OPEN_OR_SKIP(a, Options(GetParam()));
  TransportOptions ob = Options(GetParam());
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
  OPEN_OR_SKIP(b, Options(GetParam(), 1500));
  EXPECT_FALSE(b->stats().gro);  // a coalesced buffer would not fit: GRO stays off
}

TEST_P(TransportTest, OnlySameSizeRunsToOnePeerAreCoalesced) {
  OPEN_OR_SKIP(a, Options(GetParam()));
  OPEN_OR_SKIP(b, Options(GetParam()));
  OPEN_OR_SKIP(c, Options(GetParam()));
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
  if (!a->stats().gso) GTEST_SKIP() << "kernel without UDP_SEGMENT";
  // Runs: [1000 x3, 900], [500], [1000] (1200 is longer), [1200, 800] (a shorter one ends
  // a run), [800, 800].
  EXPECT_EQ(a->stats().tx_gso_sends, 3u);
  EXPECT_EQ(a->stats().tx_gso_segments, 4u + 2u + 2u);
}

TEST_P(TransportTest, GsoOffSendsEachDatagramAlone) {
  TransportOptions oa = Options(GetParam());
  oa.udp_gso = false;
  OPEN_OR_SKIP(a, oa);
  OPEN_OR_SKIP(b, Options(GetParam()));
  EXPECT_FALSE(a->stats().gso);
  const auto sent = MtuRun(21, 10);
  for (const auto& d : sent) ASSERT_TRUE(Send(*a, b->local_endpoint(), d));
  ASSERT_TRUE(a->Flush().ok());
  EXPECT_TRUE(ReceiveN(*b, sent.size()) == sent);
  DrainSends(*a, sent.size());
  EXPECT_EQ(a->stats().tx_gso_sends, 0u);
}

TEST_P(TransportTest, RefusedGsoRunIsResentOneByOne) {
  TransportOptions oa = Options(GetParam());
  oa.test_refuse_gso = true;
  OPEN_OR_SKIP(a, oa);
  OPEN_OR_SKIP(b, Options(GetParam()));
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
  TransportOptions oa = Options(GetParam());
  oa.tx_slot_count = kSlots;
  oa.zerocopy_min_bytes = 2000;
  OPEN_OR_SKIP(a, oa);
  OPEN_OR_SKIP(b, Options(GetParam()));
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
  TransportOptions oa = Options(GetParam());
  oa.zerocopy_min_bytes = 16384;
  OPEN_OR_SKIP(a, oa);
  OPEN_OR_SKIP(b, Options(GetParam()));
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
  OPEN_OR_SKIP(a, Options(GetParam()));
  EXPECT_FALSE(a->stats().zerocopy);
}

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

INSTANTIATE_TEST_SUITE_P(Backends, TransportTest, ::testing::Values(IoKind::kUring, IoKind::kEpoll),
                         [](const auto& info) { return std::string(KindName(info.param)); });

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
