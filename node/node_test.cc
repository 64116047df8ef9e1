// Node: in-process nodes on loopback, for both transports. Nothing sleeps to wait: every
// wait polls a condition with a deadline (STYLE, Tests).
#include "node/node.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "engine/shard.h"
#include "gtest/gtest.h"
#include "io/clock.h"
#include "node/node_testing.h"

namespace scuttle {
namespace {

using node_testing::Eventually;
using node_testing::kDeadlineUs;

class NodeTest : public ::testing::TestWithParam<io::IoKind> {
 protected:
  NodeOptions Options(const std::string& name, const std::vector<std::string>& seeds = {}) {
    NodeOptions o = node_testing::LoopbackOptions(name, seeds, GetParam());
    o.engine.membership.initial_interval_us = 100 * kUsPerMs;
    o.engine.membership.max_interval_us = 1000 * kUsPerMs;
    o.rx_buffer_count = 32;
    o.tx_slot_count = 32;
    return o;
  }
  // Starts a node; marks the test skipped when the kernel refuses io_uring.
  std::unique_ptr<Node> StartNode(NodeOptions o) {
    auto n = Node::Start(std::move(o));
    if (!n.ok() && absl::IsUnimplemented(n.status())) {
      skipped_ = true;
      return nullptr;
    }
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? std::move(*n) : nullptr;
  }
  static std::string Seed(const Node& n) { return n.gossip_endpoint().ToString(); }

  static const MemberInfo* Find(const std::vector<MemberInfo>& ms, const std::string& name) {
    for (const MemberInfo& m : ms) {
      if (m.name == name) return &m;
    }
    return nullptr;
  }
  static bool SeesAs(Node& n, const std::string& name, MemberState s) {
    auto ms = n.Members();
    if (!ms.ok()) return false;
    const MemberInfo* m = Find(*ms, name);
    return m != nullptr && m->state == s;
  }

  bool skipped_ = false;
};

#define START_OR_SKIP(var, opts)                                \
  std::unique_ptr<Node> var = StartNode(opts);                  \
  if (skipped_) GTEST_SKIP() << "kernel refuses io_uring here"; \
  ASSERT_NE(var, nullptr)

TEST_P(NodeTest, PairReplicatesSetsAndDeletes) {
  START_OR_SKIP(a, Options("a"));
  START_OR_SKIP(b, Options("b", {Seed(*a)}));
  EXPECT_STREQ(a->transport_name(), GetParam() == io::IoKind::kUring ? "io_uring" : "epoll");

  // Values are arbitrary bytes.
  const std::string value("v\0\xff\x01 bytes", 10);
  auto v1 = a->Set("k1", value);
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(*v1, 1u);
  ASSERT_TRUE(Eventually([&] { return b->Get("k1", "a").ok(); }));
  auto got = b->Get("k1", "a");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value, value);
  EXPECT_EQ(got->node, "a");
  EXPECT_EQ(got->version, 1u);

  auto v2 = a->Delete("k1");
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(*v2, 2u);
  ASSERT_TRUE(Eventually([&] { return absl::IsNotFound(b->Get("k1", "a").status()); }));
  EXPECT_TRUE(absl::IsNotFound(a->Delete("k1").status()));
  EXPECT_TRUE(absl::IsNotFound(a->Get("k1").status()));

