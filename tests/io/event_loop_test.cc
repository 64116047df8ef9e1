// EventLoop tests. Waiting is always bounded: futures with a 5 s wait_for, or the loop's
// own Run() stopped by a timer; nothing sleeps.
#include "io/event_loop.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "io/clock.h"

namespace scuttle::io {
namespace {

constexpr auto kDeadline = std::chrono::seconds(5);

class EventLoopTest : public ::testing::TestWithParam<IoKind> {
 protected:
  std::unique_ptr<EventLoop> MakeLoop(EventLoopOptions lo = {}) {
    TransportOptions o;
    o.kind = GetParam();
    o.bind = *Endpoint::Parse("127.0.0.1:0");
    o.max_datagram_bytes = 1500;
    o.rx_buffer_count = 32;
    o.tx_slot_count = 32;
    auto t = OpenTransport(o);
    if (!t.ok() && GetParam() == IoKind::kUring &&
        t.status().code() == absl::StatusCode::kUnimplemented) {
      skipped_ = true;
      return nullptr;
    }
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::make_unique<EventLoop>(std::move(*t), lo) : nullptr;
  }
  bool skipped_ = false;
};

#define LOOP_OR_SKIP(var, ...)                                  \
  std::unique_ptr<EventLoop> var = MakeLoop(__VA_ARGS__);       \
  if (skipped_) GTEST_SKIP() << "kernel refuses io_uring here"; \
  ASSERT_NE(var, nullptr)

TEST_P(EventLoopTest, TimersFireInDeadlineOrderTiesInInsertionOrder) {
  LOOP_OR_SKIP(loop);
  std::vector<std::string> fired;
  const int64_t now = MonotonicNowUs();
  auto add = [&](int64_t offset_us, std::string name) {
    ASSERT_TRUE(loop->AddTimer(now + offset_us, [&fired, name] { fired.push_back(name); }).ok());
  };
  add(3000, "c");
  add(1000, "a1");
  add(2000, "b");
  add(1000, "a2");
  add(-5000, "past");
  auto doomed = loop->AddTimer(now + 1500, [&] { fired.push_back("cancelled"); });
  ASSERT_TRUE(doomed.ok());
  EXPECT_TRUE(loop->CancelTimer(*doomed));
  EXPECT_FALSE(loop->CancelTimer(*doomed));
  ASSERT_TRUE(loop->AddTimer(now + 4000, [&] { loop->Stop(); }).ok());
  ASSERT_TRUE(loop->Run().ok());  // returns when the last timer stops it
  EXPECT_EQ(fired, (std::vector<std::string>{"past", "a1", "a2", "b", "c"}));
  EXPECT_GE(MonotonicNowUs(), now + 4000);
  EXPECT_EQ(loop->stats().timers_fired, 6u);
  EXPECT_GE(loop->stats().iterations, 1u);
}

TEST_P(EventLoopTest, TimerLimitIsResourceExhausted) {
  LOOP_OR_SKIP(loop, EventLoopOptions{.max_timers = 2});
  ASSERT_TRUE(loop->AddTimer(0, [] {}).ok());
  ASSERT_TRUE(loop->AddTimer(0, [] {}).ok());
  EXPECT_EQ(loop->AddTimer(0, [] {}).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_P(EventLoopTest, CommandQueueIsBounded) {
  LOOP_OR_SKIP(loop, EventLoopOptions{.command_queue_capacity = 4});
  std::atomic<int> ran{0};
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(loop->Post([&] { ++ran; }).ok());
  EXPECT_EQ(loop->Post([&] { ++ran; }).code(), absl::StatusCode::kResourceExhausted);

  std::promise<int> done;
  loop->Start();
  // Once the loop drains, the queue has room again.
  const int64_t deadline = MonotonicNowUs() + 5'000'000;
  absl::Status s;
  do {
    s = loop->Post([&] { done.set_value(ran.load()); });
  } while (s.code() == absl::StatusCode::kResourceExhausted && MonotonicNowUs() < deadline);
  ASSERT_TRUE(s.ok()) << s;
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(f.get(), 4);
  loop->Stop();
  EXPECT_TRUE(loop->Join().ok());
  EXPECT_EQ(loop->Post([] {}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(EventLoopTest, PostWakesAnIdleLoopPromptly) {
  // The loop would sleep 60 s between iterations if Post did not wake it.
  LOOP_OR_SKIP(loop, EventLoopOptions{.max_wait_us = 60'000'000});
  loop->Start();
  for (int i = 0; i < 20; ++i) {  // repeatedly: each Post must wake the blocked loop
    std::promise<std::thread::id> answer;
    ASSERT_TRUE(loop->Post([&] { answer.set_value(std::this_thread::get_id()); }).ok());
    auto f = answer.get_future();
    ASSERT_EQ(f.wait_for(kDeadline), std::future_status::ready) << i;
    EXPECT_NE(f.get(), std::this_thread::get_id());
  }
  const auto start = std::chrono::steady_clock::now();
  loop->Stop();
  EXPECT_TRUE(loop->Join().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, kDeadline);
}

TEST_P(EventLoopTest, DeliversDatagramsThenRunsAfterBatch) {
  LOOP_OR_SKIP(receiver);
  LOOP_OR_SKIP(sender);
  constexpr int kCount = 20;  // < tx_slot_count: one batch, no reclaim needed
  int received = 0;           // loop thread only
  int batches_with_data = 0;
  int pending_in_batch = 0;
  std::promise<void> all;
  receiver->set_on_datagram([&](const RxDatagram& d) {
    if (d.data.size() == 3 && d.data[0] == 'p') ++pending_in_batch;
  });
  receiver->set_after_batch([&] {
    if (pending_in_batch == 0) return;
    received += pending_in_batch;
    pending_in_batch = 0;
    ++batches_with_data;
    if (received == kCount) all.set_value();
  });
  const Endpoint to = receiver->transport().local_endpoint();
  receiver->Start();
  // The sender's loop is not running: this thread owns its transport.
  Transport& tx = sender->transport();
  for (int i = 0; i < kCount; ++i) {
    std::span<uint8_t> slot = tx.AcquireTx(3);
    ASSERT_EQ(slot.size(), 3u);
    slot[0] = 'p';
    slot[1] = 'k';
    slot[2] = 't';
    tx.CommitTx(to, 3);
  }
  ASSERT_TRUE(tx.Flush().ok());
  ASSERT_EQ(all.get_future().wait_for(kDeadline), std::future_status::ready);
  receiver->Stop();
  ASSERT_TRUE(receiver->Join().ok());
  EXPECT_EQ(received, kCount);
  EXPECT_GE(batches_with_data, 1);
  const EventLoopStats& st = receiver->stats();
  EXPECT_GE(st.iterations, 1u);
  EXPECT_GE(st.iteration_us_sum, st.iteration_us_max);
}

TEST_P(EventLoopTest, StopBeforeRunReturnsAtOnce) {
  LOOP_OR_SKIP(loop, EventLoopOptions{.max_wait_us = 60'000'000});
  loop->Stop();
  EXPECT_TRUE(loop->Run().ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, EventLoopTest, ::testing::Values(IoKind::kUring, IoKind::kEpoll),
                         [](const auto& info) {
                           return std::string(info.param == IoKind::kUring ? "uring" : "epoll");
                         });

}  // namespace
}  // namespace scuttle::io
