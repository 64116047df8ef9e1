// EventLog and EventDispatcher: the bounded watch log behind /v1/watch and Node::Subscribe.
// Nothing sleeps to wait: waits are on a condition with a deadline.
#include "node/node_events.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace scuttle {
namespace {

WatchEvent Key(std::string node, std::string key, std::string value = "v") {
  WatchEvent e;
  e.kind = WatchEvent::Kind::kKey;
  e.node = std::move(node);
  e.key = std::move(key);
  e.value = std::move(value);
  return e;
}

WatchEvent Member(std::string node, MemberEvent m) {
  WatchEvent e;
  e.kind = WatchEvent::Kind::kMember;
  e.member_event = m;
  e.node = std::move(node);
  return e;
}

WatchFilter F(std::string prefix, std::string node) {
  WatchFilter f;
  f.prefix = std::move(prefix);
  f.node = std::move(node);
  return f;
}

std::vector<uint64_t> Seqs(const EventLog::Batch& b) {
  std::vector<uint64_t> out;
  for (const auto& e : b.events) out.push_back(e->seq);
  return out;
}

TEST(EventLogTest, SequenceNumbersStartAtOneAndReadResumes) {
  EventLog log;
  EXPECT_EQ(log.Append(Key("a", "k1")), 1u);
  EXPECT_EQ(log.Append(Key("a", "k2")), 2u);
  EXPECT_EQ(log.Append(Key("a", "k3")), 3u);
  auto b = log.Read(0, {}, 100);
  EXPECT_FALSE(b.overflow);
  EXPECT_EQ(Seqs(b), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(b.next_after, 3u);
  b = log.Read(1, {}, 100);
  EXPECT_EQ(Seqs(b), (std::vector<uint64_t>{2, 3}));
  b = log.Read(3, {}, 100);
  EXPECT_TRUE(b.events.empty());
  EXPECT_FALSE(b.overflow);
}

TEST(EventLogTest, FiltersByPrefixAndNode) {
  EventLog log;
  log.Append(Key("a", "svc/x"));
  log.Append(Key("b", "svc/y"));
  log.Append(Key("a", "other"));
  log.Append(Member("b", MemberEvent::kJoined));
  EXPECT_EQ(Seqs(log.Read(0, F("svc/", ""), 100)), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(Seqs(log.Read(0, F("", "b"), 100)), (std::vector<uint64_t>{2, 4}));
  EXPECT_EQ(Seqs(log.Read(0, F("svc/", "a"), 100)), (std::vector<uint64_t>{1}));
  // Non-matching events still move the cursor.
  EXPECT_EQ(log.Read(0, F("zzz", ""), 100).next_after, 4u);
}

TEST(EventLogTest, EvictedHistoryLagAndFutureSequencesOverflow) {
  EventLog log({.max_events = 4, .max_bytes = 1 << 20});
  for (int i = 0; i < 10; ++i) log.Append(Key("a", "k" + std::to_string(i)));
  EXPECT_EQ(log.stats().events, 4u);
  EXPECT_EQ(log.stats().evicted, 6u);
  auto b = log.Read(2, {}, 100);  // 3..6 were evicted
  EXPECT_TRUE(b.overflow);
  EXPECT_TRUE(b.events.empty());
  EXPECT_EQ(b.next_after, 10u);
  EXPECT_EQ(Seqs(log.Read(6, {}, 100)), (std::vector<uint64_t>{7, 8, 9, 10}));
  b = log.Read(6, {}, /*max_lag=*/3);  // 4 pending > 3
  EXPECT_TRUE(b.overflow);
  EXPECT_EQ(b.next_after, 10u);
  b = log.Read(11, {}, 100);  // ahead of the log: another incarnation's cursor
  EXPECT_TRUE(b.overflow);
  EXPECT_EQ(b.next_after, 10u);
}

TEST(EventLogTest, ByteBoundEvictsOldest) {
  EventLog log({.max_events = 1000, .max_bytes = 4 * (sizeof(WatchEvent) + 1000)});
  for (int i = 0; i < 10; ++i) log.Append(Key("a", "k", std::string(990, 'x')));
  EXPECT_LE(log.stats().bytes, 4 * (sizeof(WatchEvent) + 1000));
  EXPECT_GE(log.stats().events, 3u);
  EXPECT_LE(log.stats().events, 4u);
}

TEST(EventLogTest, ScanIsBoundedPerRead) {
  EventLog log;
  for (int i = 0; i < 100; ++i) log.Append(Key("a", "k"));
  auto b = log.Read(0, {}, 1000, /*max_scan=*/30);
  EXPECT_EQ(b.events.size(), 30u);
  EXPECT_EQ(b.next_after, 30u);
}

TEST(EventLogTest, WaitWakesOnAppendAndClose) {
  EventLog log;
  EXPECT_FALSE(log.Wait(0, 1000));  // times out: nothing yet
  std::thread t([&] { log.Append(Key("a", "k")); });
  EXPECT_TRUE(log.Wait(0, 10'000'000));
  t.join();
  std::thread c([&] { log.Close(); });
  EXPECT_FALSE(log.Wait(1, 10'000'000));  // Close wakes it without an event
  c.join();
  EXPECT_TRUE(log.closed());
}

// Collects dispatched events; waits on a condition with a deadline.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<WatchEvent> got;
  void Add(const WatchEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(e);
    cv.notify_all();
  }
  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return got.size() >= n; });
  }
};

