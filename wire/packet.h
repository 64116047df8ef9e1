// The scuttle datagram: a fixed 16-byte header plus one FlatBuffers `Packet` (scuttle.fbs).
//
// This header is the whole public face of wire/: it exposes plain structs with the exact
// memory layout of the schema's fixed-size structs, so the engine reads digest entries and
// delta entries as spans straight out of the receive buffer (no copy until apply) and
// writes them straight into the transport's send slot. Nothing here includes flatbuffers.
//
// Decoding validates everything a remote peer controls: header fields, a bounded
// flatbuffers::Verifier pass, every blob range, name/key/value limits, entry order and
// version ranges. A rejected datagram yields a named DropReason, never an assert.
#ifndef SCUTTLE_WIRE_PACKET_H_
#define SCUTTLE_WIRE_PACKET_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "wire/endpoint.h"

namespace scuttle::wire {

static_assert(std::endian::native == std::endian::little,
              "wire structs are read in place; big-endian hosts need a byte-swapping path");

inline constexpr uint16_t kMagic = 0x5343;  // "CS" little-endian: bytes 'C','S'
inline constexpr uint8_t kProtocolVersion = 1;
inline constexpr size_t kHeaderBytes = 16;
inline constexpr size_t kMaxUdpPayloadBytes = 65507;
inline constexpr size_t kMaxNameBytes = 64;

// Header flag bits. Compression and encryption are reserved so they can be added without
// a format break (DESIGN §8); a packet carrying an unknown flag is dropped.
inline constexpr uint8_t kFlagCompressed = 1u << 0;
inline constexpr uint8_t kFlagEncrypted = 1u << 1;
inline constexpr uint8_t kKnownFlags = 0;

#pragma pack(push, 1)
struct PacketHeader {
  uint16_t magic;
  uint8_t version;
  uint8_t flags;
  uint16_t shard;
  uint16_t reserved;
  uint32_t payload_bytes;
  uint32_t cluster_hash;  // FNV-1a of the cluster id: a cheap early BadCluster check
};
#pragma pack(pop)
static_assert(sizeof(PacketHeader) == kHeaderBytes);

// --- Layout mirrors of the schema structs (checked against the generated code). ---

inline constexpr uint8_t kNodeFamilyMask = 0x3;
inline constexpr uint8_t kNodeFamilyV4 = 1;
inline constexpr uint8_t kNodeFamilyV6 = 2;
inline constexpr uint8_t kNodeLeaving = 1u << 2;
// In a packet's sender reference only: the sender decompresses zstd payloads
// (kFlagCompressed, wire/compress.h). Older builds ignore the bit.
inline constexpr uint8_t kNodeZstd = 1u << 3;
// In a digest entry only: the sender holds this node dead (liveness in the summary, engine
// EngineConfig::quiet_heartbeats, docs/detection.md). Older builds ignore the bit.
inline constexpr uint8_t kNodeDead = 1u << 4;

struct NodeRef {
  uint64_t generation;
  uint8_t addr[16];
  uint32_t name_off;
  uint16_t port;
  uint8_t name_len;
  uint8_t flags;
};
static_assert(sizeof(NodeRef) == 32);

struct DigestEntry {
  NodeRef node;
  uint64_t heartbeat;
  uint64_t last_gc_version;
  uint64_t max_version;
};
static_assert(sizeof(DigestEntry) == 56);

enum class EntryStatus : uint8_t { kSet = 0, kTombstone = 1 };

struct Entry {
  uint64_t version;
  uint32_t off;
  uint32_t value_len;
  uint16_t key_len;
  uint8_t status;
  uint8_t reserved0;
  uint32_t reserved1;
};
static_assert(sizeof(Entry) == 24);

struct RumorFeedback {
  uint64_t generation;
  uint64_t from_version;
  uint64_t max_version;
  uint32_t name_off;
  uint8_t name_len;
  uint8_t knew;
  uint16_t reserved;
};
static_assert(sizeof(RumorFeedback) == 32);

// Conversions between NodeRef's packed address and Endpoint.
Endpoint NodeRefEndpoint(const NodeRef& ref);
void SetNodeRefEndpoint(const Endpoint& ep, NodeRef* ref);

uint32_t ClusterHash(std::string_view cluster_id);

enum class MessageType : uint8_t {
  kNone = 0,
  kSyn = 1,
  kSynAck = 2,
  kAck = 3,
  kBadCluster = 4,
  kRumor = 5,
  kRumorAck = 6,
  kWelcomeRequest = 7,
  kWelcomeChunk = 8,
  kProbe = 9,
  kVerdict = 10,
};
inline constexpr size_t kMessageTypeCount = 11;

// Probe.kind and Verdict.state values (DESIGN §5 failure confirmation).
// Kinds start at 1: a FlatBuffers field at its default is omitted, and a ping must not be
// smaller than its ack.
inline constexpr uint8_t kProbePing = 1;
inline constexpr uint8_t kProbeAck = 2;
inline constexpr uint8_t kProbePingReq = 3;
inline constexpr uint8_t kVerdictDead = 0;
inline constexpr uint8_t kVerdictAlive = 1;
// Verdict.reply values (rumor feedback, engine/verdict_rumor.h).
inline constexpr uint8_t kVerdictPush = 0;
inline constexpr uint8_t kVerdictKnew = 1;
inline constexpr uint8_t kVerdictNews = 2;
// Probe fields; Verdict uses target (the node), heartbeat, kind (the state), seq (nonzero:
// feedback wanted) and reply.
struct ProbeFields {
  uint8_t kind = 0;
  uint32_t seq = 0;
  uint64_t heartbeat = 0;
  NodeRef target{};  // name_off filled in by the caller (a blob offset)
  uint8_t reply = 0;  // Verdict only: kVerdictPush / kVerdictKnew / kVerdictNews
};

// Welcome (bulk join, seed 002) message fields: WelcomeRequest uses session, window, ack
// and resync; WelcomeChunk uses session, seq and last.
inline constexpr uint16_t kMaxWelcomeWindow = 64;
struct WelcomeFields {
  uint64_t session = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t window = 0;
  bool last = false;
  bool resync = false;
};

// Syn.mode values (seed 001 anti-entropy variants).
inline constexpr uint8_t kModePushPull = 0;
inline constexpr uint8_t kModePull = 1;
inline constexpr uint8_t kModePush = 2;
// Rumor / RumorAck flag bits.
inline constexpr uint8_t kRumorWantsFeedback = 1u << 0;
inline constexpr uint8_t kRumorPull = 1u << 1;
const char* MessageTypeName(MessageType t);

// Every reason a datagram is rejected by the decoder. Counted per reason by the engine.
enum class DropReason : uint8_t {
  kTooShort,          // shorter than the header
  kBadMagic,
  kBadVersion,        // protocol version we do not speak
  kBadFlags,          // compression/encryption/unknown flags not supported by this build
  kBadLength,         // header length disagrees with the datagram size
  kVerifyFailed,      // flatbuffers verifier rejected the payload
  kNoMessage,         // union missing or of an unknown type
  kMissingField,      // a required table/vector is absent
  kBadBlobRange,      // a name/key/value range falls outside the blob
  kBadName,           // empty or > 64 bytes
  kKeyTooLong,        // over DecodeLimits.max_key_bytes
  kValueTooLong,      // over DecodeLimits.max_value_bytes
  kBadEntryStatus,
  kUnsortedEntries,   // entries not strictly ascending by version
  kEntryOutOfRange,   // entry outside (from_version_excluded, max_version], or max > source max
  kTooManyParts,
  kTooManyEntries,
  kMisaligned,        // a struct vector not 8-aligned (crafted offsets), or an unaligned buffer
  kBadSummary,        // digest summary or scope out of range (bucket count, heartbeat window)
  kBadProbe,          // Probe kind, Verdict state or Verdict reply unknown
  kBadCompression,    // compressed payload corrupt, truncated, unsized or over the bound
  kCount,
};
inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::kCount);
const char* DropReasonName(DropReason r);

