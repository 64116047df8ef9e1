#include "engine/membership.h"

#include "engine/cluster.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

TEST(MembershipTest, PhiGrowsWithSilenceAndHeartbeatsRestoreAlive) {
  MembershipConfig cfg;
  Membership m(&cfg);
  Cluster c("self", 1);
  bool replaced;
  NodeState* n = c.Upsert("a", 1, &replaced);
  n->endpoint = Endpoint::V4(0x7f000001, 1);
  m.OnDiscovered(*n, 0);
  for (TimeUs t = kUsPerSec; t <= 20 * kUsPerSec; t += kUsPerSec) m.OnHeartbeat(*n, t, nullptr);
  const TimeUs last = 20 * kUsPerSec;
  EXPECT_LT(m.Phi(*n, last + kUsPerSec), 1.0);
  // Mean interval 1 s: phi = t / 1s * log10(e); 8 is reached after ~18.4 s of silence.
  m.Update(c, last + 10 * kUsPerSec, nullptr);
  EXPECT_EQ(n->liveness.state, MemberState::kSuspect);
  m.Update(c, last + 19 * kUsPerSec, nullptr);
  EXPECT_EQ(n->liveness.state, MemberState::kDead);
  m.OnHeartbeat(*n, last + 20 * kUsPerSec, nullptr);
  EXPECT_EQ(n->liveness.state, MemberState::kAlive);
}

TEST(MembershipTest, DeadNodesAreForgottenAfterGrace) {
  MembershipConfig cfg;
  cfg.dead_node_grace_us = 100 * kUsPerSec;
  Membership m(&cfg);
  Cluster c("self", 1);
  bool replaced;
  NodeState* n = c.Upsert("a", 1, &replaced);
  m.OnDiscovered(*n, 0);
  m.Update(c, 60 * kUsPerSec, nullptr);  // initial interval 5 s -> phi 5.2: suspect
  m.Update(c, 100 * kUsPerSec, nullptr);
  EXPECT_EQ(n->liveness.state, MemberState::kDead);
  EXPECT_EQ(m.Update(c, 150 * kUsPerSec, nullptr), 0u);
  EXPECT_EQ(m.Update(c, 201 * kUsPerSec, nullptr), 1u);
  EXPECT_EQ(c.Find("a"), nullptr);
}

TEST(MembershipTest, ChoosesDistinctAlivePeersAndSeeds) {
  MembershipConfig cfg;
  Membership m(&cfg);
  Cluster c("self", 1);
  bool replaced;
  for (int i = 0; i < 10; ++i) {
    NodeState* n = c.Upsert("n" + std::to_string(i), 1, &replaced);
    n->endpoint = Endpoint::V4(0x7f000001, static_cast<uint16_t>(100 + i));
    m.OnDiscovered(*n, 0);
  }
  Rng rng(7);
  std::vector<Endpoint> out;
  for (int round = 0; round < 50; ++round) {
    m.ChoosePeers(c, 3, {}, rng, &out);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_NE(out[0], out[1]);
    EXPECT_NE(out[1], out[2]);
    EXPECT_NE(out[0], out[2]);
  }
  // With no known peers, the seed is contacted.
  Cluster lonely("self", 1);
  const Endpoint seed = Endpoint::V4(0x7f000001, 9);
  m.ChoosePeers(lonely, 3, {seed}, rng, &out);
  EXPECT_EQ(out, std::vector<Endpoint>{seed});
}

}  // namespace
}  // namespace scuttle
