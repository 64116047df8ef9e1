#include "node/node_events.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <utility>

namespace scuttle {

const char* WatchEvent::name() const {
  switch (kind) {
    case Kind::kKey:
      return KeyEventName(key_event);
    case Kind::kMember:
      return MemberEventName(member_event);
    case Kind::kReset:
      return "reset";
    case Kind::kOverflow:
      return "overflow";
  }
  return "unknown";
}

bool WatchFilter::Matches(const WatchEvent& e) const {
  if (!node.empty() && e.node != node) return false;
  if (prefix.empty()) return true;
  return e.kind == WatchEvent::Kind::kKey && e.key.starts_with(prefix);
}

// ---- Doorbell ------------------------------------------------------------------------------

void Doorbell::Ring() {
  rings_.fetch_add(1);  // seq_cst with the waiter's increment: one of the two sees the other
  if (waiters_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
}

bool Doorbell::Wait(uint64_t seen, int64_t timeout_us) {
  waiters_.fetch_add(1);
  bool rang;
  {
    std::unique_lock<std::mutex> lock(mu_);
    rang = cv_.wait_for(lock, std::chrono::microseconds(std::max<int64_t>(timeout_us, 0)),
                        [&] { return rings_.load() != seen; });
  }
  waiters_.fetch_sub(1);
  return rang;
}

// ---- EventLog ------------------------------------------------------------------------------

EventLog::EventLog(EventLogOptions options) : options_(options) {}

size_t EventLog::Cost(const WatchEvent& e) {
  return sizeof(WatchEvent) + e.node.size() + e.key.size() + e.value.size();
}

uint64_t EventLog::Append(WatchEvent event) {
  auto shared = std::make_shared<WatchEvent>(std::move(event));
  const size_t cost = Cost(*shared);
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = ++last_seq_;
    shared->seq = seq;
    if (options_.max_events > 0) {
      events_.push_back(std::move(shared));
      bytes_ += cost;
    }
    while (!events_.empty() &&
           (events_.size() > options_.max_events || bytes_ > options_.max_bytes)) {
      bytes_ -= Cost(*events_.front());
      events_.pop_front();
      ++evicted_;
    }
  }
  cv_.notify_all();
  if (doorbell_ != nullptr) doorbell_->Ring();
  return seq;
}

EventLog::Batch EventLog::Read(uint64_t after, const WatchFilter& filter, size_t max_lag,
                               size_t max_scan) const {
  Batch b;
  std::lock_guard<std::mutex> lock(mu_);
  b.next_after = after;
  if (after >= last_seq_) {
    if (after > last_seq_) {  // from another incarnation of this node: unknown history
      b.overflow = true;
      b.next_after = last_seq_;
    }
    return b;
  }
  const uint64_t first = events_.empty() ? last_seq_ + 1 : events_.front()->seq;
  if (after + 1 < first || last_seq_ - after > max_lag) {
    b.overflow = true;
    b.next_after = last_seq_;
    return b;
  }
  size_t i = static_cast<size_t>(after + 1 - first);
  const size_t end = std::min(events_.size(), i + std::max<size_t>(max_scan, 1));
  for (; i < end; ++i) {
    const auto& e = events_[i];
    assert(e->seq == first + i);
    if (filter.Matches(*e)) b.events.push_back(e);
    b.next_after = e->seq;
  }
  return b;
}

bool EventLog::Wait(uint64_t after, int64_t timeout_us) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::microseconds(std::max<int64_t>(timeout_us, 0)),
               [&] { return closed_ || last_seq_ > after; });
  return last_seq_ > after;
}

void EventLog::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
  if (doorbell_ != nullptr) doorbell_->Ring();
}

bool EventLog::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

uint64_t EventLog::last_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_seq_;
}

EventLogStats EventLog::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return EventLogStats{.last_seq = last_seq_,
                       .appended = last_seq_,
                       .evicted = evicted_,
                       .events = events_.size(),
                       .bytes = bytes_};
}

