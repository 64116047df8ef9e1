// Security in the engine (DESIGN §8): sealed gossip, every drop reason, replay windows,
// key rotation, and the amplification guard, with engines wired through in-memory sinks.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/replay.h"
#include "engine/test_util.h"
#include "gtest/gtest.h"

namespace scuttle {
namespace {

using testing::Config;
using testing::Ep;
using testing::Net;

wire::KeyBytes K(uint8_t fill) {
  wire::KeyBytes k;
  k.fill(fill);
  return k;
}

wire::Keyring Ring(std::initializer_list<wire::KeyBytes> keys) {
  wire::Keyring r;
  for (const auto& k : keys) EXPECT_TRUE(r.Install(k).ok());
  return r;
}

EngineConfig Keyed(const std::string& name, int i, wire::Keyring ring) {
  EngineConfig c = Config(name, i);
  c.security.keyring = std::move(ring);
  c.seeds = {Ep(1)};
  return c;
}

uint64_t Sec(const Engine& e, SecurityDrop d) {
  return e.stats().security.drops[static_cast<size_t>(d)];
}

bool Knows(const Engine& e, const std::string& node, const std::string& key) {
  const NodeState* n = e.FindNode(node);
  return n != nullptr && n->Find(key) != NodeState::kNoSlot;
}

// ---- Replay window edges -------------------------------------------------------------

TEST(ReplayWindowTest, Edges) {
  ReplayWindow w;
  constexpr uint64_t W = ReplayWindow::kWindowBits;
  EXPECT_EQ(w.Check(5000), ReplayVerdict::kFresh);
  w.Mark(5000);
  EXPECT_EQ(w.Check(5000), ReplayVerdict::kReplayed);
  EXPECT_EQ(w.Check(4999), ReplayVerdict::kFresh);  // reordered, inside the window
  w.Mark(4999);
  EXPECT_EQ(w.Check(4999), ReplayVerdict::kReplayed);
  EXPECT_EQ(w.Check(5000 - W + 1), ReplayVerdict::kFresh);  // the window's last slot
  EXPECT_EQ(w.Check(5000 - W), ReplayVerdict::kStale);      // just below it
  w.Mark(5000 + W - 1);  // slide by W-1: 5000 stays inside, 4999 falls out
  EXPECT_EQ(w.Check(5000), ReplayVerdict::kReplayed);
  EXPECT_EQ(w.Check(4999), ReplayVerdict::kStale);
  EXPECT_EQ(w.Check(5001), ReplayVerdict::kFresh) << "slots cleared by the slide";
  w.Mark(5000 + 10 * W);  // a jump past the window clears it
  EXPECT_EQ(w.Check(5000 + 10 * W - 1), ReplayVerdict::kFresh);
  EXPECT_EQ(w.Check(5000 + 9 * W), ReplayVerdict::kStale);
  // Counter 0 and the top of the range.
  ReplayWindow z;
  z.Mark(0);
  EXPECT_EQ(z.Check(0), ReplayVerdict::kReplayed);
  z.Mark(UINT64_MAX);
  EXPECT_EQ(z.Check(UINT64_MAX), ReplayVerdict::kReplayed);
  EXPECT_EQ(z.Check(UINT64_MAX - 1), ReplayVerdict::kFresh);
}

TEST(ReplayWindowTest, EveryOrderWithinTheWindowIsAcceptedOnce) {
  ReplayWindow w;
  Rng rng(7);
  std::vector<uint64_t> c(3000);
  for (size_t i = 0; i < c.size(); ++i) c[i] = 100 + i;
  // Shuffle within blocks of 512 so every counter stays inside the window.
  for (size_t b = 0; b < c.size(); b += 512) {
    const size_t n = std::min<size_t>(512, c.size() - b);
    for (size_t i = n - 1; i > 0; --i) std::swap(c[b + i], c[b + rng.Below(i + 1)]);
  }
  for (uint64_t x : c) {
    ASSERT_EQ(w.Check(x), ReplayVerdict::kFresh) << x;
    w.Mark(x);
  }
  for (uint64_t x = 3100 - 1000; x < 3100; ++x) EXPECT_EQ(w.Check(x), ReplayVerdict::kReplayed);
}

TEST(ReplayTableTest, BoundedWithLeastRecentEviction) {
  ReplayTable t(2);
  EXPECT_EQ(t.Accept(1, 10), ReplayVerdict::kFresh);
  EXPECT_EQ(t.Accept(2, 10), ReplayVerdict::kFresh);
  EXPECT_EQ(t.Accept(1, 11), ReplayVerdict::kFresh);
  EXPECT_EQ(t.Accept(3, 10), ReplayVerdict::kFresh);  // evicts 2
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(t.Accept(1, 10), ReplayVerdict::kReplayed);
  EXPECT_EQ(t.Accept(3, 10), ReplayVerdict::kReplayed);
}

// ---- Sealed gossip ----------------------------------------------------------------------

TEST(SecurityTest, SealedClusterReplicatesAndHidesValues) {
  Net net;
  std::vector<Engine*> e;
  for (int i = 1; i <= 4; ++i) {
    e.push_back(&net.Add(Keyed("n" + std::to_string(i), i, Ring({K(1)}))));
  }
  ASSERT_TRUE(e[3]->Set("secret-key", "secret-value", 1).ok());
  bool plaintext_seen = false;
  net.drop = [&](uint16_t, uint16_t, const std::vector<uint8_t>& b) {
    const std::string s(b.begin(), b.end());
    if (s.find("secret-value") != std::string::npos || s.find("secret-key") != std::string::npos) {
      plaintext_seen = true;
    }
    return false;
  };
  for (int r = 0; r < 10; ++r) net.Round();
  for (Engine* x : e) EXPECT_TRUE(Knows(*x, "n4", "secret-key")) << x->self().name();
  EXPECT_FALSE(plaintext_seen);
  for (Engine* x : e) {
    EXPECT_GT(x->stats().security.sealed_out, 0u);
    EXPECT_GT(x->stats().security.opened_in, 0u);
    for (size_t d = 0; d < kSecurityDropCount; ++d) EXPECT_EQ(x->stats().security.drops[d], 0u);
  }
}

TEST(SecurityTest, SealedDatagramsRespectMaxPacketBytes) {
  Net net;
  EngineConfig ca = Keyed("a", 1, Ring({K(1)}));
  EngineConfig cb = Keyed("b", 2, Ring({K(1)}));
  ca.max_packet_bytes = cb.max_packet_bytes = 1400;
  Engine& a = net.Add(ca);
  net.Add(cb);
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(a.Set("k" + std::to_string(i), std::string(a.MaxKeyValueBytes() / 4, 'x'), 1).ok());
  }
  size_t largest = 0;
  net.drop = [&](uint16_t, uint16_t, const std::vector<uint8_t>& b) {
    largest = std::max(largest, b.size());
    return false;
  };
  for (int r = 0; r < 30; ++r) net.Round();
  EXPECT_LE(largest, 1400u);
  EXPECT_GT(largest, 1000u);
  EXPECT_TRUE(Knows(*net.engines[Ep(2).port], "a", "k199"));
}

TEST(SecurityTest, ReplayedDatagramIsDroppedAndCounted) {
  Net net;
  Engine& a = net.Add(Keyed("a", 1, Ring({K(1)})));
  Engine& b = net.Add(Keyed("b", 2, Ring({K(1)})));
  std::vector<std::vector<uint8_t>> captured;
  net.drop = [&](uint16_t from, uint16_t, const std::vector<uint8_t>& bytes) {
    if (from == Ep(2).port) captured.push_back(bytes);
    return false;
  };
  b.SendSyn(Ep(1));
  net.Pump();
  ASSERT_FALSE(captured.empty());
  const uint64_t before = a.stats().security.opened_in;
  for (const auto& d : captured) a.OnPacket(net.now, Ep(2), d);
  EXPECT_EQ(Sec(a, SecurityDrop::kReplayed), captured.size());
  EXPECT_EQ(a.stats().security.opened_in, before);
  EXPECT_TRUE(net.sinks[Ep(1).port]->out.empty()) << "a replay is never answered";
}

TEST(SecurityTest, WrongKeyNodeIsNeverAdmitted) {
  Net net;
  Engine& a = net.Add(Keyed("a", 1, Ring({K(1)})));
  Engine& b = net.Add(Keyed("b", 2, Ring({K(1)})));
  Engine& evil = net.Add(Keyed("evil", 3, Ring({K(9)})));
  ASSERT_TRUE(evil.Set("owned", "yes", 1).ok());
  for (int r = 0; r < 10; ++r) net.Round();
  EXPECT_NE(a.FindNode("b"), nullptr);
  EXPECT_EQ(a.FindNode("evil"), nullptr);
  EXPECT_EQ(b.FindNode("evil"), nullptr);
  EXPECT_EQ(evil.FindNode("a"), nullptr);
  EXPECT_GT(Sec(a, SecurityDrop::kBadKey), 0u);
  EXPECT_EQ(evil.stats().security.opened_in, 0u) << "nobody answered the wrong-key node";
}

TEST(SecurityTest, PlaintextRefusedUnlessVerifyIncomingIsOff) {
  Net net;
  Engine& a = net.Add(Keyed("a", 1, Ring({K(1)})));
  EngineConfig pc = Config("plain", 2);
  pc.seeds = {Ep(1)};
  Engine& plain = net.Add(pc);
  for (int r = 0; r < 5; ++r) net.Round();
  EXPECT_EQ(a.FindNode("plain"), nullptr);
  EXPECT_GT(Sec(a, SecurityDrop::kPlaintextRefused), 0u);
  a.SendSyn(Ep(2));
  net.Pump();
  EXPECT_GT(Sec(plain, SecurityDrop::kNoKeyring), 0u);
  // Migration step 1 (memberlist's flags): accept clear, send clear.
  a.SetVerify(/*incoming=*/false, /*outgoing=*/false);
  for (int r = 0; r < 5; ++r) net.Round();
  EXPECT_NE(a.FindNode("plain"), nullptr);
  EXPECT_NE(plain.FindNode("a"), nullptr);
  EXPECT_GT(a.stats().security.plaintext_in, 0u);
}

TEST(SecurityTest, MigrationPlaintextToEncryptedKeepsEveryoneConnected) {
  Net net;
  std::vector<Engine*> e;
  for (int i = 1; i <= 4; ++i) {
    EngineConfig c = Config("n" + std::to_string(i), i);
    c.seeds = {Ep(1)};
    e.push_back(&net.Add(c));
  }
  auto all_know_all = [&] {
    for (Engine* x : e) {
      for (Engine* y : e) {
        const NodeState* n = x->FindNode(y->self().name());
        if (n == nullptr || n->liveness.state != MemberState::kAlive) return false;
      }
    }
    return true;
  };
  for (int r = 0; r < 6; ++r) net.Round();
  ASSERT_TRUE(all_know_all());
  // 1: keys everywhere, accepting both, still sending clear. 2: seal. 3: refuse clear.
  // One node at a time with gossip rounds in between, checking nobody looks dead.
  for (int step = 0; step < 3; ++step) {
    for (Engine* x : e) {
      if (step == 0) x->SetKeyring(Ring({K(4)}));
      x->SetVerify(/*incoming=*/step == 2, /*outgoing=*/step >= 1);
      net.Round();
      ASSERT_TRUE(all_know_all()) << "step " << step;
    }
  }
  const uint64_t sealed_before = e[0]->stats().security.sealed_out;
  ASSERT_TRUE(e[2]->Set("late", "v", net.now).ok());
  for (int r = 0; r < 6; ++r) net.Round();
  for (Engine* x : e) EXPECT_TRUE(Knows(*x, "n3", "late"));
  EXPECT_GT(e[0]->stats().security.sealed_out, sealed_before);
  for (Engine* x : e) EXPECT_EQ(Sec(*x, SecurityDrop::kPlaintextRefused), 0u);
}

TEST(SecurityTest, StaggeredKeyRotationNeverPartitions) {
  Net net;
  std::vector<Engine*> e;
  std::vector<wire::Keyring> rings;
  for (int i = 1; i <= 5; ++i) {
    rings.push_back(Ring({K(1)}));
    e.push_back(&net.Add(Keyed("n" + std::to_string(i), i, rings.back())));
  }
  for (int r = 0; r < 6; ++r) net.Round();
  auto step = [&](auto fn) {
    for (size_t i = 0; i < e.size(); ++i) {
      fn(rings[i]);
      e[i]->SetKeyring(rings[i]);
      net.Round();
      for (Engine* x : e) {
        for (Engine* y : e) {
          const NodeState* n = x->FindNode(y->self().name());
          ASSERT_TRUE(n != nullptr && n->liveness.state == MemberState::kAlive);
        }
      }
    }
  };
  step([](wire::Keyring& r) { ASSERT_TRUE(r.Install(K(2)).ok()); });
  step([](wire::Keyring& r) { ASSERT_TRUE(r.Use(wire::EncodeKey(K(2))).ok()); });
  step([](wire::Keyring& r) { ASSERT_TRUE(r.Remove(wire::EncodeKey(K(1))).ok()); });
  ASSERT_TRUE(e[0]->Set("after", "rotation", net.now).ok());
  for (int r = 0; r < 6; ++r) net.Round();
  for (Engine* x : e) {
    EXPECT_TRUE(Knows(*x, "n1", "after"));
    EXPECT_EQ(Sec(*x, SecurityDrop::kBadKey), 0u);
  }
  // A node still on the old key only is now shut out.
  Engine& old = net.Add(Keyed("old", 9, Ring({K(1)})));
  for (int r = 0; r < 5; ++r) net.Round();
  EXPECT_EQ(e[0]->FindNode("old"), nullptr);
  EXPECT_EQ(old.FindNode("n1"), nullptr);
}

TEST(SecurityTest, TamperedAndTruncatedSealedDatagramsAreCountedByReason) {
  Net net;
  Engine& a = net.Add(Keyed("a", 1, Ring({K(1)})));
  Engine& b = net.Add(Keyed("b", 2, Ring({K(1)})));
  (void)a;
  std::vector<uint8_t> syn;
  net.drop = [&](uint16_t, uint16_t, const std::vector<uint8_t>& bytes) {
    if (syn.empty()) syn = bytes;
    return true;
  };
  b.SendSyn(Ep(1));
  net.Pump();
  ASSERT_FALSE(syn.empty());
  auto deliver = [&](std::vector<uint8_t> d) { a.OnPacket(net.now, Ep(2), d); };
  std::vector<uint8_t> flipped = syn;
  flipped[wire::kHeaderBytes + 3] ^= 1;
  deliver(flipped);
  EXPECT_EQ(Sec(a, SecurityDrop::kAuthFailed), 1u);
  deliver(std::vector<uint8_t>(syn.begin(), syn.end() - 1));
  EXPECT_EQ(Sec(a, SecurityDrop::kTruncated), 1u);
  std::vector<uint8_t> bad_cipher = syn;
  ASSERT_GT(syn.size(), wire::kHeaderBytes + wire::kSealTrailerBytes);
  bad_cipher.at(syn.size() - wire::kSealTrailerBytes + 4) = 77;
  deliver(bad_cipher);
  EXPECT_EQ(Sec(a, SecurityDrop::kCipherUnavailable), 1u);
  deliver(syn);
  EXPECT_EQ(a.stats().security.opened_in, 1u) << "the tampered copies did not burn the counter";
  deliver(syn);
  EXPECT_EQ(Sec(a, SecurityDrop::kReplayed), 1u);
}

// ---- Amplification guard -------------------------------------------------------------

TEST(ReplyGuardTest, UnknownSourceGetsAtMostThreeTimesItsBytes) {
  for (bool keyed : {false, true}) {
    Net net;
    EngineConfig cv = keyed ? Keyed("victim-of-reflection", 1, Ring({K(1)})) : Config("r", 1);
    Engine& r = net.Add(cv);
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(r.Set("k" + std::to_string(i), std::string(200, 'v'), 1).ok());
    EngineConfig ca = keyed ? Keyed("attacker", 2, Ring({K(1)})) : Config("attacker", 2);
    Engine& att = net.Add(ca);
    // Every message type a stranger can send, each alone, replies measured per datagram.
    std::vector<std::vector<uint8_t>> sent;
    auto capture = [&] {
      net.drop = [&](uint16_t from, uint16_t, const std::vector<uint8_t>& b) {
        if (from == Ep(2).port) sent.push_back(b);
        return true;
      };
    };
    capture();
    att.SendSyn(Ep(1));
    ASSERT_TRUE(att.StartWelcome(Ep(1)));
    ASSERT_TRUE(att.Set("x", "y", 1).ok());  // direct mail rumor (if any peers) — none here
    net.Pump();
    ASSERT_GE(sent.size(), 2u);
    for (const auto& d : sent) {
      auto* sink = net.sinks[Ep(1).port].get();
      sink->Take();
      r.OnPacket(net.now, Ep(2), d);
      size_t out = 0;
      for (const auto& x : sink->Take()) out += x.bytes.size();
      EXPECT_LE(out, 3 * d.size()) << "keyed=" << keyed;
    }
    EXPECT_EQ(r.stats().security.welcome_refused, 1u);
    EXPECT_EQ(r.welcome_serving(), 0u);
    EXPECT_GE(r.stats().security.unverified_in, sent.size());
  }
}

TEST(ReplyGuardTest, EchoedCookieLiftsTheCapAndSpoofedEchoDoesNot) {
  Net net;
  Engine& r = net.Add(Config("r", 1));
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(r.Set("k" + std::to_string(i), std::string(200, 'v'), 1).ok());
  EngineConfig cj = Config("j", 2);
  cj.seeds = {Ep(1)};
  Engine& j = net.Add(cj);
  for (int round = 0; round < 5; ++round) net.Round();
  // After one handshake j echoes r's cookie, so the full state flowed.
  const NodeState* n = j.FindNode("r");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->num_keys(), 300u);
  EXPECT_GT(r.stats().security.unverified_in, 0u);
  // A datagram from j's node replayed from another address (spoofed source) is unverified:
  // the echo is bound to j's address.
  std::vector<uint8_t> syn;
  net.drop = [&](uint16_t, uint16_t, const std::vector<uint8_t>& b) {
    if (syn.empty()) syn = b;
    return true;
  };
  j.SendSyn(Ep(1));
  net.Pump();
  const uint64_t before = r.stats().security.unverified_in;
  r.OnPacket(net.now, Ep(7), syn);
  EXPECT_EQ(r.stats().security.unverified_in, before + 1);
  size_t out = 0;
  for (const auto& x : net.sinks[Ep(1).port]->Take()) out += x.bytes.size();
  EXPECT_LE(out, 3 * syn.size());
}

