#include "wire/compress.h"

#include <zstd.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "wire/packet.h"

namespace scuttle::wire {
namespace {

constexpr size_t kBound = kMaxUdpPayloadBytes;

// A plaintext datagram: a valid header and `payload` after it.
std::vector<uint8_t> Datagram(const std::string& payload) {
  std::vector<uint8_t> d(kHeaderBytes + payload.size());
  PacketHeader h{};
  h.magic = kMagic;
  h.version = kProtocolVersion;
  h.shard = 3;
  h.payload_bytes = static_cast<uint32_t>(payload.size());
  h.cluster_hash = 0xabcdef01;
  std::memcpy(d.data(), &h, kHeaderBytes);
  std::memcpy(d.data() + kHeaderBytes, payload.data(), payload.size());
  return d;
}

// A datagram whose compressed payload is `frame` as given.
std::vector<uint8_t> Framed(const std::vector<uint8_t>& frame) {
  std::vector<uint8_t> d = Datagram(std::string(frame.begin(), frame.end()));
  d[offsetof(PacketHeader, flags)] |= kFlagCompressed;
  return d;
}

std::string Json(size_t bytes) {
  std::string s;
  for (int i = 0; s.size() < bytes; ++i) {
    s += "{\"service\":\"checkout-" + std::to_string(i % 7) +
         "\",\"port\":8080,\"zone\":\"eu-west-1b\",\"healthy\":true},";
  }
  s.resize(bytes);
  return s;
}

bool Inflate(Compressor& c, const std::vector<uint8_t>& in, std::vector<uint8_t>* out,
             DecompressError* err) {
  std::vector<uint8_t> buf(kBound + 64);
  std::span<const uint8_t> d;
  if (!c.Decompress(in, buf, &d, err)) return false;
  out->assign(d.begin(), d.end());
  return true;
}

TEST(Compress, ParseNames) {
  EXPECT_EQ(*ParseCompression("zstd"), Compression::kZstd);
  EXPECT_EQ(*ParseCompression("none"), Compression::kNone);
  EXPECT_FALSE(ParseCompression("lz4").ok());
  EXPECT_STREQ(CompressionName(Compression::kZstd), "zstd");
}

TEST(Compress, RoundTripKeepsHeaderAndSetsFlag) {
  Compressor c(kDefaultZstdLevel, kBound);
  for (size_t n : {size_t{200}, size_t{1400}, size_t{65000}}) {
    const std::vector<uint8_t> plain = Datagram(Json(n));
    std::vector<uint8_t> d = plain;
    const size_t len = c.CompressInPlace(d, d.size());
    ASSERT_LT(len, plain.size()) << n;
    d.resize(len);
    PacketHeader h;
    std::memcpy(&h, d.data(), kHeaderBytes);
    EXPECT_EQ(h.flags, kFlagCompressed);
    EXPECT_EQ(h.payload_bytes, len - kHeaderBytes);
    EXPECT_EQ(h.shard, 3);
    EXPECT_EQ(h.cluster_hash, 0xabcdef01u);
    std::vector<uint8_t> back;
    DecompressError err;
    ASSERT_TRUE(Inflate(c, d, &back, &err)) << n;
    EXPECT_EQ(back, plain) << n;
  }
}

// A fast (negative) level is a sender-side choice: any receiver decompresses its frames,
// whatever level the receiver itself sends with.
TEST(Compress, FastLevelsRoundTripThroughAnyReceiver) {
  EXPECT_FALSE(ValidZstdLevel(0));
  EXPECT_FALSE(ValidZstdLevel(kMinZstdLevel - 1));
  EXPECT_FALSE(ValidZstdLevel(kMaxZstdLevel + 1));
  Compressor receiver(kDefaultZstdLevel, kBound);
  for (int level : {-1, -3, kMinZstdLevel}) {
    Compressor sender(level, kBound);
    for (size_t n : {size_t{1000}, size_t{65000}}) {
      const std::vector<uint8_t> plain = Datagram(Json(n));
      std::vector<uint8_t> d = plain;
      const size_t len = sender.CompressInPlace(d, d.size());
      ASSERT_LT(len, plain.size()) << level << " " << n;
      d.resize(len);
      std::vector<uint8_t> back;
      DecompressError err;
      ASSERT_TRUE(Inflate(receiver, d, &back, &err)) << level << " " << n;
      EXPECT_EQ(back, plain) << level << " " << n;
    }
  }
}

TEST(Compress, IncompressibleAndTinyPayloadsStayPlain) {
  Compressor c(3, kBound);
  std::string random(1400, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& ch : random) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    ch = static_cast<char>(x);
  }
  for (const std::string& p : {random, std::string(kMinCompressPayloadBytes - 1, 'a')}) {
    const std::vector<uint8_t> plain = Datagram(p);
    std::vector<uint8_t> d = plain;
    EXPECT_EQ(c.CompressInPlace(d, d.size()), plain.size());
    EXPECT_EQ(d, plain);  // untouched
  }
}

TEST(Compress, CorruptFramesAreRefused) {
  Compressor c(kDefaultZstdLevel, kBound);
  std::vector<uint8_t> d = Datagram(Json(4000));
  d.resize(c.CompressInPlace(d, d.size()));
  std::vector<uint8_t> out;
  DecompressError err;
  // Not a zstd frame at all.
  EXPECT_FALSE(Inflate(c, Framed({1, 2, 3, 4, 5, 6, 7, 8, 9}), &out, &err));
  EXPECT_EQ(err, DecompressError::kBadFrame);
  // Truncated: the frame header promises more than is there.
  std::vector<uint8_t> frame(d.begin() + kHeaderBytes, d.end());
  std::vector<uint8_t> cut(frame.begin(), frame.end() - 5);
  EXPECT_FALSE(Inflate(c, Framed(cut), &out, &err));
  EXPECT_EQ(err, DecompressError::kBadFrame);
  // Trailing bytes after the frame.
  std::vector<uint8_t> extra = frame;
  extra.push_back(0);
  EXPECT_FALSE(Inflate(c, Framed(extra), &out, &err));
  EXPECT_EQ(err, DecompressError::kBadFrame);
  // Flipped bits anywhere: refused, or (rarely, inside literals) decoded to other bytes of
  // the declared size; never a crash and never beyond the bound.
  for (size_t i = 0; i < frame.size(); ++i) {
    std::vector<uint8_t> f = frame;
    f[i] ^= static_cast<uint8_t>(1u << (i % 8));
    if (Inflate(c, Framed(f), &out, &err)) {
      EXPECT_LE(out.size(), kBound);
      EXPECT_EQ(out.size(), 4000 + kHeaderBytes);
    }
  }
}

TEST(Compress, BombsAndUnsizedFramesAreRefused) {
  Compressor c(kDefaultZstdLevel, kBound);
  std::vector<uint8_t> out;
  DecompressError err;
  // 16 MB of zeros in ~600 bytes: declared far beyond the bound.
  const std::string zeros(16 << 20, '\0');
  std::vector<uint8_t> bomb(ZSTD_compressBound(zeros.size()));
  bomb.resize(ZSTD_compress(bomb.data(), bomb.size(), zeros.data(), zeros.size(), 19));
  ASSERT_LT(bomb.size(), 2000u);
  EXPECT_FALSE(Inflate(c, Framed(bomb), &out, &err));
  EXPECT_EQ(err, DecompressError::kTooLarge);
  // Just over the bound (the datagram would be 65,508 bytes).
  const std::string over(kBound - kHeaderBytes + 1, 'x');
  std::vector<uint8_t> f(ZSTD_compressBound(over.size()));
  f.resize(ZSTD_compress(f.data(), f.size(), over.data(), over.size(), 1));
  EXPECT_FALSE(Inflate(c, Framed(f), &out, &err));
  EXPECT_EQ(err, DecompressError::kTooLarge);
  // A streamed frame without a content size: refused before decompressing.
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ASSERT_EQ(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0), 0u);
  std::vector<uint8_t> streamed(ZSTD_compressBound(zeros.size()));
  ZSTD_outBuffer o{streamed.data(), streamed.size(), 0};
  ZSTD_inBuffer i{zeros.data(), 1000, 0};
  ASSERT_EQ(ZSTD_compressStream2(cctx, &o, &i, ZSTD_e_end), 0u);
  ZSTD_freeCCtx(cctx);
  streamed.resize(o.pos);
  EXPECT_FALSE(Inflate(c, Framed(streamed), &out, &err));
  EXPECT_EQ(err, DecompressError::kNoSize);
  // A smaller output buffer is the bound when it is smaller.
  std::vector<uint8_t> ok = Datagram(Json(3000));
  ok.resize(c.CompressInPlace(ok, ok.size()));
  std::vector<uint8_t> small(1000);
  std::span<const uint8_t> d;
  EXPECT_FALSE(c.Decompress(ok, small, &d, &err));
  EXPECT_EQ(err, DecompressError::kTooLarge);
}

TEST(Compress, EveryLevelFitsItsWorkspace) {
  for (int level : {kMinZstdLevel, -3, -1, 1, 4, 7, 10, 13, 16, kMaxZstdLevel}) {
    Compressor c(level, kBound);
    std::vector<uint8_t> d = Datagram(Json(kBound - kHeaderBytes));
    EXPECT_LT(c.CompressInPlace(d, d.size()), d.size()) << level;
  }
}

}  // namespace
}  // namespace scuttle::wire
