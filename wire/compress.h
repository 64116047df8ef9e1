// Optional zstd compression of a datagram's payload (DESIGN §8 "Wire format"), sans-IO.
//
// A compressed datagram keeps the 16-byte PacketHeader (flags gain kFlagCompressed;
// payload_bytes is the compressed length) followed by one zstd frame whose content size is
// recorded in its frame header. Composition on send: encode -> compress -> seal (the header
// is the seal's associated data, so the flag is authenticated); on receive: open ->
// decompress -> decode.
//
// A peer controls the frame, so decompression is bounded: the frame must declare its
// content size, that size must fit the datagram bound, and the decompressor writes into a
// fixed buffer of that bound (a frame that would expand further fails instead: a
// "decompression bomb" is a counted drop, never an allocation). Both zstd contexts live in
// fixed workspaces sized once (ZSTD_initStatic*), so compressing or decompressing a datagram
// allocates nothing, whatever the input.
#ifndef SCUTTLE_WIRE_COMPRESS_H_
#define SCUTTLE_WIRE_COMPRESS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"

namespace scuttle::wire {

enum class Compression : uint8_t { kNone = 0, kZstd = 1 };
const char* CompressionName(Compression c);
// "none" or "zstd".
absl::StatusOr<Compression> ParseCompression(std::string_view name);

inline constexpr int kDefaultZstdLevel = 1;
inline constexpr int kMaxZstdLevel = 19;
// zstd's fast levels (-1 = fastest strategy with an acceleration of 1): literals stay
// uncompressed, which is most of level 1's cost on ~1 KB datagrams (Huffman tables built
// per frame): ~2.5x cheaper there for ~5-15 % more bytes (bench/README.md §8).
inline constexpr int kMinZstdLevel = -7;
// A level Compressor accepts: kMinZstdLevel..-1 or 1..kMaxZstdLevel (0 would mean zstd's
// own default, 3; callers say 3).
constexpr bool ValidZstdLevel(int level) {
  return level != 0 && level >= kMinZstdLevel && level <= kMaxZstdLevel;
}
// Payloads shorter than this are sent as they are: a zstd frame's own header and the CPU
// are not worth it.
inline constexpr size_t kMinCompressPayloadBytes = 128;

// Why a compressed datagram did not decompress.
enum class DecompressError : uint8_t {
  kBadFrame,    // not a zstd frame, corrupt or truncated data, or its checks failed
  kNoSize,      // the frame does not declare its content size
  kTooLarge,    // declared or actual content beyond the bound (a decompression bomb)
  kSizeMismatch // content size differs from what the frame declared
};

// One per engine (not thread-safe): a compression context, a decompression context and a
// scratch buffer, all allocated by the constructor and reused for every datagram.
class Compressor {
 public:
  // `max_datagram_bytes` bounds both directions (header included).
  // REQUIRES: ValidZstdLevel(level); max_datagram_bytes > kHeaderBytes.
  Compressor(int level, size_t max_datagram_bytes);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  int level() const { return level_; }

  // Compresses datagram[kHeaderBytes, len) in place when the result is shorter; returns
  // the datagram's new length (kFlagCompressed set, payload_bytes updated), or `len` when
  // compression would not save bytes or failed (the datagram is then untouched).
  // REQUIRES: datagram holds a finished plaintext datagram of `len` bytes.
  size_t CompressInPlace(std::span<uint8_t> datagram, size_t len);

  // Decompresses a datagram whose header says kFlagCompressed into `out`: the header with
  // the flag cleared and payload_bytes = the content size, then the content. The content
  // may be at most min(out.size(), max_datagram_bytes) - kHeaderBytes bytes.
  // REQUIRES: in.size() >= kHeaderBytes and its payload_bytes matches; out does not overlap.
  bool Decompress(std::span<const uint8_t> in, std::span<uint8_t> out,
                  std::span<const uint8_t>* datagram, DecompressError* error);

 private:
  struct Contexts;
  int level_;
  size_t max_datagram_bytes_;
  std::unique_ptr<Contexts> ctx_;
};

}  // namespace scuttle::wire

#endif  // SCUTTLE_WIRE_COMPRESS_H_
