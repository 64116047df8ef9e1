// Engine: one sans-IO Scuttlebutt instance (DESIGN §2, §7).
//
// The driver (io/ event loop, or the simulator) owns time, sockets and randomness seeds:
//   OnPacket(now, from, datagram)  — a received datagram; replies go to the PacketSink
//   OnTick(now)                    — one gossip round: heartbeat, TTL expiry, GC, Syns
//   Set / SetWithTtl / Delete      — local writes to this node's own map
// Outgoing datagrams are encoded straight into buffers the PacketSink lends (a transport
// send slot), and key/member changes go to the EventSink.
//
// Handshake (seed 000, chitchat's three-way variant):
//   A → B  Syn{digest_A}
//   B → A  SynAck{digest_B, delta A is missing per digest_A}
//   A → B  Ack{delta B is missing per digest_B}
//   BadCluster answers a Syn from another cluster; nothing else is exchanged.
#ifndef SCUTTLE_ENGINE_ENGINE_H_
#define SCUTTLE_ENGINE_ENGINE_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "engine/cluster.h"
#include "engine/delta_applier.h"
#include "engine/delta_builder.h"
#include "engine/digest.h"
#include "engine/epidemic.h"
#include "engine/events.h"
#include "engine/member_feed.h"
#include "engine/membership.h"
#include "engine/probe.h"
#include "engine/replay.h"
#include "engine/reply_guard.h"
#include "engine/rng.h"
#include "engine/types.h"
#include "engine/verdict_rumor.h"
#include "engine/welcome.h"
#include "wire/compress.h"
#include "wire/endpoint.h"
#include "wire/packet.h"
#include "wire/seal.h"

