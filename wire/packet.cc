#include "wire/packet.h"

#include <cstring>

#include "flatbuffers/flatbuffers.h"
#include "scuttle_generated.h"

namespace scuttle::wire {
namespace {

static_assert(sizeof(fb::NodeRef) == sizeof(NodeRef));
static_assert(sizeof(fb::DigestEntry) == sizeof(DigestEntry));
static_assert(sizeof(fb::Entry) == sizeof(Entry));
static_assert(alignof(fb::Entry) == alignof(Entry));
static_assert(sizeof(fb::RumorFeedback) == sizeof(RumorFeedback));

// Slot budget kept free for flatbuffers' scratch area (vtable bookkeeping) at the low end
// of the slot, so the builder never needs to grow.
constexpr size_t kScratchReserveBytes = 512;
constexpr size_t kMaxPartsPerPacket = kMaxUdpPayloadBytes / kPartWireBytes + 1;

// Hands flatbuffers the caller's slot, exactly once. Any further request would mean the
// size planning is wrong; it then gets heap memory, Finish() notices the packet is no
// longer inside the slot and fails cleanly instead of corrupting anything.
class SlotAllocator final : public flatbuffers::Allocator {
 public:
  explicit SlotAllocator(std::span<uint8_t> slot) : slot_(slot) {}
  uint8_t* allocate(size_t size) override {
    if (!used_ && size <= slot_.size()) {
      used_ = true;
      return slot_.data();
    }
    return new uint8_t[size];
  }
  void deallocate(uint8_t* p, size_t) override {
    if (p != slot_.data()) delete[] p;
  }

 private:
  std::span<uint8_t> slot_;
  bool used_ = false;
};

// flatbuffers 2.0.8's CreateUninitializedVectorOfStructs aligns to sizeof(T) as if it
// were a power of two (24- and 56-byte structs come out misaligned); this builder lays
// struct vectors out 8-aligned, as CreateVectorOfStructs does.
class Builder : public flatbuffers::FlatBufferBuilder {
 public:
  using FlatBufferBuilder::FlatBufferBuilder;
  template <typename T>
  flatbuffers::Offset<flatbuffers::Vector<const T*>> UninitializedStructs(size_t len, T** out) {
    static_assert(sizeof(T) % 8 == 0 && alignof(T) <= 8);
    Align(8);  // PreAlign skips empty vectors
    StartVector(len * sizeof(T) / 8, 8);
    buf_.make_space(len * sizeof(T));
    *out = reinterpret_cast<T*>(buf_.data());
    return flatbuffers::Offset<flatbuffers::Vector<const T*>>(EndVector(len));
  }
};

const fb::NodeRef& AsFb(const NodeRef& r) { return reinterpret_cast<const fb::NodeRef&>(r); }

}  // namespace

// ---------------------------------------------------------------------------------------

Endpoint NodeRefEndpoint(const NodeRef& ref) {
  Endpoint ep;
  const uint8_t fam = ref.flags & kNodeFamilyMask;
  ep.family = fam == kNodeFamilyV4 ? 4 : fam == kNodeFamilyV6 ? 6 : 0;
  if (ep.family == 0) return ep;
  ep.port = ref.port;
  std::memcpy(ep.addr.data(), ref.addr, 16);
  return ep;
}

void SetNodeRefEndpoint(const Endpoint& ep, NodeRef* ref) {
  ref->flags &= static_cast<uint8_t>(~kNodeFamilyMask);
  ref->flags |= ep.family == 4 ? kNodeFamilyV4 : ep.family == 6 ? kNodeFamilyV6 : 0;
  ref->port = ep.port;
  std::memcpy(ref->addr, ep.addr.data(), 16);
}

uint32_t ClusterHash(std::string_view cluster_id) {
  uint32_t h = 2166136261u;
  for (unsigned char c : cluster_id) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

const char* MessageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kNone: return "none";
    case MessageType::kSyn: return "syn";
    case MessageType::kSynAck: return "synack";
    case MessageType::kAck: return "ack";
    case MessageType::kBadCluster: return "bad_cluster";
    case MessageType::kRumor: return "rumor";
    case MessageType::kRumorAck: return "rumor_ack";
    case MessageType::kWelcomeRequest: return "welcome_request";
    case MessageType::kWelcomeChunk: return "welcome_chunk";
    case MessageType::kProbe: return "probe";
    case MessageType::kVerdict: return "verdict";
  }
  return "unknown";
}

