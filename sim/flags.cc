#include "sim/flags.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle::sim {

absl::Status ParseFlags(std::span<const std::string_view> args, std::span<const FlagSpec> specs) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg.substr(0, 2) != "--" || arg.size() == 2) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", AV(arg), "'"));
    }
    arg.remove_prefix(2);
    std::string_view value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) { return s.name == arg; });
    if (spec == specs.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", AV(arg)));
    }
    if (spec->value.empty()) {
      if (has_value) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", AV(arg), " takes no value"));
      }
    } else if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", AV(arg), " needs a value ", AV(spec->value)));
      }
      value = args[++i];
    }
    if (absl::Status s = spec->set(value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--", AV(arg), ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace scuttle::sim
