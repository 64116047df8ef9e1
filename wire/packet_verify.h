// Wire-internal: the checks Decode() runs on a flatbuffers payload before anything reads
// it in place (DESIGN §8). Each returns false and sets *reason on the first violation.
// Includes the generated schema header, so only wire/ sources may include this file.
#ifndef SCUTTLE_WIRE_PACKET_VERIFY_H_
#define SCUTTLE_WIRE_PACKET_VERIFY_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "flatbuffers/flatbuffers.h"
#include "scuttle_generated.h"
#include "wire/packet.h"

namespace scuttle::wire::packet_internal {

// The wire structs are read in place as the flatbuffers structs they mirror.
static_assert(sizeof(fb::NodeRef) == sizeof(NodeRef));
static_assert(sizeof(fb::DigestEntry) == sizeof(DigestEntry));
static_assert(sizeof(fb::Entry) == sizeof(Entry));
static_assert(alignof(fb::Entry) == alignof(Entry));
static_assert(sizeof(fb::RumorFeedback) == sizeof(RumorFeedback));

bool Aligned8(const void* p, DropReason* reason);
bool InBlob(size_t blob_size, uint64_t off, uint64_t len);
bool CheckNodeRef(const NodeRef& r, size_t blob_size, DropReason* reason);
bool CheckDigest(const fb::Digest* d, const DecodeLimits& limits, size_t blob_size,
                 DigestView* out, DropReason* reason);
bool CheckEntries(const NodeDeltaView& p, const DecodeLimits& limits, size_t blob_size,
                  DropReason* reason);
NodeDeltaView ViewOf(const fb::NodeDelta* nd);
bool CheckDelta(const fb::Delta* d, const DecodeLimits& limits, size_t blob_size,
                const void** parts_out, size_t* num_parts_out, DropReason* reason);
bool CheckFeedback(const flatbuffers::Vector<const fb::RumorFeedback*>* v,
                   const DecodeLimits& limits, size_t blob_size,
                   std::span<const RumorFeedback>* out, DropReason* reason);
bool CheckHeader(std::span<const uint8_t> datagram, PacketHeader* h, DropReason* reason);

}  // namespace scuttle::wire::packet_internal

#endif  // SCUTTLE_WIRE_PACKET_VERIFY_H_
