#include "node/data_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace scuttle {
namespace {

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/scuttle-datadir-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(PrepareDataDir(dir_).ok());
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string Path() const { return dir_ + "/" + kStateFileName; }
  std::string ReadFile() const {
    std::ifstream f(Path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  void WriteFile(const std::string& data) const {
    std::ofstream f(Path(), std::ios::binary | std::ios::trunc);
    f << data;
  }

  static PersistedState Sample() {
    PersistedState s;
    s.generation = 42;
    s.written_unix_us = 1'700'000'000'000'000;
    s.keys.push_back({"svc/a", "10.0.0.1:80", 3, 0});
    s.keys.push_back({"lease/\x01\xff", std::string("bin\0ary", 7), 9, 1'700'000'030'000'000});
    s.keys.push_back({"empty", "", 10, 0});
    s.members = {"10.0.0.2:7400", "[fd00::2]:7400"};
    return s;
  }

  std::string dir_;
};

TEST_F(DataDirTest, MissingFileIsAFirstStart) {
  auto st = ReadState(dir_, 1 << 20);
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->has_value());
}

TEST_F(DataDirTest, RoundTrip) {
  const PersistedState in = Sample();
  ASSERT_TRUE(WriteState(dir_, in).ok());
  auto out = ReadState(dir_, 1 << 20);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE(out->has_value());
  const PersistedState& s = **out;
  EXPECT_EQ(s.generation, 42u);
  EXPECT_EQ(s.written_unix_us, in.written_unix_us);
  ASSERT_EQ(s.keys.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(s.keys[i].key, in.keys[i].key);
    EXPECT_EQ(s.keys[i].value, in.keys[i].value);
    EXPECT_EQ(s.keys[i].version, in.keys[i].version);
    EXPECT_EQ(s.keys[i].expires_unix_us, in.keys[i].expires_unix_us);
  }
  EXPECT_EQ(s.members, in.members);
  // A rewrite replaces the file whole; no temporary file is left behind.
  PersistedState smaller;
  smaller.generation = 43;
  ASSERT_TRUE(WriteState(dir_, smaller).ok());
  out = ReadState(dir_, 1 << 20);
  ASSERT_TRUE(out.ok() && out->has_value());
  EXPECT_TRUE((*out)->keys.empty());
  EXPECT_NE(::access((Path() + ".tmp").c_str(), F_OK), 0);
}

TEST_F(DataDirTest, EveryFlippedByteIsDetected) {
  ASSERT_TRUE(WriteState(dir_, Sample()).ok());
  const std::string good = ReadFile();
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    WriteFile(bad);
    auto st = ReadState(dir_, 1 << 20);
    ASSERT_FALSE(st.ok()) << "flipped byte " << i << " was loaded";
    EXPECT_EQ(st.status().code(), absl::StatusCode::kDataLoss);
  }
}

TEST_F(DataDirTest, EveryTruncationAndExtensionIsDetected) {
  ASSERT_TRUE(WriteState(dir_, Sample()).ok());
  const std::string good = ReadFile();
  for (size_t n = 0; n < good.size(); ++n) {
    WriteFile(good.substr(0, n));
    auto st = ReadState(dir_, 1 << 20);
    ASSERT_FALSE(st.ok()) << "a file torn at " << n << " bytes was loaded";
    EXPECT_EQ(st.status().code(), absl::StatusCode::kDataLoss);
  }
  WriteFile(good + "x");
  EXPECT_EQ(ReadState(dir_, 1 << 20).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(DataDirTest, OversizedFileIsRefused) {
  ASSERT_TRUE(WriteState(dir_, Sample()).ok());
  EXPECT_EQ(ReadState(dir_, 16).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace scuttle
