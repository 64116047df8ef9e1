// Node: one running scuttle member — the runtime of scuttled and the embedding API.
//
// ---- Embedding ---------------------------------------------------------------------------
// A C++ service links `scuttle_node` (CMake target) instead of running the sidecar:
//
//   scuttle::NodeOptions o;
//   o.engine.node_name = "web-1";                        // unique in the cluster
//   o.engine.cluster_id = "prod";                        // peers of other ids are refused
//   o.listen = *scuttle::Endpoint::Parse("0.0.0.0:7400");
//   o.engine.advertise = *scuttle::Endpoint::Parse("10.0.0.5:7400");  // what peers dial
//   o.seeds = {"scuttle-seeds.prod.svc:7400"};           // resolved and re-resolved here
//   auto node = scuttle::Node::Start(std::move(o));      // StatusOr<unique_ptr<Node>>
//   if (!node.ok()) return node.status();
//
//   (*node)->Set("svc/web-1/addr", "10.0.0.5:8080");     // StatusOr<Version>
//   (*node)->SetWithTtl("lease/web-1", "", absl::Seconds(30));
//   (*node)->Delete("svc/web-1/addr");
//   auto e = (*node)->Get("svc/db-1/addr", "db-1");      // another node's key
//   auto all = (*node)->Scan("svc/");                    // every node's keys, by (node, key)
//   auto members = (*node)->Members();
//
//   // Callbacks run on a dispatcher thread (never the loop thread), in sequence order;
//   // the handle unsubscribes when destroyed. A callback that lags gets one kOverflow event
//   // and should resync with Scan()/Snapshot().
//   std::unique_ptr<scuttle::Subscription> sub = (*node)->Subscribe(
//       "svc/", [](const scuttle::WatchEvent& ev) { /* ev.name(), ev.node, ev.key, ... */ });
//
//   (*node)->Stop();  // graceful leave: peers see "left" at once, not "dead" later
//
// tools/examples/embed_example.cc is a complete program (built and run by ctest).
//
// ---- Runtime ------------------------------------------------------------------------------
// A Node owns one event-loop thread with one Transport and one Engine per engine shard
// (NodeOptions::shards, docs/shards.md; one by default). With N > 1 shards: shard s is a
// whole Scuttlebutt instance on port + s over the keys ShardOf gives it, on its own thread
// (pinned to a CPU), sharing nothing mutable with the others on the hot path; shard 0
// decides membership and publishes it through a BroadcastRing the others read at each of
// their rounds (engine/member_feed.h); key calls go to ShardOf(key)'s loop, Scan/Snapshot
// and config/keyring/leave go to every loop at once. Each shard (DESIGN §7, §9):
//   - datagrams go to Engine::OnPacket with the monotonic clock;
//   - a gossip timer every gossip_interval (±10% jitter, deterministic per name and
//     generation) calls Engine::OnTick;
//   - the engine encodes packets straight into transport send slots (the PacketSink is the
//     transport: Acquire → AcquireTx, Commit → CommitTx(sub-span), Abort → AbortTx) and
//     the loop flushes them once per iteration;
//   - seeds are host:port strings resolved with getaddrinfo here (never in the engine),
//     re-resolved every seed_resolve_interval on a background thread that posts the
//     result to the loop (Engine::SetSeeds);
//   - engine events (engine/events.h) are appended to a bounded EventLog (node/node_events.h)
//     that /v1/watch streams and Subscribe() callbacks read with their own cursors, so a
//     slow reader never blocks the loop or grows memory;
//   - handshake latency (Syn sent → SynAck from that address) and gossip-round time are
//     measured here into NodeStats histograms (the engine has no clock).
//
// Threading: every public method is thread-safe. Engine state is touched only on the loop
// thread; other threads post a command to the loop's bounded queue and wait for its answer
// with a deadline: Unavailable when the queue is full or the node is stopping,
// DeadlineExceeded when the loop does not answer within call_timeout.
#ifndef SCUTTLE_NODE_NODE_H_
#define SCUTTLE_NODE_NODE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/delta_applier.h"
#include "engine/delta_builder.h"
#include "engine/engine.h"
#include "engine/member_feed.h"
#include "engine/membership.h"
#include "io/broadcast_ring.h"
#include "io/event_loop.h"
#include "node/node_events.h"
#include "node/node_histogram.h"
#include "io/transport.h"
#include "wire/endpoint.h"

