#include "engine/node_state.h"

#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace scuttle {
namespace {

std::map<std::string, std::string> Live(const NodeState& n) {
  std::map<std::string, std::string> m;
  n.Scan("", [&](const NodeState::Slot& s) { m[std::string(n.KeyOf(s))] = n.ValueOf(s); });
  return m;
}

std::vector<Version> VersionsAbove(const NodeState& n, Version v) {
  std::vector<Version> out;
  n.ForEachAbove(v, [&](const NodeState::Slot& s) {
    out.push_back(s.version);
    return true;
  });
  return out;
}

TEST(NodeStateTest, OwnerWritesTakeNextVersion) {
  NodeState n("a", 1);
  EXPECT_EQ(n.Set("k1", "v1"), 1u);
  EXPECT_EQ(n.Set("k2", "v2"), 2u);
  EXPECT_EQ(n.Set("k1", "v3"), 3u);
  EXPECT_EQ(n.max_version(), 3u);
  EXPECT_EQ(Live(n), (std::map<std::string, std::string>{{"k1", "v3"}, {"k2", "v2"}}));
  // Exactly one version-index slot per key: the overwritten version 1 is gone.
  EXPECT_EQ(VersionsAbove(n, 0), (std::vector<Version>{2, 3}));
  EXPECT_EQ(VersionsAbove(n, 2), (std::vector<Version>{3}));
}

TEST(NodeStateTest, DeleteLeavesTombstone) {
  NodeState n("a", 1);
  n.Set("k", "v");
  EXPECT_EQ(n.Delete("k", 100), 2u);
  EXPECT_EQ(n.Delete("k", 100), 0u) << "deleting a tombstone is a no-op";
  EXPECT_EQ(n.Delete("nope", 100), 0u);
  EXPECT_TRUE(Live(n).empty());
  EXPECT_EQ(n.num_tombstones(), 1u);
  const uint32_t idx = n.Find("k");
  ASSERT_NE(idx, NodeState::kNoSlot);
  EXPECT_EQ(n.slot(idx).status, KeyStatus::kTombstone);
  EXPECT_EQ(n.slot(idx).version, 2u);
}

TEST(NodeStateTest, GcRemovesOldTombstonesAndRaisesLastGcVersion) {
  NodeState n("a", 1);
  n.Set("a", "1");
  n.Set("b", "2");
  n.Delete("a", 100);  // v3 at t=100
  n.Delete("b", 200);  // v4 at t=200
  EXPECT_EQ(n.GcTombstones(150, 100, UINT64_MAX), 0u);
  EXPECT_EQ(n.GcTombstones(250, 100, UINT64_MAX), 1u);
  EXPECT_EQ(n.last_gc_version(), 3u);
  EXPECT_EQ(n.Find("a"), NodeState::kNoSlot);
  EXPECT_NE(n.Find("b"), NodeState::kNoSlot);
  // The frontier bound keeps tombstones above it even past grace (seed 002).
  EXPECT_EQ(n.GcTombstones(10000, 100, 3), 0u);
  EXPECT_EQ(n.GcTombstones(10000, 100, 4), 1u);
  EXPECT_EQ(n.last_gc_version(), 4u);
  EXPECT_EQ(n.num_keys(), 0u);
  EXPECT_EQ(n.max_version(), 4u);
}

TEST(NodeStateTest, TtlExpiresInDeadlineOrderAsDeletes) {
  NodeState n("a", 1);
  n.SetWithTtl("late", "x", 500);
  n.SetWithTtl("early", "y", 100);
  n.Set("keep", "z");
  EXPECT_EQ(n.NextExpiry(), 100);
  std::vector<std::string> expired;
  EXPECT_EQ(n.ExpireDue(99, [&](std::string_view k) { expired.emplace_back(k); }), 0u);
  EXPECT_EQ(n.ExpireDue(100, [&](std::string_view k) { expired.emplace_back(k); }), 1u);
  EXPECT_EQ(expired, std::vector<std::string>{"early"});
  EXPECT_EQ(n.max_version(), 4u) << "expiry is a new (delete) version";
  EXPECT_EQ(n.slot(n.Find("early")).status, KeyStatus::kTombstone);
  // Overwriting a TTL key without TTL cancels its expiry.
  n.Set("late", "forever");
  EXPECT_EQ(n.ExpireDue(1000, [&](std::string_view k) { expired.emplace_back(k); }), 0u);
  EXPECT_EQ(Live(n).at("late"), "forever");
}

TEST(NodeStateTest, ReplicaApplyAndReset) {
  NodeState r("a", 1);
  r.ApplyEntry(3, "k", "v", false, 0);
  r.ApplyEntry(5, "j", "", true, 10);
  r.RaiseMaxVersion(7);
  EXPECT_EQ(r.max_version(), 7u);
  EXPECT_EQ(Live(r), (std::map<std::string, std::string>{{"k", "v"}}));
  EXPECT_EQ(r.num_tombstones(), 1u);
  r.ResetTo(6);
  EXPECT_EQ(r.max_version(), 0u);
  EXPECT_EQ(r.last_gc_version(), 6u);
  EXPECT_EQ(r.num_keys(), 0u);
}

TEST(NodeStateTest, ArenaCompactsUnderOverwrites) {
  NodeState n("a", 1);
  const std::string value(1000, 'v');
  for (int i = 0; i < 20000; ++i) n.Set("key" + std::to_string(i % 10), value);
  EXPECT_EQ(n.num_keys(), 10u);
  // 20 MB written, 10 KB live: compaction keeps garbage bounded.
  EXPECT_LT(n.arena().allocated_bytes(), 8u << 20);
  EXPECT_EQ(Live(n).at("key3"), value);
}

TEST(NodeStateTest, KeyBytesEqualComparesEveryByte) {
  // Every length around the inline 8..16-byte path, a difference at every position.
  for (size_t n = 0; n <= 24; ++n) {
    std::string a(n, 'a');
    for (size_t i = 0; i < n; ++i) a[i] = static_cast<char>('a' + i);
    const std::string same = a;
    EXPECT_TRUE(KeyBytesEqual(a.data(), same.data(), n)) << n;
    for (size_t i = 0; i < n; ++i) {
      std::string b = a;
      b[i] ^= 0x01;
      EXPECT_FALSE(KeyBytesEqual(a.data(), b.data(), n)) << n << " at " << i;
      b[i] = static_cast<char>(b[i] ^ 0x81);  // high bit too
      EXPECT_FALSE(KeyBytesEqual(a.data(), b.data(), n)) << n << " at " << i;
    }
  }
}

// Small-value overwrites compact the version log alone (the arena's garbage stays small),
// large ones compact the log and the arena in one pass; every read stays exact through
// both, and neither index keeps growing.
TEST(NodeStateTest, LogAndArenaCompactionsKeepReadsExact) {
  NodeState n("a", 1);
  std::map<std::string, std::string> model;
  auto key = [](int i) { return "key-" + std::to_string(1000000 + i); };  // 11 bytes
  for (int i = 0; i < 100; ++i) {
    n.Set(key(i), "v");
    model[key(i)] = "v";
  }
  const size_t overhead_100 = n.OverheadBytes();
  for (int round = 0; round < 2; ++round) {
    const std::string value = round == 0 ? "small" : std::string(2000, 'L');
    for (int w = 0; w < 50000; ++w) {
      const std::string k = key((w * 37) % 100);
      const std::string v = value + std::to_string(w);
      n.Set(k, v);
      model[k] = v;
      if (w % 9973 == 0) {
        ASSERT_EQ(Live(n), model) << round << " " << w;
        ASSERT_EQ(VersionsAbove(n, 0).size(), 100u);
      }
    }
    EXPECT_EQ(Live(n), model);
    const std::vector<Version> versions = VersionsAbove(n, 0);
    ASSERT_EQ(versions.size(), 100u);
    EXPECT_EQ(versions.back(), n.max_version());
    for (const auto& [k, v] : model) {
      const uint32_t idx = n.Find(k);
      ASSERT_NE(idx, NodeState::kNoSlot);
      EXPECT_EQ(n.ValueOf(n.slot(idx)), v);
    }
    // 50,000 writes leave 50,000 log records (600 KB) unless compacted.
    EXPECT_LT(n.OverheadBytes(), overhead_100 + (64u << 10) + n.arena().dead_bytes() +
                                     (n.arena().allocated_bytes() - n.arena().used_bytes()))
        << round;
  }
  // 100 MB of large values were written: the arena keeps at most about twice the live bytes
  // plus a chunk.
  EXPECT_LT(n.arena().allocated_bytes(), 2 * n.arena().live_bytes() + (4u << 20));
}

TEST(NodeStateTest, ManyKeysIndexesStayExact) {
  NodeState n("a", 1);
  for (int i = 0; i < 5000; ++i) n.Set("k" + std::to_string(i), std::to_string(i));
  for (int i = 0; i < 5000; i += 2) n.Delete("k" + std::to_string(i), i);
  for (int i = 0; i < 5000; i += 3) n.Set("k" + std::to_string(i), "again");
  size_t count = 0;
  Version prev = 0;
  n.ForEachAbove(0, [&](const NodeState::Slot& s) {
    EXPECT_GT(s.version, prev);
    prev = s.version;
    ++count;
    return true;
  });
  EXPECT_EQ(count, n.num_keys());
  EXPECT_EQ(n.num_keys(), 5000u);
  // Every slot survived the first page's growth (4, 8, ..., 4096 slots) and the second page.
  for (int i = 1; i < 5000; i += 2) {
    const uint32_t idx = n.Find("k" + std::to_string(i));
    ASSERT_NE(idx, NodeState::kNoSlot) << i;
    EXPECT_EQ(n.ValueOf(n.slot(idx)), i % 3 == 0 ? "again" : std::to_string(i)) << i;
  }
}

// Every replica holds a NodeState per known node; most hold no key (heartbeats only), so
// such a node must cost no store at all, and every read must work without one.
TEST(NodeStateTest, NodeWithoutKeysHasNoStore) {
  NodeState n("a", 1);
  EXPECT_EQ(n.num_keys(), 0u);
  EXPECT_EQ(n.num_tombstones(), 0u);
  EXPECT_EQ(n.num_expiring(), 0u);
  EXPECT_EQ(n.Find("k"), NodeState::kNoSlot);
  n.Prefetch("k");
  EXPECT_TRUE(VersionsAbove(n, 0).empty());
  EXPECT_TRUE(Live(n).empty());
  EXPECT_EQ(n.arena().allocated_bytes(), 0u);
  EXPECT_EQ(n.OverheadBytes(), 0u);
  EXPECT_EQ(n.NextExpiry(), std::numeric_limits<TimeUs>::max());
  EXPECT_EQ(n.ExpireDue(1000, [](std::string_view) {}), 0u);
  EXPECT_EQ(n.GcTombstones(1000, 0, UINT64_MAX), 0u);
  EXPECT_EQ(n.GcTombstonesUpTo(UINT64_MAX), 0u);
  EXPECT_EQ(n.Delete("k", 0), 0u);
  EXPECT_EQ(n.max_version(), 0u);
  EXPECT_LE(sizeof(NodeState), 160u);
}

TEST(NodeStateTest, FewKeysCostLittle) {
  NodeState n("a", 1);
  n.Set("k", "v");
  // The first slab page and arena chunk start small: not 128 KiB + 4 KiB per replica.
  EXPECT_LT(n.OverheadBytes(), 1024u);
  EXPECT_LT(n.arena().allocated_bytes(), 1024u);
}

TEST(NodeStateTest, GcOfTheLastKeyReleasesTheStore) {
  NodeState n("a", 1);
  n.Set("a", "1");
  n.Delete("a", 100);  // v2
  EXPECT_EQ(n.GcTombstonesUpTo(2), 1u);
  EXPECT_EQ(n.num_keys(), 0u);
  EXPECT_EQ(n.arena().allocated_bytes(), 0u) << "store released";
  EXPECT_EQ(n.last_gc_version(), 2u);
  EXPECT_EQ(n.max_version(), 2u);
  // Writing again brings a fresh store.
  EXPECT_EQ(n.Set("b", "2"), 3u);
  EXPECT_EQ(Live(n), (std::map<std::string, std::string>{{"b", "2"}}));
  n.Delete("b", 200);
  EXPECT_EQ(n.GcTombstones(300, 50, UINT64_MAX), 1u);
  EXPECT_EQ(n.arena().allocated_bytes(), 0u);
  // A replica reset to a later gc drops everything too.
  NodeState r("a", 1);
  r.ApplyEntry(4, "k", "v", false, 0);
  r.ResetTo(9);
  EXPECT_EQ(r.arena().allocated_bytes(), 0u);
  r.ApplyEntry(10, "k", "w", false, 0);
  EXPECT_EQ(Live(r), (std::map<std::string, std::string>{{"k", "w"}}));
}

// Randomized against a plain model: owner writes, batched replica applies, deletes and GC,
// enough of them to grow the key table many times, shift runs back on erase, compact the
// version log (stale records skipped, then dropped) and the arena (1 MiB of garbage).
// Checks every read the engine uses: Find, Scan, ForEachAbove (exactly one record per key,
// ascending), the tombstone count, and the version-to-slot lookups GC relies on.
TEST(NodeStateTest, MatchesModelThroughBatchesCompactionsAndGc) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    NodeState n("r", 1);
    struct M {
      std::string value;
      Version version;
      bool tombstone;
    };
    std::map<std::string, M> model;
    size_t written = 0;  // arena bytes appended
    const std::string big(1000, 'x');
    auto key_of = [&](uint64_t i) { return "key-" + std::to_string(i % 1000); };
    for (int round = 0; round < 1000; ++round) {
      // A batch of replica updates (distinct keys not required: a later one wins).
      std::vector<std::string> keys;
      std::vector<std::string> values;
      const size_t count = 1 + rng() % 40;  // shorter and longer than the pipeline
      for (size_t i = 0; i < count; ++i) {
        keys.push_back(key_of(rng()));
        values.push_back(rng() % 4 == 0 ? big : std::to_string(rng()));
      }
      std::vector<NodeState::Update> batch;
      Version v = n.max_version();
      for (size_t i = 0; i < count; ++i) {
        const bool tomb = rng() % 8 == 0;
        batch.push_back({++v, keys[i], values[i], tomb});
        written += keys[i].size() + (tomb ? 0 : values[i].size());
        model[keys[i]] = M{tomb ? "" : values[i], v, tomb};
      }
      n.ApplyBatch(batch, round);
      // Some single-entry applies (the unbatched path).
      for (int i = 0; i < 3; ++i) {
        const std::string k = key_of(rng());
        n.ApplyEntry(n.max_version() + 1, k, "single", false, round);
        model[k] = M{"single", n.max_version(), false};
      }
      // Ack-frontier GC of old tombstones now and then.
      if (round % 50 == 49) {
        const Version upto = n.max_version() - 200;
        n.GcTombstonesUpTo(upto);
        for (auto it = model.begin(); it != model.end();) {
          it = it->second.tombstone && it->second.version <= upto ? model.erase(it) : ++it;
        }
      }
    }
    ASSERT_EQ(n.num_keys(), model.size());
    EXPECT_LT(n.arena().used_bytes(), written) << "the arena was compacted";
    size_t tombs = 0;
    std::map<std::string, std::string> live;
    std::map<Version, std::string> by_version;
    for (const auto& [k, m] : model) {
      if (m.tombstone) {
        ++tombs;
      } else {
        live[k] = m.value;
      }
      by_version[m.version] = k;
      const uint32_t idx = n.Find(k);
      ASSERT_NE(idx, NodeState::kNoSlot) << k;
      EXPECT_EQ(n.slot(idx).version, m.version);
    }
    EXPECT_EQ(n.Find("absent"), NodeState::kNoSlot);
    EXPECT_EQ(n.num_tombstones(), tombs);
    EXPECT_EQ(Live(n), live);
    std::vector<Version> want;
    for (const auto& [v, k] : by_version) want.push_back(v);
    EXPECT_EQ(VersionsAbove(n, 0), want);
    const Version mid = want[want.size() / 2];
    EXPECT_EQ(VersionsAbove(n, mid), std::vector<Version>(want.begin() + want.size() / 2 + 1,
                                                          want.end()));
    // GC everything: the store is released.
    n.GcTombstonesUpTo(n.max_version());
    EXPECT_EQ(n.num_tombstones(), 0u);
    EXPECT_EQ(n.num_keys(), live.size());
  }
}

}  // namespace
}  // namespace scuttle