namespace scuttle {

// Lends send buffers and takes finished datagrams. A transport implements it so packets
// are encoded in place; the simulator implements it with plain vectors.
class PacketSink {
 public:
  virtual ~PacketSink() = default;
  // A writable buffer of at least `min_bytes`, or an empty span when none is free
  // (the engine counts the drop and skips that packet).
  virtual std::span<uint8_t> Acquire(size_t min_bytes) = 0;
  // Queues `packet` (a sub-span of the last acquired buffer) to `to`.
  virtual void Commit(const Endpoint& to, std::span<const uint8_t> packet) = 0;
  // Returns the last acquired buffer unused.
  virtual void Abort() = 0;
};

// Datagram security (DESIGN §8): AEAD sealing with a keyring, replay windows, and the
// amplification guard (engine/reply_guard.h), which is on with or without a key.
struct SecurityConfig {
  // Empty: datagrams go in clear. Otherwise each is sealed with the primary key and opened
  // with whichever installed key sealed it (wire/seal.h).
  wire::Keyring keyring;
  // memberlist's migration switches (plaintext <-> encrypted without downtime). With a
  // keyring: verify_incoming refuses plaintext datagrams; verify_outgoing seals.
  bool verify_incoming = true;
  bool verify_outgoing = true;
  wire::Cipher cipher = wire::Cipher::kAuto;
  // Nonce prefix of this incarnation; 0 = drawn from the engine's rng (the daemon passes
  // one from the OS CSPRNG, the simulator keeps runs reproducible).
  uint64_t sender_id = 0;
  // Cookie key; all zero = drawn from the engine's rng (same reasoning).
  std::array<uint8_t, 16> cookie_secret{};
  // Bound of the replay table (engine/replay.h).
  size_t max_replay_senders = 4096;
  // Bound of the cookies we remember to echo (one per peer address).
  size_t max_echo_cookies = 16384;
  ReplyGuardConfig guard;
};

// Why a datagram was dropped before decoding (sealing, replay). Never answered.
enum class SecurityDrop : uint8_t {
  kPlaintextRefused,   // clear datagram while a keyring is set and verify_incoming is on
  kNoKeyring,          // sealed datagram but we hold no key
  kTruncated,          // too short for a sealed datagram, or its length field disagrees
  kBadKey,             // sealed with a key we do not hold
  kAuthFailed,         // tag did not verify (wrong key material, tampered, corrupted)
  kCipherUnavailable,  // a cipher this build/CPU cannot open
  kReplayed,           // (sender, counter) seen before
  kStale,              // counter below the replay window
  kCount,
};
inline constexpr size_t kSecurityDropCount = static_cast<size_t>(SecurityDrop::kCount);
const char* SecurityDropName(SecurityDrop d);

struct SecurityStats {
  uint64_t drops[kSecurityDropCount] = {};
  uint64_t sealed_out = 0;
  uint64_t opened_in = 0;
  uint64_t plaintext_in = 0;   // clear datagrams accepted while a keyring is set
  uint64_t unverified_in = 0;  // datagrams from a source without a valid cookie echo
  uint64_t unverified_bytes_in = 0;
  uint64_t unverified_replies = 0;        // replies sent within the 3x allowance
  uint64_t unverified_bytes_out = 0;
  uint64_t replies_suppressed = 0;        // replies not sent: the allowance was too small
  uint64_t welcome_refused = 0;           // WelcomeRequests from unverified sources
  uint64_t replay_evictions = 0;
};

inline constexpr int kMaxDatagramsPerReply = 64;

// Optional zstd compression of datagram payloads (wire/compress.h), negotiated per peer:
// a node with it on sets wire::kNodeZstd in the sender reference of everything it sends,
// and compresses only toward addresses whose last datagram carried that bit. A node with
// it off neither advertises nor compresses, and drops compressed datagrams as an older
// build does (`bad_flags`), so mixed clusters need nothing else.
struct CompressionConfig {
  wire::Compression mode = wire::Compression::kNone;
  // 1..wire::kMaxZstdLevel, or a fast level wire::kMinZstdLevel..-1 (0: the default).
  int level = wire::kDefaultZstdLevel;
  // Bound of the peer addresses remembered as able to decompress.
  size_t max_peers = 16384;
};

struct CompressionStats {
  uint64_t compressed_out = 0;     // datagrams sent compressed
  uint64_t plain_bytes_out = 0;    // their payload before compression
  uint64_t wire_bytes_out = 0;     // ... and after
  uint64_t incompressible_out = 0; // toward a capable peer, sent plain: no bytes saved
  uint64_t compressed_in = 0;      // datagrams received compressed and decompressed
  uint64_t wire_bytes_in = 0;
  uint64_t plain_bytes_in = 0;
};

struct EngineConfig {
  std::string cluster_id = "scuttle";
  std::string node_name;
  Generation generation = 1;
  Endpoint advertise;
  uint16_t shard = 0;
  uint16_t shard_count = 1;
  size_t max_packet_bytes = wire::kMaxUdpPayloadBytes;
  // A delta that does not fit one max_packet_bytes datagram goes on in up to this many
  // datagrams per reply (1..kMaxDatagramsPerReply): digest-less Acks, each a standalone
  // truncated-prefix delta (seed 000), against a projection of the peer advanced by what
  // the previous ones carry. The transport hands them to the kernel in one flush (and runs
  // of equal size in one UDP GSO send), so max_packet_bytes can be the path MTU without a
  // round per 1,400 bytes. Old peers apply the extra Acks like any Ack. 1 = off.
  int max_datagrams_per_reply = 1;
  int fanout = 3;
  TimeUs gossip_interval_us = 1 * kUsPerSec;
  // Tombstones older than this are removed by GC (seed 000; chitchat's only rule).
  TimeUs tombstone_grace_us = 3600 * kUsPerSec;
  Limits limits;
  std::vector<Endpoint> seeds;
  MembershipConfig membership;
  EpidemicConfig epidemic;
  // seed 002: drop tombstones as soon as every live peer has them (the time-based
  // tombstone_grace stays as the upper bound).
  bool frontier_gc = true;
  WelcomeConfig welcome;  // seed 002 bulk join (engine/welcome.h)
  // DESIGN §2 digest scale: push-pull Syns carry per-bucket hashes and 16-bit heartbeats
  // instead of every node's digest entry; only differing buckets are listed in full.
  bool digest_summaries = true;
  // Quiet rounds (#16 idle cost). A node whose exchanges found nothing to send for
  // `quiet_after_rounds` rounds (equal bucket hashes both ways, nothing applied, no local
  // write, no hot rumor, no membership change) starts one handshake every
  // `quiet_syn_period` rounds instead of `fanout` every round; the first sign of a
  // difference restores the full fanout at the next tick. 0 = never quiet. Needs
  // push-pull with digest_summaries (the bucket hashes tell "nothing differs").
  //
  // Why this is safe (SWIM, Das et al. 2002 §3: one probe per member per period is
  // enough once a failed probe is confirmed, and costs O(1) per member whatever N is):
  //   - deaths are decided by probes and verdicts (engine/probe.h), not by every node's
  //     phi crossing a threshold, so heartbeats need not reach everyone every round. The
  //     quiet handshake is itself a probe: its Syn is the ping, the SynAck the ack
  //     (MembershipConfig::probe_unanswered_syn), so a crash is still noticed by someone
  //     within a few rounds at any N, and the verdict reaches the rest in O(log N) hops;
  //   - heartbeats still ride in every Syn and SynAck (positional, rotating beyond
  //     kMaxSummaryHeartbeats), so phi keeps its backstop role on a slower rhythm;
  //   - updates still spread at full speed (seed 001): a write, or a node that learns
  //     something new, gossips at `fanout` again, and a quiet node that receives a Syn
  //     whose buckets differ answers it and wakes up.
  // The price is paid in idle bytes only: about 1/(fanout * quiet_syn_period) of the
  // handshakes of a busy round.
  // Off in the library (0); scuttled turns it on by default (--quiet_rounds) with the
  // rules that make it safe: only direct evidence clears a doubt (GossipLags), probe
  // deadlines on their own timer (ProbeDueUs), ping-req rounds widened by measured loss
  // (IndirectRounds) and verdicts spread as rumors. See docs/detection.md.
  int quiet_after_rounds = 0;
  int quiet_syn_period = 2;
  // Bounded quiet handshakes (#16: idle bytes that do not grow with N; docs/detection.md).
  // A quiet Syn carries at most `quiet_heartbeats` positional heartbeats (a rotating slice
  // of the vector) and at most `quiet_buckets` bucket hashes; its SynAck answers with no
  // more heartbeats than it got. Deaths are then decided by probes (the unanswered Syn),
  // not phi: phi's thresholds are scaled by the heartbeat rate lost (N / quiet_heartbeats
  // on top of the quiet-round factor) for as long as quiet Syns are the cluster's rhythm.
  // 0 = unbounded (the whole vector up to kMaxSummaryHeartbeats, ChooseBuckets buckets).
  size_t quiet_heartbeats = 0;
  size_t quiet_buckets = 0;
  SecurityConfig security;
  CompressionConfig compression;
  uint64_t rng_seed = 1;
};

// At most this many positional heartbeats ride in one summary (they rotate beyond it), so
// a Syn stays a few KB at any cluster size.
inline constexpr size_t kMaxSummaryHeartbeats = 1024;

// Counters beyond the parts' own stats, all monotonically increasing.
enum class EngineDrop : uint8_t {
  kClusterMismatch,
  kShardMismatch,       // same shard count, another shard index: a misrouted datagram
  kShardCountMismatch,  // another shard count: another cluster (issue #18, docs/shards.md)
  kSelfConflict,    // someone gossips our name with a newer generation
  kNodeLimit,       // digest named a new node beyond Limits::max_nodes
  kNoTxBuffer,      // the sink had no free send buffer
  kEncodeFailed,    // planning bug guard: the encoder refused the packet
  kUnexpected,      // a message type we do not expect (e.g. BadCluster to a non-Syn)
  kForgotten,       // digest entry for a node generation we recently forgot (seed 002)
  kCount,
};
inline constexpr size_t kEngineDropCount = static_cast<size_t>(EngineDrop::kCount);
const char* EngineDropName(EngineDrop d);

using wire::kMessageTypeCount;

struct EngineStats {
  uint64_t packets_in[kMessageTypeCount] = {};
  uint64_t bytes_in[kMessageTypeCount] = {};
  uint64_t packets_out[kMessageTypeCount] = {};
  uint64_t bytes_out[kMessageTypeCount] = {};
  uint64_t decode_drops[wire::kDropReasonCount] = {};
  uint64_t engine_drops[kEngineDropCount] = {};
  uint64_t bad_cluster_received = 0;
  // BadCluster answers whose sender runs another shard count (docs/shards.md).
  uint64_t bad_shard_count_received = 0;
  uint64_t gc_runs = 0;
  uint64_t tombstones_gced = 0;
  uint64_t tombstones_gced_frontier = 0;
  uint64_t keys_expired = 0;
  uint64_t rounds = 0;
  uint64_t direct_mails = 0;
  uint64_t continuation_datagrams = 0;  // extra delta datagrams (max_datagrams_per_reply)
  uint64_t rumor_contacts = 0;
  uint64_t rumor_cycles = 0;    // rumor cycles run on their own clock (rumor_interval_us)
  uint64_t rumor_feedback_knew = 0;
  uint64_t rumor_feedback_new = 0;
  uint64_t quiet_rounds = 0;      // rounds ticked in quiet mode (see quiet_after_rounds)
  uint64_t syn_unanswered = 0;    // Syns whose SynAck never came: the peer became suspect
  WelcomeStats welcome;  // seed 002 bulk join (engine/welcome.h)
  SecurityStats security;
  CompressionStats compression;
};

class Engine {
 public:
  // REQUIRES: sink outlives the engine; events may be null.
  Engine(EngineConfig config, PacketSink* sink, EventSink* events);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- Driver entry points ----
  void OnPacket(TimeUs now_us, const Endpoint& from, std::span<const uint8_t> datagram);
  void OnTick(TimeUs now_us);
  // Rumor cycles decoupled from the gossip round (EpidemicConfig::rumor_interval_us > 0):
  // RumorCycleDueUs is when the driver must call OnRumorCycle next, or 0 while no rumor is
  // hot (nothing to do; the clock restarts one interval after a rumor becomes hot, so the
  // first cycle judges the contacts of the immediate push). Call it after OnPacket, OnTick,
  // OnRumorCycle and local writes; it is cheap. Hot verdicts (engine/verdict_rumor.h) keep
  // the clock running too, even with EpidemicConfig::rumor off; with rumor_interval_us 0
  // their cycles ride OnTick instead.
  TimeUs RumorCycleDueUs(TimeUs now_us);
  void OnRumorCycle(TimeUs now_us);
  // Failure confirmation between rounds: the earliest probe deadline or unanswered-Syn
  // check (0: none pending). The driver calls OnProbeTimer then, so confirming a crash is
  // not quantized to gossip rounds. Optional: OnTick runs the same steps.
  TimeUs ProbeDueUs() const;
  void OnProbeTimer(TimeUs now_us);
  // Starts a handshake with one peer (OnTick calls it for each chosen peer).
  // `quiet`: a quiet round's Syn (bounded by EngineConfig::quiet_heartbeats / quiet_buckets).
  void SendSyn(const Endpoint& to, bool quiet = false);
  // Welcome (seed 002 bulk join, engine/welcome.cc): asks `peer` for a snapshot streamed
  // as WelcomeChunks. When a session is already running, `peer` is queued (bounded) and
  // tried next. Returns true when a session started now.
  bool StartWelcome(const Endpoint& peer);
  bool welcome_active() const { return welcome_.join.active; }
  size_t welcome_serving() const { return welcome_.serving.size(); }

