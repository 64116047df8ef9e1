// Histogram: fixed upper bounds, non-cumulative counts, sum and count — the shape the
// Prometheus exposition wants (the formatter accumulates the buckets). Not thread-safe:
// the Node observes on its loop thread and copies it out in Node::Stats().
#ifndef SCUTTLE_NODE_NODE_HISTOGRAM_H_
#define SCUTTLE_NODE_NODE_HISTOGRAM_H_

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <vector>

namespace scuttle {

struct Histogram {
  std::vector<double> bounds;    // ascending upper bounds; +Inf is implicit
  std::vector<uint64_t> counts;  // bounds.size() + 1: counts[i] <= bounds[i], last = +Inf
  double sum = 0;
  uint64_t count = 0;

  // `n` bounds: start, start*factor, ... REQUIRES: start > 0, factor > 1, n >= 1.
  static Histogram Exponential(double start, double factor, int n) {
    assert(start > 0 && factor > 1 && n >= 1);
    Histogram h;
    double b = start;
    for (int i = 0; i < n; ++i, b *= factor) h.bounds.push_back(b);
    h.counts.assign(h.bounds.size() + 1, 0);
    return h;
  }

  void Observe(double v) {
    const auto it = std::lower_bound(bounds.begin(), bounds.end(), v);
    ++counts[static_cast<size_t>(it - bounds.begin())];
    sum += v;
    ++count;
  }
};

}  // namespace scuttle

#endif  // SCUTTLE_NODE_NODE_HISTOGRAM_H_