const char* DropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kTooShort: return "too_short";
    case DropReason::kBadMagic: return "bad_magic";
    case DropReason::kBadVersion: return "bad_version";
    case DropReason::kBadFlags: return "bad_flags";
    case DropReason::kBadLength: return "bad_length";
    case DropReason::kVerifyFailed: return "verify_failed";
    case DropReason::kNoMessage: return "no_message";
    case DropReason::kMissingField: return "missing_field";
    case DropReason::kBadBlobRange: return "bad_blob_range";
    case DropReason::kBadName: return "bad_name";
    case DropReason::kKeyTooLong: return "key_too_long";
    case DropReason::kValueTooLong: return "value_too_long";
    case DropReason::kBadEntryStatus: return "bad_entry_status";
    case DropReason::kUnsortedEntries: return "unsorted_entries";
    case DropReason::kEntryOutOfRange: return "entry_out_of_range";
    case DropReason::kTooManyParts: return "too_many_parts";
    case DropReason::kTooManyEntries: return "too_many_entries";
    case DropReason::kMisaligned: return "misaligned";
    case DropReason::kBadSummary: return "bad_summary";
    case DropReason::kBadProbe: return "bad_probe";
    case DropReason::kBadCompression: return "bad_compression";
    case DropReason::kCount: break;
  }
  return "unknown";
}

// --- Decoding ---------------------------------------------------------------------------

bool PeekHeader(std::span<const uint8_t> datagram, PacketHeader* out) {
  if (datagram.size() < kHeaderBytes) return false;
  std::memcpy(out, datagram.data(), kHeaderBytes);
  return out->magic == kMagic;
}

