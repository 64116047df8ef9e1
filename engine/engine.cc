#include "engine/engine.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {

const char* EngineDropName(EngineDrop d) {
  switch (d) {
    case EngineDrop::kClusterMismatch: return "cluster_mismatch";
    case EngineDrop::kShardMismatch: return "shard_mismatch";
    case EngineDrop::kSelfConflict: return "self_conflict";
    case EngineDrop::kNodeLimit: return "node_limit";
    case EngineDrop::kNoTxBuffer: return "no_tx_buffer";
    case EngineDrop::kEncodeFailed: return "encode_failed";
    case EngineDrop::kUnexpected: return "unexpected";
    case EngineDrop::kForgotten: return "forgotten";
    case EngineDrop::kCount: break;
  }
  return "unknown";
}

const char* SecurityDropName(SecurityDrop d) {
  switch (d) {
    case SecurityDrop::kPlaintextRefused: return "plaintext_refused";
    case SecurityDrop::kNoKeyring: return "no_keyring";
    case SecurityDrop::kTruncated: return "truncated";
    case SecurityDrop::kBadKey: return "bad_key";
    case SecurityDrop::kAuthFailed: return "auth_failed";
    case SecurityDrop::kCipherUnavailable: return "cipher_unavailable";
    case SecurityDrop::kReplayed: return "replayed";
    case SecurityDrop::kStale: return "stale";
    case SecurityDrop::kCount: break;
  }
  return "unknown";
}

namespace {

std::array<uint8_t, 16> CookieSecret(const SecurityConfig& s, Rng& rng) {
  std::array<uint8_t, 16> secret = s.cookie_secret;
  if (secret == std::array<uint8_t, 16>{}) {
    const uint64_t a = rng(), b = rng();
    std::memcpy(secret.data(), &a, 8);
    std::memcpy(secret.data() + 8, &b, 8);
  }
  return secret;
}

}  // namespace

Engine::Engine(EngineConfig config, PacketSink* sink, EventSink* events)
    : config_(std::move(config)),
      sink_(sink),
      events_(events),
      rng_(config_.rng_seed),
      cluster_(config_.node_name, config_.generation),
      membership_(&config_.membership),
      applier_(&cluster_, config_.limits, events),
      epidemic_(&config_.epidemic),
      cluster_hash_(wire::ClusterHash(config_.cluster_id)),
      cipher_(wire::ResolveCipher(config_.security.cipher)),
      replay_(std::max<size_t>(1, config_.security.max_replay_senders)),
      guard_(&config_.security.guard, CookieSecret(config_.security, rng_)),
      open_buf_(wire::kMaxUdpPayloadBytes + 64) {
  cluster_.self().endpoint = config_.advertise;
  // Young-node prior (engine/membership.h): by default a peer is expected to show a new
  // heartbeat once per gossip interval.
  if (config_.membership.initial_interval_us <= 0) {
    config_.membership.initial_interval_us = std::max<TimeUs>(config_.gossip_interval_us, 1);
  }
  // The owner validates the cipher; an engine asked for one this CPU lacks still works.
  if (!wire::CipherAvailable(cipher_)) cipher_ = wire::Cipher::kXChaCha20Poly1305;
  seal_sender_id_ = config_.security.sender_id != 0 ? config_.security.sender_id : rng_();
  // A random start keeps AES-GCM's 96-bit nonces apart even when two incarnations share
  // the low 32 bits of sender_id (wire/seal.h).
  seal_counter_ = rng_() >> 2;
  if (config_.compression.mode == wire::Compression::kZstd) {
    config_.compression.level = std::clamp(config_.compression.level, 1, wire::kMaxZstdLevel);
    compressor_ = std::make_unique<wire::Compressor>(config_.compression.level,
                                                     wire::kMaxUdpPayloadBytes);
    inflate_buf_.resize(wire::kMaxUdpPayloadBytes + 64);
  }
  decode_limits_.max_key_bytes = config_.limits.max_key_bytes;
  decode_limits_.max_value_bytes = config_.limits.max_value_bytes;
  decode_limits_.max_digest_entries = config_.limits.max_nodes;
}

// ---- Local writes ------------------------------------------------------------------------

