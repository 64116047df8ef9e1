// AdminServer: GET /v1/members, GET /v1/debug/stats (every raw counter as JSON) and
// GET /metrics (Prometheus text, api/node_metrics.h).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "api/admin_http.h"
#include "api/admin_server.h"
#include "api/node_metrics.h"
#include "engine/delta_applier.h"
#include "engine/engine.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "wire/absl_compat.h"
#include "wire/packet.h"

namespace scuttle {

using namespace admin_internal;  // the JSON/HTTP helpers every route file shares

namespace {

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
  if (s.transport_name == std::string_view("xdp")) {  // io/xdp_transport.h
    t["xdp_rx_kernel"] = s.transport.xdp_rx_kernel;
    t["xdp_tx_kernel"] = s.transport.xdp_tx_kernel;
    t["xdp_tx_staged"] = s.transport.xdp_tx_staged;
    t["xdp_neigh_misses"] = s.transport.xdp_neigh_misses;
    t["xdp_rx_dropped"] = s.transport.xdp_rx_dropped;
    t["xdp_rx_realigned"] = s.transport.xdp_rx_realigned;
    t["xdp_zerocopy"] = s.transport.xdp_zerocopy;
  }
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
  {
    // Failure detection (docs/detection.md), as /metrics scuttle_probe_events_total.
    const ProbeStats& pr = s.probe;
    e["probe"] = json{{"suspicions", pr.suspicions},
                      {"suspicions_from_digest", pr.suspicions_from_digest},
                      {"pings_sent", pr.pings_sent},
                      {"ping_reqs_sent", pr.ping_reqs_sent},
                      {"acks_sent", pr.acks_sent},
                      {"acks_received", pr.acks_received},
                      {"relayed", pr.relayed},
                      {"relay_drops", pr.relay_drops},
                      {"confirmed_dead", pr.confirmed_dead},
                      {"verdicts_received", pr.verdicts_received},
                      {"verdicts_applied", pr.verdicts_applied},
                      {"verdicts_stale", pr.verdicts_stale},
                      {"refutations_sent", pr.refutations_sent},
                      {"refutations_applied", pr.refutations_applied},
                      {"verdict_pushes", pr.verdict_pushes},
                      {"verdict_feedback_knew", pr.verdict_feedback_knew},
                      {"verdict_feedback_new", pr.verdict_feedback_new},
                      {"verdict_replies_sent", pr.verdict_replies_sent},
                      {"verdicts_dropped_full", pr.verdicts_dropped_full},
                      {"verdict_cycles", pr.verdict_cycles},
                      {"verdicts_retired", pr.verdicts_retired},
                      {"late_ticks", pr.late_ticks},
                      {"health_max", pr.health_max}};
  }
  e["parts"] = Counters(s.apply.parts, [](size_t i) {
    return PartOutcomeName(static_cast<PartOutcome>(i));
  });
  e["entries_applied"] = s.apply.entries_applied;
  e["entries_skipped"] = s.apply.entries_skipped;
  e["generations_replaced"] = s.apply.generations_replaced;
  e["bad_cluster_received"] = s.engine.bad_cluster_received;
  e["bad_shard_count_received"] = s.engine.bad_shard_count_received;
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

}  // namespace

void AdminServer::RouteMembers() {
  RecordingServer& s = Routes(*server_);
  Node* node = node_;
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
}

void AdminServer::RouteStats() {
  RecordingServer& s = Routes(*server_);
  Node* node = node_;
  s.Get("/v1/debug/stats", [node](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    if (node->shard_count() == 1) {
      auto st = node->Stats();
      if (!st.ok()) return Error(res, st.status());
      return Reply(res, 200, StatsJson(*st));
    }
    // Several engine shards: shard 0's counters at the top (membership is decided there),
    // and every shard's, shard 0 included, under "shards" (docs/shards.md).
    auto each = node->ShardStats();
    if (!each.ok()) return Error(res, each.status());
    json body = StatsJson((*each)[0]);
    json shards = json::array();
    for (size_t i = 0; i < each->size(); ++i) {
      const NodeStats& st = (*each)[i];
      json j = StatsJson(st);
      j["shard"] = i;
      // The shard's own view: its members' states (shard 0's decisions, applied) and how
      // much of the key space it holds.
      json states = json::object();
      for (size_t m = 0; m < 4; ++m) {
        states[MemberStateName(static_cast<MemberState>(m))] = st.members_by_state[m];
      }
      j["node"]["members_by_state"] = std::move(states);
      j["node"]["keys_local"] = st.keys_local;
      j["node"]["keys_replicated"] = st.keys_replicated;
      j["node"]["tombstones_local"] = st.tombstones_local;
      j["node"]["tombstones_replicated"] = st.tombstones_replicated;
      j["port"] = node->gossip_endpoint().port + i;
      shards.push_back(std::move(j));
    }
    body["shards"] = std::move(shards);
    body["shard_count"] = node->shard_count();
    Reply(res, 200, body);
  });

  s.Get("/metrics", [this, node](const Request& req, Response& res) {
    if (!CheckParams(ParseQuery(req), res, {})) return;
    // One engine: the node's stats, no shard label. Several: every shard's, per-engine
    // series labelled shard="s" (api/node_metrics.h).
    std::vector<NodeStats> st;
    if (node->shard_count() == 1) {
      auto one = node->Stats();
      if (!one.ok()) return Error(res, one.status());
      st.push_back(*std::move(one));
    } else {
      auto each = node->ShardStats();
      if (!each.ok()) return Error(res, each.status());
      st = *std::move(each);
    }
    AdminMetrics a;
    a.watchers = watchers_.load();
    a.watch_rejected = watch_rejected_.load();
    a.watch_overflows = watch_overflows_.load();
    a.watch_events_sent = watch_events_sent_.load();
    res.status = 200;
    res.set_content(RenderMetrics(node->name(), node->generation(), st, a),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace scuttle