namespace {

// The verifier checks only that a vector's length prefix is 4-aligned; our structs hold
// u64s and are read in place, so their vectors must be 8-aligned.
bool Aligned8(const void* p, DropReason* reason) {
  if (reinterpret_cast<uintptr_t>(p) % 8 == 0) return true;
  *reason = DropReason::kMisaligned;
  return false;
}

bool InBlob(size_t blob_size, uint64_t off, uint64_t len) {
  return off <= blob_size && len <= blob_size - off;
}

bool CheckNodeRef(const NodeRef& r, size_t blob_size, DropReason* reason) {
  if (!InBlob(blob_size, r.name_off, r.name_len)) {
    *reason = DropReason::kBadBlobRange;
    return false;
  }
  if (r.name_len == 0 || r.name_len > kMaxNameBytes) {
    *reason = DropReason::kBadName;
    return false;
  }
  return true;
}

bool CheckDigest(const fb::Digest* d, const DecodeLimits& limits, size_t blob_size,
                 DigestView* out, DropReason* reason) {
  if (d == nullptr || d->entries() == nullptr) {
    *reason = DropReason::kMissingField;
    return false;
  }
  const auto* v = d->entries();
  if (v->size() > limits.max_digest_entries) {
    *reason = DropReason::kTooManyEntries;
    return false;
  }
  if (v->size() > 0 && !Aligned8(v->data(), reason)) return false;
  out->entries = {reinterpret_cast<const DigestEntry*>(v->data()), v->size()};
  out->partial = d->partial();
  out->present = true;
  for (const DigestEntry& e : out->entries) {
    if (!CheckNodeRef(e.node, blob_size, reason)) return false;
  }
  const auto pow2_upto = [](size_t n, size_t cap) { return n <= cap && (n & (n - 1)) == 0; };
  if (const fb::Summary* s = d->summary(); s != nullptr) {
    SummaryView& sv = out->summary;
    sv.present = true;
    sv.membership = s->membership();
    sv.count = s->count();
    sv.hb_base = s->hb_base();
    sv.sender_heartbeat = s->sender_heartbeat();
    if (s->buckets() != nullptr) {
      if (!pow2_upto(s->buckets()->size(), kMaxSummaryBuckets)) {
        *reason = DropReason::kBadSummary;
        return false;
      }
      if (s->buckets()->size() > 0 && !Aligned8(s->buckets()->data(), reason)) return false;
      sv.buckets = {s->buckets()->data(), s->buckets()->size()};
    }
    if (s->heartbeats() != nullptr && s->heartbeats()->size() > 0) {
      const size_t n = s->heartbeats()->size();
      if (n > sv.count || sv.hb_base >= sv.count || n > limits.max_digest_entries) {
        *reason = DropReason::kBadSummary;
        return false;
      }
      sv.heartbeats = {s->heartbeats()->data(), n};
    }
  }
  out->scope_buckets = d->scope_buckets();
  if (out->scope_buckets != 0 && !pow2_upto(out->scope_buckets, kMaxSummaryBuckets)) {
    *reason = DropReason::kBadSummary;
    return false;
  }
  if (d->scope() != nullptr) {
    out->scoped = true;
    out->scope = {d->scope()->data(), d->scope()->size()};
    if (out->scope.size() > kMaxSummaryBuckets) {
      *reason = DropReason::kBadSummary;
      return false;
    }
    for (size_t i = 0; i < out->scope.size(); ++i) {
      const uint16_t b = out->scope[i];
      if (b >= out->scope_buckets || (i > 0 && b <= out->scope[i - 1])) {
        *reason = DropReason::kBadSummary;
        return false;
      }
    }
  }
  return true;
}

bool CheckEntries(const NodeDeltaView& p, const DecodeLimits& limits, size_t blob_size,
                  DropReason* reason) {
  if (p.source_max_version < p.max_version) {
    *reason = DropReason::kEntryOutOfRange;
    return false;
  }
  uint64_t prev = p.from_version_excluded;
  for (const Entry& e : p.entries) {
    if (e.version <= prev || e.version > p.max_version) {
      *reason = e.version <= prev && e.version > p.from_version_excluded
                    ? DropReason::kUnsortedEntries
                    : DropReason::kEntryOutOfRange;
      return false;
    }
    prev = e.version;
    if (e.status > static_cast<uint8_t>(EntryStatus::kTombstone)) {
      *reason = DropReason::kBadEntryStatus;
      return false;
    }
    if (e.key_len > limits.max_key_bytes) {
      *reason = DropReason::kKeyTooLong;
      return false;
    }
    if (e.value_len > limits.max_value_bytes) {
      *reason = DropReason::kValueTooLong;
      return false;
    }
    if (!InBlob(blob_size, e.off, uint64_t{e.key_len} + e.value_len)) {
      *reason = DropReason::kBadBlobRange;
      return false;
    }
  }
  return true;
}

NodeDeltaView ViewOf(const fb::NodeDelta* nd) {
  NodeDeltaView v;
  v.node = reinterpret_cast<const NodeRef*>(nd->node());
  v.from_version_excluded = nd->from_version_excluded();
  v.last_gc_version = nd->last_gc_version();
  v.max_version = nd->max_version();
  v.source_max_version = nd->source_max_version();
  if (nd->entries() != nullptr) {
    v.entries = {reinterpret_cast<const Entry*>(nd->entries()->data()), nd->entries()->size()};
  }
  return v;
}

bool CheckDelta(const fb::Delta* d, const DecodeLimits& limits, size_t blob_size,
                const void** parts_out, size_t* num_parts_out, DropReason* reason) {
  if (d == nullptr || d->parts() == nullptr) {
    *reason = DropReason::kMissingField;
    return false;
  }
  const auto* parts = d->parts();
  if (parts->size() > limits.max_parts) {
    *reason = DropReason::kTooManyParts;
    return false;
  }
  size_t total_entries = 0;
  for (const fb::NodeDelta* nd : *parts) {
    if (nd->node() == nullptr) {
      *reason = DropReason::kMissingField;
      return false;
    }
    if (!Aligned8(nd->node(), reason)) return false;
    if (nd->entries() != nullptr && nd->entries()->size() > 0 &&
        !Aligned8(nd->entries()->data(), reason)) {
      return false;
    }
    const NodeDeltaView v = ViewOf(nd);
    if (!CheckNodeRef(*v.node, blob_size, reason)) return false;
    total_entries += v.entries.size();
    if (total_entries > limits.max_entries) {
      *reason = DropReason::kTooManyEntries;
      return false;
    }
    if (!CheckEntries(v, limits, blob_size, reason)) return false;
  }
  *parts_out = parts;
  *num_parts_out = parts->size();
  return true;
}

bool CheckFeedback(const flatbuffers::Vector<const fb::RumorFeedback*>* v,
                   const DecodeLimits& limits, size_t blob_size,
                   std::span<const RumorFeedback>* out, DropReason* reason) {
  if (v == nullptr) {
    *reason = DropReason::kMissingField;
    return false;
  }
  if (v->size() > limits.max_parts) {
    *reason = DropReason::kTooManyParts;
    return false;
  }
  if (v->size() > 0 && !Aligned8(v->data(), reason)) return false;
  *out = {reinterpret_cast<const RumorFeedback*>(v->data()), v->size()};
  for (const RumorFeedback& f : *out) {
    if (!InBlob(blob_size, f.name_off, f.name_len)) {
      *reason = DropReason::kBadBlobRange;
      return false;
    }
    if (f.name_len == 0 || f.name_len > kMaxNameBytes) {
      *reason = DropReason::kBadName;
      return false;
    }
  }
  return true;
}

bool CheckHeader(std::span<const uint8_t> datagram, PacketHeader* h, DropReason* reason) {
  if (datagram.size() < kHeaderBytes) {
    *reason = DropReason::kTooShort;
    return false;
  }
  std::memcpy(h, datagram.data(), kHeaderBytes);
  if (h->magic != kMagic) {
    *reason = DropReason::kBadMagic;
  } else if (h->version != kProtocolVersion) {
    *reason = DropReason::kBadVersion;
  } else if ((h->flags & ~kKnownFlags) != 0) {
    *reason = DropReason::kBadFlags;
  } else if (h->payload_bytes != datagram.size() - kHeaderBytes) {
    *reason = DropReason::kBadLength;
  } else {
    return true;
  }
  return false;
}

}  // namespace

