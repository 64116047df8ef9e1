#include "engine/membership.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "engine/cluster.h"
#include "engine/node_state.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

TEST(MembershipTest, PhiGrowsWithSilenceAndHeartbeatsRestoreAlive) {
  MembershipConfig cfg;
  cfg.confirm = false;  // the phi-only detector: suspect at threshold / 2
  cfg.initial_interval_us = 5 * kUsPerSec;
  cfg.prior_weight = 1;
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

// #16 item 2: the prior is the expected interval, worth prior_weight samples, so a node
// met a moment ago is judged by the rhythm it should keep.
TEST(MembershipTest, YoungNodePriorIsTheGossipIntervalWeightedBySamples) {
  MembershipConfig cfg;
  cfg.initial_interval_us = 300 * kUsPerMs;  // the gossip interval
  cfg.prior_weight = 4;
  Membership m(&cfg);
  Cluster c("self", 1);
  bool replaced;
  NodeState* n = c.Upsert("a", 1, &replaced);
  m.OnDiscovered(*n, 0);
  // No sample yet: phi runs on the prior alone. 1.5 s of silence is 5 intervals: phi 2.2.
  EXPECT_NEAR(m.Phi(*n, 1500 * kUsPerMs), 1500.0 / 300 * M_LOG10E, 1e-9);
  m.Update(c, 1500 * kUsPerMs, nullptr);
  EXPECT_EQ(n->liveness.state, MemberState::kSuspect) << "a young node is not a blind spot";
  // One 2.1 s sample moves the mean by 1/(w + 1) of the way: (4 * 300 + 2100) / 5 = 660 ms.
  m.OnHeartbeat(*n, 2100 * kUsPerMs, nullptr);
  EXPECT_EQ(n->liveness.state, MemberState::kAlive);
  EXPECT_NEAR(n->liveness.mean_interval_us, 660e3, 1e-6);
  // Four more of 300 ms: (4 * 300 + 2100 + 4 * 300) / 9 = 500 ms.
  for (int i = 1; i <= 4; ++i) m.OnHeartbeat(*n, (2100 + 300 * i) * kUsPerMs, nullptr);
  EXPECT_NEAR(n->liveness.mean_interval_us, 500e3, 1e-3);
}

// Lifeguard local health: our own stall shifts every silence clock, capped at now.
TEST(MembershipTest, RebaseShiftsSilenceByTheObserversStall) {
  MembershipConfig cfg;
  cfg.initial_interval_us = kUsPerSec;
  Membership m(&cfg);
  Cluster c("self", 1);
  bool replaced;
  NodeState* a = c.Upsert("a", 1, &replaced);
  NodeState* b = c.Upsert("b", 1, &replaced);
  m.OnDiscovered(*a, 10 * kUsPerSec);
  m.OnDiscovered(*b, 14 * kUsPerSec);
  m.Rebase(c, 5 * kUsPerSec, 16 * kUsPerSec);
  EXPECT_EQ(a->liveness.last_arrival_us, 15 * kUsPerSec);
  EXPECT_EQ(b->liveness.last_arrival_us, 16 * kUsPerSec) << "capped at now";
  m.Update(c, 16 * kUsPerSec, nullptr);
  EXPECT_EQ(a->liveness.state, MemberState::kAlive);
}

TEST(MembershipTest, DeadNodesAreForgottenAfterGrace) {
  MembershipConfig cfg;
  cfg.initial_interval_us = 5 * kUsPerSec;
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

TEST(LocalityTest, DistanceCountsTrailingDifferingComponents) {
  EXPECT_EQ(LocalityDistance("eu/a/r1", "eu/a/r1"), 0);
  EXPECT_EQ(LocalityDistance("eu/a/r1", "eu/a/r2"), 1);
  EXPECT_EQ(LocalityDistance("eu/a/r1", "eu/b/r1"), 2);  // same rack name, other zone
  EXPECT_EQ(LocalityDistance("eu/a/r1", "us/a/r1"), 3);
  EXPECT_EQ(LocalityDistance("eu/a/r1", "eu/a"), 1);  // counted on the longer label
  EXPECT_EQ(LocalityDistance("eu", "us/a/r1"), 3);
  EXPECT_EQ(LocalityDistance("eu/a/r1", ""), kUnknownDistance);
  EXPECT_EQ(LocalityDistance("", ""), kUnknownDistance);
  EXPECT_EQ(LocalityDistance("eu/a/r1", "eu//r1"), kUnknownDistance);  // remote junk
  EXPECT_EQ(LocalityDistance("eu/a/r1", "eu/a b"), kUnknownDistance);
  EXPECT_EQ(LocalityDistance("eu/a/r1", std::string(300, 'x')), kUnknownDistance);
}

TEST(LocalityTest, ValidateExplainsBadLabels) {
  EXPECT_TRUE(ValidateLocality("eu-west-1/eu-west-1b/rack-07").ok());
  EXPECT_TRUE(ValidateLocality("a/b/c/d/e/f/g/h").ok());
  for (const char* bad : {"", "/", "eu/", "/eu", "eu//a", "eu a", "a/b/c/d/e/f/g/h/i", "tab\t"}) {
    const absl::Status s = ValidateLocality(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_NE(s.message().find("region/zone/rack"), std::string::npos) << s;
  }
  EXPECT_FALSE(ValidateLocality(std::string(256, 'x')).ok());
  EXPECT_FALSE(ValidateLocality(std::string("a\0b", 3)).ok());
}

// A cluster seen from "self" at r1/z1/k1, with peers in each distance class.
struct SpatialCluster {
  // Peers per distance: 3 in our rack, 6 in our zone, 20 in our region, 50 elsewhere, and
  // 5 with no label.
  static constexpr int kCount[] = {3, 6, 20, 50, 5};
  static constexpr int kDistance[] = {0, 1, 2, 3, kUnknownDistance};

  SpatialCluster() : c("self", 1) {
    c.self().Set(kLocalityKey, "r1/z1/k1");
    bool replaced;
    int port = 100;
    for (int cls = 0; cls < 5; ++cls) {
      for (int i = 0; i < kCount[cls]; ++i, ++port) {
        NodeState* n = c.Upsert("n" + std::to_string(port), 1, &replaced);
        n->endpoint = Endpoint::V4(0x7f000001, static_cast<uint16_t>(port));
        const std::string label = cls == 0   ? "r1/z1/k1"
                                  : cls == 1 ? "r1/z1/k" + std::to_string(2 + i % 3)
                                  : cls == 2 ? "r1/z" + std::to_string(2 + i % 4) + "/k1"
                                             : "r" + std::to_string(2 + i % 5) + "/z1/k1";
        if (cls < 4) n->Set(kLocalityKey, label);
        EXPECT_EQ(LocalityDistance("r1/z1/k1", LocalityOf(*n)), kDistance[cls]) << label;
        class_of[port] = cls;
      }
    }
  }
  Cluster c;
  std::map<int, int> class_of;  // port -> distance class
};

TEST(MembershipTest, SpatialChoiceFollowsInverseSquareOfQ) {
  MembershipConfig cfg;
  cfg.spatial_exponent = 2;
  Membership m(&cfg);
  SpatialCluster sc;
  // Demers et al. §3.1: P(class d) = n_d Q(d)^-2 / sum, Q(d) = peers within distance d.
  double expected[5];
  double sum = 0;
  int q = 0;
  for (int cls = 0; cls < 5; ++cls) {
    q += SpatialCluster::kCount[cls];
    expected[cls] = SpatialCluster::kCount[cls] / (static_cast<double>(q) * q);
    sum += expected[cls];
  }
  for (double& e : expected) e /= sum;
  constexpr int kDraws = 100000;
  Rng rng(42);
  std::vector<Endpoint> out;
  int hits[5] = {};
  std::map<int, int> per_peer;
  for (int i = 0; i < kDraws; ++i) {
    m.ChoosePeers(sc.c, 1, {}, rng, &out);
    ASSERT_EQ(out.size(), 1u);
    ++hits[sc.class_of.at(out[0].port)];
    ++per_peer[out[0].port];
  }
  for (int cls = 0; cls < 5; ++cls) {
    // 5 standard errors of a binomial proportion; the seed is fixed, so the margin guards
    // against a wrong distribution rather than against chance.
    const double p = expected[cls];
    const double tol = 5 * std::sqrt(p * (1 - p) / kDraws);
    EXPECT_NEAR(static_cast<double>(hits[cls]) / kDraws, p, tol) << "distance class " << cls;
  }
  // Within a class the choice is uniform: each rack-mate gets a third of the rack's share.
  for (int port = 100; port < 103; ++port) {
    const double p = expected[0] / 3;
    EXPECT_NEAR(static_cast<double>(per_peer[port]) / kDraws, p,
                5 * std::sqrt(p * (1 - p) / kDraws))
        << port;
  }
  // The nearest peers dominate, yet every class is reached (the paper's point: long
  // links stay in use, just rarely).
  EXPECT_GT(expected[0], 0.7);
  EXPECT_GT(hits[4], 0);
}

TEST(MembershipTest, SpatialChoiceDrawsDistinctPeers) {
  MembershipConfig cfg;
  cfg.spatial_exponent = 2;
  Membership m(&cfg);
  SpatialCluster sc;
  Rng rng(3);
  std::vector<Endpoint> out;
  for (int round = 0; round < 200; ++round) {
    m.ChoosePeers(sc.c, 5, {}, rng, &out);
    ASSERT_EQ(out.size(), 5u);
    for (size_t i = 0; i < out.size(); ++i) {
      for (size_t j = i + 1; j < out.size(); ++j) EXPECT_NE(out[i], out[j]);
    }
  }
  // A fanout as large as the cluster takes everyone once.
  m.ChoosePeers(sc.c, 1000, {}, rng, &out);
  EXPECT_EQ(out.size(), sc.class_of.size());
}

TEST(MembershipTest, SpatialChoiceWithoutOurLabelIsUniform) {
  MembershipConfig cfg;
  cfg.spatial_exponent = 2;
  Membership m(&cfg);
  SpatialCluster sc;
  sc.c.self().Delete(kLocalityKey, 0);  // every peer is now at kUnknownDistance
  constexpr int kDraws = 40000;
  Rng rng(9);
  std::vector<Endpoint> out;
  int near = 0;
  for (int i = 0; i < kDraws; ++i) {
    m.ChoosePeers(sc.c, 1, {}, rng, &out);
    near += sc.class_of.at(out[0].port) == 0;
  }
  const double p = 3.0 / static_cast<double>(sc.class_of.size());
  EXPECT_NEAR(static_cast<double>(near) / kDraws, p, 5 * std::sqrt(p * (1 - p) / kDraws));
}

}  // namespace
}  // namespace scuttle
