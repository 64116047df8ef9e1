// absl flags for the simulator, bench and tool mains (scuttle-sim, scuttle_load, ...), with
// the daemon's conventions (tools/scuttled_main.cc): a bad flag exits 2 with one line
// naming it. On top, what absl's process-global flags lack for subcommands and modes:
// --help lists just the flags of the chosen command, and a flag that was set but does not
// apply to it is refused, never silently ignored.
//
// The flags themselves are ABSL_FLAGs in each binary's .cc files; this header defines none.
#ifndef SCUTTLE_SIM_FLAGS_H_
#define SCUTTLE_SIM_FLAGS_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle::cli {

constexpr int kExitBadFlags = 2;

// Parses argv with absl::ParseCommandLine.
// - --help (any --help* form, or -h) prints `usage`, then each flag in `flags` with its default
//   and help text, and exits 0.
// - An unknown or malformed flag (absl's message) or a positional argument exits 2.
// - A flag defined by this project (not absl's own) that is given on the command line but
//   is not in `flags` exits 2: "--X does not apply to <command>".
// `command` names the program (and subcommand) in messages, e.g. "scuttle-sim cluster".
void ParseFlagsOrExit(int argc, char** argv, std::string_view command, std::string_view usage,
                      std::span<const std::string> flags);
// The same for a program that takes positional arguments (scuttlectl COMMAND ARGS): they
// come back in order, flags may stand between them, and "--" ends the flags.
std::vector<std::string> ParseFlagsAndArgsOrExit(int argc, char** argv, std::string_view command,
                                                 std::string_view usage,
                                                 std::span<const std::string> flags);

// The flags defined in the files whose path ends with one of `file_suffixes`, sorted by
// name: a binary's own flags, for ParseFlagsOrExit.
std::vector<std::string> FlagsDefinedIn(std::span<const std::string_view> file_suffixes);

// True when the flag was given on the command line or holds a value other than its
// default (tests set flags with absl::SetFlag). False for an unknown name.
bool FlagSet(std::string_view name);

// A bench's --quick (the CI size): `quick_value` when `quick` is on and `flag` was not set
// (FlagSet), else the flag's value; so --quick shrinks only what the user did not give.
template <typename T, typename Q>
T QuickOr(bool quick, const absl::Flag<T>& flag, Q quick_value) {
  if (quick && !FlagSet(SV(absl::GetFlagReflectionHandle(flag).Name()))) return T(quick_value);
  return absl::GetFlag(flag);
}

// The run length of a throughput bench (scuttle_load, scuttle_node_shards), from the
// --warmup_s, --duration_s and --reps flags the binary defines: --quick gives 0.05 s,
// 0.1 s and 1 repetition to those not set; each is checked (0..60 s, 0.01..600 s, 1..100)
// and a bad one exits 2 naming it.
struct RunLength {
  double warmup_s = 0;
  double duration_s = 0;
  int reps = 0;
};
RunLength ReadRunLengthOrExit(std::string_view command, bool quick,
                              const absl::Flag<double>& warmup_s,
                              const absl::Flag<double>& duration_s,
                              const absl::Flag<int32_t>& reps);

// InvalidArgument "--<name> does not apply to <context>" for the first of `names` that
// FlagSet reports; OK when none is set. For modes within one command (a flag of the
// load generator given in server mode).
absl::Status RefuseSetFlags(std::span<const std::string_view> names, std::string_view context);

// InvalidArgument "--<name>=<value>: want <lo>..<hi>" unless lo <= value <= hi.
template <typename T>
absl::Status InRange(std::string_view name, T value, T lo, T hi) {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", AV(name), "=", value, ": want ", lo, "..", hi));
}

// The integers of a list flag (absl's std::vector<std::string>, "--nodes=10,50,100"), each
// in lo..hi; InvalidArgument naming the flag otherwise.
absl::StatusOr<std::vector<int64_t>> IntList(std::string_view name,
                                             const std::vector<std::string>& values, int64_t lo,
                                             int64_t hi);

// Prints "<command>: <message>" on stderr and exits 2.
[[noreturn]] void BadFlag(std::string_view command, std::string_view message);

}  // namespace scuttle::cli

#endif  // SCUTTLE_SIM_FLAGS_H_
