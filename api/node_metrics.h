// GET /metrics: every counter and gauge of a Node (plus the admin server's own) as
// Prometheus text exposition 0.0.4, through MetricsWriter. Names follow the Prometheus
// conventions: scuttle_ prefix, _total for counters, base units (seconds, bytes).
#ifndef SCUTTLE_API_NODE_METRICS_H_
#define SCUTTLE_API_NODE_METRICS_H_

#include <cstdint>
#include <span>
#include <string>

#include "node/node.h"

namespace scuttle {

// Counters kept by the admin server itself.
struct AdminMetrics {
  uint64_t watchers = 0;           // open /v1/watch streams
  uint64_t watch_rejected = 0;     // 503: over --max_watchers
  uint64_t watch_overflows = 0;    // overflow events sent to /v1/watch streams
  uint64_t watch_events_sent = 0;  // events written to /v1/watch streams
};

std::string RenderMetrics(const std::string& node_name, Generation generation,
                          const NodeStats& stats, const AdminMetrics& admin);

// A node running several engine shards (`--shards N`): `shards[s]` is shard s's stats
// (its engine, transport, loop, watch log). Per-engine families get one series per shard
// with a `shard="s"` label first; node-wide families are written once without it: the
// membership families (scuttle_members, scuttle_forgotten_members,
// scuttle_member_events_total) from shards[0], where membership is decided, and the admin
// server's own and live-config families. With one shard the text is exactly the
// single-stats overload's: no shard label anywhere.
std::string RenderMetrics(const std::string& node_name, Generation generation,
                          std::span<const NodeStats> shards, const AdminMetrics& admin);

}  // namespace scuttle

#endif  // SCUTTLE_API_NODE_METRICS_H_
