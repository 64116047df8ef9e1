#include "wire/packet_verify.h"

#include <cstring>

namespace scuttle::wire::packet_internal {

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

}  // namespace scuttle::wire::packet_internal
