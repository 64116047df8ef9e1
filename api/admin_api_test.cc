// The sidecar endpoints of the admin API — /v1/watch (server-sent events), /metrics
// (validated with a strict exposition parser), /v1/config (GET and PATCH) — against an
// in-process server on a loopback port backed by real Nodes. Nothing sleeps to wait:
// every wait polls a condition with a deadline.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/admin_server.h"
#include "api/exposition_check.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "io/clock.h"
#include "nlohmann/json.hpp"
#include "node/node_testing.h"

namespace scuttle {
namespace {

using json = nlohmann::json;
using node_testing::Eventually;
using node_testing::kDeadlineUs;

NodeOptions Options(const std::string& name, const std::vector<std::string>& seeds = {}) {
  NodeOptions o = node_testing::LoopbackOptions(name, seeds, io::IoKind::kEpoll);
  o.engine.membership.initial_interval_us = 100 * kUsPerMs;
  o.engine.membership.max_interval_us = 1000 * kUsPerMs;
  o.engine.limits.max_key_bytes = 64;
  o.engine.limits.max_value_bytes = 4096;
  o.rx_buffer_count = 64;
  o.tx_slot_count = 64;
  return o;
}

// One server-sent event as received.
struct Sse {
  std::string id;
  std::string event;
  json data;
};

// A raw-socket HTTP/1.1 client for one streaming GET: decodes the chunked body and splits
// it into events. Raw so a test can shrink the receive buffer and stop reading (a slow
// consumer) — no client library exposes that.
class SseClient {
 public:
  // rcvbuf > 0 shrinks SO_RCVBUF before connecting (it bounds the TCP window).
  SseClient(int port, const std::string& target, int rcvbuf = 0,
            const std::string& extra_headers = "") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
    const std::string req =
        "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
    connected_ = connected_ && ::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) ==
                                   static_cast<ssize_t>(req.size());
  }
  ~SseClient() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Reads until pred() holds, the peer closes, or the deadline; returns pred().
  bool ReadUntil(const std::function<bool()>& pred, int64_t deadline_us = kDeadlineUs) {
    const int64_t end = io::MonotonicNowUs() + deadline_us;
    while (!pred()) {
      const int64_t left_ms = (end - io::MonotonicNowUs()) / 1000;
      if (left_ms <= 0 || fd_ < 0) return pred();
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left_ms, 50))) <= 0) continue;
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        eof_ = true;
        Close();
        return pred();
      }
      raw_.append(buf, static_cast<size_t>(n));
      Decode();
    }
    return true;
  }
  bool WaitEvents(size_t n) {
    return ReadUntil([&] { return events_.size() >= n; });
  }
  bool WaitHeaders() {
    return ReadUntil([&] { return status_ != 0 && started_; });
  }

  int status() const { return status_; }
  const std::string& head() const { return head_; }
  const std::string& body() const { return body_; }
  const std::vector<Sse>& events() const { return events_; }
  bool eof() const { return eof_; }
  bool connected() const { return connected_; }

 private:
  void Decode() {
    if (status_ == 0) {
      const size_t end = raw_.find("\r\n\r\n");
      if (end == std::string::npos) return;
      head_ = raw_.substr(0, end);
      status_ = std::atoi(head_.c_str() + 9);  // "HTTP/1.1 200"
      chunked_ = head_.find("Transfer-Encoding: chunked") != std::string::npos;
      raw_.erase(0, end + 4);
    }
    if (!chunked_) {  // an error reply with Content-Length
      body_ += raw_;
      raw_.clear();
      return;
    }
    for (;;) {
      const size_t crlf = raw_.find("\r\n");
      if (crlf == std::string::npos) return;
      const size_t size = std::stoul(raw_.substr(0, crlf), nullptr, 16);
      if (raw_.size() < crlf + 2 + size + 2) return;
      body_.append(raw_, crlf + 2, size);
      raw_.erase(0, crlf + 2 + size + 2);
      started_ = true;
      Parse();
      if (size == 0) return;
    }
  }
  void Parse() {
    for (;;) {
      const size_t end = body_.find("\n\n", parsed_);
      if (end == std::string::npos) return;
      const std::string block = body_.substr(parsed_, end - parsed_);
      parsed_ = end + 2;
      Sse e;
      bool any = false;
      size_t pos = 0;
      while (pos <= block.size()) {
        size_t nl = block.find('\n', pos);
        if (nl == std::string::npos) nl = block.size();
        const std::string line = block.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.empty() || line[0] == ':') continue;  // comment
        const size_t colon = line.find(": ");
        const std::string field = line.substr(0, colon), value = line.substr(colon + 2);
        any = true;
        if (field == "id") e.id = value;
        if (field == "event") e.event = value;
        if (field == "data") e.data = json::parse(value);
      }
      if (any) events_.push_back(std::move(e));
    }
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  bool chunked_ = false;
  bool started_ = false;
  int status_ = 0;
  std::string raw_, head_, body_;
  size_t parsed_ = 0;
  std::vector<Sse> events_;
};

