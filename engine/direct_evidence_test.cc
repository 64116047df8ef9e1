// Quiet-round detection (engine/probe.h, docs/detection.md "Direct evidence"): probe
// deadlines between rounds, direct evidence over relayed heartbeats, and a node held dead
// that is told so by the first member it reaches.
#include <cmath>
#include <string>

#include "engine/engine.h"
#include "engine/test_util.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

using testing::Config;
using testing::Ep;
using testing::Net;

// scuttled --quiet_rounds: quiet after 2 rounds, the Syn as the probe, 2 ping-req rounds.
// `bounded`: quiet Syns carry heartbeat slices and deaths ride digests too.
EngineConfig QuietConfig(int i, bool bounded) {
  EngineConfig c = Config("n" + std::to_string(i), i);
  c.seeds = {Ep(1)};
  c.quiet_after_rounds = 2;
  c.membership.probe_unanswered_syn = true;
  c.membership.probe_indirect_rounds = 2;
  if (bounded) {
    c.quiet_heartbeats = 4;
    c.quiet_buckets = 2;
  }
  return c;
}

void BuildQuiet(Net& net, int n, bool bounded) {
  for (int i = 1; i <= n; ++i) net.Add(QuietConfig(i, bounded));
  net.RoundsUntilFull(static_cast<size_t>(n));
  for (int r = 0; r < 12; ++r) net.Round();
}

MemberState StateAt(const Net& net, int observer, const std::string& name) {
  const NodeState* n = net.engines.at(Ep(observer).port)->FindNode(name);
  return n == nullptr ? MemberState::kLeft : n->liveness.state;
}

// Drives virtual time in `step` slices: rounds every second, and each engine's probe
// timer when it is due (as scuttled's loop and the simulator do). Returns the time at
// which `done` first held, or -1 after `limit`.
template <typename Done>
TimeUs RunTimed(Net& net, TimeUs limit, Done done) {
  const TimeUs start = net.now;
  const TimeUs step = 10 * kUsPerMs;
  TimeUs next_round = net.now + kUsPerSec;
  while (net.now - start < limit) {
    net.now += step;
    if (net.now >= next_round) {
      next_round += kUsPerSec;
      for (auto& [port, e] : net.engines) {
        if (!net.crashed.contains(port)) e->OnTick(net.now);
      }
    }
    for (auto& [port, e] : net.engines) {
      const TimeUs due = e->ProbeDueUs();
      if (!net.crashed.contains(port) && due != 0 && due <= net.now) e->OnProbeTimer(net.now);
    }
    net.Pump();
    if (done()) return net.now - start;
  }
  return -1;
}

// A crash in a quiet cluster: the unanswered Syn, the ping-req rounds and the verdict run
// on probe deadlines, not rounds, and relayed copies of the victim's last heartbeats (still
// spreading after the crash) do not clear the suspicion. Every survivor holds it dead well
// inside the 8-interval target, and probes, not phi (stretched by quiet rounds), did it.
TEST(DirectEvidenceTest, AQuietCrashIsConfirmedOnProbeDeadlines) {
  for (bool bounded : {false, true}) {
    constexpr int kNodes = 16;
    Net net;
    BuildQuiet(net, kNodes, bounded);
    uint64_t quiet = 0;
    for (auto& [port, e] : net.engines) quiet += e->stats().quiet_rounds;
    ASSERT_GT(quiet, 0u) << "the cluster never went quiet";
    const std::string victim = "n" + std::to_string(kNodes);
    net.crashed.insert(Ep(kNodes).port);
    const TimeUs took = RunTimed(net, 30 * kUsPerSec, [&] {
      for (int i = 1; i < kNodes; ++i) {
        if (StateAt(net, i, victim) != MemberState::kDead) return false;
      }
      return true;
    });
    ASSERT_GE(took, 0) << "bounded=" << bounded << ": not every survivor holds it dead";
    EXPECT_LE(took, 8 * kUsPerSec) << "bounded=" << bounded;
    uint64_t confirmed = 0, unanswered = 0;
    for (auto& [port, e] : net.engines) {
      confirmed += e->probe_stats().confirmed_dead;
      unanswered += e->stats().syn_unanswered;
    }
    EXPECT_GE(confirmed, 1u);
    EXPECT_GE(unanswered, 1u) << "a quiet Syn is the probe";
  }
}

// A node held dead that comes back (its verdict was lost while it was cut off) is revived
// by the first member it reaches, which also tells it; it refutes, and everyone holds it
// alive again within a few rounds, although quiet rounds bring each member a packet from
// it only every ~2 (N-1) rounds.
TEST(DirectEvidenceTest, ANodeHeldDeadIsToldByTheFirstMemberItReaches) {
  constexpr int kNodes = 12;
  Net net;
  BuildQuiet(net, kNodes, /*bounded=*/false);
  const uint16_t cut = Ep(kNodes).port;
  const std::string name = "n" + std::to_string(kNodes);
  net.drop = [&](uint16_t from, uint16_t to, const std::vector<uint8_t>&) {
    return from == cut || to == cut;
  };
  for (int r = 0; r < 20; ++r) net.Round();
  int dead = 0;
  for (int i = 1; i < kNodes; ++i) dead += StateAt(net, i, name) == MemberState::kDead;
  ASSERT_EQ(dead, kNodes - 1) << "the cut-off node was not declared dead";
  net.drop = nullptr;
  const TimeUs took = RunTimed(net, 30 * kUsPerSec, [&] {
    for (int i = 1; i < kNodes; ++i) {
      if (StateAt(net, i, name) != MemberState::kAlive) return false;
    }
    return true;
  });
  ASSERT_GE(took, 0) << "some member still holds the live node dead";
  EXPECT_LE(took, 6 * kUsPerSec);
  EXPECT_GE(net.engines.at(cut)->probe_stats().refutations_sent, 1u);
}

