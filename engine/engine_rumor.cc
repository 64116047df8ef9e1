// Engine: rumor mongering glue (seed 001) around RumorList (engine/rumor.h).
#include "engine/engine.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {

// ---- Rumor mongering (seed 001) ---------------------------------------------------------

void Engine::SendRumors(const Endpoint& to) {
  const RumorVariant variant = config_.epidemic.rumor_options.variant;
  epidemic_.PushRanges(cluster_, &ranges_);
  uint8_t flags = wire::kRumorWantsFeedback;
  if (variant != RumorVariant::kPush) flags |= wire::kRumorPull;
  if (ranges_.empty() && (flags & wire::kRumorPull) == 0) return;
  const std::vector<VersionRange> sent = ranges_;
  if (Send(to, Outgoing{.type = wire::MessageType::kRumor, .flags = flags, .ranges = &sent})) {
    ++stats_.rumor_contacts;
    AfterRumorSend(sent);
  }
}

void Engine::AfterRumorSend(const std::vector<VersionRange>& sent) {
  if (!epidemic_.blind()) return;
  for (const VersionRange& r : sent) {
    epidemic_.OnContact(r.node->name(), r.from, r.to, /*peer_already_knew=*/false);
  }
}

void Engine::ApplyRumorParts(const wire::DecodedPacket& pkt, TimeUs now_us,
                             std::vector<Feedback>* feedback) {
  for (size_t i = 0; i < pkt.num_parts(); ++i) {
    const wire::NodeDeltaView part = pkt.part(i);
    const std::string_view name = pkt.Name(*part.node);
    const NodeState* before = cluster_.Find(name);
    const bool same_gen = before != nullptr && before->generation() == part.node->generation;
    const Version old_max = same_gen ? before->max_version() : 0;
    const PartOutcome o = applier_.ApplyPart(pkt, part, now_us);
    applier_.Count(o);
    // Demers: a contact is unnecessary when the recipient already knew the rumor.
    const bool knew = o != PartOutcome::kApplied && o != PartOutcome::kReset &&
                      o != PartOutcome::kGap && o != PartOutcome::kBehindReset &&
                      o != PartOutcome::kMissedGc;
    feedback->push_back(Feedback{name, part.node->generation, part.from_version_excluded,
                                 part.max_version, knew});
    if (knew) continue;
    ++stats_.rumor_feedback_new;
    const NodeState* node = cluster_.Find(name);
    if (node == nullptr || (o != PartOutcome::kApplied && o != PartOutcome::kReset)) continue;
    for (const wire::Entry& e : part.entries) {
      if (o == PartOutcome::kReset || e.version > old_max) {
        epidemic_.OnUpdate(*node, e.version, /*local=*/false);
      }
    }
  }
}

void Engine::ApplyFeedback(const wire::DecodedPacket& pkt) {
  if (epidemic_.blind()) return;  // blind removal counted the contact at send time
  for (const wire::RumorFeedback& f : pkt.feedback) {
    if (f.knew) ++stats_.rumor_feedback_knew;
    epidemic_.OnContact(pkt.Name(f), f.from_version, f.max_version, f.knew != 0);
  }
}

void Engine::HandleRumor(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us) {
  std::vector<Feedback> feedback;
  ApplyRumorParts(pkt, now_us, &feedback);
  const EpidemicConfig& ec = config_.epidemic;
  const bool fresh = std::any_of(feedback.begin(), feedback.end(),
                                 [](const Feedback& f) { return !f.knew; });
  if (ec.rumor && ec.push_fresh && fresh && verified_) PushFresh();
  if ((pkt.message_flags & (wire::kRumorWantsFeedback | wire::kRumorPull)) == 0) return;
  Outgoing out{.type = wire::MessageType::kRumorAck};
  if ((pkt.message_flags & wire::kRumorWantsFeedback) != 0) out.feedback = &feedback;
  std::vector<VersionRange> pulled;
  if ((pkt.message_flags & wire::kRumorPull) != 0) {
    epidemic_.PullRanges(cluster_, &pulled);
    out.ranges = &pulled;
    out.flags = wire::kRumorWantsFeedback;
  }
  if (Send(from, out) && !pulled.empty()) AfterRumorSend(pulled);
}

void Engine::HandleRumorAck(const wire::DecodedPacket& pkt, const Endpoint& from,
                            TimeUs now_us) {
  ApplyFeedback(pkt);
  if (pkt.num_parts() == 0) return;
  std::vector<Feedback> feedback;
  ApplyRumorParts(pkt, now_us, &feedback);
  if ((pkt.message_flags & wire::kRumorWantsFeedback) != 0) {
    Send(from, Outgoing{.type = wire::MessageType::kRumorAck, .feedback = &feedback});
  }
}

}  // namespace scuttle
