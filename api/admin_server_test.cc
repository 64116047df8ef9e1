// Admin API against an in-process server on an ephemeral port, backed by real Nodes on
// loopback: every endpoint and every error path of the contract in admin_server.h.
// Nothing sleeps to wait: replication is polled with a deadline.
#include "api/admin_server.h"

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "engine/delta_applier.h"
#include "engine/engine.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "io/clock.h"
#include "nlohmann/json.hpp"
#include "node/node_testing.h"
#include "wire/absl_compat.h"
#include "wire/packet.h"

namespace scuttle {
namespace {

using json = nlohmann::json;

using node_testing::Eventually;

NodeOptions Options(const std::string& name, const std::vector<std::string>& seeds = {}) {
  // The API is transport-agnostic; node_test covers both.
  NodeOptions o = node_testing::LoopbackOptions(name, seeds, io::IoKind::kEpoll);
  o.engine.limits.max_key_bytes = 64;
  o.engine.limits.max_value_bytes = 4096;
  o.rx_buffer_count = 32;
  o.tx_slot_count = 32;
  return o;
}

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto n = Node::Start(Options("alpha"));
    ASSERT_TRUE(n.ok()) << n.status();
    node_ = std::move(*n);
    AdminOptions a;
    a.listen = *Endpoint::Parse("127.0.0.1:0");
    a.max_key_bytes = 64;
    a.max_value_bytes = 4096;
    a.max_packet_bytes = wire::kMaxUdpPayloadBytes;
    auto s = AdminServer::Bind(a);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    server_->Serve(node_.get());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_url_encode(false);  // paths below are already percent-encoded
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
    if (node_) (void)node_->Stop();
  }

  // Status and parsed JSON body (every answer, errors included, must be JSON).
  std::pair<int, json> Call(const std::string& method, const std::string& path,
                            const std::string& body = "") {
    httplib::Result r = method == "GET"      ? client_->Get(path)
                        : method == "PUT"    ? client_->Put(path, body, "application/octet-stream")
                        : method == "DELETE" ? client_->Delete(path)
                        : method == "POST"   ? client_->Post(path, body, "text/plain")
                                             : client_->Patch(path, body, "text/plain");
    if (!r) {
      ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(r.error());
      return {0, json()};
    }
    json j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << method << " " << path << " body: " << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json") << path;
    return {r->status, j};
  }
  static void ExpectError(const std::pair<int, json>& r, int status, const std::string& code) {
    EXPECT_EQ(r.first, status) << r.second.dump();
    EXPECT_EQ(r.second.value("error", ""), code) << r.second.dump();
    EXPECT_TRUE(r.second.contains("detail")) << r.second.dump();
  }

  std::unique_ptr<Node> node_;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(AdminTest, Healthz) {
  auto [status, j] = Call("GET", "/healthz");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["node"], "alpha");
  EXPECT_EQ(j["transport"], "epoll");
}

TEST_F(AdminTest, PutGetDeleteRoundTrip) {
  auto put = Call("PUT", "/v1/kv/greeting", "hello");
  EXPECT_EQ(put.first, 200);
  EXPECT_EQ(put.second, json({{"key", "greeting"}, {"version", 1}}));
  auto get = Call("GET", "/v1/kv/greeting");
  EXPECT_EQ(get.first, 200);
  EXPECT_EQ(get.second,
            json({{"node", "alpha"}, {"key", "greeting"}, {"value", "hello"}, {"version", 1}}));
  auto get_self = Call("GET", "/v1/kv/greeting?node=alpha");
  EXPECT_EQ(get_self.second, get.second);
  auto del = Call("DELETE", "/v1/kv/greeting");
  EXPECT_EQ(del.first, 200);
  EXPECT_EQ(del.second, json({{"key", "greeting"}, {"version", 2}}));
  ExpectError(Call("GET", "/v1/kv/greeting"), 404, "not_found");
  ExpectError(Call("DELETE", "/v1/kv/greeting"), 404, "not_found");
  ExpectError(Call("GET", "/v1/kv/never-set"), 404, "not_found");
  ExpectError(Call("DELETE", "/v1/kv/never-set"), 404, "not_found");
}

