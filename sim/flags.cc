#include "sim/flags.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/internal/parse.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace scuttle::cli {
namespace {

// absl's parser reports a malformed or unknown flag and calls std::exit(1); these mains
// promise 2 for every bad flag, as scuttled does.
bool g_parsing_flags = false;
bool g_parsed = false;  // ParseCommandLine ran (tests set flags without it)
void ExitTwoIfParsing() {
  if (!g_parsing_flags) return;
  std::fflush(stdout);
  std::_Exit(kExitBadFlags);
}

// absl 20220623 (Debian 12) keeps CommandLineFlag::IsSpecifiedOnCommandLine private; this
// is the same answer (the command line and any --flagfile), valid once parsing ran.
bool OnCommandLine(std::string_view name) {
  return g_parsed && absl::flags_internal::WasPresentOnCommandLine(AV(name));
}

bool IsHelp(std::string_view arg) {
  return arg == "-h" || arg.starts_with("--help") || arg.starts_with("-help");
}

// absl's own flags (--flagfile, --undefok, --help...) are defined under absl/.
bool IsProjectFlag(const absl::CommandLineFlag& f) {
  return f.Filename().find("absl/") == std::string::npos;
}

void PrintHelp(std::string_view usage, std::span<const std::string> flags) {
  std::cout << usage << "\nflags:\n";
  for (const std::string& name : flags) {
    const absl::CommandLineFlag* f = absl::FindCommandLineFlag(name);
    if (f == nullptr) continue;
    const std::string head = absl::StrCat("--", name, "=", f->DefaultValue());
    std::cout << absl::StrFormat("  %-32s %s\n", head, f->Help());
  }
}

}  // namespace

void BadFlag(std::string_view command, std::string_view message) {
  std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(command.size()), command.data(),
               static_cast<int>(message.size()), message.data());
  std::exit(kExitBadFlags);
}

std::vector<std::string> ParseFlagsAndArgsOrExit(int argc, char** argv, std::string_view command,
                                                 std::string_view usage,
                                                 std::span<const std::string> flags) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") break;
    if (IsHelp(argv[i])) {
      PrintHelp(usage, flags);
      std::exit(0);
    }
  }
  absl::SetProgramUsageMessage(AV(usage));
  static const bool registered = std::atexit(ExitTwoIfParsing) == 0;
  (void)registered;
  g_parsing_flags = true;
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  g_parsing_flags = false;
  g_parsed = true;
  for (const auto& [name, f] : absl::GetAllFlags()) {
    if (!IsProjectFlag(*f) || !OnCommandLine(SV(name))) continue;
    if (std::find(flags.begin(), flags.end(), SV(name)) == flags.end()) {
      BadFlag(command, absl::StrCat("--", name, " does not apply to ", AV(command), " (see ",
                                    AV(command), " --help)"));
    }
  }
  return std::vector<std::string>(rest.begin() + 1, rest.end());
}

void ParseFlagsOrExit(int argc, char** argv, std::string_view command, std::string_view usage,
                      std::span<const std::string> flags) {
  const std::vector<std::string> rest = ParseFlagsAndArgsOrExit(argc, argv, command, usage, flags);
  if (!rest.empty()) {
    BadFlag(command,
            absl::StrCat("unexpected argument '", rest[0], "' (flags look like --name=value)"));
  }
}

std::vector<std::string> FlagsDefinedIn(std::span<const std::string_view> file_suffixes) {
  std::vector<std::string> names;
  for (const auto& [name, f] : absl::GetAllFlags()) {
    const std::string file = f->Filename();
    for (std::string_view suffix : file_suffixes) {
      if (std::string_view(file).ends_with(suffix)) names.emplace_back(SV(name));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool FlagSet(std::string_view name) {
  const absl::CommandLineFlag* f = absl::FindCommandLineFlag(AV(name));
  return f != nullptr && (OnCommandLine(name) || f->CurrentValue() != f->DefaultValue());
}

RunLength ReadRunLengthOrExit(std::string_view command, bool quick,
                              const absl::Flag<double>& warmup_s,
                              const absl::Flag<double>& duration_s,
                              const absl::Flag<int32_t>& reps) {
  RunLength r;
  r.warmup_s = QuickOr(quick, warmup_s, 0.05);
  r.duration_s = QuickOr(quick, duration_s, 0.1);
  r.reps = QuickOr(quick, reps, 1);
  for (absl::Status st : {InRange("warmup_s", r.warmup_s, 0.0, 60.0),
                          InRange("duration_s", r.duration_s, 0.01, 600.0),
                          InRange("reps", r.reps, 1, 100)}) {
    if (!st.ok()) BadFlag(command, SV(st.message()));
  }
  return r;
}

absl::Status RefuseSetFlags(std::span<const std::string_view> names, std::string_view context) {
  for (std::string_view name : names) {
    if (FlagSet(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", AV(name), " does not apply to ", AV(context)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> IntList(std::string_view name,
                                             const std::vector<std::string>& values, int64_t lo,
                                             int64_t hi) {
  std::vector<int64_t> out;
  for (const std::string& v : values) {
    int64_t x = 0;
    if (!absl::SimpleAtoi(v, &x) || x < lo || x > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", AV(name), ": '", v, "' is not an integer in ", lo, "..", hi));
    }
    out.push_back(x);
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("--", AV(name), ": empty list"));
  return out;
}

}  // namespace scuttle::cli
