// Unit tests for the seed-000 delta rules: what the builder emits for a peer's digest, and
// every outcome of the applier.
#include <map>
#include <string>
#include <vector>

#include "engine/delta_applier.h"
#include "engine/delta_builder.h"
#include "engine/test_util.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

using testing::MustDecode;

constexpr size_t kSlot = wire::kMaxUdpPayloadBytes + 1024;

struct DigestSpec {
  std::string name;
  Generation gen;
  Version gc;
  Version max;
};

struct PartSpec {
  std::string name;
  Generation gen;
  Version from;
  Version gc;
  Version max;
  // (version, key, value or "~" for a tombstone)
  std::vector<std::tuple<Version, std::string, std::string>> entries;
  Version source_max = 0;  // 0: same as max
};

wire::EncodeOptions Opts(size_t max_bytes = wire::kMaxUdpPayloadBytes) {
  wire::EncodeOptions o;
  o.cluster_id = "test";
  o.sender.name_off = 0;
  o.sender.name_len = 4;
  o.sender.generation = 1;
  o.max_packet_bytes = max_bytes;
  return o;
}

// Encodes a Syn carrying the given digest.
std::vector<uint8_t> SynWith(const std::vector<DigestSpec>& digest, bool partial = false) {
  std::vector<uint8_t> slot(kSlot);
  wire::PacketEncoder enc(slot, Opts());
  std::string blob = "peer";
  std::vector<uint32_t> offs;
  for (const auto& d : digest) {
    offs.push_back(static_cast<uint32_t>(blob.size()));
    blob += d.name;
  }
  auto b = enc.AllocBlob(blob.size());
  std::memcpy(b.data(), blob.data(), blob.size());
  auto entries = enc.AllocDigest(digest.size(), partial);
  for (size_t i = 0; i < digest.size(); ++i) {
    wire::DigestEntry& e = entries[i];
    e = {};
    e.node.generation = digest[i].gen;
    e.node.name_off = offs[i];
    e.node.name_len = static_cast<uint8_t>(digest[i].name.size());
    e.last_gc_version = digest[i].gc;
    e.max_version = digest[i].max;
  }
  auto pkt = enc.Finish(wire::MessageType::kSyn);
  return {pkt.begin(), pkt.end()};
}

// Encodes an Ack with explicit parts (anything the wire allows, valid or not).
std::vector<uint8_t> AckWith(const std::vector<PartSpec>& parts) {
  std::vector<uint8_t> slot(kSlot);
  wire::PacketEncoder enc(slot, Opts());
  std::string blob = "peer";
  struct Off {
    uint32_t name;
    std::vector<uint32_t> kv;
  };
  std::vector<Off> offs;
  for (const auto& p : parts) {
    Off o{static_cast<uint32_t>(blob.size()), {}};
    blob += p.name;
    for (const auto& [v, k, val] : p.entries) {
      o.kv.push_back(static_cast<uint32_t>(blob.size()));
      blob += k;
      if (val != "~") blob += val;
    }
    offs.push_back(o);
  }
  auto b = enc.AllocBlob(blob.size());
  std::memcpy(b.data(), blob.data(), blob.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    const PartSpec& p = parts[i];
    wire::NodeRef ref{};
    ref.generation = p.gen;
    ref.name_off = offs[i].name;
    ref.name_len = static_cast<uint8_t>(p.name.size());
    bool ok = false;
    auto es = enc.AddPart(ref, p.from, p.gc, p.max, p.source_max ? p.source_max : p.max,
                          p.entries.size(), &ok);
    EXPECT_TRUE(ok);
    for (size_t j = 0; j < p.entries.size(); ++j) {
      const auto& [v, k, val] = p.entries[j];
      wire::Entry& e = es[j];
      e = {};
      e.version = v;
      e.off = offs[i].kv[j];
      e.key_len = static_cast<uint16_t>(k.size());
      const bool tomb = val == "~";
      e.value_len = tomb ? 0 : static_cast<uint32_t>(val.size());
      e.status = tomb ? 1 : 0;
    }
  }
  auto pkt = enc.Finish(wire::MessageType::kAck);
  return {pkt.begin(), pkt.end()};
}