  ASSERT_TRUE(a->Stop().ok());
  ASSERT_TRUE(b->Stop().ok());
}

TEST_P(NodeTest, MembersSortedWithSelfAndCounts) {
  START_OR_SKIP(b, Options("b"));
  START_OR_SKIP(a, Options("a", {Seed(*b)}));
  ASSERT_TRUE(a->Set("x", "1").ok());
  ASSERT_TRUE(a->Set("y", "2").ok());
  ASSERT_TRUE(a->Delete("y").ok());
  ASSERT_TRUE(Eventually([&] {
    auto ms = b->Members();
    if (!ms.ok() || ms->size() != 2) return false;
    const MemberInfo* ma = Find(*ms, "a");
    return ma != nullptr && ma->max_version == 3;
  }));
  auto ms = b->Members();
  ASSERT_TRUE(ms.ok());
  ASSERT_EQ(ms->size(), 2u);
  EXPECT_EQ((*ms)[0].name, "a");
  EXPECT_EQ((*ms)[1].name, "b");
  const MemberInfo& ma = (*ms)[0];
  EXPECT_FALSE(ma.is_self);
  EXPECT_EQ(ma.generation, a->generation());
  EXPECT_EQ(ma.gossip_addr, a->advertise_endpoint());
  EXPECT_EQ(ma.keys, 1u);
  EXPECT_EQ(ma.tombstones, 1u);
  EXPECT_GE(ma.phi, 0.0);
  EXPECT_TRUE((*ms)[1].is_self);
  EXPECT_EQ((*ms)[1].state, MemberState::kAlive);
}

TEST_P(NodeTest, ScanIsSortedAndFiltersByNodeAndPrefix) {
  START_OR_SKIP(a, Options("a"));
  START_OR_SKIP(b, Options("b", {Seed(*a)}));
  ASSERT_TRUE(a->Set("app/2", "a2").ok());
  ASSERT_TRUE(a->Set("app/1", "a1").ok());
  ASSERT_TRUE(a->Set("other", "x").ok());
  ASSERT_TRUE(b->Set("app/1", "b1").ok());
  ASSERT_TRUE(Eventually([&] {
    auto all = b->Scan("app/");
    return all.ok() && all->size() == 3;
  }));
  auto all = b->Scan("app/");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].node + ":" + (*all)[0].key, "a:app/1");
  EXPECT_EQ((*all)[1].node + ":" + (*all)[1].key, "a:app/2");
  EXPECT_EQ((*all)[2].node + ":" + (*all)[2].key + "=" + (*all)[2].value, "b:app/1=b1");
  auto only_b = b->Scan("", "b");
  ASSERT_TRUE(only_b.ok());
  EXPECT_EQ(only_b->size(), 1u);
  EXPECT_TRUE(absl::IsNotFound(b->Scan("", "nobody").status()));
  EXPECT_TRUE(absl::IsNotFound(b->Get("app/1", "nobody").status()));
}

TEST_P(NodeTest, TtlKeysExpire) {
  START_OR_SKIP(a, Options("a"));
  auto v = a->SetWithTtl("t", "soon gone", absl::Milliseconds(100));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(a->Get("t").ok());
  ASSERT_TRUE(Eventually([&] { return absl::IsNotFound(a->Get("t").status()); }));
  EXPECT_TRUE(absl::IsInvalidArgument(a->SetWithTtl("t", "x", absl::ZeroDuration()).status()));
}

