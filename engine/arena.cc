#include "engine/arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <utility>

namespace scuttle {

void* AllocBlock(size_t bytes) {
  void* p = nullptr;
  if (bytes >= kHugePageBytes) {
    const size_t rounded = (bytes + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
    p = std::aligned_alloc(kHugePageBytes, rounded);
    // Only a hint: without THP the block is ordinary memory.
    if (p != nullptr) (void)madvise(p, rounded, MADV_HUGEPAGE);
  } else {
    p = std::malloc(bytes == 0 ? 1 : bytes);
  }
  if (p == nullptr) std::abort();
  return p;
}

void BlockDeleter::operator()(void* p) const { std::free(p); }

KvArena::Ref KvArena::Append(std::string_view a, std::string_view b) {
  const size_t n = a.size() + b.size();
  if (chunks_.empty() || chunks_.back().size - chunks_.back().used < n) {
    // Oversized records get a chunk of their own; small ones share kChunkBytes chunks.
    const size_t grow = chunks_.empty()
                            ? kFirstChunkBytes
                            : std::min(kChunkBytes, chunks_.back().size * 2);
    const size_t size = std::max(grow, n);
    chunks_.push_back(Chunk{AllocBlockOf<char>(size), size, 0});
    allocated_bytes_ += size;
  }
  Chunk& c = chunks_.back();
  char* dst = c.data.get() + c.used;
  if (n > 0 && a.data() + a.size() == b.data()) {
    // Adjacent already (a key and its value in a received packet, or in this arena).
    std::memcpy(dst, a.data(), n);
  } else {
    if (!a.empty()) std::memcpy(dst, a.data(), a.size());
    if (!b.empty()) std::memcpy(dst + a.size(), b.data(), b.size());
  }
  const Ref ref = (static_cast<uint64_t>(chunks_.size() - 1) << 32) | c.used;
  c.used += n;
  used_bytes_ += n;
  return ref;
}

void KvArena::Reserve(size_t bytes) {
  assert(chunks_.empty());
  const size_t size = std::clamp(bytes, kFirstChunkBytes, kChunkBytes);
  chunks_.push_back(Chunk{AllocBlockOf<char>(size), size, 0});
  allocated_bytes_ += size;
}

void KvArena::Clear() {
  chunks_.clear();
  allocated_bytes_ = used_bytes_ = dead_bytes_ = 0;
}

void KvArena::Swap(KvArena& other) noexcept {
  std::swap(chunks_, other.chunks_);
  std::swap(allocated_bytes_, other.allocated_bytes_);
  std::swap(used_bytes_, other.used_bytes_);
  std::swap(dead_bytes_, other.dead_bytes_);
}

}  // namespace scuttle
