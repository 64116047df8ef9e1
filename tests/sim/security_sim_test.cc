// Gossip security in the deterministic simulator (DESIGN §8, §11): a 100-node cluster on a
// lossy network rotates its key with every node acting at its own random rounds (install,
// then use, then remove, Serf's procedure), with writes going on throughout: no invariant
// violation, no live node ever declared dead, convergence after; and a node holding the
// wrong key is never admitted by anyone. Each test prints its seed on failure.
#include <string>
#include <vector>

#include "engine/rng.h"
#include "gtest/gtest.h"
#include "sim/cluster_sim.h"

namespace scuttle::sim {
namespace {

wire::KeyBytes K(uint8_t fill) {
  wire::KeyBytes k;
  k.fill(fill);
  return k;
}

wire::Keyring Ring(const wire::KeyBytes& k) {
  wire::Keyring r;
  EXPECT_TRUE(r.Install(k).ok());
  return r;
}

// Every pair of up nodes that know each other sees the other alive or suspect, never dead.
size_t FalseDeaths(const ClusterSim& sim) {
  size_t n = 0;
  for (uint32_t i = 0; i < sim.size(); ++i) {
    for (uint32_t j = 0; j < sim.size(); ++j) {
      if (i == j) continue;
      const NodeState* ns = sim.engine(i).FindNode(sim.name(j));
      if (ns != nullptr && ns->liveness.state == MemberState::kDead) ++n;
    }
  }
  return n;
}

TEST(SecuritySim, StaggeredKeyRotationOn100NodesWithLoss) {
  constexpr uint64_t kSeed = 14;
  ClusterSimConfig c;
  c.seed = kSeed;
  c.nodes = 100;
  c.rounds = 80;
  c.link.loss = 0.1;
  c.keys = 16;
  c.write_rate = 4;
  c.key_nodes = 10;
  c.write_stop_round = 60;
  c.configure_engine = [](uint32_t, EngineConfig* cfg) {
    cfg->security.keyring = Ring(K(1));
  };
  ClusterSim sim(c);
  Rng rng(kSeed);
  struct Plan {
    uint32_t install, use, remove;
  };
  std::vector<Plan> plan(c.nodes);
  for (Plan& p : plan) {
    p.install = 10 + static_cast<uint32_t>(rng.Below(10));
    p.use = 25 + static_cast<uint32_t>(rng.Below(10));
    p.remove = 40 + static_cast<uint32_t>(rng.Below(10));
  }
  std::vector<wire::Keyring> rings(c.nodes, Ring(K(1)));
  size_t false_deaths = 0;
  for (uint32_t r = 0; r < c.rounds; ++r) {
    for (uint32_t i = 0; i < c.nodes; ++i) {
      bool changed = true;
      if (r == plan[i].install) {
        ASSERT_TRUE(rings[i].Install(K(2)).ok());
      } else if (r == plan[i].use) {
        ASSERT_TRUE(rings[i].Use(wire::EncodeKey(K(2))).ok());
      } else if (r == plan[i].remove) {
        ASSERT_TRUE(rings[i].Remove(wire::EncodeKey(K(1))).ok());
      } else {
        changed = false;
      }
      if (changed) sim.mutable_engine(i).SetKeyring(rings[i]);
    }
    sim.RunRounds(1);
    if (r >= 5) false_deaths += FalseDeaths(sim);
  }
  const ClusterSimStats& s = sim.Finish();
  EXPECT_EQ(s.invariant_violations, 0u) << "seed " << kSeed;
  EXPECT_TRUE(s.converged) << "seed " << kSeed;
  EXPECT_EQ(false_deaths, 0u) << "seed " << kSeed;
  EXPECT_GT(s.dropped_loss, 0u);
  uint64_t bad_key = 0, opened = 0;
  for (uint32_t i = 0; i < c.nodes; ++i) {
    const SecurityStats& sec = sim.engine(i).stats().security;
    bad_key += sec.drops[static_cast<size_t>(SecurityDrop::kBadKey)];
    opened += sec.opened_in;
    EXPECT_EQ(sim.engine(i).config().security.keyring.size(), 1u);
  }
  EXPECT_EQ(bad_key, 0u) << "every sealed datagram found its key during the rotation";
  EXPECT_GT(opened, 0u);
}

TEST(SecuritySim, WrongKeyNodeIsNeverAdmitted) {
  constexpr uint64_t kSeed = 15;
  ClusterSimConfig c;
  c.seed = kSeed;
  c.nodes = 20;
  c.rounds = 30;
  c.link.loss = 0.1;
  const uint32_t intruder = 7;
  c.configure_engine = [&](uint32_t node, EngineConfig* cfg) {
    cfg->security.keyring = Ring(node == intruder ? K(66) : K(1));
  };
  ClusterSim sim(c);
  for (uint32_t r = 0; r < c.rounds; ++r) {
    sim.RunRounds(1);
    for (uint32_t i = 0; i < c.nodes; ++i) {
      if (i == intruder) continue;
      ASSERT_EQ(sim.engine(i).FindNode(sim.name(intruder)), nullptr)
          << "seed " << kSeed << " round " << r << ": " << sim.name(i) << " admitted it";
    }
  }
  EXPECT_EQ(sim.engine(intruder).cluster().size(), 1u) << "the intruder learned nobody";
  EXPECT_GT(sim.engine(0).stats().security.drops[static_cast<size_t>(SecurityDrop::kBadKey)] +
                sim.engine(1).stats().security.drops[static_cast<size_t>(SecurityDrop::kBadKey)] +
                sim.engine(2).stats().security.drops[static_cast<size_t>(SecurityDrop::kBadKey)],
            0u);
}

}  // namespace
}  // namespace scuttle::sim
