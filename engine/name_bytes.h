// NameBytes: a node name held in 16 bytes (std::string takes 32). Every replica holds the
// name of every member, N² names over a cluster (docs/detection.md "Memory per member"), and
// most names are short: up to 15 bytes sit inline; a longer one (names are at most a
// packet's worth, DESIGN §1 bounds them to 64 bytes) gets one exact heap block.
#ifndef SCUTTLE_ENGINE_NAME_BYTES_H_
#define SCUTTLE_ENGINE_NAME_BYTES_H_

#include <cstdint>
#include <cstring>
#include <string_view>

namespace scuttle {

class NameBytes {
 public:
  static constexpr size_t kInline = 15;

  explicit NameBytes(std::string_view s) {
    if (s.size() <= kInline) {
      std::memcpy(bytes_, s.data(), s.size());
      bytes_[kTag] = static_cast<unsigned char>(s.size());
      return;
    }
    char* p = new char[s.size()];
    std::memcpy(p, s.data(), s.size());
    const uint32_t len = static_cast<uint32_t>(s.size());
    std::memcpy(bytes_, &p, sizeof(p));
    std::memcpy(bytes_ + sizeof(p), &len, sizeof(len));
    bytes_[kTag] = kHeap;
  }
  ~NameBytes() {
    if (bytes_[kTag] == kHeap) delete[] HeapPtr();
  }
  NameBytes(const NameBytes&) = delete;
  NameBytes& operator=(const NameBytes&) = delete;

  std::string_view view() const {
    if (bytes_[kTag] != kHeap) {
      return {reinterpret_cast<const char*>(bytes_), bytes_[kTag]};
    }
    uint32_t len;
    std::memcpy(&len, bytes_ + sizeof(char*), sizeof(len));
    return {HeapPtr(), len};
  }

 private:
  static constexpr size_t kTag = 15;
  static constexpr unsigned char kHeap = 0xff;
  char* HeapPtr() const {
    char* p;
    std::memcpy(&p, bytes_, sizeof(p));
    return p;
  }
  // Inline: the bytes, then the length in bytes_[kTag]. Heap: pointer, 32-bit length,
  // bytes_[kTag] == kHeap.
  alignas(8) unsigned char bytes_[16] = {};
};
static_assert(sizeof(NameBytes) == 16);

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_NAME_BYTES_H_
