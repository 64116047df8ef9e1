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
  // Mean interval: 20 samples of 1 s after a 5 s prior = 25/21 s; phi = t / mean *
  // log10(e) reaches 4 (suspect) after ~11 s and 8 (dead) after ~21.9 s of silence.
  m.Update(c, last + 10 * kUsPerSec, nullptr);
  EXPECT_EQ(n->liveness.state, MemberState::kAlive);
  m.Update(c, last + 12 * kUsPerSec, nullptr);
  EXPECT_EQ(n->liveness.state, MemberState::kSuspect);
  m.Update(c, last + 23 * kUsPerSec, nullptr);
  EXPECT_EQ(n->liveness.state, MemberState::kDead);
  m.OnHeartbeat(*n, last + 24 * kUsPerSec, nullptr);
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
  // Remembered for another grace: the same generation is not re-learned, a newer one is.
  EXPECT_TRUE(c.IsForgotten("a", 1, 0, 250 * kUsPerSec));
  EXPECT_FALSE(c.IsForgotten("a", 2, 0, 250 * kUsPerSec)) << "a restart is news";
  EXPECT_FALSE(c.IsForgotten("a", 1, 1, 250 * kUsPerSec)) << "a newer heartbeat is news";
  EXPECT_FALSE(c.IsForgotten("a", 1, 0, 1202 * kUsPerSec)) << "memory expires";
}

TEST(MembershipTest, FirstTinyIntervalDoesNotCauseFalseSuspicion) {
  MembershipConfig cfg;
  cfg.initial_interval_us = 1 * kUsPerSec;
  Membership m(&cfg);
  Cluster c("self", 1);
  bool replaced;
  NodeState* n = c.Upsert("a", 1, &replaced);
  m.OnDiscovered(*n, 0);
  // Two relayed heartbeats 5 ms apart, then the real 1 s rhythm.
  m.OnHeartbeat(*n, 1 * kUsPerSec, nullptr);
  m.OnHeartbeat(*n, 1 * kUsPerSec + 5000, nullptr);
  for (TimeUs t = 2; t <= 4; ++t) m.OnHeartbeat(*n, t * kUsPerSec, nullptr);
  // 2.5 s of silence after a 1 s rhythm must not look like a failure.
  m.Update(c, 6500 * 1000, nullptr);
  EXPECT_EQ(n->liveness.state, MemberState::kAlive) << "phi " << m.Phi(*n, 6500 * 1000);
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
