// RenderMetrics over several engine shards: per-engine series labelled shard="s", the
// node-wide families (membership from shard 0, the admin server's own, live config) once
// and unlabelled, and a single shard rendered exactly as before (no shard label at all).
#include "api/node_metrics.h"

#include <array>
#include <set>
#include <string>

#include "api/exposition_check.h"
#include "api/metrics.h"
#include "engine/engine.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

using testing::CheckExposition;
using testing::Exposition;

// Stats whose every interesting field depends on `k`, so a series read from the wrong
// shard shows.
NodeStats Filled(uint64_t k) {
  NodeStats s;
  s.transport_name = "epoll";
  s.engine.bad_cluster_received = 10 * k + 1;
  s.engine.bad_shard_count_received = 10 * k + 2;
  s.engine.packets_out[1] = 10 * k + 3;
  s.keys_local = 10 * k + 4;
  s.gossip_rounds = 10 * k + 5;
  s.members_by_state[0] = 10 * k + 6;
  s.member_events_by_type[0] = 10 * k + 7;
  s.handshake_seconds.Observe(0.001 * static_cast<double>(k + 1));
  s.subscription_overflows = 10 * k + 8;
  s.transport.rx_packets = 10 * k + 9;
  s.probe.refutations_sent = 10 * k + 10;
  s.probe.confirmed_dead = 10 * k + 11;
  s.probe.verdict_pushes = 10 * k + 12;
  s.probe.health_max = k + 1;
  return s;
}

AdminMetrics Admin() {
  AdminMetrics a;
  a.watchers = 3;
  a.watch_overflows = 4;
  return a;
}

TEST(NodeMetricsTest, OneShardIsTheSingleStatsTextWithoutShardLabel) {
  const NodeStats s = Filled(0);
  const std::string one = RenderMetrics("n", 7, s, Admin());
  EXPECT_EQ(RenderMetrics("n", 7, std::span<const NodeStats>(&s, 1), Admin()), one);
  EXPECT_EQ(one.find("shard="), std::string::npos);
  Exposition ex;
  ASSERT_EQ(CheckExposition(one, &ex), "") << one;
  EXPECT_EQ(ex.Get("scuttle_bad_shard_count_received_total"), 2);
  EXPECT_EQ(ex.Get("scuttle_bad_cluster_received_total"), 1);
  // The families keep their usual order: node info first, the admin server's last.
  EXPECT_EQ(one.find("# HELP scuttle_node_info "), 0u);
  EXPECT_LT(one.find("# TYPE scuttle_members "), one.find("# TYPE scuttle_keys "));
  EXPECT_LT(one.find("# TYPE scuttle_keys "), one.find("# TYPE scuttle_member_events_total "));
  EXPECT_LT(one.find("# TYPE scuttle_watch_log_evicted_total "),
            one.find("# TYPE scuttle_watchers "));
}

TEST(NodeMetricsTest, ShardsGetALabelAndNodeWideFamiliesAppearOnce) {
  const std::array<NodeStats, 3> shards = {Filled(0), Filled(1), Filled(2)};
  const std::string text = RenderMetrics("n", 7, shards, Admin());
  Exposition ex;
  ASSERT_EQ(CheckExposition(text, &ex), "") << text;  // one TYPE per family, contiguous
  for (uint64_t k = 0; k < 3; ++k) {
    const std::string sh = std::to_string(k);
    EXPECT_EQ(ex.Get("scuttle_bad_shard_count_received_total", {{"shard", sh}}), 10 * k + 2);
    EXPECT_EQ(ex.Get("scuttle_bad_cluster_received_total", {{"shard", sh}}), 10 * k + 1);
    EXPECT_EQ(ex.Get("scuttle_sent_packets_total", {{"shard", sh}, {"type", "syn"}}), 10 * k + 3);
    EXPECT_EQ(ex.Get("scuttle_keys", {{"shard", sh}, {"owner", "local"}}), 10 * k + 4);
    EXPECT_EQ(ex.Get("scuttle_gossip_rounds_total", {{"shard", sh}}), 10 * k + 5);
    EXPECT_EQ(ex.Get("scuttle_transport_received_packets_total", {{"shard", sh}}), 10 * k + 9);
    EXPECT_EQ(ex.Get("scuttle_handshake_duration_seconds_count", {{"shard", sh}}), 1);
    EXPECT_EQ(ex.Get("scuttle_watch_overflows_total", {{"shard", sh}, {"reader", "subscription"}}),
              10 * k + 8);
  }
  // Membership is shard 0's, unlabelled; the admin server's counters once.
  EXPECT_EQ(ex.Get("scuttle_members", {{"state", "alive"}}), 6);
  EXPECT_EQ(ex.Get("scuttle_member_events_total", {{"event", "joined"}}), 7);
  EXPECT_EQ(ex.Get("scuttle_probe_events_total", {{"event", "refutation_sent"}}), 10);
  EXPECT_EQ(ex.Get("scuttle_probe_events_total", {{"event", "confirmed_dead"}}), 11);
  EXPECT_EQ(ex.Get("scuttle_probe_events_total", {{"event", "verdict_push"}}), 12);
  EXPECT_EQ(ex.Get("scuttle_local_health_max"), 1);
  EXPECT_EQ(ex.Get("scuttle_watchers"), 3);
  EXPECT_EQ(ex.Get("scuttle_watch_overflows_total", {{"reader", "http"}}), 4);
  EXPECT_EQ(ex.Get("scuttle_node_info", {{"name", "n"}}), 1);
  std::set<std::string> node_wide = {
      "scuttle_node_info",
      "scuttle_node_generation",
      "scuttle_members",
      "scuttle_forgotten_members",
      "scuttle_member_events_total",
      "scuttle_probe_events_total",
      "scuttle_local_health_max",
      "scuttle_config_changes_total",
      "scuttle_watchers",
      "scuttle_watch_rejected_total",
      "scuttle_watch_events_sent_total",
  };
  size_t labelled = 0;
  for (const auto& smp : ex.samples) {
    const bool has_shard = smp.labels.count("shard") > 0;
    if (node_wide.count(smp.family)) {
      EXPECT_FALSE(has_shard) << smp.name;
    } else if (smp.family == "scuttle_watch_overflows_total") {
      EXPECT_EQ(has_shard, smp.labels.at("reader") == "subscription") << smp.name;
    } else {
      EXPECT_TRUE(has_shard) << smp.name;
      ++labelled;
    }
  }
  // Every per-shard series three times: the single-shard text has a third as many.
  const NodeStats& s0 = shards[0];
  Exposition one;
  ASSERT_EQ(CheckExposition(RenderMetrics("n", 7, s0, Admin()), &one), "");
  size_t single = 0;
  for (const auto& smp : one.samples) {
    if (!node_wide.count(smp.family) && smp.family != "scuttle_watch_overflows_total") ++single;
  }
  EXPECT_EQ(labelled, 3 * single);
  EXPECT_EQ(ex.types, one.types);  // the same families, the same types
}

}  // namespace
}  // namespace scuttle