NodeDeltaView DecodedPacket::part(size_t i) const {
  const auto* parts = static_cast<const flatbuffers::Vector<flatbuffers::Offset<fb::NodeDelta>>*>(
      parts_);
  return ViewOf(parts->Get(static_cast<flatbuffers::uoffset_t>(i)));
}

bool Decode(std::span<const uint8_t> datagram, const DecodeLimits& limits, DecodedPacket* out,
            DropReason* reason) {
  *out = DecodedPacket();
  if (!CheckHeader(datagram, &out->header, reason)) return false;
  if (!Aligned8(datagram.data(), reason)) return false;
  const uint8_t* payload = datagram.data() + kHeaderBytes;
  const size_t payload_size = datagram.size() - kHeaderBytes;
  // Bounded verification: depth and table counts far above what a valid packet needs.
  flatbuffers::Verifier::Options opts;
  opts.max_depth = 8;
  opts.max_tables = limits.max_parts + 16;
  flatbuffers::Verifier verifier(payload, payload_size, opts);
  if (!fb::VerifyPacketBuffer(verifier)) {
    *reason = DropReason::kVerifyFailed;
    return false;
  }
  const fb::Packet* p = fb::GetPacket(payload);
  if (p->cluster_id() == nullptr || p->sender() == nullptr || p->blob() == nullptr) {
    *reason = DropReason::kMissingField;
    return false;
  }
  out->cluster_id = std::string_view(p->cluster_id()->c_str(), p->cluster_id()->size());
  out->blob = {p->blob()->data(), p->blob()->size()};
  if (!Aligned8(p->sender(), reason)) return false;
  out->sender = reinterpret_cast<const NodeRef*>(p->sender());
  out->shard_count = p->shard_count();
  out->cookie = p->cookie();
  out->echo = p->echo();
  if (!CheckNodeRef(*out->sender, out->blob.size(), reason)) return false;
  const size_t blob_size = out->blob.size();
  // A union may carry a type with no value: every accessor result is null-checked.
  switch (p->message_type()) {
    case fb::Message::Syn: {
      out->type = MessageType::kSyn;
      const fb::Syn* m = p->message_as_Syn();
      if (m == nullptr) break;
      out->message_flags = m->mode();
      return CheckDigest(m->digest(), limits, blob_size, &out->digest, reason);
    }
    case fb::Message::SynAck: {
      out->type = MessageType::kSynAck;
      const fb::SynAck* m = p->message_as_SynAck();
      if (m == nullptr) break;
      return CheckDigest(m->digest(), limits, blob_size, &out->digest, reason) &&
             CheckDelta(m->delta(), limits, blob_size, &out->parts_, &out->num_parts_, reason);
    }
    case fb::Message::Ack: {
      out->type = MessageType::kAck;
      const fb::Ack* m = p->message_as_Ack();
      if (m == nullptr) break;
      if (m->digest() != nullptr &&
          !CheckDigest(m->digest(), limits, blob_size, &out->digest, reason)) {
        return false;
      }
      return CheckDelta(m->delta(), limits, blob_size, &out->parts_, &out->num_parts_, reason);
    }
    case fb::Message::BadCluster:
      out->type = MessageType::kBadCluster;
      if (p->message_as_BadCluster() == nullptr) break;
      return true;
    case fb::Message::Rumor: {
      out->type = MessageType::kRumor;
      const fb::Rumor* m = p->message_as_Rumor();
      if (m == nullptr) break;
      out->message_flags = m->flags();
      return CheckDelta(m->delta(), limits, blob_size, &out->parts_, &out->num_parts_, reason);
    }
    case fb::Message::RumorAck: {
      out->type = MessageType::kRumorAck;
      const fb::RumorAck* m = p->message_as_RumorAck();
      if (m == nullptr) break;
      out->message_flags = m->flags();
      return CheckFeedback(m->feedback(), limits, blob_size, &out->feedback, reason) &&
             CheckDelta(m->delta(), limits, blob_size, &out->parts_, &out->num_parts_, reason);
    }
    case fb::Message::WelcomeRequest: {
      out->type = MessageType::kWelcomeRequest;
      const fb::WelcomeRequest* m = p->message_as_WelcomeRequest();
      if (m == nullptr) break;
      out->welcome.session = m->session();
      out->welcome.window = m->window();
      out->welcome.ack = m->ack();
      out->welcome.resync = m->resync();
      return CheckDigest(m->digest(), limits, blob_size, &out->digest, reason);
    }
    case fb::Message::WelcomeChunk: {
      out->type = MessageType::kWelcomeChunk;
      const fb::WelcomeChunk* m = p->message_as_WelcomeChunk();
      if (m == nullptr) break;
      out->welcome.session = m->session();
      out->welcome.seq = m->seq();
      out->welcome.last = m->last();
      return CheckDelta(m->delta(), limits, blob_size, &out->parts_, &out->num_parts_, reason);
    }
    case fb::Message::Probe: {
      out->type = MessageType::kProbe;
      const fb::Probe* m = p->message_as_Probe();
      if (m == nullptr) break;
      if (m->target() == nullptr) {
        *reason = DropReason::kMissingField;
        return false;
      }
      if (m->kind() < kProbePing || m->kind() > kProbePingReq) {
        *reason = DropReason::kBadProbe;
        return false;
      }
      out->probe = ProbeFields{m->kind(), m->seq(), m->heartbeat(), {}};
      std::memcpy(&out->probe.target, m->target(), sizeof(NodeRef));
      return CheckNodeRef(out->probe.target, blob_size, reason);
    }
    case fb::Message::Verdict: {
      out->type = MessageType::kVerdict;
      const fb::Verdict* m = p->message_as_Verdict();
      if (m == nullptr) break;
      if (m->node() == nullptr) {
        *reason = DropReason::kMissingField;
        return false;
      }
      if (m->state() > kVerdictAlive) {
        *reason = DropReason::kBadProbe;
        return false;
      }
      out->probe = ProbeFields{m->state(), 0, m->heartbeat(), {}};
      std::memcpy(&out->probe.target, m->node(), sizeof(NodeRef));
      return CheckNodeRef(out->probe.target, blob_size, reason);
    }
    default:
      break;
  }
  *reason = DropReason::kNoMessage;
  return false;
}

