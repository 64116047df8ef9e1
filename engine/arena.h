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

class KvArena {
 public:
  using Ref = uint64_t;
  // Chunks start small and double up to kChunkBytes, so the many nodes that hold a few
  // keys do not each reserve 256 KiB (every replica holds an arena per owner with keys:
  // at 10,000 nodes even 4 KiB each is 40 MB per replica).
  static constexpr size_t kFirstChunkBytes = 256;
  static constexpr size_t kChunkBytes = 256 * 1024;

  // Copies a and b back to back; returns the reference of the first byte.
  Ref Append(std::string_view a, std::string_view b);
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
    std::unique_ptr<char[]> data;
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
