// Verdict rumors (engine/verdict_rumor.h): feedback + counter, the cycle cap, the bound.
#include "engine/verdict_rumor.h"

#include <string>

#include "gtest/gtest.h"
#include "wire/packet.h"

namespace scuttle {
namespace {

TEST(VerdictRumors, CounterCountsCyclesInARowOfKnewAndNewsResetsIt) {
  VerdictRumors r;
  const uint32_t seq = r.Add("x", 1, wire::kVerdictDead, 7).seq;
  ASSERT_NE(seq, 0u);
  // k = 2: knew, news (reset), knew, silence (no information), knew -> lost interest.
  EXPECT_TRUE(r.OnFeedback(seq, "x", false));
  r.EndCycle(2);
  EXPECT_EQ(r.hot()[0].counter, 1u);
  EXPECT_TRUE(r.OnFeedback(seq, "x", false));
  EXPECT_TRUE(r.OnFeedback(seq, "x", true));  // one "news" makes the whole cycle news
  EXPECT_TRUE(r.OnFeedback(seq, "x", false));
  r.EndCycle(2);
  EXPECT_EQ(r.hot()[0].counter, 0u);
  r.OnFeedback(seq, "x", false);
  r.EndCycle(2);
  r.EndCycle(2);  // nobody answered
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r.hot()[0].counter, 1u);
  r.OnFeedback(seq, "x", false);
  r.EndCycle(2);
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.stats().lost_interest, 1u);
  EXPECT_FALSE(r.OnFeedback(seq, "x", false)) << "late feedback for a cold verdict";
  EXPECT_EQ(r.stats().stale_feedback, 1u);
}

TEST(VerdictRumors, CycleCapStopsAVerdictNobodyAnswers) {
  VerdictRumors r;
  r.Add("x", 1, wire::kVerdictDead, 7);
  int cycles = 0;
  while (!r.empty() && cycles < 1000) {
    r.EndCycle(3);
    if (!r.empty()) ++r.hot()[0].cycles;
    ++cycles;
  }
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(cycles, static_cast<int>(VerdictRumors::MaxCycles(3)) + 1);
  EXPECT_EQ(r.stats().capped, 1u);
}

TEST(VerdictRumors, NewerWordReplacesAndTheListIsBounded) {
  VerdictRumors r(4);
  const uint32_t dead = r.Add("x", 1, wire::kVerdictDead, 7).seq;
  const uint32_t alive = r.Add("x", 1, wire::kVerdictAlive, 9).seq;
  ASSERT_EQ(r.size(), 1u) << "the refutation replaces the death it answers";
  EXPECT_NE(dead, alive);
  EXPECT_FALSE(r.OnFeedback(dead, "x", true)) << "feedback on the replaced verdict";
  EXPECT_FALSE(r.OnFeedback(alive, "y", true)) << "seq and name must both match";
  for (int i = 0; i < 10; ++i) r.Add("n" + std::to_string(i), 1, wire::kVerdictDead, 1);
  EXPECT_EQ(r.size(), 4u);
  EXPECT_EQ(r.stats().dropped_full, 7u);
  EXPECT_EQ(r.hot().front().name, "n6") << "oldest dropped first";
}

}  // namespace
}  // namespace scuttle
