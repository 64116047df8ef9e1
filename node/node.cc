#include "node/node.h"

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

namespace scuttle {
namespace {

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Applications may not write scuttle's own keys (the locality label, engine/membership.h).
absl::Status CheckUserKey(std::string_view key) {
  if (!key.starts_with(kReservedKeyPrefix)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "key '", AV(key), "': keys under '", AV(kReservedKeyPrefix), "' are reserved for scuttle"));
}

bool IsLive(MemberState s) { return s == MemberState::kAlive || s == MemberState::kSuspect; }

// A kExpiring key past its deadline is gone for readers even before the next round's
// expiry turns it into a tombstone.
bool Visible(const NodeState::Slot& s, TimeUs now_us) {
  if (s.status == KeyStatus::kTombstone) return false;
  return s.status != KeyStatus::kExpiring || s.time_us > now_us;
}

}  // namespace

// ---- Loop-thread state ------------------------------------------------------------------

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
    events_->Append(std::move(e));
  }
  void OnMember(const NodeState& node, MemberEvent event) override {
    ++counters_.member_events;
    ++counters_.member_events_by_type[static_cast<size_t>(event)];
    spdlog::info("member {} (generation {}) {}", node.name(), node.generation(),
                 MemberEventName(event));
    WatchEvent e;
    e.kind = WatchEvent::Kind::kMember;
    e.member_event = event;
    e.node = node.name();
    e.generation = node.generation();
    e.version = node.max_version();
    events_->Append(std::move(e));
  }
  void OnReset(const NodeState& node) override {
    ++counters_.resets;
    WatchEvent e;
    e.kind = WatchEvent::Kind::kReset;
    e.node = node.name();
    e.generation = node.generation();
    events_->Append(std::move(e));
  }

  void OnDatagram(const io::RxDatagram& d) {
    constexpr size_t kSynAck = static_cast<size_t>(wire::MessageType::kSynAck);
    const uint64_t before = engine_.stats().packets_in[kSynAck];
    const TimeUs now = io::MonotonicNowUs();
    engine_.OnPacket(now, d.from, d.data);
    if (engine_.stats().packets_in[kSynAck] == before) return;
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
      if (n == &engine_.self() || !n->endpoint.valid() || !IsLive(n->liveness.state)) continue;
      leave_pending_.insert(n->endpoint);
    }
    for (const Endpoint& to : leave_pending_) engine_.SendSyn(to);
    spdlog::info("node: leaving; told {} live peer(s)", leave_pending_.size());
    MaybeFinishLeave(now);
  }

 private:
  void Tick() {
    tick_timer_ = 0;
    const TimeUs now = io::MonotonicNowUs();
    engine_.OnTick(now);
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

  io::EventLoop* loop_;
  TimeUs interval_us_;
  Rng jitter_;
  std::shared_ptr<EventLog> events_;
  io::EventLoop::TimerId tick_timer_ = 0;
  TimeUs tick_deadline_us_ = 0;
  uint64_t sent_seen_[kMessageTypeCount] = {};
  absl::flat_hash_map<Endpoint, TimeUs> syn_sent_us_;
  Engine engine_;
  NodeStats counters_;
  bool leaving_ = false;
  TimeUs leave_deadline_us_ = 0;
  absl::flat_hash_set<Endpoint> leave_pending_;
  std::vector<std::function<void()>> leave_done_;
};

// ---- Seed resolution ----------------------------------------------------------------------

absl::Status ParseHostPort(std::string_view text, std::string* host, uint16_t* port) {
  std::string_view h, p;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("'", AV(text), "' is not [ipv6]:port"));
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", AV(text), "' is not host:port"));
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", AV(text), "': write IPv6 addresses as [addr]:port"));
    }
  }
  uint32_t v = 0;
  if (h.empty() || !absl::SimpleAtoi(AV(p), &v) || v == 0 || v > 65535 ||
      p.find_first_not_of("0123456789") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", AV(text), "' is not host:port (port 1..65535)"));
  }
  *host = std::string(h);
  *port = static_cast<uint16_t>(v);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Endpoint>> ResolveHostPort(std::string_view text, int family) {
  std::string host;
  uint16_t port = 0;
  if (absl::Status s = ParseHostPort(text, &host, &port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = family == 4 ? AF_INET : AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("resolve '", AV(text), "': ", gai_strerror(rc)));
  }
  std::vector<Endpoint> out;
  for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Endpoint ep = io::FromSockaddr(ai->ai_addr, ai->ai_addrlen);
    if (!ep.valid()) continue;
    ep.port = port;
    if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(ep);
  }
  ::freeaddrinfo(res);
  if (out.empty()) {
    return absl::UnavailableError(absl::StrCat("resolve '", AV(text), "': no usable address"));
  }
  return out;
}

