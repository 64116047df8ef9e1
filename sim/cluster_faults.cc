#include "sim/cluster_faults.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/delta_builder.h"
#include "wire/absl_compat.h"
#include "wire/packet.h"

namespace scuttle::sim {

absl::StatusOr<PlantedBug> ParsePlantedBug(std::string_view s) {
  if (s == "none") return PlantedBug::kNone;
  if (s == "drop-tombstones") return PlantedBug::kDropTombstones;
  if (s == "gap-applied") return PlantedBug::kGapApplied;
  if (s == "inflate-max") return PlantedBug::kInflateMax;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown bug '", AV(s), "' (none, drop-tombstones, gap-applied, inflate-max)"));
}

const char* PlantedBugName(PlantedBug b) {
  switch (b) {
    case PlantedBug::kNone:
      return "none";
    case PlantedBug::kDropTombstones:
      return "drop-tombstones";
    case PlantedBug::kGapApplied:
      return "gap-applied";
    case PlantedBug::kInflateMax:
      return "inflate-max";
  }
  return "unknown";
}

namespace {

// Which entries of each part survive, and the part's claimed max_version.
struct PartPlan {
  std::vector<bool> keep;
  uint64_t max_version;
  size_t kept = 0;
};

bool PlanEdits(PlantedBug bug, double p, const wire::DecodedPacket& pkt, Rng& rng,
               std::vector<PartPlan>* plans) {
  bool changed = false;
  for (size_t i = 0; i < pkt.num_parts(); ++i) {
    const wire::NodeDeltaView part = pkt.part(i);
    PartPlan plan{std::vector<bool>(part.entries.size(), true), part.max_version};
    if (!part.entries.empty() && rng.Chance(p)) {
      switch (bug) {
        case PlantedBug::kDropTombstones:
          for (size_t j = 0; j < part.entries.size(); ++j) {
            if (part.entries[j].status == static_cast<uint8_t>(wire::EntryStatus::kTombstone)) {
              plan.keep[j] = false;
              changed = true;
            }
          }
          break;
        case PlantedBug::kGapApplied:
          plan.keep[0] = false;
          changed = true;
          break;
        case PlantedBug::kInflateMax:
          plan.max_version += 1000;
          changed = true;
          break;
        case PlantedBug::kNone:
          break;
      }
    }
    plan.kept = static_cast<size_t>(std::count(plan.keep.begin(), plan.keep.end(), true));
    plans->push_back(std::move(plan));
  }
  return changed;
}

}  // namespace

bool PlantBug(PlantedBug bug, double p, std::vector<uint8_t>* datagram, Rng& rng) {
  if (bug == PlantedBug::kNone) return false;
  const std::vector<uint8_t> old = *datagram;
  wire::DecodeLimits limits;
  limits.max_digest_entries = 1 << 20;
  wire::DecodedPacket pkt;
  wire::DropReason reason;
  if (!wire::Decode(old, limits, &pkt, &reason)) return false;
  if (pkt.type != wire::MessageType::kSynAck && pkt.type != wire::MessageType::kAck) return false;
  std::vector<PartPlan> plans;
  if (!PlanEdits(bug, p, pkt, rng, &plans)) return false;

  // Blob: sender name first (the encoder's sender ref points at offset 0), then digest
  // names, then per part its name and kept keys/values.
  const std::string_view sender = pkt.Name(*pkt.sender);
  size_t blob_bytes = sender.size();
  for (const wire::DigestEntry& e : pkt.digest.entries) blob_bytes += e.node.name_len;
  for (size_t i = 0; i < pkt.num_parts(); ++i) {
    const wire::NodeDeltaView part = pkt.part(i);
    blob_bytes += part.node->name_len;
    for (size_t j = 0; j < part.entries.size(); ++j) {
      if (plans[i].keep[j]) blob_bytes += part.entries[j].key_len + part.entries[j].value_len;
    }
  }
  wire::EncodeOptions opts;
  opts.cluster_id = pkt.cluster_id;
  opts.shard = pkt.header.shard;
  opts.shard_count = pkt.shard_count;
  opts.max_packet_bytes = old.size() + 4096;
  opts.sender = *pkt.sender;
  opts.sender.name_off = 0;
  std::vector<uint8_t> slot(opts.max_packet_bytes + 1024);
  wire::PacketEncoder enc(slot, opts);
  BlobWriter blob{enc.AllocBlob(blob_bytes)};
  if (blob.blob.size() != blob_bytes) return false;
  blob.Put(sender);
  if (pkt.type == wire::MessageType::kSynAck) {
    auto entries = enc.AllocDigest(pkt.digest.entries.size(), pkt.digest.partial);
    if (entries.size() != pkt.digest.entries.size()) return false;
    for (size_t i = 0; i < entries.size(); ++i) {
      entries[i] = pkt.digest.entries[i];
      entries[i].node.name_off = blob.Put(pkt.Name(pkt.digest.entries[i].node));
    }
  }
  for (size_t i = 0; i < pkt.num_parts(); ++i) {
    const wire::NodeDeltaView part = pkt.part(i);
    wire::NodeRef ref = *part.node;
    ref.name_off = blob.Put(pkt.Name(*part.node));
    bool ok = false;
    auto out =
        enc.AddPart(ref, part.from_version_excluded, part.last_gc_version, plans[i].max_version,
                    std::max(part.source_max_version, plans[i].max_version), plans[i].kept, &ok);
    if (!ok) return false;
    size_t k = 0;
    for (size_t j = 0; j < part.entries.size(); ++j) {
      if (!plans[i].keep[j]) continue;
      out[k] = part.entries[j];
      out[k].off = blob.Put(pkt.Key(part.entries[j]), pkt.Value(part.entries[j]));
      ++k;
    }
  }
  const std::span<const uint8_t> fresh = enc.Finish(pkt.type);
  if (fresh.empty()) return false;
  datagram->assign(fresh.begin(), fresh.end());
  return true;
}

}  // namespace scuttle::sim
