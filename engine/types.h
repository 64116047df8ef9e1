// Small value types shared by every engine part. Units ride in names (DESIGN/STYLE):
// times are microseconds on the caller's clock (`*_us`); the engine never reads a clock.
#ifndef SCUTTLE_ENGINE_TYPES_H_
#define SCUTTLE_ENGINE_TYPES_H_

#include <cstddef>
#include <cstdint>

namespace scuttle {

// seed 000: per-owner update counter; Demers' timestamps (unique, totally ordered per
// owner), so last-writer-wins within an owner is exact.
using Version = uint64_t;
// Incarnation of a node name; a restart takes a larger one (DESIGN §1).
using Generation = uint64_t;
// Caller-supplied time in microseconds. Monotonic within one engine.
using TimeUs = int64_t;

inline constexpr TimeUs kUsPerMs = 1000;
inline constexpr TimeUs kUsPerSec = 1000 * 1000;

enum class KeyStatus : uint8_t {
  kSet = 0,
  kTombstone = 1,  // seed 000 / Demers death certificate, removed by GC
  kExpiring = 2,   // a set with a TTL deadline (owner only; replicated as a set)
};

// Explicit bounds (DESIGN §1): exceeding one is a clear error, never a crash.
struct Limits {
  size_t max_key_bytes = 1024;
  size_t max_value_bytes = 60 * 1024;
  size_t max_keys_per_node = 4 * 1024 * 1024;
  size_t max_nodes = 16 * 1024;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_TYPES_H_
