// The synchronous-cycle model of Demers et al. 1987 (seed 001) for one update spreading
// over n sites, and the `scuttle-sim demers` / `scuttle-sim antientropy` subcommands.
//
// Rumor mongering (§1.4): every site's hot-rumor state is a real scuttle::RumorMonger
// (engine/rumor.h), so reproducing the paper's Tables 1 and 2 tests the engine's code.
// The model only supplies what the engine's caller would: peer choice, the cycle, and who
// already knew. Counting rules (docs/demers.md has the evidence for each):
//   - Each cycle every site that initiates (push: infective sites; pull / push-pull: all
//     sites) contacts one uniformly random *other* site.
//   - Synchronous cycles: every state change — a site learning the rumor, a site losing
//     interest — takes effect at the end of the cycle. A site that learns in cycle c first
//     sends in cycle c + 1, and a responder contacted by several pullers answers all.
//   - Delivery::kSnapshot (default): a contact is "unnecessary" iff the recipient knew the
//     rumor at the start of the cycle; several infective sites reaching the same
//     susceptible in one cycle are all necessary. kSequential processes contacts in site
//     order and counts all but the first as unnecessary (the continuous-time reading).
//   - Judge::kCycle (default): a site's contacts in one cycle are one feedback event for
//     its RumorMonger (one OnContactResult): unnecessary iff every peer already knew, so
//     the counter moves by at most one per cycle and resets if any peer learned from it.
//     This is what reproduces Table 3 (pull); under push a site has one contact per cycle
//     and nothing changes. kContact judges each contact alone.
//   - traffic = update messages sent / n: one per (contact, hot rumor sent); a reply that
//     carries no hot rumor is not an update message.
//   - residue = fraction of sites that never learned it, once no site is infective;
//     t_ave = mean receive cycle over reached sites (the origin at cycle 0);
//     t_last = cycle in which the last site learned it.
//
// Anti-entropy (§1.3): every site contacts a random other site each cycle and resolves the
// whole database with it (push, pull or push-pull); p_i is the susceptible fraction after
// cycle i, compared with the paper's laws pull p_{i+1} = p_i^2 and push
// p_{i+1} = p_i (1 - 1/n)^{n(1 - p_i)} ≈ p_i e^{-1} for small p_i.
#ifndef SCUTTLE_SIM_DEMERS_H_
#define SCUTTLE_SIM_DEMERS_H_

#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/rng.h"
#include "engine/rumor.h"

namespace scuttle::sim {

// The model draws from the engine's PRNG (xoshiro256**, engine/rng.h): one seed
// reproduces a run bit for bit on any platform.
using SimRng = Rng;

enum class Delivery { kSnapshot, kSequential };
std::string_view ToString(Delivery d);
absl::StatusOr<Delivery> ParseDelivery(std::string_view s);

// How a site's feedback is judged when it sends its hot rumor on several contacts in one
// cycle (a pull responder answering several pullers; a push-pull site that also pushes).
// kCycle (the paper's convention, Table 3): the cycle's contacts are judged together —
// one unnecessary contact iff every peer already knew, otherwise one necessary contact.
// kContact: every contact is judged on its own. Under push a site makes one contact per
// cycle, so the two are the same there.
enum class Judge { kCycle, kContact };
std::string_view ToString(Judge j);
absl::StatusOr<Judge> ParseJudge(std::string_view s);

struct Summary {
  double mean = 0, stddev = 0, min = 0, max = 0;  // stddev: sample (n - 1)
  uint32_t count = 0;
  double standard_error() const;
};
Summary Summarize(std::span<const double> xs);

struct DemersParams {
  uint32_t n = 1000;
  RumorOptions rumor;  // variant, removal, decay, counter, k
  Delivery delivery = Delivery::kSnapshot;
  Judge judge = Judge::kCycle;
  uint32_t trials = 100;
  uint64_t seed = 1;
  uint32_t max_cycles = 100000;  // bound per trial; a trial that hits it is counted

  static constexpr uint32_t kMaxN = 1u << 20;
  static constexpr uint32_t kMaxTrials = 1u << 20;
};
absl::Status ValidateDemersParams(const DemersParams& params);

struct DemersTrial {
  uint32_t reached = 0;
  uint64_t messages = 0;
  uint32_t t_last = 0;
  uint32_t cycles = 0;  // cycles run until no site was infective
  double t_ave = 0;
  bool truncated = false;  // hit max_cycles with infective sites left
};

struct DemersResult {
  DemersParams params;
  Summary residue, traffic, t_ave, t_last;
  uint32_t truncated_trials = 0;
  RumorStats rumor_stats;  // summed over all sites and trials
};

// Runs params.trials trials of one update from site 0, seeded by params.seed.
absl::StatusOr<DemersResult> RunDemers(const DemersParams& params);

// The paper's reference rows (n = 1000): Table 1 = push, feedback + counter, k = 1..5;
// Table 2 = push, blind + coin, k = 1..5; Table 3 = pull, feedback + counter, k = 1..3.
struct PaperRow {
  uint32_t k;
  double residue, traffic, t_ave, t_last;
};
std::span<const PaperRow> PaperTable1();
std::span<const PaperRow> PaperTable2();
std::span<const PaperRow> PaperTable3();
// The paper row that `params` reproduces, or nullptr: n = 1000; push with snapshot
// delivery and k <= 5 (Tables 1, 2), or pull with k <= 3 (Table 3); the counter tables
// need the consecutive counter, Table 3 also the per-cycle judgment.
const PaperRow* PaperRowFor(const DemersParams& params);

// The root s in (0, 1) of s = e^{-(k+1)(1-s)}: the residue the paper's differential
// equations predict for feedback + coin (§1.4).
double ResidueEquation(double k);

using AntiEntropyMode = RumorVariant;  // push | pull | push-pull, same spellings

struct AntiEntropyParams {
  uint32_t n = 1000;
  AntiEntropyMode mode = AntiEntropyMode::kPull;
  uint32_t trials = 100;
  uint64_t seed = 1;
  uint32_t max_cycles = 10000;
};
absl::Status ValidateAntiEntropyParams(const AntiEntropyParams& params);

struct AntiEntropyCycle {
  uint32_t cycle = 0;
  double measured = 0;           // mean over trials of p_i
  double predicted = 0;          // mean over trials of law(p_{i-1}) (paper's finite-n law)
  double asymptotic = 0;         // mean over trials of the small-p law: p^2, p/e, p^2/e
  double susceptible_sites = 0;  // mean over trials of p_i * n
};

struct AntiEntropyResult {
  AntiEntropyParams params;
  std::vector<AntiEntropyCycle> cycles;  // cycles[0] is the start, p_0 = (n - 1) / n
  Summary cycles_to_converge;
  uint32_t truncated_trials = 0;
};
absl::StatusOr<AntiEntropyResult> RunAntiEntropy(const AntiEntropyParams& params);

// Subcommands of scuttle-sim (sim/demers_cli.cc). Each reads its absl flags, checks them
// (a flag that cannot change the chosen scheme is refused) and runs. Output goes to `out`,
// diagnostics to `err`. Returns the exit code: 0 ok, 2 a bad flag value.
int DemersCommand(std::ostream& out, std::ostream& err);
int AntiEntropyCommand(std::ostream& out, std::ostream& err);
// The flags each command reads, for cli::ParseFlagsOrExit.
std::vector<std::string> DemersFlags();
std::vector<std::string> AntiEntropyFlags();

}  // namespace scuttle::sim

#endif  // SCUTTLE_SIM_DEMERS_H_
