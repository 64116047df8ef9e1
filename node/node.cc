// scuttle::Node (node/node.h): start and stop. The loop-thread state is node_runtime.h;
// seeds are resolved in node_seeds.cc, the thread-safe key and member calls are in
// node_calls.cc, live configuration and the keyring in node_config.cc.
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
#include "node/node_runtime.h"

namespace scuttle {

namespace {

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

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
  ec.seeds = node_internal::ResolveSeeds(o.seeds, node->bound_.family, node->advertise_,
                                         node->bound_, &failures);

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

}  // namespace scuttle