class AdminApiTest : public ::testing::Test {
 protected:
  void Start(AdminOptions a = {}, NodeOptions n = Options("alpha")) {
    auto node = Node::Start(std::move(n));
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = std::move(*node);
    a.listen = *Endpoint::Parse("127.0.0.1:0");
    a.max_key_bytes = 64;
    a.max_value_bytes = 4096;
    a.watch_keepalive = absl::Milliseconds(200);
    auto s = AdminServer::Bind(a);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    server_->Serve(node_.get());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
    if (peer_) (void)peer_->Stop();
    if (node_) (void)node_->Stop();
  }
  void StartPeer() {
    auto p = Node::Start(Options("beta", {node_->gossip_endpoint().ToString()}));
    ASSERT_TRUE(p.ok()) << p.status();
    peer_ = std::move(*p);
  }

  std::pair<int, json> Call(const std::string& method, const std::string& path,
                            const std::string& body = "") {
    httplib::Result r = method == "GET"     ? client_->Get(path)
                        : method == "PUT"   ? client_->Put(path, body, "application/octet-stream")
                        : method == "PATCH" ? client_->Patch(path, body, "application/json")
                        : method == "POST"  ? client_->Post(path, body, "text/plain")
                                            : client_->Delete(path);
    if (!r) {
      ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(r.error());
      return {0, json()};
    }
    json j = json::parse(r->body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << method << " " << path << " body: " << r->body;
    return {r->status, j};
  }
  static void ExpectError(const std::pair<int, json>& r, int status, const std::string& code) {
    EXPECT_EQ(r.first, status) << r.second.dump();
    EXPECT_EQ(r.second.value("error", ""), code) << r.second.dump();
    EXPECT_TRUE(r.second.contains("detail")) << r.second.dump();
  }
  std::string Metrics() {
    auto r = client_->Get("/metrics");
    EXPECT_TRUE(r);
    if (!r) return "";
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    return r->body;
  }
  std::unique_ptr<SseClient> Watch(const std::string& query = "", int rcvbuf = 0,
                                   const std::string& headers = "") {
    auto c = std::make_unique<SseClient>(server_->port(), "/v1/watch" + query, rcvbuf, headers);
    EXPECT_TRUE(c->connected());
    EXPECT_TRUE(c->WaitHeaders()) << c->head() << c->body();
    EXPECT_EQ(c->status(), 200) << c->head() << c->body();
    return c;
  }

  std::unique_ptr<Node> node_;
  std::unique_ptr<Node> peer_;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

// ---- /metrics ---------------------------------------------------------------------------------

TEST_F(AdminApiTest, MetricsAreValidExpositionWithEveryFamily) {
  // The local tombstone of k1 must still be there at the scrape: with ack-frontier GC on
  // (seed 002) it goes as soon as beta has acked it, which under load can happen before the
  // handshake histogram the scrape waits on has a sample. Grace GC (1 h) keeps it.
  NodeOptions n = Options("alpha");
  n.engine.frontier_gc = false;
  Start({}, std::move(n));
  StartPeer();
  ASSERT_EQ(Call("PUT", "/v1/kv/k1", "v1").first, 200);
  ASSERT_EQ(Call("DELETE", "/v1/kv/k1").first, 200);
  ASSERT_TRUE(peer_->Set("from-beta", "x").ok());
  ASSERT_TRUE(Eventually([&] { return node_->Get("from-beta", "beta").ok(); }));
  testing::Exposition ex;
  ASSERT_TRUE(Eventually([&] {
    EXPECT_EQ(testing::CheckExposition(Metrics(), &ex), "");
    return ex.Get("scuttle_handshake_duration_seconds_count") > 0;
  }));
  const std::string text = Metrics();
  ASSERT_EQ(testing::CheckExposition(text, &ex), "") << text;
  EXPECT_EQ(text.find("shard=\""), std::string::npos) << "one engine: no shard label";
  EXPECT_EQ(ex.Get("scuttle_transport_info", {{"name", "epoll"}}), 1);
  EXPECT_EQ(ex.Get("scuttle_node_info", {{"name", "alpha"}}), 1);
  EXPECT_EQ(ex.Get("scuttle_members", {{"state", "alive"}}), 2);
  EXPECT_EQ(ex.Get("scuttle_tombstones", {{"owner", "local"}}), 1);
  EXPECT_EQ(ex.Get("scuttle_keys", {{"owner", "replicated"}}), 1);
  EXPECT_GT(ex.Get("scuttle_sent_packets_total", {{"type", "syn"}}), 0);
  EXPECT_GT(ex.Get("scuttle_gossip_rounds_total"), 0);
  EXPECT_GT(ex.Get("scuttle_entries_applied_total"), 0);
  EXPECT_GT(ex.Get("scuttle_arena_bytes", {{"kind", "allocated"}}), 0);
  EXPECT_EQ(ex.Get("scuttle_key_events_total", {{"event", "deleted"}}), 1);
  EXPECT_GT(ex.Get("scuttle_event_loop_iteration_seconds_count"), 0);
  EXPECT_GT(ex.Get("scuttle_gossip_round_duration_seconds_count"), 0);
  // Every family the issue names, by its Prometheus name.
  for (const char* family : {"scuttle_received_packets_total",
                             "scuttle_received_bytes_total",
                             "scuttle_sent_bytes_total",
                             "scuttle_decode_drops_total",
                             "scuttle_engine_drops_total",
                             "scuttle_delta_parts_applied_total",
                             "scuttle_entries_skipped_total",
                             "scuttle_delta_parts_built_total",
                             "scuttle_deltas_truncated_total",
                             "scuttle_delta_resets_built_total",
                             "scuttle_delta_packet_size_bytes",
                             "scuttle_handshake_duration_seconds",
                             "scuttle_gc_runs_total",
                             "scuttle_tombstones_collected_total",
                             "scuttle_ttl_expirations_total",
                             "scuttle_rumors_total",
                             "scuttle_rumors_hot",
                             "scuttle_transport_drops_total",
                             "scuttle_config_changes_total",
                             "scuttle_event_loop_iteration_seconds",
                             "scuttle_watchers",
                             "scuttle_watch_overflows_total",
                             "scuttle_bad_shard_count_received_total"}) {
    EXPECT_TRUE(ex.types.count(family)) << family;
  }
  for (const auto& [family, type] : ex.types) {
    EXPECT_EQ(family.rfind("scuttle_", 0), 0u) << family;
    EXPECT_EQ(type == "counter", family.ends_with("_total")) << family;
  }
  ExpectError(Call("POST", "/metrics", "x"), 405, "method_not_allowed");
  ExpectError(Call("GET", "/metrics?x=1"), 400, "bad_request");
}

// A peer running another shard count refuses us with BadCluster (docs/shards.md): the
// refusal is counted in /v1/debug/stats and /metrics, and nothing is learned.
TEST_F(AdminApiTest, BadShardCountReceivedIsExported) {
  auto p = Node::Start(Options("beta"));  // one shard
  ASSERT_TRUE(p.ok()) << p.status();
  peer_ = std::move(*p);
  NodeOptions n = Options("alpha", {peer_->gossip_endpoint().ToString()});
  n.shards = 2;  // shard 0 dials beta's port; beta runs one shard
  Start({}, std::move(n));
  ASSERT_TRUE(Eventually([&] {
    auto [status, j] = Call("GET", "/v1/debug/stats");
    return status == 200 && j["engine"]["bad_shard_count_received"].get<uint64_t>() > 0;
  }));
  auto [status, j] = Call("GET", "/v1/debug/stats");
  const uint64_t json_count = j["engine"]["bad_shard_count_received"].get<uint64_t>();
  EXPECT_LE(json_count, j["engine"]["bad_cluster_received"].get<uint64_t>());
  testing::Exposition ex;
  ASSERT_EQ(testing::CheckExposition(Metrics(), &ex), "");
  EXPECT_GE(ex.Get("scuttle_bad_shard_count_received_total", {{"shard", "0"}}),
            static_cast<double>(json_count));
  const size_t mismatch = static_cast<size_t>(EngineDrop::kShardCountMismatch);
  EXPECT_GT(peer_->Stats()->engine.engine_drops[mismatch], 0u);
  EXPECT_EQ(ex.Get("scuttle_members", {{"state", "alive"}}), 1);  // only itself
}

// A node of two engine shards: per-engine series carry shard="s", membership and the admin
// server's families are written once, unlabelled (api/node_metrics.h).
TEST_F(AdminApiTest, MetricsOfTwoShardsCarryAShardLabel) {
  NodeOptions n = Options("alpha");
  n.shards = 2;
  Start({}, std::move(n));
  constexpr int kKeys = 24;
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_EQ(Call("PUT", "/v1/kv/m" + std::to_string(i), "v").first, 200) << i;
  }
  testing::Exposition ex;
  ASSERT_TRUE(Eventually([&] {
    EXPECT_EQ(testing::CheckExposition(Metrics(), &ex), "");
    return ex.Get("scuttle_gossip_rounds_total", {{"shard", "1"}}) > 0 &&
           ex.Get("scuttle_gossip_rounds_total", {{"shard", "0"}}) > 0;
  }));
  const double k0 = ex.Get("scuttle_keys", {{"shard", "0"}, {"owner", "local"}});
  const double k1 = ex.Get("scuttle_keys", {{"shard", "1"}, {"owner", "local"}});
  EXPECT_GT(k0, 0);
  EXPECT_GT(k1, 0);
  EXPECT_EQ(k0 + k1, kKeys) << "each key on exactly one shard";
  EXPECT_TRUE(std::isnan(ex.Get("scuttle_keys", {{"owner", "local"}}))) << "no unlabelled copy";
  EXPECT_EQ(ex.Get("scuttle_members", {{"state", "alive"}}), 1);
  EXPECT_EQ(ex.Get("scuttle_node_info", {{"name", "alpha"}}), 1);
  EXPECT_EQ(ex.Get("scuttle_watchers"), 0);
  EXPECT_EQ(ex.Get("scuttle_bad_shard_count_received_total", {{"shard", "1"}}), 0);
  EXPECT_EQ(ex.Get("scuttle_transport_info", {{"shard", "1"}, {"name", "epoll"}}), 1);
}

// ---- /v1/config -------------------------------------------------------------------------------

AdminOptions WithFlags() {
  AdminOptions a;
  a.flags.push_back({"node_name", "alpha", ConfigFlag::Type::kString, "Node name"});
  a.flags.push_back({"max_packet_bytes", "65507", ConfigFlag::Type::kInt, "Largest datagram"});
  a.flags.push_back({"fanout", "3", ConfigFlag::Type::kInt, "Live peers contacted per round"});
  return a;
}

TEST_F(AdminApiTest, ConfigListsEveryFlagAndWhichAreLive) {
  Start(WithFlags());
  auto [status, j] = Call("GET", "/v1/config");
  ASSERT_EQ(status, 200) << j.dump();
  const json& c = j["config"];
  EXPECT_EQ(c["node_name"], json({{"value", "alpha"}, {"live", false}, {"help", "Node name"}}));
  EXPECT_EQ(c["max_packet_bytes"]["value"], 65507);
  EXPECT_EQ(c["max_packet_bytes"]["live"], false);
  EXPECT_EQ(c["fanout"],
            json({{"value", 3}, {"live", true}, {"help", "Live peers contacted per round"}}));
  EXPECT_EQ(c["gossip_interval_ms"]["value"], 50);
  EXPECT_EQ(c["phi_threshold"]["value"], 8.0);
  EXPECT_EQ(c["dead_node_grace"]["value"], "24h");
  EXPECT_EQ(c["tombstone_grace"]["value"], "1h");
  EXPECT_TRUE(c["log_level"]["value"].is_string());
  for (const char* f : kLiveConfigFields) EXPECT_EQ(c[f]["live"], true) << f;
}

TEST_F(AdminApiTest, ConfigPatchAppliesLiveAndCounts) {
  Start(WithFlags());
  const std::string level = Call("GET", "/v1/config").second["config"]["log_level"]["value"];
  auto [status, j] = Call("PATCH", "/v1/config",
                          R"({"fanout": 5, "gossip_interval_ms": 20, "phi_threshold": 10.5,
                              "dead_node_grace": "90s", "tombstone_grace": "2h",
                              "log_level": ")" +
                              level + R"("})");
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["config"]["fanout"], 5);
  EXPECT_EQ(j["config"]["gossip_interval_ms"], 20);
  EXPECT_EQ(j["config"]["phi_threshold"], 10.5);
  EXPECT_EQ(j["config"]["dead_node_grace"], "1m30s");
  EXPECT_EQ(j["config"]["tombstone_grace"], "2h");
  EXPECT_EQ(j["changed"].size(), 6u);
  auto got = Call("GET", "/v1/config").second["config"];
  EXPECT_EQ(got["fanout"]["value"], 5);
  EXPECT_EQ(got["gossip_interval_ms"]["value"], 20);
  // The shorter interval takes effect at once: rounds now come every ~20 ms.
  auto rounds = [&] { return node_->Stats()->gossip_rounds; };
  const uint64_t r0 = rounds();
  const int64_t t0 = io::MonotonicNowUs();
  ASSERT_TRUE(Eventually([&] { return rounds() >= r0 + 10; }));
  EXPECT_LT(io::MonotonicNowUs() - t0, 450'000);  // 10 rounds at 50 ms would take 500 ms
  testing::Exposition ex;
  ASSERT_EQ(testing::CheckExposition(Metrics(), &ex), "");
  EXPECT_EQ(ex.Get("scuttle_config_changes_total", {{"field", "fanout"}}), 1);
  EXPECT_EQ(ex.Get("scuttle_config_changes_total", {{"field", "tombstone_grace"}}), 1);
  EXPECT_EQ(Call("PATCH", "/v1/config", "{}").first, 200);  // nothing to change is fine
}