// --- Encoding ---------------------------------------------------------------------------

struct PacketEncoder::Impl {
  Impl(std::span<uint8_t> slot, const EncodeOptions& o)
      : slot(slot),
        options(o),
        allocator(slot),
        builder(slot.size() & ~size_t{7}, &allocator, false, 8) {
    const size_t usable = (slot.size() & ~size_t{7});
    const size_t cap = usable > kHeaderBytes + kScratchReserveBytes
                           ? usable - kHeaderBytes - kScratchReserveBytes
                           : 0;
    const size_t want = o.max_packet_bytes > kHeaderBytes ? o.max_packet_bytes - kHeaderBytes : 0;
    payload_budget = std::min(cap, want);
    cluster_id = builder.CreateString(o.cluster_id.data(), o.cluster_id.size());
  }

  size_t Remaining() const {
    const size_t used = builder.GetSize() + kPacketFixedWireBytes + 4 * num_parts;
    return used >= payload_budget ? 0 : payload_budget - used;
  }

  std::span<uint8_t> slot;
  EncodeOptions options;
  SlotAllocator allocator;
  Builder builder;
  size_t payload_budget = 0;
  flatbuffers::Offset<flatbuffers::String> cluster_id;
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> blob;
  flatbuffers::Offset<flatbuffers::Vector<const fb::DigestEntry*>> digest;
  flatbuffers::Offset<flatbuffers::Vector<const fb::RumorFeedback*>> feedback;
  bool digest_partial = false;
  bool has_digest = false;
  flatbuffers::Offset<flatbuffers::Vector<uint64_t>> buckets;
  flatbuffers::Offset<flatbuffers::Vector<uint16_t>> heartbeats;
  flatbuffers::Offset<flatbuffers::Vector<uint16_t>> scope;
  uint16_t scope_buckets = 0;
  bool has_summary = false;
  uint64_t membership = 0;
  uint32_t count = 0;
  uint32_t hb_base = 0;
  uint64_t sender_heartbeat = 0;
  size_t num_parts = 0;
  flatbuffers::Offset<fb::NodeDelta> parts[kMaxPartsPerPacket];
};

