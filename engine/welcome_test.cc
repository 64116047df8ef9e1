// Welcome / bulk join (seed 002): snapshots streamed as windowed chunks, compared with
// plain delta-per-round anti-entropy; loss, responder crash, deletes + GC before the join.
#include "engine/welcome.h"

#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/test_util.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

using testing::Config;
using testing::Ep;

constexpr size_t kChunk = static_cast<size_t>(wire::MessageType::kWelcomeChunk);
constexpr size_t kRequest = static_cast<size_t>(wire::MessageType::kWelcomeRequest);

using testing::Net;

bool IsChunk(const std::vector<uint8_t>& bytes) {
  wire::DecodedPacket p;
  wire::DropReason r;
  return wire::Decode(bytes, wire::DecodeLimits{}, &p, &r) &&
         p.type == wire::MessageType::kWelcomeChunk;
}

// Live contents of one node as key → value (tombstones excluded).
std::map<std::string, std::string> Live(const NodeState& n) {
  std::map<std::string, std::string> out;
  n.ForEachAbove(0, [&](const NodeState::Slot& s) {
    if (s.status != KeyStatus::kTombstone) out[std::string(n.KeyOf(s))] = n.ValueOf(s);
    return true;
  });
  return out;
}

// `e` holds exactly what the owners hold (same max_version, same live keys).
bool SameAs(const Engine& e, const std::vector<Engine*>& owners, std::string* why = nullptr) {
  for (const Engine* o : owners) {
    const NodeState* n = e.FindNode(o->self().name());
    if (n == nullptr || n->max_version() != o->self().max_version()) {
      if (why) *why = std::string(o->self().name()) + ": max differs";
      return false;
    }
  }
  if (why == nullptr) return true;
  for (const Engine* o : owners) {
    if (Live(*e.FindNode(o->self().name())) != Live(o->self())) {
      *why = std::string(o->self().name()) + ": contents differ";
      return false;
    }
  }
  return true;
}

std::string Value(int i, size_t bytes) {
  std::string v(bytes, 'a' + i % 26);
  const std::string tag = std::to_string(i);
  v.replace(0, tag.size(), tag);
  return v;
}

// Owners o1..oN each write `keys` keys of ~80 B (16 B key + 64 B value); a third of them
// are then deleted and GC'd (so joiners need resets, and deletes must not come back).
struct Cluster5 {
  Net net;
  std::vector<Engine*> owners;
  std::vector<Engine*> hubs;

  Cluster5(int num_owners, int keys, int num_hubs, bool auto_join, size_t max_packet,
           bool deletes = true) {
    auto cfg = [&](const std::string& name, int i) {
      EngineConfig c = Config(name, i);
      c.max_packet_bytes = max_packet;
      c.welcome.auto_join = auto_join;
      c.tombstone_grace_us = 5 * kUsPerSec;
      c.epidemic.rumor = false;
      c.epidemic.direct_mail_peers = 0;
      c.epidemic.retention_sites = 0;
      return c;
    };
    for (int o = 0; o < num_owners; ++o) {
      owners.push_back(&net.Add(cfg("o" + std::to_string(o), 1 + o)));
    }
    for (int h = 0; h < num_hubs; ++h) {
      EngineConfig c = cfg("hub" + std::to_string(h), 50 + h);
      hubs.push_back(&net.Add(c));
    }
    char key[32];
    for (Engine* o : owners) {
      for (int k = 0; k < keys; ++k) {
        std::snprintf(key, sizeof(key), "key-%011d", k);
        EXPECT_TRUE(o->Set(key, Value(k, 64), net.now).ok());
      }
      if (deletes) {
        for (int k = 0; k < keys; k += 3) {
          std::snprintf(key, sizeof(key), "key-%011d", k);
          EXPECT_TRUE(o->Delete(key, net.now).ok());
        }
      }
    }
  }
  // Owners GC their tombstones (no gossip: only their own ticks, nothing pumped).
  void GcOwners() {
    net.now += 10 * kUsPerSec;
    for (Engine* o : owners) o->OnTick(net.now);
    for (auto& [port, sink] : net.sinks) sink->Take();
    for (Engine* o : owners) EXPECT_GT(o->self().last_gc_version(), 0u);
  }
  // Hubs take every owner's state through explicit welcome sessions (chained).
  void FillHubs() {
    for (Engine* h : hubs) {
      for (Engine* o : owners) h->StartWelcome(o->config().advertise);
      net.Pump();
      for (int i = 0; i < 10 && h->welcome_active(); ++i) net.Round();
      std::string why;
      EXPECT_TRUE(SameAs(*h, owners, &why)) << h->self().name() << " " << why;
    }
  }
};

