// Failure confirmation (engine/probe.h): probes, verdicts, refutation, local health.
#include <string>

#include "engine/engine.h"
#include "engine/test_util.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

using testing::Config;
using testing::Ep;
using testing::Net;

// n engines (ports 7401..), all seeded with the first, run until everyone knows everyone.
void Build(Net& net, int n, bool ignore_refutation = false) {
  for (int i = 1; i <= n; ++i) {
    EngineConfig c = Config("n" + std::to_string(i), i);
    c.seeds = {Ep(1)};
    c.membership.testonly_ignore_refutation = ignore_refutation;
    net.Add(std::move(c));
  }
  for (int r = 0; r < 100; ++r) {
    net.Round();
    bool full = true;
    for (auto& [port, e] : net.engines) full = full && e->cluster().size() == static_cast<size_t>(n);
    if (full) break;
  }
  for (int r = 0; r < 10; ++r) net.Round();  // a few samples of the rhythm
}

MemberState StateAt(const Net& net, int observer, const std::string& name) {
  const NodeState* n = net.engines.at(Ep(observer).port)->FindNode(name);
  return n == nullptr ? MemberState::kLeft : n->liveness.state;
}

// A crash is confirmed by probes and the verdict spreads: every survivor marks it dead far
// sooner than its own phi would (phi 8 is ~18 mean intervals of silence).
TEST(ProbeTest, CrashIsConfirmedAndTheVerdictReachesEverySurvivor) {
  Net net;
  Build(net, 8);
  net.crashed.insert(Ep(8).port);
  int rounds = 0;
  auto all_dead = [&] {
    for (int i = 1; i < 8; ++i) {
      if (StateAt(net, i, "n8") != MemberState::kDead) return false;
    }
    return true;
  };
  while (!all_dead() && rounds < 30) {
    net.Round();
    ++rounds;
  }
  EXPECT_TRUE(all_dead());
  EXPECT_LE(rounds, 10) << "confirmation must beat phi alone (~18 rounds)";
  uint64_t confirmed = 0, applied = 0, pings = 0;
  for (int i = 1; i < 8; ++i) {
    const ProbeStats& s = net.engines.at(Ep(i).port)->probe_stats();
    confirmed += s.confirmed_dead;
    applied += s.verdicts_applied;
    pings += s.pings_sent + s.ping_reqs_sent;
  }
  EXPECT_GE(confirmed, 1u);
  EXPECT_GE(pings, 1u);
  EXPECT_GE(confirmed + applied, 7u) << "every survivor reached the verdict";
  // Probes and acks stay small (one name, a few fixed fields).
  EXPECT_LE(net.max_bytes[static_cast<size_t>(wire::MessageType::kProbe)], 256u);
}

// #16 item 4 for verdicts: a confirmed death is pushed at once (fanout peers, each
// forwarding once), so in the very round a prober declares it, most survivors learn it by
// network delays rather than at their own later rounds or their own phi.
TEST(ProbeTest, ADeadVerdictIsPushedAtOnce) {
  constexpr int kNodes = 20;
  Net net;
  Build(net, kNodes);
  const std::string victim = "n" + std::to_string(kNodes);
  net.crashed.insert(Ep(kNodes).port);
  auto sum = [&](auto field) {
    uint64_t t = 0;
    for (int i = 1; i < kNodes; ++i) t += field(net.engines.at(Ep(i).port)->probe_stats());
    return t;
  };
  int rounds = 0;
  while (sum([](const ProbeStats& s) { return s.confirmed_dead; }) == 0 && rounds < 40) {
    net.Round();
    ++rounds;
  }
  ASSERT_GT(sum([](const ProbeStats& s) { return s.confirmed_dead; }), 0u);
  // The round that confirmed it is over: count who already has it dead.
  int dead = 0;
  for (int i = 1; i < kNodes; ++i) dead += StateAt(net, i, victim) == MemberState::kDead;
  const uint64_t applied = sum([](const ProbeStats& s) { return s.verdicts_applied; });
  EXPECT_GE(applied, 10u) << "the verdict is forwarded by the nodes it reached";
  // Infect-and-forward-once with fanout 3 misses ~e^-3 of 19 survivors on average.
  EXPECT_GE(dead, kNodes - 1 - 4) << "after " << rounds << " rounds";
}

