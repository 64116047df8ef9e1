// Reproduces Demers et al. 1987 (seed 001) with the paper model in sim/demers.h, whose
// per-site rumor state is the engine's RumorMonger.
//
// Tolerance. The paper gives 1-2 significant digits from an unstated (probably small)
// number of runs, so the paper value itself is uncertain by several percent; our means
// are uncertain by their standard error SE = sd / sqrt(trials). A cell passes when
//     |ours - paper| <= allowance + 3 SE(ours)
// with allowance 15% of the paper value for residue (two digits, and residue is a small
// count of sites: 0.0012 is 1.2 sites of 1000), 10% for traffic, 1.5 cycles for t_last.
// With 2000 trials SE is <= 3% of residue and <= 1% of traffic for every k; the 3 SE term
// only matters for the k = 1 blind-coin chain, whose length has sd ~ 20 cycles.
// Everything is seeded: the tests are deterministic; the margins are there so that a
// different (equally valid) seed would pass too, not to absorb flakiness.
#include "sim/demers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/reflection.h"
#include "sim/flags.h"
#include "tests/sim/flag_args.h"

namespace scuttle::sim {
namespace {

constexpr uint64_t kSeed = 20240601;

// Debug and sanitizer builds run the same checks ~80x slower; they are there for memory
// safety and UB, so they run 1/20 of the trials. The 3 SE term in every tolerance widens
// to match, so the statistical checks stay meaningful (and deterministic per seed).
#ifdef NDEBUG
constexpr uint32_t kScale = 1;
#else
constexpr uint32_t kScale = 20;
#endif
constexpr uint32_t Scaled(uint32_t trials) { return trials / kScale; }
constexpr uint32_t kTrials = Scaled(2000);

DemersParams TableParams(RumorRemoval removal, RumorDecay decay, uint32_t k) {
  DemersParams p;
  p.n = 1000;
  p.rumor.variant = RumorVariant::kPush;
  p.rumor.removal = removal;
  p.rumor.decay = decay;
  p.rumor.k = k;
  p.rumor.max_hot_rumors = 1;
  p.trials = kTrials;
  p.seed = kSeed;
  return p;
}

DemersResult RunOk(const DemersParams& p) {
  absl::StatusOr<DemersResult> r = RunDemers(p);
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->truncated_trials, 0u);
  return *r;
}

void ExpectMatchesPaper(const DemersResult& r, const PaperRow& paper) {
  const std::string where = "k=" + std::to_string(paper.k) + " seed=" + std::to_string(kSeed);
  EXPECT_NEAR(r.residue.mean, paper.residue, 0.15 * paper.residue + 3 * r.residue.standard_error())
      << "residue " << where;
  EXPECT_NEAR(r.traffic.mean, paper.traffic, 0.10 * paper.traffic + 3 * r.traffic.standard_error())
      << "traffic " << where;
  EXPECT_NEAR(r.t_last.mean, paper.t_last, 1.5 + 3 * r.t_last.standard_error())
      << "t_last " << where;
}

TEST(DemersPaperTest, Table1PushFeedbackCounter) {
  for (const PaperRow& paper : PaperTable1()) {
    const DemersParams p = TableParams(RumorRemoval::kFeedback, RumorDecay::kCounter, paper.k);
    ASSERT_EQ(PaperRowFor(p), &paper);
    const DemersResult r = RunOk(p);
    ExpectMatchesPaper(r, paper);
    // The paper's t_ave (11.0..12.8, rising with k) does not follow from its model; the
    // model gives ~10 cycles for every k (docs/demers.md). Pin what the model gives.
    EXPECT_NEAR(r.t_ave.mean, 10.0, 0.4) << "t_ave k=" << paper.k;
  }
}

TEST(DemersPaperTest, Table2PushBlindCoin) {
  for (const PaperRow& paper : PaperTable2()) {
    const DemersParams p = TableParams(RumorRemoval::kBlind, RumorDecay::kCoin, paper.k);
    ASSERT_EQ(PaperRowFor(p), &paper);
    ExpectMatchesPaper(RunOk(p), paper);
  }
}

// Blind coin with k = 1 is a single chain: every site pushes once and stops, so the run
// ends at the first push that reaches a site that already knows — a birthday problem.
// With N = n - 1 possible partners, E[t_last] = Q(N) = sum_j prod_{i<=j} (1 - i/N)
// (Ramanujan's Q), E[sites reached] = 1 + Q(N), and traffic = sites reached / n exactly.
TEST(DemersPaperTest, BlindCoinK1IsTheBirthdayChain) {
  const DemersParams p = TableParams(RumorRemoval::kBlind, RumorDecay::kCoin, 1);
  const double big_n = p.n - 1;
  double q = 0, term = 1;
  for (int j = 0; term > 1e-18; ++j) {
    q += term;
    term *= 1 - (j + 1) / big_n;
  }
  EXPECT_NEAR(q, 39.28, 0.01);
  const DemersResult r = RunOk(p);
  EXPECT_NEAR(r.t_last.mean, q, 3 * r.t_last.standard_error());
  EXPECT_NEAR(r.residue.mean, 1 - (1 + q) / p.n, 3 * r.residue.standard_error());
  EXPECT_NEAR(r.traffic.mean + r.residue.mean, 1.0, 1e-12);
}

// s = e^{-(k+1)(1-s)} comes from the paper's differential equations for feedback + coin,
// in which contacts happen one at a time: the model's sequential delivery.
TEST(DemersPaperTest, ResidueEquationMatchesSequentialFeedbackCoin) {
  const double expected[] = {0.2032, 0.0595, 0.0198, 0.0070, 0.0025};
  for (uint32_t k = 1; k <= 5; ++k) {
    const double s = ResidueEquation(k);
    EXPECT_NEAR(s, std::exp(-(k + 1.0) * (1 - s)), 1e-12);
    EXPECT_NEAR(s, expected[k - 1], 0.00006);
    DemersParams p = TableParams(RumorRemoval::kFeedback, RumorDecay::kCoin, k);
    p.delivery = Delivery::kSequential;
    p.trials = Scaled(1000);
    const DemersResult r = RunOk(p);
    EXPECT_NEAR(r.residue.mean, s, 0.05 * s + 3 * r.residue.standard_error()) << "k=" << k;
  }
}

// Sum over k of the relative errors of residue and traffic against Table 1.
double Table1Misfit(RumorCounter counter, Delivery delivery) {
  double misfit = 0;
  for (const PaperRow& paper : PaperTable1()) {
    DemersParams p = TableParams(RumorRemoval::kFeedback, RumorDecay::kCounter, paper.k);
    p.rumor.counter = counter;
    p.delivery = delivery;
    p.trials = 500;
    const DemersResult r = RunOk(p);
    misfit +=
        std::abs(r.residue.mean / paper.residue - 1) + std::abs(r.traffic.mean / paper.traffic - 1);
  }
  return misfit;
}

// How the counting rules were chosen (docs/demers.md): of the four readings of "what a
// counter counts" x "when is a contact unnecessary", the chosen one fits Table 1 far
// better than any other (misfit 0.1-0.25 vs >= 1.5 at 500 trials, over several seeds).
TEST(DemersPaperTest, ChosenReadingFitsTable1BestOfFour) {
  if (kScale != 1) {
    // 20 runs of 100 trials: half of the sanitizer run for a purely statistical check.
    // Sanitizers still cover both alternatives: sequential delivery in
    // ResidueEquationMatchesSequentialFeedbackCoin, the cumulative counter in rumor_test.
    GTEST_SKIP() << "statistical; runs in optimized (NDEBUG) builds";
  }
  const double chosen = Table1Misfit(RumorCounter::kConsecutive, Delivery::kSnapshot);
  EXPECT_LT(chosen, 0.5);
  for (RumorCounter counter : {RumorCounter::kConsecutive, RumorCounter::kCumulative}) {
    for (Delivery delivery : {Delivery::kSnapshot, Delivery::kSequential}) {
      if (counter == RumorCounter::kConsecutive && delivery == Delivery::kSnapshot) continue;
      EXPECT_LT(3 * chosen, Table1Misfit(counter, delivery))
          << ToString(counter) << " " << ToString(delivery);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Table 3: pull, feedback, counter (n = 1000, k = 1..3).
//
// Conventions (docs/demers.md): every site pulls from one random other site per cycle; a
// responder answers each puller with its hot rumor, and all of a responder's contacts in
// one cycle are judged together (Judge::kCycle): the consecutive counter moves by one if
// every puller already knew and resets if any learned from it. Traffic counts every reply
// that carries the rumor, including those to pullers that already knew.
//
// Tolerances: those of Tables 1-2 (15% + 3 SE residue, 10% + 3 SE traffic, 1.5 cycles +
// 3 SE t_last), plus t_ave, which this table — unlike Tables 1-2 — reproduces: 0.3 cycle
// + 3 SE. The per-trial sd of t_ave is ~1.25 cycles, so a paper figure from ~100 runs is
// itself uncertain by ~0.13 cycle; 0.3 is ~2.4 of those. k = 3's residue, 4.0e-6, is 0.004
// sites per trial: 8000 trials (~3 s) give ~30 missed sites, enough for the same two-sided
// check (SE ~ 20% of it). Where the paper's rate predicts fewer than 20 missed sites over
// the run (the 1/20-trial sanitizer builds) only a Poisson upper bound is asserted.
// Over seeds 2-4 at these trial counts the worst cell uses 53% of its tolerance (t_ave,
// k = 1: ours 10.12-10.17 vs 9.97), k = 3 residue at most 41%.
constexpr uint32_t kTable3K3Trials = Scaled(8000);

DemersParams Table3Params(uint32_t k) {
  DemersParams p = TableParams(RumorRemoval::kFeedback, RumorDecay::kCounter, k);
  p.rumor.variant = RumorVariant::kPull;
  p.trials = k == 3 ? kTable3K3Trials : kTrials;
  return p;
}

TEST(DemersPaperTest, Table3PullFeedbackCounter) {
  for (const PaperRow& paper : PaperTable3()) {
    const DemersParams p = Table3Params(paper.k);
    ASSERT_EQ(PaperRowFor(p), &paper);
    const DemersResult r = RunOk(p);
    const std::string where = "k=" + std::to_string(paper.k) + " seed=" + std::to_string(kSeed);
    const double site_trials = static_cast<double>(p.n) * p.trials;
    const double paper_missed = paper.residue * site_trials;
    if (paper_missed >= 20) {
      EXPECT_NEAR(r.residue.mean, paper.residue,
                  0.15 * paper.residue + 3 * r.residue.standard_error())
          << "residue " << where;
    } else {
      EXPECT_LE(r.residue.mean * site_trials, paper_missed + 3 * std::sqrt(paper_missed) + 3)
          << "residue " << where;
    }
    EXPECT_NEAR(r.traffic.mean, paper.traffic, 0.10 * paper.traffic + 3 * r.traffic.standard_error())
        << "traffic " << where;
    EXPECT_NEAR(r.t_last.mean, paper.t_last, 1.5 + 3 * r.t_last.standard_error())
        << "t_last " << where;
    EXPECT_NEAR(r.t_ave.mean, paper.t_ave, 0.3 + 3 * r.t_ave.standard_error())
        << "t_ave " << where;
  }
}

// The convention matters: judging a responder's pullers one by one (each unnecessary
// reply counts) makes it lose interest too early — twice Table 3's residue at k = 1 and
// 10x at k = 2, with less traffic. This is the reading the model used before.
TEST(DemersPaperTest, Table3NeedsContactsJudgedPerCycle) {
  for (uint32_t k : {1u, 2u}) {
    DemersParams p = Table3Params(k);
    p.judge = Judge::kContact;
    EXPECT_EQ(PaperRowFor(p), nullptr);
    const DemersResult r = RunOk(p);
    const PaperRow& paper = PaperTable3()[k - 1];
    EXPECT_GT(r.residue.mean, 1.8 * paper.residue) << "k=" << k;
    EXPECT_LT(r.traffic.mean, 0.9 * paper.traffic) << "k=" << k;
  }
}

// The paper compares schemes by residue at a given traffic: push follows s = e^{-m} (Table 1
// does), pull does "significantly better" (Table 3). Push-pull rumor mongering must land
// between the two: below e^{-m} and above the pull curve (Table 3, log-linear in m between
// rows) at its own traffic m. Measured (seed 1, 20000 trials): k = 1 m = 3.68 s = 0.0126
// (push 0.025, pull 0.0036); k = 2 m = 5.94 s = 2.0e-4 (push 2.6e-3, pull 6.6e-6). Judged
// per contact instead, push-pull loses interest 4x (k = 1) to 30x (k = 2) too early.
double PaperPullResidueAt(double m) {
  const auto t3 = PaperTable3();
  for (size_t i = 0; i + 1 < t3.size(); ++i) {
    if (m >= t3[i].traffic && m <= t3[i + 1].traffic) {
      const double f = (m - t3[i].traffic) / (t3[i + 1].traffic - t3[i].traffic);
      return std::exp((1 - f) * std::log(t3[i].residue) + f * std::log(t3[i + 1].residue));
    }
  }
  ADD_FAILURE() << "traffic " << m << " outside Table 3";
  return 0;
}

TEST(DemersPaperTest, PushPullLandsBetweenPushAndPull) {
  for (uint32_t k : {1u, 2u}) {
    DemersParams p = Table3Params(k);
    p.rumor.variant = RumorVariant::kPushPull;
    const DemersResult r = RunOk(p);
    const double m = r.traffic.mean;
    EXPECT_LT(r.residue.mean, 0.75 * std::exp(-m)) << "k=" << k << " m=" << m;
    EXPECT_GT(r.residue.mean, 2 * PaperPullResidueAt(m)) << "k=" << k << " m=" << m;
    p.judge = Judge::kContact;
    const DemersResult per_contact = RunOk(p);
    EXPECT_GT(per_contact.residue.mean, (k == 1 ? 2.5 : 8.0) * r.residue.mean) << "k=" << k;
  }
}

TEST(DemersModelTest, PullAndPushPullSpreadFurtherThanPush) {
  DemersParams push = TableParams(RumorRemoval::kFeedback, RumorDecay::kCounter, 1);
  push.trials = Scaled(400);
  const double push_residue = RunOk(push).residue.mean;
  for (RumorVariant v : {RumorVariant::kPull, RumorVariant::kPushPull}) {
    DemersParams p = push;
    p.rumor.variant = v;
    const DemersResult r = RunOk(p);
    EXPECT_LT(r.residue.mean, 0.5 * push_residue) << ToString(v);
    EXPECT_GT(r.traffic.mean, 1.0) << ToString(v);
  }
}

TEST(DemersModelTest, SameSeedSameResultDifferentSeedDifferent) {
  DemersParams p = TableParams(RumorRemoval::kFeedback, RumorDecay::kCoin, 2);
  p.trials = Scaled(400);
  const DemersResult a = RunOk(p), b = RunOk(p);
  EXPECT_EQ(a.residue.mean, b.residue.mean);
  EXPECT_EQ(a.traffic.stddev, b.traffic.stddev);
  EXPECT_EQ(a.t_ave.mean, b.t_ave.mean);
  EXPECT_EQ(a.t_last.max, b.t_last.max);
  EXPECT_EQ(a.rumor_stats.unnecessary, b.rumor_stats.unnecessary);
  p.seed += 1;
  const DemersResult c = RunOk(p);
  EXPECT_NE(a.traffic.mean, c.traffic.mean);
}

TEST(DemersModelTest, RejectsBadParams) {
  DemersParams p;
  p.n = 1;
  EXPECT_FALSE(RunDemers(p).ok());
  p = DemersParams{};
  p.trials = 0;
  EXPECT_FALSE(RunDemers(p).ok());
  p = DemersParams{};
  p.rumor.k = 0;
  EXPECT_FALSE(RunDemers(p).ok());
}

TEST(DemersModelTest, MaxCyclesBoundsATrialAndIsCounted) {
  DemersParams p = TableParams(RumorRemoval::kFeedback, RumorDecay::kCounter, 5);
  p.trials = 3;
  p.max_cycles = 4;
  absl::StatusOr<DemersResult> r = RunDemers(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->truncated_trials, 3u);
  EXPECT_LE(r->t_last.max, 4);
}

// ---------------------------------------------------------------------------------------
// Anti-entropy laws (§1.3).

AntiEntropyResult RunAe(AntiEntropyMode mode) {
  AntiEntropyParams p;
  p.n = 1000;
  p.mode = mode;
  p.trials = 1000;
  p.seed = kSeed;
  absl::StatusOr<AntiEntropyResult> r = RunAntiEntropy(p);
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->truncated_trials, 0u);
  return *r;
}

// Each cycle with enough susceptible sites to measure (>= 5 of 1000 on average over 1000
// trials, so >= 5000 site-samples) follows the one-step law within 5%.
void ExpectFollowsLaw(const AntiEntropyResult& r) {
  int checked = 0;
  for (size_t i = 1; i < r.cycles.size(); ++i) {
    const AntiEntropyCycle& c = r.cycles[i];
    if (c.susceptible_sites < 5) continue;
    ++checked;
    EXPECT_NEAR(c.measured / c.predicted, 1.0, 0.05)
        << ToString(r.params.mode) << " cycle " << c.cycle << " seed " << r.params.seed;
  }
  EXPECT_GE(checked, 8);
}

TEST(AntiEntropyModelTest, PullSquaresTheSusceptibleFraction) {
  const AntiEntropyResult r = RunAe(AntiEntropyMode::kPull);
  ExpectFollowsLaw(r);  // predicted = p_{i-1}^2
  for (size_t i = 1; i < r.cycles.size(); ++i) {
    EXPECT_EQ(r.cycles[i].predicted, r.cycles[i].asymptotic);
  }
}

TEST(AntiEntropyModelTest, PushShrinksByOneOverEOnceSmall) {
  const AntiEntropyResult r = RunAe(AntiEntropyMode::kPush);
  ExpectFollowsLaw(r);  // predicted = p (1 - 1/n)^{n(1-p)}
  int checked = 0;
  for (size_t i = 1; i < r.cycles.size(); ++i) {
    const AntiEntropyCycle& prev = r.cycles[i - 1];
    const AntiEntropyCycle& c = r.cycles[i];
    if (prev.measured > 0.05 || c.susceptible_sites < 5) continue;
    ++checked;
    EXPECT_NEAR(c.measured / prev.measured, std::exp(-1.0), 0.1 * std::exp(-1.0))
        << "cycle " << c.cycle;
    EXPECT_NEAR(c.measured / c.asymptotic, 1.0, 0.1) << "cycle " << c.cycle;
  }
  EXPECT_GE(checked, 2);
}

TEST(AntiEntropyModelTest, PushPullFollowsProductLawAndIsFastest) {
  const AntiEntropyResult pp = RunAe(AntiEntropyMode::kPushPull);
  ExpectFollowsLaw(pp);
  const AntiEntropyResult pull = RunAe(AntiEntropyMode::kPull);
  const AntiEntropyResult push = RunAe(AntiEntropyMode::kPush);
  EXPECT_LT(pp.cycles_to_converge.mean, pull.cycles_to_converge.mean);
  // Pull's quadratic endgame beats push's geometric one (the paper's case for pull).
  EXPECT_LT(pull.cycles_to_converge.mean, push.cycles_to_converge.mean);
}

// ---------------------------------------------------------------------------------------
// Command line.

struct CliRun {
  int code;
  std::string out, err;
};

// Runs a command with `args` set as on its command line; every flag is put back after.
CliRun Cli(int (*cmd)(std::ostream&, std::ostream&), std::initializer_list<std::string_view> args) {
  absl::FlagSaver saver;
  if (::testing::AssertionResult set = testing_flags::SetFlags(args); !set) {
    ADD_FAILURE() << set.message();
    return {-1, "", ""};
  }
  std::ostringstream out, err;
  const int code = cmd(out, err);
  return {code, out.str(), err.str()};
}

TEST(ScuttleSimCliTest, SameSeedSameOutput) {
  const CliRun a = Cli(DemersCommand, {"--k=1..2", "--trials=10", "--seed=9", "--json"});
  const CliRun b = Cli(DemersCommand, {"--k=1..2", "--trials=10", "--seed=9", "--json"});
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out.find("\"paper\""), std::string::npos);
  EXPECT_NE(Cli(DemersCommand, {"--k=1..2", "--trials=10", "--seed=10", "--json"}).out, a.out);

  const CliRun c = Cli(AntiEntropyCommand, {"--mode=push", "--trials=20", "--seed=3"});
  const CliRun d = Cli(AntiEntropyCommand, {"--mode=push", "--trials=20", "--seed=3"});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out, d.out);
}

// Values absl parses but the command refuses. Malformed and unknown flags, and a flag
// set to its default that does not apply, are covered on the binary (cli_flags_test.py).
TEST(ScuttleSimCliTest, BadFlagsExitTwoWithAMessage) {
  struct Case {
    std::initializer_list<std::string_view> args;
    std::string_view message;
  };
  const Case cases[] = {
      {{"--k=0"}, "--k:"},
      {{"--k=3..1"}, "--k:"},
      {{"--n=1"}, "--n=1: want 2.."},
      {{"--trials=0"}, "--trials=0"},
      {{"--max_cycles=20000000"}, "--max_cycles"},
      {{"--variant=sideways"}, "push|pull|push-pull"},
      {{"--removal=maybe"}, "feedback|blind"},
      {{"--judge=sometimes"}, "cycle|contact"},
      // A flag that cannot change the chosen scheme is refused, not ignored.
      {{"--variant=pull", "--delivery=sequential"}, "--delivery does not apply"},
      {{"--judge=contact"}, "--judge does not apply to --variant push"},
      {{"--removal=blind", "--counter=cumulative"}, "--counter does not apply"},
      {{"--decay=coin", "--counter=cumulative"}, "--counter does not apply"},
  };
  for (const Case& c : cases) {
    const CliRun r = Cli(DemersCommand, c.args);
    EXPECT_EQ(r.code, 2) << c.message;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty());
  }
  const CliRun ae = Cli(AntiEntropyCommand, {"--mode=gossip"});
  EXPECT_EQ(ae.code, 2);
  EXPECT_NE(ae.err.find("push|pull|push-pull"), std::string::npos) << ae.err;
}

