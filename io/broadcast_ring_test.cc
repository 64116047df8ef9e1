#include "io/broadcast_ring.h"

#include <atomic>
#include <cstdint>
#include <thread>

#include "gtest/gtest.h"

namespace scuttle {
namespace {

// 80 bytes, like a membership record: every word derived from its position, so a torn
// read shows as words that disagree.
struct Rec {
  uint64_t pos;
  uint64_t w[9];
};
Rec Make(uint64_t p) {
  Rec r{p, {}};
  for (int i = 0; i < 9; ++i) r.w[i] = p * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i);
  return r;
}
bool Whole(const Rec& r) {
  for (int i = 0; i < 9; ++i) {
    if (r.w[i] != r.pos * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i)) return false;
  }
  return true;
}

using Ring = BroadcastRing<Rec>;

TEST(BroadcastRingTest, ReadersSeeEveryRecordInOrder) {
  Ring ring(8);
  Ring::Reader a(&ring), b(&ring);
  Rec r;
  EXPECT_EQ(a.Next(&r), Ring::Read::kEmpty);
  for (uint64_t p = 0; p < 5; ++p) ring.Publish(Make(p));
  for (uint64_t p = 0; p < 5; ++p) {
    ASSERT_EQ(a.Next(&r), Ring::Read::kOk);
    EXPECT_EQ(r.pos, p);
    EXPECT_TRUE(Whole(r));
  }
  EXPECT_EQ(a.Next(&r), Ring::Read::kEmpty);
  ASSERT_EQ(b.Next(&r), Ring::Read::kOk);  // readers are independent
  EXPECT_EQ(r.pos, 0u);
}

TEST(BroadcastRingTest, LaggingReaderIsToldAndResyncs) {
  Ring ring(4);
  Ring::Reader slow(&ring);
  for (uint64_t p = 0; p < 9; ++p) ring.Publish(Make(p));
  Rec r;
  EXPECT_EQ(slow.Next(&r), Ring::Read::kOverrun);
  EXPECT_FALSE(ring.TakeResyncRequest());
  slow.Resync(&ring);
  EXPECT_TRUE(ring.TakeResyncRequest());
  EXPECT_FALSE(ring.TakeResyncRequest()) << "one request, one answer";
  EXPECT_EQ(slow.Next(&r), Ring::Read::kEmpty);
  ring.Publish(Make(9));
  ASSERT_EQ(slow.Next(&r), Ring::Read::kOk);
  EXPECT_EQ(r.pos, 9u);
  // A reader made late starts at the oldest record still held.
  Ring::Reader late(&ring);
  ASSERT_EQ(late.Next(&r), Ring::Read::kOk);
  EXPECT_EQ(r.pos, 6u);
}

// One writer, two reader threads: every record a reader accepts is whole and positions
// only rise; readers that fall behind resync and go on. Ends when the writer is done and
// each reader has caught up with the head.
TEST(BroadcastRingTest, ConcurrentReadersNeverSeeATornRecord) {
  Ring ring(64);
  constexpr uint64_t kRecords = 200000;
  std::atomic<bool> done{false};
  std::atomic<uint64_t> torn{0}, backwards{0}, read{0};
  auto reader = [&] {
    Ring::Reader rd(&ring);
    uint64_t last = 0;
    bool any = false;
    Rec r;
    for (;;) {
      const Ring::Read res = rd.Next(&r);
      if (res == Ring::Read::kOk) {
        if (!Whole(r) || r.pos != rd.position() - 1) ++torn;
        if (any && r.pos <= last) ++backwards;
        last = r.pos;
        any = true;
        ++read;
      } else if (res == Ring::Read::kOverrun) {
        rd.Resync(&ring);
      } else if (done.load() && rd.position() == ring.head()) {
        return;
      } else {
        std::this_thread::yield();
      }
    }
  };
  std::thread t1(reader), t2(reader);
  for (uint64_t p = 0; p < kRecords; ++p) {
    ring.Publish(Make(p));
    ring.TakeResyncRequest();
  }
  done = true;
  t1.join();
  t2.join();
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_EQ(backwards.load(), 0u);
}

}  // namespace
}  // namespace scuttle
