// CommitTx(to, sub-span): the engine encodes back to front inside a slot larger than the
// datagram (FlatBuffers), so the datagram it sends starts somewhere inside the slot. Both
// backends must send exactly that sub-span, from the slot, with slots sized independently
// of max_datagram_bytes. Nothing sleeps: every wait polls with a 5 s deadline.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "io/clock.h"
#include "io/transport.h"

namespace scuttle::io {
namespace {

constexpr int64_t kDeadlineUs = 5'000'000;
constexpr size_t kHeadroom = 1024;

TransportOptions Options(IoKind kind, size_t tx_slot_bytes) {
  TransportOptions o;
  o.kind = kind;
  o.bind = *Endpoint::Parse("127.0.0.1:0");
  o.rx_buffer_count = 16;
  o.tx_slot_count = 8;
  o.tx_slot_bytes = tx_slot_bytes;
  return o;
}

template <typename Cond, typename OnDatagram>
bool PollUntil(Transport& t, Cond cond, OnDatagram on_datagram) {
  const int64_t deadline = MonotonicNowUs() + kDeadlineUs;
  while (!cond() && MonotonicNowUs() < deadline) {
    EXPECT_TRUE(t.Poll(10'000, on_datagram).ok());
  }
  return cond();
}

class SubspanTest : public ::testing::TestWithParam<IoKind> {
 protected:
  std::unique_ptr<Transport> Open(const TransportOptions& o) {
    auto t = OpenTransport(o);
    if (!t.ok() && t.status().code() == absl::StatusCode::kUnimplemented) {
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

TEST_P(SubspanTest, SlotsLargerThanTheLargestDatagram) {
  OPEN_OR_SKIP(a, Options(GetParam(), kMaxUdpPayloadBytes + kHeadroom));
  EXPECT_EQ(a->AcquireTx(kMaxUdpPayloadBytes + kHeadroom).size(),
            kMaxUdpPayloadBytes + kHeadroom);
  a->AbortTx();
  EXPECT_TRUE(a->AcquireTx(kMaxUdpPayloadBytes + kHeadroom + 1).empty());
  EXPECT_EQ(a->stats().drop(Drop::kTxTooLarge), 1u);
}

TEST_P(SubspanTest, SendsTheSubSpanItWasGiven) {
  const size_t slot_bytes = kMaxUdpPayloadBytes + kHeadroom;
  OPEN_OR_SKIP(a, Options(GetParam(), slot_bytes));
  OPEN_OR_SKIP(b, Options(GetParam(), 0));
  // Datagrams placed like a back-to-front encoder leaves them: ending at the slot's end,
  // plus one in the middle and one at the very start, including the largest UDP payload.
  struct Case {
    size_t offset, len;
  };
  const std::vector<Case> cases = {{slot_bytes - 100, 100},
                                   {kHeadroom, kMaxUdpPayloadBytes},
                                   {0, 1},
                                   {777, 1400},
                                   {slot_bytes - 1, 1}};
  std::vector<std::string> sent;
  for (size_t c = 0; c < cases.size(); ++c) {
    std::span<uint8_t> slot = a->AcquireTx(slot_bytes);
    ASSERT_EQ(slot.size(), slot_bytes);
    // Garbage around the datagram must not leak into it.
    std::fill(slot.begin(), slot.end(), uint8_t{0xEE});
    std::span<uint8_t> pkt = slot.subspan(cases[c].offset, cases[c].len);
    for (size_t j = 0; j < pkt.size(); ++j) pkt[j] = static_cast<uint8_t>(c * 31 + j * 7);
    sent.emplace_back(pkt.begin(), pkt.end());
    a->CommitTx(b->local_endpoint(), std::span<const uint8_t>(pkt));
  }
  ASSERT_TRUE(a->Flush().ok());
  std::vector<std::string> got;
  ASSERT_TRUE(PollUntil(
      *b, [&] { return got.size() >= sent.size(); },
      [&](const RxDatagram& d) { got.emplace_back(d.data.begin(), d.data.end()); }));
  std::sort(sent.begin(), sent.end());
  std::sort(got.begin(), got.end());
  EXPECT_TRUE(got == sent) << "payload bytes differ";
  ASSERT_TRUE(PollUntil(
      *a, [&] { return a->stats().tx_packets == cases.size(); }, [](const RxDatagram&) {}));
  EXPECT_EQ(a->stats().drop(Drop::kTxBadSpan), 0u);
  EXPECT_EQ(a->stats().drop(Drop::kTxError), 0u);
}

TEST_P(SubspanTest, SpanOutsideTheSlotIsCountedAndTheSlotReturned) {
  TransportOptions o = Options(GetParam(), 2048);
  o.tx_slot_count = 1;
  OPEN_OR_SKIP(a, o);
  OPEN_OR_SKIP(b, Options(GetParam(), 0));
  std::vector<uint8_t> elsewhere(64, 1);
  ASSERT_EQ(a->AcquireTx(2048).size(), 2048u);
  a->CommitTx(b->local_endpoint(), std::span<const uint8_t>(elsewhere));
  EXPECT_EQ(a->stats().drop(Drop::kTxBadSpan), 1u);

  // Runs past the end of the acquired range.
  std::span<uint8_t> slot = a->AcquireTx(1024);
  ASSERT_EQ(slot.size(), 1024u) << "the only slot must be free again";
  a->CommitTx(b->local_endpoint(), std::span<const uint8_t>(slot.data() + 1000, 100));
  EXPECT_EQ(a->stats().drop(Drop::kTxBadSpan), 2u);

  // Commit without an acquired slot: nothing happens, nothing is counted.
  a->CommitTx(b->local_endpoint(), std::span<const uint8_t>(elsewhere));
  EXPECT_EQ(a->stats().drop(Drop::kTxBadSpan), 2u);
  ASSERT_TRUE(a->Flush().ok());
  EXPECT_EQ(a->AcquireTx(2048).size(), 2048u);
  a->AbortTx();
}

TEST(SubspanOptionsTest, SlotSizeDefaultsToMaxDatagramAndIsBounded) {
  TransportOptions o;
  o.max_datagram_bytes = 1500;
  EXPECT_EQ(TxSlotBytes(o), 1500u);
  o.tx_slot_bytes = 4096;
  EXPECT_EQ(TxSlotBytes(o), 4096u);
  o.kind = IoKind::kEpoll;
  o.bind = *Endpoint::Parse("127.0.0.1:0");
  o.tx_slot_bytes = size_t{1} << 30;
  EXPECT_EQ(OpenTransport(o).status().code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Backends, SubspanTest,
                         ::testing::Values(IoKind::kUring, IoKind::kEpoll),
                         [](const ::testing::TestParamInfo<IoKind>& i) {
                           return std::string(i.param == IoKind::kUring ? "uring" : "epoll");
                         });

}  // namespace
}  // namespace scuttle::io
