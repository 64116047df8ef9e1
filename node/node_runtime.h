// Node-internal: the loop-thread state behind scuttle::Node (node/node.h) and the
// command round trip Node's thread-safe methods use. Shared by the node*.cc files; not part
// of the embedding API.
#ifndef SCUTTLE_NODE_NODE_RUNTIME_H_
#define SCUTTLE_NODE_NODE_RUNTIME_H_

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/node_state.h"
#include "engine/rng.h"
#include "io/clock.h"
#include "node/keyring_file.h"
#include "io/socket.h"
#include "spdlog/spdlog.h"
#include "wire/absl_compat.h"
#include "node/node.h"

namespace scuttle {
namespace node_internal {

inline bool IsLive(MemberState s) {
  return s == MemberState::kAlive || s == MemberState::kSuspect;
}

// Resolves every seed; unresolvable ones are logged and skipped (DNS may come later, e.g.
// a Kubernetes headless service). Our own addresses are left out.
std::vector<Endpoint> ResolveSeeds(const std::vector<std::string>& seeds, int family,
                                   const Endpoint& self_a, const Endpoint& self_b,
                                   uint64_t* failures);

// The same endpoints with port + by (shard `by`'s address of each; docs/shards.md).
// Endpoints whose shifted port would pass 65535 are left out.
std::vector<Endpoint> ShiftPorts(const std::vector<Endpoint>& eps, size_t by);
// Pins the calling thread to `cpu`; a failure is logged as a warning.
void PinThisThread(size_t shard, int cpu);

}  // namespace node_internal

// The seed re-resolution thread (node_seeds.cc).
struct Node::Resolver {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;  // guarded by mu
  std::thread thread;
};

// The engine and everything that drives it. Lives on the loop thread: Node's public
// methods reach it only through posted commands.
class Node::Runtime final : public PacketSink, public EventSink {
 public:
  Runtime(io::EventLoop* loop, EngineConfig config, uint64_t jitter_seed,
          std::shared_ptr<EventLog> events)
      : loop_(loop),
        interval_us_(config.gossip_interval_us),
        jitter_(jitter_seed),
        events_(std::move(events)),
        engine_(std::move(config), this, this) {}

  // Membership once (docs/shards.md): shard 0 publishes what it decides into `ring` after
  // each round; every other shard applies what it reads before its round.
  void PublishMembershipTo(BroadcastRing<MemberRecord>* ring) { member_out_ = ring; }
  void ReadMembershipFrom(BroadcastRing<MemberRecord>* ring) {
    member_in_.emplace(ring);
    member_in_ring_ = ring;
  }
  uint16_t shard() const { return engine_.config().shard; }

  Engine& engine() { return engine_; }
  io::EventLoop& loop() { return *loop_; }
  NodeStats& counters() { return counters_; }
  const EventLog& events() const { return *events_; }

  // ---- PacketSink: the engine encodes straight into transport send slots ----
  std::span<uint8_t> Acquire(size_t min_bytes) override {
    return loop_->transport().AcquireTx(min_bytes);
  }
  void Commit(const Endpoint& to, std::span<const uint8_t> packet) override {
    ObserveSent(to, packet.size());
    loop_->transport().CommitTx(to, packet);
  }
  void Abort() override { loop_->transport().AbortTx(); }

  // ---- EventSink ----
  // Kept cheap: the engine is waiting. One EventLog::Append each (an allocation, a short
  // lock, a notify); readers and callbacks run elsewhere.
  void OnKey(const NodeState& node, KeyEvent event, std::string_view key,
             std::string_view value, Version version) override {
    ++counters_.key_events;
    ++counters_.key_events_by_type[static_cast<size_t>(event)];
    if (spdlog::should_log(spdlog::level::trace)) {
      spdlog::trace("key {}/{} {} v{}", node.name(), key, KeyEventName(event), version);
    }
    WatchEvent e;
    e.kind = WatchEvent::Kind::kKey;
    e.key_event = event;
    e.node = node.name();
    e.generation = node.generation();
    e.key = key;
    if (event == KeyEvent::kSet) e.value = value;
    e.version = version;
    e.shard = shard();
    events_->Append(std::move(e));
  }
  void OnMember(const NodeState& node, MemberEvent event) override {
    ++counters_.member_events;
    ++counters_.member_events_by_type[static_cast<size_t>(event)];
    // Member events are shard 0's: the others only mirror its decisions (docs/shards.md).
    if (shard() != 0) return;
    spdlog::info("member {} (generation {}) {}", node.name(), node.generation(),
                 MemberEventName(event));
    WatchEvent e;
    e.kind = WatchEvent::Kind::kMember;
    e.member_event = event;
    e.node = node.name();
    e.generation = node.generation();
    e.version = node.max_version();
    e.shard = shard();
    events_->Append(std::move(e));
  }
  void OnReset(const NodeState& node) override {
    ++counters_.resets;
    WatchEvent e;
    e.kind = WatchEvent::Kind::kReset;
    e.node = node.name();
    e.generation = node.generation();
    e.shard = shard();
    events_->Append(std::move(e));
  }