TEST_P(NodeTest, LimitsAreClearErrors) {
  NodeOptions o = Options("a");
  o.engine.limits.max_key_bytes = 8;
  o.engine.limits.max_value_bytes = 16;
  START_OR_SKIP(a, o);
  EXPECT_TRUE(absl::IsInvalidArgument(a->Set("", "v").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(a->Set("123456789", "v").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(a->Set("k", std::string(17, 'v')).status()));
  EXPECT_TRUE(a->Set("k", std::string(16, 'v')).ok());
}

TEST_P(NodeTest, GracefulStopIsSeenAsLeftAtOnce) {
  START_OR_SKIP(a, Options("a"));
  START_OR_SKIP(b, Options("b", {Seed(*a)}));
  START_OR_SKIP(c, Options("c", {Seed(*a)}));
  ASSERT_TRUE(Eventually([&] {
    return SeesAs(*a, "c", MemberState::kAlive) && SeesAs(*b, "c", MemberState::kAlive) &&
           SeesAs(*c, "b", MemberState::kAlive);
  }));
  const int64_t t0 = io::MonotonicNowUs();
  ASSERT_TRUE(c->Stop().ok());
  // Every live peer answered the leaving Syn, so Stop returns well before its deadline
  // (2 intervals = 100 ms) and the peers mark c left without waiting for phi.
  EXPECT_TRUE(Eventually([&] {
    return SeesAs(*a, "c", MemberState::kLeft) && SeesAs(*b, "c", MemberState::kLeft);
  }, 2'000'000)) << "after " << (io::MonotonicNowUs() - t0) << " us";
  // Calls after Stop are refused, not hung.
  EXPECT_TRUE(absl::IsUnavailable(c->Set("k", "v").status()));
  EXPECT_TRUE(absl::IsUnavailable(c->Members().status()));
  EXPECT_TRUE(c->Stop().ok());  // idempotent
}

TEST_P(NodeTest, CrashIsDetectedDead) {
  START_OR_SKIP(a, Options("a"));
  START_OR_SKIP(b, Options("b", {Seed(*a)}));
  ASSERT_TRUE(Eventually([&] { return SeesAs(*a, "b", MemberState::kAlive); }));
  // Let a learn b's rhythm for a few rounds.
  ASSERT_TRUE(Eventually([&] {
    auto ms = a->Members();
    const MemberInfo* m = ms.ok() ? Find(*ms, "b") : nullptr;
    return m != nullptr && m->heartbeat >= 5;
  }));
  b->Abort();
  EXPECT_TRUE(Eventually([&] { return SeesAs(*a, "b", MemberState::kDead); }));
}

TEST_P(NodeTest, RestartWithNewGenerationReplacesTheOld) {
  START_OR_SKIP(a, Options("a"));
  NodeOptions ob = Options("b", {Seed(*a)});
  ob.generation = 10;
  START_OR_SKIP(b, ob);
  ASSERT_TRUE(b->Set("old", "1").ok());
  ASSERT_TRUE(Eventually([&] { return a->Get("old", "b").ok(); }));
  ASSERT_TRUE(b->Stop().ok());
  b.reset();
  ob.generation = 11;
  START_OR_SKIP(b2, ob);
  ASSERT_TRUE(b2->Set("new", "2").ok());
  ASSERT_TRUE(Eventually([&] { return a->Get("new", "b").ok(); }));
  EXPECT_TRUE(absl::IsNotFound(a->Get("old", "b").status()));
  auto ms = a->Members();
  ASSERT_TRUE(ms.ok());
  const MemberInfo* mb = Find(*ms, "b");
  ASSERT_NE(mb, nullptr);
  EXPECT_EQ(mb->generation, 11u);
  EXPECT_EQ(mb->state, MemberState::kAlive);
}

TEST_P(NodeTest, StatsCountTraffic) {
  START_OR_SKIP(a, Options("a"));
  START_OR_SKIP(b, Options("b", {Seed(*a)}));
  ASSERT_TRUE(Eventually([&] {
    auto s = b->Stats();
    return s.ok() && s->engine.packets_in[static_cast<size_t>(wire::MessageType::kSynAck)] > 0;
  }));
  auto s = b->Stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->transport_name, b->transport_name());
  EXPECT_GT(s->transport.tx_packets, 0u);
  EXPECT_GT(s->transport.rx_packets, 0u);
  EXPECT_GT(s->gossip_rounds, 0u);
  EXPECT_GT(s->loop.iterations, 0u);
  EXPECT_EQ(s->transport.drop(io::Drop::kTxBadSpan), 0u);
  EXPECT_EQ(s->transport.drop(io::Drop::kTxTooLarge), 0u);
  EXPECT_EQ(s->engine.engine_drops[static_cast<size_t>(EngineDrop::kNoTxBuffer)], 0u);
}

TEST_P(NodeTest, BusyPortIsAnError) {
  START_OR_SKIP(a, Options("a"));
  NodeOptions o = Options("b");
  o.listen = a->gossip_endpoint();
  auto b = Node::Start(o);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("in use"), absl::string_view::npos) << b.status();
}

