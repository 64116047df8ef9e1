// The one clock of the process: CLOCK_MONOTONIC in microseconds. Only io/ reads it; the
// engine is sans-IO and receives time as an argument (DESIGN §6).
#ifndef SCUTTLE_IO_CLOCK_H_
#define SCUTTLE_IO_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace scuttle::io {

inline int64_t MonotonicNowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1'000;
}

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_CLOCK_H_
