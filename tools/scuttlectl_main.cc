// scuttlectl: a command-line client of scuttled's admin API (DESIGN §10). Human tables by
// default, --json for scripts, and exit codes scripts can rely on (see kUsage).
//
// Flags are absl flags (sim/flags.h keeps the exit-code contract: 2 for any usage error);
// each command refuses the command options it does not take.
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "node/keyring_file.h"
#include "sim/flags.h"
#include "wire/absl_compat.h"
#include "wire/seal.h"

ABSL_FLAG(std::string, addr, "",
          "admin API address HOST:PORT (default 127.0.0.1:7480, or $SCUTTLE_ADDR)");
ABSL_FLAG(bool, json, false, "machine-readable output: the API's JSON (watch: one object a line)");
ABSL_FLAG(int32_t, timeout_s, 5, "per-request timeout (watch waits for events forever)");
ABSL_FLAG(std::string, token_file, "",
          "admin bearer token (scuttled --admin_token_file), or $SCUTTLE_TOKEN_FILE");
// Command options: a command refuses the ones it does not take.
ABSL_FLAG(std::string, node, "", "get, ls, watch: the node whose keys");
ABSL_FLAG(std::string, prefix, "", "ls, watch: only keys with this prefix");
ABSL_FLAG(std::string, ttl, "", "put: time to live, e.g. 30s");
ABSL_FLAG(std::string, since, "", "watch: resume after this sequence number");
ABSL_FLAG(std::string, count, "", "watch: exit after this many events");
ABSL_FLAG(bool, snapshot, false, "watch: start with the matching keys as they are");

namespace scuttle {
namespace {

using json = nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitNotFound = 1;
constexpr int kExitUsage = 2;
constexpr int kExitServer = 3;

constexpr const char* kUsage = R"(scuttlectl: command-line client of the scuttled admin API.

Usage: scuttlectl [--addr=HOST:PORT] [--json] [--timeout_s=SECONDS] COMMAND [ARGS]

Commands:
  health                               GET /healthz
  members                              member table (* marks this node)
  get KEY [--node=N]                   print the value (raw bytes; a newline on a tty)
  put KEY VALUE [--ttl=30s]            write KEY; VALUE - reads it from stdin
                                       (a VALUE that starts with '-' goes after --)
  delete KEY                           delete KEY
  ls [--prefix=P] [--node=N]           list keys (every node unless --node)
  watch [--prefix=P] [--node=N] [--since=SEQ] [--snapshot] [--count=N]
                                       stream changes (server-sent events) until
                                       interrupted, or until N events were printed
  config get                           every flag, its value and whether it is live
  config set NAME=VALUE...             change live settings at once (all or nothing)
  keys list                            installed gossip keys (fingerprints), the primary,
                                       and how many live members seal with each
  keys install KEY                     add a base64 key (opens with it; seals with the primary)
  keys use KEY|FINGERPRINT             make an installed key the primary
  keys remove KEY|FINGERPRINT          remove a key (not the primary)
  keys generate                        print a new random key (no server needed)

Exit codes:
  0  success
  1  not found (no such key or node)
  2  usage error, or the server refused the request as invalid (HTTP 400/405/413)
  3  server or connection error (unreachable, timeout, HTTP 5xx, a watch stream that ended;
     then it names the --since to resume from)
)";

struct Args {
  std::string addr = "127.0.0.1:7480";
  const char* addr_from = "the default";  // or "--addr", "$SCUTTLE_ADDR": named in errors
  bool json_out = false;
  int timeout_s = 5;
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // command options: --node, --prefix, ...
  bool snapshot = false;
  std::string token_file;
};

[[noreturn]] void Usage(const std::string& msg) {
  std::fprintf(stderr, "scuttlectl: %s\n(see scuttlectl --help)\n", msg.c_str());
  std::exit(kExitUsage);
}

// RFC 3986 unreserved characters pass; every other byte is %XX.
std::string UrlEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    q += q.empty() ? "?" : "&";
    q += k + "=" + UrlEncode(v);
  }
  return q;
}