TEST_F(AdminTest, KeysAreUrlDecodedAndMayHoldSlashes) {
  EXPECT_EQ(Call("PUT", "/v1/kv/dir/sub/key", "1").first, 200);
  EXPECT_EQ(Call("PUT", "/v1/kv/a%2Fb%20c", "2").second["key"], "a/b c");
  EXPECT_EQ(Call("GET", "/v1/kv/dir%2Fsub%2Fkey").second["value"], "1");
  EXPECT_EQ(Call("GET", "/v1/kv/a/b%20c").second["value"], "2");
  // A newline in a key is just another byte.
  EXPECT_EQ(Call("PUT", "/v1/kv/line%0Abreak", "3").first, 200);
  EXPECT_EQ(Call("GET", "/v1/kv/line%0Abreak").second["key"], "line\nbreak");
}

TEST_F(AdminTest, FormEncodedBodiesAreValuesNotParameters) {
  // `curl --data-binary` labels bodies application/x-www-form-urlencoded; httplib would
  // parse them into parameters. The body is the value, byte for byte.
  auto r = client_->Put("/v1/kv/form", "ttl=1ms&node=x&a", "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  auto [status, j] = Call("GET", "/v1/kv/form");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(j["value"], "ttl=1ms&node=x&a");
  // Query parameters are percent-decoded.
  EXPECT_EQ(Call("PUT", "/v1/kv/p%2Bq", "1").second["key"], "p+q");
  EXPECT_EQ(Call("GET", "/v1/kv?prefix=p%2B").second["entries"].size(), 1u);
}

TEST_F(AdminTest, BinaryValuesComeBackAsBase64) {
  const std::string bin("\x00\xff\xfe\x01", 4);
  EXPECT_EQ(Call("PUT", "/v1/kv/bin", bin).first, 200);
  auto [status, j] = Call("GET", "/v1/kv/bin");
  EXPECT_EQ(status, 200);
  EXPECT_FALSE(j.contains("value"));
  EXPECT_EQ(j["value_base64"], absl::Base64Escape(AV(bin)));
  // Valid multi-byte UTF-8 stays text; an overlong encoding does not.
  EXPECT_EQ(Call("PUT", "/v1/kv/utf8", "h\xc3\xa9llo \xe2\x82\xac").first, 200);
  EXPECT_EQ(Call("GET", "/v1/kv/utf8").second["value"], "h\xc3\xa9llo \xe2\x82\xac");
  EXPECT_EQ(Call("PUT", "/v1/kv/overlong", "\xc0\xaf").first, 200);
  EXPECT_TRUE(Call("GET", "/v1/kv/overlong").second.contains("value_base64"));
  // An empty value is a value.
  EXPECT_EQ(Call("PUT", "/v1/kv/empty", "").first, 200);
  EXPECT_EQ(Call("GET", "/v1/kv/empty").second["value"], "");
}

TEST_F(AdminTest, TtlParsingAndExpiry) {
  ExpectError(Call("PUT", "/v1/kv/t?ttl=soon", "x"), 400, "bad_request");
  ExpectError(Call("PUT", "/v1/kv/t?ttl=-5s", "x"), 400, "bad_request");
  ExpectError(Call("PUT", "/v1/kv/t?ttl=0s", "x"), 400, "bad_request");
  EXPECT_EQ(Call("PUT", "/v1/kv/t?ttl=30s", "x").first, 200);
  EXPECT_EQ(Call("GET", "/v1/kv/t").first, 200);
  EXPECT_EQ(Call("PUT", "/v1/kv/short?ttl=50ms", "x").first, 200);
  EXPECT_TRUE(Eventually([&] { return Call("GET", "/v1/kv/short").first == 404; }));
}

TEST_F(AdminTest, ListIsSortedAndFiltered) {
  for (const char* k : {"b/2", "a/1", "b/1", "c"}) EXPECT_EQ(Call("PUT", std::string("/v1/kv/") + k, k).first, 200);
  auto [status, j] = Call("GET", "/v1/kv?prefix=b/");
  EXPECT_EQ(status, 200);
  ASSERT_EQ(j["entries"].size(), 2u) << j.dump();
  EXPECT_EQ(j["entries"][0], json({{"node", "alpha"}, {"key", "b/1"}, {"value", "b/1"}, {"version", 3}}));
  EXPECT_EQ(j["entries"][1]["key"], "b/2");
  EXPECT_EQ(Call("GET", "/v1/kv").second["entries"].size(), 4u);
  EXPECT_EQ(Call("GET", "/v1/kv?node=alpha&prefix=").second["entries"].size(), 4u);
  EXPECT_EQ(Call("GET", "/v1/kv?prefix=zzz").second, json({{"entries", json::array()}}));
  ExpectError(Call("GET", "/v1/kv?node=nobody"), 404, "not_found");
  ExpectError(Call("GET", "/v1/kv/c?node=nobody"), 404, "not_found");
  ExpectError(Call("GET", "/v1/kv?prefx=a"), 400, "bad_request");
}

TEST_F(AdminTest, MembersAndReplicationAcrossNodes) {
  auto other = Node::Start(Options("beta", {node_->gossip_endpoint().ToString()}));
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE((*other)->Set("from-beta", "hi").ok());
  ASSERT_TRUE(Eventually([&] { return Call("GET", "/v1/kv/from-beta?node=beta").first == 200; }));
  auto [status, j] = Call("GET", "/v1/members");
  EXPECT_EQ(status, 200);
  ASSERT_EQ(j["members"].size(), 2u) << j.dump();
  const json& a = j["members"][0];
  const json& b = j["members"][1];
  EXPECT_EQ(a["name"], "alpha");
  EXPECT_EQ(a["self"], true);
  EXPECT_EQ(a["state"], "alive");
  EXPECT_EQ(a["gossip_addr"], node_->advertise_endpoint().ToString());
  EXPECT_EQ(b["name"], "beta");
  EXPECT_EQ(b["self"], false);
  EXPECT_EQ(b["generation"], (*other)->generation());
  EXPECT_EQ(b["keys"], 1);
  EXPECT_EQ(b["tombstones"], 0);
  EXPECT_EQ(b["max_version"], 1);
  EXPECT_EQ(b["last_gc_version"], 0);
  EXPECT_TRUE(b["phi"].is_number());
  EXPECT_TRUE(b["heartbeat"].is_number_unsigned());
  for (const char* f : {"name", "generation", "gossip_addr", "state", "phi", "heartbeat",
                        "max_version", "last_gc_version", "keys", "tombstones", "self"}) {
    EXPECT_TRUE(b.contains(f)) << f;
  }
  // Every node's keys, sorted by (node, key).
  EXPECT_EQ(Call("PUT", "/v1/kv/from-alpha", "x").first, 200);
  auto list = Call("GET", "/v1/kv").second["entries"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["node"], "alpha");
  EXPECT_EQ(list[1]["node"], "beta");
  // A graceful stop shows as left.
  ASSERT_TRUE((*other)->Stop().ok());
  EXPECT_TRUE(Eventually([&] {
    auto m = Call("GET", "/v1/members").second["members"];
    return m.size() == 2 && m[1]["state"] == "left";
  }));
}

TEST_F(AdminTest, LimitsAre413) {
  ExpectError(Call("PUT", "/v1/kv/" + std::string(65, 'k'), "v"), 413, "too_large");
  ExpectError(Call("GET", "/v1/kv/" + std::string(65, 'k')), 413, "too_large");
  EXPECT_EQ(Call("PUT", "/v1/kv/" + std::string(64, 'k'), "v").first, 200);
  EXPECT_EQ(Call("PUT", "/v1/kv/big", std::string(4096, 'v')).first, 200);
  ExpectError(Call("PUT", "/v1/kv/big", std::string(4097, 'v')), 413, "too_large");
  ExpectError(Call("PUT", "/v1/kv/big", std::string(100'000, 'v')), 413, "too_large");
}

TEST_F(AdminTest, BadRequestsAndUnknownPaths) {
  ExpectError(Call("PUT", "/v1/kv/", "v"), 400, "bad_request");
  ExpectError(Call("GET", "/v1/kv/"), 400, "bad_request");
  ExpectError(Call("DELETE", "/v1/kv/"), 400, "bad_request");
  ExpectError(Call("PUT", "/v1/kv/k?bogus=1", "v"), 400, "bad_request");
  ExpectError(Call("GET", "/nope"), 404, "not_found");
  ExpectError(Call("GET", "/v1/membersx"), 404, "not_found");
  ExpectError(Call("PUT", "/v2/kv/x", "v"), 404, "not_found");
}

TEST_F(AdminTest, WrongMethodIs405) {
  ExpectError(Call("POST", "/v1/members", "x"), 405, "method_not_allowed");
  ExpectError(Call("PUT", "/healthz", "x"), 405, "method_not_allowed");
  ExpectError(Call("DELETE", "/v1/kv"), 405, "method_not_allowed");
  ExpectError(Call("POST", "/v1/kv/key", "x"), 405, "method_not_allowed");
  ExpectError(Call("PATCH", "/v1/debug/stats", "x"), 405, "method_not_allowed");
  auto r = client_->Post("/v1/kv/key", "x", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Allow"), "GET, PUT, DELETE");
}

TEST_F(AdminTest, StatsNameEveryCounter) {
  ASSERT_TRUE(Eventually([&] { return Call("GET", "/v1/debug/stats").second["engine"]["rounds"] > 0; }));
  auto [status, j] = Call("GET", "/v1/debug/stats");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(j["transport"]["name"], "epoll");
  for (const char* f : {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes"}) {
    EXPECT_TRUE(j["transport"][f].is_number()) << f;
  }
  EXPECT_EQ(j["transport"]["drops"].size(), io::kDropReasonCount);
  EXPECT_TRUE(j["transport"]["drops"].contains("tx_bad_span"));
  const json& e = j["engine"];
  EXPECT_EQ(e["decode_drops"].size(), wire::kDropReasonCount);
  for (size_t i = 0; i < wire::kDropReasonCount; ++i) {
    EXPECT_TRUE(e["decode_drops"].contains(wire::DropReasonName(static_cast<wire::DropReason>(i))));
  }
  EXPECT_EQ(e["engine_drops"].size(), kEngineDropCount);
  EXPECT_EQ(e["parts"].size(), kPartOutcomeCount);
  EXPECT_TRUE(e["packets_in"].contains("syn"));
  EXPECT_TRUE(e["bytes_out"].contains("synack"));
  EXPECT_TRUE(e["entries_applied"].is_number());
  EXPECT_TRUE(j["loop"]["iterations"].is_number());
  EXPECT_TRUE(j["loop"]["iteration_us_max"].is_number());
}

TEST_F(AdminTest, StoppedNodeIs503) {
  ASSERT_TRUE(node_->Stop().ok());
  ExpectError(Call("GET", "/v1/members"), 503, "unavailable");
  ExpectError(Call("PUT", "/v1/kv/k", "v"), 503, "unavailable");
  ExpectError(Call("GET", "/v1/debug/stats"), 503, "unavailable");
}

TEST(AdminBindTest, TwoServersCannotShareAPortButARestartCan) {
  AdminOptions a;
  a.listen = *Endpoint::Parse("127.0.0.1:0");
  auto n = Node::Start(Options("solo"));
  ASSERT_TRUE(n.ok()) << n.status();
  auto first = AdminServer::Bind(a);
  ASSERT_TRUE(first.ok()) << first.status();
  a.listen.port = static_cast<uint16_t>((*first)->port());
  (*first)->Serve(n->get());
  {
    // Leaves server-side TIME_WAIT connections behind once the server closes them.
    httplib::Client c("127.0.0.1", a.listen.port);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.Get("/healthz"));
  }
  EXPECT_FALSE(AdminServer::Bind(a).ok()) << "a live admin port must look busy";
  (*first)->Stop();
  first->reset();
  auto again = AdminServer::Bind(a);
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(AdminBindTest, BusyPortNamesTheCause) {
  AdminOptions a;
  a.listen = *Endpoint::Parse("127.0.0.1:0");
  auto first = AdminServer::Bind(a);
  ASSERT_TRUE(first.ok()) << first.status();
  a.listen.port = static_cast<uint16_t>((*first)->port());
  auto second = AdminServer::Bind(a);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), absl::string_view::npos) << second.status();
}

}  // namespace
}  // namespace scuttle
