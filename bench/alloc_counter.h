// Counting global operator new for the load and cluster benchmarks: every C++ allocation
// in the process bumps one relaxed atomic. Define SCUTTLE_BENCH_COUNT_ALLOCS in exactly
// one translation unit of a binary (its main file) before including this header to
// install the replacements; other files may include it for AllocCount() only.
//
// malloc() calls made directly by C code (liburing, glibc) are not counted; the engine
// and the transports allocate through operator new only.
#ifndef SCUTTLE_BENCH_ALLOC_COUNTER_H_
#define SCUTTLE_BENCH_ALLOC_COUNTER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace scuttle::bench {

inline std::atomic<uint64_t> g_alloc_count{0};
inline std::atomic<uint64_t> g_alloc_bytes{0};

inline uint64_t AllocCount() { return g_alloc_count.load(std::memory_order_relaxed); }
inline uint64_t AllocBytes() { return g_alloc_bytes.load(std::memory_order_relaxed); }

inline void* CountedAlloc(std::size_t n, std::size_t align) {
  g_alloc_count.fetch_add(1, std::memory_order_relaxed);
  g_alloc_bytes.fetch_add(n, std::memory_order_relaxed);
  if (n == 0) n = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(n);
  } else if (::posix_memalign(&p, align, n) != 0) {
    p = nullptr;
  }
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace scuttle::bench

#ifdef SCUTTLE_BENCH_COUNT_ALLOCS
void* operator new(std::size_t n) {
  return scuttle::bench::CountedAlloc(n, alignof(std::max_align_t));
}
void* operator new[](std::size_t n) {
  return scuttle::bench::CountedAlloc(n, alignof(std::max_align_t));
}
void* operator new(std::size_t n, std::align_val_t a) {
  return scuttle::bench::CountedAlloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return scuttle::bench::CountedAlloc(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return scuttle::bench::CountedAlloc(n, alignof(std::max_align_t));
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return scuttle::bench::CountedAlloc(n, alignof(std::max_align_t));
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#endif  // SCUTTLE_BENCH_COUNT_ALLOCS

#endif  // SCUTTLE_BENCH_ALLOC_COUNTER_H_