namespace {

// Resolves every seed; unresolvable ones are logged and skipped (DNS may come later, e.g.
// a Kubernetes headless service). Our own addresses are left out.
std::vector<Endpoint> ResolveSeeds(const std::vector<std::string>& seeds, int family,
                                   const Endpoint& self_a, const Endpoint& self_b,
                                   uint64_t* failures) {
  std::vector<Endpoint> out;
  for (const std::string& seed : seeds) {
    auto eps = ResolveHostPort(seed, family);
    if (!eps.ok()) {
      ++*failures;
      spdlog::warn("node: seed {}: {}", seed, SV(eps.status().message()));
      continue;
    }
    for (const Endpoint& ep : *eps) {
      if (ep == self_a || ep == self_b) continue;
      if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(ep);
    }
  }
  return out;
}

}  // namespace

struct Node::Resolver {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;  // guarded by mu
  std::thread thread;
};

void Node::StartResolver(std::vector<std::string> seeds, absl::Duration interval) {
  if (seeds.empty()) return;
  resolver_ = std::make_unique<Resolver>();
  Resolver* r = resolver_.get();
  const int family = bound_.family;
  const Endpoint a = advertise_, b = bound_;
  const auto period = absl::ToChronoMilliseconds(interval);
  r->thread = std::thread([this, r, seeds = std::move(seeds), family, a, b, period] {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(r->mu);
        if (r->cv.wait_for(lock, period, [r] { return r->stop; })) return;
      }
      uint64_t failures = 0;
      std::vector<Endpoint> eps = ResolveSeeds(seeds, family, a, b, &failures);
      absl::Status s = loop_->Post([this, eps = std::move(eps), failures]() mutable {
        ++rt_->counters().seed_resolutions;
        rt_->counters().seed_resolve_failures += failures;
        // Keep the last good list when every seed failed to resolve this time.
        if (!eps.empty()) rt_->engine().SetSeeds(std::move(eps));
      });
      if (!s.ok()) spdlog::debug("node: seed update not posted: {}", SV(s.message()));
    }
  });
}

void Node::StopResolver() {
  if (resolver_ == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(resolver_->mu);
    resolver_->stop = true;
  }
  resolver_->cv.notify_all();
  if (resolver_->thread.joinable()) resolver_->thread.join();
  resolver_.reset();
}

// ---- Start / stop -------------------------------------------------------------------------

