#include "wire/packet.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace scuttle::wire {
namespace {

constexpr size_t kSlot = kMaxUdpPayloadBytes + 1024;

// Builds packets for tests. Blob layout: sender name, then whatever Put() appends.
struct Builder {
  std::vector<uint8_t> slot = std::vector<uint8_t>(kSlot);
  std::string blob = "me";
  std::vector<uint8_t> out;

  uint32_t Put(std::string_view s) {
    const uint32_t off = static_cast<uint32_t>(blob.size());
    blob.append(s);
    return off;
  }
  static NodeRef Ref(uint32_t off, uint8_t len, uint64_t gen) {
    NodeRef r{};
    r.generation = gen;
    r.name_off = off;
    r.name_len = len;
    SetNodeRefEndpoint(Endpoint::V4(0x7f000001, 7400), &r);
    return r;
  }
  EncodeOptions Options(size_t max_bytes = kMaxUdpPayloadBytes) {
    EncodeOptions o;
    o.cluster_id = "test";
    o.sender = Ref(0, 2, 1);
    o.max_packet_bytes = max_bytes;
    return o;
  }
  std::span<const uint8_t> Finish(PacketEncoder& enc, MessageType t) {
    auto b = enc.AllocBlob(blob.size());
    EXPECT_EQ(b.size(), blob.size());
    std::memcpy(b.data(), blob.data(), blob.size());
    return enc.Finish(t);
  }
};

DropReason DecodeFails(std::span<const uint8_t> bytes) {
  DecodedPacket p;
  DropReason r = DropReason::kCount;
  EXPECT_FALSE(Decode(bytes, DecodeLimits{}, &p, &r));
  return r;
}

std::vector<uint8_t> OneEntryAck(uint64_t from, uint64_t max, std::vector<Entry> entries,
                                 const std::string& extra_blob = "") {
  Builder b;
  PacketEncoder enc(b.slot, b.Options());
  const uint32_t name = b.Put("node-a");
  b.Put(extra_blob);
  bool ok = false;
  auto dst = enc.AddPart(Builder::Ref(name, 6, 3), from, 0, max, max, entries.size(), &ok);
  EXPECT_TRUE(ok);
  std::copy(entries.begin(), entries.end(), dst.begin());
  auto pkt = b.Finish(enc, MessageType::kAck);
  return {pkt.begin(), pkt.end()};
}

Entry E(uint64_t v, uint32_t off, uint16_t klen, uint32_t vlen, uint8_t status = 0) {
  Entry e{};
  e.version = v;
  e.off = off;
  e.key_len = klen;
  e.value_len = vlen;
  e.status = status;
  return e;
}

TEST(PacketTest, SynAckRoundTrip) {
  Builder b;
  PacketEncoder enc(b.slot, b.Options());
  const uint32_t n1 = b.Put("node-a");
  const uint32_t k1 = b.Put("key1value1");
  const uint32_t k2 = b.Put("key2");
  auto digest = enc.AllocDigest(2, /*partial=*/true);
  ASSERT_EQ(digest.size(), 2u);
  digest[0] = DigestEntry{Builder::Ref(n1, 6, 7), 11, 2, 30};
  digest[1] = DigestEntry{Builder::Ref(0, 2, 1), 5, 0, 9};
  bool ok = false;
  auto entries = enc.AddPart(Builder::Ref(n1, 6, 7), 10, 2, 30, 30, 2, &ok);
  ASSERT_TRUE(ok);
  entries[0] = E(12, k1, 4, 6);
  entries[1] = E(30, k2, 4, 0, 1);
  auto pkt = b.Finish(enc, MessageType::kSynAck);
  ASSERT_FALSE(pkt.empty());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(pkt.data()) % 8, 0u);