Args Parse(int argc, char** argv) {
  constexpr std::string_view kFiles[] = {"tools/scuttlectl_main.cc"};
  std::vector<char*> args(argv, argv + argc);
  static char help[] = "--help";
  if (args.size() > 1 && std::string_view(args[1]) == "help") args[1] = help;
  Args a;
  a.positional = cli::ParseFlagsAndArgsOrExit(static_cast<int>(args.size()), args.data(),
                                              "scuttlectl", kUsage, cli::FlagsDefinedIn(kFiles));
  if (cli::FlagSet("addr")) {
    a.addr = absl::GetFlag(FLAGS_addr);
    a.addr_from = "--addr";
  } else if (const char* env = std::getenv("SCUTTLE_ADDR"); env != nullptr && *env != '\0') {
    a.addr = env;
    a.addr_from = "$SCUTTLE_ADDR";
  }
  a.token_file = absl::GetFlag(FLAGS_token_file);
  if (const char* env = std::getenv("SCUTTLE_TOKEN_FILE");
      !cli::FlagSet("token_file") && env != nullptr && *env != '\0') {
    a.token_file = env;
  }
  a.json_out = absl::GetFlag(FLAGS_json);
  a.timeout_s = absl::GetFlag(FLAGS_timeout_s);
  if (a.timeout_s <= 0) Usage("--timeout_s wants a positive number of seconds");
  a.snapshot = absl::GetFlag(FLAGS_snapshot);
  const std::pair<const char*, const absl::Flag<std::string>*> kOptions[] = {
      {"node", &FLAGS_node},
      {"prefix", &FLAGS_prefix},
      {"ttl", &FLAGS_ttl},
      {"since", &FLAGS_since},
      {"count", &FLAGS_count}};
  for (const auto& [name, flag] : kOptions) {
    if (cli::FlagSet(name)) a.options[name] = absl::GetFlag(*flag);
  }
  return a;
}

// Options a command accepts; anything else is a usage error.
void Allow(const Args& a, std::initializer_list<const char*> allowed, bool snapshot = false) {
  for (const auto& [name, value] : a.options) {
    bool ok = false;
    for (const char* n : allowed) ok = ok || name == n;
    if (!ok) Usage("--" + name + " does not apply to '" + a.positional[0] + "'");
  }
  if (a.snapshot && !snapshot) Usage("--snapshot applies to 'watch' only");
}

void WantArgs(const Args& a, size_t n, const char* shape) {
  if (a.positional.size() != n) Usage(std::string("usage: scuttlectl ") + shape);
}

std::string Opt(const Args& a, const char* name) {
  auto it = a.options.find(name);
  return it == a.options.end() ? std::string() : it->second;
}

// "Connection refused" -> "connection refused": the reason reads as part of a sentence.
std::string Lowered(const char* text) {
  std::string s = text;
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

// The errno of one non-blocking connect to ai, waited for up to timeout_s; 0 if it connects.
int ConnectErrno(const addrinfo& ai, int timeout_s) {
  const int fd =
      socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
  if (fd < 0) return errno;
  int err = connect(fd, ai.ai_addr, ai.ai_addrlen) == 0 ? 0 : errno;
  if (err == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    const int n = poll(&p, 1, timeout_s * 1000);
    socklen_t len = sizeof(err);
    if (n == 0) {
      err = ETIMEDOUT;
    } else if (n < 0) {
      err = errno;
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      err = errno;
    }
  }
  close(fd);
  return err;
}

// httplib reports every failed connect as Error::Connection, and its errno is gone by the
// time it returns (it is EINPROGRESS from the non-blocking connect). One more attempt finds
// the reason: a name that does not resolve, or the connect's errno. "" if it now connects.
std::string ConnectFailure(const std::string& host, int port, int timeout_s) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (rc != 0) {
    return "cannot resolve '" + host +
           "': " + (rc == EAI_SYSTEM ? Lowered(std::strerror(errno)) : Lowered(gai_strerror(rc)));
  }
  int err = 0;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    err = ConnectErrno(*ai, timeout_s);  // like httplib: the first address that connects
    if (err == 0) break;
  }
  freeaddrinfo(list);
  return err == 0 ? "" : Lowered(std::strerror(err));
}

