#include "sim/demers.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <limits>
#include <ostream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle::sim {

// ---------------------------------------------------------------------------------------
// Statistics and reference values.

double Summary::standard_error() const {
  return count == 0 ? 0.0 : stddev / std::sqrt(static_cast<double>(count));
}

Summary Summarize(std::span<const double> xs) {
  Summary s;
  s.count = static_cast<uint32_t>(xs.size());
  if (xs.empty()) return s;
  double sum = 0;
  s.min = s.max = xs[0];
  for (double x : xs) {
    sum += x;
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
  }
  s.mean = sum / xs.size();
  if (xs.size() > 1) {
    double sq = 0;
    for (double x : xs) sq += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(sq / (xs.size() - 1));
  }
  return s;
}

namespace {

// Demers et al. 1987, Table 1 (push, feedback, counter) and Table 2 (push, blind, coin),
// n = 1000.
constexpr PaperRow kTable1[] = {{1, 0.18, 1.7, 11.0, 16.8},
                                {2, 0.037, 3.3, 12.1, 16.9},
                                {3, 0.011, 4.5, 12.5, 17.4},
                                {4, 0.0036, 5.6, 12.7, 17.5},
                                {5, 0.0012, 6.7, 12.8, 17.7}};
constexpr PaperRow kTable2[] = {{1, 0.96, 0.04, 19, 38},
                                {2, 0.20, 1.6, 17, 33},
                                {3, 0.060, 2.8, 15, 32},
                                {4, 0.021, 3.9, 14.1, 32},
                                {5, 0.008, 4.9, 13.8, 32}};

// Table 3 (pull, feedback, counter), n = 1000: the paper prints k = 1..3 only.
constexpr PaperRow kTable3[] = {{1, 3.1e-2, 2.7, 9.97, 17.6},
                                {2, 5.8e-4, 4.5, 10.07, 15.4},
                                {3, 4.0e-6, 6.1, 10.08, 14.0}};

constexpr RumorId kRumor{0, 1};  // the single update of the model

}  // namespace

std::span<const PaperRow> PaperTable1() { return kTable1; }
std::span<const PaperRow> PaperTable2() { return kTable2; }
std::span<const PaperRow> PaperTable3() { return kTable3; }

const PaperRow* PaperRowFor(const DemersParams& p) {
  const RumorOptions& r = p.rumor;
  if (p.n != 1000 || r.k < 1) return nullptr;
  if (r.variant == RumorVariant::kPull) {
    // Delivery cannot matter under pull (a puller gets one reply per cycle at most).
    const bool table3 = r.removal == RumorRemoval::kFeedback && r.decay == RumorDecay::kCounter &&
                        r.counter == RumorCounter::kConsecutive && p.judge == Judge::kCycle;
    return table3 && r.k <= 3 ? &kTable3[r.k - 1] : nullptr;
  }
  if (r.variant != RumorVariant::kPush || p.delivery != Delivery::kSnapshot || r.k > 5) {
    return nullptr;
  }
  if (r.removal == RumorRemoval::kFeedback && r.decay == RumorDecay::kCounter &&
      r.counter == RumorCounter::kConsecutive) {
    return &kTable1[r.k - 1];
  }
  if (r.removal == RumorRemoval::kBlind && r.decay == RumorDecay::kCoin) {
    return &kTable2[r.k - 1];
  }
  return nullptr;
}

