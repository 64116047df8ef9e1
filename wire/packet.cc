// The packet header and the names shared by encoding and decoding (wire/packet.h).
// Decoding is in packet_decode.cc (with the checks in packet_verify.cc), encoding in
// packet_encode.cc.
#include "wire/packet.h"

#include <cstring>

namespace scuttle::wire {

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

}  // namespace scuttle::wire