absl::Status Engine::CheckWrite(std::string_view key, std::string_view value) const {
  const Limits& l = config_.limits;
  if (key.empty()) return absl::InvalidArgumentError("key is empty");
  if (key.size() > l.max_key_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("key is ", key.size(), " bytes; the limit is ", l.max_key_bytes));
  }
  if (value.size() > l.max_value_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("value is ", value.size(), " bytes; the limit is ", l.max_value_bytes));
  }
  // A value must fit one packet with its key, or it could never replicate.
  if (key.size() + value.size() > MaxKeyValueBytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key+value of ", key.size() + value.size(), " bytes cannot fit max_packet_bytes=",
        config_.max_packet_bytes));
  }
  const NodeState& self = cluster_.self();
  if (self.num_keys() >= l.max_keys_per_node && self.Find(key) == NodeState::kNoSlot) {
    return absl::ResourceExhaustedError(
        absl::StrCat("node holds ", self.num_keys(), " keys; the limit is ", l.max_keys_per_node));
  }
  return absl::OkStatus();
}

size_t Engine::MaxKeyValueBytes() const {
  // One packet holding one part with one entry, beside a digest of just the sender and
  // the initiator (a SynAck shrinks its digest to those when a big entry needs the room,
  // see Send): the header, the encoder's fixed reserve, Send's slack, the sender, digest
  // and part names, the part and entry, the cluster id and the vector prefixes.
  const size_t fixed = wire::kHeaderBytes + wire::kPacketFixedWireBytes + 64 +
                       4 * wire::kMaxNameBytes + wire::kPartWireBytes + wire::kEntryWireBytes +
                       2 * sizeof(wire::DigestEntry) + config_.cluster_id.size() + 32 +
                       // Always reserved, so the limit does not move with the keyring.
                       wire::kSealTrailerBytes;
  return config_.max_packet_bytes > fixed ? config_.max_packet_bytes - fixed : 0;
}

absl::Status Engine::Set(std::string_view key, std::string_view value, TimeUs now_us) {
  if (absl::Status s = CheckWrite(key, value); !s.ok()) return s;
  last_now_us_ = std::max(last_now_us_, now_us);
  const Version v = cluster_.self().Set(key, value);
  if (events_ != nullptr) events_->OnKey(cluster_.self(), KeyEvent::kSet, key, value, v);
  OnLocalWrite(v);
  return absl::OkStatus();
}

absl::Status Engine::SetWithTtl(std::string_view key, std::string_view value, TimeUs ttl_us,
                                TimeUs now_us) {
  if (ttl_us <= 0) return absl::InvalidArgumentError("ttl must be positive");
  if (absl::Status s = CheckWrite(key, value); !s.ok()) return s;
  last_now_us_ = std::max(last_now_us_, now_us);
  const Version v = cluster_.self().SetWithTtl(key, value, now_us + ttl_us);
  if (events_ != nullptr) events_->OnKey(cluster_.self(), KeyEvent::kSet, key, value, v);
  OnLocalWrite(v);
  return absl::OkStatus();
}

absl::Status Engine::Delete(std::string_view key, TimeUs now_us) {
  if (key.empty() || key.size() > config_.limits.max_key_bytes) {
    return absl::InvalidArgumentError("bad key");
  }
  last_now_us_ = std::max(last_now_us_, now_us);
  const Version v = cluster_.self().Delete(key, now_us);
  if (v == 0) return absl::NotFoundError(absl::StrCat("no key '", AV(key), "'"));
  if (events_ != nullptr) events_->OnKey(cluster_.self(), KeyEvent::kDeleted, key, {}, v);
  OnLocalWrite(v);
  return absl::OkStatus();
}

// seed 001: a local write is a fresh rumor, and direct mail sends it at once.
void Engine::OnLocalWrite(Version v) {
  summary_dirty_ = true;
  const NodeState& self = cluster_.self();
  epidemic_.OnUpdate(self, v, /*local=*/true);
  const EpidemicConfig& ec = config_.epidemic;
  if (ec.rumor && ec.push_fresh) PushFresh();
  if (ec.direct_mail_peers <= 0) return;
  membership_.ChoosePeers(cluster_, ec.direct_mail_peers, {}, rng_, &peers_);
  ranges_.assign({VersionRange{&self, v > ec.direct_mail_window ? v - ec.direct_mail_window : 0,
                               v}});
  for (const Endpoint& to : peers_) {
    if (Send(to, Outgoing{.type = wire::MessageType::kRumor, .ranges = &ranges_})) {
      ++stats_.direct_mails;
    }
  }
}