  // ---- Local writes (this node's own map) ----
  absl::Status Set(std::string_view key, std::string_view value, TimeUs now_us);
  absl::Status SetWithTtl(std::string_view key, std::string_view value, TimeUs ttl_us,
                          TimeUs now_us);
  absl::Status Delete(std::string_view key, TimeUs now_us);
  // The largest key+value a write may have so that it fits one packet next to a SynAck's
  // digest. Writes above it fail with InvalidArgument.
  size_t MaxKeyValueBytes() const;
  // Gossips that this node is leaving (flag in its digest entry), so peers mark it left at
  // once instead of waiting for the failure detector.
  void Leave();

  // ---- Shards (issue #18, docs/shards.md, engine/member_feed.h) ----
  // Shard 0: appends a record for every membership change since the last call (every
  // node with `full`, for a reader that fell behind).
  void CollectMembership(bool full, std::vector<MemberRecord>* out) {
    member_pub_.Collect(cluster_, full, out);
  }
  // A shard with config().membership.external: applies what shard 0 published, in order.
  void ApplyMembership(std::span<const MemberRecord> records);
  const MemberView& member_view() const { return member_view_; }

  // ---- Reads ----
  const Cluster& cluster() const { return cluster_; }
  const NodeState& self() const { return cluster_.self(); }
  const NodeState* FindNode(std::string_view name) const { return cluster_.Find(name); }
  const Membership& membership() const { return membership_; }
  const EngineConfig& config() const { return config_; }
  EngineConfig& mutable_config() { return config_; }
  const EngineStats& stats() const { return stats_; }
  const DeltaApplier::Stats& apply_stats() const { return applier_.stats(); }
  const DeltaBuilder::Stats& build_stats() const { return delta_builder_.stats(); }
  const RumorStats& rumor_stats() const { return epidemic_.monger().stats(); }
  // Failure confirmation (engine/probe.h).
  const ProbeStats& probe_stats() const { return probe_.stats; }
  int local_health() const { return probe_.health; }
  // Verdicts this node is spreading (engine/verdict_rumor.h).
  size_t hot_verdicts() const { return verdicts_.size(); }
  size_t epidemic_hot() const { return epidemic_.monger().hot_count(); }
  Rng& rng() { return rng_; }

