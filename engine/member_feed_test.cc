// Membership once (issue #18 item 4): shard 0 publishes, the other shards apply and never
// decide liveness themselves.
#include "engine/member_feed.h"

#include <string>
#include <vector>

#include "engine/cluster.h"
#include "engine/node_state.h"
#include "engine/test_util.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

using testing::Config;
using testing::Ep;

struct Recorder : EventSink {
  void OnKey(const NodeState&, KeyEvent, std::string_view, std::string_view, Version) override {}
  void OnMember(const NodeState& node, MemberEvent e) override {
    log.push_back(std::string(node.name()) + ":" + MemberEventName(e));
  }
  std::vector<std::string> log;
};

TEST(MemberFeedTest, PublisherSendsChangesOnlyAndForgottenNodes) {
  Cluster c("self", 1);
  bool replaced;
  c.Upsert("a", 1, &replaced);
  c.Upsert("b", 3, &replaced);
  MemberPublisher pub;
  std::vector<MemberRecord> out;
  pub.Collect(c, false, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].Name(), "a");
  EXPECT_EQ(out[1].Name(), "b");
  EXPECT_EQ(out[1].generation, 3u);
  out.clear();
  pub.Collect(c, false, &out);
  EXPECT_TRUE(out.empty()) << "nothing changed";
  c.Find("a")->liveness.state = MemberState::kDead;
  c.Upsert("b", 4, &replaced);
  pub.Collect(c, false, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].state, MemberState::kDead);
  EXPECT_EQ(out[1].generation, 4u);
  out.clear();
  c.Forget("a", 100, 16);
  pub.Collect(c, false, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].forgotten);
  EXPECT_EQ(out[0].Name(), "a");
  out.clear();
  pub.Collect(c, true, &out);  // a reader's resync: everything, forgotten nodes excluded
  ASSERT_EQ(out.size(), 3u);   // bracketed by begin and end marks
  EXPECT_EQ(out[0].mark, MemberRecord::Mark::kFullBegin);
  EXPECT_EQ(out[1].mark, MemberRecord::Mark::kNone);
  EXPECT_EQ(out[1].Name(), "b");
  EXPECT_EQ(out[2].mark, MemberRecord::Mark::kFullEnd);
  EXPECT_EQ(out[2].count, 1u);
  EXPECT_EQ(out[0].generation, out[2].generation) << "the publication's number, both marks";
  EXPECT_EQ(pub.published(), 1u);
}

