// Test helpers shared by engine tests: an in-memory PacketSink and delta encoding helpers.
#ifndef SCUTTLE_ENGINE_TEST_UTIL_H_
#define SCUTTLE_ENGINE_TEST_UTIL_H_

#include <cstring>
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

}  // namespace scuttle::testing

#endif  // SCUTTLE_ENGINE_TEST_UTIL_H_