  // Replaces the keyring (install/use/remove happen on a copy the owner keeps). Peers'
  // replay windows are unaffected: they are keyed by sender, not by key.
  void SetKeyring(wire::Keyring keyring) { config_.security.keyring = std::move(keyring); }
  void SetVerify(bool incoming, bool outgoing) {
    config_.security.verify_incoming = incoming;
    config_.security.verify_outgoing = outgoing;
  }
  wire::Cipher cipher() const { return cipher_; }
  size_t replay_senders() const { return replay_.size(); }

  // Replaces the seed list (the driver re-resolves hostnames periodically).
  void SetSeeds(std::vector<Endpoint> seeds) { config_.seeds = std::move(seeds); }
  // Changes rumor mongering's k live (seed 001: contacts before losing interest, or 1/k).
  // REQUIRES: 1 <= k <= RumorOptions::kMaxK.
  void SetRumorK(int k) {
    config_.epidemic.rumor_options.k = static_cast<uint32_t>(k);
    epidemic_.set_rumor_k(k);
  }

 private:
  // One rumor-feedback record to send: the range of `name` that a packet carried.
  struct Feedback {
    std::string_view name;
    Generation generation;
    Version from;
    Version to;
    bool knew;
  };
  // Everything one outgoing packet carries.
  struct Outgoing {
    wire::MessageType type;
    uint8_t flags = 0;
    bool digest = false;
    const wire::DecodedPacket* peer = nullptr;        // delta against this peer's digest
    const std::vector<VersionRange>* ranges = nullptr;  // or explicit version ranges
    const std::vector<Feedback>* feedback = nullptr;
    const NodeState* peer_node = nullptr;  // the initiator, always listed in a SynAck digest
    const PeerProjection* projection = nullptr;  // delta against this projection (welcome)
    const wire::WelcomeFields* welcome = nullptr;  // WelcomeRequest / WelcomeChunk fields
    bool* complete = nullptr;  // with projection: set to DeltaBuilder::complete()
    // Compact digest (DESIGN §2): a summary with `summary_buckets` bucket hashes (0: none)
    // and positional heartbeats; entries for `scope` only (of scope_buckets, 0: all);
    // or none at all (a summary-only Syn).
    bool summary = false;
    size_t summary_buckets = 0;
    bool heartbeats = true;  // positional heartbeats in the summary
    size_t max_heartbeats = kMaxSummaryHeartbeats;  // at most this many of them
    bool fill_rest = false;  // scoped: fill spare room with other nodes' entries
    bool scoped = false;
    bool no_entries = false;
    uint16_t scope_buckets = 0;
    std::span<const uint16_t> scope = {};
    const wire::ProbeFields* probe = nullptr;  // Probe / Verdict fields
    std::string_view probe_name = {};          // the probe target's name (into the blob)
    bool ack_digest = false;     // an Ack that asks for a delta back
    bool skip_if_empty = false;  // send nothing when the planned delta is empty
  };