namespace scuttle {

struct NodeOptions {
  // Engine settings. node_name is required. An unset advertise address (or port 0)
  // becomes the bound gossip address. engine.seeds and engine.generation are ignored: use
  // `seeds` and `generation` below. rng_seed 0 = derived from name and generation.
  EngineConfig engine;
  // 0 = wall-clock microseconds at Start, so a restart gets a larger one (DESIGN §1).
  Generation generation = 0;
  // Gossip socket. Port 0 picks a free port (see Node::gossip_endpoint()).
  Endpoint listen;
  io::IoKind io = io::IoKind::kAuto;
  io::XdpOptions xdp;  // io == kXdp only (docs/xdp.md)
  // "host:port" or "[v6]:port"; hostnames are resolved with getaddrinfo.
  std::vector<std::string> seeds;
  absl::Duration seed_resolve_interval = absl::Seconds(60);
  // How long a thread-safe call waits for the loop's answer.
  absl::Duration call_timeout = absl::Seconds(2);
  // Graceful leave: gossip the leaving flag for at most this many gossip intervals, or
  // until every live peer has answered a Syn that carried it.
  int leave_intervals = 2;
  size_t command_queue_capacity = 1024;
  size_t rx_buffer_count = 256;
  size_t tx_slot_count = 256;
  // Recent watch events kept for readers that resume (since=SEQ) and lag.
  EventLogOptions events;
  // Per Subscribe() callback: events pending beyond this become one overflow event.
  size_t subscription_queue_events = 1024;
  // This node's locality label ("region/zone/rack", engine/membership.h), written at start
  // under the reserved key kLocalityKey so peers learn it by gossip; spatial peer choice
  // (engine.membership.spatial_exponent) measures distances with it. Empty = none.
  std::string locality;
  // Gossip encryption (DESIGN §8): a keyring file (node/keyring_file.h) loaded at start into
  // engine.security.keyring; UpdateKeyring writes every change back to it atomically.
  // Empty = engine.security.keyring as given, changes kept in memory only.
  std::string keyring_file;
  // Engine shards (docs/shards.md), 1..kMaxShards: one engine, transport, event loop and
  // thread per shard, key k on shard ShardOf(k, shards). Shard s binds listen.port + s and
  // advertises advertise.port + s; seeds name shard 0's port (shard s dials seed port + s).
  // engine.shard / engine.shard_count are set from this. With listen.port 0, shard 0 picks
  // a free port P and the others bind P + s.
  int shards = 1;
  // With shards > 1, pin shard s's thread to the s-th CPU the process may run on (modulo
  // their number); a pinning failure is a warning. A single shard is never pinned.
  bool pin_threads = true;
};

// Each node gossips its primary key's fingerprint under this reserved key, so any node can
// tell an operator how many members already seal with a key (GET /v1/keyring).
inline constexpr std::string_view kKeyringKey = "__scuttle/keyring";

struct KeyringInfo {
  struct KeyUse {
    std::string fingerprint;
    bool primary = false;
    size_t members_primary = 0;  // live members (self included) gossiping it as primary
  };
  std::vector<KeyUse> keys;  // the installed keys, primary first
  size_t members = 0;        // live members, self included
  size_t members_other = 0;  // live members whose primary is none of ours, or unknown
  std::string cipher;
  bool verify_incoming = true;
  bool verify_outgoing = true;
  std::string file;  // "" = not persisted
};
enum class KeyringOp { kInstall, kUse, kRemove };

// The settings that may change while the node runs (PATCH /v1/config). log_level is
// process-wide: it sets spdlog's default logger.
struct LiveConfig {
  int64_t gossip_interval_ms = 0;
  int fanout = 0;
  double phi_threshold = 0;
  absl::Duration dead_node_grace;
  absl::Duration tombstone_grace;
  std::string log_level;  // trace | debug | info | warn | error | critical | off
  int rumor_k = 0;        // rumor mongering's k (seed 001), in force even while rumors are off
};

// Fields to change; unset ones keep their value. Applied all together or not at all.
struct LiveConfigPatch {
  std::optional<int64_t> gossip_interval_ms;      // 1 .. 3'600'000
  std::optional<int64_t> fanout;                  // 1 .. 1024
  std::optional<double> phi_threshold;            // (0, 1e6]
  std::optional<absl::Duration> dead_node_grace;  // positive, finite
  std::optional<absl::Duration> tombstone_grace;  // positive, finite
  std::optional<std::string> log_level;
  std::optional<int64_t> rumor_k;  // 1 .. kMaxLiveRumorK
};
// Live changes of rumor_k are bounded tighter than RumorOptions::kMaxK: past a few dozen
// unnecessary contacts a rumor only duplicates anti-entropy's work.
inline constexpr int64_t kMaxLiveRumorK = 64;
// OK, or InvalidArgument whose message starts with the first bad field's name
// ("fanout: 0 is out of range [1, 1024]").
absl::Status ValidateLiveConfigPatch(const LiveConfigPatch& patch);

// One key as read from some node's map. Values are arbitrary bytes.
struct KvEntry {
  std::string node;
  std::string key;
  std::string value;
  Version version = 0;
  // Time left until a TTL key of this node expires (0: no TTL). Filled by Scan for the
  // local node's own keys (scuttled's --data_dir saves it); other reads leave it 0.
  int64_t expires_in_us = 0;
};

struct MemberInfo {
  std::string name;
  Generation generation = 0;
  Endpoint gossip_addr;
  MemberState state = MemberState::kAlive;
  double phi = 0;
  uint64_t heartbeat = 0;
  Version max_version = 0;
  Version last_gc_version = 0;
  size_t keys = 0;  // live keys
  size_t tombstones = 0;
  std::string locality;  // the label it gossips under kLocalityKey; "" = none
  bool is_self = false;
};

// Every counter, copied on the loop thread.
struct NodeStats {
  std::string transport_name;
  io::TransportStats transport;
  EngineStats engine;
  DeltaApplier::Stats apply;
  DeltaBuilder::Stats build;
  io::EventLoopStats loop;
  uint64_t gossip_rounds = 0;
  uint64_t seed_resolutions = 0;
  uint64_t seed_resolve_failures = 0;
  uint64_t member_events = 0;
  uint64_t key_events = 0;
  uint64_t key_events_by_type[3] = {};     // KeyEvent
  uint64_t member_events_by_type[7] = {};  // MemberEvent
  uint64_t resets = 0;                     // EventSink::OnReset
  // Gauges, computed when Stats() runs.
  size_t members_by_state[4] = {};  // MemberState, self included (alive, or left)
  size_t forgotten_remembered = 0;
  size_t keys_local = 0, tombstones_local = 0, expiring_local = 0;
  size_t keys_replicated = 0, tombstones_replicated = 0;
  size_t arena_allocated_bytes = 0, arena_live_bytes = 0;
  size_t rumors_hot = 0;
  RumorStats rumor;
  ProbeStats probe;  // failure detection: probes, verdicts, refutations, local health
  // Handshake latency (Syn sent -> SynAck from that address), gossip round (OnTick) time,
  // and sizes of sent delta-carrying packets (SynAck, Ack, Rumor), in base units.
  Histogram handshake_seconds = Histogram::Exponential(50e-6, 2, 16);
  Histogram round_seconds = Histogram::Exponential(10e-6, 2, 18);
  Histogram delta_packet_bytes = Histogram::Exponential(64, 2, 11);
  uint64_t handshakes_unmatched = 0;  // SynAcks with no Syn of ours pending from that address
  std::map<std::string, uint64_t> config_changes;  // field -> times changed
  EventLogStats watch;
  uint64_t subscription_overflows = 0;
};

// The entries of a scan together with the watch sequence number they are current at:
// events after `seq` are the changes since.
struct KvSnapshot {
  std::vector<KvEntry> entries;
  uint64_t seq = 0;  // shard 0's (= seqs[0])
  // Per shard: the sequence number of that shard's event log (event_logs()[s]).
  std::vector<uint64_t> seqs;
};

// Unsubscribes when destroyed (see Node::Subscribe). May outlive the Node.
class Subscription {
 public:
  ~Subscription() { Cancel(); }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  // After Cancel returns the callback is not running (unless Cancel is called from it)
  // and is never called again. Idempotent.
  void Cancel() {
    if (dispatcher_ != nullptr) dispatcher_->Remove(id_);
    dispatcher_.reset();
  }

