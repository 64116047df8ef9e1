// Decode(): the header, then the flatbuffers verifier and our own checks
// (packet_verify.h), then views into the datagram (DESIGN §8).
#include <cstring>

#include "wire/packet.h"
#include "wire/packet_verify.h"

namespace scuttle::wire {

using packet_internal::Aligned8;
using packet_internal::CheckDelta;
using packet_internal::CheckDigest;
using packet_internal::CheckFeedback;
using packet_internal::CheckHeader;
using packet_internal::CheckNodeRef;
using packet_internal::ViewOf;

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
      if (m->state() > kVerdictAlive || m->reply() > kVerdictNews) {
        *reason = DropReason::kBadProbe;
        return false;
      }
      out->probe = ProbeFields{m->state(), m->seq(), m->heartbeat(), {}, m->reply()};
      std::memcpy(&out->probe.target, m->node(), sizeof(NodeRef));
      return CheckNodeRef(out->probe.target, blob_size, reason);
    }
    default:
      break;
  }
  *reason = DropReason::kNoMessage;
  return false;
}

}  // namespace scuttle::wire