  void OnDatagram(const io::RxDatagram& d) {
    constexpr size_t kSynAck = static_cast<size_t>(wire::MessageType::kSynAck);
    const EngineStats& st = engine_.stats();
    const uint64_t before = st.packets_in[kSynAck];
    const uint64_t refused_before =
        st.engine_drops[static_cast<size_t>(EngineDrop::kShardCountMismatch)] +
        st.bad_shard_count_received;
    const TimeUs now = io::MonotonicNowUs();
    engine_.OnPacket(now, d.from, d.data);
    if (st.engine_drops[static_cast<size_t>(EngineDrop::kShardCountMismatch)] +
            st.bad_shard_count_received !=
        refused_before) {
      LogShardCountRefusal(now, d);
    }
    if (st.packets_in[kSynAck] == before) return;
    // A SynAck accepted: the handshake latency is the time since our Syn to that address.
    if (auto it = syn_sent_us_.find(d.from); it != syn_sent_us_.end()) {
      counters_.handshake_seconds.Observe(static_cast<double>(now - it->second) * 1e-6);
      syn_sent_us_.erase(it);
    } else {
      ++counters_.handshakes_unmatched;
    }
    // While leaving, a SynAck from a peer proves it received a Syn carrying our leaving
    // flag (every Syn after Leave() carries it).
    if (leaving_ && leave_pending_.erase(d.from) > 0) MaybeFinishLeave(io::MonotonicNowUs());
  }

  // Changes the gossip interval at once: the pending round moves earlier when the new
  // interval ends before it (a later one just takes effect after it).
  void SetInterval(TimeUs interval_us) {
    interval_us_ = interval_us;
    engine_.mutable_config().gossip_interval_us = interval_us;
    const TimeUs now = io::MonotonicNowUs();
    const TimeUs deadline = now + JitteredIntervalUs();
    if (tick_timer_ != 0 && deadline < tick_deadline_us_ && loop_->CancelTimer(tick_timer_)) {
      tick_timer_ = 0;
      ScheduleTick(now, deadline - now);
    }
  }

  // Arms the next gossip round: gossip_interval ±10%, from a PRNG seeded by name and
  // generation (so nodes started together drift apart instead of gossiping in lockstep).
  void ScheduleTick(TimeUs now_us, TimeUs delay_us) {
    auto id = loop_->AddTimer(now_us + delay_us, [this] { Tick(); });
    if (!id.ok()) {
      spdlog::error("node: cannot arm the gossip timer: {}", SV(id.status().message()));
      return;
    }
    tick_timer_ = *id;
    tick_deadline_us_ = now_us + delay_us;
  }
  TimeUs JitteredIntervalUs() {
    const double f = 0.9 + 0.2 * jitter_.Unit();
    return std::max<TimeUs>(1, static_cast<TimeUs>(static_cast<double>(interval_us_) * f));
  }

  // The engine's clocks between rounds, armed after every loop iteration (each timer
  // only moves earlier; nothing is armed while its clock has nothing due):
  //   - rumor cycles (EpidemicConfig::rumor_interval_us) while a rumor is hot;
  //   - failure confirmation (Engine::ProbeDueUs): an awaited SynAck's wait, a probe's
  //     deadline, so a crash is confirmed when its timeouts end, not at the next round.
  void ArmEngineTimers() {
    const TimeUs now = io::MonotonicNowUs();
    Arm(rumor_timer_, engine_.RumorCycleDueUs(now), "rumor",
        [this] { engine_.OnRumorCycle(io::MonotonicNowUs()); });
    Arm(probe_timer_, engine_.ProbeDueUs(), "probe",
        [this] { engine_.OnProbeTimer(io::MonotonicNowUs()); });
  }

  struct EngineTimer {
    io::EventLoop::TimerId id = 0;
    TimeUs deadline_us = 0;
  };
  void Arm(EngineTimer& t, TimeUs due, const char* what, std::function<void()> fire) {
    if (due == 0 || (t.id != 0 && t.deadline_us <= due)) return;
    if (t.id != 0 && !loop_->CancelTimer(t.id)) return;  // firing now
    auto id = loop_->AddTimer(due, [&t, fire = std::move(fire)] {
      t.id = 0;
      fire();
    });
    if (!id.ok()) {
      t.id = 0;
      spdlog::warn("node: cannot arm the {} timer: {}", what, SV(id.status().message()));
      return;
    }
    t.id = *id;
    t.deadline_us = due;
  }