 private:
  friend class Node;
  Subscription(std::shared_ptr<EventDispatcher> d, uint64_t id)
      : dispatcher_(std::move(d)), id_(id) {}
  std::shared_ptr<EventDispatcher> dispatcher_;
  uint64_t id_ = 0;
};

class Node {
 public:
  // Opens the transport (errors name the address, e.g. a busy port), resolves the seeds
  // once (an unresolvable seed is logged and retried later, not an error), starts the loop
  // thread and the first gossip round.
  static absl::StatusOr<std::unique_ptr<Node>> Start(NodeOptions options);
  // Stops without the graceful leave if Stop() was not called.
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Graceful leave, then stop: Engine::Leave(), keep gossiping (and send the leaving Syn
  // to every live peer) until each answered or leave_intervals gossip intervals passed,
  // then stop the loop and join its thread. Idempotent; returns the loop's exit status.
  absl::Status Stop();
  // Stops at once, without telling anyone (tests: a crash without kill -9).
  void Abort();

  // ---- Fixed at start: readable from any thread without a round trip ----
  const std::string& name() const { return name_; }
  Generation generation() const { return generation_; }
  // "io_uring" or "epoll".
  const char* transport_name() const { return transport_name_; }
  // The bound gossip socket address (with the real port when bound to port 0).
  const Endpoint& gossip_endpoint() const { return bound_; }
  // The address gossiped to peers.
  const Endpoint& advertise_endpoint() const { return advertise_; }
  // Engine shards (NodeOptions::shards); shard s is on gossip_endpoint().port + s.
  int shard_count() const { return static_cast<int>(loops_.size()); }

  // ---- Writes to this node's own map; each returns the version it took ----
  // Keys under kReservedKeyPrefix ("__scuttle/") belong to scuttle: InvalidArgument.
  absl::StatusOr<Version> Set(std::string_view key, std::string_view value);
  absl::StatusOr<Version> SetWithTtl(std::string_view key, std::string_view value,
                                     absl::Duration ttl);
  // NotFound when the key is absent or already deleted.
  absl::StatusOr<Version> Delete(std::string_view key);
  // Marks this node as leaving (gossiped at once); it keeps running. Stop() leaves too.
  absl::Status Leave();

  // ---- Reads ----
  // `node` empty = this node. NotFound for an unknown node or a missing/deleted key.
  absl::StatusOr<KvEntry> Get(std::string_view key, std::string_view node = {});
  // Live keys starting with `prefix`, sorted by (node, key). `node` empty = every node;
  // NotFound for an unknown node.
  absl::StatusOr<std::vector<KvEntry>> Scan(std::string_view prefix, std::string_view node = {});
  // Every known member, self included, sorted by name.
  absl::StatusOr<std::vector<MemberInfo>> Members();
  // Shard 0's counters (with one shard: the node's). ShardStats() has every shard's.
  absl::StatusOr<NodeStats> Stats();
  // One NodeStats per shard, index = shard.
  absl::StatusOr<std::vector<NodeStats>> ShardStats();
  // Scan plus the watch sequence number it is consistent with (one loop-thread step).
  absl::StatusOr<KvSnapshot> Snapshot(std::string_view prefix, std::string_view node = {});

  // ---- Watching ----
  // Calls `callback` for every event matching `filter` from now on (WatchEvent: key
  // set/deleted/expired, member joined/alive/suspect/dead/left/forgotten/restarted, replica
  // reset), in sequence order, on one dispatcher thread shared by this node's
  // subscriptions — never on the loop thread, so a callback may call back into the Node.
  // A callback that falls more than subscription_queue_events behind gets one
  // WatchEvent::Kind::kOverflow (resync with Scan/Snapshot) and continues from the newest
  // event. Destroying the handle unsubscribes.
  std::unique_ptr<Subscription> Subscribe(WatchFilter filter,
                                          std::function<void(const WatchEvent&)> callback);
  std::unique_ptr<Subscription> Subscribe(std::string prefix,
                                          std::function<void(const WatchEvent&)> callback) {
    return Subscribe(WatchFilter{std::move(prefix), {}}, std::move(callback));
  }
  // The event log behind Subscribe, for cursor readers (the admin API's /v1/watch).
  // Thread-safe; valid as long as the Node (and shared with readers beyond it). Each shard
  // has its own log with its own sequence numbers (its thread is the only writer); member
  // events are in shard 0's. event_log() is shard 0's.
  const std::shared_ptr<EventLog>& event_log() const { return events_[0]; }
  const std::vector<std::shared_ptr<EventLog>>& event_logs() const { return events_; }
  // Rung by every shard's log (nullptr with one shard): wait for any of them.
  const std::shared_ptr<Doorbell>& event_doorbell() const { return doorbell_; }

  // ---- Gossip keyring (Serf's model: install everywhere, use everywhere, remove old) ----
  absl::StatusOr<KeyringInfo> Keyring();
  // `key`: base64 for install; base64 or fingerprint for use/remove. The change is written
  // to the keyring file first (nothing changes when that fails), then applied.
  absl::StatusOr<KeyringInfo> UpdateKeyring(KeyringOp op, std::string_view key);

  // ---- Live configuration ----
  absl::StatusOr<LiveConfig> GetLiveConfig();
  // Validates every field first (InvalidArgument naming it; nothing changes), then applies
  // all of them in one loop-thread step, logs each change and counts it in
  // NodeStats::config_changes. Returns the configuration now in force.
  absl::StatusOr<LiveConfig> UpdateLiveConfig(const LiveConfigPatch& patch);

 private:
  class Runtime;  // loop-thread state: engine, sink, timers (node.cc)

  Node() = default;
  // Runs fn on shard `shard`'s loop thread and waits for its result (see the header
  // comment).
  template <typename T, typename Fn>
  absl::StatusOr<T> Call(size_t shard, Fn fn);
  // Runs fn on every shard's loop thread at once and waits for all: one result per shard,
  // or the first shard's error.
  template <typename T, typename Fn>
  absl::StatusOr<std::vector<T>> CallEach(Fn fn);
  // The shard that holds `key` (metadata keys under kReservedKeyPrefix: shard 0's copy).
  size_t ShardFor(std::string_view key) const;
  // One shard's counters (on its loop thread).
  static absl::StatusOr<NodeStats> StatsOf(Runtime& rt);
  // Scan and Snapshot: every shard's slice at once, merged and sorted; `seqs` per shard.
  // with_ttl fills KvEntry::expires_in_us for this node's expiring keys.
  absl::StatusOr<KvSnapshot> ScanShards(std::string_view prefix, std::string_view node,
                                        bool with_ttl);
  void StartResolver(std::vector<std::string> seeds, absl::Duration interval);
  void StopResolver();

  std::string name_;
  Generation generation_ = 0;
  const char* transport_name_ = "";
  Endpoint bound_;
  Endpoint advertise_;
  absl::Duration call_timeout_;
  std::atomic<int64_t> gossip_interval_us_{0};  // changes live (UpdateLiveConfig)
  int leave_intervals_ = 2;
  std::vector<std::shared_ptr<EventLog>> events_;  // one per shard
  std::shared_ptr<Doorbell> doorbell_;  // shards > 1
  std::shared_ptr<EventDispatcher> dispatcher_;

  // One per shard, index = shard. A runtime is used only on its loop thread once Start
  // returns.
  std::vector<std::unique_ptr<io::EventLoop>> loops_;
  std::vector<std::unique_ptr<Runtime>> rts_;
  // Shard 0 -> the other shards: membership records (shards > 1 only).
  std::unique_ptr<BroadcastRing<MemberRecord>> member_ring_;
  struct Resolver;
  std::unique_ptr<Resolver> resolver_;
  bool stopped_ = false;
  std::string keyring_file_;
  std::mutex keyring_mu_;  // serializes UpdateKeyring (file write + apply)
};

// The CPUs this process may run on (sched_getaffinity), ascending; empty on error. What
// `--shards auto` counts and shard threads are pinned to.
std::vector<int> AllowedCpus();

// Parses "host:port" / "[v6]:port" into host and port without resolving. For flag checks.
absl::Status ParseHostPort(std::string_view text, std::string* host, uint16_t* port);
// Resolves "host:port" with getaddrinfo (numeric addresses skip DNS). `family` 4 keeps
// IPv4 results only, 6 keeps both (a dual-stack socket reaches either). Every address.
absl::StatusOr<std::vector<Endpoint>> ResolveHostPort(std::string_view text, int family);

}  // namespace scuttle

#endif  // SCUTTLE_NODE_NODE_H_