  DecodedPacket p;
  DropReason r;
  ASSERT_TRUE(Decode(pkt, DecodeLimits{}, &p, &r)) << DropReasonName(r);
  EXPECT_EQ(p.type, MessageType::kSynAck);
  EXPECT_EQ(p.cluster_id, "test");
  EXPECT_EQ(p.header.cluster_hash, ClusterHash("test"));
  EXPECT_EQ(p.Name(*p.sender), "me");
  ASSERT_EQ(p.digest.entries.size(), 2u);
  EXPECT_TRUE(p.digest.partial);
  EXPECT_EQ(p.Name(p.digest.entries[0].node), "node-a");
  EXPECT_EQ(p.digest.entries[0].heartbeat, 11u);
  EXPECT_EQ(p.digest.entries[0].max_version, 30u);
  EXPECT_EQ(NodeRefEndpoint(p.digest.entries[0].node).ToString(), "127.0.0.1:7400");
  ASSERT_EQ(p.num_parts(), 1u);
  NodeDeltaView part = p.part(0);
  EXPECT_EQ(part.node->generation, 7u);
  EXPECT_EQ(part.from_version_excluded, 10u);
  EXPECT_EQ(part.last_gc_version, 2u);
  EXPECT_EQ(part.max_version, 30u);
  ASSERT_EQ(part.entries.size(), 2u);
  EXPECT_EQ(p.Key(part.entries[0]), "key1");
  EXPECT_EQ(p.Value(part.entries[0]), "value1");
  EXPECT_EQ(p.Key(part.entries[1]), "key2");
  EXPECT_EQ(part.entries[1].status, 1);
}

TEST(PacketTest, SynAndBadClusterRoundTrip) {
  for (MessageType t : {MessageType::kSyn, MessageType::kBadCluster, MessageType::kAck,
                        MessageType::kRumor, MessageType::kRumorAck}) {
    Builder b;
    PacketEncoder enc(b.slot, b.Options());
    auto pkt = b.Finish(enc, t);
    DecodedPacket p;
    DropReason r;
    ASSERT_TRUE(Decode(pkt, DecodeLimits{}, &p, &r)) << DropReasonName(r);
    EXPECT_EQ(p.type, t);
  }
}

TEST(PacketTest, RumorAckFeedbackRoundTrip) {
  Builder b;
  EncodeOptions o = b.Options();
  o.message_flags = kRumorWantsFeedback;
  PacketEncoder enc(b.slot, o);
  const uint32_t name = b.Put("node-a");
  auto fb = enc.AllocFeedback(1);
  ASSERT_EQ(fb.size(), 1u);
  fb[0] = RumorFeedback{3, 10, 20, name, 6, 1, 0};
  auto pkt = b.Finish(enc, MessageType::kRumorAck);
  DecodedPacket p;
  DropReason r;
  ASSERT_TRUE(Decode(pkt, DecodeLimits{}, &p, &r)) << DropReasonName(r);
  EXPECT_EQ(p.message_flags, kRumorWantsFeedback);
  ASSERT_EQ(p.feedback.size(), 1u);
  EXPECT_EQ(p.feedback[0].max_version, 20u);
  EXPECT_EQ(p.feedback[0].knew, 1);
  EXPECT_EQ(p.Name(p.feedback[0]), "node-a");
}

TEST(PacketTest, EncoderRespectsMaxPacketBytes) {
  for (size_t max_bytes : {1400u, 9000u, 65507u}) {
    Builder b;
    PacketEncoder enc(b.slot, b.Options(max_bytes));
    const size_t blob_bytes = enc.Remaining() / 2;
    b.Put(std::string(blob_bytes - b.blob.size(), 'x'));
    auto blob = enc.AllocBlob(b.blob.size());
    ASSERT_FALSE(blob.empty());
    size_t parts = 0;
    while (true) {
      const size_t fit = enc.Remaining() / kEntryWireBytes;
      if (fit < 6) break;
      bool ok = false;
      auto e = enc.AddPart(Builder::Ref(0, 2, 1), 0, 0, 5, 5, 5, &ok);
      if (!ok) break;
      for (size_t i = 0; i < e.size(); ++i) e[i] = E(i + 1, 0, 1, 0);
      ++parts;
    }
    EXPECT_GT(parts, 0u);
    auto pkt = enc.Finish(MessageType::kAck);
    ASSERT_FALSE(pkt.empty()) << max_bytes;
    EXPECT_LE(pkt.size(), max_bytes);
    EXPECT_GT(pkt.size(), max_bytes * 3 / 4) << "budget planning too pessimistic";
  }
}