// A probe timer that fires after a stall (SIGSTOP) judges the stall first, as the round
// does: the Syn this node sent before it slept went unanswered only because it slept.
TEST(DirectEvidenceTest, AProbeTimerAfterAStallAccusesNobody) {
  Net net;
  BuildQuiet(net, 5, /*bounded=*/false);
  Engine& sleeper = *net.engines.at(Ep(5).port);
  for (int i = 1; i <= 4; ++i) net.crashed.insert(Ep(i).port);  // nothing answers meanwhile
  for (int r = 0; r < 4 && sleeper.ProbeDueUs() == 0; ++r) {
    net.now += kUsPerSec;
    sleeper.OnTick(net.now);
    net.Pump();
  }
  ASSERT_NE(sleeper.ProbeDueUs(), 0) << "no Syn awaited";
  net.now += 10 * kUsPerSec;
  sleeper.OnProbeTimer(net.now);
  for (int i = 1; i <= 4; ++i) {
    EXPECT_EQ(StateAt(net, 5, "n" + std::to_string(i)), MemberState::kAlive) << "n" << i;
  }
  EXPECT_EQ(sleeper.probe_stats().late_ticks, 1u);
  EXPECT_EQ(sleeper.probe_stats().confirmed_dead, 0u);
}

}  // namespace
}  // namespace scuttle

namespace scuttle {
namespace {

// The confirmation widens with the loss a node measures on its own handshakes: a live
// suspect's false-verdict chance per suspicion stays below kFalseVerdictTarget.
TEST(DirectEvidenceTest, IndirectRoundsFollowTheMeasuredLoss) {
  EXPECT_EQ(IndirectRounds(2, 3, 0.0), 2);
  const double five = 1 - 0.95 * 0.95, twenty = 1 - 0.8 * 0.8;
  EXPECT_EQ(IndirectRounds(2, 3, five), 2);
  EXPECT_EQ(IndirectRounds(1, 3, five), 2) << "one round is not enough at 5% loss";
  EXPECT_EQ(IndirectRounds(2, 3, twenty), 6);
  EXPECT_EQ(IndirectRounds(2, 3, 0.9), kMaxIndirectRounds);
  EXPECT_EQ(IndirectRounds(4, 3, 0.0), 4) << "the configured rounds are a floor";
  for (double f : {five, twenty}) {
    const double relay_fail = 1 - (1 - f) * (1 - f);
    const double q = f * relay_fail * relay_fail * relay_fail;
    EXPECT_LT(std::pow(q, IndirectRounds(2, 3, f)), kFalseVerdictTarget);
    EXPECT_GT(std::pow(q, IndirectRounds(2, 3, f) - 1), kFalseVerdictTarget) << "no more than needed";
  }
}

}  // namespace
}  // namespace scuttle

namespace scuttle {
namespace {

// A dead verdict still hot when its node restarts is about the old incarnation: pushed
// under the new one's reference it would declare the fresh node dead (its young heartbeat
// is below the old tag). Seen in the simulator as ~1,000 false deaths per restart.
TEST(DirectEvidenceTest, AHotVerdictDoesNotOutliveItsIncarnation) {
  constexpr int kNodes = 10;
  Net net;
  BuildQuiet(net, kNodes, /*bounded=*/false);
  const std::string name = "n" + std::to_string(kNodes);
  const uint16_t port = Ep(kNodes).port;
  net.crashed.insert(port);
  ASSERT_GE(RunTimed(net, 30 * kUsPerSec, [&] {
              for (int i = 1; i < kNodes; ++i) {
                if (StateAt(net, i, name) != MemberState::kDead) return false;
              }
              return true;
            }),
            0);
  uint64_t hot = 0;
  for (auto& [p, e] : net.engines) hot += e->probe_stats().verdict_pushes;
  ASSERT_GT(hot, 0u);
  // Restart at once, with a new generation, while the verdict is still being pushed.
  net.crashed.erase(port);
  net.engines.erase(port);
  net.sinks.erase(port);
  net.Add([&] {
    EngineConfig c = QuietConfig(kNodes, false);
    c.generation = 2;
    return c;
  }());
  int false_dead = 0;
  for (int r = 0; r < 15; ++r) {
    net.Round();
    for (int i = 1; i < kNodes; ++i) {
      const NodeState* n = net.engines.at(Ep(i).port)->FindNode(name);
      false_dead += n != nullptr && n->generation() == 2 && n->liveness.state == MemberState::kDead;
    }
  }
  EXPECT_EQ(false_dead, 0);
}

}  // namespace
}  // namespace scuttle