int RoundsToConverge(Cluster5& c, Engine& joiner, int max_rounds) {
  for (int r = 1; r <= max_rounds; ++r) {
    c.net.Round();
    if (SameAs(joiner, c.owners)) return r;
  }
  return max_rounds + 1;
}

TEST(WelcomeTest, BulkJoinTakesFarFewerRoundsThanPlainGossip) {
  // 5 owners × 25k keys × ~80 B ≈ 10 MB of cluster state.
  constexpr int kOwners = 5, kKeys = 25000;
  int rounds[2] = {};
  uint64_t packets[2] = {};
  for (int welcome = 0; welcome < 2; ++welcome) {
    Cluster5 c(kOwners, kKeys, 1, /*auto_join=*/false, wire::kMaxUdpPayloadBytes,
               /*deletes=*/false);
    c.FillHubs();
    EngineConfig jc = Config("joiner", 99);
    jc.welcome.auto_join = welcome == 1;
    jc.seeds = {c.hubs[0]->config().advertise};
    jc.epidemic.rumor = false;
    Engine& j = c.net.Add(jc);
    const uint64_t before = c.net.delivered;
    rounds[welcome] = RoundsToConverge(c, j, 400);
    packets[welcome] = c.net.delivered - before;
    std::string why;
    EXPECT_TRUE(SameAs(j, c.owners, &why)) << why;
    if (welcome == 1) {
      EXPECT_GE(j.stats().welcome.sessions_started, 1u);
      EXPECT_GE(j.stats().welcome.sessions_completed, 1u);
      EXPECT_GT(j.stats().welcome.chunks_received, 100u);
    } else {
      EXPECT_EQ(j.stats().welcome.sessions_started, 0u);
    }
    EXPECT_LE(c.net.max_bytes[kChunk], wire::kMaxUdpPayloadBytes);
  }
  std::printf("10 MB join: plain gossip %d rounds / %llu packets; welcome %d rounds / %llu packets\n",
              rounds[0], static_cast<unsigned long long>(packets[0]), rounds[1],
              static_cast<unsigned long long>(packets[1]));
  EXPECT_GE(rounds[0], 10 * rounds[1]);
}

TEST(WelcomeTest, LossOfEveryseventhChunkStillConvergesExactly) {
  Cluster5 c(3, 4000, 1, /*auto_join=*/false, 1400);
  c.GcOwners();
  c.FillHubs();
  EngineConfig jc = Config("joiner", 99);
  jc.max_packet_bytes = 1400;
  jc.epidemic.rumor = false;
  jc.fanout = 0;  // only the welcome stream replicates
  Engine& j = c.net.Add(jc);
  uint64_t chunks = 0;
  c.net.drop = [&](uint16_t, uint16_t, const std::vector<uint8_t>& b) {
    return IsChunk(b) && ++chunks % 7 == 0;
  };
  j.StartWelcome(c.hubs[0]->config().advertise);
  c.net.Pump();
  for (int r = 0; r < 20 && j.welcome_active(); ++r) c.net.Round();
  EXPECT_FALSE(j.welcome_active());
  std::string why;
  EXPECT_TRUE(SameAs(j, c.owners, &why)) << why;
  EXPECT_GT(j.stats().welcome.chunk_gaps, 0u);
  EXPECT_GT(j.stats().welcome.resyncs_sent, 1u);
  EXPECT_EQ(j.stats().welcome.sessions_completed, 1u);
  EXPECT_LE(c.net.max_bytes[kChunk], 1400u);
  EXPECT_LE(c.net.max_bytes[kRequest], 1400u);
  std::printf("loss 1/7: %llu chunks sent, %llu gaps, %llu resyncs\n",
              static_cast<unsigned long long>(chunks),
              static_cast<unsigned long long>(j.stats().welcome.chunk_gaps),
              static_cast<unsigned long long>(j.stats().welcome.resyncs_sent));
}

