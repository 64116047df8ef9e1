#include "io/node.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/node_state.h"
#include "engine/rng.h"
#include "io/clock.h"
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
  Runtime(io::EventLoop* loop, EngineConfig config, uint64_t jitter_seed)
      : loop_(loop),
        interval_us_(config.gossip_interval_us),
        jitter_(jitter_seed),
        engine_(std::move(config), this, this) {}

  Engine& engine() { return engine_; }
  io::EventLoop& loop() { return *loop_; }
  NodeStats& counters() { return counters_; }

  // ---- PacketSink: the engine encodes straight into transport send slots ----
  std::span<uint8_t> Acquire(size_t min_bytes) override {
    return loop_->transport().AcquireTx(min_bytes);
  }
  void Commit(const Endpoint& to, std::span<const uint8_t> packet) override {
    loop_->transport().CommitTx(to, packet);
  }
  void Abort() override { loop_->transport().AbortTx(); }

  // ---- EventSink ----
  void OnKey(const NodeState& node, KeyEvent event, std::string_view key,
             std::string_view /*value*/, Version version) override {
    ++counters_.key_events;
    if (spdlog::should_log(spdlog::level::trace)) {
      spdlog::trace("key {}/{} {} v{}", node.name(), key, KeyEventName(event), version);
    }
  }
  void OnMember(const NodeState& node, MemberEvent event) override {
    ++counters_.member_events;
    spdlog::info("member {} (generation {}) {}", node.name(), node.generation(),
                 MemberEventName(event));
  }

  void OnDatagram(const io::RxDatagram& d) {
    if (!leaving_) {
      engine_.OnPacket(io::MonotonicNowUs(), d.from, d.data);
      return;
    }
    // While leaving, a SynAck from a peer proves it received a Syn carrying our leaving
    // flag (every Syn after Leave() carries it).
    constexpr size_t kSynAck = static_cast<size_t>(wire::MessageType::kSynAck);
    const uint64_t before = engine_.stats().packets_in[kSynAck];
    engine_.OnPacket(io::MonotonicNowUs(), d.from, d.data);
    if (engine_.stats().packets_in[kSynAck] > before && leave_pending_.erase(d.from) > 0) {
      MaybeFinishLeave(io::MonotonicNowUs());
    }
  }

  // Arms the next gossip round: gossip_interval ±10%, from a PRNG seeded by name and
  // generation (so nodes started together drift apart instead of gossiping in lockstep).
  void ScheduleTick(TimeUs now_us, TimeUs delay_us) {
    auto id = loop_->AddTimer(now_us + delay_us, [this] { Tick(); });
    if (!id.ok()) spdlog::error("node: cannot arm the gossip timer: {}", SV(id.status().message()));
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
    const TimeUs now = io::MonotonicNowUs();
    engine_.OnTick(now);
    ++counters_.gossip_rounds;
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

  io::EventLoop* loop_;
  TimeUs interval_us_;
  Rng jitter_;
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
  if (o.seed_resolve_interval <= absl::ZeroDuration() || o.call_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("node: intervals and timeouts must be positive");
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
  auto transport = io::OpenTransport(to);
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
  node->gossip_interval_ = absl::Microseconds(ec.gossip_interval_us);
  node->leave_intervals_ = std::max(o.leave_intervals, 1);

  uint64_t failures = 0;
  ec.seeds = ResolveSeeds(o.seeds, node->bound_.family, node->advertise_, node->bound_, &failures);

  io::EventLoopOptions lo;
  lo.command_queue_capacity = o.command_queue_capacity;
  node->loop_ = std::make_unique<io::EventLoop>(std::move(*transport), lo);
  node->rt_ = std::make_unique<Runtime>(node->loop_.get(), std::move(ec), seed + 1);
  Runtime* rt = node->rt_.get();
  rt->counters().seed_resolutions = 1;
  rt->counters().seed_resolve_failures = failures;
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
        absl::ToChronoMicroseconds(gossip_interval_ * (intervals + 1) + call_timeout_);
    std::unique_lock<std::mutex> lock(done->mu);
    if (!done->cv.wait_for(lock, limit, [&] { return done->done; })) {
      spdlog::warn("node: graceful leave did not finish in time; stopping anyway");
    }
  } else {
    spdlog::warn("node: cannot post the leave ({}); stopping without it", SV(posted.message()));
  }
  loop_->Stop();
  absl::Status s = loop_->Join();
  stopped_ = true;
  spdlog::info("node: {} stopped", name_);
  return s;
}

void Node::Abort() {
  if (stopped_) return;
  StopResolver();
  loop_->Stop();
  (void)loop_->Join();
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
  return Call<Version>([k = std::string(key), v = std::string(value)](Runtime& rt)
                           -> absl::StatusOr<Version> {
    Engine& e = rt.engine();
    if (absl::Status s = e.Set(k, v, io::MonotonicNowUs()); !s.ok()) return s;
    return e.self().max_version();
  });
}

absl::StatusOr<Version> Node::SetWithTtl(std::string_view key, std::string_view value,
                                         absl::Duration ttl) {
  const TimeUs ttl_us = absl::ToInt64Microseconds(ttl);
  return Call<Version>([k = std::string(key), v = std::string(value), ttl_us](Runtime& rt)
                           -> absl::StatusOr<Version> {
    Engine& e = rt.engine();
    if (absl::Status s = e.SetWithTtl(k, v, ttl_us, io::MonotonicNowUs()); !s.ok()) return s;
    return e.self().max_version();
  });
}

absl::StatusOr<Version> Node::Delete(std::string_view key) {
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
    return KvEntry{ns->name(), k, std::string(ns->ValueOf(s)), s.version};
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
        out.push_back(KvEntry{ns->name(), std::string(ns->KeyOf(s)),
                              std::string(ns->ValueOf(s)), s.version});
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
      out.push_back(std::move(m));
    }
    std::sort(out.begin(), out.end(),
              [](const MemberInfo& a, const MemberInfo& b) { return a.name < b.name; });
    return out;
  });
}

absl::StatusOr<NodeStats> Node::Stats() {
  return Call<NodeStats>([](Runtime& rt) -> absl::StatusOr<NodeStats> {
    NodeStats s = rt.counters();
    const io::Transport& t = rt.loop().transport();
    s.transport_name = t.name();
    s.transport = t.stats();
    s.engine = rt.engine().stats();
    s.apply = rt.engine().apply_stats();
    s.build = rt.engine().build_stats();
    s.loop = rt.loop().stats();
    return s;
  });
}

}  // namespace scuttle
