// GET /metrics: every counter and gauge of a Node (plus the admin server's own) as
// Prometheus text exposition 0.0.4, through MetricsWriter. Names follow the Prometheus
// conventions: scuttle_ prefix, _total for counters, base units (seconds, bytes).
#ifndef SCUTTLE_API_NODE_METRICS_H_
#define SCUTTLE_API_NODE_METRICS_H_

#include <cstdint>
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

}  // namespace scuttle

#endif  // SCUTTLE_API_NODE_METRICS_H_
