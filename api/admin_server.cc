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
#include "api/node_metrics.h"
#include "api/ui_assets.h"
#include "wire/absl_compat.h"
#include "wire/packet.h"

namespace scuttle {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

// ---- Small JSON/HTTP helpers --------------------------------------------------------------

// Remote peers name nodes and keys with arbitrary bytes: never let dump() throw on them.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void Reply(Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

const char* ErrorCode(int status) {
  switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 401: return "unauthorized";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "too_large";
    case 414: return "too_large";
    case 503: return "unavailable";
    default: return status < 500 ? "bad_request" : "internal";
  }
}

void Error(Response& res, int status, std::string_view detail) {
  Reply(res, status, json{{"error", ErrorCode(status)}, {"detail", detail}});
}

int HttpStatus(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kResourceExhausted: return 413;  // e.g. max_keys_per_node
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition: return 409;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return 503;
    default: return 500;
  }
}

void Error(Response& res, const absl::Status& s) { Error(res, HttpStatus(s), SV(s.message())); }

bool IsUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;  // continuation bytes
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Sets `field` when the bytes are valid UTF-8, else `field`_base64 (standard base64).
void PutBytes(json& j, const char* field, std::string_view bytes) {
  if (IsUtf8(bytes)) {
    j[field] = bytes;
  } else {
    j[std::string(field) + "_base64"] = absl::Base64Escape(AV(bytes));
  }
}