struct DecodeLimits {
  size_t max_key_bytes = 1024;
  size_t max_value_bytes = 60 * 1024;
  size_t max_parts = 4096;
  size_t max_entries = 1 << 16;
  size_t max_digest_entries = 1 << 16;
};

// Summary (DESIGN §2 "digest scale"): per-bucket hashes and positional heartbeats.
inline constexpr size_t kMaxSummaryBuckets = 1024;
struct SummaryView {
  bool present = false;
  uint64_t membership = 0;
  uint32_t count = 0;
  std::span<const uint64_t> buckets;  // empty or a power of two <= kMaxSummaryBuckets
  uint32_t hb_base = 0;               // < count when heartbeats is not empty
  std::span<const uint16_t> heartbeats;  // size <= count
  uint64_t sender_heartbeat = 0;
};

struct DigestView {
  std::span<const DigestEntry> entries;
  bool partial = false;
  SummaryView summary;
  // A scoped digest (the summary handshake) covers only the buckets in `scope` (of
  // scope_buckets; 0: every bucket). Within that coverage an unlisted node is unknown to
  // the sender unless `partial`; outside it, the digest says nothing.
  bool scoped = false;
  std::span<const uint16_t> scope;  // each < scope_buckets
  uint16_t scope_buckets = 0;       // 0: every bucket; else a power of two
  bool present = false;             // the message carried a Digest table
};