TEST_F(AdminApiTest, ConfigPatchErrorsNameTheFieldAndChangeNothing) {
  Start(WithFlags());
  auto field_error = [&](const std::string& body, const std::string& field) {
    auto r = Call("PATCH", "/v1/config", body);
    ExpectError(r, 400, "bad_request");
    EXPECT_EQ(r.second.value("field", ""), field) << body << " -> " << r.second.dump();
  };
  ExpectError(Call("PATCH", "/v1/config", "{not json"), 400, "bad_request");
  ExpectError(Call("PATCH", "/v1/config", "[1,2]"), 400, "bad_request");
  field_error(R"({"bogus": 1})", "bogus");
  field_error(R"({"max_packet_bytes": 1400})", "max_packet_bytes");  // a flag, not live
  field_error(R"({"fanout": 0})", "fanout");
  field_error(R"({"fanout": "3"})", "fanout");
  field_error(R"({"fanout": 2.5})", "fanout");
  field_error(R"({"gossip_interval_ms": 0})", "gossip_interval_ms");
  field_error(R"({"phi_threshold": -1})", "phi_threshold");
  field_error(R"({"dead_node_grace": "soon"})", "dead_node_grace");
  field_error(R"({"tombstone_grace": "-1s"})", "tombstone_grace");
  field_error(R"({"tombstone_grace": 30})", "tombstone_grace");
  field_error(R"({"log_level": "loud"})", "log_level");
  // All or nothing: a valid fanout next to a bad threshold is not applied.
  field_error(R"({"fanout": 7, "phi_threshold": 0})", "phi_threshold");
  EXPECT_EQ(Call("GET", "/v1/config").second["config"]["fanout"]["value"], 3);
  EXPECT_EQ(node_->Stats()->config_changes.size(), 0u);
  ExpectError(Call("POST", "/v1/config", "{}"), 405, "method_not_allowed");
  ExpectError(Call("DELETE", "/v1/config"), 405, "method_not_allowed");
}

