#include "engine/rumor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/rng.h"
#include "engine/test_util.h"

namespace scuttle {
namespace {

constexpr RumorId kA{1, 1};
constexpr RumorId kB{1, 2};
constexpr RumorId kC{2, 1};
constexpr RumorId kD{3, 7};

RumorOptions Opts(RumorRemoval removal, RumorDecay decay, uint32_t k,
                  RumorCounter counter = RumorCounter::kConsecutive) {
  RumorOptions o;
  o.removal = removal;
  o.decay = decay;
  o.k = k;
  o.counter = counter;
  return o;
}

std::vector<RumorId> Push(const RumorMonger& m, size_t max = 100) {
  std::vector<RumorId> out;
  m.PushRumors(max, &out);
  return out;
}

std::vector<RumorId> Pull(const RumorMonger& m, size_t max = 100) {
  std::vector<RumorId> out;
  m.PullRumors(max, &out);
  return out;
}

TEST(RumorMongerTest, LocalUpdateBecomesHotOnce) {
  RumorMonger m(RumorOptions{});
  EXPECT_FALSE(m.IsHot(kA));
  EXPECT_TRUE(m.OnLocalUpdate(kA));
  EXPECT_FALSE(m.OnRemoteUpdate(kA));  // already hot: no reset of its counter
  EXPECT_TRUE(m.IsHot(kA));
  EXPECT_EQ(m.hot_count(), 1u);
  EXPECT_EQ(m.stats().added, 1u);
}

TEST(RumorMongerTest, VariantDecidesWhichDirectionCarriesRumors) {
  RumorOptions o;
  o.variant = RumorVariant::kPush;
  RumorMonger push(o);
  o.variant = RumorVariant::kPull;
  RumorMonger pull(o);
  o.variant = RumorVariant::kPushPull;
  RumorMonger both(o);
  for (RumorMonger* m : {&push, &pull, &both}) m->OnLocalUpdate(kA);
  EXPECT_EQ(Push(push), std::vector<RumorId>{kA});
  EXPECT_TRUE(Pull(push).empty());
  EXPECT_TRUE(Push(pull).empty());
  EXPECT_EQ(Pull(pull), std::vector<RumorId>{kA});
  EXPECT_EQ(Push(both), std::vector<RumorId>{kA});
  EXPECT_EQ(Pull(both), std::vector<RumorId>{kA});
}

TEST(RumorMongerTest, FeedbackCounterNeedsKUnnecessaryContactsInARow) {
  Rng rng(1);
  RumorMonger m(Opts(RumorRemoval::kFeedback, RumorDecay::kCounter, 3));
  m.OnLocalUpdate(kA);
  EXPECT_FALSE(m.OnContactResult(kA, /*peer_already_knew=*/true, rng));
  EXPECT_FALSE(m.OnContactResult(kA, true, rng));
  EXPECT_FALSE(m.OnContactResult(kA, false, rng));  // spread it: count restarts
  EXPECT_FALSE(m.OnContactResult(kA, true, rng));
  EXPECT_FALSE(m.OnContactResult(kA, true, rng));
  EXPECT_TRUE(m.IsHot(kA));
  EXPECT_TRUE(m.OnContactResult(kA, true, rng));  // third in a row
  EXPECT_FALSE(m.IsHot(kA));
  EXPECT_EQ(m.stats().contacts, 6u);
  EXPECT_EQ(m.stats().unnecessary, 5u);
  EXPECT_EQ(m.stats().lost_interest, 1u);
}

// Demers' cycle: all of a site's contacts in one cycle are one feedback event.
TEST(RumorMongerTest, ContactsOfOneCycleAreJudgedTogether) {
  Rng rng(1);
  RumorMonger m(Opts(RumorRemoval::kFeedback, RumorDecay::kCounter, 2));
  m.OnLocalUpdate(kA);
  m.OnLocalUpdate(kB);
  // Three peers already knew kA: one unnecessary contact, not three (k = 2 survives).
  for (int i = 0; i < 3; ++i) m.NoteContact(kA, /*peer_already_knew=*/true);
  // kB: one peer knew, one learned it: a necessary contact, whatever the order.
  m.NoteContact(kB, true);
  m.NoteContact(kB, false);
  m.NoteContact(kB, true);
  EXPECT_EQ(m.pending_results(), 2u);
  EXPECT_TRUE(m.IsHot(kA)) << "nothing is judged before the cycle ends";
  m.EndCycle(rng);
  EXPECT_EQ(m.pending_results(), 0u);
  EXPECT_TRUE(m.IsHot(kA));
  EXPECT_EQ(m.stats().contacts, 2u);
  EXPECT_EQ(m.stats().unnecessary, 1u);
  m.NoteContact(kA, true);
  m.NoteContact(kB, true);
  m.EndCycle(rng);
  EXPECT_FALSE(m.IsHot(kA)) << "second unnecessary cycle in a row";
  EXPECT_TRUE(m.IsHot(kB)) << "its counter was reset by the necessary cycle";
  m.EndCycle(rng);  // a cycle without contacts changes nothing
  EXPECT_TRUE(m.IsHot(kB));
  m.NoteContact(kA, true);  // cold: a stale result, not pending
  EXPECT_EQ(m.pending_results(), 0u);
  EXPECT_EQ(m.stats().stale_results, 1u);
  m.NoteContact(kB, true);
  m.EndCycle(rng);
  EXPECT_FALSE(m.IsHot(kB));
  EXPECT_EQ(m.stats().lost_interest, 2u);
}

// A rumor evicted (list full) after its contact was noted, then re-added in the same
// cycle, is judged at most once, on its new slot's own results.
TEST(RumorMongerTest, EvictedThenReAddedRumorIsNotJudgedOnOldResults) {
  Rng rng(1);
  RumorOptions o = Opts(RumorRemoval::kFeedback, RumorDecay::kCounter, 1);
  o.max_hot_rumors = 1;
  RumorMonger m(o);
  m.OnLocalUpdate(kA);
  m.NoteContact(kA, true);
  m.OnLocalUpdate(kB);  // evicts kA
  m.OnLocalUpdate(kA);  // evicts kB; kA is hot again with no result this cycle
  m.EndCycle(rng);
  EXPECT_TRUE(m.IsHot(kA));
  EXPECT_EQ(m.stats().contacts, 0u);
}

TEST(RumorMongerTest, FeedbackCumulativeCounterNeverResets) {
  Rng rng(1);
  RumorMonger m(Opts(RumorRemoval::kFeedback, RumorDecay::kCounter, 3, RumorCounter::kCumulative));
  m.OnLocalUpdate(kA);
  EXPECT_FALSE(m.OnContactResult(kA, true, rng));
  EXPECT_FALSE(m.OnContactResult(kA, false, rng));
  EXPECT_FALSE(m.OnContactResult(kA, true, rng));
  EXPECT_TRUE(m.OnContactResult(kA, true, rng));  // third unnecessary overall
}

TEST(RumorMongerTest, FeedbackNeverLosesInterestOnUsefulContacts) {
  Rng rng(7);
  for (RumorDecay decay : {RumorDecay::kCounter, RumorDecay::kCoin}) {
    RumorMonger m(Opts(RumorRemoval::kFeedback, decay, 1));
    m.OnLocalUpdate(kA);
    for (int i = 0; i < 1000; ++i) ASSERT_FALSE(m.OnContactResult(kA, false, rng));
    EXPECT_TRUE(m.IsHot(kA)) << ToString(decay);
    // k = 1: the first unnecessary contact ends it, counter or coin.
    EXPECT_TRUE(m.OnContactResult(kA, true, rng)) << ToString(decay);
  }
}

TEST(RumorMongerTest, BlindCounterCountsEveryContact) {
  Rng rng(1);
  RumorMonger m(Opts(RumorRemoval::kBlind, RumorDecay::kCounter, 3));
  m.OnLocalUpdate(kA);
  EXPECT_FALSE(m.OnContactResult(kA, false, rng));
  EXPECT_FALSE(m.OnContactResult(kA, false, rng));
  EXPECT_TRUE(m.OnContactResult(kA, false, rng));  // feedback is ignored, no reset
}

TEST(RumorMongerTest, SetKTakesEffectOnHotRumors) {
  Rng rng(1);
  RumorMonger m(Opts(RumorRemoval::kFeedback, RumorDecay::kCounter, 5));
  m.OnLocalUpdate(kA);
  m.OnLocalUpdate(kB);
  EXPECT_FALSE(m.OnContactResult(kA, true, rng));
  EXPECT_FALSE(m.OnContactResult(kA, true, rng));
  // Lowering k below a counter: the next counted contact ends the rumor.
  m.set_k(2);
  EXPECT_EQ(m.options().k, 2u);
  EXPECT_TRUE(m.OnContactResult(kA, true, rng));
  // Raising k: kB now needs four unnecessary contacts in a row, not two.
  m.set_k(4);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(m.OnContactResult(kB, true, rng)) << i;
  EXPECT_TRUE(m.OnContactResult(kB, true, rng));
  // Coin decay reads k at each contact: k = 1 loses interest with certainty.
  RumorMonger coin(Opts(RumorRemoval::kBlind, RumorDecay::kCoin, RumorOptions::kMaxK));
  coin.OnLocalUpdate(kC);
  coin.set_k(1);
  EXPECT_TRUE(coin.OnContactResult(kC, false, rng));
}

// Fraction of rumors that lose interest after one contact with the given answer.
double LossRate(RumorRemoval removal, uint32_t k, bool peer_already_knew, int rumors) {
  Rng rng(12345);
  RumorMonger m(Opts(removal, RumorDecay::kCoin, k));
  int lost = 0;
  for (int i = 0; i < rumors; ++i) {
    const RumorId id{0, static_cast<uint64_t>(i)};
    m.OnLocalUpdate(id);
    if (m.OnContactResult(id, peer_already_knew, rng)) ++lost;
    m.Clear();
  }
  return static_cast<double>(lost) / rumors;
}

TEST(RumorMongerTest, CoinLosesInterestWithProbabilityOneOverK) {
  constexpr int kRumors = 40000;
  for (uint32_t k : {2u, 4u, 5u}) {
    const double p = 1.0 / k;
    // 4 standard errors of a binomial proportion: a fixed seed, so this is deterministic;
    // the margin only guards against a wrong probability, not against flakiness.
    const double tol = 4 * std::sqrt(p * (1 - p) / kRumors);
    EXPECT_NEAR(LossRate(RumorRemoval::kFeedback, k, true, kRumors), p, tol) << k;
    EXPECT_NEAR(LossRate(RumorRemoval::kBlind, k, true, kRumors), p, tol) << k;
    // Blind flips the coin after useful contacts too; feedback does not.
    EXPECT_NEAR(LossRate(RumorRemoval::kBlind, k, false, kRumors), p, tol) << k;
    EXPECT_EQ(LossRate(RumorRemoval::kFeedback, k, false, kRumors), 0.0) << k;
  }
  EXPECT_EQ(LossRate(RumorRemoval::kBlind, 1, false, 100), 1.0);
}

TEST(RumorMongerTest, CounterIsDeterministicCoinIsNot) {
  // Counter: every rumor lives exactly k unnecessary contacts. Coin: geometric, mean k.
  constexpr uint32_t kK = 3;
  Rng rng(99);
  RumorMonger counter(Opts(RumorRemoval::kFeedback, RumorDecay::kCounter, kK));
  RumorMonger coin(Opts(RumorRemoval::kFeedback, RumorDecay::kCoin, kK));
  uint64_t coin_total = 0, coin_min = UINT64_MAX, coin_max = 0;
  constexpr int kRumors = 20000;
  for (int i = 0; i < kRumors; ++i) {
    const RumorId id{0, static_cast<uint64_t>(i)};
    counter.OnLocalUpdate(id);
    coin.OnLocalUpdate(id);
    uint32_t counter_contacts = 0;
    while (!counter.OnContactResult(id, true, rng)) ++counter_contacts;
    ASSERT_EQ(counter_contacts + 1, kK);
    uint64_t coin_contacts = 1;
    while (!coin.OnContactResult(id, true, rng)) ++coin_contacts;
    coin_total += coin_contacts;
    coin_min = std::min(coin_min, coin_contacts);
    coin_max = std::max(coin_max, coin_contacts);
  }
  const double mean = static_cast<double>(coin_total) / kRumors;
  // Geometric(1/3): mean 3, sd sqrt(6); 4 standard errors.
  EXPECT_NEAR(mean, 3.0, 4 * std::sqrt(6.0 / kRumors));
  EXPECT_EQ(coin_min, 1u);
  EXPECT_GT(coin_max, 10u);
}

TEST(RumorMongerTest, FullListDropsOldestAndCounts) {
  RumorOptions o;
  o.max_hot_rumors = 3;
  RumorMonger m(o);
  m.OnLocalUpdate(kA);
  m.OnRemoteUpdate(kB);
  m.OnLocalUpdate(kC);
  EXPECT_EQ(m.stats().dropped_full, 0u);
  m.OnRemoteUpdate(kD);
  EXPECT_EQ(m.hot_count(), 3u);
  EXPECT_EQ(m.stats().dropped_full, 1u);
  EXPECT_FALSE(m.IsHot(kA));
  EXPECT_EQ(Push(m), (std::vector<RumorId>{kB, kC, kD}));  // oldest first
  EXPECT_EQ(Push(m, 2), (std::vector<RumorId>{kB, kC}));   // caller's packet budget
  EXPECT_TRUE(Push(m, 0).empty());
}

TEST(RumorMongerTest, ResultForColdRumorIsCountedAndIgnored) {
  Rng rng(1);
  RumorOptions o;
  o.max_hot_rumors = 1;
  RumorMonger m(o);
  m.OnLocalUpdate(kA);
  m.OnLocalUpdate(kB);  // evicts kA
  EXPECT_FALSE(m.OnContactResult(kA, true, rng));
  EXPECT_EQ(m.stats().stale_results, 1u);
  EXPECT_EQ(m.stats().contacts, 0u);
  EXPECT_TRUE(m.IsHot(kB));
}

TEST(RumorMongerTest, LosingInterestKeepsOthersInOrder) {
  Rng rng(1);
  RumorMonger m(Opts(RumorRemoval::kFeedback, RumorDecay::kCounter, 1));
  m.OnLocalUpdate(kA);
  m.OnLocalUpdate(kB);
  m.OnLocalUpdate(kC);
  EXPECT_TRUE(m.OnContactResult(kB, true, rng));
  EXPECT_EQ(Push(m), (std::vector<RumorId>{kA, kC}));
  m.Clear();
  EXPECT_TRUE(m.empty());
  EXPECT_TRUE(m.OnLocalUpdate(kB));  // the caller decides freshness
}

TEST(RumorMongerTest, SameSeedSameDecisions) {
  auto run = [](uint64_t seed) {
    Rng rng(seed);
    RumorMonger m(Opts(RumorRemoval::kBlind, RumorDecay::kCoin, 3));
    std::vector<bool> lost;
    for (uint64_t i = 0; i < 200; ++i) {
      m.OnLocalUpdate({0, i});
      lost.push_back(m.OnContactResult({0, i}, i % 2 == 0, rng));
    }
    return lost;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

// Randomized model test: the slot vector (dead slots, head_, compaction) against a plain
// list in insertion order with the same bound.
TEST(RumorMongerTest, MatchesInsertionOrderedListModel) {
  Rng rng(2024);
  RumorOptions o = Opts(RumorRemoval::kFeedback, RumorDecay::kCounter, 1);
  o.max_hot_rumors = 50;
  RumorMonger m(o);
  std::vector<RumorId> model;
  uint64_t next = 0, dropped = 0;
  for (int step = 0; step < 20000; ++step) {
    const uint64_t op = rng.Below(10);
    if (op < 5 || model.empty()) {  // a fresh rumor
      const RumorId id{rng.Below(3), next++};
      ASSERT_TRUE(m.OnLocalUpdate(id));
      if (model.size() == o.max_hot_rumors) {
        model.erase(model.begin());
        ++dropped;
      }
      model.push_back(id);
    } else if (op < 9) {  // an unnecessary contact: k = 1 makes it cold
      const size_t i = rng.Below(model.size());
      ASSERT_TRUE(m.OnContactResult(model[i], true, rng));
      model.erase(model.begin() + static_cast<std::ptrdiff_t>(i));
    } else {  // a useful contact changes nothing
      const size_t i = rng.Below(model.size());
      ASSERT_FALSE(m.OnContactResult(model[i], false, rng));
    }
    ASSERT_EQ(Push(m, 1000), model) << "step " << step;
    ASSERT_EQ(m.hot_count(), model.size());
  }
  EXPECT_EQ(m.stats().dropped_full, dropped);
  EXPECT_GT(dropped, 0u);
}

TEST(RumorOptionsTest, Validation) {
  RumorOptions o;
  EXPECT_TRUE(ValidateRumorOptions(o).ok());
  o.k = 0;
  EXPECT_FALSE(ValidateRumorOptions(o).ok());
  o.k = RumorOptions::kMaxK + 1;
  EXPECT_FALSE(ValidateRumorOptions(o).ok());
  o.k = 2;
  o.max_hot_rumors = 0;
  EXPECT_FALSE(ValidateRumorOptions(o).ok());
}

// Engine::SetRumorK changes the removal of rumors already hot: two engines, blind counter
// removal (every rumor send counts), k = 5 lowered to 2 after two sends.
class EngineRumorKTest : public ::testing::Test {
 protected:
  EngineRumorKTest()
      : a_(Make("a", 1, 2), &sink_a_, nullptr), b_(Make("b", 2, 1), &sink_b_, nullptr) {}

  static EngineConfig Make(const std::string& name, int i, int seed) {
    EngineConfig c = testing::Config(name, i);
    c.seeds = {testing::Ep(seed)};
    c.epidemic.rumor = true;
    c.epidemic.rumor_options.removal = RumorRemoval::kBlind;
    c.epidemic.rumor_options.decay = RumorDecay::kCounter;
    c.epidemic.rumor_options.k = 5;
    return c;
  }
  // Delivers every queued datagram (and the replies) between the two engines.
  void Pump() {
    for (int hops = 0; hops < 16 && !(sink_a_.out.empty() && sink_b_.out.empty()); ++hops) {
      for (const testing::Datagram& d : sink_a_.Take()) b_.OnPacket(now_, testing::Ep(1), d.bytes);
      for (const testing::Datagram& d : sink_b_.Take()) a_.OnPacket(now_, testing::Ep(2), d.bytes);
    }
  }
  void Round() {
    now_ += kUsPerSec;
    a_.OnTick(now_);
    Pump();
  }

  TimeUs now_ = kUsPerSec;
  testing::VectorSink sink_a_, sink_b_;
  Engine a_, b_;
};

TEST_F(EngineRumorKTest, SetRumorKChangesRemovalOfHotRumors) {
  Round();  // a meets b through its seed
  ASSERT_NE(a_.FindNode("b"), nullptr);
  ASSERT_TRUE(a_.Set("key", "value", now_).ok());
  ASSERT_EQ(a_.epidemic_hot(), 1u);
  const uint64_t contacts = a_.stats().rumor_contacts;
  Round();
  Round();
  EXPECT_EQ(a_.stats().rumor_contacts, contacts + 2);
  EXPECT_EQ(a_.epidemic_hot(), 1u) << "k = 5: two sends are not enough";
  a_.SetRumorK(2);
  EXPECT_EQ(a_.config().epidemic.rumor_options.k, 2u);
  EXPECT_EQ(a_.rumor_stats().lost_interest, 0u);
  Round();  // the second send is counted now: at the new k
  EXPECT_EQ(a_.epidemic_hot(), 0u);
  EXPECT_EQ(a_.rumor_stats().lost_interest, 1u);
  // A fresh write under k = 2 goes cold after exactly two sends: each round's send is
  // judged when the next round starts (Demers' cycle), so at the third tick.
  ASSERT_TRUE(a_.Set("key", "again", now_).ok());
  const uint64_t sends = a_.stats().rumor_contacts;
  Round();
  Round();
  EXPECT_EQ(a_.stats().rumor_contacts, sends + 2);
  EXPECT_EQ(a_.epidemic_hot(), 1u) << "the second send is judged at the next tick";
  Round();
  EXPECT_EQ(a_.epidemic_hot(), 0u);
  EXPECT_EQ(a_.stats().rumor_contacts, sends + 2) << "no third send";
  EXPECT_EQ(a_.rumor_stats().lost_interest, 2u);
}

TEST(RumorOptionsTest, ParseRoundTrips) {
  for (RumorVariant v : {RumorVariant::kPush, RumorVariant::kPull, RumorVariant::kPushPull}) {
    EXPECT_EQ(*ParseRumorVariant(ToString(v)), v);
  }
  for (RumorRemoval r : {RumorRemoval::kFeedback, RumorRemoval::kBlind}) {
    EXPECT_EQ(*ParseRumorRemoval(ToString(r)), r);
  }
  for (RumorDecay d : {RumorDecay::kCounter, RumorDecay::kCoin}) {
    EXPECT_EQ(*ParseRumorDecay(ToString(d)), d);
  }
  for (RumorCounter c : {RumorCounter::kConsecutive, RumorCounter::kCumulative}) {
    EXPECT_EQ(*ParseRumorCounter(ToString(c)), c);
  }
  const absl::StatusOr<RumorVariant> bad = ParseRumorVariant("pushpull");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("push|pull|push-pull"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace scuttle