PacketEncoder::PacketEncoder(std::span<uint8_t> slot, const EncodeOptions& options)
    : impl_(new (storage_) Impl(slot, options)) {
  static_assert(sizeof(Impl) <= sizeof(storage_));
}

PacketEncoder::~PacketEncoder() { impl_->~Impl(); }

size_t PacketEncoder::Remaining() const { return impl_->Remaining(); }

void PacketEncoder::SetWelcomeLast(bool last) { impl_->options.welcome.last = last; }
void PacketEncoder::SetProbe(const ProbeFields& f) { impl_->options.probe = f; }

std::span<uint8_t> PacketEncoder::AllocBlob(size_t bytes) {
  if (bytes + 8 > impl_->Remaining()) return {};
  uint8_t* p = nullptr;
  impl_->blob = impl_->builder.CreateUninitializedVector(bytes, &p);
  return {p, bytes};
}

std::span<DigestEntry> PacketEncoder::AllocDigest(size_t count, bool partial) {
  if (count * sizeof(DigestEntry) + 16 > impl_->Remaining()) return {};
  fb::DigestEntry* p = nullptr;
  impl_->digest = impl_->builder.UninitializedStructs(count, &p);
  impl_->digest_partial = partial;
  impl_->has_digest = true;
  return {reinterpret_cast<DigestEntry*>(p), count};
}

