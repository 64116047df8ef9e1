// EventLoop: one thread, one Transport, one engine shard (DESIGN §7, §9).
//
// Each iteration: wait for datagrams, a timer deadline or a posted command; hand every
// datagram to on_datagram; run posted commands; fire due timers; call after_batch (where
// the engine drains its outbox into the transport) and flush the transport.
//
// Other threads (the admin HTTP API) never touch the loop's state: they Post() a
// command, which runs on the loop thread and may answer through a promise. The queue is
// bounded (ResourceExhausted when full) and an eventfd Wake() makes the loop notice it.
#ifndef SCUTTLE_IO_EVENT_LOOP_H_
#define SCUTTLE_IO_EVENT_LOOP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "io/transport.h"

namespace scuttle::io {

struct EventLoopOptions {
  // Bound on commands posted and not yet run.
  size_t command_queue_capacity = 1024;
  // Bound on pending timers.
  size_t max_timers = 1 << 16;
  // Longest single wait; the loop also wakes for timers and commands.
  int64_t max_wait_us = 1'000'000;
};

// Upper bounds, in microseconds, of the iteration-time histogram: 10 µs to 1 s in 1-2-5
// steps. Fixed, so recording an iteration is a search in a constant table and an increment.
inline constexpr uint64_t kIterationBucketUs[] = {
    10,    20,     50,     100,    200,     500,     1'000,   2'000,
    5'000, 10'000, 20'000, 50'000, 100'000, 200'000, 500'000, 1'000'000};
// Buckets: one per bound plus the overflow (> 1 s).
inline constexpr size_t kIterationBuckets = std::size(kIterationBucketUs) + 1;

// Work time per iteration, from the first datagram (or the end of the wait) to the end
// of after_batch + flush: what the loop spent busy, not what it spent blocked.
struct EventLoopStats {
  uint64_t iterations = 0;
  uint64_t iteration_us_sum = 0;
  uint64_t iteration_us_max = 0;
  // Non-cumulative: iteration_buckets[i] counts iterations of at most kIterationBucketUs[i]
  // µs and more than the bound before it; the last counts those over 1 s. They add up to
  // `iterations`.
  uint64_t iteration_buckets[kIterationBuckets] = {};
  uint64_t commands_run = 0;
  uint64_t timers_fired = 0;
};

class EventLoop {
 public:
  using TimerId = uint64_t;
  using DatagramFn = std::function<void(const RxDatagram&)>;

  // REQUIRES: transport != nullptr.
  explicit EventLoop(std::unique_ptr<Transport> transport, EventLoopOptions options = {});
  // Stops and joins the thread started by Start(), if any.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // --- Loop thread only (or before the loop runs) ----------------------------------
  Transport& transport() { return *transport_; }
  const EventLoopStats& stats() const { return stats_; }
  void set_on_datagram(DatagramFn fn) { on_datagram_ = std::move(fn); }
  void set_after_batch(std::function<void()> fn) { after_batch_ = std::move(fn); }
  // Runs fn once at or after deadline_us (MonotonicNowUs() clock). Timers with equal
  // deadlines fire in the order they were added. ResourceExhausted past max_timers.
  absl::StatusOr<TimerId> AddTimer(int64_t deadline_us, std::function<void()> fn);
  // Returns false if the timer already fired or was cancelled.
  bool CancelTimer(TimerId id);

  // --- Any thread --------------------------------------------------------------------
  // Runs the loop on the calling thread until Stop(). Returns the transport's error if
  // it breaks. REQUIRES: not already running.
  absl::Status Run();
  // Runs the loop on a thread it owns; join with Stop() + Join() or the destructor.
  void Start();
  // Waits for the thread started by Start() and returns Run()'s status.
  absl::Status Join();
  // Makes Run() return after the current iteration. Idempotent.
  void Stop();
  // Queues fn to run on the loop thread. ResourceExhausted when the queue is full,
  // FailedPrecondition after Stop().
  absl::Status Post(std::function<void()> fn);

 private:
  struct Timer {
    int64_t deadline_us;
    TimerId id;  // increasing: ties fire in insertion order
    std::function<void()> fn;
  };
  struct Later {
    bool operator()(const Timer& a, const Timer& b) const {
      return a.deadline_us != b.deadline_us ? a.deadline_us > b.deadline_us : a.id > b.id;
    }
  };

  absl::Status RunOnce();
  int64_t WaitBudgetUs(int64_t now_us) const;
  void RunCommands();
  void RunDueTimers(int64_t now_us);
  void RecordIteration(int64_t busy_from_us);

  std::unique_ptr<Transport> transport_;
  EventLoopOptions options_;
  EventLoopStats stats_;
  DatagramFn on_datagram_;
  std::function<void()> after_batch_;

  // Min-heap by (deadline, id). Cancelling only forgets the id in live_; the heap entry
  // is skipped when it surfaces (or compacted away when stale entries pile up).
  std::vector<Timer> timers_;
  absl::flat_hash_set<TimerId> live_;
  TimerId next_timer_id_ = 1;

  // Bounded MPSC command queue: a ring of capacity slots under a mutex. Commands are
  // rare (admin requests), so a lock is simpler than lock-free and not a bottleneck.
  std::mutex mu_;
  std::vector<std::function<void()>> ring_;      // guarded by mu_
  size_t ring_head_ = 0;                         // guarded by mu_
  size_t ring_len_ = 0;                          // guarded by mu_
  std::vector<std::function<void()>> draining_;  // loop thread: commands being run
  std::atomic<bool> has_commands_{false};
  std::atomic<bool> stop_{false};

  std::thread thread_;
  absl::Status thread_status_;
};

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_EVENT_LOOP_H_