  // Graceful leave (DESIGN §5): the leaving flag rides in our digest entry. One extra round
  // right away bumps our heartbeat, so the flagged entry is newer than any unflagged copy
  // a third node may still gossip; then every live peer gets a Syn directly.
  void BeginLeave(int intervals, std::function<void()> done) {
    if (leaving_) {  // a second Stop(): join the first
      leave_done_.push_back(std::move(done));
      MaybeFinishLeave(io::MonotonicNowUs());
      return;
    }
    const TimeUs now = io::MonotonicNowUs();
    leaving_ = true;
    leave_done_.push_back(std::move(done));
    leave_deadline_us_ = now + std::max(intervals, 1) * interval_us_;
    engine_.Leave();
    engine_.OnTick(now);
    ++counters_.gossip_rounds;
    for (const NodeState* n : engine_.cluster().nodes()) {
      if (n == &engine_.self() || !n->endpoint.valid() ||
          !node_internal::IsLive(n->liveness.state)) {
        continue;
      }
      leave_pending_.insert(n->endpoint);
    }
    for (const Endpoint& to : leave_pending_) engine_.SendSyn(to);
    spdlog::info("node: leaving; told {} live peer(s)", leave_pending_.size());
    MaybeFinishLeave(now);
  }

 private:
  // A peer runs another shard count: the engine refused and counted it; say so in the log,
  // at most once per kRefusalLogUs (a misconfigured peer sends every round).
  void LogShardCountRefusal(TimeUs now, const io::RxDatagram& d) {
    ++refusals_since_log_;
    if (last_refusal_log_us_ != 0 && now - last_refusal_log_us_ < kRefusalLogUs) return;
    spdlog::warn(
        "node: shard {}: {} runs another shard count than this node's {}: refused ({} such "
        "datagram(s) since the last line like this); every node of a cluster needs the "
        "same --shards (docs/shards.md: change it by a rolling restart into a new "
        "--cluster_id)",
        shard(), d.from.ToString(), engine_.config().shard_count, refusals_since_log_);
    last_refusal_log_us_ = now;
    refusals_since_log_ = 0;
  }

  void ReadMembership() {
    if (!member_in_.has_value()) return;
    member_batch_.clear();
    MemberRecord r;
    for (;;) {
      const auto got = member_in_->Next(&r);
      if (got == BroadcastRing<MemberRecord>::Read::kEmpty) break;
      if (got == BroadcastRing<MemberRecord>::Read::kOverrun) {
        // Skipped records are repaired by shard 0's full publication (states, not deltas).
        member_in_->Resync(member_in_ring_);
        spdlog::debug("node: shard {} fell behind shard 0's membership; resync asked",
                      shard());
        break;
      }
      member_batch_.push_back(r);
    }
    if (!member_batch_.empty()) engine_.ApplyMembership(member_batch_);
  }

  void PublishMembership() {
    if (member_out_ == nullptr) return;
    member_batch_.clear();
    engine_.CollectMembership(member_out_->TakeResyncRequest(), &member_batch_);
    for (const MemberRecord& r : member_batch_) member_out_->Publish(r);
  }

  void Tick() {
    tick_timer_ = 0;
    const TimeUs now = io::MonotonicNowUs();
    ReadMembership();
    engine_.OnTick(now);
    PublishMembership();
    ++counters_.gossip_rounds;
    counters_.round_seconds.Observe(static_cast<double>(io::MonotonicNowUs() - now) * 1e-6);
    if (leaving_) {
      // Resend to peers that have not answered yet (UDP may have lost either packet).
      for (const Endpoint& to : leave_pending_) engine_.SendSyn(to);
      MaybeFinishLeave(now);
    }
    ScheduleTick(now, JitteredIntervalUs());
  }

  void MaybeFinishLeave(TimeUs now_us) {
    if (leave_done_.empty()) return;
    if (!leave_pending_.empty() && now_us < leave_deadline_us_) return;
    if (!leave_pending_.empty()) {
      spdlog::info("node: leave deadline reached; {} peer(s) did not answer",
                   leave_pending_.size());
    }
    for (auto& fn : leave_done_) fn();
    leave_done_.clear();
  }

  // Called by the engine's Send after it counted the packet in packets_out: the counter that
  // moved names the message type (the PacketSink interface does not carry it).
  void ObserveSent(const Endpoint& to, size_t bytes) {
    const EngineStats& st = engine_.stats();
    size_t type = kMessageTypeCount;
    for (size_t i = 0; i < kMessageTypeCount; ++i) {
      if (st.packets_out[i] != sent_seen_[i]) {
        sent_seen_[i] = st.packets_out[i];
        type = i;
      }
    }
    switch (static_cast<wire::MessageType>(type)) {
      case wire::MessageType::kSyn:
        // Bounded: peers that never answer are dropped wholesale past the bound.
        if (syn_sent_us_.size() >= kMaxPendingSyns) syn_sent_us_.clear();
        syn_sent_us_[to] = io::MonotonicNowUs();
        break;
      case wire::MessageType::kSynAck:
      case wire::MessageType::kAck:
      case wire::MessageType::kRumor:
        counters_.delta_packet_bytes.Observe(static_cast<double>(bytes));
        break;
      default: break;
    }
  }

