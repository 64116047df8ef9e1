// Engine: per-datagram zstd compression glue (wire/compress.h) and which peers take it.
#include "engine/engine.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {

// Compression sits inside the seal (encode -> compress -> seal; open -> inflate -> decode),
// so a compressed payload is authenticated before the decompressor sees it.
bool Engine::Inflate(std::span<const uint8_t>* plain) {
  wire::PacketHeader h;
  if (compressor_ == nullptr || !wire::PeekHeader(*plain, &h) ||
      (h.flags & wire::kFlagCompressed) == 0) {
    return true;
  }
  if (h.payload_bytes != plain->size() - wire::kHeaderBytes) {
    ++stats_.decode_drops[static_cast<size_t>(wire::DropReason::kBadLength)];
    return false;
  }
  std::span<const uint8_t> out;
  wire::DecompressError err;
  if (!compressor_->Decompress(*plain, inflate_buf_, &out, &err)) {
    ++stats_.decode_drops[static_cast<size_t>(wire::DropReason::kBadCompression)];
    return false;
  }
  CompressionStats& cs = stats_.compression;
  ++cs.compressed_in;
  cs.wire_bytes_in += plain->size() - wire::kHeaderBytes;
  cs.plain_bytes_in += out.size() - wire::kHeaderBytes;
  *plain = out;
  return true;
}

std::span<const uint8_t> Engine::Deflate(const Endpoint& to, std::span<const uint8_t> packet) {
  if (compressor_ == nullptr || !zstd_peers_.contains(to)) return packet;
  uint8_t* start = const_cast<uint8_t*>(packet.data());  // our own send slot
  const size_t n = compressor_->CompressInPlace(std::span<uint8_t>(start, packet.size()),
                                                packet.size());
  CompressionStats& cs = stats_.compression;
  if (n == packet.size()) {
    ++cs.incompressible_out;
    return packet;
  }
  ++cs.compressed_out;
  cs.plain_bytes_out += packet.size() - wire::kHeaderBytes;
  cs.wire_bytes_out += n - wire::kHeaderBytes;
  return packet.first(n);
}

// The address's latest datagram says whether it decompresses (bounded set; a peer that
// restarts without compression is dropped from it by its first datagram).
void Engine::NotePeerCompression(const Endpoint& from, bool zstd) {
  if (!zstd) {
    zstd_peers_.erase(from);
    return;
  }
  if (zstd_peers_.contains(from)) return;
  if (zstd_peers_.size() >= std::max<size_t>(1, config_.compression.max_peers)) {
    zstd_peers_.erase(zstd_peers_.begin());
  }
  zstd_peers_.insert(from);
}

}  // namespace scuttle