TEST(ReplyGuardTest, RateLimitBoundsAFloodOfSmallDatagrams) {
  Net net;
  Engine& r = net.Add(Config("r", 1));
  Engine& att = net.Add(Config("attacker", 2));
  std::vector<uint8_t> syn;
  net.drop = [&](uint16_t, uint16_t, const std::vector<uint8_t>& b) {
    if (syn.empty()) syn = b;
    return true;
  };
  att.SendSyn(Ep(1));
  net.Pump();
  size_t out = 0;
  for (int i = 0; i < 10000; ++i) {
    r.OnPacket(net.now, Ep(2), syn);
    for (const auto& x : net.sinks[Ep(1).port]->Take()) out += x.bytes.size();
  }
  // One instant: at most the burst (16 KB) however many datagrams came.
  EXPECT_LE(out, r.config().security.guard.unverified_burst_bytes);
  EXPECT_GT(r.stats().security.replies_suppressed, 9000u);
}

}  // namespace
}  // namespace scuttle

namespace scuttle {
namespace {

TEST(ReplyGuardTest, ForeignClusterSynGetsASmallBadCluster) {
  Net net;
  Engine& r = net.Add(Config("r", 1));
  EngineConfig fc = Config("foreigner", 2);
  fc.cluster_id = "other-cluster";
  Engine& f = net.Add(fc);
  std::vector<uint8_t> syn;
  net.drop = [&](uint16_t, uint16_t, const std::vector<uint8_t>& b) {
    if (syn.empty()) syn = b;
    return true;
  };
  f.SendSyn(Ep(1));
  net.Pump();
  ASSERT_FALSE(syn.empty());
  r.OnPacket(net.now, Ep(2), syn);
  auto out = net.sinks[Ep(1).port]->Take();
  ASSERT_EQ(out.size(), 1u) << r.stats().security.replies_suppressed;
  EXPECT_LE(out[0].bytes.size(), 3 * syn.size());
  EXPECT_EQ(testing::MustDecode(out[0].bytes).type, wire::MessageType::kBadCluster);
}

}  // namespace
}  // namespace scuttle