TEST(EventDispatcherTest, DeliversInOrderFilteredAndStopsOnRemove) {
  auto log = std::make_shared<EventLog>();
  log->Append(Key("a", "before"));  // not delivered: subscriptions start at "now"
  EventDispatcher d(log, 1000);
  Collector all, svc;
  const uint64_t id_all = d.Add({}, [&](const WatchEvent& e) { all.Add(e); });
  d.Add(F("svc/", ""), [&](const WatchEvent& e) { svc.Add(e); });
  log->Append(Key("a", "svc/1"));
  log->Append(Key("a", "x"));
  log->Append(Member("b", MemberEvent::kJoined));
  log->Append(Key("a", "svc/2"));
  ASSERT_TRUE(all.WaitFor(4));
  ASSERT_TRUE(svc.WaitFor(2));
  {
    std::lock_guard<std::mutex> lock(all.mu);
    ASSERT_EQ(all.got.size(), 4u);
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(all.got[i].seq, i + 2);
    EXPECT_EQ(std::string(all.got[2].name()), "joined");
  }
  d.Remove(id_all);
  log->Append(Key("a", "svc/3"));
  ASSERT_TRUE(svc.WaitFor(3));
  std::lock_guard<std::mutex> lock(all.mu);
  EXPECT_EQ(all.got.size(), 4u);
}

TEST(EventDispatcherTest, SlowCallbackGetsOneOverflowAndCatchesUp) {
  auto log = std::make_shared<EventLog>();
  EventDispatcher d(log, /*queue_events=*/8);
  std::mutex gate;
  std::unique_lock<std::mutex> hold(gate);  // the callback blocks until released
  Collector c;
  std::atomic<bool> entered{false};
  d.Add({}, [&](const WatchEvent& e) {
    entered = true;
    std::lock_guard<std::mutex> g(gate);
    c.Add(e);
  });
  log->Append(Key("a", "first"));  // the callback takes it and blocks on the gate
  // Only once it holds the first one: appending earlier could make the dispatcher's first
  // read overflow already, and the next one again (two overflows, a race of the test).
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!entered && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // poll period, not a wait
  }
  ASSERT_TRUE(entered);
  for (int i = 0; i < 50; ++i) log->Append(Key("a", "k"));
  hold.unlock();
  auto has_overflow = [&] {
    for (const WatchEvent& e : c.got) {
      if (e.kind == WatchEvent::Kind::kOverflow) return true;
    }
    return false;
  };
  std::unique_lock<std::mutex> lock(c.mu);
  ASSERT_TRUE(c.cv.wait_for(lock, std::chrono::seconds(10), has_overflow));
  lock.unlock();
  log->Append(Key("a", "last"));  // delivered normally after the overflow
  lock.lock();
  ASSERT_TRUE(
      c.cv.wait_for(lock, std::chrono::seconds(10), [&] { return c.got.back().key == "last"; }));
  size_t overflows = 0;
  for (const WatchEvent& e : c.got) overflows += e.kind == WatchEvent::Kind::kOverflow;
  EXPECT_EQ(overflows, 1u);
  EXPECT_LT(c.got.size(), 52u);  // it skipped ahead rather than replaying everything
  EXPECT_EQ(d.overflows(), 1u);
}

TEST(EventDispatcherTest, RemoveFromInsideTheCallbackDoesNotDeadlock) {
  auto log = std::make_shared<EventLog>();
  EventDispatcher d(log, 100);
  Collector c;
  std::atomic<uint64_t> id{0};
  id = d.Add({}, [&](const WatchEvent& e) {
    c.Add(e);
    d.Remove(id.load());
  });
  log->Append(Key("a", "1"));
  log->Append(Key("a", "2"));
  ASSERT_TRUE(c.WaitFor(1));
  d.Stop();
  std::lock_guard<std::mutex> lock(c.mu);
  EXPECT_EQ(c.got.size(), 1u);
}

}  // namespace
}  // namespace scuttle
