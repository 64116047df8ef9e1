// Engine-level tests: the three-way handshake, cluster/shard checks, drops, TTL, leave,
// generations and partial digests, with engines wired through in-memory sinks.
#include "engine/engine.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/test_util.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

using testing::Config;
using testing::Ep;

using testing::Net;

std::string Get(const Engine& e, const std::string& node, const std::string& key) {
  const NodeState* n = e.FindNode(node);
  if (n == nullptr) return "<no node>";
  const uint32_t idx = n->Find(key);
  if (idx == NodeState::kNoSlot) return "<absent>";
  if (n->slot(idx).status == KeyStatus::kTombstone) return "<deleted>";
  return std::string(n->ValueOf(n->slot(idx)));
}

EngineConfig Legacy(EngineConfig c) {
  c.digest_summaries = false;
  return c;
}

TEST(EngineTest, ThreeWayHandshakeReplicatesBothWays) {
  Net net;
  Engine& a = net.Add(Legacy(Config("a", 1)));
  Engine& b = net.Add(Legacy(Config("b", 2)));
  ASSERT_TRUE(a.Set("ka", "va", 1).ok());
  ASSERT_TRUE(b.Set("kb", "vb", 1).ok());
  a.SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(net.delivered, 3u) << "Syn, SynAck, Ack";
  EXPECT_EQ(Get(a, "b", "kb"), "vb");
  EXPECT_EQ(Get(b, "a", "ka"), "va");
  EXPECT_EQ(a.stats().packets_out[static_cast<size_t>(wire::MessageType::kSyn)], 1u);
  EXPECT_EQ(b.stats().packets_out[static_cast<size_t>(wire::MessageType::kSynAck)], 1u);
  EXPECT_EQ(a.stats().packets_out[static_cast<size_t>(wire::MessageType::kAck)], 1u);
  // Deletes replicate as tombstones.
  ASSERT_TRUE(a.Delete("ka", 2).ok());
  b.SendSyn(Ep(1));
  net.Pump();
  EXPECT_EQ(Get(b, "a", "ka"), "<deleted>");
}

TEST(EngineTest, GossipRoundsSpreadThroughSeeds) {
  Net net;
  std::vector<Engine*> all;
  for (int i = 1; i <= 8; ++i) {
    EngineConfig c = Config("n" + std::to_string(i), i);
    if (i > 1) c.seeds = {Ep(1)};
    all.push_back(&net.Add(c));
  }
  ASSERT_TRUE(all[5]->Set("hello", "world", 1).ok());
  for (int round = 0; round < 12; ++round) {
    net.now += kUsPerSec;
    for (Engine* e : all) e->OnTick(net.now);
    net.Pump();
  }
  for (Engine* e : all) {
    EXPECT_EQ(Get(*e, "n6", "hello"), "world") << e->self().name();
    EXPECT_EQ(e->cluster().size(), 8u);
  }
}

TEST(EngineTest, BadClusterIsolates) {
  Net net;
  Engine& a = net.Add(Config("a", 1));
  EngineConfig other = Config("x", 2);
  other.cluster_id = "other";
  Engine& x = net.Add(other);
  ASSERT_TRUE(a.Set("k", "v", 1).ok());
  a.SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(x.stats().engine_drops[static_cast<size_t>(EngineDrop::kClusterMismatch)], 1u);
  EXPECT_EQ(x.stats().packets_out[static_cast<size_t>(wire::MessageType::kBadCluster)], 1u);
  EXPECT_EQ(a.stats().bad_cluster_received, 1u);
  EXPECT_EQ(x.FindNode("a"), nullptr);
  EXPECT_EQ(a.FindNode("x"), nullptr);
}

// The shard count is part of the cluster's identity (docs/shards.md): refused, counted,
// and answered with a BadCluster that tells the sender the count differs.
TEST(EngineTest, ShardCountMismatchIsRefusedAndCounted) {
  Net net;
  Engine& a = net.Add(Config("a", 1));
  EngineConfig c = Config("b", 2);
  c.shard_count = 2;
  Engine& b = net.Add(c);
  a.SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(b.stats().engine_drops[static_cast<size_t>(EngineDrop::kShardCountMismatch)], 1u);
  EXPECT_EQ(b.FindNode("a"), nullptr);
  EXPECT_EQ(a.stats().bad_cluster_received, 1u);
  EXPECT_EQ(a.stats().bad_shard_count_received, 1u);
  b.SendSyn(Ep(1));
  net.Pump();
  EXPECT_EQ(a.stats().engine_drops[static_cast<size_t>(EngineDrop::kShardCountMismatch)], 1u);
  EXPECT_EQ(a.FindNode("b"), nullptr);
  EXPECT_EQ(b.stats().bad_shard_count_received, 1u);
  EXPECT_STREQ(EngineDropName(EngineDrop::kShardCountMismatch), "shard_count_mismatch");
}

// Same count, another shard index: a misrouted datagram, dropped without an answer.
TEST(EngineTest, ShardIndexMismatchIsDroppedSilently) {
  Net net;
  EngineConfig ac = Config("a", 1);
  ac.shard_count = 2;
  Engine& a = net.Add(ac);
  EngineConfig c = Config("b", 2);
  c.shard_count = 2;
  c.shard = 1;
  Engine& b = net.Add(c);
  a.SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(b.stats().engine_drops[static_cast<size_t>(EngineDrop::kShardMismatch)], 1u);
  EXPECT_EQ(b.stats().packets_out[static_cast<size_t>(wire::MessageType::kBadCluster)], 0u);
  EXPECT_EQ(b.FindNode("a"), nullptr);
  EXPECT_EQ(a.stats().bad_cluster_received, 0u);
}