class Api {
 public:
  explicit Api(const Args& a) : args_(a) {
    host_ = a.addr;
    const size_t colon = a.addr.rfind(':');
    if (colon != std::string::npos) {
      host_ = a.addr.substr(0, colon);
      if (!absl::SimpleAtoi(a.addr.substr(colon + 1), &port_) || port_ <= 0 || port_ > 65535) {
        Usage("--addr " + a.addr + ": want host:port");
      }
    }
    if (host_.size() > 2 && host_.front() == '[' && host_.back() == ']') {
      host_ = host_.substr(1, host_.size() - 2);
    }
    client_ = std::make_unique<httplib::Client>(host_, port_);
    client_->set_url_encode(false);  // paths are encoded here
    client_->set_connection_timeout(a.timeout_s, 0);
    client_->set_read_timeout(a.timeout_s, 0);
    client_->set_write_timeout(a.timeout_s, 0);
    if (!a.token_file.empty()) {
      absl::StatusOr<std::string> token = LoadSecretFile(a.token_file);
      if (!token.ok()) {
        std::fprintf(stderr, "scuttlectl: --token_file: %s\n",
                     std::string(token.status().message()).c_str());
        std::exit(kExitUsage);
      }
      client_->set_bearer_token_auth(*token);
    }
  }

  // Sends the request; on success returns the JSON body, else prints the error and exits
  // with the contract's code.
  json Call(const std::string& method, const std::string& path, const std::string& body = "",
            const char* content_type = "application/octet-stream") {
    httplib::Result r = method == "GET"      ? client_->Get(path)
                        : method == "PUT"    ? client_->Put(path, body, content_type)
                        : method == "PATCH"  ? client_->Patch(path, body, content_type)
                        : method == "DELETE" ? client_->Delete(path)
                                             : client_->Post(path, body, content_type);
    if (!r) Fail(r.error(), method + " " + path);
    json j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    if (r->status == 200 && !j.is_discarded()) return j;
    const std::string detail =
        !j.is_discarded() && j.is_object() ? j.value("detail", r->body) : r->body;
    std::fprintf(stderr, "scuttlectl: %s %s: HTTP %d: %s\n", method.c_str(), path.c_str(),
                 r->status, r->status == 200 ? "the reply is not JSON" : detail.c_str());
    std::exit(r->status == 200 ? kExitServer : ExitCode(r->status));
  }

  // A request that got no HTTP response: one line that says what failed and what to check,
  // then exit 3. `what` names the request ("GET /healthz").
  [[noreturn]] void Fail(httplib::Error error, const std::string& what) {
    const std::string timeout = absl::StrCat(args_.timeout_s, "s (--timeout_s)");
    std::string line;
    switch (error) {
      case httplib::Error::Connection: {
        const std::string why = ConnectFailure(host_, port_, args_.timeout_s);
        line = Unreachable(why.empty() ? "the connection failed" : why);
        break;
      }
      case httplib::Error::ConnectionTimeout:
        line = Unreachable("no connection within " + timeout);
        break;
      case httplib::Error::Read:
        line = absl::StrCat(what, " to scuttled at ", args_.addr,
                            ": no complete reply (the connection was closed, or nothing came "
                            "within ",
                            timeout, ")");
        break;
      case httplib::Error::Write:
        line = absl::StrCat(what, " to scuttled at ", args_.addr,
                            ": could not send the request (the connection was closed, or it "
                            "stalled for ",
                            timeout, ")");
        break;
      default:
        line = absl::StrCat(what, " to scuttled at ", args_.addr, " failed: HTTP client error ",
                            httplib::to_string(error));
        break;
    }
    std::fprintf(stderr, "scuttlectl: %s\n", line.c_str());
    std::exit(kExitServer);
  }