// Runs `builder` for `cluster` against a peer digest; returns the encoded Ack.
std::vector<uint8_t> BuildWith(DeltaBuilder& builder, const Cluster& cluster,
                               const std::vector<uint8_t>& syn,
                               size_t max_bytes = wire::kMaxUdpPayloadBytes) {
  wire::DecodedPacket peer = MustDecode(syn);
  std::vector<uint8_t> slot(kSlot);
  wire::EncodeOptions o = Opts(max_bytes);
  wire::PacketEncoder enc(slot, o);
  builder.SetPeerDigest(peer);
  builder.Plan(cluster, enc.Remaining() - 64);
  BlobWriter blob{enc.AllocBlob(builder.blob_bytes() + 4)};
  blob.Put("peer");
  EXPECT_TRUE(builder.Write(enc, blob));
  auto pkt = enc.Finish(wire::MessageType::kAck);
  EXPECT_FALSE(pkt.empty());
  builder.ClearPeer();
  return {pkt.begin(), pkt.end()};
}

// The same with a fresh builder (no cached plan).
std::vector<uint8_t> Build(const Cluster& cluster, const std::vector<uint8_t>& syn,
                           size_t max_bytes = wire::kMaxUdpPayloadBytes) {
  DeltaBuilder builder;
  return BuildWith(builder, cluster, syn, max_bytes);
}

struct Part {
  std::string name;
  Version from, gc, max;
  std::vector<std::pair<Version, bool>> entries;  // (version, tombstone)
};

std::vector<Part> Parts(const std::vector<uint8_t>& ack) {
  wire::DecodedPacket p = MustDecode(ack);
  std::vector<Part> out;
  for (size_t i = 0; i < p.num_parts(); ++i) {
    auto v = p.part(i);
    Part part{std::string(p.Name(*v.node)), v.from_version_excluded, v.last_gc_version,
              v.max_version, {}};
    for (const auto& e : v.entries) part.entries.push_back({e.version, e.status == 1});
    out.push_back(part);
  }
  return out;
}

// Owner "o": k1..k6 set at v1..v6, then delete k2 (v7) and k4 (v8), then set k5 again (v9).
void Fill(NodeState& o) {
  for (int i = 1; i <= 6; ++i) o.Set("k" + std::to_string(i), "v" + std::to_string(i));
  o.Delete("k2", 0);
  o.Delete("k4", 0);
  o.Set("k5", "v5b");
}

TEST(DeltaBuilderTest, SendsSetsAndTombstonesAboveMax) {
  Cluster c("o", 1);
  Fill(c.self());
  auto parts = Parts(Build(c, SynWith({{"o", 1, 0, 6}})));
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].from, 6u);
  EXPECT_EQ(parts[0].max, 9u);
  EXPECT_EQ(parts[0].entries,
            (std::vector<std::pair<Version, bool>>{{7, true}, {8, true}, {9, false}}));
}

TEST(DeltaBuilderTest, TombstonesOnlyAboveMaxOfMaxAndGc) {
  Cluster c("o", 1);
  Fill(c.self());
  // Peer mid-reset: gc 8 (no deletes at or below 8 needed), max 6.
  auto parts = Parts(Build(c, SynWith({{"o", 1, 8, 6}})));
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].entries, (std::vector<std::pair<Version, bool>>{{9, false}}));
  EXPECT_EQ(parts[0].max, 9u);
}

TEST(DeltaBuilderTest, UnknownPeerGetsEverythingFromZero) {
  Cluster c("o", 1);
  Fill(c.self());
  auto parts = Parts(Build(c, SynWith({})));
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].from, 0u);
  EXPECT_EQ(parts[0].entries.size(), 6u);  // k1 k3 k6 sets, k2 k4 tombstones, k5
}