// A process that exits with an io_uring ring releases the ring's registered socket from a
// kernel worker shortly after exit (measured here: 40-60 ms, after SIGTERM and SIGKILL
// alike), so a restart on the same port can find it still bound. Wait a bounded time for
// the port instead of failing a supervisor's immediate restart; a port that stays busy
// still fails, after the wait.
static absl::StatusOr<std::unique_ptr<io::Transport>> OpenTransportWaitingForPort(
    const io::TransportOptions& to) {
  constexpr absl::Duration kBusyPortWait = absl::Seconds(2);
  const absl::Time deadline = absl::Now() + kBusyPortWait;
  bool logged = false;
  for (;;) {
    auto transport = io::OpenTransport(to);
    if (transport.ok() || !absl::StrContains(transport.status().message(), "EADDRINUSE") ||
        absl::Now() >= deadline) {
      return transport;
    }
    if (!logged) {
      spdlog::info("node: {} is busy, waiting up to {} for it to be released",
                   to.bind.ToString(), absl::FormatDuration(kBusyPortWait));
      logged = true;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::StatusOr<std::unique_ptr<Node>> Node::Start(NodeOptions o) {
  EngineConfig& ec = o.engine;
  if (ec.node_name.empty() || ec.node_name.size() > wire::kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("node: name must be 1..", wire::kMaxNameBytes, " bytes"));
  }
  if (ec.gossip_interval_us <= 0) {
    return absl::InvalidArgumentError("node: gossip interval must be positive");
  }
  if (ec.max_packet_bytes < 600 || ec.max_packet_bytes > wire::kMaxUdpPayloadBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "node: max_packet_bytes must be in [600, ", wire::kMaxUdpPayloadBytes, "]"));
  }
  if (ec.max_datagrams_per_reply < 1 || ec.max_datagrams_per_reply > kMaxDatagramsPerReply) {
    return absl::InvalidArgumentError(absl::StrCat(
        "node: max_datagrams_per_reply must be in [1, ", kMaxDatagramsPerReply, "]"));
  }
  if (o.seed_resolve_interval <= absl::ZeroDuration() || o.call_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("node: intervals and timeouts must be positive");
  }
  if (!o.locality.empty()) {
    if (absl::Status s = ValidateLocality(o.locality); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("node: ", s.message()));
    }
  }
  if (!(ec.membership.spatial_exponent >= 0 &&
        ec.membership.spatial_exponent <= kMaxSpatialExponent)) {
    return absl::InvalidArgumentError(
        absl::StrCat("node: spatial_exponent must be in [0, ", kMaxSpatialExponent, "]"));
  }
  if (absl::Status s = ValidateRumorOptions(ec.epidemic.rumor_options); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("node: rumor: ", s.message()));
  }

  SecurityConfig& sec = ec.security;
  if (!o.keyring_file.empty()) {
    absl::StatusOr<wire::Keyring> ring = LoadKeyringFile(o.keyring_file);
    if (!ring.ok()) return absl::Status(ring.status().code(), absl::StrCat("node: keyring: ", ring.status().message()));
    sec.keyring = std::move(*ring);
  }
  if (!wire::CipherAvailable(sec.cipher)) {
    return absl::InvalidArgumentError(absl::StrCat("node: cipher ", wire::CipherName(sec.cipher),
                                                   " is not available on this CPU"));
  }
  // Nonce prefix and cookie key from the OS CSPRNG (the engine's rng is seeded from the
  // name and generation, which anyone can guess).
  if (sec.sender_id == 0) {
    const wire::KeyBytes r = wire::GenerateKey();
    std::memcpy(&sec.sender_id, r.data(), 8);
    if (sec.sender_id == 0) sec.sender_id = 1;
    std::memcpy(sec.cookie_secret.data(), r.data() + 8, 16);
  }

  io::TransportOptions to;
  to.kind = o.io;
  to.bind = o.listen;
  // Receive anything a peer may send (its max_packet_bytes may exceed ours); send slots
  // have the engine's encoder head room (it builds back to front, then sends a sub-span).
  to.max_datagram_bytes = io::kMaxUdpPayloadBytes;
  to.tx_slot_bytes = ec.max_packet_bytes + 1024;
  to.rx_buffer_count = o.rx_buffer_count;
  to.tx_slot_count = o.tx_slot_count;
  auto transport = OpenTransportWaitingForPort(to);
  if (!transport.ok()) return transport.status();

  std::unique_ptr<Node> node(new Node());
  node->name_ = ec.node_name;
  node->transport_name_ = (*transport)->name();
  node->bound_ = (*transport)->local_endpoint();
  if (!ec.advertise.valid()) ec.advertise = node->bound_;
  if (ec.advertise.port == 0) ec.advertise.port = node->bound_.port;
  node->advertise_ = ec.advertise;
  ec.generation = o.generation != 0 ? o.generation
                                     : static_cast<Generation>(absl::ToUnixMicros(absl::Now()));
  node->generation_ = ec.generation;
  const uint64_t seed = Fnv1a(ec.node_name) ^ (ec.generation * 0x9e3779b97f4a7c15ull);
  if (ec.rng_seed == 0) ec.rng_seed = seed;
  node->call_timeout_ = o.call_timeout;
  node->gossip_interval_us_ = ec.gossip_interval_us;
  node->leave_intervals_ = std::max(o.leave_intervals, 1);
  node->keyring_file_ = o.keyring_file;

  uint64_t failures = 0;
  ec.seeds = ResolveSeeds(o.seeds, node->bound_.family, node->advertise_, node->bound_, &failures);

  io::EventLoopOptions lo;
  lo.command_queue_capacity = o.command_queue_capacity;
  node->loop_ = std::make_unique<io::EventLoop>(std::move(*transport), lo);
  node->events_ = std::make_shared<EventLog>(o.events);
  node->dispatcher_ =
      std::make_shared<EventDispatcher>(node->events_, o.subscription_queue_events);
  node->rt_ = std::make_unique<Runtime>(node->loop_.get(), std::move(ec), seed + 1, node->events_);
  Runtime* rt = node->rt_.get();
  rt->counters().seed_resolutions = 1;
  rt->counters().seed_resolve_failures = failures;
  if (!rt->engine().config().security.keyring.empty()) {
    const auto& r = rt->engine().config().security.keyring;
    absl::Status s = rt->engine().Set(kKeyringKey, r.primary().fingerprint, io::MonotonicNowUs());
    if (!s.ok()) return s;
    spdlog::info("node: gossip sealed with {} (primary key {}, {} installed; verify incoming {}, outgoing {})",
                 wire::CipherName(rt->engine().cipher()), r.primary().fingerprint, r.size(),
                 rt->engine().config().security.verify_incoming,
                 rt->engine().config().security.verify_outgoing);
  }
  if (!o.locality.empty()) {
    // Before the first round, so the first digest already carries it. The loop is not
    // running yet: this thread may touch the engine.
    absl::Status s = rt->engine().Set(kLocalityKey, o.locality, io::MonotonicNowUs());
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("node: locality: ", s.message()));
    }
  }
  node->loop_->set_on_datagram([rt](const io::RxDatagram& d) { rt->OnDatagram(d); });
  // The first round right away: a joining node reaches its seeds without waiting.
  rt->ScheduleTick(io::MonotonicNowUs(), 0);
  node->loop_->Start();
  node->StartResolver(std::move(o.seeds), o.seed_resolve_interval);
  spdlog::info("node: {} generation {} gossiping on {} (advertised {}) over {}", node->name_,
               node->generation_, node->bound_.ToString(), node->advertise_.ToString(),
               node->transport_name_);
  return node;
}

