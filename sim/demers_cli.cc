// The `scuttle-sim demers` and `scuttle-sim antientropy` commands: their absl flags, the
// checks that a flag applies to the chosen scheme, and the text and JSON reports.
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "sim/demers.h"
#include "sim/flags.h"
#include "wire/absl_compat.h"

// Shared by every scuttle-sim command (sim/cluster_cli.cc declares them).
ABSL_FLAG(uint64_t, seed, 1, "PRNG seed: one seed reproduces a run bit for bit");
ABSL_FLAG(bool, json, false, "print JSON on stdout");

// demers and antientropy.
ABSL_FLAG(uint32_t, n, 1000, "sites, 2..1048576");
ABSL_FLAG(uint32_t, trials, 100, "trials (per k for demers), 1..1048576");
ABSL_FLAG(uint32_t, max_cycles, 0,
          "bound on cycles per trial (0: demers 100000, antientropy 10000); a trial that hits "
          "it is counted");
// demers: rumor mongering. Defaults are RumorOptions' and DemersParams'.
ABSL_FLAG(std::string, variant, "push", "who sends hot rumors: push|pull|push-pull");
ABSL_FLAG(std::string, removal, "feedback", "what moves a site to lose interest: feedback|blind");
ABSL_FLAG(std::string, decay, "counter",
          "counter: lose interest after k counted contacts | coin: with probability 1/k");
ABSL_FLAG(std::string, counter, "consecutive",
          "consecutive|cumulative: does the feedback counter reset on a useful contact?");
ABSL_FLAG(std::string, delivery, "snapshot",
          "snapshot|sequential: when a recipient counts as already knowing");
ABSL_FLAG(std::string, judge, "cycle",
          "cycle|contact: a site's contacts in one cycle judged together | one by one");
ABSL_FLAG(std::string, k, "2", "the k parameter K, or a range LO..HI (one row each), 1..1000");
// antientropy.
ABSL_FLAG(std::string, mode, "pull", "how a contact resolves differences: push|pull|push-pull");

namespace scuttle::sim {
namespace {

constexpr int kUsageError = cli::kExitBadFlags;

struct DemersCli {
  DemersParams params;
  std::vector<uint32_t> ks;  // one row each
  bool json = false;
};

struct AntiEntropyCli {
  AntiEntropyParams params;
  bool json = false;
};

template <typename E>
absl::Status SetEnum(std::string_view flag, const std::string& value,
                     absl::StatusOr<E> (*parse)(std::string_view), E* dst) {
  absl::StatusOr<E> e = parse(value);
  if (!e.ok())
    return absl::InvalidArgumentError(absl::StrCat("--", AV(flag), ": ", e.status().message()));
  *dst = *e;
  return absl::OkStatus();
}

// A flag that cannot change the run for the chosen scheme is an error, not a no-op: a
// user who asks for it believes it does something.
absl::Status CheckFlagsApply(const DemersParams& p) {
  const RumorOptions& r = p.rumor;
  const bool counter_set = cli::FlagSet("counter"), delivery_set = cli::FlagSet("delivery"),
             judge_set = cli::FlagSet("judge");
  if (counter_set && r.removal == RumorRemoval::kBlind) {
    return absl::InvalidArgumentError(
        "--counter does not apply to --removal blind: with no feedback there is no necessary "
        "contact to reset on; every contact counts");
  }
  if (counter_set && r.decay == RumorDecay::kCoin) {
    return absl::InvalidArgumentError(
        "--counter does not apply to --decay coin: the coin keeps no count");
  }
  if (delivery_set && r.variant == RumorVariant::kPull) {
    return absl::InvalidArgumentError(
        "--delivery does not apply to --variant pull: a site receives the rumor only in "
        "answer to its own pull, once per cycle at most, so snapshot and sequential are the "
        "same");
  }
  if (judge_set && r.variant == RumorVariant::kPush) {
    return absl::InvalidArgumentError(
        "--judge does not apply to --variant push: a pushing site makes one contact per "
        "cycle, so cycle and contact are the same");
  }
  return absl::OkStatus();
}

// "3" or "1..5".
absl::Status ParseKRange(std::string_view v, std::vector<uint32_t>* ks) {
  uint32_t lo = 0, hi = 0;
  const size_t dots = v.find("..");
  const bool ok = dots == std::string_view::npos
                      ? absl::SimpleAtoi(AV(v), &lo) && (hi = lo, true)
                      : absl::SimpleAtoi(AV(v.substr(0, dots)), &lo) &&
                            absl::SimpleAtoi(AV(v.substr(dots + 2)), &hi);
  if (!ok || lo < 1 || hi < lo || hi > RumorOptions::kMaxK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "want K or LO..HI with 1 <= LO <= HI <= ", RumorOptions::kMaxK, ", got '", AV(v), "'"));
  }
  ks->clear();
  for (uint32_t k = lo; k <= hi; ++k) ks->push_back(k);
  return absl::OkStatus();
}

