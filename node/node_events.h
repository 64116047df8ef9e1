// Watch events of a Node: a bounded log of recent key and member events with a sequence
// number, read by cursors (the admin API's /v1/watch streams) and by callback
// subscriptions (Node::Subscribe, run on a dispatcher thread).
//
// The engine reports events synchronously on the loop thread (engine/events.h); the only
// work done there is EventLog::Append: one allocation, one short lock, one notify. Readers
// never slow the writer beyond that lock: a reader is just a sequence number (its cursor),
// and its "buffer" is the part of the log after its cursor, bounded by max_lag. A reader
// that falls further behind than max_lag, or whose cursor fell out of the log, gets an
// explicit overflow ("resync from a snapshot") and resumes at the newest event — it never
// grows memory and never blocks the engine.
#ifndef SCUTTLE_NODE_NODE_EVENTS_H_
#define SCUTTLE_NODE_NODE_EVENTS_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/events.h"
#include "engine/types.h"

namespace scuttle {

struct WatchEvent {
  enum class Kind : uint8_t {
    kKey,       // key_event: set / deleted / expired
    kMember,    // member_event: joined / alive / suspect / dead / left / forgotten / restarted
    kReset,     // a reset discarded this node's replica before refilling it (seed 000)
    kOverflow,  // not stored: tells a reader it lost events (seq = where it resumes)
  };
  uint64_t seq = 0;
  Kind kind = Kind::kKey;
  KeyEvent key_event = KeyEvent::kSet;
  MemberEvent member_event = MemberEvent::kJoined;
  std::string node;  // the owner of the key / the member
  Generation generation = 0;
  std::string key;    // kKey only
  std::string value;  // kKey set only (deleted/expired carry no value)
  Version version = 0;
  // The engine shard whose log holds the event (docs/shards.md); seq counts in that log.
  uint16_t shard = 0;

  // "set" | "deleted" | "expired" | "joined" | ... | "reset" | "overflow".
  const char* name() const;
};

// Which events a reader wants. A non-empty prefix selects key events only.
struct WatchFilter {
  std::string prefix;  // key prefix
  std::string node;    // owner / member name; empty = every node
  bool Matches(const WatchEvent& e) const;
};

struct EventLogOptions {
  // Bounds on the retained events (for resume with since=SEQ); the oldest go first.
  // max_events 0 keeps nothing: live readers then overflow on any lag.
  size_t max_events = 65536;
  size_t max_bytes = 64 << 20;
};

struct EventLogStats {
  uint64_t last_seq = 0;
  uint64_t appended = 0;
  uint64_t evicted = 0;
  size_t events = 0;  // retained now
  size_t bytes = 0;   // retained now (approximate: strings + struct)
};

// Wakes a reader of several event logs (one per engine shard) when any of them gets an
// event or closes. Ring() costs one atomic add, plus a lock and a notify only while a
// reader waits, so the logs' writers (shard threads) share no lock through it.
class Doorbell {
 public:
  uint64_t rings() const { return rings_.load(); }
  void Ring();
  // Blocks until rings() != seen or timeout_us passed; true when it rang.
  bool Wait(uint64_t seen, int64_t timeout_us);

 private:
  std::atomic<uint64_t> rings_{0};
  std::atomic<int> waiters_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

class EventLog {
 public:
  explicit EventLog(EventLogOptions options = {});
  // Rings `bell` after every Append and on Close. Call before the log is used.
  void AttachDoorbell(std::shared_ptr<Doorbell> bell) { doorbell_ = std::move(bell); }

  // Single writer (the loop thread). Assigns and returns the next sequence number (the
  // first is 1), evicts past either bound and wakes every waiting reader.
  uint64_t Append(WatchEvent event);

