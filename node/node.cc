// scuttle::Node (node/node.h): start and stop. The loop-thread state is node_runtime.h;
// seeds are resolved in node_seeds.cc, the thread-safe key and member calls are in
// node_calls.cc, live configuration and the keyring in node_config.cc.
#include "node/node.h"

#include <netdb.h>
#include <pthread.h>
#include <sched.h>
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
#include "engine/shard.h"
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

std::vector<Endpoint> node_internal::ShiftPorts(const std::vector<Endpoint>& eps, size_t by) {
  std::vector<Endpoint> out;
  out.reserve(eps.size());
  for (Endpoint ep : eps) {
    if (static_cast<uint32_t>(ep.port) + by > 65535) continue;  // no such shard port
    ep.port = static_cast<uint16_t>(ep.port + by);
    out.push_back(ep);
  }
  return out;
}

std::vector<int> AllowedCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

void node_internal::PinThisThread(size_t shard, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  const int rc = ::pthread_setaffinity_np(::pthread_self(), sizeof(set), &set);
  if (rc != 0) {
    spdlog::warn("node: shard {}: cannot pin its thread to CPU {}: {} (it runs unpinned)",
                 shard, cpu, std::strerror(rc));
  } else {
    spdlog::debug("node: shard {} pinned to CPU {}", shard, cpu);
  }
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

  if (o.shards < 1 || o.shards > kMaxShards) {
    return absl::InvalidArgumentError(
        absl::StrCat("node: shards must be in [1, ", kMaxShards, "], not ", o.shards));
  }
  const size_t shards = static_cast<size_t>(o.shards);

  io::TransportOptions to;
  to.kind = o.io;
  to.bind = o.listen;
  to.xdp = o.xdp;
  // Receive anything a peer may send (its max_packet_bytes may exceed ours); send slots
  // have the engine's encoder head room (it builds back to front, then sends a sub-span).
  to.max_datagram_bytes = io::kMaxUdpPayloadBytes;
  to.tx_slot_bytes = ec.max_packet_bytes + 1024;
  to.rx_buffer_count = o.rx_buffer_count;
  to.tx_slot_count = o.tx_slot_count;
  // Shard s on port + s (docs/shards.md "Addressing"); shard 0 first, so a port 0 listen
  // address fixes the base port for the others.
  std::vector<std::unique_ptr<io::Transport>> transports;
  for (size_t s = 0; s < shards; ++s) {
    io::TransportOptions ts = to;
    if (s > 0) {
      const uint32_t port = transports[0]->local_endpoint().port + s;
      if (port > 65535) {
        return absl::InvalidArgumentError(absl::StrCat(
            "node: shard ", s, " would listen on port ", port, " (base port + shard) > 65535"));
      }
      ts.bind.port = static_cast<uint16_t>(port);
    }
    auto transport = OpenTransportWaitingForPort(ts);
    if (!transport.ok()) {
      if (shards == 1) return transport.status();
      return absl::Status(transport.status().code(),
                          absl::StrCat("node: shard ", s, ": ", transport.status().message()));
    }
    transports.push_back(std::move(*transport));
  }

  std::unique_ptr<Node> node(new Node());
  node->name_ = ec.node_name;
  node->transport_name_ = transports[0]->name();
  node->bound_ = transports[0]->local_endpoint();
  if (!ec.advertise.valid()) ec.advertise = node->bound_;
  if (ec.advertise.port == 0) ec.advertise.port = node->bound_.port;
  if (static_cast<uint32_t>(ec.advertise.port) + shards - 1 > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("node: advertised port ", ec.advertise.port,
                                                   " + ", shards - 1, " shards > 65535"));
  }
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
  const std::vector<Endpoint> seeds0 = node_internal::ResolveSeeds(
      o.seeds, node->bound_.family, node->advertise_, node->bound_, &failures);
  ec.shard_count = static_cast<uint16_t>(shards);
  if (shards > 1) {
    // Room for a full publication of every node twice over, so a resync fits the ring.
    size_t cap = 1024;
    while (cap < 2 * ec.limits.max_nodes && cap < (size_t{1} << 16)) cap *= 2;
    node->member_ring_ = std::make_unique<BroadcastRing<MemberRecord>>(cap);
  }

  io::EventLoopOptions lo;
  lo.command_queue_capacity = o.command_queue_capacity;
  for (size_t s = 0; s < shards; ++s) {
    EngineConfig c = ec;
    c.shard = static_cast<uint16_t>(s);
    c.seeds = node_internal::ShiftPorts(seeds0, s);
    c.advertise.port = static_cast<uint16_t>(ec.advertise.port + s);
    c.rng_seed = ec.rng_seed + s * 0x9e3779b97f4a7c15ull;
    if (s > 0) c.membership.external = true;
    node->loops_.push_back(std::make_unique<io::EventLoop>(std::move(transports[s]), lo));
    node->events_.push_back(std::make_shared<EventLog>(o.events));
    node->rts_.push_back(std::make_unique<Runtime>(node->loops_[s].get(), std::move(c),
                                                   seed + 1 + s, node->events_[s]));
    if (shards > 1) {
      if (s == 0) {
        node->rts_[s]->PublishMembershipTo(node->member_ring_.get());
      } else {
        node->rts_[s]->ReadMembershipFrom(node->member_ring_.get());
      }
    }
  }
  std::shared_ptr<Doorbell> bell;
  if (shards > 1) {
    bell = std::make_shared<Doorbell>();
    for (auto& log : node->events_) log->AttachDoorbell(bell);
  }
  node->doorbell_ = bell;
  node->dispatcher_ =
      std::make_shared<EventDispatcher>(node->events_, bell, o.subscription_queue_events);
  node->rts_[0]->counters().seed_resolutions = 1;
  node->rts_[0]->counters().seed_resolve_failures = failures;
  for (auto& rt_ptr : node->rts_) {
    Runtime* rt = rt_ptr.get();
    // Node metadata goes to every shard (each shard's peer choice reads its own replica).
    // The loops are not running yet: this thread may touch the engines.
    if (!rt->engine().config().security.keyring.empty()) {
      const auto& r = rt->engine().config().security.keyring;
      absl::Status s = rt->engine().Set(kKeyringKey, r.primary().fingerprint, io::MonotonicNowUs());
      if (!s.ok()) return s;
      if (rt->shard() == 0) {
        spdlog::info("node: gossip sealed with {} (primary key {}, {} installed; verify incoming {}, outgoing {})",
                     wire::CipherName(rt->engine().cipher()), r.primary().fingerprint, r.size(),
                     rt->engine().config().security.verify_incoming,
                     rt->engine().config().security.verify_outgoing);
      }
    }
    if (!o.locality.empty()) {
      // Before the first round, so the first digest already carries it.
      absl::Status s = rt->engine().Set(kLocalityKey, o.locality, io::MonotonicNowUs());
      if (!s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("node: locality: ", s.message()));
      }
    }
  }
  std::vector<int> cpus;
  if (shards > 1 && o.pin_threads) cpus = AllowedCpus();
  for (size_t s = 0; s < shards; ++s) {
    Runtime* rt = node->rts_[s].get();
    io::EventLoop* loop = node->loops_[s].get();
    loop->set_on_datagram([rt](const io::RxDatagram& d) { rt->OnDatagram(d); });
    loop->set_after_batch([rt] { rt->ArmEngineTimers(); });
    // The first round right away: a joining node reaches its seeds without waiting.
    rt->ScheduleTick(io::MonotonicNowUs(), 0);
    if (!cpus.empty()) {
      const int cpu = cpus[s % cpus.size()];
      absl::Status posted = loop->Post([s, cpu] { node_internal::PinThisThread(s, cpu); });
      if (!posted.ok()) spdlog::warn("node: shard {}: not pinned: {}", s, SV(posted.message()));
    }
    loop->Start();
  }
  node->StartResolver(std::move(o.seeds), o.seed_resolve_interval);
  if (shards == 1) {
    spdlog::info("node: {} generation {} gossiping on {} (advertised {}) over {}", node->name_,
                 node->generation_, node->bound_.ToString(), node->advertise_.ToString(),
                 node->transport_name_);
  } else {
    spdlog::info(
        "node: {} generation {} gossiping with {} shards on {} .. port {} (advertised {} + "
        "shard) over {}{}",
        node->name_, node->generation_, shards, node->bound_.ToString(),
        node->bound_.port + shards - 1, node->advertise_.ToString(), node->transport_name_,
        cpus.empty() ? ", threads not pinned" : "");
  }
  return node;
}