TEST_F(AdminApiTest, ConfigPatchRumorKIsLiveLoggedAndCounted) {
  Start(WithFlags());
  auto [status, j] = Call("GET", "/v1/config");
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["config"]["rumor_k"]["value"], 2);  // RumorOptions' default
  EXPECT_EQ(j["config"]["rumor_k"]["live"], true);
  auto r = Call("PATCH", "/v1/config", R"({"rumor_k": 5})");
  ASSERT_EQ(r.first, 200) << r.second.dump();
  EXPECT_EQ(r.second["config"]["rumor_k"], 5);
  EXPECT_EQ(r.second["changed"], json::array({"rumor_k"}));
  EXPECT_EQ(Call("GET", "/v1/config").second["config"]["rumor_k"]["value"], 5);
  EXPECT_EQ(node_->GetLiveConfig()->rumor_k, 5);
  testing::Exposition ex;
  ASSERT_EQ(testing::CheckExposition(Metrics(), &ex), "");
  EXPECT_EQ(ex.Get("scuttle_config_changes_total", {{"field", "rumor_k"}}), 1);
  EXPECT_EQ(ex.Get("scuttle_config_changes_total", {{"field", "fanout"}}), 0);
}

TEST_F(AdminApiTest, ConfigPatchRumorKRejectsBadValues) {
  Start(WithFlags());
  for (const char* body :
       {R"({"rumor_k": 0})", R"({"rumor_k": 65})", R"({"rumor_k": -3})", R"({"rumor_k": "4"})",
        R"({"rumor_k": 2.5})", R"({"rumor_k": null})", R"({"rumor_k": 18446744073709551615})"}) {
    auto r = Call("PATCH", "/v1/config", body);
    ExpectError(r, 400, "bad_request");
    EXPECT_EQ(r.second.value("field", ""), "rumor_k") << body << " -> " << r.second.dump();
    EXPECT_NE(r.second.value("detail", "").find("rumor_k"), std::string::npos) << r.second.dump();
  }
  EXPECT_EQ(Call("GET", "/v1/config").second["config"]["rumor_k"]["value"], 2);
  EXPECT_EQ(node_->Stats()->config_changes.size(), 0u);
}

