// PacketEncoder: builds a packet in place in the caller's send slot (DESIGN §8).
#include <cstring>

#include "wire/packet.h"
#include "wire/packet_verify.h"

namespace scuttle::wire {
namespace {

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
      // A push that wants feedback writes seq and reply even at their defaults, so the
      // feedback (same fields, reply != 0) is never larger than the push.
      fbb.ForceDefaults(f.seq != 0);
      msg = fb::CreateVerdict(fbb, &AsFb(f.target), f.heartbeat, f.kind, f.seq, f.reply).Union();
      fbb.ForceDefaults(false);
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