// A node that cannot be heard for a while is declared dead; once it hears the verdict it
// refutes with a higher heartbeat, and the refutation wins everywhere.
void SilenceThenHeal(Net& net) {
  const uint16_t muted = Ep(4).port;
  net.drop = [&](uint16_t from, uint16_t, const std::vector<uint8_t>&) { return from == muted; };
  for (int r = 0; r < 30; ++r) net.Round();
  net.drop = nullptr;
  for (int r = 0; r < 10; ++r) net.Round();
}

TEST(ProbeTest, RefutationWinsOverADeadVerdict) {
  Net net;
  Build(net, 6);
  SilenceThenHeal(net);
  const ProbeStats& muted = net.engines.at(Ep(4).port)->probe_stats();
  EXPECT_GE(muted.refutations_sent, 1u) << "it heard the verdict on itself";
  for (int i = 1; i <= 6; ++i) {
    if (i == 4) continue;
    EXPECT_EQ(StateAt(net, i, "n4"), MemberState::kAlive) << "at n" << i;
  }
}

// The planted bug (refutation ignored) must show: the node stays dead though it is alive.
TEST(ProbeTest, IgnoredRefutationLeavesALiveNodeDead) {
  Net net;
  Build(net, 6, /*ignore_refutation=*/true);
  SilenceThenHeal(net);
  int dead = 0;
  for (int i = 1; i <= 6; ++i) dead += i != 4 && StateAt(net, i, "n4") == MemberState::kDead;
  EXPECT_GT(dead, 0);
}

// An ack carries the same fields as its ping, so it is never larger (replies to an
// unverified source must not amplify).
TEST(ProbeTest, AnAckIsNoLargerThanItsPing) {
  Net net;
  Build(net, 3);
  size_t ping = 0, ack = 0;
  net.drop = [&](uint16_t, uint16_t, const std::vector<uint8_t>& bytes) {
    const wire::DecodedPacket p = testing::MustDecode(bytes);
    if (p.type == wire::MessageType::kProbe && p.probe.kind == wire::kProbePing) {
      ping = std::max(ping, bytes.size());
    }
    if (p.type == wire::MessageType::kProbe && p.probe.kind == wire::kProbeAck) {
      ack = std::max(ack, bytes.size());
    }
    // n2's gossip is lost, its probe answers are not: the others suspect it and ask.
    return p.type != wire::MessageType::kProbe && bytes.size() > 0 && p.sender != nullptr &&
           p.Name(*p.sender) == "n2";
  };
  for (int r = 0; r < 12 && ack == 0; ++r) net.Round();
  ASSERT_GT(ping, 0u);
  ASSERT_GT(ack, 0u);
  EXPECT_LE(ack, ping);
}

// Lifeguard local health: an observer that stalled 10 s accuses nobody when it wakes.
TEST(ProbeTest, AStalledObserverDoesNotAccuseOthers) {
  Net net;
  Build(net, 5);
  Engine& sleeper = *net.engines.at(Ep(5).port);
  net.now += 10 * kUsPerSec;  // only n5's clock jumps: it slept through ten rounds
  sleeper.OnTick(net.now);
  for (int i = 1; i <= 4; ++i) {
    EXPECT_EQ(StateAt(net, 5, "n" + std::to_string(i)), MemberState::kAlive);
  }
  EXPECT_EQ(sleeper.probe_stats().late_ticks, 1u);
  EXPECT_EQ(sleeper.local_health(), 1);
  EXPECT_EQ(sleeper.probe_stats().confirmed_dead, 0u);
}

// The young-node prior defaults to the gossip interval and follows a live change of it;
// an explicit prior stays as given.
TEST(ProbeTest, YoungNodePriorFollowsTheGossipInterval) {
  testing::VectorSink sink;
  EngineConfig c = Config("n1", 1);
  c.gossip_interval_us = 300 * kUsPerMs;
  Engine derived(c, &sink, nullptr);
  EXPECT_EQ(derived.config().membership.initial_interval_us, 300 * kUsPerMs);
  derived.mutable_config().gossip_interval_us = 100 * kUsPerMs;
  derived.OnTick(kUsPerSec);
  EXPECT_EQ(derived.config().membership.initial_interval_us, 100 * kUsPerMs);
  c.membership.initial_interval_us = 5 * kUsPerSec;
  Engine fixed(c, &sink, nullptr);
  fixed.mutable_config().gossip_interval_us = 100 * kUsPerMs;
  fixed.OnTick(kUsPerSec);
  EXPECT_EQ(fixed.config().membership.initial_interval_us, 5 * kUsPerSec);
}

}  // namespace
}  // namespace scuttle