TEST_F(AdminApiTest, EventLoopIterationTimeIsAHistogram) {
  Start();
  ASSERT_EQ(Call("PUT", "/v1/kv/k", "v").first, 200);  // a few loop iterations at least
  testing::Exposition ex;
  const std::string text = Metrics();
  ASSERT_EQ(testing::CheckExposition(text, &ex), "") << text;
  const std::string family = "scuttle_event_loop_iteration_seconds";
  EXPECT_EQ(ex.types[family], "histogram");
  std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
  for (const auto& sample : ex.samples) {
    if (sample.name != family + "_bucket") continue;
    const std::string& le = sample.labels.at("le");
    buckets.emplace_back(le == "+Inf" ? INFINITY : std::stod(le), sample.value);
  }
  ASSERT_EQ(buckets.size(), 17u) << text;  // 10 µs .. 1 s in 1-2-5 steps, then +Inf
  EXPECT_EQ(buckets.front().first, 1e-05);
  EXPECT_EQ(buckets[buckets.size() - 2].first, 1.0);
  EXPECT_TRUE(std::isinf(buckets.back().first));
  for (size_t i = 1; i < buckets.size(); ++i) {
    EXPECT_GT(buckets[i].first, buckets[i - 1].first) << i;
    EXPECT_GE(buckets[i].second, buckets[i - 1].second) << "cumulative buckets fall at " << i;
  }
  const double count = ex.Get(family + "_count");
  EXPECT_GT(count, 0);
  EXPECT_EQ(buckets.back().second, count);
  EXPECT_GE(ex.Get(family + "_sum"), 0);
  // Nothing on an idle loopback node takes a second.
  EXPECT_EQ(buckets[buckets.size() - 2].second, count);
  // /v1/debug/stats has the same buckets, per bucket rather than cumulative.
  auto [status, j] = Call("GET", "/v1/debug/stats");
  ASSERT_EQ(status, 200);
  const json& b = j["loop"]["iteration_us_buckets"];
  ASSERT_EQ(b.size(), 17u) << j.dump();
  EXPECT_EQ(b[0]["le_us"], 10);
  EXPECT_EQ(b[16]["le_us"], "+Inf");
  uint64_t total = 0;
  for (const json& e : b) total += e["count"].get<uint64_t>();
  EXPECT_EQ(total, j["loop"]["iterations"].get<uint64_t>());
}