// The reader overran: it lost both the record publishing "b" dead and the one forgetting
// it. The full publication it asked for does not list "b"; the reader must drop it rather
// than keep a node shard 0 forgot (and never forgets on its own).
TEST(MemberFeedTest, FullPublicationDropsNodesShardZeroForgotMeanwhile) {
  MembershipConfig mc;
  mc.external = true;
  Membership m(&mc);
  Cluster c0("self", 1);  // shard 0's cluster
  Cluster c1("self", 1);  // shard 1's
  bool replaced;
  for (const char* n : {"a", "b", "c"}) {
    c0.Upsert(n, 1, &replaced);
    c1.Upsert(n, 1, &replaced);
  }
  MemberPublisher pub;
  MemberView view;
  Recorder events;
  std::vector<MemberRecord> out;
  auto apply = [&](TimeUs now) {
    for (const MemberRecord& r : out) view.Apply(r, c1, m, now, &events, 1000, 64);
    out.clear();
  };
  pub.Collect(c0, false, &out);
  apply(1);
  ASSERT_EQ(view.size(), 3u);
  // Overrun: these records never reach the reader.
  c0.Find("b")->liveness.state = MemberState::kDead;
  pub.Collect(c0, false, &out);
  c0.Forget("b", 10'000, 16);
  pub.Collect(c0, false, &out);
  ASSERT_FALSE(out.empty());
  out.clear();
  // Meanwhile shard 1 heard of "d" first through its own gossip: not shard 0's yet.
  c1.Upsert("d", 1, &replaced);
  // The resync.
  pub.Collect(c0, true, &out);
  apply(20);
  EXPECT_EQ(c1.Find("b"), nullptr) << "forgotten by shard 0 while the reader was behind";
  EXPECT_TRUE(c1.IsForgotten("b", 1, 0, 30)) << "and remembered, so gossip cannot revive it";
  EXPECT_EQ(view.size(), 2u);
  EXPECT_NE(c1.Find("a"), nullptr);
  EXPECT_NE(c1.Find("c"), nullptr);
  EXPECT_NE(c1.Find("d"), nullptr) << "never published: not the publication's to drop";
  EXPECT_EQ(c1.Find("d")->liveness.state, MemberState::kAlive);
  EXPECT_EQ(events.log, (std::vector<std::string>{"b:forgotten"}));
}

// A full publication the reader saw only part of (a record or its begin lost to another
// overrun) drops nothing: an unlisted node might be one of the lost records.
TEST(MemberFeedTest, IncompleteFullPublicationDropsNothing) {
  MembershipConfig mc;
  mc.external = true;
  Membership m(&mc);
  Cluster c0("self", 1);
  Cluster c1("self", 1);
  bool replaced;
  for (const char* n : {"a", "b"}) {
    c0.Upsert(n, 1, &replaced);
    c1.Upsert(n, 1, &replaced);
  }
  MemberPublisher pub;
  MemberView view;
  std::vector<MemberRecord> out;
  pub.Collect(c0, false, &out);
  for (const MemberRecord& r : out) view.Apply(r, c1, m, 1, nullptr, 1000, 64);
  out.clear();
  pub.Collect(c0, true, &out);  // begin, a, b, end
  ASSERT_EQ(out.size(), 4u);
  // A record lost in the middle.
  for (size_t i : {0, 1, 3}) view.Apply(out[i], c1, m, 2, nullptr, 1000, 64);
  EXPECT_EQ(view.full_incomplete(), 1u);
  // The begin lost.
  for (size_t i : {1, 2, 3}) view.Apply(out[i], c1, m, 3, nullptr, 1000, 64);
  EXPECT_EQ(view.full_incomplete(), 2u);
  // The end of another publication than the begin seen.
  out.clear();
  pub.Collect(c0, true, &out);
  std::vector<MemberRecord> next;
  pub.Collect(c0, true, &next);
  for (size_t i : {0, 1, 2}) view.Apply(out[i], c1, m, 4, nullptr, 1000, 64);
  view.Apply(next[3], c1, m, 4, nullptr, 1000, 64);
  EXPECT_EQ(view.full_incomplete(), 3u);
  EXPECT_EQ(view.full_complete(), 0u);
  EXPECT_EQ(view.dropped_unlisted(), 0u);
  EXPECT_EQ(view.size(), 2u);
  EXPECT_NE(c1.Find("a"), nullptr);
  EXPECT_NE(c1.Find("b"), nullptr);
  // Whole, it is complete and lists both: nothing to drop either.
  for (const MemberRecord& r : next) view.Apply(r, c1, m, 5, nullptr, 1000, 64);
  EXPECT_EQ(view.full_complete(), 1u);
  EXPECT_EQ(view.dropped_unlisted(), 0u);
  EXPECT_EQ(view.size(), 2u);
}

TEST(MemberFeedTest, ViewAppliesPublishedStatesByGeneration) {
  MembershipConfig mc;
  mc.external = true;
  Membership m(&mc);
  Cluster c("self", 1);
  bool replaced;
  NodeState* a = c.Upsert("a", 2, &replaced);
  Recorder events;
  MemberView view;
  EXPECT_EQ(view.StateOf("a", 2), MemberState::kAlive) << "not published yet: alive";
  view.Apply(MemberRecord::Make("a", 2, MemberState::kSuspect, false), c, m, 10, &events, 1000,
             64);
  EXPECT_EQ(a->liveness.state, MemberState::kSuspect);
  view.Apply(MemberRecord::Make("a", 2, MemberState::kDead, false), c, m, 20, &events, 1000, 64);
  EXPECT_EQ(a->liveness.state, MemberState::kDead);
  EXPECT_EQ(a->liveness.state_since_us, 20);
  // A record about an older incarnation changes nothing.
  view.Apply(MemberRecord::Make("a", 1, MemberState::kAlive, false), c, m, 30, &events, 1000, 64);
  EXPECT_EQ(a->liveness.state, MemberState::kDead);
  // Shard 0 met a newer incarnation: the one held here is dead until gossip replaces it.
  view.Apply(MemberRecord::Make("a", 3, MemberState::kAlive, false), c, m, 40, &events, 1000, 64);
  EXPECT_EQ(view.StateOf("a", 2), MemberState::kDead);
  EXPECT_EQ(view.StateOf("a", 3), MemberState::kAlive);
  EXPECT_EQ(view.StateOf("a", 4), MemberState::kAlive);
  // Learned here before shard 0 publishes it, then aligned by Sync.
  view.Apply(MemberRecord::Make("b", 5, MemberState::kLeft, false), c, m, 50, &events, 1000, 64);
  NodeState* b = c.Upsert("b", 5, &replaced);
  EXPECT_EQ(b->liveness.state, MemberState::kAlive);
  view.Sync(c, m, 60, &events);
  EXPECT_EQ(b->liveness.state, MemberState::kLeft);
  // Forgotten: gone here too, and remembered, so stale gossip cannot bring it back.
  view.Apply(MemberRecord::Make("b", 5, MemberState::kLeft, true), c, m, 70, &events, 1000, 64);
  EXPECT_EQ(c.Find("b"), nullptr);
  EXPECT_TRUE(c.IsForgotten("b", 5, 0, 80));
  EXPECT_EQ(view.size(), 1u);
  EXPECT_EQ(events.log, (std::vector<std::string>{"a:suspect", "a:dead", "b:left", "b:forgotten"}));
}

TEST(MemberFeedTest, ViewIsBounded) {
  MembershipConfig mc;
  mc.external = true;
  Membership m(&mc);
  Cluster c("self", 1);
  MemberView view;
  for (int i = 0; i < 10; ++i) {
    view.Apply(MemberRecord::Make("n" + std::to_string(i), 1, MemberState::kDead, false), c, m, 1,
               nullptr, 1000, 4);
  }
  EXPECT_EQ(view.size(), 4u);
  EXPECT_EQ(view.records_applied(), 10u);
}

// An external detector records arrivals but never changes a state by itself.
TEST(MemberFeedTest, ExternalDetectorNeverDecides) {
  MembershipConfig mc;
  mc.external = true;
  mc.confirm = false;
  Membership m(&mc);
  Cluster c("self", 1);
  bool replaced;
  NodeState* a = c.Upsert("a", 1, &replaced);
  m.OnDiscovered(*a, 0);
  m.Update(c, 3600 * kUsPerSec, nullptr);
  EXPECT_EQ(a->liveness.state, MemberState::kAlive) << "an hour of silence decides nothing";
  EXPECT_FALSE(m.Declare(*a, 1, nullptr));
  m.SetExternalState(*a, MemberState::kDead, 2, nullptr);
  m.OnHeartbeat(*a, 3, nullptr);
  m.OnProbeAck(*a, 4, nullptr);
  EXPECT_EQ(a->liveness.state, MemberState::kDead) << "only shard 0 refutes";
  EXPECT_EQ(a->liveness.last_arrival_us, 4);
}

// Two nodes of two shards each: shard 1 gossips its own keys, and learns of the crash
// only from shard 0's records, never from its own silence.
TEST(MemberFeedTest, ShardOneTakesLivenessFromShardZero) {
  testing::Net net;
  auto shard = [](const std::string& name, int i, uint16_t s) {
    EngineConfig c = Config(name, i + 100 * s);
    c.shard = s;
    c.shard_count = 2;
    c.membership.external = s != 0;
    c.seeds = {Ep(1 + 100 * s)};
    return c;
  };
  Engine& a0 = net.Add(shard("a", 1, 0));
  Engine& a1 = net.Add(shard("a", 1, 1));
  net.Add(shard("b", 2, 0));
  Engine& b1 = net.Add(shard("b", 2, 1));
  ASSERT_TRUE(b1.Set("k-on-shard-1", "v", net.now).ok());
  std::vector<MemberRecord> records;
  for (int r = 0; r < 5; ++r) {
    net.Round();
    records.clear();
    a0.CollectMembership(false, &records);
    a1.ApplyMembership(records);
  }
  ASSERT_NE(a1.FindNode("b"), nullptr);
  EXPECT_EQ(a1.FindNode("b")->max_version(), 1u) << "shard 1 replicates its own slice";
  EXPECT_EQ(a0.FindNode("b")->max_version(), 0u) << "shard 0 never saw shard 1's key";
  net.crashed.insert(Ep(2).port);
  net.crashed.insert(Ep(102).port);
  int rounds = 0;
  while (a0.FindNode("b")->liveness.state != MemberState::kDead && rounds < 200) {
    net.Round();
    ++rounds;
    EXPECT_EQ(a1.FindNode("b")->liveness.state, MemberState::kAlive)
        << "shard 1 must not judge silence on its own (round " << rounds << ")";
  }
  ASSERT_EQ(a0.FindNode("b")->liveness.state, MemberState::kDead);
  EXPECT_EQ(a1.probe_stats().suspicions, 0u);
  records.clear();
  a0.CollectMembership(false, &records);
  a1.ApplyMembership(records);
  EXPECT_EQ(a1.FindNode("b")->liveness.state, MemberState::kDead);
  // The restart comes back through shard 0 as well.
  net.crashed.clear();
  net.engines.erase(Ep(2).port);
  net.engines.erase(Ep(102).port);
  EngineConfig b0c = shard("b", 2, 0), b1c = shard("b", 2, 1);
  b0c.generation = b1c.generation = 2;
  net.Add(b0c);
  net.Add(b1c);
  for (int r = 0; r < 5; ++r) {
    net.Round();
    records.clear();
    a0.CollectMembership(false, &records);
    a1.ApplyMembership(records);
  }
  ASSERT_EQ(a1.FindNode("b")->generation(), 2u);
  EXPECT_EQ(a1.FindNode("b")->liveness.state, MemberState::kAlive);
}

}  // namespace
}  // namespace scuttle