struct NodeDeltaView {
  const NodeRef* node = nullptr;
  uint64_t from_version_excluded = 0;
  uint64_t last_gc_version = 0;
  uint64_t max_version = 0;
  uint64_t source_max_version = 0;
  std::span<const Entry> entries;
};

// A verified packet. All views point into the datagram, which must outlive this object.
class DecodedPacket {
 public:
  PacketHeader header{};
  MessageType type = MessageType::kNone;
  std::string_view cluster_id;
  const NodeRef* sender = nullptr;
  uint16_t shard_count = 0;
  std::span<const uint8_t> blob;
  DigestView digest;  // Syn, SynAck, WelcomeRequest, and Ack when it asks for a delta back
  uint8_t message_flags = 0;  // Syn: mode; Rumor/RumorAck: flags
  std::span<const RumorFeedback> feedback;  // RumorAck
  WelcomeFields welcome;  // WelcomeRequest (digest too), WelcomeChunk (delta too)
  ProbeFields probe;      // Probe, Verdict (target validated against the blob)
  uint64_t cookie = 0;    // the sender's return-routability cookie for us (0: none)
  uint64_t echo = 0;      // our cookie for the sender, echoed back (0: none)

  size_t num_parts() const { return num_parts_; }
  // REQUIRES: i < num_parts().
  NodeDeltaView part(size_t i) const;

  // REQUIRES: the ranges were validated by Decode (every NodeRef/Entry reached through
  // this packet was).
  std::string_view Name(const NodeRef& ref) const { return Str(ref.name_off, ref.name_len); }
  std::string_view Name(const RumorFeedback& f) const { return Str(f.name_off, f.name_len); }
  std::string_view Key(const Entry& e) const { return Str(e.off, e.key_len); }
  std::string_view Value(const Entry& e) const { return Str(e.off + e.key_len, e.value_len); }

 private:
  friend bool Decode(std::span<const uint8_t>, const DecodeLimits&, DecodedPacket*, DropReason*);
  std::string_view Str(uint32_t off, uint32_t len) const {
    return std::string_view(reinterpret_cast<const char*>(blob.data()) + off, len);
  }
  const void* parts_ = nullptr;  // flatbuffers vector of NodeDelta, opaque here
  size_t num_parts_ = 0;
};

// Returns true and fills *out, or false and sets *reason.
// REQUIRES: datagram.data() is 8-byte aligned (receive buffers are); structs are read in
// place, so an unaligned datagram is rejected as kMisaligned.
bool Decode(std::span<const uint8_t> datagram, const DecodeLimits& limits, DecodedPacket* out,
            DropReason* reason);

// Reads only the header (for cheap pre-checks such as the cluster hash). False when the
// datagram is too short or the magic is wrong.
bool PeekHeader(std::span<const uint8_t> datagram, PacketHeader* out);

