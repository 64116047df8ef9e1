// KvArena: chunked bump allocator for one node's keys and values (LevelDB util/arena.h
// idea), with references that survive compaction by being rewritten.
//
// A reference is (chunk << 32 | offset). Freed bytes are only counted; Compact() copies
// the live bytes into fresh chunks, driven by NodeState when garbage outweighs live data,
// so the amortized cost per overwrite stays O(1).
#ifndef SCUTTLE_ENGINE_ARENA_H_
#define SCUTTLE_ENGINE_ARENA_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace scuttle {

// Large blocks for a state's tables and pages: a block of at least kHugePageBytes is
// 2 MiB-aligned and advised as a transparent huge page (madvise; Linux's default THP mode
// honours it), because applying into a large state is a string of random accesses, and with
// 4 KiB pages each one also misses the TLB. Smaller blocks are plain malloc. The contents
// are uninitialized. An allocation failure aborts, like operator new without exceptions.
inline constexpr size_t kHugePageBytes = size_t{2} << 20;
void* AllocBlock(size_t bytes);
struct BlockDeleter {
  void operator()(void* p) const;
};
template <typename T>
using BlockPtr = std::unique_ptr<T[], BlockDeleter>;
template <typename T>
BlockPtr<T> AllocBlockOf(size_t n) {
  return BlockPtr<T>(static_cast<T*>(AllocBlock(n * sizeof(T))));
}

// a[0, n) == b[0, n). Keys are mostly short: 8 to 16 bytes compare as two overlapping
// 8-byte words, inline, instead of a call into the library's memcmp (a hash-table probe
// that meets its key does this once per lookup).
inline bool KeyBytesEqual(const char* a, const char* b, size_t n) {
  if (n >= 8 && n <= 16) {
    uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a, 8);
    std::memcpy(&b0, b, 8);
    std::memcpy(&a1, a + n - 8, 8);
    std::memcpy(&b1, b + n - 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
  }
  return std::memcmp(a, b, n) == 0;
}

class KvArena {
 public:
  using Ref = uint64_t;
  // Chunks start small and double up to kChunkBytes, so the many nodes that hold a few
  // keys do not each reserve a large chunk (every replica holds an arena per owner with
  // keys: at 10,000 nodes even 4 KiB each is 40 MB per replica), while a large state's
  // chunks are huge pages (AllocBlock).
  static constexpr size_t kFirstChunkBytes = 256;
  static constexpr size_t kChunkBytes = kHugePageBytes;

  // Copies a and b back to back; returns the reference of the first byte.
  Ref Append(std::string_view a, std::string_view b);
  // Makes the first chunk hold `bytes` (at most kChunkBytes), for a caller that knows what
  // it will append (compaction): one chunk instead of a doubling series of small ones.
  // REQUIRES: nothing allocated yet.
  void Reserve(size_t bytes);
  const char* At(Ref ref) const {
    return chunks_[ref >> 32].data.get() + static_cast<uint32_t>(ref);
  }
  void Free(size_t bytes) { dead_bytes_ += bytes; }

  size_t allocated_bytes() const { return allocated_bytes_; }
  size_t dead_bytes() const { return dead_bytes_; }
  size_t live_bytes() const { return used_bytes_ - dead_bytes_; }
  size_t used_bytes() const { return used_bytes_; }
  bool ShouldCompact() const {
    return dead_bytes_ > (1u << 20) && dead_bytes_ > live_bytes();
  }
  void Clear();
  void Swap(KvArena& other) noexcept;

 private:
  struct Chunk {
    BlockPtr<char> data;
    size_t size = 0;
    size_t used = 0;
  };
  std::vector<Chunk> chunks_;
  size_t allocated_bytes_ = 0;
  size_t used_bytes_ = 0;
  size_t dead_bytes_ = 0;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_ARENA_H_
