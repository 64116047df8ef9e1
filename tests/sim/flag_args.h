// Sets absl flags in a test as the command line would, for the scuttle-sim commands that
// read their flags (sim/flags.h). Hold an absl::FlagSaver around the run so every flag is
// put back. Malformed and unknown flags are absl's parser's job: the binary-level test
// (tests/cli_flags_test.py) covers them.
#ifndef SCUTTLE_TESTS_SIM_FLAG_ARGS_H_
#define SCUTTLE_TESTS_SIM_FLAG_ARGS_H_

#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "gtest/gtest.h"
#include "wire/absl_compat.h"

namespace scuttle::testing_flags {

// Each arg is "--name=value", "--name" (a bool set to true) or "--noname" (false).
inline ::testing::AssertionResult SetFlags(std::initializer_list<std::string_view> args) {
  for (std::string_view arg : args) {
    if (!arg.starts_with("--")) return ::testing::AssertionFailure() << "not a flag: " << arg;
    arg.remove_prefix(2);
    const size_t eq = arg.find('=');
    std::string_view name = arg.substr(0, eq);
    std::string value = eq == std::string_view::npos ? "true" : std::string(arg.substr(eq + 1));
    if (eq == std::string_view::npos && absl::FindCommandLineFlag(AV(name)) == nullptr &&
        name.starts_with("no")) {
      name.remove_prefix(2);
      value = "false";
    }
    absl::CommandLineFlag* f = absl::FindCommandLineFlag(AV(name));
    if (f == nullptr) return ::testing::AssertionFailure() << "unknown flag --" << name;
    std::string error;
    if (!f->ParseFrom(value, &error)) {
      return ::testing::AssertionFailure() << "--" << name << ": " << error;
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace scuttle::testing_flags

#endif  // SCUTTLE_TESTS_SIM_FLAG_ARGS_H_