  struct Batch {
    std::vector<std::shared_ptr<const WatchEvent>> events;  // ascending seq, all matching
    bool overflow = false;
    uint64_t next_after = 0;  // the cursor for the next Read
  };
  // Events with seq > after that match `filter`, scanning at most max_scan events (so a
  // reader holds the lock briefly however far behind it is). Overflow — with no events and
  // next_after = the newest seq — when events after `after` were evicted already, when
  // `after` is ahead of the log (a sequence number from an earlier incarnation), or when
  // more than max_lag events are pending.
  Batch Read(uint64_t after, const WatchFilter& filter, size_t max_lag,
             size_t max_scan = 4096) const;
  // Blocks until an event after `after` exists, Close(), or timeout_us passed.
  // Returns true when there is an event after `after`.
  bool Wait(uint64_t after, int64_t timeout_us) const;
  // Wakes every reader for good (the node is stopping); Wait returns at once afterwards.
  void Close();
  bool closed() const;
  uint64_t last_seq() const;
  EventLogStats stats() const;

 private:
  static size_t Cost(const WatchEvent& e);

  const EventLogOptions options_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<std::shared_ptr<const WatchEvent>> events_;  // guarded by mu_; seq ascending
  uint64_t last_seq_ = 0;                                 // guarded by mu_
  size_t bytes_ = 0;                                      // guarded by mu_
  uint64_t evicted_ = 0;                                  // guarded by mu_
  bool closed_ = false;                                   // guarded by mu_
  std::shared_ptr<Doorbell> doorbell_;                    // set before use
};

// Runs subscription callbacks on one thread of its own, each subscription with its own
// cursor and a bound of queue_events pending events (beyond it: one kOverflow event).
// With several logs (one per engine shard) each subscription has a cursor per log; events
// of one log arrive in its order (every key lives in one shard, so per key in order), the
// logs are interleaved batch by batch. Several logs need a shared Doorbell.
class EventDispatcher {
 public:
  using Callback = std::function<void(const WatchEvent&)>;

  EventDispatcher(std::shared_ptr<EventLog> log, size_t queue_events)
      : EventDispatcher(std::vector<std::shared_ptr<EventLog>>{std::move(log)}, nullptr,
                        queue_events) {}
  EventDispatcher(std::vector<std::shared_ptr<EventLog>> logs, std::shared_ptr<Doorbell> bell,
                  size_t queue_events);
  ~EventDispatcher();
  EventDispatcher(const EventDispatcher&) = delete;
  EventDispatcher& operator=(const EventDispatcher&) = delete;

  // Starts delivering events after the log's newest one. Starts the thread on first use.
  uint64_t Add(WatchFilter filter, Callback callback);
  // After Remove returns, the callback is not running and will not run again — except
  // when called from that callback itself (then it does not wait for itself).
  void Remove(uint64_t id);
  // Joins the thread; pending events are not delivered. Idempotent.
  void Stop();
  uint64_t overflows() const;

 private:
  struct Sub {
    uint64_t id;
    WatchFilter filter;
    Callback callback;
    std::vector<uint64_t> after;  // per log
  };
  void Run();
  // One pass over the subscriptions; returns true when it delivered anything.
  bool Pass(std::unique_lock<std::mutex>& lock);

  std::vector<std::shared_ptr<EventLog>> logs_;
  std::shared_ptr<Doorbell> bell_;
  const size_t queue_events_;
  mutable std::mutex mu_;
  std::condition_variable done_cv_;  // a callback finished (Remove waits on it)
  std::list<Sub> subs_;              // guarded by mu_
  uint64_t next_id_ = 1;             // guarded by mu_
  uint64_t running_id_ = 0;          // guarded by mu_: the callback being run, 0 = none
  uint64_t overflows_ = 0;           // guarded by mu_
  bool stop_ = false;                // guarded by mu_
  std::thread::id thread_id_;        // guarded by mu_: the dispatcher thread, once started
  std::thread thread_;
};

}  // namespace scuttle

#endif  // SCUTTLE_NODE_NODE_EVENTS_H_