TEST(PacketTest, TooShortAndBadHeader) {
  auto good = OneEntryAck(0, 1, {E(1, 8, 1, 1)}, "kv");
  EXPECT_EQ(DecodeFails(std::span(good).first(5)), DropReason::kTooShort);
  auto bad = good;
  bad[0] ^= 0xff;
  EXPECT_EQ(DecodeFails(bad), DropReason::kBadMagic);
  bad = good;
  bad[2] = 99;
  EXPECT_EQ(DecodeFails(bad), DropReason::kBadVersion);
  bad = good;
  bad[3] = kFlagCompressed;
  EXPECT_EQ(DecodeFails(bad), DropReason::kBadFlags);
  EXPECT_EQ(DecodeFails(std::span(good).first(good.size() - 1)), DropReason::kBadLength);
}

TEST(PacketTest, UnalignedBufferIsRejectedNotReadInPlace) {
  auto good = OneEntryAck(0, 1, {E(1, 8, 1, 1)}, "kv");
  std::vector<uint64_t> storage(good.size() / 8 + 2);
  uint8_t* shifted = reinterpret_cast<uint8_t*>(storage.data()) + 4;
  std::memcpy(shifted, good.data(), good.size());
  EXPECT_EQ(DecodeFails({shifted, good.size()}), DropReason::kMisaligned);
}

TEST(PacketTest, CorruptPayloadFailsVerification) {
  auto good = OneEntryAck(0, 1, {E(1, 8, 1, 1)}, "kv");
  auto bad = good;
  // The root offset points far outside the buffer.
  bad[kHeaderBytes] = 0xff;
  bad[kHeaderBytes + 1] = 0xff;
  EXPECT_EQ(DecodeFails(bad), DropReason::kVerifyFailed);
}

TEST(PacketTest, EntryValidation) {
  // Blob: "me" "node-a" "kv" -> key at 8, value at 9.
  EXPECT_EQ(DecodeFails(OneEntryAck(0, 5, {E(2, 8, 1, 1), E(2, 8, 1, 1)}, "kv")),
            DropReason::kUnsortedEntries);
  EXPECT_EQ(DecodeFails(OneEntryAck(3, 5, {E(2, 8, 1, 1)}, "kv")),
            DropReason::kEntryOutOfRange);
  EXPECT_EQ(DecodeFails(OneEntryAck(0, 5, {E(6, 8, 1, 1)}, "kv")),
            DropReason::kEntryOutOfRange);
  EXPECT_EQ(DecodeFails(OneEntryAck(0, 5, {E(1, 8, 1, 1, 7)}, "kv")),
            DropReason::kBadEntryStatus);
  EXPECT_EQ(DecodeFails(OneEntryAck(0, 5, {E(1, 8, 5, 1)}, "kv")), DropReason::kBadBlobRange);
  EXPECT_EQ(DecodeFails(OneEntryAck(0, 5, {E(1, 0xffffffffu, 1, 1)}, "kv")),
            DropReason::kBadBlobRange);
  EXPECT_EQ(DecodeFails(OneEntryAck(0, 5, {E(1, 8, 1, 0xfffffff0u)}, "kv")),
            DropReason::kValueTooLong);
  std::string big_key(1100, 'k');
  EXPECT_EQ(DecodeFails(OneEntryAck(0, 5, {E(1, 8, 1100, 0)}, big_key)),
            DropReason::kKeyTooLong);
}

