// Engine: the send path. One Outgoing message encoded into a transport slot, under the
// reply guard's allowance.
#include "engine/engine.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {

// ---- Send path ---------------------------------------------------------------------------

bool Engine::FailSend(bool capped, EngineDrop d) {
  if (capped) {
    ++stats_.security.replies_suppressed;
  } else {
    Drop(d);
  }
  return false;
}

bool Engine::Send(const Endpoint& to, const Outgoing& out) {
  const NodeState& self = cluster_.self();
  const SecurityConfig& sec = config_.security;
  // The seal's trailer comes out of max_packet_bytes, so no sealed datagram exceeds it.
  const bool seal = !sec.keyring.empty() && sec.verify_outgoing;
  const size_t overhead = seal ? wire::kSealTrailerBytes : 0;
  size_t max_bytes = config_.max_packet_bytes;
  // An unverified source gets at most its allowance (engine/reply_guard.h); below what
  // the smallest packet needs, the reply is not sent at all.
  const bool capped = in_packet_ && !verified_ && to == reply_to_;
  if (capped) {
    max_bytes = std::min(max_bytes, reply_allowance_);
    const size_t min_bytes = wire::kHeaderBytes + wire::kPacketFixedWireBytes + 64 +
                             self.name().size() + config_.cluster_id.size() + overhead;
    if (max_bytes < min_bytes) return FailSend(true, EngineDrop::kEncodeFailed);
  }
  const size_t slot_bytes = config_.max_packet_bytes + 1024;
  std::span<uint8_t> slot = sink_->Acquire(slot_bytes);
  if (slot.size() < slot_bytes) {
    if (!slot.empty()) sink_->Abort();
    Drop(EngineDrop::kNoTxBuffer);
    return false;
  }
  wire::EncodeOptions opts;
  opts.cluster_id = config_.cluster_id;
  opts.shard = config_.shard;
  opts.shard_count = config_.shard_count;
  opts.max_packet_bytes = max_bytes - overhead;
  opts.cookie = config_.security.guard.enabled ? guard_.CookieFor(to, last_now_us_) : 0;
  if (auto it = echoes_.find(to); it != echoes_.end()) opts.echo = it->second;
  opts.message_flags = out.flags;
  opts.sender = MakeNodeRef(self, 0);
  if (compressor_ != nullptr) opts.sender.flags |= wire::kNodeZstd;
  if (out.welcome != nullptr) opts.welcome = *out.welcome;
  // The encoder finishes its packet at the end of the span it gets: keep the trailer's room
  // after it so the seal works in place.
  wire::PacketEncoder enc(slot.first(slot.size() - overhead), opts);
  // Space: blob and digest/feedback vector prefixes come off the top.
  size_t budget = enc.Remaining() > 64 + self.name().size()
                      ? enc.Remaining() - 64 - self.name().size()
                      : 0;
  size_t blob_bytes = self.name().size() + out.probe_name.size();
  if (out.feedback != nullptr) {
    for (const Feedback& f : *out.feedback) {
      const size_t cost = sizeof(wire::RumorFeedback) + f.name.size();
      budget = budget > cost ? budget - cost : 0;
      blob_bytes += f.name.size();
    }
  }
  const bool delta = out.peer != nullptr || out.ranges != nullptr || out.projection != nullptr;
  if (out.peer != nullptr) delta_builder_.SetPeerDigest(*out.peer);
  if (out.projection != nullptr) delta_builder_.SetProjection(*out.projection);
  digest_builder_.ClearSummary();
  if (out.digest) {
    // A SynAck keeps at least half the packet for the delta it carries...
    const size_t digest_budget = out.peer != nullptr ? budget / 2 : budget;
    const NodeState* initiator = out.peer_node;
    size_t summary_bytes = 0;
    if (out.summary) {
      summary_bytes = digest_builder_.PlanSummary(
          Summary(), out.summary_buckets, out.heartbeats ? std::min(out.max_heartbeats, kMaxSummaryHeartbeats) : 0,
          digest_budget);
    }
    auto plan_entries = [&](size_t b) {
      if (out.no_entries) return digest_builder_.PlanNone();
      if (out.scoped) {
        return digest_builder_.PlanScope(cluster_, Summary(), out.scope_buckets, out.scope, b,
                                         initiator, out.fill_rest,
                                         /*list_self=*/out.type == wire::MessageType::kAck);
      }
      return digest_builder_.Plan(cluster_, b, initiator);
    };
    size_t digest_bytes =
        summary_bytes + plan_entries(digest_budget > summary_bytes ? digest_budget - summary_bytes : 0);
    if (out.peer != nullptr && delta_builder_.Plan(cluster_, budget - std::min(budget, digest_bytes)) == 0 &&
        delta_builder_.blocked()) {
      // ...and when its next entry is larger than that, the digest shrinks to us and the
      // initiator (a partial digest; others rotate in next time) so the entry gets out.
      digest_bytes = summary_bytes + plan_entries(0);
    }
    if (digest_bytes > budget) {
      sink_->Abort();
      delta_builder_.ClearPeer();
      return FailSend(capped, EngineDrop::kEncodeFailed);
    }
    budget -= digest_bytes;
    blob_bytes += digest_builder_.blob_bytes();
  }
  if (out.peer != nullptr) {
    delta_builder_.Plan(cluster_, budget);
  } else if (out.ranges != nullptr) {
    delta_builder_.PlanRanges(*out.ranges, budget);
  } else if (out.projection != nullptr) {
    delta_builder_.Plan(cluster_, budget);
    enc.SetWelcomeLast(delta_builder_.complete());
    if (out.complete != nullptr) *out.complete = delta_builder_.complete();
  }
  if (out.skip_if_empty && delta_builder_.planned_parts() == 0) {
    sink_->Abort();
    delta_builder_.ClearPeer();
    return false;
  }
  if (delta) blob_bytes += delta_builder_.blob_bytes();
  if (out.ack_digest) enc.SetAckDigest();
  BlobWriter blob{enc.AllocBlob(blob_bytes)};
  bool ok = blob.blob.size() == blob_bytes;
  if (ok) blob.Put(self.name());
  if (ok && out.probe != nullptr) {
    wire::ProbeFields f = *out.probe;
    f.target.name_off = blob.Put(out.probe_name);
    f.target.name_len = static_cast<uint8_t>(out.probe_name.size());
    enc.SetProbe(f);
  }
  if (ok && out.feedback != nullptr) ok = WriteFeedback(enc, blob, *out.feedback);
  if (ok && out.digest) ok = digest_builder_.Write(enc, blob);
  if (ok && delta) ok = delta_builder_.Write(enc, blob);
  std::span<const uint8_t> packet = ok ? enc.Finish(out.type) : std::span<const uint8_t>();
  delta_builder_.ClearPeer();
  if (packet.empty()) {
    sink_->Abort();
    return FailSend(capped, EngineDrop::kEncodeFailed);
  }
  packet = Deflate(to, packet);
  if (seal) {
    uint8_t* start = const_cast<uint8_t*>(packet.data());
    packet = wire::Seal(std::span<uint8_t>(start, slot.data() + slot.size() - start),
                        packet.size(),
                        wire::SealParams{&sec.keyring.primary(), cipher_, seal_sender_id_,
                                         seal_counter_++});
    ++stats_.security.sealed_out;
  }
  if (capped) {
    reply_allowance_ -= std::min(reply_allowance_, packet.size());
    guard_.Spend(to, packet.size());
    ++stats_.security.unverified_replies;
    stats_.security.unverified_bytes_out += packet.size();
  }
  const size_t t = static_cast<size_t>(out.type);
  ++stats_.packets_out[t];
  stats_.bytes_out[t] += packet.size();
  sink_->Commit(to, packet);
  return true;
}

bool Engine::WriteFeedback(wire::PacketEncoder& enc, BlobWriter& blob,
                           const std::vector<Feedback>& feedback) {
  auto dst = enc.AllocFeedback(feedback.size());
  if (dst.size() != feedback.size()) return false;
  for (size_t i = 0; i < feedback.size(); ++i) {
    const Feedback& f = feedback[i];
    dst[i] = wire::RumorFeedback{f.generation, f.from, f.to, blob.Put(f.name),
                                 static_cast<uint8_t>(f.name.size()), f.knew ? uint8_t{1} : uint8_t{0},
                                 0};
  }
  return true;
}

}  // namespace scuttle
