// Debian 12's abseil is built with ABSL_OPTION_USE_STD_STRING_VIEW=0, so absl::string_view
// and std::string_view are distinct types. scuttle speaks std::string_view everywhere and
// converts at the (few) abseil call sites with AV().
#ifndef SCUTTLE_WIRE_ABSL_COMPAT_H_
#define SCUTTLE_WIRE_ABSL_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace scuttle {

inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace scuttle

#endif  // SCUTTLE_WIRE_ABSL_COMPAT_H_