TEST(WelcomeTest, ResponderCrashMidStreamResumesWithAnotherPeer) {
  Cluster5 c(2, 6000, 2, /*auto_join=*/false, 1400);
  c.GcOwners();
  c.FillHubs();
  EngineConfig jc = Config("joiner", 99);
  jc.max_packet_bytes = 1400;
  jc.epidemic.rumor = false;
  jc.fanout = 0;
  jc.seeds = {c.hubs[1]->config().advertise};
  Engine& j = c.net.Add(jc);
  const uint16_t hub0 = c.hubs[0]->config().advertise.port;
  uint64_t from_hub0 = 0;
  c.net.drop = [&](uint16_t from, uint16_t, const std::vector<uint8_t>& b) {
    if (from == hub0 && IsChunk(b) && ++from_hub0 == 50) c.net.crashed.insert(hub0);
    return c.net.crashed.contains(from);
  };
  j.StartWelcome(c.hubs[0]->config().advertise);
  c.net.Pump();
  EXPECT_TRUE(c.net.crashed.contains(hub0));
  EXPECT_TRUE(j.welcome_active());
  for (int r = 0; r < 20 && !SameAs(j, c.owners); ++r) c.net.Round();
  std::string why;
  EXPECT_TRUE(SameAs(j, c.owners, &why)) << why;
  EXPECT_GE(j.stats().welcome.sessions_abandoned, 1u);
  EXPECT_GE(j.stats().welcome.sessions_completed, 1u);
  EXPECT_GT(c.hubs[1]->stats().welcome.chunks_sent + c.owners[0]->stats().welcome.chunks_sent +
                c.owners[1]->stats().welcome.chunks_sent,
            0u);
}

TEST(WelcomeTest, StaleJoinerGetsResetNotResurrection) {
  // The joiner copies the owner's state, then the owner deletes keys and GCs the
  // tombstones; a welcome must reset the joiner's copy rather than keep deleted keys.
  Cluster5 c(1, 3000, 1, /*auto_join=*/false, 1400, /*deletes=*/false);
  Engine& o = *c.owners[0];
  EngineConfig jc = Config("joiner", 99);
  jc.max_packet_bytes = 1400;
  jc.epidemic.rumor = false;
  jc.fanout = 0;
  Engine& j = c.net.Add(jc);
  j.StartWelcome(o.config().advertise);
  c.net.Pump();
  ASSERT_TRUE(SameAs(j, c.owners)) << j.stats().welcome.requests_sent << " "
                                   << o.stats().welcome.requests_received << " "
                                   << o.stats().welcome.chunks_sent << " "
                                   << j.stats().welcome.chunks_received << " "
                                   << j.stats().engine_drops[0] << j.stats().engine_drops[1]
                                   << o.stats().engine_drops[0] << o.stats().engine_drops[1];
  char key[32];
  for (int k = 0; k < 3000; k += 2) {
    std::snprintf(key, sizeof(key), "key-%011d", k);
    ASSERT_TRUE(o.Delete(key, c.net.now).ok());
  }
  c.GcOwners();
  ASSERT_EQ(o.self().num_tombstones(), 0u);
  c.FillHubs();
  j.StartWelcome(c.hubs[0]->config().advertise);
  c.net.Pump();
  EXPECT_FALSE(j.welcome_active());
  std::string why;
  EXPECT_TRUE(SameAs(j, c.owners, &why)) << why << " j.max=" << j.FindNode("o0")->max_version()
      << " o.max=" << o.self().max_version() << " hub.max=" << c.hubs[0]->FindNode("o0")->max_version()
      << " chunks=" << j.stats().welcome.chunks_received << " started=" << j.stats().welcome.sessions_started
      << " hubsent=" << c.hubs[0]->stats().welcome.chunks_sent;
  const NodeState* n = j.FindNode("o0");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->num_live(), 1500u);
  EXPECT_GT(j.apply_stats().parts[static_cast<size_t>(PartOutcome::kReset)], 0u);
}