TEST(DeltaBuilderTest, ResetWhenPeerMissedGc) {
  Cluster c("o", 1);
  Fill(c.self());
  c.self().GcTombstones(1, 0, UINT64_MAX);  // removes k2@7 and k4@8 -> gc 8
  ASSERT_EQ(c.self().last_gc_version(), 8u);
  auto parts = Parts(Build(c, SynWith({{"o", 1, 0, 7}})));
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].from, 0u) << "a reset starts from version 0";
  EXPECT_EQ(parts[0].gc, 8u);
  EXPECT_EQ(parts[0].max, 9u);
  EXPECT_EQ(parts[0].entries,
            (std::vector<std::pair<Version, bool>>{{1, false}, {3, false}, {6, false}, {9, false}}));
  // A peer whose max reached our gc needs no reset.
  parts = Parts(Build(c, SynWith({{"o", 1, 0, 8}})));
  EXPECT_EQ(parts[0].from, 8u);
  // A peer already mid-reset at our gc continues instead of restarting.
  parts = Parts(Build(c, SynWith({{"o", 1, 8, 3}})));
  EXPECT_EQ(parts[0].from, 3u);
}

TEST(DeltaBuilderTest, CompletePartWithOnlySkippedTombstonesStillRaisesMax) {
  Cluster c("o", 1);
  c.self().Set("a", "1");
  c.self().Delete("a", 0);  // v2
  auto parts = Parts(Build(c, SynWith({{"o", 1, 2, 1}})));
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_TRUE(parts[0].entries.empty());
  EXPECT_EQ(parts[0].max, 2u);
}

TEST(DeltaBuilderTest, TruncatedPartClaimsOnlyItsLastEntry) {
  Cluster c("o", 1);
  const std::string value(200, 'x');
  for (int i = 0; i < 100; ++i) c.self().Set("key" + std::to_string(i), value);
  auto parts = Parts(Build(c, SynWith({{"o", 1, 0, 0}}), 1400));
  ASSERT_EQ(parts.size(), 1u);
  ASSERT_FALSE(parts[0].entries.empty());
  EXPECT_LT(parts[0].entries.size(), 100u);
  EXPECT_EQ(parts[0].max, parts[0].entries.back().first);
}

TEST(DeltaBuilderTest, UnseenNodesFirstThenStalest) {
  Cluster c("self", 1);
  bool replaced;
  for (const auto& [name, n] : std::vector<std::pair<std::string, int>>{{"a", 5}, {"b", 50}, {"c", 20}}) {
    NodeState* s = c.Upsert(name, 1, &replaced);
    for (int i = 1; i <= n; ++i) s->ApplyEntry(i, "k" + std::to_string(i), "v", false, 0);
  }
  auto parts = Parts(Build(c, SynWith({{"self", 1, 0, 0}, {"b", 1, 0, 40}, {"c", 1, 0, 0}})));
  std::vector<std::string> order;
  for (const auto& p : parts) order.push_back(p.name);
  EXPECT_EQ(order, (std::vector<std::string>{"a", "c", "b"}));
}

TEST(DeltaBuilderTest, GenerationsAndPartialDigests) {
  Cluster c("self", 1);
  bool replaced;
  NodeState* a = c.Upsert("a", 5, &replaced);
  a->ApplyEntry(1, "k", "v", false, 0);
  // Peer knows a newer generation: we are stale, send nothing for it.
  EXPECT_TRUE(Parts(Build(c, SynWith({{"self", 1, 0, 0}, {"a", 6, 0, 0}}))).empty());
  // Peer knows an older generation: send ours from zero.
  auto parts = Parts(Build(c, SynWith({{"self", 1, 0, 0}, {"a", 4, 0, 9}})));
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].from, 0u);
  // A partial digest that does not list "a" says nothing about it.
  EXPECT_TRUE(Parts(Build(c, SynWith({{"self", 1, 0, 0}}, /*partial=*/true))).empty());
}