  absl::Status CheckWrite(std::string_view key, std::string_view value) const;
  void Dispatch(TimeUs now_us, const Endpoint& from, std::span<const uint8_t> datagram);
  // Opens a sealed datagram (or admits a clear one); false when dropped (counted).
  bool Unseal(std::span<const uint8_t> datagram, std::span<const uint8_t>* plain);
  // Decompresses a compressed plaintext datagram in place of *plain; false when dropped
  // (counted `bad_compression`). Leaves it alone with compression off (Decode refuses it).
  bool Inflate(std::span<const uint8_t>* plain);
  // Compresses a finished plaintext datagram in its send slot when `to` can take it.
  std::span<const uint8_t> Deflate(const Endpoint& to, std::span<const uint8_t> packet);
  void NotePeerCompression(const Endpoint& from, bool zstd);
  void SecDrop(SecurityDrop d) { ++stats_.security.drops[static_cast<size_t>(d)]; }
  // A send that did not happen: under an unverified reply cap it is a suppressed reply.
  bool FailSend(bool capped, EngineDrop d);
  bool Accept(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us);
  void ObserveDigest(const wire::DecodedPacket& pkt, TimeUs now_us);
  void ObserveSummary(const wire::DecodedPacket& pkt, TimeUs now_us);
  // The summary index, refreshed when membership or any (max, gc, leaving) may have changed.
  const SummaryIndex& Summary();
  void ObserveSender(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us);
  void HandleSyn(const wire::DecodedPacket& pkt, const Endpoint& from);
  // After a delta-carrying reply to `peer`'s digest that was cut short: the rest, in up to
  // max_datagrams_per_reply - 1 more datagrams.
  void SendContinuations(const Endpoint& to, const wire::DecodedPacket& peer);
  void HandleSynAck(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us);
  void HandleRumor(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us);
  void HandleRumorAck(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us);
  // Applies every part, recording feedback and making newly learned updates hot rumors.
  void ApplyRumorParts(const wire::DecodedPacket& pkt, TimeUs now_us,
                       std::vector<Feedback>* feedback);
  void ApplyFeedback(const wire::DecodedPacket& pkt);
  void OnLocalWrite(Version v);
  void SendRumors(const Endpoint& to);
  void PushFresh();
  // Encodes and sends one packet. Returns false when it could not be sent (counted).
  bool Send(const Endpoint& to, const Outgoing& out);
  // After sending rumor ranges: blind removal counts the contact now.
  void AfterRumorSend(const std::vector<VersionRange>& sent);
  static bool WriteFeedback(wire::PacketEncoder& enc, BlobWriter& blob,
                            const std::vector<Feedback>& feedback);
  void Drop(EngineDrop d) { ++stats_.engine_drops[static_cast<size_t>(d)]; }
  void RunGc(TimeUs now_us);
  // Welcome (engine/welcome.cc).
  void HandleWelcomeRequest(const wire::DecodedPacket& pkt, const Endpoint& from,
                            TimeUs now_us);
  void HandleWelcomeChunk(const wire::DecodedPacket& pkt, const Endpoint& from,
                          TimeUs now_us);
  void MaybeStartWelcome(const wire::DecodedPacket& synack, const Endpoint& from);
  void SendWelcomeRequest(bool resync);
  void WelcomeTick(TimeUs now_us);
  bool WelcomeCaughtUp() const;
  void ExpireTtl(TimeUs now_us);
  // Failure confirmation (engine/probe.cc).
  void ProbeTick(TimeUs now_us);
  void StartProbes(TimeUs now_us);
  void AdvanceProbes(TimeUs now_us);
  void HandleProbe(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us);
  void HandleVerdict(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us);
  void OnProbeAck(const wire::DecodedPacket& pkt, TimeUs now_us);
  bool SendProbe(const Endpoint& to, uint8_t kind, uint32_t seq, uint64_t heartbeat,
                 const wire::NodeRef& target, std::string_view target_name);
  // Makes a verdict on `node` a hot rumor and pushes it at once to fanout random live
  // members (and to `also`, when valid); rumor cycles push it on (engine/verdict_rumor.h).
  void SpreadVerdict(const NodeState& node, uint8_t state, uint64_t heartbeat,
                     const Endpoint& also);
  // Verdict rumors (engine/engine_verdict.cc): a received push (applied by ApplyVerdict,
  // then answered with feedback) or feedback; one push of a hot verdict; one rumor cycle.
  void ApplyVerdict(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us);
  void OnVerdictFeedback(const wire::DecodedPacket& pkt);
  void PushVerdict(const HotVerdict& v, const Endpoint& also);
  void VerdictCycle();
  bool VerdictCyclesOwnClock() const { return config_.epidemic.rumor_interval_us > 0; }
  uint32_t VerdictK() const {
    return std::max<uint32_t>(config_.epidemic.rumor_options.k, kMinVerdictK);
  }
  TimeUs ProbeTimeoutUs() const;
  void SendIndirect(PendingProbe& p, const NodeState& node, TimeUs now_us);
  void RaiseHealth();
  // An awaited Syn was answered or not: the loss estimate behind IndirectRounds.
  void NoteExchange(bool answered);
  // A dead verdict (or dead-flagged entry) tagged `tag` names us: refute it (probe.cc).
  void Refute(uint64_t tag, const Endpoint& also, TimeUs now_us);
  // Quiet rounds (EngineConfig::quiet_after_rounds).
  bool Quiet();
  bool LivenessNews();
  // The factor on phi's thresholds this round (quiet rounds, bounded quiet Syns).
  double SilenceScale(bool quiet);
  // Bounded quiet handshakes are on (EngineConfig::quiet_heartbeats): liveness rides in
  // the summary hashes and digest entries.
  bool BoundedQuiet() const { return config_.quiet_heartbeats > 0 && config_.quiet_after_rounds > 0; }
  // A digest entry flagged dead (wire::kNodeDead) about `node` (nullptr: ourselves).
  void ObserveDeadEntry(NodeState* node, uint64_t heartbeat, TimeUs now_us);
  void MarkBusy() { busy_round_ = stats_.rounds; }
  // A Syn still waiting for its SynAck (MembershipConfig::probe_unanswered_syn).
  void CheckUnansweredSyns(TimeUs now_us);
  // The probe steps OnTick and OnProbeTimer run (unanswered Syns, deadlines, new suspects).
  void RunProbes(TimeUs now_us);
  // Gossip lags (quiet rounds with the handshake as the probe): a heartbeat relayed by a
  // third party may be many rounds old, so it no longer settles a doubt (docs/detection.md,
  // "Direct evidence"). Only the node's own packets, probe acks and verdicts do.
  bool GossipLags() const {
    return config_.quiet_after_rounds > 0 && config_.membership.probe_unanswered_syn &&
           config_.membership.confirm && !config_.membership.external;
  }
  // A heartbeat for `node` relayed by someone else (a digest entry or summary slot).
  void GossipHeartbeat(NodeState& node, uint64_t heartbeat, TimeUs now_us);
  // A verified packet from `from` whose sender is a member: proof that it is alive now.
  void ObserveDirect(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us);

