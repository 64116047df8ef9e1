// Test helpers shared by engine tests: an in-memory PacketSink and delta encoding helpers.
#ifndef SCUTTLE_ENGINE_TEST_UTIL_H_
#define SCUTTLE_ENGINE_TEST_UTIL_H_

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "gtest/gtest.h"

namespace scuttle::testing {

struct Datagram {
  Endpoint to;
  std::vector<uint8_t> bytes;
};

// Collects every committed datagram.
class VectorSink : public PacketSink {
 public:
  std::span<uint8_t> Acquire(size_t min_bytes) override {
    if (fail_acquire) return {};
    buf_.resize(std::max(buf_.size(), min_bytes));
    return buf_;
  }
  void Commit(const Endpoint& to, std::span<const uint8_t> packet) override {
    out.push_back(Datagram{to, std::vector<uint8_t>(packet.begin(), packet.end())});
  }
  void Abort() override {}
  std::vector<Datagram> Take() { return std::exchange(out, {}); }

  std::vector<Datagram> out;
  bool fail_acquire = false;

 private:
  std::vector<uint8_t> buf_;
};

inline Endpoint Ep(int i) { return Endpoint::V4(0x7f000001, static_cast<uint16_t>(7400 + i)); }

inline EngineConfig Config(const std::string& name, int i, Generation gen = 1) {
  EngineConfig c;
  c.cluster_id = "test";
  c.node_name = name;
  c.generation = gen;
  c.advertise = Ep(i);
  c.rng_seed = 1000 + i;
  return c;
}

inline wire::DecodedPacket MustDecode(const std::vector<uint8_t>& bytes) {
  wire::DecodedPacket p;
  wire::DropReason r;
  if (!wire::Decode(bytes, wire::DecodeLimits{}, &p, &r)) {
    ADD_FAILURE() << "decode failed: " << wire::DropReasonName(r);
  }
  return p;
}

// Engines addressed by port; Pump() delivers until quiet. `drop(from, to, bytes)` may
// discard a datagram; crashed ports neither send nor receive.
struct Net {
  std::map<uint16_t, std::unique_ptr<VectorSink>> sinks;
  std::map<uint16_t, std::unique_ptr<Engine>> engines;
  std::set<uint16_t> crashed;
  std::function<bool(uint16_t, uint16_t, const std::vector<uint8_t>&)> drop;
  TimeUs now = 1;
  uint64_t delivered = 0;
  size_t max_bytes[wire::kMessageTypeCount] = {};

  Engine& Add(EngineConfig c) {
    const uint16_t port = c.advertise.port;
    sinks[port] = std::make_unique<testing::VectorSink>();
    engines[port] = std::make_unique<Engine>(std::move(c), sinks[port].get(), nullptr);
    return *engines[port];
  }
  void Pump() {
    for (int guard = 0; guard < 100000; ++guard) {
      bool any = false;
      for (auto& [port, sink] : sinks) {
        for (auto& d : sink->Take()) {
          any = true;
          if (crashed.contains(port) || crashed.contains(d.to.port)) continue;
          auto it = engines.find(d.to.port);
          if (it == engines.end()) continue;
          wire::DecodedPacket p;
          wire::DropReason r;
          if (wire::Decode(d.bytes, wire::DecodeLimits{}, &p, &r)) {
            size_t& m = max_bytes[static_cast<size_t>(p.type)];
            m = std::max(m, d.bytes.size());
          }
          if (drop && drop(port, d.to.port, d.bytes)) continue;
          ++delivered;
          it->second->OnPacket(now, Endpoint::V4(0x7f000001, port), d.bytes);
        }
      }
      if (!any) return;
    }
    ADD_FAILURE() << "network never went quiet";
  }
  // Runs rounds until every engine knows `n` nodes (at most `max_rounds`).
  void RoundsUntilFull(size_t n, int max_rounds = 100) {
    for (int r = 0; r < max_rounds; ++r) {
      Round();
      bool full = true;
      for (auto& [port, e] : engines) full = full && e->cluster().size() == n;
      if (full) return;
    }
  }
  void Round() {
    now += kUsPerSec;
    for (auto& [port, e] : engines) {
      if (!crashed.contains(port)) e->OnTick(now);
    }
    Pump();
  }
};

}  // namespace scuttle::testing

#endif  // SCUTTLE_ENGINE_TEST_UTIL_H_