json EntryJson(const KvEntry& e) {
  json j;
  j["node"] = e.node;
  PutBytes(j, "key", e.key);
  PutBytes(j, "value", e.value);
  j["version"] = e.version;
  return j;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

// Query parameters from the request target only. httplib also merges a
// form-urlencoded body into req.params, and `curl --data-binary` labels every PUT body
// that way: a value must never be read as parameters.
using Query = std::vector<std::pair<std::string, std::string>>;
Query ParseQuery(const Request& req) {
  Query q;
  const size_t qm = req.target.find('?');
  if (qm == std::string::npos) return q;
  std::string_view rest = std::string_view(req.target).substr(qm + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    q.emplace_back(PercentDecode(part.substr(0, eq)),
                   eq == std::string_view::npos ? std::string() : PercentDecode(part.substr(eq + 1)));
  }
  return q;
}

// 400 unless every query parameter is one of `allowed` (typos like ?prefx= are caught).
bool CheckParams(const Query& q, Response& res, std::initializer_list<std::string_view> allowed) {
  for (const auto& [name, value] : q) {
    bool ok = false;
    for (std::string_view a : allowed) ok = ok || name == a;
    if (!ok) {
      Error(res, 400, absl::StrCat("unknown query parameter '", name, "'"));
      return false;
    }
  }
  return true;
}

const std::string* Find(const Query& q, std::string_view name) {
  for (const auto& [k, v] : q) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::string Param(const Query& q, std::string_view name) {
  const std::string* v = Find(q, name);
  return v != nullptr ? *v : std::string();
}

template <size_t N, typename NameFn>
json Counters(const uint64_t (&values)[N], NameFn name) {
  json j = json::object();
  for (size_t i = 0; i < N; ++i) j[name(i)] = values[i];
  return j;
}

json StatsJson(const NodeStats& s) {
  json t;
  t["name"] = s.transport_name;
  t["rx_packets"] = s.transport.rx_packets;
  t["rx_bytes"] = s.transport.rx_bytes;
  t["tx_packets"] = s.transport.tx_packets;
  t["tx_bytes"] = s.transport.tx_bytes;
  t["polls"] = s.transport.polls;
  t["flushes"] = s.transport.flushes;
  t["wakeups"] = s.transport.wakeups;
  t["rx_rearms"] = s.transport.rx_rearms;
  t["tx_retries"] = s.transport.tx_retries;
  t["tx_gso_sends"] = s.transport.tx_gso_sends;
  t["tx_gso_segments"] = s.transport.tx_gso_segments;
  t["tx_gso_fallbacks"] = s.transport.tx_gso_fallbacks;
  t["rx_gro_batches"] = s.transport.rx_gro_batches;
  json drops = json::object();
  for (size_t i = 0; i < io::kDropReasonCount; ++i) {
    drops[io::DropName(static_cast<io::Drop>(i))] = s.transport.drops[i];
  }
  t["drops"] = std::move(drops);

  auto msg = [](size_t i) { return wire::MessageTypeName(static_cast<wire::MessageType>(i)); };
  json e;
  e["packets_in"] = Counters(s.engine.packets_in, msg);
  e["bytes_in"] = Counters(s.engine.bytes_in, msg);
  e["packets_out"] = Counters(s.engine.packets_out, msg);
  e["bytes_out"] = Counters(s.engine.bytes_out, msg);
  e["decode_drops"] = Counters(s.engine.decode_drops, [](size_t i) {
    return wire::DropReasonName(static_cast<wire::DropReason>(i));
  });
  e["engine_drops"] = Counters(s.engine.engine_drops, [](size_t i) {
    return EngineDropName(static_cast<EngineDrop>(i));
  });
  {
    // DESIGN §8: sealing, replay and the amplification guard.
    const SecurityStats& ss = s.engine.security;
    json sec;
    sec["drops"] = Counters(ss.drops, [](size_t i) {
      return SecurityDropName(static_cast<SecurityDrop>(i));
    });
    sec["sealed_out"] = ss.sealed_out;
    sec["opened_in"] = ss.opened_in;
    sec["plaintext_in"] = ss.plaintext_in;
    sec["unverified_in"] = ss.unverified_in;
    sec["unverified_bytes_in"] = ss.unverified_bytes_in;
    sec["unverified_replies"] = ss.unverified_replies;
    sec["unverified_bytes_out"] = ss.unverified_bytes_out;
    sec["replies_suppressed"] = ss.replies_suppressed;
    sec["welcome_refused"] = ss.welcome_refused;
    sec["replay_evictions"] = ss.replay_evictions;
    e["security"] = std::move(sec);
  }
  {
    // Optional zstd compression (--compression), negotiated per peer.
    const CompressionStats& cs = s.engine.compression;
    e["compression"] = json{{"compressed_out", cs.compressed_out},
                            {"plain_bytes_out", cs.plain_bytes_out},
                            {"wire_bytes_out", cs.wire_bytes_out},
                            {"incompressible_out", cs.incompressible_out},
                            {"compressed_in", cs.compressed_in},
                            {"wire_bytes_in", cs.wire_bytes_in},
                            {"plain_bytes_in", cs.plain_bytes_in}};
  }
  e["parts"] = Counters(s.apply.parts, [](size_t i) {
    return PartOutcomeName(static_cast<PartOutcome>(i));
  });
  e["entries_applied"] = s.apply.entries_applied;
  e["entries_skipped"] = s.apply.entries_skipped;
  e["generations_replaced"] = s.apply.generations_replaced;
  e["bad_cluster_received"] = s.engine.bad_cluster_received;
  e["gc_runs"] = s.engine.gc_runs;
  e["tombstones_gced"] = s.engine.tombstones_gced;
  e["keys_expired"] = s.engine.keys_expired;
  e["rounds"] = s.engine.rounds;
  e["delta_parts_built"] = s.build.parts;
  e["delta_resets_built"] = s.build.resets;
  e["delta_entries_built"] = s.build.entries;
  e["deltas_truncated"] = s.build.truncated;

  json l;
  l["iterations"] = s.loop.iterations;
  l["iteration_us_sum"] = s.loop.iteration_us_sum;
  l["iteration_us_max"] = s.loop.iteration_us_max;
  // [{le_us, count}] in bound order, "+Inf" last; counts are per bucket, not cumulative.
  json buckets = json::array();
  for (size_t i = 0; i < io::kIterationBuckets; ++i) {
    const json le = i < std::size(io::kIterationBucketUs) ? json(io::kIterationBucketUs[i])
                                                          : json("+Inf");
    buckets.push_back(json{{"le_us", le}, {"count", s.loop.iteration_buckets[i]}});
  }
  l["iteration_us_buckets"] = std::move(buckets);
  l["commands_run"] = s.loop.commands_run;
  l["timers_fired"] = s.loop.timers_fired;

  json n;
  n["gossip_rounds"] = s.gossip_rounds;
  n["seed_resolutions"] = s.seed_resolutions;
  n["seed_resolve_failures"] = s.seed_resolve_failures;
  n["member_events"] = s.member_events;
  n["key_events"] = s.key_events;
  return json{{"transport", std::move(t)}, {"engine", std::move(e)}, {"loop", std::move(l)},
              {"node", std::move(n)}};
}

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

// ---- Watch (server-sent events) -------------------------------------------------------------

json EventJson(const WatchEvent& e) {
  json j;
  j["seq"] = e.seq;
  j["event"] = e.name();
  j["node"] = e.node;
  j["generation"] = e.generation;
  if (e.kind == WatchEvent::Kind::kKey) {
    PutBytes(j, "key", e.key);
    if (e.key_event == KeyEvent::kSet) PutBytes(j, "value", e.value);
  }
  j["version"] = e.version;
  return j;
}

void AppendSse(std::string& out, const char* event, const json& data, const uint64_t* id) {
  if (id != nullptr) absl::StrAppend(&out, "id: ", *id, "\n");
  absl::StrAppend(&out, "event: ", event, "\ndata: ", Dump(data), "\n\n");
}

std::string OverflowDetail(uint64_t seq) {
  return absl::StrCat("this watcher fell behind or resumed from a sequence no longer kept; "
                      "events up to ", seq, " are skipped: resync from a snapshot (GET /v1/kv "
                      "or ?snapshot=1) and resume with since=", seq);
}

// One /v1/watch stream: its cursor and what is left to send of its snapshot.
struct WatchStream {
  WatchFilter filter;
  uint64_t after = 0;
  bool started = false;
  std::vector<KvEntry> snapshot;
  size_t snapshot_sent = 0;
  bool snapshot_pending = false;
  int64_t last_write_us = 0;
};

bool ParseSeq(const std::string& text, uint64_t* seq) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
         absl::SimpleAtoi(AV(text), seq);
}

// ---- Config -----------------------------------------------------------------------------------

json FlagValue(const ConfigFlag& f) {
  switch (f.type) {
    case ConfigFlag::Type::kInt: {
      int64_t v;
      if (absl::SimpleAtoi(AV(f.value), &v)) return v;
      uint64_t u;
      if (absl::SimpleAtoi(AV(f.value), &u)) return u;
      break;
    }
    case ConfigFlag::Type::kDouble: {
      double v;
      if (absl::SimpleAtod(AV(f.value), &v)) return v;
      break;
    }
    case ConfigFlag::Type::kBool: return f.value == "true";
    case ConfigFlag::Type::kString: break;
  }
  return f.value;
}

json LiveJson(const LiveConfig& c) {
  return json{{"gossip_interval_ms", c.gossip_interval_ms},
              {"fanout", c.fanout},
              {"phi_threshold", c.phi_threshold},
              {"dead_node_grace", absl::FormatDuration(c.dead_node_grace)},
              {"tombstone_grace", absl::FormatDuration(c.tombstone_grace)},
              {"log_level", c.log_level},
              {"rumor_k", c.rumor_k}};
}

bool IsLiveField(std::string_view name) {
  for (const char* f : kLiveConfigFields) {
    if (name == f) return true;
  }
  return false;
}

void FieldError(Response& res, std::string_view field, std::string_view detail) {
  Reply(res, 400, json{{"error", "bad_request"}, {"field", field}, {"detail", detail}});
}

// Reads one PATCH field into the patch; false (with the 400 written) on a wrong type.
bool ReadField(const std::string& name, const json& v, LiveConfigPatch& p, Response& res) {
  auto want = [&](const char* what) {
    FieldError(res, name, absl::StrCat(name, ": want ", what, ", got ", Dump(v)));
    return false;
  };
  if (name == "gossip_interval_ms" || name == "fanout") {
    if (!v.is_number_integer()) return want("an integer");
    (name == "fanout" ? p.fanout : p.gossip_interval_ms) = v.get<int64_t>();
  } else if (name == "rumor_k") {
    if (!v.is_number_integer()) return want("an integer");
    p.rumor_k = v.get<int64_t>();
  } else if (name == "phi_threshold") {
    if (!v.is_number()) return want("a number");
    p.phi_threshold = v.get<double>();
  } else if (name == "dead_node_grace" || name == "tombstone_grace") {
    absl::Duration d;
    if (!v.is_string() || !absl::ParseDuration(AV(v.get_ref<const std::string&>()), &d)) {
      return want("a duration string like \"30s\" or \"2h\"");
    }
    (name == "dead_node_grace" ? p.dead_node_grace : p.tombstone_grace) = d;
  } else if (name == "log_level") {
    if (!v.is_string()) return want("a string");
    p.log_level = v.get<std::string>();
  }
  return true;
}

// httplib keeps its handlers private, so the route table GET /v1/debug/routes serves (and
// docs/openapi.yaml is checked against) is recorded here, as routes are registered.
// Every handler goes through these (name hiding, not virtual: call them on this type).
class RecordingServer : public httplib::Server {
 public:
  // What the routes registered next are: "handler", "method_not_allowed" (405 + Allow
  // for a known path) or "error" (a documented route's error case, e.g. an empty key).
  const char* kind = "handler";
  std::vector<AdminRoute> routes;

  template <typename H>
  RecordingServer& Get(const std::string& pattern, H&& h) {
    Record("GET", pattern);
    httplib::Server::Get(pattern, std::forward<H>(h));
    return *this;
  }
  template <typename H>
  RecordingServer& Put(const std::string& pattern, H&& h) {
    Record("PUT", pattern);
    httplib::Server::Put(pattern, std::forward<H>(h));
    return *this;
  }
  template <typename H>
  RecordingServer& Post(const std::string& pattern, H&& h) {
    Record("POST", pattern);
    httplib::Server::Post(pattern, std::forward<H>(h));
    return *this;
  }
  template <typename H>
  RecordingServer& Patch(const std::string& pattern, H&& h) {
    Record("PATCH", pattern);
    httplib::Server::Patch(pattern, std::forward<H>(h));
    return *this;
  }
  template <typename H>
  RecordingServer& Delete(const std::string& pattern, H&& h) {
    Record("DELETE", pattern);
    httplib::Server::Delete(pattern, std::forward<H>(h));
    return *this;
  }

 private:
  void Record(const char* method, const std::string& pattern) {
    routes.push_back(AdminRoute{method, pattern, kind});
  }
};

RecordingServer& Routes(httplib::Server& s) { return static_cast<RecordingServer&>(s); }

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

  s.Get("/v1/members", [node](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    auto ms = node->Members();
    if (!ms.ok()) return Error(res, ms.status());
    json arr = json::array();
    for (const MemberInfo& m : *ms) {
      arr.push_back(json{{"name", m.name},
                         {"generation", m.generation},
                         {"gossip_addr", m.gossip_addr.ToString()},
                         {"state", MemberStateName(m.state)},
                         {"phi", m.phi},
                         {"heartbeat", m.heartbeat},
                         {"max_version", m.max_version},
                         {"last_gc_version", m.last_gc_version},
                         {"keys", m.keys},
                         {"tombstones", m.tombstones},
                         {"locality", m.locality},
                         {"self", m.is_self}});
    }
    Reply(res, 200, json{{"members", std::move(arr)}});
  });

  s.Get("/v1/kv", [node, opt](const Request& req, Response& res) {
    const Query q = ParseQuery(req);
    if (!CheckParams(q, res, {"prefix", "node"})) return;
    auto entries = node->Scan(Param(q, "prefix"), Param(q, "node"));
    if (!entries.ok()) return Error(res, entries.status());
    json arr = json::array();
    const size_t n = std::min(entries->size(), opt.max_scan_entries);
    for (size_t i = 0; i < n; ++i) arr.push_back(EntryJson((*entries)[i]));
    json body{{"entries", std::move(arr)}};
    if (n < entries->size()) body["truncated"] = true;
    Reply(res, 200, body);
  });

  // [\s\S]: keys may hold any byte once URL-decoded, newlines included.
  static constexpr const char* kKeyPath = R"(/v1/kv/([\s\S]+))";
  auto check_key = [opt](const std::string& key, Response& res) {
    if (key.size() > opt.max_key_bytes) {
      Error(res, 413, absl::StrCat("key is ", key.size(), " bytes; the limit is ",
                                   opt.max_key_bytes));
      return false;
    }
    return true;
  };

  s.Get(kKeyPath, [node, check_key](const Request& req, Response& res) {
    const Query q = ParseQuery(req);
    if (!CheckParams(q, res, {"node"})) return;
    const std::string key = req.matches[1];
    if (!check_key(key, res)) return;
    auto e = node->Get(key, Param(q, "node"));
    if (!e.ok()) return Error(res, e.status());
    Reply(res, 200, EntryJson(*e));
  });

  s.Put(kKeyPath, [node, check_key, opt](const Request& req, Response& res) {
    const Query q = ParseQuery(req);
    if (!CheckParams(q, res, {"ttl"})) return;
    const std::string key = req.matches[1];
    if (!check_key(key, res)) return;
    if (req.body.size() > opt.max_value_bytes) {
      return Error(res, 413, absl::StrCat("value is ", req.body.size(), " bytes; the limit is ",
                                          opt.max_value_bytes,
                                          " (an entry travels whole in one UDP datagram; "
                                          "README \"Value size\" has the ways around it)"));
    }
    if (key.size() + req.body.size() + AdminOptions::kWriteOverheadBytes > opt.max_packet_bytes) {
      return Error(res, 413, absl::StrCat("key+value of ", key.size() + req.body.size(),
                                          " bytes cannot fit one packet (max_packet_bytes=",
                                          opt.max_packet_bytes,
                                          "; README \"Value size\" has the ways around it)"));
    }
    absl::StatusOr<Version> v;
    if (const std::string* ttl_param = Find(q, "ttl"); ttl_param != nullptr) {
      absl::Duration ttl;
      const std::string& text = *ttl_param;
      if (!absl::ParseDuration(AV(text), &ttl) || ttl <= absl::ZeroDuration() ||
          ttl == absl::InfiniteDuration()) {
        return Error(res, 400,
                     absl::StrCat("bad ttl '", text, "': want a positive duration like 30s"));
      }
      v = node->SetWithTtl(key, req.body, ttl);
    } else {
      v = node->Set(key, req.body);
    }
    if (!v.ok()) return Error(res, v.status());
    json j;
    PutBytes(j, "key", key);
    j["version"] = *v;
    Reply(res, 200, j);
  });

  s.Delete(kKeyPath, [node, check_key](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    const std::string key = req.matches[1];
    if (!check_key(key, res)) return;
    auto v = node->Delete(key);
    if (!v.ok()) return Error(res, v.status());
    json j;
    PutBytes(j, "key", key);
    j["version"] = *v;
    Reply(res, 200, j);
  });

  s.Get("/v1/debug/stats", [node](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    auto st = node->Stats();
    if (!st.ok()) return Error(res, st.status());
    Reply(res, 200, StatsJson(*st));
  });

  s.Get("/metrics", [this, node](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    auto st = node->Stats();
    if (!st.ok()) return Error(res, st.status());
    AdminMetrics a;
    a.watchers = watchers_.load();
    a.watch_rejected = watch_rejected_.load();
    a.watch_overflows = watch_overflows_.load();
    a.watch_events_sent = watch_events_sent_.load();
    res.status = 200;
    res.set_content(RenderMetrics(node->name(), node->generation(), *st, a),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
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

namespace scuttle {

void AdminServer::RouteWatch() {
  Node* node = node_;
  const AdminOptions opt = options_;
  Routes(*server_).Get("/v1/watch", [this, node, opt](const Request& req, Response& res) {
    const Query q = ParseQuery(req);
    if (!CheckParams(q, res, {"prefix", "node", "since", "snapshot"})) return;
    auto st = std::make_shared<WatchStream>();
    st->filter.prefix = Param(q, "prefix");
    st->filter.node = Param(q, "node");
    std::optional<uint64_t> since;
    if (const std::string* v = Find(q, "since"); v != nullptr) {
      uint64_t seq;
      if (!ParseSeq(*v, &seq)) {
        return Error(res, 400, absl::StrCat("since='", *v, "': want a sequence number"));
      }
      since = seq;
    } else if (req.has_header("Last-Event-ID")) {
      const std::string v = req.get_header_value("Last-Event-ID");
      uint64_t seq;
      if (!ParseSeq(v, &seq)) {
        return Error(res, 400, absl::StrCat("Last-Event-ID '", v, "': want a sequence number"));
      }
      since = seq;
    }
    const std::string snap = Param(q, "snapshot");
    if (snap != "" && snap != "0" && snap != "1" && snap != "false" && snap != "true") {
      return Error(res, 400, absl::StrCat("snapshot='", snap, "': want 0 or 1"));
    }
    st->snapshot_pending = snap == "1" || snap == "true";
    if (st->snapshot_pending && since.has_value()) {
      return Error(res, 400, "snapshot=1 starts from a snapshot: it cannot take since");
    }
    if (watchers_.fetch_add(1) >= opt.max_watchers) {
      --watchers_;
      ++watch_rejected_;
      return Error(res, 503, absl::StrCat("too many watchers (the limit is ", opt.max_watchers,
                                          "); retry later"));
    }
    if (st->snapshot_pending) {
      auto snapshot = node->Snapshot(st->filter.prefix, st->filter.node);
      if (!snapshot.ok()) {
        --watchers_;
        return Error(res, snapshot.status());
      }
      if (snapshot->entries.size() > opt.max_scan_entries) {
        snapshot->entries.resize(opt.max_scan_entries);
      }
      st->snapshot = std::move(snapshot->entries);
      st->after = snapshot->seq;
    } else {
      st->after = since.value_or(node->event_log()->last_seq());
    }
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // nginx: do not buffer the stream
    std::shared_ptr<EventLog> log = node->event_log();
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, st, log, opt](size_t /*offset*/, httplib::DataSink& sink) -> bool {
          std::string out;
          if (!st->started) {
            st->started = true;
            // Makes the headers and a first chunk go out at once: the client knows the
            // stream is live (and from which sequence) before anything changes.
            absl::StrAppend(&out, ": scuttle watch from seq ", st->after, "\n\n");
          }
          if (st->snapshot_pending) {
            const size_t end = std::min(st->snapshot.size(), st->snapshot_sent + 256);
            for (; st->snapshot_sent < end; ++st->snapshot_sent) {
              AppendSse(out, "snapshot", EntryJson(st->snapshot[st->snapshot_sent]), nullptr);
            }
            if (st->snapshot_sent == st->snapshot.size()) {
              AppendSse(out, "snapshot_end",
                        json{{"seq", st->after}, {"entries", st->snapshot.size()}}, &st->after);
              st->snapshot_pending = false;
              st->snapshot.clear();
              st->snapshot.shrink_to_fit();
            }
          } else if (stopping_ || log->closed()) {
            if (!out.empty() && !sink.write(out.data(), out.size())) return false;
            sink.done();
            return true;
          } else {
            EventLog::Batch b = log->Read(st->after, st->filter, opt.watch_buffer_events, 1024);
            st->after = b.next_after;
            if (b.overflow) {
              ++watch_overflows_;
              AppendSse(out, "overflow",
                        json{{"event", "overflow"}, {"seq", b.next_after},
                             {"detail", OverflowDetail(b.next_after)}},
                        &b.next_after);
            }
            for (const auto& e : b.events) AppendSse(out, e->name(), EventJson(*e), &e->seq);
            watch_events_sent_ += b.events.size();
          }
          const int64_t now = io::MonotonicNowUs();
          if (out.empty()) {
            if (log->Wait(st->after, 250'000)) return true;  // more to read: next call
            if (now - st->last_write_us < absl::ToInt64Microseconds(opt.watch_keepalive)) {
              return true;
            }
            out = ": keepalive\n\n";
          }
          st->last_write_us = now;
          return sink.write(out.data(), out.size());
        },
        [this](bool /*success*/) { --watchers_; });
  });
}

void AdminServer::RouteConfig() {
  Node* node = node_;
  const AdminOptions opt = options_;
  Routes(*server_).Get("/v1/config", [node, opt](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    auto live = node->GetLiveConfig();
    if (!live.ok()) return Error(res, live.status());
    json cfg = json::object();
    for (const ConfigFlag& f : opt.flags) {
      cfg[f.name] = json{{"value", FlagValue(f)}, {"live", false}, {"help", f.help}};
    }
    const json current = LiveJson(*live);
    for (auto it = current.begin(); it != current.end(); ++it) {
      const std::string& name = it.key();
      json entry = cfg.contains(name) ? cfg[name] : json{{"help", ""}};
      entry["value"] = it.value();
      entry["live"] = true;
      cfg[name] = std::move(entry);
    }
    Reply(res, 200, json{{"config", std::move(cfg)}});
  });

  Routes(*server_).Patch("/v1/config", [node, opt](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      return Error(res, 400, "the body must be a JSON object of field: value, e.g. "
                             "{\"fanout\": 4, \"log_level\": \"debug\"}");
    }
    LiveConfigPatch patch;
    std::vector<std::string> changed;
    for (const auto& [name, value] : body.items()) {
      if (!IsLiveField(name)) {
        bool known = false;
        for (const ConfigFlag& f : opt.flags) known = known || f.name == name;
        return FieldError(res, name,
                          known ? absl::StrCat(name, " cannot change at runtime: restart with --",
                                               name)
                                : absl::StrCat("unknown field '", name, "'; live fields: ",
                                               absl::StrJoin(kLiveConfigFields, ", ")));
      }
      if (!ReadField(name, value, patch, res)) return;
      changed.push_back(name);
    }
    if (absl::Status s = ValidateLiveConfigPatch(patch); !s.ok()) {
      const std::string msg(SV(s.message()));
      return FieldError(res, msg.substr(0, msg.find(':')), msg);
    }
    auto live = node->UpdateLiveConfig(patch);
    if (!live.ok()) return Error(res, live.status());
    Reply(res, 200, json{{"changed", changed}, {"config", LiveJson(*live)}});
  });
}

}  // namespace scuttle

namespace scuttle {

// The dashboard (api/ui/): static files compiled into the binary, so /ui works offline
// and matches the server it is served by. The page only calls this server's own API.
void AdminServer::RouteUi() {
  RecordingServer& s = Routes(*server_);
  auto serve = [](const UiAsset& a, Response& res) {
    res.status = 200;
    res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.content_type);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  };
  auto index = [serve](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    for (const UiAsset& a : UiAssets()) {
      if (std::string_view(a.name) == "index.html") return serve(a, res);
    }
    Error(res, 500, "the dashboard was not embedded");
  };
  s.Get("/ui", index);
  s.Get("/ui/", index);
  s.Get(R"(/ui/([A-Za-z0-9._-]+))", [serve](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    const std::string name = req.matches[1];
    for (const UiAsset& a : UiAssets()) {
      if (name == a.name) return serve(a, res);
    }
    Error(res, 404, absl::StrCat("no dashboard file '", name, "'"));
  });
}

}  // namespace scuttle

namespace scuttle {

namespace {

json KeyringJson(const KeyringInfo& k) {
  json keys = json::array();
  for (const KeyringInfo::KeyUse& u : k.keys) {
    keys.push_back(json{{"fingerprint", u.fingerprint},
                        {"primary", u.primary},
                        {"members_primary", u.members_primary}});
  }
  return json{{"keys", std::move(keys)},
              {"members", k.members},
              {"members_other", k.members_other},
              {"cipher", k.cipher},
              {"verify_incoming", k.verify_incoming},
              {"verify_outgoing", k.verify_outgoing},
              {"file", k.file}};
}

}  // namespace

void AdminServer::RouteKeyring() {
  Node* node = node_;
  Routes(*server_).Get("/v1/keyring", [node](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    absl::StatusOr<KeyringInfo> k = node->Keyring();
    if (!k.ok()) return Error(res, k.status());
    Reply(res, 200, KeyringJson(*k));
  });
  Routes(*server_).Post("/v1/keyring", [node](const Request& req, Response& res) {
    const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || !body.contains("op") || !body["op"].is_string() ||
        !body.contains("key") || !body["key"].is_string()) {
      return Error(res, 400, "the body must be {\"op\": \"install\"|\"use\"|\"remove\", "
                             "\"key\": base64 key or fingerprint}");
    }
    const std::string op = body["op"];
    KeyringOp k;
    if (op == "install") {
      k = KeyringOp::kInstall;
    } else if (op == "use") {
      k = KeyringOp::kUse;
    } else if (op == "remove") {
      k = KeyringOp::kRemove;
    } else {
      return Error(res, 400, absl::StrCat("op '", op, "': want install, use or remove"));
    }
    absl::StatusOr<KeyringInfo> info = node->UpdateKeyring(k, body["key"].get<std::string>());
    if (!info.ok()) return Error(res, info.status());
    Reply(res, 200, KeyringJson(*info));
  });
}

}  // namespace scuttle