TEST(DeltaBuilderTest, WriteCopiesRunsAndScatteredEntriesAlike) {
  // Overwrites and deletes scatter the version order across the arena: every entry must
  // still point at its own key and value.
  Cluster c("o", 1);
  for (int i = 0; i < 50; ++i) c.self().Set("k" + std::to_string(i), std::string(i, 'a' + i % 26));
  for (int i = 0; i < 50; i += 3) c.self().Set("k" + std::to_string(i), "new" + std::to_string(i));
  for (int i = 1; i < 50; i += 7) c.self().Delete("k" + std::to_string(i), 0);
  const std::vector<uint8_t> ack = Build(c, SynWith({}));
  wire::DecodedPacket p = MustDecode(ack);
  ASSERT_EQ(p.num_parts(), 1u);
  auto part = p.part(0);
  size_t n = 0;
  for (const auto& e : part.entries) {
    const std::string_view key = p.Key(e);
    const uint32_t idx = c.self().Find(key);
    ASSERT_NE(idx, NodeState::kNoSlot) << key;
    const NodeState::Slot& s = c.self().slot(idx);
    EXPECT_EQ(s.version, e.version) << key;
    if (s.status != KeyStatus::kTombstone) {
      EXPECT_EQ(p.Value(e), c.self().ValueOf(s)) << key;
    }
    ++n;
  }
  EXPECT_EQ(n, c.self().num_keys());
}

TEST(DeltaBuilderTest, PlanIsReusedForTheSameDigestAndState) {
  Cluster c("o", 1);
  Fill(c.self());
  DeltaBuilder b;
  const std::vector<uint8_t> syn = SynWith({{"o", 1, 0, 2}});
  const std::vector<uint8_t> first = BuildWith(b, c, syn);
  EXPECT_EQ(b.stats().plan_cache_hits, 0u);
  EXPECT_EQ(BuildWith(b, c, syn), first);
  EXPECT_EQ(b.stats().plan_cache_hits, 1u);
  // Another digest, or another budget, plans afresh.
  EXPECT_EQ(BuildWith(b, c, SynWith({{"o", 1, 0, 5}})), Build(c, SynWith({{"o", 1, 0, 5}})));
  EXPECT_EQ(BuildWith(b, c, syn, 1400), Build(c, syn, 1400));
  EXPECT_EQ(b.stats().plan_cache_hits, 1u);
}