// Two shards of two nodes replicate each shard's slice independently.
TEST(EngineTest, SameShardOfTwoNodesReplicates) {
  Net net;
  for (uint16_t s = 0; s < 2; ++s) {
    for (int i = 1; i <= 2; ++i) {
      EngineConfig c = Config(i == 1 ? "a" : "b", i + 100 * s);
      c.shard = s;
      c.shard_count = 2;
      c.seeds = {Ep(1 + 100 * s)};
      net.Add(c);
    }
  }
  Engine& a0 = *net.engines[Ep(1).port];
  Engine& a1 = *net.engines[Ep(101).port];
  ASSERT_TRUE(a0.Set("x", "0", net.now).ok());
  ASSERT_TRUE(a1.Set("y", "1", net.now).ok());
  for (int r = 0; r < 4; ++r) net.Round();
  const NodeState* in_b0 = net.engines[Ep(2).port]->FindNode("a");
  const NodeState* in_b1 = net.engines[Ep(102).port]->FindNode("a");
  ASSERT_NE(in_b0, nullptr);
  ASSERT_NE(in_b1, nullptr);
  EXPECT_NE(in_b0->Find("x"), NodeState::kNoSlot);
  EXPECT_EQ(in_b0->Find("y"), NodeState::kNoSlot);
  EXPECT_NE(in_b1->Find("y"), NodeState::kNoSlot);
  EXPECT_EQ(in_b1->Find("x"), NodeState::kNoSlot);
  for (const auto& [port, e] : net.engines) {
    EXPECT_EQ(e->stats().engine_drops[static_cast<size_t>(EngineDrop::kShardMismatch)], 0u);
    EXPECT_EQ(e->stats().engine_drops[static_cast<size_t>(EngineDrop::kShardCountMismatch)], 0u);
  }
}

TEST(EngineTest, MalformedDatagramsAreCountedByReason) {
  testing::VectorSink sink;
  Engine e(Config("a", 1), &sink, nullptr);
  const std::vector<uint8_t> junk(40, 0xab);
  e.OnPacket(1, Ep(9), junk);
  e.OnPacket(1, Ep(9), std::span<const uint8_t>(junk).first(3));
  EXPECT_EQ(e.stats().decode_drops[static_cast<size_t>(wire::DropReason::kBadMagic)], 1u);
  EXPECT_EQ(e.stats().decode_drops[static_cast<size_t>(wire::DropReason::kTooShort)], 1u);
  EXPECT_TRUE(sink.out.empty());
}

TEST(EngineTest, NoSendBufferIsACountedDrop) {
  testing::VectorSink sink;
  sink.fail_acquire = true;
  Engine e(Config("a", 1), &sink, nullptr);
  e.SendSyn(Ep(2));
  EXPECT_EQ(e.stats().engine_drops[static_cast<size_t>(EngineDrop::kNoTxBuffer)], 1u);
}