absl::Status Node::Stop() {
  if (stopped_) return absl::OkStatus();
  StopResolver();
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };
  auto done = std::make_shared<Done>();
  Runtime* rt = rt_.get();
  const int intervals = leave_intervals_;
  absl::Status posted = loop_->Post([rt, done, intervals] {
    rt->BeginLeave(intervals, [done] {
      std::lock_guard<std::mutex> lock(done->mu);
      done->done = true;
      done->cv.notify_all();
    });
  });
  if (posted.ok()) {
    // The loop enforces the leave deadline; this wait only guards against a wedged loop.
    const auto limit =
        absl::ToChronoMicroseconds(absl::Microseconds(gossip_interval_us_.load()) * (intervals + 1) +
                                   call_timeout_);
    std::unique_lock<std::mutex> lock(done->mu);
    if (!done->cv.wait_for(lock, limit, [&] { return done->done; })) {
      spdlog::warn("node: graceful leave did not finish in time; stopping anyway");
    }
  } else {
    spdlog::warn("node: cannot post the leave ({}); stopping without it", SV(posted.message()));
  }
  loop_->Stop();
  absl::Status s = loop_->Join();
  events_->Close();
  dispatcher_->Stop();
  stopped_ = true;
  spdlog::info("node: {} stopped", name_);
  return s;
}

void Node::Abort() {
  if (stopped_) return;
  StopResolver();
  loop_->Stop();
  (void)loop_->Join();
  events_->Close();
  dispatcher_->Stop();
  stopped_ = true;
}

Node::~Node() {
  Abort();
  // Order: the loop (and its transport) go first, after its thread exited; the runtime's
  // engine is referenced only by that loop.
  loop_.reset();
  rt_.reset();
}

// ---- Thread-safe calls ----------------------------------------------------------------