TEST(ScuttleSimCliTest, FlagsThatApplyAreAccepted) {
  const std::initializer_list<std::string_view> ok[] = {
      {"--variant=pull", "--judge=contact", "--counter=cumulative", "--trials=2", "--n=50"},
      {"--variant=push-pull", "--delivery=sequential", "--judge=cycle", "--trials=2", "--n=50"},
      {"--variant=push", "--delivery=sequential", "--counter=cumulative", "--trials=2", "--n=50"},
  };
  for (const auto& args : ok) {
    const CliRun r = Cli(DemersCommand, args);
    EXPECT_EQ(r.code, 0) << r.err;
  }
  const CliRun table3 = Cli(DemersCommand, {"--variant=pull", "--k=1..3", "--trials=2"});
  ASSERT_EQ(table3.code, 0) << table3.err;
  EXPECT_NE(table3.out.find("judge=cycle"), std::string::npos) << table3.out;
  EXPECT_NE(table3.out.find("4e-06"), std::string::npos) << table3.out;  // the paper column
}

// Every flag a command lists exists, and every scuttle-sim flag belongs to some command:
// a flag defined but listed nowhere would be refused by every command.
TEST(ScuttleSimCliTest, CommandFlagListsMatchTheDefinedFlags) {
  std::set<std::string> listed;
  for (auto* list : {DemersFlags, AntiEntropyFlags}) {
    for (const std::string& name : list()) {
      EXPECT_NE(absl::FindCommandLineFlag(name), nullptr) << name;
      listed.insert(name);
    }
  }
  constexpr std::string_view kFiles[] = {"sim/demers_cli.cc"};
  for (const std::string& name : cli::FlagsDefinedIn(kFiles)) {
    EXPECT_TRUE(listed.contains(name)) << "--" << name << " is in no command's list";
  }
  EXPECT_FALSE(listed.empty());
}

}  // namespace
}  // namespace scuttle::sim