TEST(WelcomeTest, ResponderBoundsSessionsAndExpiresThem) {
  Cluster5 c(1, 2000, 0, /*auto_join=*/false, 1400);
  Engine& o = *c.owners[0];
  o.mutable_config().welcome.max_sessions = 2;
  std::vector<Engine*> joiners;
  for (int i = 0; i < 3; ++i) {
    EngineConfig jc = Config("j" + std::to_string(i), 80 + i);
    jc.max_packet_bytes = 1400;
    jc.fanout = 0;
    jc.seeds = {o.config().advertise};
    joiners.push_back(&c.net.Add(jc));
  }
  // Nothing pumped yet: all three requests reach the responder before any chunk.
  for (Engine* j : joiners) j->StartWelcome(o.config().advertise);
  c.net.Pump();
  EXPECT_EQ(o.stats().welcome.sessions_served, 2u);
  EXPECT_EQ(o.stats().welcome.sessions_rejected, 1u);
  for (int r = 0; r < 12; ++r) c.net.Round();
  for (Engine* j : joiners) EXPECT_TRUE(SameAs(*j, c.owners)) << j->self().name();
  EXPECT_EQ(o.welcome_serving(), 0u);
  EXPECT_GE(o.stats().welcome.sessions_expired, 2u);
}

TEST(WelcomeTest, SnapshotIsCutAtTheResponderFrontier) {
  // seed 002: the joiner inherits the responder's ack frontier with the snapshot. Tombstones
  // their owner announced as collected never reach it, even when the responder learned the
  // announcement after its last GC run (otherwise the joiner would hold them until the
  // owner itself gossips with it, or for tombstone_grace).
  Cluster5 c(1, 3000, 1, /*auto_join=*/false, 1400);  // a third of the keys deleted
  Engine& o = *c.owners[0];
  Engine& hub = *c.hubs[0];
  c.FillHubs();
  ASSERT_GT(hub.FindNode("o0")->num_tombstones(), 0u);
  c.GcOwners();
  ASSERT_EQ(o.self().num_tombstones(), 0u);
  // The hub hears o0's digest, but does not tick (no GC run) before the joiner asks.
  o.SendSyn(hub.config().advertise);
  c.net.Pump();
  ASSERT_EQ(hub.FindNode("o0")->owner_gc(), o.self().last_gc_version());
  EngineConfig jc = Config("joiner", 99);
  jc.max_packet_bytes = 1400;
  jc.epidemic.rumor = false;
  jc.fanout = 0;
  Engine& j = c.net.Add(jc);
  j.StartWelcome(hub.config().advertise);
  c.net.Pump();
  EXPECT_FALSE(j.welcome_active());
  std::string why;
  EXPECT_TRUE(SameAs(j, c.owners, &why)) << why;
  const NodeState* n = j.FindNode("o0");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->num_tombstones(), 0u);
  EXPECT_EQ(n->last_gc_version(), o.self().last_gc_version());
  EXPECT_EQ(hub.FindNode("o0")->num_tombstones(), 0u);
}

TEST(WelcomeTest, WireRoundTrip) {
  testing::VectorSink sink;
  Engine a(Config("a", 1), &sink, nullptr);
  ASSERT_TRUE(a.Set("k", "v", 1).ok());
  a.StartWelcome(Ep(2));
  ASSERT_EQ(sink.out.size(), 1u);
  wire::DecodedPacket p = testing::MustDecode(sink.out[0].bytes);
  EXPECT_EQ(p.type, wire::MessageType::kWelcomeRequest);
  EXPECT_NE(p.welcome.session, 0u);
  EXPECT_EQ(p.welcome.window, 32u);
  EXPECT_TRUE(p.welcome.resync);
  EXPECT_EQ(p.digest.entries.size(), 1u);
  EXPECT_STREQ(wire::MessageTypeName(wire::MessageType::kWelcomeChunk), "welcome_chunk");
}

}  // namespace
}  // namespace scuttle
