#include "io/event_loop.h"

#include <algorithm>
#include <cassert>
#include <iterator>
#include <utility>

#include "io/clock.h"

namespace scuttle::io {

EventLoop::EventLoop(std::unique_ptr<Transport> transport, EventLoopOptions options)
    : transport_(std::move(transport)), options_(options) {
  assert(transport_ != nullptr);
  options_.command_queue_capacity = std::max<size_t>(options_.command_queue_capacity, 1);
  ring_.resize(options_.command_queue_capacity);
  draining_.reserve(options_.command_queue_capacity);
  timers_.reserve(std::min<size_t>(options_.max_timers, 1024));
}

EventLoop::~EventLoop() {
  Stop();
  (void)Join();
}

absl::StatusOr<EventLoop::TimerId> EventLoop::AddTimer(int64_t deadline_us,
                                                       std::function<void()> fn) {
  if (live_.size() >= options_.max_timers) {
    return absl::ResourceExhaustedError("io: event loop timer limit reached");
  }
  const TimerId id = next_timer_id_++;
  live_.insert(id);
  timers_.push_back(Timer{deadline_us, id, std::move(fn)});
  std::push_heap(timers_.begin(), timers_.end(), Later{});
  return id;
}

bool EventLoop::CancelTimer(TimerId id) {
  if (live_.erase(id) == 0) return false;
  // Keep the heap proportional to live timers when cancellation is common (failure
  // detector timeouts that are usually cancelled by a reply).
  if (timers_.size() > 2 * live_.size() + 64) {
    std::erase_if(timers_, [this](const Timer& t) { return !live_.contains(t.id); });
    std::make_heap(timers_.begin(), timers_.end(), Later{});
  }
  return true;
}

absl::Status EventLoop::Run() {
  while (!stop_.load()) {
    if (absl::Status s = RunOnce(); !s.ok()) return s;
  }
  // Run what was posted before Stop(): callers may be waiting on a reply.
  RunCommands();
  return absl::OkStatus();
}

void EventLoop::Start() {
  assert(!thread_.joinable());
  thread_ = std::thread([this] { thread_status_ = Run(); });
}

absl::Status EventLoop::Join() {
  if (thread_.joinable()) thread_.join();
  return thread_status_;
}

void EventLoop::Stop() {
  stop_.store(true);
  transport_->Wake();
}

absl::Status EventLoop::Post(std::function<void()> fn) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_.load()) return absl::FailedPreconditionError("io: event loop stopped");
    if (ring_len_ == ring_.size()) {
      return absl::ResourceExhaustedError("io: event loop command queue full");
    }
    ring_[(ring_head_ + ring_len_) % ring_.size()] = std::move(fn);
    was_empty = ring_len_++ == 0;
    has_commands_.store(true, std::memory_order_release);
  }
  // One eventfd write per empty -> non-empty transition: the loop drains everything.
  if (was_empty) transport_->Wake();
  return absl::OkStatus();
}

absl::Status EventLoop::RunOnce() {
  const int64_t wait_us = WaitBudgetUs(MonotonicNowUs());
  int64_t busy_from_us = 0;
  absl::Status s = transport_->Poll(wait_us, [&](const RxDatagram& d) {
    if (busy_from_us == 0) busy_from_us = MonotonicNowUs();
    if (on_datagram_) on_datagram_(d);
  });
  if (!s.ok()) return s;
  if (busy_from_us == 0) busy_from_us = MonotonicNowUs();
  RunCommands();
  RunDueTimers(MonotonicNowUs());
  if (after_batch_) after_batch_();
  s = transport_->Flush();
  RecordIteration(busy_from_us);
  return s;
}

int64_t EventLoop::WaitBudgetUs(int64_t now_us) const {
  if (has_commands_.load(std::memory_order_acquire)) return 0;
  if (timers_.empty()) return options_.max_wait_us;
  return std::clamp<int64_t>(timers_.front().deadline_us - now_us, 0, options_.max_wait_us);
}

void EventLoop::RunCommands() {
  if (!has_commands_.load(std::memory_order_acquire)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (; ring_len_ > 0; --ring_len_) {
      draining_.push_back(std::move(ring_[ring_head_]));
      ring_[ring_head_] = nullptr;
      ring_head_ = (ring_head_ + 1) % ring_.size();
    }
    has_commands_.store(false, std::memory_order_relaxed);
  }
  for (auto& fn : draining_) {
    if (fn) fn();
  }
  stats_.commands_run += draining_.size();
  draining_.clear();  // keeps capacity: no allocation next time
}

void EventLoop::RunDueTimers(int64_t now_us) {
  // Timers added by a firing timer wait for the next iteration, even if already due, so
  // a timer that re-arms itself in the past cannot spin this loop forever.
  const TimerId id_limit = next_timer_id_;
  while (!timers_.empty() && timers_.front().deadline_us <= now_us &&
         timers_.front().id < id_limit) {
    std::pop_heap(timers_.begin(), timers_.end(), Later{});
    Timer t = std::move(timers_.back());
    timers_.pop_back();
    if (live_.erase(t.id) == 0) continue;  // cancelled
    ++stats_.timers_fired;
    t.fn();
  }
}

void EventLoop::RecordIteration(int64_t busy_from_us) {
  const auto busy = static_cast<uint64_t>(std::max<int64_t>(MonotonicNowUs() - busy_from_us, 0));
  ++stats_.iterations;
  // Bounds are inclusive (Prometheus `le`): the first bound >= busy names the bucket.
  const auto* bound =
      std::lower_bound(std::begin(kIterationBucketUs), std::end(kIterationBucketUs), busy);
  ++stats_.iteration_buckets[bound - std::begin(kIterationBucketUs)];
  stats_.iteration_us_sum += busy;
  stats_.iteration_us_max = std::max(stats_.iteration_us_max, busy);
}

}  // namespace scuttle::io