TEST(DeltaBuilderTest, CachedPlanNeverOutlivesAStateChange) {
  // After every kind of change, a builder holding a cached plan must write exactly what a
  // fresh builder writes (and never touch a freed slot: run this under ASan).
  Cluster c("self", 1);
  Fill(c.self());
  bool replaced;
  NodeState* a = c.Upsert("a", 1, &replaced);
  for (int i = 1; i <= 5; ++i) a->ApplyEntry(i, "k" + std::to_string(i), "v", false, 0);
  DeltaBuilder b;
  const std::vector<uint8_t> syn = SynWith({{"self", 1, 0, 0}});
  auto check = [&](const char* what) {
    BuildWith(b, c, syn);  // make sure a plan is cached before the next change
    EXPECT_EQ(BuildWith(b, c, syn), Build(c, syn)) << what;
  };
  check("initial");
  c.self().Set("k9", "x");
  EXPECT_EQ(BuildWith(b, c, syn), Build(c, syn)) << "owner write";
  BuildWith(b, c, syn);
  c.self().Delete("k9", 0);
  EXPECT_EQ(BuildWith(b, c, syn), Build(c, syn)) << "owner delete";
  BuildWith(b, c, syn);
  c.self().GcTombstones(1, 0, UINT64_MAX);
  EXPECT_EQ(BuildWith(b, c, syn), Build(c, syn)) << "gc";
  BuildWith(b, c, syn);
  a->ResetTo(3);
  EXPECT_EQ(BuildWith(b, c, syn), Build(c, syn)) << "replica reset";
  BuildWith(b, c, syn);
  a->ApplyEntry(4, "z", "after reset", false, 0);
  EXPECT_EQ(BuildWith(b, c, syn), Build(c, syn)) << "apply after reset";
  BuildWith(b, c, syn);
  c.Forget("a", 1'000'000, 16);
  EXPECT_EQ(BuildWith(b, c, syn), Build(c, syn)) << "forget";
  BuildWith(b, c, syn);
  NodeState* d = c.Upsert("d", 2, &replaced);
  d->ApplyEntry(1, "dk", "dv", false, 0);
  EXPECT_EQ(BuildWith(b, c, syn), Build(c, syn)) << "new node";
  BuildWith(b, c, syn);
  NodeState* d3 = c.Upsert("d", 3, &replaced);
  ASSERT_TRUE(replaced);
  d3->ApplyEntry(1, "dk", "dv3", false, 0);
  EXPECT_EQ(BuildWith(b, c, syn), Build(c, syn)) << "new generation";
  EXPECT_GT(b.stats().plan_cache_hits, 0u);
}

// ---- Applier ----------------------------------------------------------------------------

class ApplierTest : public ::testing::Test {
 protected:
  PartOutcome Apply(const PartSpec& spec) {
    auto bytes = AckWith({spec});
    wire::DecodedPacket p = MustDecode(bytes);
    return applier.ApplyPart(p, p.part(0), 1000);
  }
  std::map<std::string, std::string> Live(const std::string& name) {
    std::map<std::string, std::string> m;
    const NodeState* n = cluster.Find(name);
    if (n == nullptr) return m;
    n->Scan("", [&](const NodeState::Slot& s) { m[std::string(n->KeyOf(s))] = n->ValueOf(s); });
    return m;
  }
  Cluster cluster{"self", 1};
  Limits limits;
  DeltaApplier applier{&cluster, limits, nullptr};
};

TEST_F(ApplierTest, AppliesInOrderAndRaisesMax) {
  EXPECT_EQ(Apply({"a", 1, 0, 0, 5, {{2, "x", "1"}, {4, "y", "2"}}}), PartOutcome::kApplied);
  EXPECT_EQ(cluster.Find("a")->max_version(), 5u);
  EXPECT_EQ(Live("a"), (std::map<std::string, std::string>{{"x", "1"}, {"y", "2"}}));
  EXPECT_EQ(Apply({"a", 1, 5, 0, 7, {{6, "x", "~"}}}), PartOutcome::kApplied);
  EXPECT_EQ(Live("a"), (std::map<std::string, std::string>{{"y", "2"}}));
}

TEST_F(ApplierTest, GapIsDropped) {
  Apply({"a", 1, 0, 0, 5, {{5, "x", "1"}}});
  EXPECT_EQ(Apply({"a", 1, 6, 0, 9, {{8, "y", "2"}}}), PartOutcome::kGap);
  EXPECT_EQ(cluster.Find("a")->max_version(), 5u);
  EXPECT_EQ(Live("a").count("y"), 0u);
}

TEST_F(ApplierTest, StaleAndDuplicatePartsAreNoOps) {
  Apply({"a", 1, 0, 0, 5, {{5, "x", "1"}}});
  EXPECT_EQ(Apply({"a", 1, 0, 0, 5, {{5, "x", "1"}}}), PartOutcome::kStale);
  EXPECT_EQ(Apply({"a", 1, 0, 0, 3, {{3, "x", "old"}}}), PartOutcome::kStale);
  EXPECT_EQ(Live("a").at("x"), "1");
}