TEST(PacketTest, NameValidation) {
  Builder b;
  PacketEncoder enc(b.slot, b.Options());
  bool ok = false;
  enc.AddPart(Builder::Ref(0, 0, 1), 0, 0, 0, 0, 0, &ok);
  EXPECT_EQ(DecodeFails(b.Finish(enc, MessageType::kAck)), DropReason::kBadName);

  Builder b2;
  PacketEncoder enc2(b2.slot, b2.Options());
  enc2.AddPart(Builder::Ref(1000, 4, 1), 0, 0, 0, 0, 0, &ok);
  EXPECT_EQ(DecodeFails(b2.Finish(enc2, MessageType::kAck)), DropReason::kBadBlobRange);
}

TEST(PacketTest, LimitsOnCounts) {
  auto pkt = OneEntryAck(0, 5, {E(1, 8, 1, 1), E(2, 8, 1, 1)}, "kv");
  DecodeLimits limits;
  limits.max_entries = 1;
  DecodedPacket p;
  DropReason r;
  EXPECT_FALSE(Decode(pkt, limits, &p, &r));
  EXPECT_EQ(r, DropReason::kTooManyEntries);
  limits = DecodeLimits{};
  limits.max_parts = 0;
  EXPECT_FALSE(Decode(pkt, limits, &p, &r));
  EXPECT_EQ(r, DropReason::kTooManyParts);
}

TEST(PacketTest, RandomBytesNeverCrash) {
  uint64_t x = 88172645463325252ull;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  auto good = OneEntryAck(0, 5, {E(1, 8, 1, 1), E(2, 8, 1, 1)}, "kv");
  for (int i = 0; i < 20000; ++i) {
    auto bytes = good;
    const int flips = 1 + static_cast<int>(next() % 8);
    for (int f = 0; f < flips; ++f) bytes[next() % bytes.size()] = static_cast<uint8_t>(next());
    DecodedPacket p;
    DropReason r;
    if (Decode(bytes, DecodeLimits{}, &p, &r)) {
      // Whatever decoded must be readable within bounds.
      for (size_t i = 0; i < p.num_parts(); ++i) {
        for (const Entry& e : p.part(i).entries) (void)p.Value(e).size();
      }
    }
  }
}


// Compact digest fields (DESIGN §2): a summary with bucket hashes and positional
// heartbeats, and a scoped listing; an Ack may carry a digest.
std::vector<uint8_t> SummaryPacket(MessageType t, size_t buckets, uint32_t count,
                                   uint32_t hb_base, size_t heartbeats,
                                   std::vector<uint16_t> scope, uint16_t scope_buckets) {
  Builder b;
  PacketEncoder enc(b.slot, b.Options());
  auto bk = enc.AllocSummaryBuckets(buckets);
  for (size_t i = 0; i < bk.size(); ++i) bk[i] = 1000 + i;
  auto hb = enc.AllocHeartbeats(heartbeats);
  for (size_t i = 0; i < hb.size(); ++i) hb[i] = static_cast<uint16_t>(7 + i);
  enc.SetSummary(42, count, hb_base, 99);
  auto sc = enc.AllocScope(scope.size(), scope_buckets);
  std::copy(scope.begin(), scope.end(), sc.begin());
  if (t == MessageType::kAck) enc.SetAckDigest();
  auto pkt = b.Finish(enc, t);
  return {pkt.begin(), pkt.end()};
}