nlohmann::json ToJson(const Summary& s) {
  return {{"mean", s.mean}, {"stddev", s.stddev}, {"min", s.min}, {"max", s.max}};
}

nlohmann::json DemersJson(const DemersParams& p, const std::vector<DemersResult>& rows) {
  nlohmann::json j = {{"command", "demers"},
                      {"n", p.n},
                      {"variant", ToString(p.rumor.variant)},
                      {"removal", ToString(p.rumor.removal)},
                      {"decay", ToString(p.rumor.decay)},
                      {"counter", ToString(p.rumor.counter)},
                      {"delivery", ToString(p.delivery)},
                      {"judge", ToString(p.judge)},
                      {"trials", p.trials},
                      {"seed", p.seed},
                      {"rows", nlohmann::json::array()}};
  for (const DemersResult& r : rows) {
    nlohmann::json row = {{"k", r.params.rumor.k},
                          {"residue", ToJson(r.residue)},
                          {"traffic", ToJson(r.traffic)},
                          {"t_ave", ToJson(r.t_ave)},
                          {"t_last", ToJson(r.t_last)},
                          {"truncated_trials", r.truncated_trials},
                          {"residue_equation", ResidueEquation(r.params.rumor.k)}};
    if (const PaperRow* paper = PaperRowFor(r.params)) {
      row["paper"] = {{"residue", paper->residue},
                      {"traffic", paper->traffic},
                      {"t_ave", paper->t_ave},
                      {"t_last", paper->t_last}};
    }
    j["rows"].push_back(row);
  }
  return j;
}

void PrintDemersTable(std::ostream& os, const DemersParams& p,
                      const std::vector<DemersResult>& rows) {
  os << absl::StrFormat(
      "demers: n=%u variant=%s removal=%s decay=%s counter=%s delivery=%s judge=%s trials=%u "
      "seed=%u\n",
      p.n, AV(ToString(p.rumor.variant)), AV(ToString(p.rumor.removal)),
      AV(ToString(p.rumor.decay)), AV(ToString(p.rumor.counter)), AV(ToString(p.delivery)),
      AV(ToString(p.judge)), p.trials, p.seed);
  os << absl::StrFormat("%3s  %-19s %-13s %-13s %-13s %-8s | %s\n", "k", "residue (sd)",
                        "traffic (sd)", "t_ave (sd)", "t_last (sd)", "s_eq",
                        "paper: residue traffic t_ave t_last");
  for (const DemersResult& r : rows) {
    // %.3g keeps small residues readable (Table 3 goes down to 4e-06).
    os << absl::StrFormat(
        "%3u  %-8.3g (%-8.2g)  %5.2f (%5.2f) %5.2f (%5.2f) %5.2f (%5.2f) %-8.4f |",
        r.params.rumor.k, r.residue.mean, r.residue.stddev, r.traffic.mean, r.traffic.stddev,
        r.t_ave.mean, r.t_ave.stddev, r.t_last.mean, r.t_last.stddev,
        ResidueEquation(r.params.rumor.k));
    if (const PaperRow* paper = PaperRowFor(r.params)) {
      os << absl::StrFormat(" %7g %7g %5g %6g", paper->residue, paper->traffic, paper->t_ave,
                            paper->t_last);
    }
    if (r.truncated_trials > 0) os << "  (" << r.truncated_trials << " trials hit max-cycles)";
    os << "\n";
  }
}