absl::Status Node::Stop() {
  if (stopped_) return absl::OkStatus();
  StopResolver();
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;
  };
  auto done = std::make_shared<Done>();
  const int intervals = leave_intervals_;
  size_t posted_count = 0;
  for (size_t s = 0; s < loops_.size(); ++s) {
    Runtime* rt = rts_[s].get();
    absl::Status posted = loops_[s]->Post([rt, done, intervals] {
      rt->BeginLeave(intervals, [done] {
        std::lock_guard<std::mutex> lock(done->mu);
        ++done->done;
        done->cv.notify_all();
      });
    });
    if (posted.ok()) {
      ++posted_count;
    } else {
      spdlog::warn("node: cannot post the leave to shard {} ({}); it stops without it", s,
                   SV(posted.message()));
    }
  }
  if (posted_count > 0) {
    // The loops enforce the leave deadline; this wait only guards against a wedged loop.
    const auto limit =
        absl::ToChronoMicroseconds(absl::Microseconds(gossip_interval_us_.load()) * (intervals + 1) +
                                   call_timeout_);
    std::unique_lock<std::mutex> lock(done->mu);
    if (!done->cv.wait_for(lock, limit, [&] { return done->done == posted_count; })) {
      spdlog::warn("node: graceful leave did not finish in time; stopping anyway");
    }
  }
  absl::Status status;
  for (auto& loop : loops_) loop->Stop();
  for (auto& loop : loops_) {
    absl::Status s = loop->Join();
    if (status.ok()) status = s;
  }
  for (auto& log : events_) log->Close();
  dispatcher_->Stop();
  stopped_ = true;
  spdlog::info("node: {} stopped", name_);
  return status;
}

void Node::Abort() {
  if (stopped_) return;
  StopResolver();
  for (auto& loop : loops_) loop->Stop();
  for (auto& loop : loops_) (void)loop->Join();
  for (auto& log : events_) log->Close();
  if (dispatcher_ != nullptr) dispatcher_->Stop();
  stopped_ = true;
}

Node::~Node() {
  Abort();
  // Order: the loops (and their transports) go first, after their threads exited; a
  // runtime's engine is referenced only by its loop.
  loops_.clear();
  rts_.clear();
}

size_t Node::ShardFor(std::string_view key) const {
  if (loops_.size() <= 1 || IsReplicatedToAllShards(key)) return 0;
  return ShardOf(key, static_cast<uint16_t>(loops_.size()));
}

}  // namespace scuttle
