// Helpers for the tests that run real Nodes on loopback (node/ and api/ tests): a condition
// polled with a deadline (tests never sleep to wait, STYLE "Tests") and the options they
// all start from. Header-only, for test targets.
#ifndef SCUTTLE_NODE_NODE_TESTING_H_
#define SCUTTLE_NODE_NODE_TESTING_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "io/clock.h"
#include "node/node.h"

namespace scuttle::node_testing {

// Generous: CI runs tests two at a time on 2 cores. Only a failing test waits this long.
inline constexpr int64_t kDeadlineUs = 30'000'000;

// Polls cond every few ms until it holds or the deadline passes; returns cond().
inline bool Eventually(const std::function<bool()>& cond, int64_t deadline_us = kDeadlineUs) {
  const int64_t end = io::MonotonicNowUs() + deadline_us;
  while (io::MonotonicNowUs() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll period, not a wait
  }
  return cond();
}

// A node named `name` on 127.0.0.1 (ephemeral port) with 50 ms rounds, joining `seeds`.
inline NodeOptions LoopbackOptions(const std::string& name, const std::vector<std::string>& seeds,
                                   io::IoKind io) {
  NodeOptions o;
  o.engine.node_name = name;
  o.engine.gossip_interval_us = 50 * kUsPerMs;
  o.listen = *Endpoint::Parse("127.0.0.1:0");
  o.io = io;
  o.seeds = seeds;
  return o;
}

}  // namespace scuttle::node_testing

#endif  // SCUTTLE_NODE_NODE_TESTING_H_