// --shards 2 (docs/shards.md): keys go to ShardOf's shard on both nodes, reads route,
// Scan merges, Subscribe sees events of both shards, the snapshot has one position per
// shard, and a crash seen by shard 0 reaches shard 1 only through its records.
TEST_P(NodeTest, TwoShardsRouteMergeAndShareMembership) {
  NodeOptions oa = Options("a");
  oa.shards = 2;
  oa.pin_threads = false;  // a shared test machine
  START_OR_SKIP(a, oa);
  ASSERT_EQ(a->shard_count(), 2);
  NodeOptions ob = Options("b", {Seed(*a)});
  ob.shards = 2;
  ob.pin_threads = false;
  START_OR_SKIP(b, ob);
  ASSERT_TRUE(Eventually([&] { return SeesAs(*a, "b", MemberState::kAlive); }));

  std::vector<std::string> keys;
  std::vector<int> per_shard(2, 0);
  for (int i = 0; i < 40; ++i) {
    keys.push_back("k/" + std::to_string(i));
    ++per_shard[ShardOf(keys.back(), 2)];
  }
  ASSERT_GT(per_shard[0], 0);
  ASSERT_GT(per_shard[1], 0);
  std::atomic<int> seen_shard[2] = {0, 0};
  auto sub = b->Subscribe("k/", [&](const WatchEvent& e) {
    if (e.kind == WatchEvent::Kind::kKey && e.node == "a") ++seen_shard[e.shard];
  });
  for (const std::string& k : keys) ASSERT_TRUE(a->Set(k, "v" + k).ok());
  ASSERT_TRUE(Eventually([&] {
    auto s = b->Scan("k/", "a");
    return s.ok() && s->size() == keys.size();
  }));
  for (const std::string& k : keys) {
    auto e = b->Get(k, "a");
    ASSERT_TRUE(e.ok()) << k << ": " << e.status();
    EXPECT_EQ(e->value, "v" + k);
  }
  auto scan = b->Scan("k/", "a");
  ASSERT_TRUE(scan.ok());
  EXPECT_TRUE(std::is_sorted(scan->begin(), scan->end(), [](const KvEntry& x, const KvEntry& y) {
    return x.key < y.key;
  }));
  ASSERT_TRUE(Eventually([&] {
    return seen_shard[0] == per_shard[0] && seen_shard[1] == per_shard[1];
  })) << seen_shard[0] << " " << seen_shard[1];
  // Each shard holds only its slice of a's keys.
  auto st = b->ShardStats();
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->size(), 2u);
  EXPECT_EQ((*st)[0].keys_replicated, static_cast<size_t>(per_shard[0]));
  EXPECT_EQ((*st)[1].keys_replicated, static_cast<size_t>(per_shard[1]));
  auto snap = b->Snapshot("k/");
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->seqs.size(), 2u);
  EXPECT_EQ(snap->entries.size(), keys.size());
  // Deletes route too.
  ASSERT_TRUE(a->Delete(keys[0]).ok());
  ASSERT_TRUE(a->Delete(keys[1]).ok());
  ASSERT_TRUE(Eventually([&] {
    auto s = b->Scan("k/", "a");
    return s.ok() && s->size() == keys.size() - 2;
  }));
  // A crash: shard 0 of b decides, shard 1 follows its records.
  a->Abort();
  ASSERT_TRUE(Eventually([&] {
    auto s = b->ShardStats();
    return s.ok() && SeesAs(*b, "a", MemberState::kDead) &&
           (*s)[1].members_by_state[static_cast<size_t>(MemberState::kDead)] == 1;
  }, 4 * kDeadlineUs));
}

INSTANTIATE_TEST_SUITE_P(Backends, NodeTest,
                         ::testing::Values(io::IoKind::kUring, io::IoKind::kEpoll),
                         [](const ::testing::TestParamInfo<io::IoKind>& i) {
                           return std::string(i.param == io::IoKind::kUring ? "uring" : "epoll");
                         });

TEST(HostPortTest, ParsesAndResolves) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(ParseHostPort("example.org:7400", &host, &port).ok());
  EXPECT_EQ(host, "example.org");
  EXPECT_EQ(port, 7400);
  ASSERT_TRUE(ParseHostPort("[::1]:9", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  for (const char* bad : {"", "host", "host:", ":7400", "host:0", "host:65536", "host:12x",
                          "::1:7400", "[::1]7400", "[::1]"}) {
    EXPECT_FALSE(ParseHostPort(bad, &host, &port).ok()) << bad;
  }
  auto eps = ResolveHostPort("localhost:7400", 4);
  ASSERT_TRUE(eps.ok()) << eps.status();
  ASSERT_FALSE(eps->empty());
  EXPECT_EQ((*eps)[0].ToString(), "127.0.0.1:7400");
  auto num = ResolveHostPort("10.1.2.3:1", 4);
  ASSERT_TRUE(num.ok());
  EXPECT_EQ((*num)[0].ToString(), "10.1.2.3:1");
  EXPECT_FALSE(ResolveHostPort("no-such-host.invalid:7400", 4).ok());
}

}  // namespace
}  // namespace scuttle