  static int ExitCode(int status) {
    if (status == 200) return kExitOk;
    if (status == 404) return kExitNotFound;
    if (status >= 400 && status < 500) return kExitUsage;
    return kExitServer;
  }

  httplib::Client& client() { return *client_; }

 private:
  // "cannot reach scuttled at ADDR: WHY (HINT)". The hint names where ADDR came from; a
  // refused or timed-out connect also asks whether scuttled runs, a name that does not
  // resolve does not.
  std::string Unreachable(const std::string& why) const {
    const std::string where = std::string(args_.addr_from) == "--addr" ? "check --addr"
                              : std::string(args_.addr_from) == "$SCUTTLE_ADDR"
                                  ? "that address is from $SCUTTLE_ADDR; set --addr to override"
                                  : "that is the default address; set --addr or SCUTTLE_ADDR";
    const bool unresolved = why.starts_with("cannot resolve");
    return absl::StrCat("cannot reach scuttled at ", args_.addr, ": ", why, " (",
                        unresolved ? "" : "is it running? ", where, ")");
  }

  const Args& args_;
  std::string host_;
  int port_ = 7480;
  std::unique_ptr<httplib::Client> client_;
};

std::string Bytes(const json& j, const char* field) {
  const std::string b64 = std::string(field) + "_base64";
  if (j.contains(b64)) {
    std::string out;
    absl::Base64Unescape(AV(j[b64].get<std::string>()), &out);
    return out;
  }
  return j.value(field, "");
}