// ---- EventDispatcher -----------------------------------------------------------------------

namespace {
constexpr int64_t kDispatcherPollUs = 100'000;  // how soon Stop() is noticed
constexpr size_t kDispatchBatch = 256;
}  // namespace

EventDispatcher::EventDispatcher(std::vector<std::shared_ptr<EventLog>> logs,
                                 std::shared_ptr<Doorbell> bell, size_t queue_events)
    : logs_(std::move(logs)),
      bell_(std::move(bell)),
      queue_events_(std::max<size_t>(queue_events, 1)) {
  assert(!logs_.empty() && (logs_.size() == 1 || bell_ != nullptr));
}

EventDispatcher::~EventDispatcher() { Stop(); }

uint64_t EventDispatcher::Add(WatchFilter filter, Callback callback) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  std::vector<uint64_t> after;
  after.reserve(logs_.size());
  for (const auto& log : logs_) after.push_back(log->last_seq());
  subs_.push_back(Sub{id, std::move(filter), std::move(callback), std::move(after)});
  if (!thread_.joinable() && !stop_) {
    thread_ = std::thread([this] { Run(); });
    thread_id_ = thread_.get_id();
  }
  return id;
}

void EventDispatcher::Remove(uint64_t id) {
  std::unique_lock<std::mutex> lock(mu_);
  if (std::this_thread::get_id() != thread_id_) {
    done_cv_.wait(lock, [&] { return running_id_ != id; });
  }
  for (Sub& s : subs_) {
    if (s.id == id) s.callback = nullptr;  // Pass() erases it when it is not running
  }
  if (running_id_ != id) {
    subs_.remove_if([id](const Sub& s) { return s.id == id; });
  }
}

void EventDispatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t EventDispatcher::overflows() const {
  std::lock_guard<std::mutex> lock(mu_);
  return overflows_;
}

bool EventDispatcher::Pass(std::unique_lock<std::mutex>& lock) {
  bool delivered = false;
  for (auto it = subs_.begin(); it != subs_.end() && !stop_;) {
    if (it->callback == nullptr) {
      it = subs_.erase(it);
      continue;
    }
    running_id_ = it->id;
    for (size_t l = 0; l < logs_.size() && it->callback != nullptr && !stop_; ++l) {
      EventLog::Batch b = logs_[l]->Read(it->after[l], it->filter, queue_events_, kDispatchBatch);
      it->after[l] = b.next_after;
      if (b.overflow) {
        ++overflows_;
        auto e = std::make_shared<WatchEvent>();
        e->kind = WatchEvent::Kind::kOverflow;
        e->seq = b.next_after;
        e->shard = static_cast<uint16_t>(l);
        b.events.push_back(std::move(e));
      }
      for (const auto& e : b.events) {
        if (it->callback == nullptr || stop_) break;
        Callback cb = it->callback;  // a copy: Remove() from the callback clears the original
        lock.unlock();
        cb(*e);
        lock.lock();
        delivered = true;
      }
    }
    running_id_ = 0;
    done_cv_.notify_all();
    ++it;
  }
  return delivered;
}

void EventDispatcher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<uint64_t> seen(logs_.size());
  while (!stop_) {
    const uint64_t rung = bell_ != nullptr ? bell_->rings() : 0;
    for (size_t l = 0; l < logs_.size(); ++l) seen[l] = logs_[l]->last_seq();
    if (Pass(lock)) continue;
    bool behind = false;
    for (const Sub& s : subs_) {
      for (size_t l = 0; l < logs_.size(); ++l) behind = behind || s.after[l] < seen[l];
    }
    if (behind) continue;  // a pass scans at most a batch per subscription and log
    lock.unlock();
    const bool more = logs_.size() == 1 ? logs_[0]->Wait(seen[0], kDispatcherPollUs)
                                        : bell_->Wait(rung, kDispatcherPollUs);
    lock.lock();
    if (!more && logs_[0]->closed()) break;  // the node stopped: nothing will come
  }
}

}  // namespace scuttle