  static constexpr size_t kMaxPendingSyns = 4096;
  static constexpr TimeUs kRefusalLogUs = 10 * kUsPerSec;

  io::EventLoop* loop_;
  TimeUs interval_us_;
  Rng jitter_;
  std::shared_ptr<EventLog> events_;
  io::EventLoop::TimerId tick_timer_ = 0;
  TimeUs tick_deadline_us_ = 0;
  EngineTimer rumor_timer_;
  EngineTimer probe_timer_;
  uint64_t sent_seen_[kMessageTypeCount] = {};
  absl::flat_hash_map<Endpoint, TimeUs> syn_sent_us_;
  Engine engine_;
  NodeStats counters_;
  bool leaving_ = false;
  TimeUs leave_deadline_us_ = 0;
  absl::flat_hash_set<Endpoint> leave_pending_;
  std::vector<std::function<void()>> leave_done_;
  BroadcastRing<MemberRecord>* member_out_ = nullptr;  // shard 0 of several
  std::optional<BroadcastRing<MemberRecord>::Reader> member_in_;  // the other shards
  BroadcastRing<MemberRecord>* member_in_ring_ = nullptr;
  std::vector<MemberRecord> member_batch_;
  TimeUs last_refusal_log_us_ = 0;
  uint64_t refusals_since_log_ = 0;
};

template <typename T, typename Fn>
absl::StatusOr<T> Node::Call(size_t shard, Fn fn) {
  struct Reply {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<absl::StatusOr<T>> value;  // guarded by mu
  };
  auto reply = std::make_shared<Reply>();
  Runtime* rt = rts_[shard].get();
  absl::Status posted = loops_[shard]->Post([reply, rt, fn = std::move(fn)]() mutable {
    absl::StatusOr<T> r = fn(*rt);
    std::lock_guard<std::mutex> lock(reply->mu);
    reply->value = std::move(r);
    reply->cv.notify_all();
  });
  if (absl::IsResourceExhausted(posted)) {
    return absl::UnavailableError("node: engine command queue is full");
  }
  if (!posted.ok()) return absl::UnavailableError("node: stopped");
  std::unique_lock<std::mutex> lock(reply->mu);
  if (!reply->cv.wait_for(lock, absl::ToChronoMicroseconds(call_timeout_),
                          [&] { return reply->value.has_value(); })) {
    return absl::DeadlineExceededError(
        absl::StrCat("node: no answer from the engine within ", absl::FormatDuration(call_timeout_)));
  }
  return std::move(*reply->value);
}

template <typename T, typename Fn>
absl::StatusOr<std::vector<T>> Node::CallEach(Fn fn) {
  struct Reply {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::optional<absl::StatusOr<T>>> values;  // guarded by mu
    size_t answered = 0;                                   // guarded by mu
  };
  const size_t n = loops_.size();
  auto reply = std::make_shared<Reply>();
  reply->values.resize(n);
  size_t posted_count = 0;
  absl::Status post_error;
  for (size_t s = 0; s < n; ++s) {
    Runtime* rt = rts_[s].get();
    absl::Status posted = loops_[s]->Post([reply, rt, s, fn]() mutable {
      absl::StatusOr<T> r = fn(*rt);
      std::lock_guard<std::mutex> lock(reply->mu);
      reply->values[s] = std::move(r);
      ++reply->answered;
      reply->cv.notify_all();
    });
    if (!posted.ok()) {
      post_error = absl::IsResourceExhausted(posted)
                       ? absl::UnavailableError("node: engine command queue is full")
                       : absl::UnavailableError("node: stopped");
      break;
    }
    ++posted_count;
  }
  std::unique_lock<std::mutex> lock(reply->mu);
  if (!reply->cv.wait_for(lock, absl::ToChronoMicroseconds(call_timeout_),
                          [&] { return reply->answered == posted_count; })) {
    return absl::DeadlineExceededError(
        absl::StrCat("node: no answer from the engine within ", absl::FormatDuration(call_timeout_)));
  }
  if (!post_error.ok()) return post_error;
  std::vector<T> out;
  out.reserve(n);
  for (auto& v : reply->values) {
    if (!v->ok()) return v->status();
    out.push_back(std::move(**v));
  }
  return out;
}

}  // namespace scuttle

#endif  // SCUTTLE_NODE_NODE_RUNTIME_H_