TEST_F(ApplierTest, OverlappingPartAppliesOnlyAboveMax) {
  Apply({"a", 1, 0, 0, 5, {{4, "x", "~"}, {5, "y", "1"}}});
  // An overlapping delta from an older digest: the set at v3 must not resurrect x.
  EXPECT_EQ(Apply({"a", 1, 2, 0, 7, {{3, "x", "old"}, {7, "z", "2"}}}), PartOutcome::kApplied);
  EXPECT_EQ(Live("a"), (std::map<std::string, std::string>{{"y", "1"}, {"z", "2"}}));
  EXPECT_EQ(applier.stats().entries_skipped, 1u);
}

TEST_F(ApplierTest, ResetOnlyFromVersionZeroWithLargerGc) {
  Apply({"a", 1, 0, 0, 5, {{2, "x", "1"}, {5, "y", "2"}}});
  // from > 0 is never a reset; with a gc past our max it is dropped (missed GC)...
  EXPECT_EQ(Apply({"a", 1, 5, 9, 6, {{6, "w", "3"}}}), PartOutcome::kMissedGc);
  // ...and with a gc at or below our max it is an ordinary delta.
  EXPECT_EQ(Apply({"a", 1, 5, 4, 6, {{6, "w", "3"}}}), PartOutcome::kApplied);
  EXPECT_EQ(cluster.Find("a")->last_gc_version(), 0u);
  // A reset: from 0, gc 20 > 0 and our max (6) < 20.
  EXPECT_EQ(Apply({"a", 1, 0, 20, 25, {{21, "q", "4"}}}), PartOutcome::kReset);
  EXPECT_EQ(Live("a"), (std::map<std::string, std::string>{{"q", "4"}}));
  EXPECT_EQ(cluster.Find("a")->last_gc_version(), 20u);
  EXPECT_EQ(cluster.Find("a")->max_version(), 25u);
  // A delayed duplicate of an older reset is stale, not a second reset.
  EXPECT_EQ(Apply({"a", 1, 0, 20, 25, {{21, "q", "4"}}}), PartOutcome::kStale);
}

TEST_F(ApplierTest, ResetNotNeededWhenAlreadyPastGcIsIncremental) {
  Apply({"a", 1, 0, 0, 30, {{30, "x", "1"}}});
  // A reset-shaped part (gc 20) arrives after we already passed version 20: apply the part
  // of it above our max instead of discarding our state.
  EXPECT_EQ(Apply({"a", 1, 0, 20, 32, {{10, "old", "v"}, {31, "y", "2"}}}), PartOutcome::kApplied);
  EXPECT_EQ(Live("a"), (std::map<std::string, std::string>{{"x", "1"}, {"y", "2"}}));
  EXPECT_EQ(cluster.Find("a")->last_gc_version(), 0u);
}

TEST_F(ApplierTest, Generations) {
  Apply({"a", 5, 0, 0, 2, {{2, "x", "1"}}});
  EXPECT_EQ(Apply({"a", 4, 0, 0, 9, {{9, "y", "2"}}}), PartOutcome::kStaleGeneration);
  EXPECT_EQ(Apply({"a", 6, 0, 0, 1, {{1, "z", "3"}}}), PartOutcome::kApplied);
  EXPECT_EQ(cluster.Find("a")->generation(), 6u);
  EXPECT_EQ(Live("a"), (std::map<std::string, std::string>{{"z", "3"}}))
      << "a new generation replaces, never merges";
  EXPECT_EQ(applier.stats().generations_replaced, 1u);
}

TEST_F(ApplierTest, PartsAboutOurselvesAreIgnored) {
  EXPECT_EQ(Apply({"self", 1, 0, 0, 3, {{3, "x", "1"}}}), PartOutcome::kSelf);
  EXPECT_EQ(cluster.self().max_version(), 0u);
}