// What a human sees for a value: text as is (shortened), bytes as base64.
std::string Show(const json& j, const char* field, size_t max = 60) {
  const std::string b64 = std::string(field) + "_base64";
  std::string s = j.contains(b64) ? "base64:" + j[b64].get<std::string>() : j.value(field, "");
  for (char& c : s) {
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  }
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

std::string Text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

void Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows) {
    w.resize(std::max(w.size(), r.size()));
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

void PrintJson(const json& j) {
  std::printf("%s\n", j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
}

int Health(Api& api, const Args& a) {
  WantArgs(a, 1, "health");
  Allow(a, {});
  const json j = api.Call("GET", "/healthz");
  if (a.json_out) {
    PrintJson(j);
  } else {
    std::printf("%s %s (%s)\n", Text(j["status"]).c_str(), Text(j["node"]).c_str(),
                Text(j["transport"]).c_str());
  }
  return kExitOk;
}

int Members(Api& api, const Args& a) {
  WantArgs(a, 1, "members");
  Allow(a, {});
  const json j = api.Call("GET", "/v1/members");
  if (a.json_out) {
    PrintJson(j);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "STATE", "ADDRESS", "GENERATION", "KEYS", "TOMBSTONES", "MAX_VERSION", "PHI"}};
  for (const json& m : j["members"]) {
    char phi[32];
    std::snprintf(phi, sizeof(phi), "%.2f", m.value("phi", 0.0));
    rows.push_back({Text(m["name"]) + (m.value("self", false) ? " *" : ""), Text(m["state"]),
                    Text(m["gossip_addr"]), Text(m["generation"]), Text(m["keys"]),
                    Text(m["tombstones"]), Text(m["max_version"]), phi});
  }
  Table(rows);
  return kExitOk;
}

int Get(Api& api, const Args& a) {
  WantArgs(a, 2, "get KEY [--node N]");
  Allow(a, {"node"});
  const json j =
      api.Call("GET", "/v1/kv/" + UrlEncode(a.positional[1]) + Query({{"node", Opt(a, "node")}}));
  if (a.json_out) {
    PrintJson(j);
    return kExitOk;
  }
  const std::string v = Bytes(j, "value");
  std::fwrite(v.data(), 1, v.size(), stdout);
  if (isatty(STDOUT_FILENO)) std::printf("\n");
  return kExitOk;
}

int Put(Api& api, const Args& a) {
  WantArgs(a, 3, "put KEY VALUE [--ttl 30s]   (VALUE - reads stdin)");
  Allow(a, {"ttl"});
  std::string value = a.positional[2];
  if (value == "-") {
    value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  const json j = api.Call(
      "PUT", "/v1/kv/" + UrlEncode(a.positional[1]) + Query({{"ttl", Opt(a, "ttl")}}), value);
  if (a.json_out) {
    PrintJson(j);
  } else {
    std::printf("%s version %s\n", Show(j, "key").c_str(), Text(j["version"]).c_str());
  }
  return kExitOk;
}

int Delete(Api& api, const Args& a) {
  WantArgs(a, 2, "delete KEY");
  Allow(a, {});
  const json j = api.Call("DELETE", "/v1/kv/" + UrlEncode(a.positional[1]));
  if (a.json_out) {
    PrintJson(j);
  } else {
    std::printf("deleted %s (version %s)\n", Show(j, "key").c_str(), Text(j["version"]).c_str());
  }
  return kExitOk;
}

int List(Api& api, const Args& a) {
  WantArgs(a, 1, "ls [--prefix P] [--node N]");
  Allow(a, {"prefix", "node"});
  const json j =
      api.Call("GET", "/v1/kv" + Query({{"prefix", Opt(a, "prefix")}, {"node", Opt(a, "node")}}));
  if (a.json_out) {
    PrintJson(j);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NODE", "KEY", "VERSION", "VALUE"}};
  for (const json& e : j["entries"]) {
    rows.push_back({Text(e["node"]), Show(e, "key"), Text(e["version"]), Show(e, "value")});
  }
  Table(rows);
  if (j.value("truncated", false)) std::fprintf(stderr, "scuttlectl: list truncated\n");
  return kExitOk;
}

// Prints one server-sent event; returns false once --count events were printed.
struct WatchPrinter {
  bool json_out;
  long remaining;  // < 0: unlimited
  long printed = 0;

  bool Print(const std::string& event, const std::string& data) {
    const json j = json::parse(data, nullptr, false);
    if (json_out) {
      json line = j.is_discarded() ? json{{"data", data}} : j;
      if (line.is_object() && !line.contains("event")) line["event"] = event;
      std::printf("%s\n", line.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    } else if (event == "overflow") {
      std::printf("%s overflow  %s\n", Text(j["seq"]).c_str(), Text(j["detail"]).c_str());
    } else if (event == "snapshot") {
      std::printf("- snapshot  %s %s = %s (v%s)\n", Text(j["node"]).c_str(), Show(j, "key").c_str(),
                  Show(j, "value").c_str(), Text(j["version"]).c_str());
    } else if (event == "snapshot_end") {
      std::printf("%s snapshot_end  %s entries\n", Text(j["seq"]).c_str(),
                  Text(j["entries"]).c_str());
    } else if (j.is_object() && (j.contains("key") || j.contains("key_base64"))) {
      std::string line =
          Text(j["seq"]) + " " + event + "  " + Text(j["node"]) + " " + Show(j, "key");
      if (event == "set") line += " = " + Show(j, "value");
      line += " (v" + Text(j["version"]) + ")";
      std::printf("%s\n", line.c_str());
    } else {
      std::printf("%s %s  %s (generation %s)\n", Text(j["seq"]).c_str(), event.c_str(),
                  Text(j["node"]).c_str(), Text(j["generation"]).c_str());
    }
    std::fflush(stdout);
    ++printed;
    return remaining < 0 || --remaining > 0;
  }
};

// Splits the event stream into events (text/event-stream framing) and keeps what a reader
// needs to resume when the stream ends: the last event id, else the sequence the server
// said the stream starts after (its first comment, ": scuttle watch from seq N").
struct WatchStream {
  WatchStream(const WatchPrinter& p, bool snapshot) : printer(p), snapshot_pending(snapshot) {}

  WatchPrinter printer;
  bool snapshot_pending;  // --snapshot until snapshot_end arrives
  std::string last_id, start_seq;
  std::string buf, event, id, data;

  // Returns false once the printer wants no more events.
  bool Feed(const char* d, size_t n) {
    buf.append(d, n);
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      const std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line.empty()) {  // end of one event
        if (!event.empty() || !data.empty()) {
          if (!id.empty()) last_id = id;
          if (event == "snapshot_end") snapshot_pending = false;
          if (!printer.Print(event.empty() ? "message" : event, data)) return false;
        }
        event.clear(), id.clear(), data.clear();
      } else if (line.starts_with(": scuttle watch from seq ")) {
        start_seq = line.substr(25);
      } else if (line.starts_with("event: ")) {
        event = line.substr(7);
      } else if (line.starts_with("id: ")) {
        id = line.substr(4);
      } else if (line.starts_with("data: ")) {
        data += line.substr(6);
      }
    }
    return true;
  }

  // What to run to continue where this stream stopped, without missing an event.
  std::string Resume(const std::string& since_arg) const {
    if (snapshot_pending) return "the snapshot was cut short: run again with --snapshot";
    const std::string& since = !last_id.empty()     ? last_id
                               : !start_seq.empty() ? start_seq
                                                    : since_arg;
    if (since.empty()) return "no start sequence arrived: resync with --snapshot";
    return "resume with --since " + since;
  }
};

int Watch(Api& api, const Args& a) {
  WantArgs(a, 1, "watch [--prefix P] [--node N] [--since SEQ] [--snapshot] [--count N]");
  Allow(a, {"prefix", "node", "since", "count"}, /*snapshot=*/true);
  long count = -1;
  if (const std::string c = Opt(a, "count");
      !c.empty() && (!absl::SimpleAtoi(c, &count) || count <= 0)) {
    Usage("--count wants a positive number");
  }
  const std::string path = "/v1/watch" + Query({{"prefix", Opt(a, "prefix")},
                                                {"node", Opt(a, "node")},
                                                {"since", Opt(a, "since")},
                                                {"snapshot", a.snapshot ? "1" : ""}});
  WatchStream stream(WatchPrinter{a.json_out, count}, a.snapshot);
  std::string error_body;
  bool done = false;
  int status = 0;
  api.client().set_read_timeout(24 * 3600, 0);  // idle streams get keepalives, not EOF
  httplib::Result r = api.client().Get(
      path,
      [&](const httplib::Response& res) {
        status = res.status;
        return true;
      },
      [&](const char* d, size_t n) {
        if (status != 200) {
          error_body.append(d, n);
          return true;
        }
        done = !stream.Feed(d, n);
        return !done;
      });
  if (done) return kExitOk;
  if (status == 0) api.Fail(r.error(), "GET " + path);  // no response at all
  if (status != 200) {
    const json j = json::parse(error_body, nullptr, false);
    std::fprintf(stderr, "scuttlectl: GET %s: HTTP %d: %s\n", path.c_str(), status,
                 j.is_object() ? j.value("detail", error_body).c_str() : error_body.c_str());
    return Api::ExitCode(status);
  }
  // A watch runs until it is interrupted or has --count events: any end is an error, and
  // the message says how to continue without missing an event.
  const std::string how = r ? "ended (scuttled closed it: is it shutting down?)"
                          : r.error() == httplib::Error::Read
                              ? "was cut (the connection closed before the end)"
                              : "was cut (HTTP client error " + httplib::to_string(r.error()) + ")";
  std::fprintf(stderr, "scuttlectl: the watch stream from %s %s after %ld event%s; %s\n",
               a.addr.c_str(), how.c_str(), stream.printer.printed,
               stream.printer.printed == 1 ? "" : "s", stream.Resume(Opt(a, "since")).c_str());
  return kExitServer;
}

// "name=value": a JSON number or boolean when it reads as one, else a string.
json ConfigValue(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_discarded() && (j.is_number() || j.is_boolean())) return j;
  return text;
}

int Config(Api& api, const Args& a) {
  if (a.positional.size() < 2) Usage("usage: scuttlectl config get | config set NAME=VALUE...");
  Allow(a, {});
  const std::string& sub = a.positional[1];
  if (sub == "get") {
    WantArgs(a, 2, "config get");
    const json j = api.Call("GET", "/v1/config");
    if (a.json_out) {
      PrintJson(j);
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows = {{"NAME", "VALUE", "LIVE"}};
    for (auto it = j["config"].begin(); it != j["config"].end(); ++it) {
      rows.push_back(
          {it.key(), Text(it.value()["value"]), it.value().value("live", false) ? "yes" : "no"});
    }
    Table(rows);
    return kExitOk;
  }
  if (sub != "set") Usage("config: want 'get' or 'set', not '" + sub + "'");
  if (a.positional.size() < 3) Usage("usage: scuttlectl config set NAME=VALUE...");
  json patch = json::object();
  for (size_t i = 2; i < a.positional.size(); ++i) {
    const std::string& kv = a.positional[i];
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) Usage("config set: want NAME=VALUE, not '" + kv + "'");
    patch[kv.substr(0, eq)] = ConfigValue(kv.substr(eq + 1));
  }
  const json j = api.Call("PATCH", "/v1/config", patch.dump(), "application/json");
  if (a.json_out) {
    PrintJson(j);
    return kExitOk;
  }
  for (const json& name : j["changed"]) {
    const std::string n = name.get<std::string>();
    std::printf("%s = %s\n", n.c_str(), Text(j["config"][n]).c_str());
  }
  return kExitOk;
}

int Keys(Api& api, const Args& a) {
  if (a.positional.size() < 2) Usage("usage: scuttlectl keys list | install|use|remove KEY");
  Allow(a, {});
  const std::string& sub = a.positional[1];
  json j;
  if (sub == "list") {
    WantArgs(a, 2, "keys list");
    j = api.Call("GET", "/v1/keyring");
  } else if (sub == "install" || sub == "use" || sub == "remove") {
    WantArgs(a, 3, "keys install|use|remove KEY");
    j = api.Call("POST", "/v1/keyring", json{{"op", sub}, {"key", a.positional[2]}}.dump(),
                 "application/json");
  } else {
    Usage("keys: want list, install, use, remove or generate, not '" + sub + "'");
  }
  if (a.json_out) {
    PrintJson(j);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"FINGERPRINT", "PRIMARY", "MEMBERS_PRIMARY"}};
  for (const json& k : j["keys"]) {
    rows.push_back({k.value("fingerprint", ""), k.value("primary", false) ? "*" : "",
                    absl::StrCat(k.value("members_primary", 0), "/", j.value("members", 0))});
  }
  Table(rows);
  std::printf("cipher %s, verify incoming %s, outgoing %s; %zu live member(s) on another or "
              "no key%s%s\n",
              j.value("cipher", "").c_str(), j.value("verify_incoming", true) ? "on" : "off",
              j.value("verify_outgoing", true) ? "on" : "off",
              j.value("members_other", size_t{0}),
              j.value("file", "").empty() ? "; not persisted (no --keyring_file)" : "; file ",
              j.value("file", "").c_str());
  return kExitOk;
}

int Main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  if (a.positional.empty()) Usage("no command");
  if (a.positional[0] == "keys" && a.positional.size() == 2 && a.positional[1] == "generate") {
    std::printf("%s\n", wire::EncodeKey(wire::GenerateKey()).c_str());
    return kExitOk;
  }
  Api api(a);
  const std::string& cmd = a.positional[0];
  if (cmd == "health") return Health(api, a);
  if (cmd == "members") return Members(api, a);
  if (cmd == "get") return Get(api, a);
  if (cmd == "put") return Put(api, a);
  if (cmd == "delete" || cmd == "del" || cmd == "rm") return Delete(api, a);
  if (cmd == "ls" || cmd == "list") return List(api, a);
  if (cmd == "watch") return Watch(api, a);
  if (cmd == "config") return Config(api, a);
  if (cmd == "keys") return Keys(api, a);
  Usage("unknown command '" + cmd + "'");
}

}  // namespace
}  // namespace scuttle

int main(int argc, char** argv) { return scuttle::Main(argc, argv); }