TEST_F(AdminApiTest, LocalityIsGossipedUnderAReservedKey) {
  NodeOptions n = Options("alpha");
  n.locality = "eu/zone-a/rack-1";
  Start({}, n);
  NodeOptions p = Options("beta", {node_->gossip_endpoint().ToString()});
  p.locality = "eu/zone-b/rack-1";
  auto peer = Node::Start(std::move(p));
  ASSERT_TRUE(peer.ok()) << peer.status();
  peer_ = std::move(*peer);
  ASSERT_TRUE(Eventually([&] {
    auto m = Call("GET", "/v1/members").second["members"];
    return m.size() == 2 && m[1]["locality"] == "eu/zone-b/rack-1";
  }));
  auto m = Call("GET", "/v1/members").second["members"];
  EXPECT_EQ(m[0]["locality"], "eu/zone-a/rack-1");
  auto [status, j] = Call("GET", "/v1/kv/__scuttle/locality?node=beta");
  EXPECT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["value"], "eu/zone-b/rack-1");
  // Applications cannot overwrite or delete scuttle's own keys.
  ExpectError(Call("PUT", "/v1/kv/__scuttle/locality", "us/x/y"), 400, "bad_request");
  ExpectError(Call("PUT", "/v1/kv/__scuttle/other?ttl=5s", "x"), 400, "bad_request");
  ExpectError(Call("DELETE", "/v1/kv/__scuttle/locality"), 400, "bad_request");
  EXPECT_EQ(node_->Get(std::string(kLocalityKey))->value, "eu/zone-a/rack-1");
  // A malformed label is refused at start.
  NodeOptions bad = Options("gamma");
  bad.locality = "eu//rack";
  auto refused = Node::Start(std::move(bad));
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
}

// ---- /v1/watch --------------------------------------------------------------------------------

TEST_F(AdminApiTest, WatchStreamsKeyEventsInOrderWithIds) {
  Start();
  auto w = Watch();
  EXPECT_NE(w->head().find("Content-Type: text/event-stream"), std::string::npos) << w->head();
  ASSERT_EQ(Call("PUT", "/v1/kv/a", "1").first, 200);
  ASSERT_EQ(Call("PUT", "/v1/kv/bin", std::string("\xff\x00", 2)).first, 200);
  ASSERT_EQ(Call("DELETE", "/v1/kv/a").first, 200);
  ASSERT_EQ(Call("PUT", "/v1/kv/t?ttl=50ms", "soon").first, 200);
  ASSERT_TRUE(w->WaitEvents(5)) << w->body();
  const auto& ev = w->events();
  EXPECT_EQ(ev[0].event, "set");
  EXPECT_EQ(ev[0].data, json({{"seq", 1},
                              {"event", "set"},
                              {"node", "alpha"},
                              {"generation", node_->generation()},
                              {"key", "a"},
                              {"value", "1"},
                              {"version", 1}}));
  EXPECT_EQ(ev[1].event, "set");
  EXPECT_EQ(ev[1].data["value_base64"], "/wA=");
  EXPECT_EQ(ev[2].event, "deleted");
  EXPECT_FALSE(ev[2].data.contains("value"));
  EXPECT_EQ(ev[3].event, "set");
  EXPECT_EQ(ev[4].event, "expired");
  EXPECT_EQ(ev[4].data["key"], "t");
  for (size_t i = 0; i < ev.size(); ++i) {
    EXPECT_EQ(ev[i].id, std::to_string(i + 1));
    EXPECT_EQ(ev[i].data["seq"], i + 1);
  }
}