// #16 item 4: hot rumors go to `fanout` random peers now, not at the next round.
void Engine::PushFresh() {
  membership_.ChoosePeers(cluster_, config_.fanout, {}, rng_, &peers_);
  const std::vector<Endpoint> to = peers_;
  for (const Endpoint& ep : to) SendRumors(ep);
}

void Engine::Leave() {
  cluster_.self().leaving = true;
  summary_dirty_ = true;
}

// ---- Rounds ------------------------------------------------------------------------------

void Engine::OnTick(TimeUs now_us) {
  last_now_us_ = std::max(last_now_us_, now_us);
  ++stats_.rounds;
  WelcomeTick(now_us);
  ++cluster_.self().heartbeat;
  const uint64_t removed_before =
      stats_.keys_expired + stats_.tombstones_gced + stats_.tombstones_gced_frontier;
  ExpireTtl(now_us);
  RunGc(now_us);
  if (stats_.keys_expired + stats_.tombstones_gced + stats_.tombstones_gced_frontier !=
      removed_before) {
    summary_dirty_ = true;
  }
  ProbeTick(now_us);  // local health first: a stalled observer rebases before judging
  membership_.Update(cluster_, now_us, events_, config_.limits.max_nodes, probe_.health);
  if (config_.membership.confirm) {
    AdvanceProbes(now_us);
    StartProbes(now_us);
  }
  membership_.ChoosePeers(cluster_, config_.fanout, config_.seeds, rng_, &peers_);
  // Copy: SendSyn may not reuse peers_, but rumor sending below does.
  const std::vector<Endpoint> peers = peers_;
  for (const Endpoint& to : peers) SendSyn(to);
  const EpidemicConfig& ec = config_.epidemic;
  if (ec.rumor) {
    const bool pulls = ec.rumor_options.variant != RumorVariant::kPush;
    if (pulls || !epidemic_.monger().empty()) {
      membership_.ChoosePeers(cluster_, ec.rumor_fanout, {}, rng_, &peers_);
      const std::vector<Endpoint> rumor_peers = peers_;
      for (const Endpoint& to : rumor_peers) SendRumors(to);
    }
  }
}

void Engine::ExpireTtl(TimeUs now_us) {
  NodeState& self = cluster_.self();
  if (self.NextExpiry() > now_us) return;
  stats_.keys_expired += self.ExpireDue(now_us, [&](std::string_view key) {
    if (events_ != nullptr) {
      events_->OnKey(self, KeyEvent::kExpired, key, {}, self.max_version());
    }
    epidemic_.OnUpdate(self, self.max_version(), /*local=*/true);
  });
}

void Engine::RunGc(TimeUs now_us) {
  ++stats_.gc_runs;
  const EpidemicConfig& ec = config_.epidemic;
  const TimeUs dormant_us =
      ec.dormant_grace_us > 0 ? ec.dormant_grace_us : 10 * config_.tombstone_grace_us;
  // seed 002 ack frontier: our tombstones every live peer has replicated go at once, and
  // so do other owners' tombstones up to the gc their owner announced.
  if (config_.frontier_gc) {
    Version frontier = UINT64_MAX;
    size_t live = 0;
    for (const NodeState* node : cluster_.nodes()) {
      if (node == &cluster_.self()) continue;
      const MemberState s = node->liveness.state;
      if (s == MemberState::kDead || s == MemberState::kLeft) continue;
      frontier = std::min(frontier, node->acked_self_max);
      ++live;
    }
    NodeState& self = cluster_.self();
    if (live > 0) stats_.tombstones_gced_frontier += self.GcTombstonesUpTo(frontier);
    for (NodeState* node : cluster_.nodes()) {
      if (node != &self && node->owner_gc > 0) {
        stats_.tombstones_gced_frontier +=
            node->GcTombstonesUpTo(std::min(node->owner_gc, node->max_version()));
      }
    }
  }
  for (NodeState* node : cluster_.nodes()) {
    // seed 001 dormant death certificates: retention sites keep tombstones for τ2.
    const bool retain = epidemic_.IsRetentionSite(*node, cluster_.self(), cluster_.size());
    stats_.tombstones_gced += node->GcTombstones(
        now_us, retain ? dormant_us : config_.tombstone_grace_us, UINT64_MAX);
  }
}

