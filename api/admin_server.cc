// AdminServer (api/admin_server.h): bind, serve, stop, authentication, the route table
// and the JSON error replies. Routes are registered per area: admin_kv.cc (keys),
// admin_status.cc (members, /v1/debug/stats, /metrics), admin_watch.cc (SSE),
// admin_config.cc, admin_keyring.cc, admin_ui.cc; shared helpers in admin_http.h.
#include "api/admin_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "engine/delta_applier.h"
#include "engine/engine.h"
#include "httplib.h"
#include "io/clock.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "api/admin_http.h"
#include "wire/absl_compat.h"
#include "wire/packet.h"

namespace scuttle {

using namespace admin_internal;  // the JSON/HTTP helpers every route file shares

namespace {

std::string IpString(const Endpoint& ep) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(ep.family == 4 ? AF_INET : AF_INET6, ep.addr.data(), buf, sizeof(buf));
  return buf;
}

// httplib reports a failed bind as `false` only: bind a probe socket first so the error
// names the cause (EADDRINUSE, EADDRNOTAVAIL, EACCES).
absl::Status ProbeBind(const Endpoint& ep) {
  const int fd = ::socket(ep.family == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("admin: socket: ", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // as httplib does
  sockaddr_storage ss{};
  socklen_t len;
  if (ep.family == 4) {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(ep.port);
    std::memcpy(&sa->sin_addr, ep.addr.data(), 4);
    len = sizeof(sockaddr_in);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(ep.port);
    std::memcpy(&sa->sin6_addr, ep.addr.data(), 16);
    len = sizeof(sockaddr_in6);
  }
  const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len);
  const int err = errno;
  ::close(fd);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("admin: bind ", ep.ToString(), ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

// ---- Server -----------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Bind(const AdminOptions& options) {
  if (!options.listen.valid()) return absl::InvalidArgumentError("admin: no listen address");
  if (absl::Status s = ProbeBind(options.listen); !s.ok()) return s;
  std::unique_ptr<AdminServer> a(new AdminServer());
  a->options_ = options;
  a->server_ = std::make_unique<RecordingServer>();
  // httplib's default is SO_REUSEPORT, which lets a second scuttled (same uid) bind the
  // same admin port silently. SO_REUSEADDR alone refuses a live listener and still
  // allows a restart over the old process's TIME_WAIT connections.
  a->server_->set_socket_options([](int sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const std::string host = IpString(options.listen);
  if (options.listen.port == 0) {
    a->port_ = a->server_->bind_to_any_port(host);
    if (a->port_ <= 0) return absl::UnavailableError("admin: bind " + host + ":0 failed");
  } else {
    if (!a->server_->bind_to_port(host, options.listen.port)) {
      return absl::UnavailableError("admin: bind " + options.listen.ToString() + " failed");
    }
    a->port_ = options.listen.port;
  }
  return a;
}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Serve(Node* node) {
  node_ = node;
  Route();
  thread_ = std::thread([this] {
    if (!server_->listen_after_bind()) spdlog::error("admin: server stopped with an error");
  });
  spdlog::info("admin: serving on {}:{}", IpString(options_.listen), port_);
}

void AdminServer::Stop() {
  if (server_ == nullptr || !thread_.joinable()) return;
  stopping_ = true;  // watch streams end within one wait slice
  // httplib's stop() is a no-op until listen_after_bind() has marked the server running:
  // a stop right after Serve() must wait for that, or the join below would hang.
  for (int i = 0; i < 1000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
  thread_.join();
}

std::vector<AdminRoute> AdminServer::routes() const {
  return server_ == nullptr ? std::vector<AdminRoute>{} : Routes(*server_).routes;
}

void AdminServer::Route() {
  RecordingServer& s = Routes(*server_);
  Node* node = node_;
  const AdminOptions opt = options_;
  // Bodies past the value limit are refused by httplib with 413 before any handler runs.
  s.set_payload_max_length(opt.max_value_bytes);
  // Bounds how long Stop() waits for idle keep-alive connections.
  s.set_keep_alive_timeout(1);
  // Each watch stream holds a worker thread for its lifetime: room for every allowed
  // watcher plus the usual pool for short requests.
  const size_t threads = opt.max_watchers + 8;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

  if (!opt.token.empty()) {
    const std::string want = "Bearer " + opt.token;
    s.set_pre_routing_handler([want](const Request& req, Response& res) {
      const std::string got = req.get_header_value("Authorization");
      // Constant time over the expected length: the comparison leaks no prefix.
      unsigned char diff = got.size() == want.size() ? 0 : 1;
      for (size_t i = 0; i < want.size(); ++i) {
        diff |= static_cast<unsigned char>(want[i] ^ (i < got.size() ? got[i] : 0));
      }
      if (diff == 0) return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      Error(res, 401, "this admin API needs Authorization: Bearer <token> (--admin_token_file)");
      return httplib::Server::HandlerResponse::Handled;
    });
  }

  s.Get("/healthz", [node](const Request&, Response& res) {
    Reply(res, 200,
          json{{"status", "ok"}, {"node", node->name()}, {"transport", node->transport_name()}});
  });

  RouteMembers();
  RouteKv();
  RouteStats();
  RouteWatch();
  RouteConfig();
  RouteUi();

  // The route table itself, for clients and for the docs/openapi.yaml check.
  s.Get("/v1/debug/routes", [&s](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    json arr = json::array();
    for (const AdminRoute& r : s.routes) {
      arr.push_back(json{{"method", r.method}, {"pattern", r.pattern}, {"kind", r.kind}});
    }
    Reply(res, 200, json{{"routes", std::move(arr)}});
  });
  RouteKeyring();

  // An empty key is a bad request, not an unknown path.
  s.kind = "error";
  auto empty_key = [](const Request&, Response& res) { Error(res, 400, "key is empty"); };
  s.Get("/v1/kv/", empty_key);
  s.Put("/v1/kv/", empty_key);
  s.Delete("/v1/kv/", empty_key);

  // Known paths, wrong method: 405 with Allow.
  auto not_allowed = [](const char* allow) {
    return [allow](const Request& req, Response& res) {
      res.set_header("Allow", allow);
      Error(res, 405, absl::StrCat(req.method, " is not allowed on ", req.path, "; use ", allow));
    };
  };
  s.kind = "method_not_allowed";
  for (const char* path : {"/healthz", "/v1/members", "/v1/kv", "/v1/debug/stats",
                           "/v1/debug/routes", "/metrics", "/v1/watch", "/ui", "/ui/"}) {
    s.Post(path, not_allowed("GET"));
    s.Put(path, not_allowed("GET"));
    s.Delete(path, not_allowed("GET"));
    s.Patch(path, not_allowed("GET"));
  }
  s.Put("/v1/keyring", not_allowed("GET, POST"));
  s.Delete("/v1/keyring", not_allowed("GET, POST"));
  s.Patch("/v1/keyring", not_allowed("GET, POST"));
  s.Post("/v1/config", not_allowed("GET, PATCH"));
  s.Put("/v1/config", not_allowed("GET, PATCH"));
  s.Delete("/v1/config", not_allowed("GET, PATCH"));
  s.Post(kKeyPath, not_allowed("GET, PUT, DELETE"));
  s.Patch(kKeyPath, not_allowed("GET, PUT, DELETE"));
  s.kind = "handler";

  // Anything that reached no handler (404), or that httplib refused itself (413 for a
  // body over the limit, 400 for a malformed request), still answers in JSON.
  s.set_error_handler(httplib::Server::HandlerWithResponse([](const Request& req, Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string detail;
    switch (res.status) {
      case 404: detail = absl::StrCat("no such endpoint: ", req.method, " ", req.path); break;
      case 413: detail = "request body is over the value limit"; break;
      case 414: detail = "request URI is too long"; break;
      default: detail = absl::StrCat("request refused with HTTP status ", res.status); break;
    }
    Error(res, res.status, detail);
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    Error(res, 500, what);
  });
}

}  // namespace scuttle