std::span<uint64_t> PacketEncoder::AllocSummaryBuckets(size_t count) {
  if (count * sizeof(uint64_t) + 16 > impl_->Remaining()) return {};
  uint64_t* p = nullptr;
  impl_->buckets = impl_->builder.CreateUninitializedVector(count, &p);
  impl_->has_summary = true;
  return {p, count};
}

std::span<uint16_t> PacketEncoder::AllocHeartbeats(size_t count) {
  if (count * sizeof(uint16_t) + 16 > impl_->Remaining()) return {};
  uint16_t* p = nullptr;
  impl_->heartbeats = impl_->builder.CreateUninitializedVector(count, &p);
  impl_->has_summary = true;
  return {p, count};
}

void PacketEncoder::SetSummary(uint64_t membership, uint32_t count, uint32_t hb_base,
                               uint64_t sender_heartbeat) {
  impl_->has_summary = true;
  impl_->sender_heartbeat = sender_heartbeat;
  impl_->membership = membership;
  impl_->count = count;
  impl_->hb_base = hb_base;
}

std::span<uint16_t> PacketEncoder::AllocScope(size_t count, uint16_t scope_buckets) {
  if (count * sizeof(uint16_t) + 16 > impl_->Remaining()) return {};
  uint16_t* p = nullptr;
  impl_->scope = impl_->builder.CreateUninitializedVector(count, &p);
  impl_->scope_buckets = scope_buckets;
  return {p, count};
}

std::span<RumorFeedback> PacketEncoder::AllocFeedback(size_t count) {
  if (count * sizeof(RumorFeedback) + 16 > impl_->Remaining()) return {};
  fb::RumorFeedback* p = nullptr;
  impl_->feedback = impl_->builder.UninitializedStructs(count, &p);
  return {reinterpret_cast<RumorFeedback*>(p), count};
}

std::span<Entry> PacketEncoder::AddPart(const NodeRef& node, uint64_t from_version_excluded,
                                        uint64_t last_gc_version, uint64_t max_version,
                                        uint64_t source_max_version, size_t count, bool* ok) {
  *ok = false;
  if (impl_->num_parts >= kMaxPartsPerPacket ||
      count * kEntryWireBytes + kPartWireBytes > impl_->Remaining()) {
    return {};
  }
  fb::Entry* p = nullptr;
  auto entries = impl_->builder.UninitializedStructs(count, &p);
  fb::NodeDeltaBuilder b(impl_->builder);
  b.add_node(&AsFb(node));
  b.add_from_version_excluded(from_version_excluded);
  b.add_last_gc_version(last_gc_version);
  b.add_max_version(max_version);
  b.add_source_max_version(source_max_version);
  b.add_entries(entries);
  impl_->parts[impl_->num_parts++] = b.Finish();
  *ok = true;
  return {reinterpret_cast<Entry*>(p), count};
}