void Engine::SendSyn(const Endpoint& to) {
  const AntiEntropyMode mode = config_.epidemic.anti_entropy;
  if (config_.digest_summaries && mode == AntiEntropyMode::kPushPull) {
    const size_t n = Summary().count();
    Send(to, Outgoing{.type = wire::MessageType::kSyn,
                      .flags = static_cast<uint8_t>(mode),
                      .digest = true,
                      .summary = true,
                      .summary_buckets = SummaryIndex::ChooseBuckets(n, config_.max_packet_bytes),
                      .no_entries = true});
    return;
  }
  Send(to, Outgoing{.type = wire::MessageType::kSyn,
                    .flags = static_cast<uint8_t>(mode),
                    .digest = true});
}

const SummaryIndex& Engine::Summary() {
  summary_.Refresh(cluster_, summary_dirty_);
  summary_dirty_ = false;
  return summary_;
}

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
    epidemic_.OnContact(r.node->name(), r.from, r.to, /*peer_already_knew=*/false, rng_);
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
    epidemic_.OnContact(pkt.Name(f), f.from_version, f.max_version, f.knew != 0, rng_);
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

// ---- Receive path ------------------------------------------------------------------------

void Engine::OnPacket(TimeUs now_us, const Endpoint& from, std::span<const uint8_t> datagram) {
  last_now_us_ = std::max(last_now_us_, now_us);
  in_packet_ = true;
  reply_to_ = from;
  verified_ = true;
  reply_allowance_ = 0;
  Dispatch(now_us, from, datagram);
  in_packet_ = false;
}

// Sealed datagrams are opened (and replay-checked) before any decoding, so nothing from a
// sender without the key reaches the decoder; failures are counted, never answered.
bool Engine::Unseal(std::span<const uint8_t> datagram, std::span<const uint8_t>* plain) {
  const SecurityConfig& sec = config_.security;
  wire::PacketHeader h;
  const bool sealed = wire::PeekHeader(datagram, &h) && (h.flags & wire::kFlagEncrypted) != 0;
  if (!sealed) {
    if (!sec.keyring.empty()) {
      if (sec.verify_incoming) {
        SecDrop(SecurityDrop::kPlaintextRefused);
        return false;
      }
      ++stats_.security.plaintext_in;
    }
    *plain = datagram;
    return true;
  }
  if (sec.keyring.empty()) {
    SecDrop(SecurityDrop::kNoKeyring);
    return false;
  }
  wire::Opened opened;
  wire::OpenError err;
  if (!wire::Open(datagram, sec.keyring, open_buf_, &opened, &err)) {
    switch (err) {
      case wire::OpenError::kTruncated: SecDrop(SecurityDrop::kTruncated); break;
      case wire::OpenError::kBadKey: SecDrop(SecurityDrop::kBadKey); break;
      case wire::OpenError::kCipherUnavailable: SecDrop(SecurityDrop::kCipherUnavailable); break;
      case wire::OpenError::kAuthFailed: SecDrop(SecurityDrop::kAuthFailed); break;
    }
    return false;
  }
  // Only after the tag verified: a forger cannot move anyone's window.
  const ReplayVerdict v = replay_.Accept(opened.sender_id, opened.counter);
  stats_.security.replay_evictions = replay_.evictions();
  if (v != ReplayVerdict::kFresh) {
    SecDrop(v == ReplayVerdict::kReplayed ? SecurityDrop::kReplayed : SecurityDrop::kStale);
    return false;
  }
  ++stats_.security.opened_in;
  *plain = opened.datagram;
  return true;
}