// --- Encoding ---------------------------------------------------------------------------
//
// PacketEncoder builds one packet directly inside a caller-provided slot (usually a
// transport send buffer). FlatBuffers builds back to front, so the finished packet ends at
// the end of the slot and Finish() returns its span, which need not start at slot.data().
//
// Call order: constructor → AllocBlob (once) → AllocDigest (optional, once) → AddPart*
// → Finish. Every Alloc/Add checks Remaining() first and returns an empty span when the
// request does not fit; callers plan with the cost helpers below so that never happens.

// Wire cost of one delta entry beyond its key and value bytes.
inline constexpr size_t kEntryWireBytes = sizeof(Entry);
// Upper bound of one NodeDelta's overhead (table, vtable, vector prefix, alignment, offset).
inline constexpr size_t kPartWireBytes = 128;
// Upper bound of the fixed part of a packet (header, root tables, vtables, alignment).
inline constexpr size_t kPacketFixedWireBytes = 256;

struct EncodeOptions {
  std::string_view cluster_id;
  uint16_t shard = 0;
  uint16_t shard_count = 1;
  uint8_t message_flags = 0;      // Syn: mode; Rumor/RumorAck: flags
  NodeRef sender{};               // name_off filled in by the caller (a blob offset)
  WelcomeFields welcome;          // WelcomeRequest / WelcomeChunk
  ProbeFields probe;              // Probe / Verdict
  uint64_t cookie = 0;            // return-routability cookies (engine/reply_guard.h)
  uint64_t echo = 0;
  size_t max_packet_bytes = kMaxUdpPayloadBytes;  // header included
};

class PacketEncoder {
 public:
  // REQUIRES: slot outlives the encoder and the returned packet span;
  //           slot.size() >= options.max_packet_bytes + 64.
  PacketEncoder(std::span<uint8_t> slot, const EncodeOptions& options);
  ~PacketEncoder();
  PacketEncoder(const PacketEncoder&) = delete;
  PacketEncoder& operator=(const PacketEncoder&) = delete;

  // Bytes still available for blob bytes, entries, digest entries and parts.
  size_t Remaining() const;

  // The single byte blob holding names, keys and values; fill it before Finish().
  std::span<uint8_t> AllocBlob(size_t bytes);
  std::span<DigestEntry> AllocDigest(size_t count, bool partial);
  // Summary fields of the digest (call before Finish; each Alloc at most once).
  std::span<uint64_t> AllocSummaryBuckets(size_t count);
  std::span<uint16_t> AllocHeartbeats(size_t count);
  void SetSummary(uint64_t membership, uint32_t count, uint32_t hb_base,
                  uint64_t sender_heartbeat);
  // Scoped digest: the buckets (of scope_buckets) its entries cover.
  std::span<uint16_t> AllocScope(size_t count, uint16_t scope_buckets);
  // Ack only: attach the digest (asks the receiver for a delta back).
  void SetAckDigest() { ack_digest_ = true; }
  std::span<RumorFeedback> AllocFeedback(size_t count);
  // Adds one NodeDelta whose `count` entries the caller writes into the returned span.
  // *ok is false (and nothing is added) when it does not fit.
  std::span<Entry> AddPart(const NodeRef& node, uint64_t from_version_excluded,
                           uint64_t last_gc_version, uint64_t max_version,
                           uint64_t source_max_version, size_t count, bool* ok);
  // Probe / Verdict: the fields (target.name_off pointing into the blob).
  void SetProbe(const ProbeFields& f);
  // WelcomeChunk: sets `last` (decided after planning the chunk's delta).
  void SetWelcomeLast(bool last);
  // Writes the message and header; returns the finished datagram inside the slot.
  std::span<const uint8_t> Finish(MessageType type);

 private:
  struct Impl;
  // The implementation lives inline (no allocation per packet); size checked in packet.cc.
  alignas(16) unsigned char storage_[4096];
  Impl* impl_;
  bool ack_digest_ = false;
};

}  // namespace scuttle::wire

#endif  // SCUTTLE_WIRE_PACKET_H_
