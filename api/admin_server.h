// AdminServer: scuttled's local HTTP/1.1 + JSON API (DESIGN §10), on cpp-httplib.
//
//   GET    /healthz                 {"status":"ok","node":NAME,"transport":"io_uring"|"epoll"}
//   GET    /v1/members              {"members":[{name, generation, gossip_addr, state, phi,
//                                     heartbeat, max_version, last_gc_version, keys,
//                                     tombstones, locality, self}]}  sorted by name, self
//                                     included; locality "" when the node has none
//   GET    /v1/kv?prefix=&node=     {"entries":[{node, key, value, version}]} by (node, key)
//   GET    /v1/kv/{key}?node=       {node, key, value, version}  (node defaults to self)
//   PUT    /v1/kv/{key}[?ttl=30s]   body = raw value bytes -> {key, version}
//   DELETE /v1/kv/{key}             {key, version}
//                                    (keys under "__scuttle/" are scuttle's own: PUT and
//                                    DELETE refuse them with 400; reads show them)
//   GET    /v1/debug/stats          every counter of transport, engine and loop
//   GET    /v1/watch?prefix=&node=&since=SEQ&snapshot=1
//                                    server-sent events (text/event-stream), one per change:
//                                    `id: SEQ`, `event: set|deleted|expired|joined|alive|
//                                    suspect|dead|left|forgotten|restarted|reset`, `data:`
//                                    {seq, event, node, generation, key, value, version}.
//                                    A non-empty prefix selects key events only. Resume with
//                                    since=SEQ or the Last-Event-ID header; a reader that
//                                    lags more than watch_buffer_events, or resumes from a
//                                    sequence no longer retained, gets `event: overflow`
//                                    {seq} and continues after seq (resync from GET /v1/kv).
//                                    snapshot=1 first sends `event: snapshot` per entry and
//                                    `event: snapshot_end` {seq, entries}. 503 past
//                                    max_watchers.
//   GET    /v1/config               {"config": {NAME: {value, live, help}}}: every flag
//   PATCH  /v1/config               JSON object of live fields -> {changed, config}; all
//                                    validated first (400 names the field), then applied
//                                    at once; unknown or non-live fields are 400
//   GET    /metrics                 Prometheus text format 0.0.4 (api/node_metrics.h)
//   GET    /ui, /ui/, /ui/{file}    the web dashboard (api/ui/, embedded at build time)
//   GET    /v1/debug/routes         {"routes":[{method, pattern, kind}]}: the route table
//                                    (docs/openapi.yaml documents every "handler" route)
//   GET    /v1/keyring              {keys:[{fingerprint, primary, members_primary}], members,
//                                    members_other, cipher, verify_incoming,
//                                    verify_outgoing, file}: installed keys (never the key
//                                    bytes) and how many live members seal with each
//   POST   /v1/keyring              {"op": "install"|"use"|"remove", "key": BASE64 or
//                                    FINGERPRINT} -> the keyring as GET shows it; written
//                                    to --keyring_file first. 404 unknown key, 409 the key
//                                    is installed / is the primary / ids collide
//
// With AdminOptions::token set, every request needs `Authorization: Bearer TOKEN`
// (401 unauthorized otherwise, compared in constant time).
//
// Values (and keys) are "value"/"key" when valid UTF-8, else "value_base64"/"key_base64".
// Keys in paths are URL-decoded and may contain '/'. Errors are {"error": CODE,
// "detail": message}: 400 bad_request, 404 not_found, 405 method_not_allowed,
// 413 too_large, 503 unavailable (engine queue full or no answer in time), 500 internal.
//
// Threading: httplib serves on its own threads; they reach the node only through
// scuttle::Node's thread-safe API.
#ifndef SCUTTLE_API_ADMIN_SERVER_H_
#define SCUTTLE_API_ADMIN_SERVER_H_

#include <cstddef>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "node/node.h"
#include "wire/packet.h"
#include "wire/seal.h"

namespace httplib {
class Server;
}

namespace scuttle {

// One start-up flag as GET /v1/config shows it.
struct ConfigFlag {
  enum class Type { kString, kInt, kDouble, kBool };
  std::string name;
  std::string value;  // as the flag prints it; a JSON number/bool when type says so
  Type type = Type::kString;
  std::string help;
};

// The fields PATCH /v1/config accepts (LiveConfigPatch).
inline constexpr const char* kLiveConfigFields[] = {
    "gossip_interval_ms", "fanout", "phi_threshold", "dead_node_grace", "tombstone_grace",
    "log_level", "rumor_k"};

// One registered route, as GET /v1/debug/routes lists it.
struct AdminRoute {
  std::string method;   // GET, PUT, POST, PATCH, DELETE
  std::string pattern;  // httplib pattern: a literal path or a regex
  std::string kind;     // handler | method_not_allowed | error
};

struct AdminOptions {
  // IP address to listen on; port 0 picks a free port (see AdminServer::port()).
  Endpoint listen;
  size_t max_key_bytes = 1024;
  size_t max_value_bytes = 60 * 1024;
  // A key and value must fit one packet with the engine's framing (engine CheckWrite);
  // larger writes are refused with 413 like the other limits.
  size_t max_packet_bytes = wire::kMaxUdpPayloadBytes;
  static constexpr size_t kWriteOverheadBytes = wire::kHeaderBytes +
                                                wire::kPacketFixedWireBytes +
                                                wire::kPartWireBytes + wire::kMaxNameBytes +
                                                wire::kEntryWireBytes + 512 +
                                                wire::kSealTrailerBytes;
  // Bound on the entries one GET /v1/kv returns ("truncated": true beyond it).
  size_t max_scan_entries = 100'000;
  // Concurrent /v1/watch streams; each holds one server thread (503 beyond).
  size_t max_watchers = 32;
  // Events a watch stream may lag behind before it gets an overflow event.
  size_t watch_buffer_events = 1024;
  // A comment line is sent on an idle stream this often (dead clients and proxies).
  absl::Duration watch_keepalive = absl::Seconds(15);
  // Flags reported by GET /v1/config besides the live fields (scuttled fills this from
  // its flag registry). Live fields always come from the node, with their current value.
  std::vector<ConfigFlag> flags;
  // Bearer token every request must carry; empty = none (scuttled refuses to listen beyond
  // loopback without one unless --admin_insecure).
  std::string token;
};

class AdminServer {
 public:
  // Binds the listening socket (so a busy port fails before anything else starts) but
  // does not serve yet. Errors name the address.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Bind(const AdminOptions& options);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Serves on a thread of its own. REQUIRES: node outlives Stop() (or the destructor).
  void Serve(Node* node);
  // Stops accepting, finishes in-flight requests, joins the threads. Idempotent.
  void Stop();
  int port() const { return port_; }
  // Every route registered so far (all of them once Serve() has run).
  std::vector<AdminRoute> routes() const;

 private:
  AdminServer() = default;
  void Route();

  void RouteMembers();
  void RouteKv();
  void RouteStats();
  void RouteWatch();
  void RouteConfig();
  void RouteUi();
  void RouteKeyring();

  AdminOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> watchers_{0};
  std::atomic<uint64_t> watch_rejected_{0};
  std::atomic<uint64_t> watch_overflows_{0};
  std::atomic<uint64_t> watch_events_sent_{0};
  Node* node_ = nullptr;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace scuttle

#endif  // SCUTTLE_API_ADMIN_SERVER_H_