TEST_F(AdminApiTest, WatchSeesMemberChangesAndReplicatedExpiryAsDelete) {
  Start();
  auto members = Watch("?node=beta");
  auto keys = Watch("?prefix=ttl/");
  StartPeer();
  ASSERT_TRUE(members->ReadUntil([&] {
    for (const Sse& e : members->events()) {
      if (e.event == "joined") return true;
    }
    return false;
  })) << members->body();
  // A TTL key on beta: beta expires it, alpha's replica sees the expiry as a delete.
  ASSERT_TRUE(peer_->SetWithTtl("ttl/k", "v", absl::Milliseconds(200)).ok());
  ASSERT_TRUE(keys->WaitEvents(2)) << keys->body();
  EXPECT_EQ(keys->events()[0].event, "set");
  EXPECT_EQ(keys->events()[0].data["node"], "beta");
  EXPECT_EQ(keys->events()[1].event, "deleted");
  EXPECT_EQ(keys->events()[1].data["key"], "ttl/k");
  EXPECT_GT(keys->events()[1].data["version"], keys->events()[0].data["version"]);
  ASSERT_TRUE(peer_->Stop().ok());
  ASSERT_TRUE(members->ReadUntil([&] { return members->events().back().event == "left"; }))
      << members->body();
  // Only beta's events, in sequence order; member events carry no key.
  uint64_t last = 0;
  for (const Sse& e : members->events()) {
    EXPECT_EQ(e.data["node"], "beta");
    EXPECT_GT(e.data["seq"].get<uint64_t>(), last);
    last = e.data["seq"];
  }
  for (const Sse& e : keys->events()) EXPECT_TRUE(e.data.contains("key"));
}

TEST_F(AdminApiTest, WatchResumesWithSinceAndLastEventId) {
  Start();
  for (const char* k : {"a", "b", "c"})
    ASSERT_EQ(Call("PUT", std::string("/v1/kv/") + k, k).first, 200);
  auto since = Watch("?since=1");
  ASSERT_TRUE(since->WaitEvents(2));
  EXPECT_EQ(since->events()[0].data["key"], "b");
  EXPECT_EQ(since->events()[1].data["key"], "c");
  auto header = Watch("", 0, "Last-Event-ID: 2\r\n");
  ASSERT_TRUE(header->WaitEvents(1));
  EXPECT_EQ(header->events()[0].id, "3");
  // A sequence this node never issued (an earlier incarnation's): overflow at once.
  auto future = Watch("?since=99");
  ASSERT_TRUE(future->WaitEvents(1));
  EXPECT_EQ(future->events()[0].event, "overflow");
  EXPECT_EQ(future->events()[0].id, "3");
  EXPECT_EQ(future->events()[0].data["seq"], 3);
  ASSERT_EQ(Call("PUT", "/v1/kv/d", "d").first, 200);
  ASSERT_TRUE(future->WaitEvents(2));
  EXPECT_EQ(future->events()[1].data["key"], "d");
  // Bad parameters are JSON errors, before any stream starts.
  ExpectError(Call("GET", "/v1/watch?since=abc"), 400, "bad_request");
  ExpectError(Call("GET", "/v1/watch?snapshot=2"), 400, "bad_request");
  ExpectError(Call("GET", "/v1/watch?snapshot=1&since=3"), 400, "bad_request");
  ExpectError(Call("GET", "/v1/watch?prefx=a"), 400, "bad_request");
  ExpectError(Call("POST", "/v1/watch", "x"), 405, "method_not_allowed");
}

TEST_F(AdminApiTest, WatchEvictedHistoryIsAnOverflow) {
  NodeOptions n = Options("alpha");
  n.events.max_events = 4;
  Start({}, n);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(node_->Set("k" + std::to_string(i), "v").ok());
  auto w = Watch("?since=2");
  ASSERT_TRUE(w->WaitEvents(1));
  EXPECT_EQ(w->events()[0].event, "overflow");
  EXPECT_EQ(w->events()[0].data["seq"], 10);
}

TEST_F(AdminApiTest, WatchSnapshotThenChanges) {
  Start();
  ASSERT_EQ(Call("PUT", "/v1/kv/s/1", "one").first, 200);
  ASSERT_EQ(Call("PUT", "/v1/kv/s/2", "two").first, 200);
  ASSERT_EQ(Call("PUT", "/v1/kv/other", "x").first, 200);
  auto w = Watch("?snapshot=1&prefix=s/");
  ASSERT_TRUE(w->WaitEvents(3)) << w->body();
  EXPECT_EQ(w->events()[0].event, "snapshot");
  EXPECT_EQ(w->events()[0].data,
            json({{"node", "alpha"}, {"key", "s/1"}, {"value", "one"}, {"version", 1}}));
  EXPECT_EQ(w->events()[1].data["key"], "s/2");
  EXPECT_EQ(w->events()[2].event, "snapshot_end");
  EXPECT_EQ(w->events()[2].id, "3");
  EXPECT_EQ(w->events()[2].data, json({{"seq", 3}, {"entries", 2}}));
  ASSERT_EQ(Call("PUT", "/v1/kv/s/3", "three").first, 200);
  ASSERT_TRUE(w->WaitEvents(4));
  EXPECT_EQ(w->events()[3].id, "4");
  EXPECT_EQ(w->events()[3].data["key"], "s/3");
}