TEST(PacketTest, SummaryAndScopeRoundTrip) {
  for (MessageType t : {MessageType::kSyn, MessageType::kSynAck, MessageType::kAck}) {
    const auto bytes = SummaryPacket(t, 16, 100, 90, 20, {1, 5, 9}, 16);
    DecodedPacket p;
    DropReason r;
    ASSERT_TRUE(Decode(bytes, DecodeLimits{}, &p, &r)) << DropReasonName(r);
    EXPECT_TRUE(p.digest.present);
    const SummaryView& s = p.digest.summary;
    EXPECT_TRUE(s.present);
    EXPECT_EQ(s.membership, 42u);
    EXPECT_EQ(s.count, 100u);
    EXPECT_EQ(s.hb_base, 90u);
    EXPECT_EQ(s.sender_heartbeat, 99u);
    ASSERT_EQ(s.buckets.size(), 16u);
    EXPECT_EQ(s.buckets[15], 1015u);
    ASSERT_EQ(s.heartbeats.size(), 20u);
    EXPECT_EQ(s.heartbeats[19], 26u);
    EXPECT_TRUE(p.digest.scoped);
    EXPECT_EQ(p.digest.scope_buckets, 16u);
    EXPECT_EQ(p.digest.scope.size(), 3u);
  }
  // An Ack without a digest has none.
  const auto plain = OneEntryAck(0, 1, {});
  DecodedPacket p;
  DropReason r;
  ASSERT_TRUE(Decode(plain, DecodeLimits{}, &p, &r));
  EXPECT_FALSE(p.digest.present);
}

TEST(PacketTest, BadSummariesAreDropped) {
  const MessageType t = MessageType::kSyn;
  EXPECT_EQ(DecodeFails(SummaryPacket(t, 12, 100, 0, 0, {}, 0)), DropReason::kBadSummary)
      << "bucket count not a power of two";
  EXPECT_EQ(DecodeFails(SummaryPacket(t, 2048, 100, 0, 0, {}, 0)), DropReason::kBadSummary)
      << "too many buckets";
  EXPECT_EQ(DecodeFails(SummaryPacket(t, 8, 10, 0, 11, {}, 0)), DropReason::kBadSummary)
      << "more heartbeats than nodes";
  EXPECT_EQ(DecodeFails(SummaryPacket(t, 8, 10, 10, 1, {}, 0)), DropReason::kBadSummary)
      << "heartbeat window starts past the end";
  EXPECT_EQ(DecodeFails(SummaryPacket(t, 8, 10, 0, 0, {3}, 0)), DropReason::kBadSummary)
      << "scope bucket with scope_buckets 0";
  EXPECT_EQ(DecodeFails(SummaryPacket(t, 8, 10, 0, 0, {1}, 6)), DropReason::kBadSummary)
      << "scope_buckets not a power of two";
  EXPECT_EQ(DecodeFails(SummaryPacket(t, 8, 10, 0, 0, {8}, 8)), DropReason::kBadSummary)
      << "scope bucket out of range";
  EXPECT_EQ(DecodeFails(SummaryPacket(t, 8, 10, 0, 0, {3, 3}, 8)), DropReason::kBadSummary)
      << "scope not strictly ascending";
}