TEST_F(ApplierTest, NodeAndKeyLimits) {
  Limits tight;
  tight.max_nodes = 2;
  tight.max_keys_per_node = 2;
  DeltaApplier small(&cluster, tight, nullptr);
  auto apply = [&](const PartSpec& spec) {
    auto bytes = AckWith({spec});
    wire::DecodedPacket p = MustDecode(bytes);
    return small.ApplyPart(p, p.part(0), 0);
  };
  EXPECT_EQ(apply({"a", 1, 0, 0, 3, {{1, "x", "1"}, {2, "y", "1"}, {3, "z", "1"}}}),
            PartOutcome::kKeyLimit);
  EXPECT_EQ(apply({"a", 1, 0, 0, 2, {{1, "x", "1"}, {2, "y", "1"}}}), PartOutcome::kApplied);
  EXPECT_EQ(apply({"b", 1, 0, 0, 1, {{1, "x", "1"}}}), PartOutcome::kNodeLimit);
}

}  // namespace
}  // namespace scuttle

namespace scuttle {
namespace {

TEST_F(ApplierTest, MidResetRefusesSendersBehindOurGc) {
  // Reset prefix: gc 20, max 5 (we hold no key whose last update is a delete <= 20).
  EXPECT_EQ(Apply({"a", 1, 0, 20, 5, {{3, "x", "1"}}, 30}), PartOutcome::kReset);
  // A sender that had seen neither version 20 (max 9) nor gc 20 may still hold a set that
  // was deleted at, say, v15: refused.
  EXPECT_EQ(Apply({"a", 1, 3, 0, 9, {{7, "dead", "zombie"}}, 9}), PartOutcome::kBehindReset);
  EXPECT_EQ(Live("a").count("dead"), 0u);
  // A sender whose own max reached 20 is fine, even if this part is a truncated prefix.
  EXPECT_EQ(Apply({"a", 1, 3, 0, 9, {{8, "y", "2"}}, 25}), PartOutcome::kApplied);
  // So is one in the same reset lineage (gc >= ours).
  EXPECT_EQ(Apply({"a", 1, 9, 20, 12, {{12, "z", "3"}}, 12}), PartOutcome::kApplied);
  EXPECT_EQ(Live("a"), (std::map<std::string, std::string>{{"x", "1"}, {"y", "2"}, {"z", "3"}}));
}

TEST(DeltaBuilderTest, SkipsNodesUselessToAMidResetPeer) {
  Cluster c("self", 1);
  bool replaced;
  NodeState* a = c.Upsert("a", 1, &replaced);
  for (int i = 1; i <= 9; ++i) a->ApplyEntry(i, "k" + std::to_string(i), "v", false, 0);
  // Peer is mid-reset at gc 20, max 5; we only reached 9 with gc 0: nothing we can give.
  EXPECT_TRUE(Parts(Build(c, SynWith({{"self", 1, 0, 0}, {"a", 1, 20, 5}}))).empty());
}

}  // namespace
}  // namespace scuttle

namespace scuttle {
namespace {

TEST_F(ApplierTest, IncrementalPartFromASenderPastOurGcIsDropped) {
  Apply({"a", 1, 0, 0, 50, {{46, "k28", "old"}, {50, "x", "1"}}});
  // The sender collected the tombstone of k28 at v54 (gc 54 > our max 50): an incremental
  // part from it cannot tell us k28 is gone. Only a reset may be applied.
  EXPECT_EQ(Apply({"a", 1, 47, 54, 64, {{60, "y", "2"}}}), PartOutcome::kMissedGc);
  EXPECT_EQ(Live("a").at("k28"), "old");
  EXPECT_EQ(cluster.Find("a")->max_version(), 50u);
  EXPECT_EQ(Apply({"a", 1, 0, 54, 64, {{60, "y", "2"}}}), PartOutcome::kReset);
  EXPECT_EQ(Live("a").count("k28"), 0u);
}

}  // namespace
}  // namespace scuttle