template <typename T, typename Fn>
absl::StatusOr<T> Node::Call(Fn fn) {
  struct Reply {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<absl::StatusOr<T>> value;  // guarded by mu
  };
  auto reply = std::make_shared<Reply>();
  Runtime* rt = rt_.get();
  absl::Status posted = loop_->Post([reply, rt, fn = std::move(fn)]() mutable {
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

absl::StatusOr<Version> Node::Set(std::string_view key, std::string_view value) {
  if (absl::Status s = CheckUserKey(key); !s.ok()) return s;
  return Call<Version>([k = std::string(key), v = std::string(value)](Runtime& rt)
                           -> absl::StatusOr<Version> {
    Engine& e = rt.engine();
    if (absl::Status s = e.Set(k, v, io::MonotonicNowUs()); !s.ok()) return s;
    return e.self().max_version();
  });
}

absl::StatusOr<Version> Node::SetWithTtl(std::string_view key, std::string_view value,
                                         absl::Duration ttl) {
  if (absl::Status s = CheckUserKey(key); !s.ok()) return s;
  const TimeUs ttl_us = absl::ToInt64Microseconds(ttl);
  return Call<Version>([k = std::string(key), v = std::string(value), ttl_us](Runtime& rt)
                           -> absl::StatusOr<Version> {
    Engine& e = rt.engine();
    if (absl::Status s = e.SetWithTtl(k, v, ttl_us, io::MonotonicNowUs()); !s.ok()) return s;
    return e.self().max_version();
  });
}

absl::StatusOr<Version> Node::Delete(std::string_view key) {
  if (absl::Status s = CheckUserKey(key); !s.ok()) return s;
  return Call<Version>([k = std::string(key)](Runtime& rt) -> absl::StatusOr<Version> {
    Engine& e = rt.engine();
    if (absl::Status s = e.Delete(k, io::MonotonicNowUs()); !s.ok()) return s;
    return e.self().max_version();
  });
}

absl::Status Node::Leave() {
  return Call<bool>([](Runtime& rt) -> absl::StatusOr<bool> {
           rt.engine().Leave();
           return true;
         })
      .status();
}

absl::StatusOr<KvEntry> Node::Get(std::string_view key, std::string_view node) {
  return Call<KvEntry>([k = std::string(key), n = std::string(node)](Runtime& rt)
                           -> absl::StatusOr<KvEntry> {
    const Engine& e = rt.engine();
    const NodeState* ns = n.empty() ? &e.self() : e.FindNode(n);
    if (ns == nullptr) return absl::NotFoundError(absl::StrCat("unknown node '", n, "'"));
    const uint32_t idx = ns->Find(k);
    if (idx == NodeState::kNoSlot || !Visible(ns->slot(idx), io::MonotonicNowUs())) {
      return absl::NotFoundError(absl::StrCat("no key '", k, "' on node '", ns->name(), "'"));
    }
    const NodeState::Slot& s = ns->slot(idx);
    return KvEntry{ns->name(), k, std::string(ns->ValueOf(s)), s.version, 0};
  });
}

absl::StatusOr<std::vector<KvEntry>> Node::Scan(std::string_view prefix, std::string_view node) {
  using Result = std::vector<KvEntry>;
  return Call<Result>([p = std::string(prefix), n = std::string(node)](Runtime& rt)
                          -> absl::StatusOr<Result> {
    const Engine& e = rt.engine();
    std::vector<const NodeState*> nodes;
    if (n.empty()) {
      nodes.assign(e.cluster().nodes().begin(), e.cluster().nodes().end());
    } else if (const NodeState* ns = e.FindNode(n); ns != nullptr) {
      nodes.push_back(ns);
    } else {
      return absl::NotFoundError(absl::StrCat("unknown node '", n, "'"));
    }
    const TimeUs now = io::MonotonicNowUs();
    Result out;
    for (const NodeState* ns : nodes) {
      ns->Scan(p, [&](const NodeState::Slot& s) {
        if (!Visible(s, now)) return;
        const int64_t left =
            s.status == KeyStatus::kExpiring && ns == &e.cluster().self() ? s.time_us - now : 0;
        out.push_back(KvEntry{ns->name(), std::string(ns->KeyOf(s)),
                              std::string(ns->ValueOf(s)), s.version, left});
      });
    }
    std::sort(out.begin(), out.end(), [](const KvEntry& a, const KvEntry& b) {
      return a.node != b.node ? a.node < b.node : a.key < b.key;
    });
    return out;
  });
}

absl::StatusOr<std::vector<MemberInfo>> Node::Members() {
  using Result = std::vector<MemberInfo>;
  return Call<Result>([](Runtime& rt) -> absl::StatusOr<Result> {
    const Engine& e = rt.engine();
    const TimeUs now = io::MonotonicNowUs();
    Result out;
    out.reserve(e.cluster().size());
    for (const NodeState* ns : e.cluster().nodes()) {
      MemberInfo m;
      m.name = ns->name();
      m.generation = ns->generation();
      m.gossip_addr = ns->endpoint;
      m.is_self = ns == &e.self();
      if (m.is_self) {
        m.state = ns->leaving ? MemberState::kLeft : MemberState::kAlive;
      } else {
        m.state = ns->liveness.state;
        m.phi = e.membership().Phi(*ns, now);
      }
      m.heartbeat = ns->heartbeat;
      m.max_version = ns->max_version();
      m.last_gc_version = ns->last_gc_version();
      m.keys = ns->num_live();
      m.tombstones = ns->num_tombstones();
      // Remote input: only a well-formed label (printable ASCII) is reported.
      if (const std::string_view loc = LocalityOf(*ns); ValidateLocality(loc).ok()) {
        m.locality = std::string(loc);
      }
      out.push_back(std::move(m));
    }
    std::sort(out.begin(), out.end(),
              [](const MemberInfo& a, const MemberInfo& b) { return a.name < b.name; });
    return out;
  });
}

absl::StatusOr<NodeStats> Node::Stats() {
  absl::StatusOr<NodeStats> result = Call<NodeStats>([](Runtime& rt) -> absl::StatusOr<NodeStats> {
    NodeStats s = rt.counters();
    const io::Transport& t = rt.loop().transport();
    s.transport_name = t.name();
    s.transport = t.stats();
    s.engine = rt.engine().stats();
    s.apply = rt.engine().apply_stats();
    s.build = rt.engine().build_stats();
    s.loop = rt.loop().stats();
    const Engine& e = rt.engine();
    s.rumor = e.rumor_stats();
    s.rumors_hot = e.epidemic_hot();
    s.forgotten_remembered = e.cluster().forgotten_count();
    for (const NodeState* ns : e.cluster().nodes()) {
      const bool self = ns == &e.self();
      const MemberState st = self ? (ns->leaving ? MemberState::kLeft : MemberState::kAlive)
                                  : ns->liveness.state;
      ++s.members_by_state[static_cast<size_t>(st)];
      (self ? s.keys_local : s.keys_replicated) += ns->num_live();
      (self ? s.tombstones_local : s.tombstones_replicated) += ns->num_tombstones();
      if (self) s.expiring_local = ns->num_expiring();
      s.arena_allocated_bytes += ns->arena().allocated_bytes();
      s.arena_live_bytes += ns->arena().live_bytes();
    }
    s.watch = rt.events().stats();
    return s;
  });
  if (result.ok()) result->subscription_overflows = dispatcher_->overflows();
  return result;
}

}  // namespace scuttle

namespace scuttle {

absl::StatusOr<KvSnapshot> Node::Snapshot(std::string_view prefix, std::string_view node) {
  return Call<KvSnapshot>([this, p = std::string(prefix), n = std::string(node)](Runtime& rt)
                              -> absl::StatusOr<KvSnapshot> {
    const Engine& e = rt.engine();
    std::vector<const NodeState*> nodes;
    if (n.empty()) {
      nodes.assign(e.cluster().nodes().begin(), e.cluster().nodes().end());
    } else if (const NodeState* ns = e.FindNode(n); ns != nullptr) {
      nodes.push_back(ns);
    } else {
      return absl::NotFoundError(absl::StrCat("unknown node '", n, "'"));
    }
    const TimeUs now = io::MonotonicNowUs();
    KvSnapshot out;
    // Events are appended only on this thread, so no event can slip between the two.
    out.seq = events_->last_seq();
    for (const NodeState* ns : nodes) {
      ns->Scan(p, [&](const NodeState::Slot& s) {
        if (!Visible(s, now)) return;
        out.entries.push_back(KvEntry{ns->name(), std::string(ns->KeyOf(s)),
                                      std::string(ns->ValueOf(s)), s.version, 0});
      });
    }
    std::sort(out.entries.begin(), out.entries.end(), [](const KvEntry& a, const KvEntry& b) {
      return a.node != b.node ? a.node < b.node : a.key < b.key;
    });
    return out;
  });
}

std::unique_ptr<Subscription> Node::Subscribe(WatchFilter filter,
                                              std::function<void(const WatchEvent&)> callback) {
  const uint64_t id = dispatcher_->Add(std::move(filter), std::move(callback));
  return std::unique_ptr<Subscription>(new Subscription(dispatcher_, id));
}

// ---- Live configuration ---------------------------------------------------------------------

namespace {

constexpr std::pair<const char*, spdlog::level::level_enum> kLogLevels[] = {
    {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
    {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
    {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
    {"off", spdlog::level::off},
};

std::optional<spdlog::level::level_enum> ParseLogLevel(std::string_view name) {
  for (const auto& [n, level] : kLogLevels) {
    if (name == n) return level;
  }
  return std::nullopt;
}

std::string LogLevelName(spdlog::level::level_enum level) {
  for (const auto& [n, l] : kLogLevels) {
    if (l == level) return n;
  }
  return "info";
}

absl::Status CheckDuration(const char* field, const std::optional<absl::Duration>& d) {
  if (d.has_value() && (*d <= absl::ZeroDuration() || *d == absl::InfiniteDuration())) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", absl::FormatDuration(*d), " must be a positive, finite duration"));
  }
  return absl::OkStatus();
}

LiveConfig CurrentConfig(const Engine& e) {
  const EngineConfig& c = e.config();
  LiveConfig l;
  l.gossip_interval_ms = c.gossip_interval_us / kUsPerMs;
  l.fanout = c.fanout;
  l.phi_threshold = c.membership.phi_threshold;
  l.dead_node_grace = absl::Microseconds(c.membership.dead_node_grace_us);
  l.tombstone_grace = absl::Microseconds(c.tombstone_grace_us);
  l.log_level = LogLevelName(spdlog::get_level());
  l.rumor_k = static_cast<int>(c.epidemic.rumor_options.k);
  return l;
}

}  // namespace

absl::Status ValidateLiveConfigPatch(const LiveConfigPatch& p) {
  if (p.gossip_interval_ms.has_value() &&
      (*p.gossip_interval_ms < 1 || *p.gossip_interval_ms > 3'600'000)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gossip_interval_ms: ", *p.gossip_interval_ms, " is out of range [1, 3600000]"));
  }
  if (p.fanout.has_value() && (*p.fanout < 1 || *p.fanout > 1024)) {
    return absl::InvalidArgumentError(
        absl::StrCat("fanout: ", *p.fanout, " is out of range [1, 1024]"));
  }
  if (p.phi_threshold.has_value() && !(*p.phi_threshold > 0 && *p.phi_threshold <= 1e6)) {
    return absl::InvalidArgumentError(
        absl::StrCat("phi_threshold: ", *p.phi_threshold, " is out of range (0, 1e6]"));
  }
  if (absl::Status s = CheckDuration("dead_node_grace", p.dead_node_grace); !s.ok()) return s;
  if (absl::Status s = CheckDuration("tombstone_grace", p.tombstone_grace); !s.ok()) return s;
  if (p.log_level.has_value() && !ParseLogLevel(*p.log_level).has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("log_level: '", *p.log_level,
                     "' is not one of trace, debug, info, warn, error, critical, off"));
  }
  if (p.rumor_k.has_value() && (*p.rumor_k < 1 || *p.rumor_k > kMaxLiveRumorK)) {
    return absl::InvalidArgumentError(absl::StrCat("rumor_k: ", *p.rumor_k,
                                                   " is out of range [1, ", kMaxLiveRumorK, "]"));
  }
  return absl::OkStatus();
}

namespace {

KeyringInfo KeyringOf(const Engine& e, const std::string& file) {
  const SecurityConfig& sec = e.config().security;
  KeyringInfo info;
  info.cipher = sec.keyring.empty() ? "none" : wire::CipherName(e.cipher());
  info.verify_incoming = sec.verify_incoming;
  info.verify_outgoing = sec.verify_outgoing;
  info.file = file;
  for (const wire::Key& k : sec.keyring.keys()) {
    KeyringInfo::KeyUse u;
    u.fingerprint = k.fingerprint;
    u.primary = &k == &sec.keyring.primary();
    if (u.primary) {
      info.keys.insert(info.keys.begin(), u);
    } else {
      info.keys.push_back(u);
    }
  }
  for (const NodeState* ns : e.cluster().nodes()) {
    const bool self = ns == &e.self();
    if (!self && ns->liveness.state != MemberState::kAlive &&
        ns->liveness.state != MemberState::kSuspect) {
      continue;
    }
    ++info.members;
    std::string_view fp;
    const uint32_t idx = ns->Find(kKeyringKey);
    if (idx != NodeState::kNoSlot && ns->slot(idx).status == KeyStatus::kSet) {
      fp = ns->ValueOf(ns->slot(idx));
    }
    bool matched = false;
    for (KeyringInfo::KeyUse& u : info.keys) {
      if (!fp.empty() && u.fingerprint == fp) {
        ++u.members_primary;
        matched = true;
      }
    }
    if (!matched) ++info.members_other;
  }
  return info;
}

}  // namespace

absl::StatusOr<KeyringInfo> Node::Keyring() {
  return Call<KeyringInfo>([file = keyring_file_](Runtime& rt) -> absl::StatusOr<KeyringInfo> {
    return KeyringOf(rt.engine(), file);
  });
}

absl::StatusOr<KeyringInfo> Node::UpdateKeyring(KeyringOp op, std::string_view key) {
  std::lock_guard<std::mutex> lock(keyring_mu_);
  absl::StatusOr<wire::Keyring> current = Call<wire::Keyring>(
      [](Runtime& rt) -> absl::StatusOr<wire::Keyring> {
        return rt.engine().config().security.keyring;
      });
  if (!current.ok()) return current.status();
  wire::Keyring next = *current;
  absl::Status s;
  switch (op) {
    case KeyringOp::kInstall: {
      absl::StatusOr<wire::KeyBytes> bytes = wire::DecodeKey(key);
      s = bytes.ok() ? next.Install(*bytes) : bytes.status();
      break;
    }
    case KeyringOp::kUse: s = next.Use(key); break;
    case KeyringOp::kRemove: s = next.Remove(key); break;
  }
  if (!s.ok()) return s;
  if (!keyring_file_.empty()) {
    if (absl::Status w = WriteKeyringFile(keyring_file_, next); !w.ok()) {
      return absl::InternalError(absl::StrCat("keyring file not written, nothing changed: ", w.message()));
    }
  }
  return Call<KeyringInfo>([next = std::move(next), file = keyring_file_](
                               Runtime& rt) mutable -> absl::StatusOr<KeyringInfo> {
    Engine& e = rt.engine();
    const std::string fp = next.empty() ? std::string() : next.primary().fingerprint;
    spdlog::info("keyring: {} key(s), primary {}", next.size(), fp);
    e.SetKeyring(std::move(next));
    if (!fp.empty()) {
      if (absl::Status s = e.Set(kKeyringKey, fp, io::MonotonicNowUs()); !s.ok()) return s;
    }
    return KeyringOf(e, file);
  });
}

absl::StatusOr<LiveConfig> Node::GetLiveConfig() {
  return Call<LiveConfig>(
      [](Runtime& rt) -> absl::StatusOr<LiveConfig> { return CurrentConfig(rt.engine()); });
}

absl::StatusOr<LiveConfig> Node::UpdateLiveConfig(const LiveConfigPatch& patch) {
  if (absl::Status s = ValidateLiveConfigPatch(patch); !s.ok()) return s;
  auto result = Call<LiveConfig>([patch](Runtime& rt) -> absl::StatusOr<LiveConfig> {
    EngineConfig& c = rt.engine().mutable_config();
    const LiveConfig before = CurrentConfig(rt.engine());
    auto changed = [&](const char* field, const std::string& from, const std::string& to) {
      spdlog::info("config: {} {} -> {}", field, from, to);
      ++rt.counters().config_changes[field];
    };
    if (patch.gossip_interval_ms.has_value()) {
      rt.SetInterval(*patch.gossip_interval_ms * kUsPerMs);
      changed("gossip_interval_ms", absl::StrCat(before.gossip_interval_ms),
              absl::StrCat(*patch.gossip_interval_ms));
    }
    if (patch.fanout.has_value()) {
      c.fanout = static_cast<int>(*patch.fanout);
      changed("fanout", absl::StrCat(before.fanout), absl::StrCat(*patch.fanout));
    }
    if (patch.phi_threshold.has_value()) {
      c.membership.phi_threshold = *patch.phi_threshold;
      changed("phi_threshold", absl::StrCat(before.phi_threshold),
              absl::StrCat(*patch.phi_threshold));
    }
    if (patch.dead_node_grace.has_value()) {
      c.membership.dead_node_grace_us = absl::ToInt64Microseconds(*patch.dead_node_grace);
      changed("dead_node_grace", absl::FormatDuration(before.dead_node_grace),
              absl::FormatDuration(*patch.dead_node_grace));
    }
    if (patch.tombstone_grace.has_value()) {
      c.tombstone_grace_us = absl::ToInt64Microseconds(*patch.tombstone_grace);
      changed("tombstone_grace", absl::FormatDuration(before.tombstone_grace),
              absl::FormatDuration(*patch.tombstone_grace));
    }
    if (patch.rumor_k.has_value()) {
      rt.engine().SetRumorK(static_cast<int>(*patch.rumor_k));
      changed("rumor_k", absl::StrCat(before.rumor_k), absl::StrCat(*patch.rumor_k));
    }
    if (patch.log_level.has_value()) {
      changed("log_level", before.log_level, *patch.log_level);  // logged at the old level
      spdlog::set_level(*ParseLogLevel(*patch.log_level));
    }
    return CurrentConfig(rt.engine());
  });
  if (result.ok()) gossip_interval_us_ = result->gossip_interval_ms * kUsPerMs;
  return result;
}

}  // namespace scuttle
