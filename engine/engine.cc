// The Engine (engine/engine.h): construction, local writes and the gossip round. The
// receive path is in engine_receive.cc, the summary handshake in engine_handshake.cc,
// rumor glue in engine_rumor.cc, compression glue in engine_compress.cc, the send path in
// engine_send.cc, welcome in welcome.cc, probes in probe.cc.
#include "engine/engine.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {

const char* EngineDropName(EngineDrop d) {
  switch (d) {
    case EngineDrop::kClusterMismatch: return "cluster_mismatch";
    case EngineDrop::kShardMismatch: return "shard_mismatch";
    case EngineDrop::kShardCountMismatch: return "shard_count_mismatch";
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
      guard_(&config_.security.guard, CookieSecret(config_.security, rng_)) {
  cluster_.self().endpoint = config_.advertise;
  // Young-node prior (engine/membership.h): by default a peer is expected to show a new
  // heartbeat once per gossip interval.
  prior_follows_interval_ = config_.membership.initial_interval_us <= 0;
  if (prior_follows_interval_) {
    config_.membership.initial_interval_us = std::max<TimeUs>(config_.gossip_interval_us, 1);
  }
  // The owner validates the cipher; an engine asked for one this CPU lacks still works.
  if (!wire::CipherAvailable(cipher_)) cipher_ = wire::Cipher::kXChaCha20Poly1305;
  seal_sender_id_ = config_.security.sender_id != 0 ? config_.security.sender_id : rng_();
  // A random start keeps AES-GCM's 96-bit nonces apart even when two incarnations share
  // the low 32 bits of sender_id (wire/seal.h).
  seal_counter_ = rng_() >> 2;
  if (config_.compression.mode == wire::Compression::kZstd) {
    int& level = config_.compression.level;
    if (level == 0) level = wire::kDefaultZstdLevel;
    level = std::clamp(level, wire::kMinZstdLevel, wire::kMaxZstdLevel);
    compressor_ = std::make_unique<wire::Compressor>(config_.compression.level,
                                                     wire::kMaxUdpPayloadBytes);
    inflate_buf_.resize(wire::kMaxUdpPayloadBytes + 64);
  }
  // Nodes take their quiet handshakes on different rounds, so a quiet cluster's load is
  // even from round to round (from the name, not rng_: the other draws stay as they were).
  quiet_phase_ = SummaryNodeId(config_.node_name, config_.generation);
  summary_.set_liveness(BoundedQuiet());
  digest_builder_.set_liveness(BoundedQuiet());
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
  MarkBusy();
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
  MarkBusy();
}

// ---- Rounds ------------------------------------------------------------------------------

void Engine::OnTick(TimeUs now_us) {
  last_now_us_ = std::max(last_now_us_, now_us);
  ++stats_.rounds;
  if (prior_follows_interval_) {
    config_.membership.initial_interval_us = std::max<TimeUs>(config_.gossip_interval_us, 1);
  }
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
  // A shard other than 0 takes liveness from shard 0 (engine/member_feed.h): nodes it
  // learned since the last round get the published state before peers are chosen.
  if (config_.membership.external) member_view_.Sync(cluster_, membership_, now_us, events_);
  ProbeTick(now_us);  // local health first: a stalled observer rebases before judging
  // Quiet rounds bring fanout * quiet_syn_period times fewer heartbeat vectors, and
  // unanswered Syns (not phi) are what notices a crash then: phi waits that much longer.
  bool quiet = Quiet();
  const double silence_scale = SilenceScale(quiet);
  membership_.Update(cluster_, now_us, events_, config_.limits.max_nodes, probe_.health,
                     silence_scale);
  const MembershipConfig& mc = config_.membership;
  RunProbes(now_us);
  // Liveness news wakes a quiet node for this round already: a probe in its indirect
  // round (a full round brings the suspect's newer heartbeat from any of `fanout` peers,
  // which clears a suspicion born of lost packets), a verdict it reached, accepted or
  // refuted. Under heavy loss a node therefore stays busy while it has doubts.
  if (quiet && LivenessNews()) quiet = Quiet();
  int fanout = config_.fanout;
  bool handshake = true;
  if (quiet) {
    ++stats_.quiet_rounds;
    const uint64_t period = static_cast<uint64_t>(std::max(config_.quiet_syn_period, 1));
    handshake = (stats_.rounds + quiet_phase_) % period == 0;
    fanout = std::min(fanout, 1);
  }
  // ChoosePeers runs even at fanout 0: a node that knows nobody still contacts a seed.
  if (handshake) {
    membership_.ChoosePeers(cluster_, fanout, config_.seeds, rng_, &peers_);
    // Copy: SendSyn may not reuse peers_, but rumor sending below does.
    const std::vector<Endpoint> peers = peers_;
    for (size_t i = 0; i < peers.size(); ++i) {
      SendSyn(peers[i], quiet);
      // SWIM's one ping per period: only the round's first (a uniformly chosen live peer)
      // is awaited, so loss costs at most one extra ping per round.
      if (i == 0 && mc.confirm && mc.probe_unanswered_syn &&
          probe_.syn_waits.size() < kMaxSynWaits) {
        probe_.syn_waits.push_back(SynWait{peers[i], now_us});
      }
    }
  }
  // Hot verdicts ride the round unless they have the rumor clock (engine_verdict.cc).
  if (!VerdictCyclesOwnClock()) VerdictCycle();
  const EpidemicConfig& ec = config_.epidemic;
  // With decoupled rumor cycles, hot rumors have their own clock (OnRumorCycle); the round
  // only carries a pulling node's requests while it has nothing hot.
  const bool own_cycles = ec.rumor_interval_us > 0 && !epidemic_.monger().empty();
  if (ec.rumor && !own_cycles) {
    // The last round's contacts, judged together (Demers' cycle), before this round's.
    epidemic_.EndRound(rng_);
    const bool pulls = ec.rumor_options.variant != RumorVariant::kPush;
    if (pulls || !epidemic_.monger().empty()) {
      membership_.ChoosePeers(cluster_, ec.rumor_fanout, {}, rng_, &peers_);
      const std::vector<Endpoint> rumor_peers = peers_;
      for (const Endpoint& to : rumor_peers) SendRumors(to);
    }
  }
}

TimeUs Engine::RumorCycleDueUs(TimeUs now_us) {
  const EpidemicConfig& ec = config_.epidemic;
  // Hot verdicts keep the clock running with or without key-value rumors (engine_verdict.cc).
  const bool verdicts = VerdictCyclesOwnClock() && !verdicts_.empty();
  if (!verdicts && (!ec.rumor || ec.rumor_interval_us <= 0 || epidemic_.monger().empty())) {
    rumor_cycle_due_us_ = 0;
    return 0;
  }
  if (rumor_cycle_due_us_ == 0) rumor_cycle_due_us_ = now_us + ec.rumor_interval_us;
  return rumor_cycle_due_us_;
}

// One rumor cycle (Demers et al. §1.4) on its own clock: the previous cycle's contacts are
// judged together (feedback + counter: k cycles in a row where every peer already knew),
// then what is still hot goes to rumor_fanout random peers. The cycles stop by themselves
// when every rumor has lost interest, so the traffic per update is bounded by k, not by
// time.
void Engine::OnRumorCycle(TimeUs now_us) {
  last_now_us_ = std::max(last_now_us_, now_us);
  rumor_cycle_due_us_ = 0;
  if (VerdictCyclesOwnClock()) VerdictCycle();
  const EpidemicConfig& ec = config_.epidemic;
  if (!ec.rumor || ec.rumor_interval_us <= 0) return;
  epidemic_.EndRound(rng_);
  if (epidemic_.monger().empty()) return;
  ++stats_.rumor_cycles;
  membership_.ChoosePeers(cluster_, ec.rumor_fanout, {}, rng_, &peers_);
  const std::vector<Endpoint> rumor_peers = peers_;
  for (const Endpoint& to : rumor_peers) SendRumors(to);
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
      frontier = std::min(frontier, node->acked_self_max());
      ++live;
    }
    NodeState& self = cluster_.self();
    if (live > 0) stats_.tombstones_gced_frontier += self.GcTombstonesUpTo(frontier);
    for (NodeState* node : cluster_.nodes()) {
      if (node != &self && node->owner_gc() > 0) {
        stats_.tombstones_gced_frontier +=
            node->GcTombstonesUpTo(std::min(node->owner_gc(), node->max_version()));
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

void Engine::SendSyn(const Endpoint& to, bool quiet) {
  const AntiEntropyMode mode = config_.epidemic.anti_entropy;
  if (config_.digest_summaries && mode == AntiEntropyMode::kPushPull) {
    const size_t n = Summary().count();
    size_t buckets = SummaryIndex::ChooseBuckets(n, config_.max_packet_bytes);
    size_t heartbeats = kMaxSummaryHeartbeats;
    if (quiet) {
      // Bounded quiet handshake (docs/detection.md): a power-of-two bucket count divides
      // the fine table like any other, so the peer compares it as it would a full one.
      if (config_.quiet_buckets > 0) {
        buckets = std::min(buckets, std::bit_floor(config_.quiet_buckets));
      }
      if (config_.quiet_heartbeats > 0) heartbeats = config_.quiet_heartbeats;
    }
    Send(to, Outgoing{.type = wire::MessageType::kSyn,
                      .flags = static_cast<uint8_t>(mode),
                      .digest = true,
                      .summary = true,
                      .summary_buckets = buckets,
                      .max_heartbeats = heartbeats,
                      .no_entries = true});
    return;
  }
  Send(to, Outgoing{.type = wire::MessageType::kSyn,
                    .flags = static_cast<uint8_t>(mode),
                    .digest = true});
}

// Quiet when nothing was exchanged for quiet_after_rounds: no local write (OnLocalWrite),
// no part applied from anyone, no membership change, no hot rumor, no welcome, and no
// handshake that found differing buckets (HandleSyn, HandleSynAck).
bool Engine::Quiet() {
  const int after = config_.quiet_after_rounds;
  if (after <= 0 || !config_.digest_summaries ||
      config_.epidemic.anti_entropy != AntiEntropyMode::kPushPull) {
    return false;
  }
  const DeltaApplier::Stats& a = applier_.stats();
  const uint64_t applied = a.parts[static_cast<size_t>(PartOutcome::kApplied)] +
                           a.parts[static_cast<size_t>(PartOutcome::kReset)];
  if (applied != applied_seen_ || cluster_.epoch() != epoch_seen_ ||
      !epidemic_.monger().empty() || welcome_.join.active || !welcome_.serving.empty() ||
      LivenessNews()) {
    applied_seen_ = applied;
    epoch_seen_ = cluster_.epoch();
    MarkBusy();
  }
  return stats_.rounds >= busy_round_ + static_cast<uint64_t>(after);
}

// Verdicts reached, applied or refuted since the last call, or a probe in its indirect
// round (the suspect missed a ping too). A suspicion alone does not wake the node: at 5%
// loss one quiet Syn in ten goes unanswered, and its ping settles it within an interval.
bool Engine::LivenessNews() {
  const ProbeStats& p = probe_.stats;
  const uint64_t count =
      p.confirmed_dead + p.verdicts_applied + p.refutations_sent + p.refutations_applied;
  const bool doubt = std::any_of(probe_.pending.begin(), probe_.pending.end(),
                                 [](const PendingProbe& q) {
                                   // A Syn-born probe starts at ping-req: doubt once
                                   // its first round went unanswered too.
                                   return q.indirect && (!q.syn_born || q.rounds >= 2);
                                 });
  const bool news = count != liveness_seen_ || doubt;
  liveness_seen_ = count;
  if (news) MarkBusy();
  return news;
}

// Quiet rounds bring fanout * quiet_syn_period times fewer heartbeat vectors, and a
// bounded quiet Syn (quiet_heartbeats) carries only a slice of each: phi's thresholds are
// stretched by the arrivals lost, so phi stays a far backstop and probes decide. The slice
// factor applies while quiet Syns are the cluster's rhythm: also to a node woken for a
// round or two, whose peers' heartbeats reached it (and its peers) only slice by slice.
double Engine::SilenceScale(bool quiet) {
  double scale = 1.0;
  if (quiet) {
    scale = static_cast<double>(std::max(config_.fanout, 1) * std::max(config_.quiet_syn_period, 1));
  }
  const size_t k = config_.quiet_heartbeats;
  if (k > 0 && config_.quiet_after_rounds > 0 && stats_.quiet_rounds > 0) {
    const size_t n = cluster_.size();
    if (n > k) {
      scale *= static_cast<double>(n) / static_cast<double>(k);
      if (!quiet) scale *= std::max(config_.quiet_syn_period, 1);
    }
  }
  return scale;
}

const SummaryIndex& Engine::Summary() {
  if (BoundedQuiet() && membership_.state_changes() != states_seen_) {
    states_seen_ = membership_.state_changes();
    summary_dirty_ = true;
  }
  summary_.Refresh(cluster_, summary_dirty_);
  summary_dirty_ = false;
  return summary_;
}

}  // namespace scuttle