  EngineConfig config_;
  PacketSink* sink_;
  EventSink* events_;
  Rng rng_;
  Cluster cluster_;
  Membership membership_;
  DigestBuilder digest_builder_;
  SummaryIndex summary_;
  bool summary_dirty_ = true;
  std::vector<uint16_t> scope_;  // scratch: buckets a SynAck lists
  DeltaBuilder delta_builder_;
  PeerProjection continuation_;  // scratch of SendContinuations
  DeltaApplier applier_;
  Epidemic epidemic_;
  std::vector<VersionRange> ranges_;  // scratch
  std::vector<Endpoint> peers_;       // scratch
  wire::DecodeLimits decode_limits_;
  uint32_t cluster_hash_;
  EngineStats stats_;
  TimeUs last_now_us_ = 0;
  TimeUs last_refute_us_ = -(TimeUs{1} << 60);  // Refute: the last alive push on ourselves
  TimeUs rumor_cycle_due_us_ = 0;  // 0: no rumor cycle armed (RumorCycleDueUs)
  // The young-node prior was left at 0 (the gossip interval): it follows live changes of
  // the interval (mutable_config) at every tick.
  bool prior_follows_interval_ = false;
  WelcomeState welcome_;
  ProbeState probe_;
  VerdictRumors verdicts_;  // hot verdicts (engine/verdict_rumor.h)
  MemberPublisher member_pub_;  // shard 0 of a sharded node
  MemberView member_view_;      // the other shards (membership.external)
  // Quiet rounds: the last round that had something to exchange, the applied-part count
  // and cluster epoch seen at the last tick, and this node's phase in the quiet period.
  uint64_t busy_round_ = 0;
  uint64_t applied_seen_ = 0;
  uint64_t epoch_seen_ = 0;
  uint64_t liveness_seen_ = 0;
  uint64_t quiet_phase_ = 0;
  uint64_t states_seen_ = 0;
  // Security (DESIGN §8).
  wire::Cipher cipher_;
  uint64_t seal_sender_id_ = 0;
  uint64_t seal_counter_ = 0;
  ReplayTable replay_;
  ReplyGuard guard_;
  std::vector<uint8_t> open_buf_;  // opened datagrams (allocated once, on first use, 8-aligned)
  absl::flat_hash_map<Endpoint, uint64_t> echoes_;  // peer address -> its cookie for us
  // Compression (null when off): contexts, the inflate buffer, peers that advertised zstd.
  std::unique_ptr<wire::Compressor> compressor_;
  std::vector<uint8_t> inflate_buf_;
  absl::flat_hash_set<Endpoint> zstd_peers_;
  // The datagram being handled: its source, whether it proved return routability, and
  // (when not) the reply bytes it may still draw.
  bool in_packet_ = false;
  bool verified_ = true;
  Endpoint reply_to_;
  size_t reply_allowance_ = 0;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_ENGINE_H_