// Failure confirmation messages (DESIGN §5): round trip, and every kind/state outside the
// schema's values, or a target outside the blob, is dropped.
TEST(PacketTest, ProbeAndVerdictRoundTripAndValidation) {
  auto build = [](MessageType t, uint8_t kind, uint32_t name_len) {
    Builder b;
    EncodeOptions o = b.Options();
    const uint32_t off = b.Put("suspect");
    o.probe = ProbeFields{kind, 77, 12345, Builder::Ref(off, static_cast<uint8_t>(name_len), 9)};
    PacketEncoder enc(b.slot, o);
    auto pkt = b.Finish(enc, t);
    return std::vector<uint8_t>(pkt.begin(), pkt.end());
  };
  for (uint8_t kind : {kProbePing, kProbeAck, kProbePingReq}) {
    const std::vector<uint8_t> bytes = build(MessageType::kProbe, kind, 7);
    DecodedPacket p;
    DropReason r;
    ASSERT_TRUE(Decode(bytes, DecodeLimits{}, &p, &r)) << DropReasonName(r);
    EXPECT_EQ(p.type, MessageType::kProbe);
    EXPECT_EQ(p.probe.kind, kind);
    EXPECT_EQ(p.probe.seq, 77u);
    EXPECT_EQ(p.probe.heartbeat, 12345u);
    EXPECT_EQ(p.probe.target.generation, 9u);
    EXPECT_EQ(p.Name(p.probe.target), "suspect");
  }
  for (uint8_t state : {kVerdictDead, kVerdictAlive}) {
    const std::vector<uint8_t> bytes = build(MessageType::kVerdict, state, 7);
    DecodedPacket p;
    DropReason r;
    ASSERT_TRUE(Decode(bytes, DecodeLimits{}, &p, &r)) << DropReasonName(r);
    EXPECT_EQ(p.type, MessageType::kVerdict);
    EXPECT_EQ(p.probe.kind, state);
    EXPECT_EQ(p.Name(p.probe.target), "suspect");
  }
  EXPECT_EQ(DecodeFails(build(MessageType::kProbe, 0, 7)), DropReason::kBadProbe);
  EXPECT_EQ(DecodeFails(build(MessageType::kProbe, 4, 7)), DropReason::kBadProbe);
  EXPECT_EQ(DecodeFails(build(MessageType::kVerdict, 2, 7)), DropReason::kBadProbe);
  EXPECT_EQ(DecodeFails(build(MessageType::kProbe, kProbePing, 0)), DropReason::kBadName);
  EXPECT_EQ(DecodeFails(build(MessageType::kVerdict, kVerdictDead, 60)),
            DropReason::kBadBlobRange);
}

// Verdict rumor fields (engine/verdict_rumor.h): seq and reply round-trip, a reply value
// outside the schema's is dropped, feedback is never larger than its push, and a verdict
// from an older peer (neither field) decodes as a push without feedback.
TEST(PacketTest, VerdictFeedbackFieldsRoundTripAndValidation) {
  auto build = [](uint32_t seq, uint8_t reply) {
    Builder b;
    EncodeOptions o = b.Options();
    const uint32_t off = b.Put("suspect");
    o.probe = ProbeFields{kVerdictDead, seq, 12345, Builder::Ref(off, 7, 9), reply};
    PacketEncoder enc(b.slot, o);
    auto pkt = b.Finish(enc, MessageType::kVerdict);
    return std::vector<uint8_t>(pkt.begin(), pkt.end());
  };
  for (uint8_t reply : {kVerdictPush, kVerdictKnew, kVerdictNews}) {
    const std::vector<uint8_t> bytes = build(0x01020304, reply);
    DecodedPacket p;
    DropReason r;
    ASSERT_TRUE(Decode(bytes, DecodeLimits{}, &p, &r)) << DropReasonName(r);
    EXPECT_EQ(p.type, MessageType::kVerdict);
    EXPECT_EQ(p.probe.kind, kVerdictDead);
    EXPECT_EQ(p.probe.seq, 0x01020304u);
    EXPECT_EQ(p.probe.reply, reply);
    EXPECT_EQ(p.probe.heartbeat, 12345u);
    EXPECT_EQ(p.Name(p.probe.target), "suspect");
  }
  const size_t push = build(1, kVerdictPush).size();
  EXPECT_LE(build(1, kVerdictKnew).size(), push);
  EXPECT_LE(build(1, kVerdictNews).size(), push);
  EXPECT_LE(build(0xffffffff, kVerdictNews).size(), build(0xffffffff, kVerdictPush).size());
  for (uint8_t bad : {3, 7, 255}) {
    EXPECT_EQ(DecodeFails(build(5, bad)), DropReason::kBadProbe) << int{bad};
  }
  const std::vector<uint8_t> old = build(0, kVerdictPush);
  DecodedPacket p;
  DropReason r;
  ASSERT_TRUE(Decode(old, DecodeLimits{}, &p, &r)) << DropReasonName(r);
  EXPECT_EQ(p.probe.seq, 0u);
  EXPECT_EQ(p.probe.reply, kVerdictPush);
  EXPECT_LT(old.size(), push) << "without feedback the new fields cost nothing";
}

}  // namespace
}  // namespace scuttle::wire
