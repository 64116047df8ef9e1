// AdminServer: scuttled's local HTTP/1.1 + JSON API (DESIGN §10), on cpp-httplib.
//
//   GET    /healthz                 {"status":"ok","node":NAME,"transport":"io_uring"|"epoll"}
//   GET    /v1/members              {"members":[{name, generation, gossip_addr, state, phi,
//                                     heartbeat, max_version, last_gc_version, keys,
//                                     tombstones, self}]}  sorted by name, self included
//   GET    /v1/kv?prefix=&node=     {"entries":[{node, key, value, version}]} by (node, key)
//   GET    /v1/kv/{key}?node=       {node, key, value, version}  (node defaults to self)
//   PUT    /v1/kv/{key}[?ttl=30s]   body = raw value bytes -> {key, version}
//   DELETE /v1/kv/{key}             {key, version}
//   GET    /v1/debug/stats          every counter of transport, engine and loop
//
// Values (and keys) are "value"/"key" when valid UTF-8, else "value_base64"/"key_base64".
// Keys in paths are URL-decoded and may contain '/'. Errors are {"error": CODE,
// "detail": message}: 400 bad_request, 404 not_found, 405 method_not_allowed,
// 413 too_large, 503 unavailable (engine queue full or no answer in time), 500 internal.
//
// Threading: httplib serves on its own threads; they reach the node only through
// scuttle::Node's thread-safe API.
#ifndef SCUTTLE_TOOLS_ADMIN_SERVER_H_
#define SCUTTLE_TOOLS_ADMIN_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "io/node.h"
#include "wire/packet.h"

namespace httplib {
class Server;
}

namespace scuttle {

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
                                                wire::kEntryWireBytes + 512;
  // Bound on the entries one GET /v1/kv returns ("truncated": true beyond it).
  size_t max_scan_entries = 100'000;
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

 private:
  AdminServer() = default;
  void Route();

  AdminOptions options_;
  std::unique_ptr<httplib::Server> server_;
  Node* node_ = nullptr;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace scuttle

#endif  // SCUTTLE_TOOLS_ADMIN_SERVER_H_