nlohmann::json AntiEntropyJson(const AntiEntropyResult& r) {
  const AntiEntropyParams& p = r.params;
  nlohmann::json j = {{"command", "antientropy"},
                      {"n", p.n},
                      {"mode", ToString(p.mode)},
                      {"trials", p.trials},
                      {"seed", p.seed},
                      {"cycles_to_converge", ToJson(r.cycles_to_converge)},
                      {"truncated_trials", r.truncated_trials},
                      {"cycles", nlohmann::json::array()}};
  for (const AntiEntropyCycle& c : r.cycles) {
    j["cycles"].push_back({{"cycle", c.cycle},
                           {"p_measured", c.measured},
                           {"p_predicted", c.predicted},
                           {"p_asymptotic", c.asymptotic}});
  }
  return j;
}

void PrintAntiEntropyTable(std::ostream& os, const AntiEntropyResult& r) {
  const AntiEntropyParams& p = r.params;
  const std::string_view law = p.mode == AntiEntropyMode::kPull   ? "p^2"
                               : p.mode == AntiEntropyMode::kPush ? "p(1-1/n)^(n(1-p))"
                                                                  : "p^2(1-1/n)^(n(1-p))";
  const std::string_view small = p.mode == AntiEntropyMode::kPull   ? "p^2"
                                 : p.mode == AntiEntropyMode::kPush ? "p/e"
                                                                    : "p^2/e";
  os << absl::StrFormat(
      "antientropy: n=%u mode=%s trials=%u seed=%u; cycles to converge %.2f "
      "(sd %.2f, min %g, max %g)\n",
      p.n, AV(ToString(p.mode)), p.trials, p.seed, r.cycles_to_converge.mean,
      r.cycles_to_converge.stddev, r.cycles_to_converge.min, r.cycles_to_converge.max);
  os << absl::StrFormat("predicted: %s, small-p law: %s, each applied to every trial's p_{i-1}\n",
                        AV(law), AV(small));
  os << absl::StrFormat("%5s  %-12s %-12s %-8s %-12s %-8s %s\n", "cycle", "p measured", "predicted",
                        "ratio", "small-p law", "ratio", "susceptible sites");
  for (const AntiEntropyCycle& c : r.cycles) {
    auto ratio = [&](double predicted) {
      return predicted > 0 ? absl::StrFormat("%.3f", c.measured / predicted) : std::string("-");
    };
    os << absl::StrFormat("%5u  %-12.6g %-12.6g %-8s %-12.6g %-8s %.2f\n", c.cycle, c.measured,
                          c.predicted, ratio(c.predicted), c.asymptotic, ratio(c.asymptotic),
                          c.susceptible_sites);
  }
}

