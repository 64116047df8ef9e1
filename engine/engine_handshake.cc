// Engine: the Syn / SynAck steps of the anti-entropy handshake (seed 000, seed 001 modes).
#include "engine/engine.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {

// seed 001 anti-entropy modes: the initiator's mode rides in the Syn. Push: the SynAck
// carries no delta; pull: the initiator sends no Ack.
void Engine::HandleSyn(const wire::DecodedPacket& pkt, const Endpoint& from) {
  const NodeState* initiator = cluster_.Find(pkt.Name(*pkt.sender));
  const wire::SummaryView& s = pkt.digest.summary;
  if (s.present && pkt.message_flags == wire::kModePushPull) {
    // Compact digest: list our entries only for the buckets whose hashes differ, or for
    // every bucket when the memberships differ (heartbeats then ride in the entries).
    const SummaryIndex& idx = Summary();
    scope_.clear();
    uint16_t buckets = 0;
    const bool same_members = s.membership == idx.membership() && s.count == idx.count();
    if (!s.buckets.empty()) {
      buckets = static_cast<uint16_t>(s.buckets.size());
      for (size_t b = 0; b < s.buckets.size(); ++b) {
        if (s.buckets[b] != idx.BucketHash(buckets, b)) scope_.push_back(static_cast<uint16_t>(b));
      }
    }
    if (!scope_.empty() || !same_members) MarkBusy();
    Send(from, Outgoing{.type = wire::MessageType::kSynAck,
                        .digest = true,
                        .peer_node = initiator,
                        .summary = true,
                        // Heartbeats flow both ways (push-pull): with Syns alone they
                        // spread as a push epidemic, whose long tail showed up as false
                        // suspicions among 250 processes. Positional only when the
                        // initiator can read them (equal memberships).
                        .heartbeats = same_members,
                        // A bounded quiet Syn gets a bounded answer: no more heartbeats
                        // than it carried (a full Syn carries them all, up to the cap).
                        .max_heartbeats = s.heartbeats.size() < std::min<size_t>(s.count, kMaxSummaryHeartbeats)
                                              ? std::max<size_t>(s.heartbeats.size(), 1)
                                              : kMaxSummaryHeartbeats,
                        .fill_rest = !same_members,
                        .scoped = true,
                        .scope_buckets = buckets,
                        .scope = scope_});
    return;
  }
  MarkBusy();  // a full-digest Syn: the peer does not run quiet rounds
  const bool push_only = pkt.message_flags == wire::kModePush;
  if (Send(from, Outgoing{.type = wire::MessageType::kSynAck,
                          .digest = true,
                          .peer = push_only ? nullptr : &pkt,
                          .peer_node = initiator}) &&
      !push_only) {
    SendContinuations(from, pkt);
  }
}

// Real-MTU batching (DESIGN §9): the delta goes on where the last datagram stopped. Each
// continuation is planned against a projection of the peer raised by what was already
// sent (DeltaBuilder::Advance), so every datagram is a valid delta on its own: a lost one
// only makes the later parts of the same nodes gaps (dropped and counted by the peer,
// resent next round), never a wrong state. Nodes the digest did not list are continued
// only when it was a full digest (unlisted = unknown); otherwise only nodes already started.
void Engine::SendContinuations(const Endpoint& to, const wire::DecodedPacket& peer) {
  if (config_.max_datagrams_per_reply <= 1 || delta_builder_.complete()) return;
  continuation_.Reset(peer);
  continuation_.partial = peer.digest.partial || peer.digest.scoped;
  delta_builder_.Advance(&continuation_);
  const int limit = std::min(config_.max_datagrams_per_reply, kMaxDatagramsPerReply);
  for (int i = 1; i < limit; ++i) {
    bool complete = false;
    if (!Send(to, Outgoing{.type = wire::MessageType::kAck,
                           .projection = &continuation_,
                           .complete = &complete,
                           .skip_if_empty = true})) {
      return;  // nothing left, no send slot, or the reply guard's allowance is spent
    }
    ++stats_.continuation_datagrams;
    if (complete) return;
    delta_builder_.Advance(&continuation_);
  }
}

void Engine::HandleSynAck(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us) {
  std::erase_if(probe_.syn_waits, [&](const SynWait& w) { return w.to == from; });
  applier_.Apply(pkt, now_us);
  MaybeStartWelcome(pkt, from);
  if (config_.epidemic.anti_entropy == AntiEntropyMode::kPull) return;
  const wire::DigestView& d = pkt.digest;
  if (d.summary.present) {
    // Compact digest: nothing differs, or send what the peer misses in its listed buckets
    // with our own entries for them, so it can answer with what we miss.
    if (d.scope_buckets != 0 && d.scope.empty()) {
      // Quiet rounds: only an exchange where both members and buckets agree is idle.
      if (d.summary.membership != Summary().membership() || d.summary.count != Summary().count()) {
        MarkBusy();
      }
      return;
    }
    MarkBusy();
    const SummaryIndex& idx = Summary();
    const bool same_members =
        d.summary.membership == idx.membership() && d.summary.count == idx.count();
    if (Send(from, Outgoing{.type = wire::MessageType::kAck,
                            .digest = true,
                            .peer = &pkt,
                            .peer_node = cluster_.Find(pkt.Name(*pkt.sender)),
                            .fill_rest = !same_members,
                            .scoped = true,
                            .scope_buckets = d.scope_buckets,
                            .scope = d.scope,
                            .ack_digest = true})) {
      SendContinuations(from, pkt);
    }
    return;
  }
  if (Send(from, Outgoing{.type = wire::MessageType::kAck, .peer = &pkt})) {
    SendContinuations(from, pkt);
  }
}

}  // namespace scuttle