// Compression sits inside the seal (encode -> compress -> seal; open -> inflate -> decode),
// so a compressed payload is authenticated before the decompressor sees it.
bool Engine::Inflate(std::span<const uint8_t>* plain) {
  wire::PacketHeader h;
  if (compressor_ == nullptr || !wire::PeekHeader(*plain, &h) ||
      (h.flags & wire::kFlagCompressed) == 0) {
    return true;
  }
  if (h.payload_bytes != plain->size() - wire::kHeaderBytes) {
    ++stats_.decode_drops[static_cast<size_t>(wire::DropReason::kBadLength)];
    return false;
  }
  std::span<const uint8_t> out;
  wire::DecompressError err;
  if (!compressor_->Decompress(*plain, inflate_buf_, &out, &err)) {
    ++stats_.decode_drops[static_cast<size_t>(wire::DropReason::kBadCompression)];
    return false;
  }
  CompressionStats& cs = stats_.compression;
  ++cs.compressed_in;
  cs.wire_bytes_in += plain->size() - wire::kHeaderBytes;
  cs.plain_bytes_in += out.size() - wire::kHeaderBytes;
  *plain = out;
  return true;
}

std::span<const uint8_t> Engine::Deflate(const Endpoint& to, std::span<const uint8_t> packet) {
  if (compressor_ == nullptr || !zstd_peers_.contains(to)) return packet;
  uint8_t* start = const_cast<uint8_t*>(packet.data());  // our own send slot
  const size_t n = compressor_->CompressInPlace(std::span<uint8_t>(start, packet.size()),
                                                packet.size());
  CompressionStats& cs = stats_.compression;
  if (n == packet.size()) {
    ++cs.incompressible_out;
    return packet;
  }
  ++cs.compressed_out;
  cs.plain_bytes_out += packet.size() - wire::kHeaderBytes;
  cs.wire_bytes_out += n - wire::kHeaderBytes;
  return packet.first(n);
}

// The address's latest datagram says whether it decompresses (bounded set; a peer that
// restarts without compression is dropped from it by its first datagram).
void Engine::NotePeerCompression(const Endpoint& from, bool zstd) {
  if (!zstd) {
    zstd_peers_.erase(from);
    return;
  }
  if (zstd_peers_.contains(from)) return;
  if (zstd_peers_.size() >= std::max<size_t>(1, config_.compression.max_peers)) {
    zstd_peers_.erase(zstd_peers_.begin());
  }
  zstd_peers_.insert(from);
}

void Engine::Dispatch(TimeUs now_us, const Endpoint& from, std::span<const uint8_t> datagram) {
  std::span<const uint8_t> plain;
  if (!Unseal(datagram, &plain)) return;
  if (!Inflate(&plain)) return;
  wire::DecodedPacket pkt;
  wire::DropReason reason;
  if (!wire::Decode(plain, decode_limits_, &pkt, &reason)) {
    ++stats_.decode_drops[static_cast<size_t>(reason)];
    return;
  }
  const size_t t = static_cast<size_t>(pkt.type);
  ++stats_.packets_in[t];
  stats_.bytes_in[t] += datagram.size();
  if (config_.security.guard.enabled && !guard_.Verified(from, pkt.echo, now_us)) {
    // Replies to this datagram may total at most 3x its size (engine/reply_guard.h).
    verified_ = false;
    reply_allowance_ = guard_.Allowance(from, datagram.size(), now_us);
    ++stats_.security.unverified_in;
    stats_.security.unverified_bytes_in += datagram.size();
  }
  if (!Accept(pkt, from, now_us)) return;
  // Anything that may move a node's (max, gc, leaving) invalidates the summary hashes.
  if (pkt.num_parts() > 0 || !pkt.digest.entries.empty()) summary_dirty_ = true;
  switch (pkt.type) {
    case wire::MessageType::kSyn:
      HandleSyn(pkt, from);
      // Our welcome request was refused for want of a cookie; this Syn brought one.
      if (welcome_.join.active && welcome_.join.awaiting_cookie && from == welcome_.join.peer &&
          echoes_.contains(from)) {
        SendWelcomeRequest(/*resync=*/true);
      }
      break;
    case wire::MessageType::kSynAck:
      HandleSynAck(pkt, from, now_us);
      break;
    case wire::MessageType::kAck:
      applier_.Apply(pkt, now_us);
      summary_dirty_ = true;
      // The summary handshake's third message asks for the delta we hold beyond its digest.
      if (pkt.digest.present &&
          Send(from, Outgoing{.type = wire::MessageType::kAck, .peer = &pkt, .skip_if_empty = true})) {
        SendContinuations(from, pkt);
      }
      break;
    case wire::MessageType::kRumor:
      HandleRumor(pkt, from, now_us);
      break;
    case wire::MessageType::kRumorAck:
      HandleRumorAck(pkt, from, now_us);
      break;
    case wire::MessageType::kWelcomeRequest:
      HandleWelcomeRequest(pkt, from, now_us);
      break;
    case wire::MessageType::kWelcomeChunk:
      HandleWelcomeChunk(pkt, from, now_us);
      break;
    case wire::MessageType::kProbe:
      HandleProbe(pkt, from, now_us);
      break;
    case wire::MessageType::kVerdict:
      HandleVerdict(pkt, from, now_us);
      break;
    default:
      Drop(EngineDrop::kUnexpected);
      break;
  }
}