// The flags both paper-model commands take (--max_cycles 0 keeps the command's default).
template <typename Params>
absl::Status ReadSharedFlags(Params& p, bool* json, uint32_t max_cycles_hi) {
  p.n = absl::GetFlag(FLAGS_n);
  p.trials = absl::GetFlag(FLAGS_trials);
  p.seed = absl::GetFlag(FLAGS_seed);
  if (const uint32_t m = absl::GetFlag(FLAGS_max_cycles); m > 0) p.max_cycles = m;
  *json = absl::GetFlag(FLAGS_json);
  for (absl::Status s : {
           cli::InRange<uint32_t>("n", p.n, 2, DemersParams::kMaxN),
           cli::InRange<uint32_t>("trials", p.trials, 1, DemersParams::kMaxTrials),
           cli::InRange<uint32_t>("max_cycles", p.max_cycles, 1, max_cycles_hi),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<DemersCli> DemersFromFlags() {
  DemersCli c;
  DemersParams& p = c.params;
  p.rumor.max_hot_rumors = 1;  // one update per run
  if (absl::Status s = ReadSharedFlags(p, &c.json, 10000000); !s.ok()) return s;
  for (absl::Status s : {
           SetEnum("variant", absl::GetFlag(FLAGS_variant), ParseRumorVariant, &p.rumor.variant),
           SetEnum("removal", absl::GetFlag(FLAGS_removal), ParseRumorRemoval, &p.rumor.removal),
           SetEnum("decay", absl::GetFlag(FLAGS_decay), ParseRumorDecay, &p.rumor.decay),
           SetEnum("counter", absl::GetFlag(FLAGS_counter), ParseRumorCounter, &p.rumor.counter),
           SetEnum("delivery", absl::GetFlag(FLAGS_delivery), ParseDelivery, &p.delivery),
           SetEnum("judge", absl::GetFlag(FLAGS_judge), ParseJudge, &p.judge),
       }) {
    if (!s.ok()) return s;
  }
  if (absl::Status s = ParseKRange(absl::GetFlag(FLAGS_k), &c.ks); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--k: ", s.message()));
  }
  if (absl::Status s = CheckFlagsApply(p); !s.ok()) return s;
  return c;
}

absl::StatusOr<AntiEntropyCli> AntiEntropyFromFlags() {
  AntiEntropyCli c;
  AntiEntropyParams& p = c.params;
  if (absl::Status s = ReadSharedFlags(p, &c.json, 1000000); !s.ok()) return s;
  if (absl::Status s = SetEnum("mode", absl::GetFlag(FLAGS_mode), ParseRumorVariant, &p.mode);
      !s.ok()) {
    return s;
  }
  return c;
}

int RunDemersCli(const DemersCli& c, std::ostream& out, std::ostream& err) {
  std::vector<DemersResult> rows;
  for (uint32_t k : c.ks) {
    DemersParams pk = c.params;
    pk.rumor.k = k;
    absl::StatusOr<DemersResult> r = RunDemers(pk);
    if (!r.ok()) {
      err << "scuttle-sim demers: " << r.status().message() << "\n";
      return kUsageError;
    }
    rows.push_back(*std::move(r));
  }
  if (c.json) {
    out << DemersJson(c.params, rows).dump(2) << "\n";
  } else {
    PrintDemersTable(out, c.params, rows);
  }
  return 0;
}

int RunAntiEntropyCli(const AntiEntropyCli& c, std::ostream& out, std::ostream& err) {
  absl::StatusOr<AntiEntropyResult> r = RunAntiEntropy(c.params);
  if (!r.ok()) {
    err << "scuttle-sim antientropy: " << r.status().message() << "\n";
    return kUsageError;
  }
  if (c.json) {
    out << AntiEntropyJson(*r).dump(2) << "\n";
  } else {
    PrintAntiEntropyTable(out, *r);
  }
  return 0;
}

}  // namespace

std::vector<std::string> DemersFlags() {
  return {"n",     "variant", "removal", "decay", "counter",    "delivery",
          "judge", "k",       "trials",  "seed",  "max_cycles", "json"};
}

std::vector<std::string> AntiEntropyFlags() {
  return {"n", "mode", "trials", "seed", "max_cycles", "json"};
}

int DemersCommand(std::ostream& out, std::ostream& err) {
  absl::StatusOr<DemersCli> c = DemersFromFlags();
  if (!c.ok()) {
    err << "scuttle-sim demers: " << c.status().message() << "\n";
    return kUsageError;
  }
  return RunDemersCli(*c, out, err);
}

int AntiEntropyCommand(std::ostream& out, std::ostream& err) {
  absl::StatusOr<AntiEntropyCli> c = AntiEntropyFromFlags();
  if (!c.ok()) {
    err << "scuttle-sim antientropy: " << c.status().message() << "\n";
    return kUsageError;
  }
  return RunAntiEntropyCli(*c, out, err);
}

}  // namespace scuttle::sim
