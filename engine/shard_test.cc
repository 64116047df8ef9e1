// The partition function (issue #18, engine/shard.h): stable and uniform.
#include "engine/shard.h"

#include <sodium.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

// SipHash-2-4 as libsodium implements it must be the reference function: the paper's test
// vector (key 00..0f, empty message) read little-endian is 0x726fdb47dd0e0e31.
TEST(ShardTest, SipHashMatchesTheReferenceVector) {
  unsigned char key[16];
  for (int i = 0; i < 16; ++i) key[i] = static_cast<unsigned char>(i);
  unsigned char out[8];
  crypto_shorthash_siphash24(out, nullptr, 0, key);
  uint64_t h = 0;
  for (int i = 7; i >= 0; --i) h = (h << 8) | out[i];
  EXPECT_EQ(h, 0x726fdb47dd0e0e31ull);
}

// Golden values: every node of a cluster must agree forever, so a change here is a wire
// format break (docs/shards.md). They were cross-checked against an independent
// implementation of SipHash-2-4 written from the paper (Aumasson & Bernstein, 2012).
TEST(ShardTest, PartitionIsPinned) {
  EXPECT_EQ(ShardHash(""), 0xbb3a2b838024f486ull);
  EXPECT_EQ(ShardHash("a"), 0x181a841e67e7087full);
  EXPECT_EQ(ShardHash("service/web-1/port"), 0x3d945c1920dfc26full);
  const std::vector<std::string> keys = {"a", "b", "k0", "k1", "user:42", "service/web-1/port"};
  std::string got;
  for (uint16_t n : {2, 3, 4, 7, 64}) {
    for (const std::string& k : keys) absl::StrAppend(&got, ShardOf(k, n), ",");
    got += ";";
  }
  EXPECT_EQ(got, "1,0,0,0,0,1,;0,1,2,0,1,1,;3,2,0,2,2,3,;5,6,6,1,4,4,;63,54,4,14,22,47,;");
}

TEST(ShardTest, OneShardTakesEverything) {
  for (const char* k : {"", "a", "zzz", "__scuttle/locality"}) EXPECT_EQ(ShardOf(k, 1), 0);
}

TEST(ShardTest, ShardIsBelowTheCount) {
  for (uint16_t n = 1; n <= 40; ++n) {
    for (int i = 0; i < 200; ++i) EXPECT_LT(ShardOf(absl::StrCat("key-", i), n), n);
  }
  EXPECT_LT(ShardOf("x", kMaxShards), kMaxShards);
}

// Pearson's chi-squared over 100,000 sequential keys (the structured names applications
// use: "key-0", "key-1", ...) against the uniform distribution, for counts that are and
// are not powers of two. The hash is fixed, so this is a property of the function, not a
// random trial; the bound is the 0.999 quantile (Wilson-Hilferty), which a biased
// partition (e.g. FNV-1a's parity for n = 2 on such keys) exceeds by orders of magnitude.
double ChiSquared(const std::vector<uint64_t>& counts, uint64_t total) {
  const double expected = static_cast<double>(total) / static_cast<double>(counts.size());
  double chi = 0;
  for (uint64_t c : counts) chi += (static_cast<double>(c) - expected) *
                                   (static_cast<double>(c) - expected) / expected;
  return chi;
}

double ChiSquaredQuantile999(double df) {
  const double z = 3.090;  // the standard normal 0.999 quantile
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3);
}

TEST(ShardTest, PartitionIsUniform) {
  constexpr uint64_t kKeys = 100000;
  for (uint16_t n : {2, 3, 4, 7, 16, 64, 256}) {
    for (const char* prefix : {"key-", "/app/users/", ""}) {
      std::vector<uint64_t> counts(n, 0);
      for (uint64_t i = 0; i < kKeys; ++i) ++counts[ShardOf(absl::StrCat(prefix, i), n)];
      const double chi = ChiSquared(counts, kKeys);
      EXPECT_LT(chi, ChiSquaredQuantile999(n - 1)) << "n=" << n << " prefix=" << prefix;
    }
  }
}

// Keys one byte apart land on independent shards (no run of neighbours shares a shard).
TEST(ShardTest, NeighbouringKeysSpread) {
  int same = 0;
  for (int c = 0; c < 255; ++c) {
    const std::string a(1, static_cast<char>(c)), b(1, static_cast<char>(c + 1));
    same += ShardOf(a, 2) == ShardOf(b, 2);
  }
  EXPECT_GT(same, 90);
  EXPECT_LT(same, 165);
}

TEST(ShardTest, NodeMetadataGoesToEveryShard) {
  EXPECT_TRUE(IsReplicatedToAllShards("__scuttle/locality"));
  EXPECT_FALSE(IsReplicatedToAllShards("app/key"));
}

}  // namespace
}  // namespace scuttle
