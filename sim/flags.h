// A minimal flag parser for scuttle-sim subcommands: absl flags are process-global and do
// not fit subcommands that each own a flag set. Accepts --name=value, --name value and
// boolean --name.
#ifndef SCUTTLE_SIM_FLAGS_H_
#define SCUTTLE_SIM_FLAGS_H_

#include <functional>
#include <span>
#include <string_view>

#include "absl/status/status.h"

namespace scuttle::sim {

struct FlagSpec {
  std::string_view name;   // without "--"
  std::string_view value;  // value placeholder for help; empty for a boolean flag
  std::string_view help;
  std::function<absl::Status(std::string_view)> set;
};

// Applies every flag in args; the first unknown flag, missing or unexpected value, or
// setter error comes back as InvalidArgument naming the flag.
absl::Status ParseFlags(std::span<const std::string_view> args, std::span<const FlagSpec> specs);

}  // namespace scuttle::sim

#endif  // SCUTTLE_SIM_FLAGS_H_
