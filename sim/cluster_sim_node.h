// Simulator-internal: the per-node record of ClusterSim and the engine's sinks, plus the
// trace hash, shared by the cluster_sim*.cc files. Not part of the simulator's API.
#ifndef SCUTTLE_SIM_CLUSTER_SIM_NODE_H_
#define SCUTTLE_SIM_CLUSTER_SIM_NODE_H_

#include <chrono>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sim/cluster_sim.h"

namespace scuttle::sim {
namespace cluster_sim_internal {

inline constexpr uint16_t kGossipPort = 7400;

inline uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline uint64_t HashBytes(std::span<const uint8_t> b) {
  uint64_t h = Mix(b.size());
  size_t i = 0;
  for (; i + 8 <= b.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, b.data() + i, 8);
    h = Mix(h ^ w);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, b.data() + i, b.size() - i);
  return Mix(h ^ tail);
}

inline double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace cluster_sim_internal

// ---- Per-node plumbing -------------------------------------------------------------------

struct ClusterSim::Node {
  uint32_t index = 0;
  std::string name;
  Endpoint ep;
  Generation gen = 1;
  TimeUs offset_us = 0;
  double drift = 0;
  std::unique_ptr<NodeSink> sink;
  std::unique_ptr<NodeEvents> events;
  std::unique_ptr<Engine> engine;
  uint64_t incarnation = 0;
  uint32_t down_since = 0;
  TimeUs crashed_at_us = 0;
  TimeUs paused_until_us = 0;  // paused while now < this
  TimeUs probe_timer_at = 0;   // the armed Engine::OnProbeTimer event (simulated time), or 0
  TimeUs rumor_timer_at = 0;   // the armed Engine::OnRumorCycle event, or 0
  uint32_t started_round = 0;  // the round the current engine started
  int64_t restart_round = -1;  // while down: the round it comes back, or -1 for never
  // fresh_keys workload: this incarnation's live keys, and the next key number.
  std::vector<std::string> fresh_live;
  uint64_t next_key = 0;
};

// Lends the simulator's one send buffer; a committed datagram is copied into the network.
class ClusterSim::NodeSink final : public PacketSink {
 public:
  NodeSink(ClusterSim* sim, uint32_t node) : sim_(sim), node_(node) {}
  std::span<uint8_t> Acquire(size_t min_bytes) override {
    std::vector<uint8_t>& buf = sim_->send_buf_;
    if (buf.size() < min_bytes) buf.resize(min_bytes);
    return {buf.data(), buf.size()};
  }
  void Commit(const Endpoint& to, std::span<const uint8_t> packet) override {
    sim_->Send(node_, to, packet);
  }
  void Abort() override {}

 private:
  ClusterSim* sim_;
  uint32_t node_;
};

// Owner-side events feed the checker's histories; replica-side ones its per-delivery
// capture.
class ClusterSim::NodeEvents final : public EventSink {
 public:
  NodeEvents(ClusterSim* sim, uint32_t node) : sim_(sim), node_(node) {}
  void OnKey(const NodeState& node, KeyEvent event, std::string_view key, std::string_view value,
             Version version) override {
    const Node& self = *sim_->nodes_[node_];
    if (node.name() == self.name) {
      using cluster_sim_internal::HashBytes;
      using cluster_sim_internal::Mix;
      sim_->Hash(Mix(version) ^
                 HashBytes({reinterpret_cast<const uint8_t*>(key.data()), key.size()}));
      if (event == KeyEvent::kExpired) sim_->MarkActivity();
      if (event != KeyEvent::kSet) sim_->OnOwnerDelete(node_);
      if (sim_->config_.check_invariants) {
        sim_->checker_->OnOwnerKey(node_, node.generation(), event, key, value, version);
      }
    } else if (sim_->config_.check_invariants) {
      sim_->checker_->OnReplicaKey(node, event, key, version);
    }
  }
  void OnMember(const NodeState& node, MemberEvent event) override {
    if (event == MemberEvent::kDead) sim_->OnDeadEvent(node_, node);
  }
  void OnReset(const NodeState& node) override {
    if (sim_->config_.check_invariants) sim_->checker_->OnReplicaReset(node);
  }

 private:
  ClusterSim* sim_;
  uint32_t node_;
};

}  // namespace scuttle::sim

#endif  // SCUTTLE_SIM_CLUSTER_SIM_NODE_H_
