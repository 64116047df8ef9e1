#include "wire/compress.h"

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_initStatic*: fixed workspaces, no allocation
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "wire/packet.h"

namespace scuttle::wire {

const char* CompressionName(Compression c) { return c == Compression::kZstd ? "zstd" : "none"; }

absl::StatusOr<Compression> ParseCompression(std::string_view name) {
  if (name == "none") return Compression::kNone;
  if (name == "zstd") return Compression::kZstd;
  return absl::InvalidArgumentError("unknown compression \"" + std::string(name) +
                                    "\" (none or zstd)");
}

struct Compressor::Contexts {
  // uint64_t storage: zstd wants 8-byte aligned workspaces.
  std::vector<uint64_t> cctx_space;
  std::vector<uint64_t> dctx_space;
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  std::vector<uint8_t> scratch;  // compressed payload before it replaces the plaintext
};

Compressor::Compressor(int level, size_t max_datagram_bytes)
    : level_(level), max_datagram_bytes_(max_datagram_bytes), ctx_(std::make_unique<Contexts>()) {
  assert(ValidZstdLevel(level));
  assert(max_datagram_bytes > kHeaderBytes);
  // Parameters for the largest payload: zstd picks smaller tables for smaller inputs, so
  // this workspace serves every datagram.
  const ZSTD_compressionParameters params =
      ZSTD_getCParams(level, max_datagram_bytes - kHeaderBytes, 0);
  const size_t cbytes = ZSTD_estimateCCtxSize_usingCParams(params);
  ctx_->cctx_space.resize((cbytes + 7) / 8);
  ctx_->cctx = ZSTD_initStaticCCtx(ctx_->cctx_space.data(), ctx_->cctx_space.size() * 8);
  const size_t dbytes = ZSTD_estimateDCtxSize();
  ctx_->dctx_space.resize((dbytes + 7) / 8);
  ctx_->dctx = ZSTD_initStaticDCtx(ctx_->dctx_space.data(), ctx_->dctx_space.size() * 8);
  ctx_->scratch.resize(ZSTD_compressBound(max_datagram_bytes - kHeaderBytes));
}

Compressor::~Compressor() = default;  // static contexts live in the workspaces

size_t Compressor::CompressInPlace(std::span<uint8_t> datagram, size_t len) {
  if (ctx_->cctx == nullptr || len < kHeaderBytes + kMinCompressPayloadBytes ||
      len > max_datagram_bytes_) {
    return len;
  }
  uint8_t* payload = datagram.data() + kHeaderBytes;
  const size_t n = len - kHeaderBytes;
  const size_t c = ZSTD_compressCCtx(ctx_->cctx, ctx_->scratch.data(), ctx_->scratch.size(),
                                     payload, n, level_);
  if (ZSTD_isError(c) || c >= n) return len;
  std::memcpy(payload, ctx_->scratch.data(), c);
  PacketHeader h;
  std::memcpy(&h, datagram.data(), kHeaderBytes);
  h.flags |= kFlagCompressed;
  h.payload_bytes = static_cast<uint32_t>(c);
  std::memcpy(datagram.data(), &h, kHeaderBytes);
  return kHeaderBytes + c;
}

bool Compressor::Decompress(std::span<const uint8_t> in, std::span<uint8_t> out,
                            std::span<const uint8_t>* datagram, DecompressError* error) {
  const uint8_t* src = in.data() + kHeaderBytes;
  const size_t n = in.size() - kHeaderBytes;
  const size_t cap = std::min(out.size(), max_datagram_bytes_);
  if (ctx_->dctx == nullptr || cap <= kHeaderBytes) {
    *error = DecompressError::kTooLarge;
    return false;
  }
  const size_t bound = cap - kHeaderBytes;
  const unsigned long long declared = ZSTD_getFrameContentSize(src, n);
  if (declared == ZSTD_CONTENTSIZE_ERROR) {
    *error = DecompressError::kBadFrame;
    return false;
  }
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    *error = DecompressError::kNoSize;
    return false;
  }
  if (declared > bound) {
    *error = DecompressError::kTooLarge;
    return false;
  }
  // Exactly one frame, nothing after it (a second frame could carry content the first
  // frame's declared size does not account for).
  if (ZSTD_findFrameCompressedSize(src, n) != n) {
    *error = DecompressError::kBadFrame;
    return false;
  }
  const size_t r = ZSTD_decompressDCtx(ctx_->dctx, out.data() + kHeaderBytes, bound, src, n);
  if (ZSTD_isError(r)) {
    *error = ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? DecompressError::kTooLarge
                                                                  : DecompressError::kBadFrame;
    return false;
  }
  if (r != declared) {
    *error = DecompressError::kSizeMismatch;
    return false;
  }
  PacketHeader h;
  std::memcpy(&h, in.data(), kHeaderBytes);
  h.flags &= static_cast<uint8_t>(~kFlagCompressed);
  h.payload_bytes = static_cast<uint32_t>(r);
  std::memcpy(out.data(), &h, kHeaderBytes);
  *datagram = out.first(kHeaderBytes + r);
  return true;
}

}  // namespace scuttle::wire