std::span<const uint8_t> PacketEncoder::Finish(MessageType type) {
  Impl& m = *impl_;
  auto& fbb = m.builder;
  if (m.blob.IsNull()) AllocBlob(0);
  auto make_digest = [&] {
    if (!m.has_digest) AllocDigest(0, false);
    flatbuffers::Offset<fb::Summary> summary;
    if (m.has_summary) {
      summary = fb::CreateSummary(fbb, m.membership, m.count, m.buckets, m.hb_base, m.heartbeats,
                                  m.sender_heartbeat);
    }
    return fb::CreateDigest(fbb, m.digest, m.digest_partial, summary, m.scope, m.scope_buckets);
  };
  auto make_delta = [&] { return fb::CreateDelta(fbb, fbb.CreateVector(m.parts, m.num_parts)); };
  flatbuffers::Offset<void> msg;
  fb::Message msg_type = fb::Message::NONE;
  switch (type) {
    case MessageType::kSyn:
      msg = fb::CreateSyn(fbb, make_digest(), m.options.message_flags).Union();
      msg_type = fb::Message::Syn;
      break;
    case MessageType::kSynAck: {
      auto digest = make_digest();
      auto delta = make_delta();
      msg = fb::CreateSynAck(fbb, digest, delta).Union();
      msg_type = fb::Message::SynAck;
      break;
    }
    case MessageType::kAck:
    {
      auto delta = make_delta();
      flatbuffers::Offset<fb::Digest> digest;
      if (ack_digest_) digest = make_digest();
      msg = fb::CreateAck(fbb, delta, digest).Union();
    }
      msg_type = fb::Message::Ack;
      break;
    case MessageType::kBadCluster:
      msg = fb::CreateBadCluster(fbb).Union();
      msg_type = fb::Message::BadCluster;
      break;
    case MessageType::kRumor:
      msg = fb::CreateRumor(fbb, make_delta(), m.options.message_flags).Union();
      msg_type = fb::Message::Rumor;
      break;
    case MessageType::kRumorAck: {
      if (m.feedback.IsNull()) AllocFeedback(0);
      auto delta = make_delta();
      msg = fb::CreateRumorAck(fbb, m.feedback, delta, m.options.message_flags).Union();
      msg_type = fb::Message::RumorAck;
      break;
    }
    case MessageType::kWelcomeRequest: {
      const WelcomeFields& w = m.options.welcome;
      msg = fb::CreateWelcomeRequest(fbb, make_digest(), w.session, w.window, w.ack, w.resync)
                .Union();
      msg_type = fb::Message::WelcomeRequest;
      break;
    }
    case MessageType::kWelcomeChunk: {
      const WelcomeFields& w = m.options.welcome;
      msg = fb::CreateWelcomeChunk(fbb, make_delta(), w.session, w.seq, w.last).Union();
      msg_type = fb::Message::WelcomeChunk;
      break;
    }
    case MessageType::kProbe: {
      const ProbeFields& f = m.options.probe;
      msg = fb::CreateProbe(fbb, &AsFb(f.target), f.seq, f.heartbeat, f.kind).Union();
      msg_type = fb::Message::Probe;
      break;
    }
    case MessageType::kVerdict: {
      const ProbeFields& f = m.options.probe;
      msg = fb::CreateVerdict(fbb, &AsFb(f.target), f.heartbeat, f.kind).Union();
      msg_type = fb::Message::Verdict;
      break;
    }
    case MessageType::kNone:
      return {};
  }
  auto root = fb::CreatePacket(fbb, m.cluster_id, &AsFb(m.options.sender), m.options.shard_count,
                               msg_type, msg, m.blob, m.options.cookie, m.options.echo);
  fbb.Finish(root);
  uint8_t* payload = fbb.GetBufferPointer();
  const size_t size = fbb.GetSize();
  // The packet must lie inside the slot with room for the header in front of it, and fit
  // the configured packet size; anything else is a planning bug, reported as empty.
  if (payload < m.slot.data() + kHeaderBytes || payload + size > m.slot.data() + m.slot.size() ||
      size + kHeaderBytes > m.options.max_packet_bytes) {
    return {};
  }
  PacketHeader h{};
  h.magic = kMagic;
  h.version = kProtocolVersion;
  h.flags = 0;
  h.shard = m.options.shard;
  h.payload_bytes = static_cast<uint32_t>(size);
  h.cluster_hash = ClusterHash(m.options.cluster_id);
  std::memcpy(payload - kHeaderBytes, &h, kHeaderBytes);
  return {payload - kHeaderBytes, size + kHeaderBytes};
}

}  // namespace scuttle::wire