// Cluster and shard checks, then membership bookkeeping for the sender and digest.
bool Engine::Accept(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us) {
  if (pkt.type == wire::MessageType::kBadCluster) {
    ++stats_.bad_cluster_received;
    return false;
  }
  if (pkt.header.cluster_hash != cluster_hash_ || pkt.cluster_id != config_.cluster_id) {
    Drop(EngineDrop::kClusterMismatch);
    if (pkt.type == wire::MessageType::kSyn) {
      Send(from, Outgoing{.type = wire::MessageType::kBadCluster});
    }
    return false;
  }
  if (pkt.shard_count != config_.shard_count || pkt.header.shard != config_.shard) {
    Drop(EngineDrop::kShardMismatch);
    return false;
  }
  // Remember the sender's cookie for us, to echo in what we send it (bounded).
  if (pkt.cookie != 0) {
    auto it = echoes_.find(from);
    if (it != echoes_.end()) {
      it->second = pkt.cookie;
    } else {
      if (echoes_.size() >= std::max<size_t>(1, config_.security.max_echo_cookies)) {
        echoes_.erase(echoes_.begin());
      }
      echoes_.emplace(from, pkt.cookie);
    }
  }
  if (compressor_ != nullptr) {
    NotePeerCompression(from, (pkt.sender->flags & wire::kNodeZstd) != 0);
  }
  ObserveSender(pkt, from, now_us);
  if (pkt.type == wire::MessageType::kSyn || pkt.type == wire::MessageType::kSynAck ||
      (pkt.type == wire::MessageType::kAck && pkt.digest.present)) {
    ObserveDigest(pkt, now_us);
    if (!pkt.digest.entries.empty()) summary_dirty_ = true;
    ObserveSummary(pkt, now_us);
  }
  return true;
}

// DESIGN §2 digest scale: heartbeats by position (when both sides order the same nodes),
// the sender's own heartbeat always, and the ack frontier from the bucket holding us.
void Engine::ObserveSummary(const wire::DecodedPacket& pkt, TimeUs now_us) {
  const wire::SummaryView& s = pkt.digest.summary;
  if (!s.present) return;
  NodeState* sender = cluster_.Find(pkt.Name(*pkt.sender));
  if (sender != nullptr && sender->generation() != pkt.sender->generation) sender = nullptr;
  if (sender != nullptr && s.sender_heartbeat > sender->heartbeat) {
    sender->heartbeat = s.sender_heartbeat;
    membership_.OnHeartbeat(*sender, now_us, events_);
  }
  const SummaryIndex& idx = Summary();
  const NodeState& self = cluster_.self();
  if (s.membership == idx.membership() && s.count == idx.count() && idx.count() > 0) {
    const auto& order = idx.order();
    for (size_t i = 0; i < s.heartbeats.size(); ++i) {
      NodeState* n = order[(s.hb_base + i) % order.size()];
      if (n == &self || n == sender) continue;
      // 16 bits of a counter that rises once a round: newer when ahead by under half the
      // ring (hours of rounds), else an older copy.
      const uint16_t ahead = static_cast<uint16_t>(s.heartbeats[i] - static_cast<uint16_t>(n->heartbeat));
      if (ahead == 0 || ahead >= 0x8000) continue;
      n->heartbeat += ahead;
      membership_.OnHeartbeat(*n, now_us, events_);
    }
  }
  // Ack frontier (seed 002): an equal bucket holding us means the sender has our max.
  if (sender != nullptr && !s.buckets.empty()) {
    const size_t b = SummaryIndex::BucketOf(idx.self_id(), s.buckets.size());
    if (s.buckets[b] == idx.BucketHash(s.buckets.size(), b)) {
      sender->acked_self_max = self.max_version();
    }
  }
}