TEST_F(AdminApiTest, WatchersAreBounded) {
  AdminOptions a;
  a.max_watchers = 2;
  Start(a);
  auto w1 = Watch();
  auto w2 = Watch();
  ExpectError(Call("GET", "/v1/watch"), 503, "unavailable");
  testing::Exposition ex;
  ASSERT_EQ(testing::CheckExposition(Metrics(), &ex), "");
  EXPECT_EQ(ex.Get("scuttle_watchers"), 2);
  EXPECT_EQ(ex.Get("scuttle_watch_rejected_total"), 1);
  w1->Close();  // the server notices at its next write (keepalive every 200 ms here)
  ASSERT_TRUE(Eventually([&] {
    auto r = client_->Get("/metrics");
    testing::Exposition e;
    return r && testing::CheckExposition(r->body, &e) == "" && e.Get("scuttle_watchers") == 1;
  }));
  auto w3 = Watch();
  EXPECT_EQ(w3->status(), 200);
}

// A consumer that reads nothing: the engine keeps gossiping and writing, the stream's
// backlog stays bounded, and when the consumer reads again it finds an overflow event
// telling it to resync, followed by live events.
TEST_F(AdminApiTest, SlowConsumerGetsOverflowWhileGossipContinues) {
  AdminOptions a;
  a.watch_buffer_events = 64;
  Start(a);
  StartPeer();
  auto slow = Watch("", /*rcvbuf=*/4096);
  const uint64_t rounds0 = node_->Stats()->gossip_rounds;
  // Far more than the socket buffers and the 64-event backlog can hold.
  const std::string value(1000, 'v');
  constexpr int kWrites = 3000;
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(node_->Set("k" + std::to_string(i % 100), value).ok()) << i;
  }
  // Still not reading: the node gossips on (and replicates the writes to beta).
  ASSERT_TRUE(Eventually([&] { return node_->Stats()->gossip_rounds >= rounds0 + 3; }));
  ASSERT_TRUE(Eventually([&] {
    auto e = peer_->Get("k99", "alpha");
    return e.ok() && e->version == static_cast<Version>(kWrites);
  }));
  auto has_overflow = [&] {
    for (const Sse& e : slow->events()) {
      if (e.event == "overflow") return true;
    }
    return false;
  };
  ASSERT_TRUE(slow->ReadUntil(has_overflow)) << slow->events().size() << " events";
  ASSERT_TRUE(node_->Set("after", "x").ok());
  ASSERT_TRUE(
      slow->ReadUntil([&] { return slow->events().back().data.value("key", "") == "after"; }));
  // Between overflows the stream is gap-free; after an overflow it resumes past its seq,
  // and the overflow's SSE id is that seq (so Last-Event-ID resumes there).
  size_t overflows = 0;
  for (size_t i = 1; i < slow->events().size(); ++i) {
    const Sse& prev = slow->events()[i - 1];
    const Sse& e = slow->events()[i];
    EXPECT_EQ(e.id, std::to_string(e.data["seq"].get<uint64_t>()));
    if (e.event == "overflow") {
      ++overflows;
      EXPECT_GT(e.data["seq"].get<uint64_t>(), prev.data["seq"].get<uint64_t>());
    } else if (prev.event == "overflow") {
      EXPECT_GT(e.data["seq"].get<uint64_t>(), prev.data["seq"].get<uint64_t>());
    } else {
      EXPECT_EQ(e.data["seq"], prev.data["seq"].get<uint64_t>() + 1) << i;
    }
  }
  EXPECT_GE(overflows, 1u);
  EXPECT_LT(slow->events().size(), static_cast<size_t>(kWrites));  // it skipped ahead
  testing::Exposition ex;
  ASSERT_EQ(testing::CheckExposition(Metrics(), &ex), "");
  EXPECT_GE(ex.Get("scuttle_watch_overflows_total", {{"reader", "http"}}), 1);
}

TEST_F(AdminApiTest, StreamsEndWhenTheServerStops) {
  Start();
  auto w = Watch();
  server_->Stop();
  EXPECT_TRUE(w->ReadUntil([&] { return w->eof(); }));
}

// ---- Embedding: Node::Subscribe -------------------------------------------------------------

TEST_F(AdminApiTest, SubscribeCallbacksRunOffTheLoopInOrder) {
  Start();
  std::mutex mu;
  std::vector<std::string> got;
  std::thread::id cb_thread;
  auto sub = node_->Subscribe("p/", [&](const WatchEvent& e) {
    // Calling back into the node from a callback is allowed (not on the loop thread).
    EXPECT_TRUE(node_->Members().ok());
    std::lock_guard<std::mutex> lock(mu);
    cb_thread = std::this_thread::get_id();
    got.push_back(absl::StrCat(e.name(), ":", e.key));
  });
  ASSERT_TRUE(node_->Set("p/1", "a").ok());
  ASSERT_TRUE(node_->Set("q/1", "a").ok());
  ASSERT_TRUE(node_->Delete("p/1").ok());
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return got.size() >= 2;
  }));
  sub.reset();  // unsubscribes
  ASSERT_TRUE(node_->Set("p/2", "a").ok());
  ASSERT_TRUE(Eventually([&] { return node_->event_log()->last_seq() == 4; }));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(got, (std::vector<std::string>{"set:p/1", "deleted:p/1"}));
  EXPECT_NE(cb_thread, std::this_thread::get_id());
}

}  // namespace
}  // namespace scuttle