double ResidueEquation(double k) {
  assert(k > 0);
  // f(s) = s - e^{-(k+1)(1-s)} is concave with f(0) < 0 and f(1) = 0, f'(1) = -k < 0, so
  // it has exactly one root in (0, 1); f(1 - 1e-9) ~ k * 1e-9 > 0 brackets it.
  auto f = [k](double s) { return s - std::exp(-(k + 1) * (1 - s)); };
  double lo = 0, hi = 1 - 1e-9;
  for (int i = 0; i < 100; ++i) {
    const double mid = (lo + hi) / 2;
    (f(mid) < 0 ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

std::string_view ToString(Delivery d) {
  return d == Delivery::kSnapshot ? "snapshot" : "sequential";
}

absl::StatusOr<Delivery> ParseDelivery(std::string_view s) {
  if (s == "snapshot") return Delivery::kSnapshot;
  if (s == "sequential") return Delivery::kSequential;
  return absl::InvalidArgumentError(
      absl::StrCat("bad delivery '", AV(s), "': want snapshot|sequential"));
}

std::string_view ToString(Judge j) { return j == Judge::kCycle ? "cycle" : "contact"; }

absl::StatusOr<Judge> ParseJudge(std::string_view s) {
  if (s == "cycle") return Judge::kCycle;
  if (s == "contact") return Judge::kContact;
  return absl::InvalidArgumentError(absl::StrCat("bad judge '", AV(s), "': want cycle|contact"));
}

// ---------------------------------------------------------------------------------------
// Rumor mongering model.

absl::Status ValidateDemersParams(const DemersParams& p) {
  if (p.n < 2 || p.n > DemersParams::kMaxN) {
    return absl::InvalidArgumentError(
        absl::StrCat("n must be in [2, ", DemersParams::kMaxN, "], got ", p.n));
  }
  if (p.trials < 1 || p.trials > DemersParams::kMaxTrials) {
    return absl::InvalidArgumentError(
        absl::StrCat("trials must be in [1, ", DemersParams::kMaxTrials, "], got ", p.trials));
  }
  if (p.max_cycles < 1) return absl::InvalidArgumentError("max_cycles must be >= 1");
  return ValidateRumorOptions(p.rumor);
}

namespace {

uint32_t RandomOtherSite(SimRng& rng, uint32_t n, uint32_t self) {
  auto r = static_cast<uint32_t>(rng.Below(n - 1));
  return r >= self ? r + 1 : r;
}

// n sites, each with its database bit (knows the update, and since which cycle) and its
// RumorMonger. Reused across trials.
class RumorModel {
 public:
  explicit RumorModel(const DemersParams& p)
      : p_(p),
        mongers_(p.n, RumorMonger(p.rumor)),
        knows_(p.n, 0),
        learned_at_(p.n, 0),
        all_knew_(p.n, 2) {}

  DemersTrial RunTrial(SimRng& rng);
  RumorStats TotalStats() const;

 private:
  struct ContactResult {
    uint32_t sender;
    bool recipient_knew;
  };

  void Reset();
  void RunCycle(uint32_t cycle, SimRng& rng);
  void Contact(uint32_t initiator, uint32_t partner, uint32_t cycle);
  void Send(uint32_t sender, uint32_t recipient, uint32_t cycle);
  void EndCycle(SimRng& rng);

  const DemersParams p_;
  std::vector<RumorMonger> mongers_;
  std::vector<uint8_t> knows_;
  std::vector<uint32_t> learned_at_;
  std::vector<uint32_t> hot_sites_;  // infective at the start of the cycle, ascending
  std::vector<uint32_t> learned_;    // learned during the cycle
  std::vector<ContactResult> results_;
  std::vector<uint8_t> all_knew_;      // Judge::kCycle: per sender, every peer knew
  std::vector<uint32_t> judged_;       // Judge::kCycle: senders with results this cycle
  std::vector<RumorId> scratch_;
  uint64_t messages_ = 0;
};

void RumorModel::Reset() {
  for (uint32_t s = 0; s < p_.n; ++s) {
    if (knows_[s]) mongers_[s].Clear();  // only sites that knew can hold the rumor
  }
  std::fill(knows_.begin(), knows_.end(), 0);
  hot_sites_.clear();
  learned_.clear();
  results_.clear();
  messages_ = 0;
}

// Sends `sender`'s hot rumors to `recipient`. The recipient learns at once (so a later
// contact in the same cycle sees it under kSequential) but mongers only from next cycle.
void RumorModel::Send(uint32_t sender, uint32_t recipient, uint32_t cycle) {
  ++messages_;
  const bool knew_at_start = knows_[recipient] && learned_at_[recipient] < cycle;
  const bool knew = p_.delivery == Delivery::kSnapshot ? knew_at_start : knows_[recipient] != 0;
  if (!knows_[recipient]) {
    knows_[recipient] = 1;
    learned_at_[recipient] = cycle;
    learned_.push_back(recipient);
  }
  results_.push_back({sender, knew});
}

void RumorModel::Contact(uint32_t initiator, uint32_t partner, uint32_t cycle) {
  scratch_.clear();
  mongers_[initiator].PushRumors(std::numeric_limits<size_t>::max(), &scratch_);
  for (size_t i = 0; i < scratch_.size(); ++i) Send(initiator, partner, cycle);
  scratch_.clear();
  mongers_[partner].PullRumors(std::numeric_limits<size_t>::max(), &scratch_);
  for (size_t i = 0; i < scratch_.size(); ++i) Send(partner, initiator, cycle);
}

void RumorModel::RunCycle(uint32_t cycle, SimRng& rng) {
  if (p_.rumor.variant == RumorVariant::kPush) {
    // Only infective sites have anything to push; others stay idle (and draw nothing).
    for (uint32_t s : hot_sites_) Contact(s, RandomOtherSite(rng, p_.n, s), cycle);
  } else {
    for (uint32_t s = 0; s < p_.n; ++s) Contact(s, RandomOtherSite(rng, p_.n, s), cycle);
  }
}

// End of a synchronous cycle: loss of interest, then the new infectives.
void RumorModel::EndCycle(SimRng& rng) {
  if (p_.judge == Judge::kContact) {
    for (const ContactResult& r : results_) {
      mongers_[r.sender].OnContactResult(kRumor, r.recipient_knew, rng);
    }
  } else {
    // The paper's convention: a site's contacts in one cycle are one feedback event. Every
    // peer already knew -> one unnecessary contact (counter +1, or one coin toss); any
    // peer learned from it -> a necessary contact (the consecutive counter resets).
    // all_knew_[s] == 2 marks "no result yet this cycle".
    for (const ContactResult& r : results_) {
      uint8_t& all = all_knew_[r.sender];
      if (all == 2) {
        judged_.push_back(r.sender);
        all = r.recipient_knew ? 1 : 0;
      } else if (!r.recipient_knew) {
        all = 0;
      }
    }
    for (uint32_t s : judged_) {
      mongers_[s].OnContactResult(kRumor, all_knew_[s] == 1, rng);
      all_knew_[s] = 2;
    }
    judged_.clear();
  }
  results_.clear();
  size_t kept = 0;
  for (uint32_t s : hot_sites_) {
    if (mongers_[s].IsHot(kRumor)) hot_sites_[kept++] = s;
  }
  hot_sites_.resize(kept);
  for (uint32_t s : learned_) {
    const bool added = mongers_[s].OnRemoteUpdate(kRumor);
    assert(added);
    (void)added;
    hot_sites_.push_back(s);
  }
  learned_.clear();
  std::sort(hot_sites_.begin(), hot_sites_.end());
}

DemersTrial RumorModel::RunTrial(SimRng& rng) {
  Reset();
  knows_[0] = 1;
  learned_at_[0] = 0;
  mongers_[0].OnLocalUpdate(kRumor);
  hot_sites_.push_back(0);
  DemersTrial t;
  uint32_t cycle = 0;
  while (!hot_sites_.empty() && cycle < p_.max_cycles) {
    ++cycle;
    RunCycle(cycle, rng);
    EndCycle(rng);
  }
  t.truncated = !hot_sites_.empty();
  t.cycles = cycle;
  t.messages = messages_;
  uint64_t sum = 0;
  for (uint32_t s = 0; s < p_.n; ++s) {
    if (!knows_[s]) continue;
    ++t.reached;
    sum += learned_at_[s];
    t.t_last = std::max(t.t_last, learned_at_[s]);
  }
  t.t_ave = static_cast<double>(sum) / t.reached;
  return t;
}

RumorStats RumorModel::TotalStats() const {
  RumorStats total;
  for (const RumorMonger& m : mongers_) {
    const RumorStats& s = m.stats();
    total.added += s.added;
    total.dropped_full += s.dropped_full;
    total.contacts += s.contacts;
    total.unnecessary += s.unnecessary;
    total.lost_interest += s.lost_interest;
    total.stale_results += s.stale_results;
  }
  return total;
}

}  // namespace

absl::StatusOr<DemersResult> RunDemers(const DemersParams& params) {
  if (absl::Status s = ValidateDemersParams(params); !s.ok()) return s;
  SimRng rng(params.seed);
  RumorModel model(params);
  std::vector<double> residue, traffic, t_ave, t_last;
  DemersResult result;
  result.params = params;
  const double n = params.n;
  for (uint32_t i = 0; i < params.trials; ++i) {
    const DemersTrial t = model.RunTrial(rng);
    residue.push_back((n - t.reached) / n);
    traffic.push_back(static_cast<double>(t.messages) / n);
    t_ave.push_back(t.t_ave);
    t_last.push_back(t.t_last);
    if (t.truncated) ++result.truncated_trials;
  }
  result.residue = Summarize(residue);
  result.traffic = Summarize(traffic);
  result.t_ave = Summarize(t_ave);
  result.t_last = Summarize(t_last);
  result.rumor_stats = model.TotalStats();
  return result;
}

// ---------------------------------------------------------------------------------------
// Anti-entropy model.

absl::Status ValidateAntiEntropyParams(const AntiEntropyParams& p) {
  if (p.n < 2 || p.n > DemersParams::kMaxN) {
    return absl::InvalidArgumentError(
        absl::StrCat("n must be in [2, ", DemersParams::kMaxN, "], got ", p.n));
  }
  if (p.trials < 1 || p.trials > DemersParams::kMaxTrials) {
    return absl::InvalidArgumentError(
        absl::StrCat("trials must be in [1, ", DemersParams::kMaxTrials, "], got ", p.trials));
  }
  if (p.max_cycles < 1 || p.max_cycles > 1000000) {
    return absl::InvalidArgumentError("max_cycles must be in [1, 1000000]");
  }
  return absl::OkStatus();
}

namespace {

// One trial: the susceptible fraction after each cycle, p_0 = (n - 1) / n, until 0.
std::vector<double> AntiEntropyTrial(const AntiEntropyParams& p, SimRng& rng) {
  const bool push = p.mode != AntiEntropyMode::kPull;
  const bool pull = p.mode != AntiEntropyMode::kPush;
  std::vector<uint8_t> infected(p.n, 0);
  infected[0] = 1;
  std::vector<uint8_t> next = infected;
  uint32_t susceptible = p.n - 1;
  std::vector<double> ps = {static_cast<double>(susceptible) / p.n};
  for (uint32_t c = 0; c < p.max_cycles && susceptible > 0; ++c) {
    // Resolve against the start-of-cycle state; changes land in `next`.
    for (uint32_t s = 0; s < p.n; ++s) {
      const uint32_t r = RandomOtherSite(rng, p.n, s);
      if (push && infected[s] && !infected[r]) next[r] = 1;
      if (pull && infected[r] && !infected[s]) next[s] = 1;
    }
    infected = next;
    susceptible = static_cast<uint32_t>(std::count(infected.begin(), infected.end(), 0));
    ps.push_back(static_cast<double>(susceptible) / p.n);
  }
  return ps;
}

// The paper's one-cycle laws (§1.3), finite n and small-p forms.
double AntiEntropyLaw(AntiEntropyMode mode, double p, double n) {
  const double missed_by_pushes = std::pow(1 - 1 / n, n * (1 - p));
  switch (mode) {
    case AntiEntropyMode::kPull:
      return p * p;
    case AntiEntropyMode::kPush:
      return p * missed_by_pushes;
    case AntiEntropyMode::kPushPull:
      return p * p * missed_by_pushes;
  }
  return 0;
}

double AntiEntropyAsymptotic(AntiEntropyMode mode, double p) {
  switch (mode) {
    case AntiEntropyMode::kPull:
      return p * p;
    case AntiEntropyMode::kPush:
      return p * std::exp(-1.0);
    case AntiEntropyMode::kPushPull:
      return p * p * std::exp(-1.0);
  }
  return 0;
}

}  // namespace

absl::StatusOr<AntiEntropyResult> RunAntiEntropy(const AntiEntropyParams& params) {
  if (absl::Status s = ValidateAntiEntropyParams(params); !s.ok()) return s;
  SimRng rng(params.seed);
  AntiEntropyResult result;
  result.params = params;
  std::vector<std::vector<double>> runs;
  std::vector<double> converge;
  size_t longest = 0;
  for (uint32_t i = 0; i < params.trials; ++i) {
    runs.push_back(AntiEntropyTrial(params, rng));
    if (runs.back().back() > 0) ++result.truncated_trials;
    converge.push_back(static_cast<double>(runs.back().size() - 1));
    longest = std::max(longest, runs.back().size());
  }
  result.cycles_to_converge = Summarize(converge);
  auto p_at = [](const std::vector<double>& run, size_t i) {
    return i < run.size() ? run[i] : run.back();  // a finished trial stays where it ended
  };
  const double n = params.n;
  for (size_t i = 0; i < longest; ++i) {
    AntiEntropyCycle c;
    c.cycle = static_cast<uint32_t>(i);
    for (const auto& run : runs) {
      c.measured += p_at(run, i);
      if (i > 0) {
        c.predicted += AntiEntropyLaw(params.mode, p_at(run, i - 1), n);
        c.asymptotic += AntiEntropyAsymptotic(params.mode, p_at(run, i - 1));
      }
    }
    c.measured /= runs.size();
    c.predicted = i > 0 ? c.predicted / runs.size() : c.measured;
    c.asymptotic = i > 0 ? c.asymptotic / runs.size() : c.measured;
    c.susceptible_sites = c.measured * n;
    result.cycles.push_back(c);
  }
  return result;
}

}  // namespace scuttle::sim