void Engine::ObserveSender(const wire::DecodedPacket& pkt, const Endpoint& /*from*/,
                           TimeUs /*now_us*/) {
  const std::string_view name = pkt.Name(*pkt.sender);
  if (name == cluster_.self().name() && pkt.sender->generation > cluster_.self().generation()) {
    Drop(EngineDrop::kSelfConflict);
  }
}

// Learns nodes, generations, addresses and heartbeats from a digest (DESIGN §5).
void Engine::ObserveDigest(const wire::DecodedPacket& pkt, TimeUs now_us) {
  for (const wire::DigestEntry& e : pkt.digest.entries) {
    const std::string_view name = pkt.Name(e.node);
    if (name == cluster_.self().name()) {
      if (e.node.generation > cluster_.self().generation()) Drop(EngineDrop::kSelfConflict);
      if (e.node.generation == cluster_.self().generation()) {
        NodeState* sender = cluster_.Find(pkt.Name(*pkt.sender));
        if (sender != nullptr && sender->generation() == pkt.sender->generation) {
          sender->acked_self_max = e.max_version;
        }
      }
      continue;
    }
    NodeState* node = cluster_.Find(name);
    if (node != nullptr && e.node.generation < node->generation()) continue;
    const Endpoint ep = wire::NodeRefEndpoint(e.node);
    if (node == nullptr || e.node.generation > node->generation()) {
      // seed 002: a node we forgot stays forgotten, whoever still gossips it; only a new
      // generation (a restart) comes back.
      if (node == nullptr && cluster_.IsForgotten(name, e.node.generation, e.heartbeat, now_us)) {
        Drop(EngineDrop::kForgotten);
        continue;
      }
      if (node == nullptr && cluster_.size() >= config_.limits.max_nodes) {
        Drop(EngineDrop::kNodeLimit);
        continue;
      }
      bool replaced = false;
      node = cluster_.Upsert(name, e.node.generation, &replaced);
      membership_.OnDiscovered(*node, now_us);
      if (ep.valid()) node->endpoint = ep;
      node->heartbeat = e.heartbeat;
      if (events_ != nullptr) {
        events_->OnMember(*node, replaced ? MemberEvent::kRestarted : MemberEvent::kJoined);
      }
    }
    if (ep.valid()) node->endpoint = ep;
    // Ack frontier (seed 002): what the sender holds of our map, and the gc an owner
    // announces for its own map.
    if (name == pkt.Name(*pkt.sender) && e.node.generation == node->generation()) {
      node->owner_gc = std::max(node->owner_gc, e.last_gc_version);
    }
    // Leaving is sticky within a generation: a stale relayed entry must not undo it.
    if ((e.node.flags & wire::kNodeLeaving) != 0) node->leaving = true;
    if (e.heartbeat > node->heartbeat) {
      node->heartbeat = e.heartbeat;
      membership_.OnHeartbeat(*node, now_us, events_);
    }
  }
}

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
    Send(from, Outgoing{.type = wire::MessageType::kSynAck,
                        .digest = true,
                        .peer_node = initiator,
                        .summary = true,
                        // Heartbeats flow both ways (push-pull): with Syns alone they
                        // spread as a push epidemic, whose long tail showed up as false
                        // suspicions among 250 processes. Positional only when the
                        // initiator can read them (equal memberships).
                        .heartbeats = same_members,
                        .fill_rest = !same_members,
                        .scoped = true,
                        .scope_buckets = buckets,
                        .scope = scope_});
    return;
  }
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
  applier_.Apply(pkt, now_us);
  MaybeStartWelcome(pkt, from);
  if (config_.epidemic.anti_entropy == AntiEntropyMode::kPull) return;
  const wire::DigestView& d = pkt.digest;
  if (d.summary.present) {
    // Compact digest: nothing differs, or send what the peer misses in its listed buckets
    // with our own entries for them, so it can answer with what we miss.
    if (d.scope_buckets != 0 && d.scope.empty()) return;
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
          Summary(), out.summary_buckets, out.heartbeats ? kMaxSummaryHeartbeats : 0,
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
