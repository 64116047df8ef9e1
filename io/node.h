// Node: one running scuttle member — the runtime of scuttled and the embedding API.
//
// A Node owns one event-loop thread with one Transport and one Engine (DESIGN §7, §9):
//   - datagrams go to Engine::OnPacket with the monotonic clock;
//   - a gossip timer every gossip_interval (±10% jitter, deterministic per name and
//     generation) calls Engine::OnTick;
//   - the engine encodes packets straight into transport send slots (the PacketSink is the
//     transport: Acquire → AcquireTx, Commit → CommitTx(sub-span), Abort → AbortTx) and
//     the loop flushes them once per iteration;
//   - seeds are host:port strings resolved with getaddrinfo here (never in the engine),
//     re-resolved every seed_resolve_interval on a background thread that posts the
//     result to the loop (Engine::SetSeeds).
//
// Threading: every public method is thread-safe. Engine state is touched only on the loop
// thread; other threads post a command to the loop's bounded queue and wait for its answer
// with a deadline: Unavailable when the queue is full or the node is stopping,
// DeadlineExceeded when the loop does not answer within call_timeout.
#ifndef SCUTTLE_IO_NODE_H_
#define SCUTTLE_IO_NODE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/delta_applier.h"
#include "engine/delta_builder.h"
#include "engine/engine.h"
#include "engine/membership.h"
#include "io/event_loop.h"
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
};

// One key as read from some node's map. Values are arbitrary bytes.
struct KvEntry {
  std::string node;
  std::string key;
  std::string value;
  Version version = 0;
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

  // ---- Writes to this node's own map; each returns the version it took ----
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
  absl::StatusOr<NodeStats> Stats();

 private:
  class Runtime;  // loop-thread state: engine, sink, timers (node.cc)

  Node() = default;
  // Runs fn on the loop thread and waits for its result (see the header comment).
  template <typename T, typename Fn>
  absl::StatusOr<T> Call(Fn fn);
  void StartResolver(std::vector<std::string> seeds, absl::Duration interval);
  void StopResolver();

  std::string name_;
  Generation generation_ = 0;
  const char* transport_name_ = "";
  Endpoint bound_;
  Endpoint advertise_;
  absl::Duration call_timeout_;
  absl::Duration gossip_interval_;
  int leave_intervals_ = 2;

  std::unique_ptr<io::EventLoop> loop_;
  std::unique_ptr<Runtime> rt_;  // used only on the loop thread once Start returns
  struct Resolver;
  std::unique_ptr<Resolver> resolver_;
  bool stopped_ = false;
};

// Parses "host:port" / "[v6]:port" into host and port without resolving. For flag checks.
absl::Status ParseHostPort(std::string_view text, std::string* host, uint16_t* port);
// Resolves "host:port" with getaddrinfo (numeric addresses skip DNS). `family` 4 keeps
// IPv4 results only, 6 keeps both (a dual-stack socket reaches either). Every address.
absl::StatusOr<std::vector<Endpoint>> ResolveHostPort(std::string_view text, int family);

}  // namespace scuttle

#endif  // SCUTTLE_IO_NODE_H_