TEST(EngineTest, WriteLimitsAreClearErrors) {
  testing::VectorSink sink;
  EngineConfig c = Config("a", 1);
  c.limits.max_keys_per_node = 2;
  c.max_packet_bytes = 1400;
  Engine e(c, &sink, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(e.Set("", "v", 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(e.Set(std::string(1025, 'k'), "v", 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(e.Set("k", std::string(61 * 1024, 'v'), 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(e.Set("k", std::string(1300, 'v'), 1)))
      << "must fit one packet";
  EXPECT_TRUE(e.Set("k1", "v", 1).ok());
  EXPECT_TRUE(e.Set("k2", "v", 1).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(e.Set("k3", "v", 1)));
  EXPECT_TRUE(e.Set("k1", "overwrite is fine", 1).ok());
  EXPECT_TRUE(absl::IsNotFound(e.Delete("nope", 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(e.SetWithTtl("t", "v", 0, 1)));
}

TEST(EngineTest, TtlExpiryReplicatesAsDelete) {
  Net net;
  Engine& a = net.Add(Config("a", 1));
  Engine& b = net.Add(Config("b", 2));
  ASSERT_TRUE(a.SetWithTtl("lease", "x", 5 * kUsPerSec, net.now).ok());
  a.SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(Get(b, "a", "lease"), "x");
  net.now += 6 * kUsPerSec;
  a.OnTick(net.now);
  EXPECT_EQ(a.stats().keys_expired, 1u);
  net.Pump();
  a.SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(Get(b, "a", "lease"), "<deleted>");
}

TEST(EngineTest, NewGenerationReplacesOldState) {
  Net net;
  net.Add(Config("a", 1, /*gen=*/10));
  Engine& b = net.Add(Config("b", 2));
  ASSERT_TRUE(net.engines[7401]->Set("old", "1", 1).ok());
  net.engines[7401]->SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(Get(b, "a", "old"), "1");
  // Restart "a" with a larger generation and different data.
  net.Add(Config("a", 1, /*gen=*/11));
  ASSERT_TRUE(net.engines[7401]->Set("new", "2", 1).ok());
  net.engines[7401]->SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(b.FindNode("a")->generation(), 11u);
  EXPECT_EQ(Get(b, "a", "new"), "2");
  EXPECT_EQ(Get(b, "a", "old"), "<absent>") << "generations replace, never merge";
}

TEST(EngineTest, LeaveIsGossipedAndImmediate) {
  Net net;
  Engine& a = net.Add(Config("a", 1));
  Engine& b = net.Add(Config("b", 2));
  a.SendSyn(Ep(2));
  net.Pump();
  a.Leave();
  a.SendSyn(Ep(2));
  net.Pump();
  b.OnTick(net.now);
  EXPECT_EQ(b.FindNode("a")->liveness.state, MemberState::kLeft);
}

// Real-MTU batching: with max_packet_bytes at the path MTU, one handshake carries the
// whole delta in continuation datagrams, each within max_packet_bytes and each a valid
// delta on its own, in both directions and with both digest forms.
TEST(EngineTest, ContinuationDatagramsCarryTheWholeDeltaInOneHandshake) {
  for (bool compact : {false, true}) {
    for (int per_reply : {1, 64}) {
      SCOPED_TRACE(::testing::Message() << "compact=" << compact << " per_reply=" << per_reply);
      Net net;
      auto config = [&](const std::string& name, int i) {
        EngineConfig c = compact ? Config(name, i) : Legacy(Config(name, i));
        c.max_packet_bytes = 1400;
        c.max_datagrams_per_reply = per_reply;
        c.welcome.auto_join = false;  // the anti-entropy path, not the bulk join
        return c;
      };
      Engine& a = net.Add(config("a", 1));
      Engine& b = net.Add(config("b", 2));
      // Meet first: replies to a source that has not proven it receives ours are capped
      // at 3x its datagram (engine/reply_guard.h), which leaves no room to continue.
      a.SendSyn(Ep(2));
      net.Pump();
      b.SendSyn(Ep(1));
      net.Pump();
      for (int i = 0; i < 300; ++i) {
        ASSERT_TRUE(a.Set("a/" + std::to_string(i), std::string(100, 'x'), 1).ok());
      }
      for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(b.Set("b/" + std::to_string(i), std::string(100, 'y'), 1).ok());
      }
      a.SendSyn(Ep(2));
      net.Pump();
      const size_t b_has = b.FindNode("a") ? b.FindNode("a")->num_keys() : 0;
      const size_t a_has = a.FindNode("b") ? a.FindNode("b")->num_keys() : 0;
      if (per_reply == 1) {
        EXPECT_LT(b_has, 300u);
        EXPECT_EQ(a.stats().continuation_datagrams + b.stats().continuation_datagrams, 0u);
      } else {
        EXPECT_EQ(b_has, 300u) << "one handshake carries a's whole map";
        EXPECT_EQ(a_has, 200u) << "and b's";
        EXPECT_GT(a.stats().continuation_datagrams, 10u);
        EXPECT_GT(b.stats().continuation_datagrams, 5u);
      }
      for (size_t t = 0; t < wire::kMessageTypeCount; ++t) EXPECT_LE(net.max_bytes[t], 1400u);
      EXPECT_EQ(a.apply_stats().parts[static_cast<size_t>(PartOutcome::kGap)], 0u);
    }
  }
}

// A lost continuation only turns the later parts of its nodes into gaps (counted); later
// rounds converge to the same state.
TEST(EngineTest, LostContinuationsAreGapsAndConvergeLater) {
  Net net;
  EngineConfig ca = Legacy(Config("a", 1));
  ca.max_packet_bytes = 1400;
  ca.max_datagrams_per_reply = 64;
  ca.welcome.auto_join = false;
  EngineConfig cb = ca;
  cb.node_name = "b";
  cb.advertise = Ep(2);
  cb.rng_seed = 1002;
  Engine& a = net.Add(ca);
  Engine& b = net.Add(cb);
  a.SendSyn(Ep(2));  // meet first (see above)
  net.Pump();
  b.SendSyn(Ep(1));
  net.Pump();
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(a.Set("a/" + std::to_string(i), std::string(100, 'x'), 1).ok());
  }
  int acks = 0;
  net.drop = [&](uint16_t from, uint16_t, const std::vector<uint8_t>& bytes) {
    wire::DecodedPacket p = testing::MustDecode(bytes);
    // Every third continuation from a (a SynAck's followers: Acks with no digest) is lost.
    return from == 7401 && p.type == wire::MessageType::kAck && ++acks % 3 == 0;
  };
  b.SendSyn(Ep(1));
  net.Pump();
  EXPECT_LT(b.FindNode("a")->num_keys(), 300u);
  EXPECT_GT(b.apply_stats().parts[static_cast<size_t>(PartOutcome::kGap)], 0u);
  net.drop = nullptr;
  for (int r = 0; r < 3 && b.FindNode("a")->num_keys() < 300; ++r) {
    b.SendSyn(Ep(1));
    net.Pump();
  }
  EXPECT_EQ(b.FindNode("a")->num_keys(), 300u);
  EXPECT_EQ(Get(b, "a", "a/299"), std::string(100, 'x'));
}

TEST(EngineTest, DigestRotatesWhenItDoesNotFitAPacket) {
  Net net;
  EngineConfig c = Legacy(Config("a", 1));
  c.max_packet_bytes = 1400;
  Engine& a = net.Add(c);
  // Teach "a" about 200 nodes through a big-MTU engine's digests.
  Engine& b = net.Add(Config("b", 2));
  for (int i = 0; i < 200; ++i) {
    EngineConfig n = Config("m" + std::to_string(i), 100 + i);
    n.seeds = {Ep(2)};
    net.Add(n).SendSyn(Ep(2));
  }
  net.Pump();
  ASSERT_EQ(b.cluster().size(), 201u);
  b.SendSyn(Ep(1));
  net.Pump();
  // b's Syn digest (large MTU) listed all; a now knows them and its own Syns, at 1400
  // bytes, must be partial and rotate.
  ASSERT_GE(a.cluster().size(), 150u);
  std::map<std::string, int> seen;
  for (int round = 0; round < 20; ++round) {
    a.SendSyn(Ep(2));
    auto out = net.sinks[7401]->Take();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_LE(out[0].bytes.size(), 1400u);
    wire::DecodedPacket p = testing::MustDecode(out[0].bytes);
    EXPECT_TRUE(p.digest.partial);
    for (const auto& e : p.digest.entries) ++seen[std::string(p.Name(e.node))];
  }
  EXPECT_EQ(seen.size(), a.cluster().size()) << "every node advertised within a few rounds";
}

}  // namespace
}  // namespace scuttle

namespace scuttle {
namespace {

// n engines that all know each other (a few seeded rounds), anti-entropy then disabled.
std::vector<Engine*> Mesh(Net& net, int n, const EpidemicConfig& ec) {
  std::vector<Engine*> all;
  for (int i = 1; i <= n; ++i) {
    EngineConfig c = Config("n" + std::to_string(i), i);
    c.seeds = {Ep(1)};
    c.epidemic = ec;
    all.push_back(&net.Add(c));
  }
  for (int round = 0; round < 10; ++round) {
    net.now += kUsPerSec;
    for (Engine* e : all) e->OnTick(net.now);
    net.Pump();
  }
  for (Engine* e : all) {
    EXPECT_EQ(e->cluster().size(), static_cast<size_t>(n));
    e->mutable_config().fanout = 0;
    e->mutable_config().seeds.clear();
    // Without anti-entropy no heartbeats flow: keep everyone alive so no dead-peer probe
    // (a Syn) sneaks anti-entropy back in.
    e->mutable_config().membership.phi_threshold = 1e12;
  }
  return all;
}

TEST(EpidemicTest, PullAndPushAntiEntropyModes) {
  for (AntiEntropyMode mode : {AntiEntropyMode::kPull, AntiEntropyMode::kPush}) {
    Net net;
    EngineConfig ca = Config("a", 1);
    ca.epidemic.anti_entropy = mode;
    Engine& a = net.Add(ca);
    Engine& b = net.Add(Config("b", 2));
    ASSERT_TRUE(a.Set("ka", "va", 1).ok());
    ASSERT_TRUE(b.Set("kb", "vb", 1).ok());
    a.SendSyn(Ep(2));
    net.Pump();
    EXPECT_EQ(net.delivered, mode == AntiEntropyMode::kPull ? 2u : 3u);
    // Pull: the initiator learns, the peer does not; push: the reverse.
    EXPECT_EQ(Get(a, "b", "kb"), mode == AntiEntropyMode::kPull ? "vb" : "<absent>");
    EXPECT_EQ(Get(b, "a", "ka"), mode == AntiEntropyMode::kPush ? "va" : "<absent>");
  }
}

TEST(EpidemicTest, DirectMailDeliversWritesWithoutAHandshake) {
  Net net;
  EpidemicConfig ec;
  ec.direct_mail_peers = 3;
  auto all = Mesh(net, 4, ec);
  const uint64_t before = net.delivered;
  ASSERT_TRUE(all[0]->Set("mail", "now", net.now).ok());
  net.Pump();
  EXPECT_EQ(net.delivered - before, 3u) << "one Rumor per peer, no replies";
  for (Engine* e : all) EXPECT_EQ(Get(*e, "n1", "mail"), "now");
  EXPECT_EQ(all[0]->stats().direct_mails, 3u);
}

TEST(EpidemicTest, RumorsSpreadWithoutAntiEntropyAndThenCool) {
  for (RumorRemoval removal : {RumorRemoval::kFeedback, RumorRemoval::kBlind}) {
    Net net;
    EpidemicConfig ec;
    ec.rumor = true;
    ec.rumor_options.removal = removal;
    ec.rumor_options.decay =
        removal == RumorRemoval::kBlind ? RumorDecay::kCoin : RumorDecay::kCounter;
    ec.rumor_options.k = 4;
    auto all = Mesh(net, 30, ec);
    ASSERT_TRUE(all[7]->Set("gossip", "hot", net.now).ok());
    for (int round = 0; round < 40; ++round) {
      net.now += kUsPerSec;
      for (Engine* e : all) e->OnTick(net.now);
      net.Pump();
    }
    int reached = 0;
    for (Engine* e : all) reached += Get(*e, "n8", "gossip") == "hot";
    // Paper residue at k=4 is ~0.4% (feedback/counter) and ~2% (blind/coin): expect
    // nearly everyone, and certainly most.
    EXPECT_GE(reached, 26) << "removal " << ToString(removal);
    for (Engine* e : all) {
      if (Get(*e, "n8", "gossip") == "hot") {
        EXPECT_EQ(e->rumor_stats().added, 1u) << e->self().name() << ": receipt is a hot rumor";
      }
    }
    for (Engine* e : all) {
      const RumorStats& rs = e->rumor_stats();
      EXPECT_EQ(rs.added, rs.lost_interest + rs.dropped_full + e->epidemic_hot())
          << e->self().name() << " added " << rs.added << " lost " << rs.lost_interest;
    }
  }
}

// Demers' cycle in the engine: the feedback of one round's rumor contacts (here three
// peers that all knew, from direct mail) is one unnecessary contact, so with k = 2 the
// rumor survives the first round and goes cold when the second round is judged. Judged
// per contact it would have gone cold within the first round.
TEST(EpidemicTest, OneRoundsRumorFeedbackIsOneContact) {
  Net net;
  EpidemicConfig ec;
  ec.rumor = true;
  ec.rumor_fanout = 3;
  ec.rumor_options.k = 2;
  ec.direct_mail_peers = 3;
  auto all = Mesh(net, 4, ec);
  Engine& a = *all[0];
  ASSERT_TRUE(a.Set("k", "v", net.now).ok());
  net.Pump();  // the mail: every peer knows it before a's first rumor round
  for (Engine* e : all) ASSERT_EQ(Get(*e, "n1", "k"), "v");
  const uint64_t knew = a.stats().rumor_feedback_knew;
  auto round = [&] {
    net.now += kUsPerSec;
    for (Engine* e : all) e->OnTick(net.now);
    net.Pump();
  };
  round();
  EXPECT_EQ(a.stats().rumor_feedback_knew, knew + 3) << "three peers answered 'knew'";
  EXPECT_EQ(a.epidemic_hot(), 1u);
  round();
  EXPECT_EQ(a.epidemic_hot(), 1u) << "one unnecessary round so far (k = 2)";
  EXPECT_EQ(a.rumor_stats().contacts, 1u);
  round();
  EXPECT_EQ(a.epidemic_hot(), 0u);
  EXPECT_EQ(a.rumor_stats().contacts, 2u);
  EXPECT_EQ(a.rumor_stats().unnecessary, 2u);
  EXPECT_EQ(a.rumor_stats().lost_interest, 1u);
}

// push_fresh (#16 item 4): a write spreads in network delays, without a round: the
// writer pushes to `fanout` peers and each node forwards once, on first hearing. Off, the
// same write waits for the next round.
TEST(EpidemicTest, PushFreshSpreadsAWriteWithoutARound) {
  for (bool push_fresh : {false, true}) {
    Net net;
    EpidemicConfig ec;
    ec.rumor = true;
    ec.push_fresh = push_fresh;
    auto all = Mesh(net, 10, ec);
    for (Engine* e : all) e->mutable_config().fanout = 3;  // no tick runs below
    std::vector<uint64_t> before;
    for (Engine* e : all) before.push_back(e->stats().rumor_contacts);
    ASSERT_TRUE(all[4]->Set("fresh", "now", net.now).ok());
    net.Pump();
    int reached = 0;
    uint64_t sends = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      reached += Get(*all[i], "n5", "fresh") == "now";
      const uint64_t s = all[i]->stats().rumor_contacts - before[i];
      EXPECT_LE(s, 3u) << "one push to fanout peers per node, on first hearing only";
      sends += s;
    }
    if (!push_fresh) {
      EXPECT_EQ(reached, 1) << "only the writer, until a round runs";
      EXPECT_EQ(sends, 0u);
      continue;
    }
    // A random out-degree-3 infection graph on 10 nodes misses e^-3 of them on average.
    EXPECT_GE(reached, 8);
    EXPECT_EQ(sends, 3u * static_cast<uint64_t>(reached)) << "every infected node pushed once";
  }
}

// Rumor cycles on their own clock (EpidemicConfig::rumor_interval_us, #16 item 4): after
// the immediate push (which misses ~e^-3 of the nodes), hot rumors keep going to
// rumor_fanout peers every rumor interval, judged per cycle (feedback + counter k = 2),
// with no gossip round at all; the cycles stop by themselves once every node lost
// interest, so the traffic per write is bounded by k, not by time.
TEST(EpidemicTest, RumorCyclesReachEveryNodeBetweenRounds) {
  constexpr TimeUs kCycleUs = 20'000;
  Net net;
  EpidemicConfig ec;
  ec.rumor = true;
  ec.push_fresh = true;
  ec.rumor_fanout = 3;
  ec.rumor_options.k = 2;
  ec.rumor_interval_us = kCycleUs;
  constexpr int kNodes = 50;
  auto all = Mesh(net, kNodes, ec);
  for (Engine* e : all) e->mutable_config().fanout = 3;  // the immediate push; no tick runs
  for (Engine* e : all) ASSERT_EQ(e->RumorCycleDueUs(net.now), TimeUs{0}) << "nothing hot: no cycle";
  std::vector<uint64_t> before;
  for (Engine* e : all) before.push_back(e->stats().rumor_contacts);
  ASSERT_TRUE(all[9]->Set("cycled", "yes", net.now).ok());
  int steps = 0;
  for (; steps < 100; ++steps) {
    net.Pump();
    bool armed = false;
    for (Engine* e : all) {
      const TimeUs due = e->RumorCycleDueUs(net.now);
      if (due == 0) continue;
      armed = true;
      EXPECT_LE(due, net.now + kCycleUs);
      if (due <= net.now) e->OnRumorCycle(net.now);
    }
    if (!armed) break;
    net.now += kCycleUs / 2;
  }
  EXPECT_LT(steps, 100) << "cycles must stop once interest is lost";
  int reached = 0;
  uint64_t sends = 0, cycles = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    reached += Get(*all[i], "n10", "cycled") == "yes";
    sends += all[i]->stats().rumor_contacts - before[i];
    cycles += all[i]->stats().rumor_cycles;
    EXPECT_EQ(all[i]->epidemic_hot(), 0u);
    EXPECT_EQ(all[i]->stats().rounds, 10u) << "only Mesh's rounds ran";
  }
  // Paper model (docs/demers.md): push + immediate push, k = 2, fanout 3 leaves ~0.01 of
  // 50 nodes out on average; the immediate push alone ~2.6.
  EXPECT_GE(reached, kNodes - 1);
  EXPECT_GT(cycles, 0u);
  // Per node: 3 immediate sends + 3 per cycle, k = 2 cycles after the last useful one.
  EXPECT_LE(sends, 12u * kNodes) << "sends " << sends << " in " << cycles << " cycles";
  EXPECT_LE(steps, 30) << "a handful of 20 ms cycles, not rounds";
}

// The default (rumor_interval_us = 0): rumors ride the gossip round, as in the simulator's
// reproductions of Demers' tables; no separate cycle is ever due.
TEST(EpidemicTest, RumorsRideTheRoundByDefault) {
  Net net;
  EpidemicConfig ec;
  ec.rumor = true;
  ASSERT_EQ(ec.rumor_interval_us, TimeUs{0});
  auto all = Mesh(net, 4, ec);
  ASSERT_TRUE(all[0]->Set("k", "v", net.now).ok());
  EXPECT_EQ(all[0]->epidemic_hot(), 1u);
  EXPECT_EQ(all[0]->RumorCycleDueUs(net.now), TimeUs{0});
  all[0]->OnRumorCycle(net.now);  // a stray call does nothing
  EXPECT_EQ(all[0]->stats().rumor_cycles, 0u);
  EXPECT_EQ(all[0]->stats().rumor_contacts, 0u);
}

TEST(EpidemicTest, PullRumorsReachTheInitiator) {
  Net net;
  EpidemicConfig ec;
  ec.rumor = true;
  ec.rumor_options.variant = RumorVariant::kPull;
  auto all = Mesh(net, 10, ec);
  ASSERT_TRUE(all[3]->Set("pulled", "yes", net.now).ok());
  for (int round = 0; round < 30; ++round) {
    net.now += kUsPerSec;
    for (Engine* e : all) e->OnTick(net.now);
    net.Pump();
  }
  int reached = 0;
  for (Engine* e : all) reached += Get(*e, "n4", "pulled") == "yes";
  EXPECT_GE(reached, 9);
}

TEST(EpidemicTest, RetentionSitesKeepTombstonesLonger) {
  EpidemicConfig ec;
  ec.retention_sites = 3;
  Epidemic epi(&ec);
  Cluster c("self", 1);
  bool replaced;
  int retained = 0;
  for (int i = 0; i < 3000; ++i) {
    const NodeState* owner = c.Upsert("owner" + std::to_string(i), 1, &replaced);
    retained += epi.IsRetentionSite(*owner, c.self(), 100);
  }
  // Expected 3/100 of owners: 90 of 3000.
  EXPECT_GT(retained, 50);
  EXPECT_LT(retained, 140);
  EXPECT_TRUE(epi.IsRetentionSite(c.self(), c.self(), 3)) << "small clusters: everyone";
}

}  // namespace
}  // namespace scuttle

namespace scuttle {
namespace {

TEST(ForgettingTest, EarlyForgetterIgnoresLateForgettersButAcceptsNewGeneration) {
  Net net;
  EngineConfig ca = Config("a", 1);
  ca.membership.dead_node_grace_us = 30 * kUsPerSec;
  Engine& a = net.Add(ca);
  EngineConfig cb = Config("b", 2);
  cb.membership.dead_node_grace_us = 3600 * kUsPerSec;  // b forgets much later
  cb.seeds = {Ep(1)};
  Engine& b = net.Add(cb);
  EngineConfig cc = Config("c", 3, /*gen=*/5);
  cc.seeds = {Ep(1)};
  net.Add(cc);
  for (int round = 0; round < 5; ++round) {
    net.now += kUsPerSec;
    for (auto& [port, e] : net.engines) e->OnTick(net.now);
    net.Pump();
  }
  ASSERT_NE(a.FindNode("c"), nullptr);
  net.engines.erase(7403);  // c crashes
  for (int round = 0; round < 120; ++round) {
    net.now += kUsPerSec;
    a.OnTick(net.now);
    b.OnTick(net.now);
    net.Pump();
    a.SendSyn(Ep(2));  // b keeps gossiping c to a
    b.SendSyn(Ep(1));
    net.Pump();
  }
  EXPECT_EQ(a.FindNode("c"), nullptr) << "a forgot c and b's digests did not revive it";
  ASSERT_NE(b.FindNode("c"), nullptr);
  EXPECT_EQ(b.FindNode("c")->liveness.state, MemberState::kDead);
  EXPECT_GT(a.stats().engine_drops[static_cast<size_t>(EngineDrop::kForgotten)], 0u);
  // c comes back with a new generation: everyone takes it.
  Engine& c2 = net.Add(Config("c", 3, /*gen=*/6));
  ASSERT_TRUE(c2.Set("back", "yes", net.now).ok());
  c2.SendSyn(Ep(1));
  net.Pump();
  ASSERT_NE(a.FindNode("c"), nullptr);
  EXPECT_EQ(a.FindNode("c")->generation(), 6u);
  EXPECT_EQ(Get(a, "c", "back"), "yes");
}

TEST(ForgettingTest, LeavingIsStickyAgainstStaleRelays) {
  Net net;
  Engine& a = net.Add(Config("a", 1));
  Engine& b = net.Add(Config("b", 2));
  Engine& c = net.Add(Config("c", 3));
  a.SendSyn(Ep(2));
  a.SendSyn(Ep(3));
  net.Pump();
  a.Leave();
  a.SendSyn(Ep(2));
  net.Pump();
  ASSERT_TRUE(b.FindNode("a")->leaving);
  // c still holds a's older, unflagged entry and relays it to b.
  c.SendSyn(Ep(2));
  net.Pump();
  b.OnTick(net.now + kUsPerSec);
  EXPECT_TRUE(b.FindNode("a")->leaving);
  EXPECT_EQ(b.FindNode("a")->liveness.state, MemberState::kLeft);
}

}  // namespace
}  // namespace scuttle

namespace scuttle {
namespace {

// The advertised write limit is exact enough to use and safe: a write at the limit
// replicates in both handshake directions at the smallest packet size.
TEST(EngineTest, LargestAllowedWriteReplicatesAtSmallPackets) {
  for (size_t mtu : {size_t{1400}, size_t{9000}, wire::kMaxUdpPayloadBytes}) {
    Net net;
    EngineConfig ca = Config(std::string(64, 'a'), 1);
    ca.max_packet_bytes = mtu;
    Engine& a = net.Add(ca);
    EngineConfig cb = Config(std::string(64, 'b'), 2);
    cb.max_packet_bytes = mtu;
    Engine& b = net.Add(cb);
    const size_t kv = a.MaxKeyValueBytes();
    EXPECT_GT(kv, mtu / 3);
    const std::string key(std::min<size_t>(kv / 2, 1024), 'k');
    const std::string value(std::min(kv - key.size(), size_t{60 * 1024}), 'v');
    ASSERT_TRUE(a.Set(key, value, 1).ok()) << mtu;
    ASSERT_TRUE(b.Set(key, value, 1).ok()) << mtu;
    EXPECT_FALSE(a.Set(key, value + std::string(kv + 1 - key.size() - value.size(), 'x'), 1).ok());
    a.SendSyn(Ep(2));
    net.Pump();
    EXPECT_TRUE(Get(b, std::string(a.self().name()), key) == value)
        << "via Ack, mtu " << mtu << " acks out " << a.stats().packets_out[3] << " encode failed "
        << a.stats().engine_drops[static_cast<size_t>(EngineDrop::kEncodeFailed)] << " b decode drops "
        << b.stats().decode_drops[static_cast<size_t>(wire::DropReason::kValueTooLong)] << "/"
        << b.stats().decode_drops[static_cast<size_t>(wire::DropReason::kKeyTooLong)] << " parts applied "
        << b.apply_stats().parts[0] << " entries " << a.build_stats().entries;
    EXPECT_TRUE(Get(a, std::string(b.self().name()), key) == value) << "via SynAck, mtu " << mtu;
    EXPECT_EQ(a.stats().engine_drops[static_cast<size_t>(EngineDrop::kEncodeFailed)], 0u);
  }
}

}  // namespace
}  // namespace scuttle

namespace scuttle {
namespace {

TEST(FrontierGcTest, TombstonesGoOnceEveryLivePeerHasThemAndLatecomersAreReset) {
  Net net;
  std::vector<Engine*> all;
  for (int i = 1; i <= 4; ++i) {
    EngineConfig c = Config("n" + std::to_string(i), i);
    c.seeds = {Ep(1)};
    c.tombstone_grace_us = 3600 * kUsPerSec;  // time-based GC would take an hour
    all.push_back(&net.Add(c));
  }
  auto rounds = [&](int n, const std::vector<Engine*>& who) {
    for (int r = 0; r < n; ++r) {
      net.now += kUsPerSec;
      for (Engine* e : who) e->OnTick(net.now);
      net.Pump();
    }
  };
  Engine& owner = *all[0];
  ASSERT_TRUE(owner.Set("gone", "soon", net.now).ok());
  ASSERT_TRUE(owner.Set("kept", "yes", net.now).ok());
  rounds(8, all);
  for (Engine* e : all) ASSERT_EQ(Get(*e, "n1", "gone"), "soon");
  // n4 is partitioned away (its engine stops; we keep it to bring it back).
  std::unique_ptr<Engine> n4 = std::move(net.engines[7404]);
  net.engines.erase(7404);
  const std::vector<Engine*> rest = {all[0], all[1], all[2]};
  rounds(40, rest);  // n4 is declared dead and drops out of the frontier
  ASSERT_TRUE(owner.Delete("gone", net.now).ok());
  rounds(10, rest);
  EXPECT_EQ(owner.self().num_tombstones(), 0u) << "acked by every live peer: collected";
  EXPECT_GT(owner.self().last_gc_version(), 0u);
  EXPECT_GT(owner.stats().tombstones_gced_frontier, 0u);
  for (Engine* e : rest) {
    EXPECT_EQ(e->FindNode("n1")->num_tombstones(), 0u) << e->self().name();
    EXPECT_EQ(Get(*e, "n1", "gone"), "<absent>");
  }
  // n4 returns with the old set of "gone": it must be reset, never resurrect the key.
  EXPECT_EQ(Get(*n4, "n1", "gone"), "soon");
  net.engines[7404] = std::move(n4);
  rounds(10, all);
  for (Engine* e : all) {
    EXPECT_EQ(Get(*e, "n1", "gone"), "<absent>") << e->self().name();
    EXPECT_EQ(Get(*e, "n1", "kept"), "yes") << e->self().name();
  }
}

}  // namespace
}  // namespace scuttle

// ---- Compact digest: summaries, scoped listings, positional heartbeats (DESIGN §2) ----

namespace scuttle {
namespace {

using testing::Config;
using testing::Ep;

size_t Out(const Engine& e, wire::MessageType t) {
  return e.stats().packets_out[static_cast<size_t>(t)];
}

TEST(SummaryTest, FirstContactReplicatesBothWaysInFourMessages) {
  Net net;
  Engine& a = net.Add(Config("a", 1));
  Engine& b = net.Add(Config("b", 2));
  ASSERT_TRUE(a.Set("ka", "va", 1).ok());
  ASSERT_TRUE(b.Set("kb", "vb", 1).ok());
  a.SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(net.delivered, 4u) << "Syn, SynAck (listing), Ack (delta + listing), Ack (delta)";
  EXPECT_EQ(Get(a, "b", "kb"), "vb");
  EXPECT_EQ(Get(b, "a", "ka"), "va");
  // Deletes replicate as tombstones, from either side.
  ASSERT_TRUE(a.Delete("ka", 2).ok());
  b.SendSyn(Ep(1));
  net.Pump();
  EXPECT_EQ(Get(b, "a", "ka"), "<deleted>");
}

TEST(SummaryTest, IdleHandshakeIsTwoSmallPacketsWithoutEntries) {
  Net net;
  Engine& a = net.Add(Config("a", 1));
  Engine& b = net.Add(Config("b", 2));
  ASSERT_TRUE(a.Set("ka", "va", 1).ok());
  a.SendSyn(Ep(2));
  net.Pump();
  const uint64_t before = net.delivered;
  a.SendSyn(Ep(2));
  auto syn = net.sinks[7401]->Take();
  ASSERT_EQ(syn.size(), 1u);
  const wire::DecodedPacket sp = testing::MustDecode(syn[0].bytes);
  EXPECT_TRUE(sp.digest.summary.present);
  EXPECT_TRUE(sp.digest.entries.empty());
  // 288: 256 before the return-routability cookie and echo (8 bytes each + vtable).
  EXPECT_LT(syn[0].bytes.size(), 288u);
  b.OnPacket(net.now, Ep(1), syn[0].bytes);
  auto synack = net.sinks[7402]->Take();
  ASSERT_EQ(synack.size(), 1u);
  const wire::DecodedPacket ap = testing::MustDecode(synack[0].bytes);
  EXPECT_TRUE(ap.digest.scoped);
  EXPECT_TRUE(ap.digest.scope.empty()) << "no bucket differs";
  EXPECT_TRUE(ap.digest.entries.empty());
  EXPECT_LT(synack[0].bytes.size(), 288u);
  a.OnPacket(net.now, Ep(2), synack[0].bytes);
  EXPECT_TRUE(net.sinks[7401]->Take().empty()) << "nothing differs: no Ack";
  EXPECT_EQ(net.delivered, before);
}

TEST(SummaryTest, OnlyDifferingBucketsAreListed) {
  Net net;
  std::vector<Engine*> all;
  for (int i = 1; i <= 64; ++i) {
    EngineConfig c = Config("n" + std::to_string(i), i);
    if (i > 1) c.seeds = {Ep(1)};
    all.push_back(&net.Add(c));
  }
  // Converge: everyone talks to n1, then n1 to everyone.
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 2; i <= 64; ++i) {
      all[i - 1]->SendSyn(Ep(1));
      net.Pump();
    }
    for (int i = 2; i <= 64; ++i) {
      all[0]->SendSyn(Ep(i));
      net.Pump();
    }
  }
  for (Engine* e : all) ASSERT_EQ(e->cluster().size(), 64u);
  ASSERT_TRUE(all[5]->Set("k", "v", 1).ok());
  // n6 → n1: one bucket of 2 differs; the SynAck lists only that bucket's nodes.
  all[5]->SendSyn(Ep(1));
  auto syn = net.sinks[7406]->Take();
  ASSERT_EQ(syn.size(), 1u);
  all[0]->OnPacket(net.now, Ep(6), syn[0].bytes);
  auto synack = net.sinks[7401]->Take();
  ASSERT_EQ(synack.size(), 1u);
  const wire::DecodedPacket p = testing::MustDecode(synack[0].bytes);
  EXPECT_EQ(p.digest.scope_buckets, 2u);  // about 32 nodes a bucket
  EXPECT_EQ(p.digest.scope.size(), 1u);
  EXPECT_GE(p.digest.entries.size(), 1u);
  EXPECT_LT(p.digest.entries.size(), 48u) << "one bucket of two (about 32 nodes), not all 64";
  all[5]->OnPacket(net.now, Ep(1), synack[0].bytes);
  net.Pump();
  EXPECT_EQ(Get(*all[0], "n6", "k"), "v");
}

TEST(SummaryTest, HeartbeatsTravelByPositionAndFrontierFromBuckets) {
  Net net;
  Engine& a = net.Add(Config("a", 1));
  Engine& b = net.Add(Config("b", 2));
  Engine& c = net.Add(Config("c", 3));
  for (int pass = 0; pass < 2; ++pass) {
    a.SendSyn(Ep(2));
    net.Pump();
    c.SendSyn(Ep(2));
    net.Pump();
    b.SendSyn(Ep(1));
    net.Pump();
  }
  ASSERT_EQ(a.cluster().size(), 3u);
  ASSERT_EQ(c.cluster().size(), 3u);
  // c's heartbeat rises; c tells b, b tells a: no entries are listed anywhere.
  for (int i = 0; i < 5; ++i) c.OnTick(net.now);
  net.sinks[7403]->Take();  // drop c's own round traffic
  c.SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(b.FindNode("c")->heartbeat, c.self().heartbeat);
  const uint64_t acks_before = Out(a, wire::MessageType::kAck) + Out(b, wire::MessageType::kAck);
  b.SendSyn(Ep(1));
  net.Pump();
  EXPECT_EQ(a.FindNode("c")->heartbeat, c.self().heartbeat);
  EXPECT_EQ(Out(a, wire::MessageType::kAck) + Out(b, wire::MessageType::kAck), acks_before);
  // Ack frontier: a's Syn summary tells b that a holds all of b's map.
  ASSERT_TRUE(b.Set("kb", "vb", 1).ok());
  b.SendSyn(Ep(1));
  net.Pump();
  ASSERT_EQ(Get(a, "b", "kb"), "vb");
  a.SendSyn(Ep(2));
  net.Pump();
  EXPECT_EQ(b.FindNode("a")->acked_self_max(), b.self().max_version());
}

// Teaches `e` about `n` extra nodes by crafted Syns from a fake node, legacy digests of up
// to 700 entries each.
void Learn(Engine& e, int n) {
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back("node-" + std::to_string(i));
  std::vector<uint8_t> slot(wire::kMaxUdpPayloadBytes + 4096);
  for (int start = 0; start < n; start += 700) {
    const int count = std::min(700, n - start);
    wire::EncodeOptions o;
    o.cluster_id = "test";
    o.sender.generation = 1;
    o.sender.name_len = 4;
    wire::PacketEncoder enc(slot, o);
    size_t blob_bytes = 4;
    for (int i = 0; i < count; ++i) blob_bytes += names[start + i].size();
    auto blob = enc.AllocBlob(blob_bytes);
    ASSERT_EQ(blob.size(), blob_bytes);
    std::memcpy(blob.data(), "fake", 4);
    size_t off = 4;
    auto entries = enc.AllocDigest(count, /*partial=*/true);
    ASSERT_EQ(entries.size(), static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
      const std::string& nm = names[start + i];
      std::memcpy(blob.data() + off, nm.data(), nm.size());
      wire::DigestEntry& d = entries[i];
      d = {};
      d.node.generation = 1;
      d.node.name_off = static_cast<uint32_t>(off);
      d.node.name_len = static_cast<uint8_t>(nm.size());
      wire::SetNodeRefEndpoint(Ep(1000 + start + i), &d.node);
      d.heartbeat = 1;
      off += nm.size();
    }
    auto pkt = enc.Finish(wire::MessageType::kSyn);
    ASSERT_FALSE(pkt.empty());
    std::vector<uint8_t> bytes(pkt.begin(), pkt.end());
    e.OnPacket(1, Ep(999), bytes);
  }
}

// Issue #8: a Syn never exceeds max_packet_bytes at any cluster size, and neither do the
// SynAck and Ack of a summary handshake whose memberships differ (full listings).
TEST(SummaryTest, DigestPacketsFitEveryPacketSizeAt1kAnd10kNodes) {
  for (int n : {1000, 10000}) {
    Net net;
    EngineConfig ca = Config("a", 1);
    ca.limits.max_nodes = 20000;
    Engine& a = net.Add(ca);
    EngineConfig cb = Config("b", 2);
    cb.limits.max_nodes = 20000;
    Engine& b = net.Add(cb);
    Learn(a, n);
    Learn(b, n / 2);
    net.sinks[7401]->Take();
    net.sinks[7402]->Take();
    ASSERT_GE(a.cluster().size(), static_cast<size_t>(n));
    for (size_t mtu : {size_t{1400}, size_t{2000}, size_t{4096}, size_t{9000}, size_t{16384},
                       size_t{32768}, wire::kMaxUdpPayloadBytes}) {
      SCOPED_TRACE(::testing::Message() << n << " nodes, max_packet_bytes " << mtu);
      a.mutable_config().max_packet_bytes = mtu;
      b.mutable_config().max_packet_bytes = mtu;
      a.SendSyn(Ep(2));
      size_t seen = 0;
      for (int hop = 0; hop < 4; ++hop) {
        for (uint16_t port : {uint16_t{7401}, uint16_t{7402}}) {
          for (auto& d : net.sinks[port]->Take()) {
            ++seen;
            EXPECT_LE(d.bytes.size(), mtu) << "message from port " << port;
            const wire::DecodedPacket p = testing::MustDecode(d.bytes);
            if (p.type == wire::MessageType::kSyn) {
              EXPECT_GT(p.digest.summary.buckets.size(), 0u);
            }
            net.engines[d.to.port]->OnPacket(net.now, Endpoint::V4(0x7f000001, port), d.bytes);
          }
        }
      }
      EXPECT_GE(seen, 3u) << "Syn, SynAck and Ack went out";
      EXPECT_EQ(a.stats().engine_drops[static_cast<size_t>(EngineDrop::kEncodeFailed)], 0u);
      EXPECT_EQ(b.stats().engine_drops[static_cast<size_t>(EngineDrop::kEncodeFailed)], 0u);
    }
  }
}

}  // namespace
}  // namespace scuttle
