// Welcome / bulk join (seed 002, DESIGN §4): a new or far-behind node asks ONE peer for a
// snapshot, streamed as back-to-back WelcomeChunks instead of one delta per gossip round.
//
//   joiner → responder  WelcomeRequest{digest, session, window, ack, resync}
//   responder → joiner  WelcomeChunk{delta, session, seq, last} × up to `window`
//
// Responder: a bounded set of sessions keyed by (peer endpoint, session id). Each holds a
// PeerProjection of the joiner's per-node (generation, gc, max), initialised from the
// request's digest and advanced by what every chunk claims; each chunk is an ordinary
// delta planned by DeltaBuilder against that projection (same planning rules as a
// SynAck). A request keeps `window` chunks in flight (credit = window - (sent - ack));
// `last` marks the chunk after which the projection misses nothing. A request with
// `resync` (the joiner saw a loss) restarts the projection from its digest; otherwise the
// digest is merged in. Sessions expire after `session_timeout_ticks` without a request.
//
// Joiner: applies chunks with the ordinary DeltaApplier (so lost chunks only produce
// dropped gap parts, never wrong state), asks for more after every window/2 chunks, after
// a `last` chunk while still behind the responder's known digest, and after a silent tick
// (resync); after `abandon_ticks` silent ticks it gives up on that peer and resumes with
// another (its digest tells the new responder where to start).
//
// The Engine methods implementing this live in welcome.cc; the state lives here.
#ifndef SCUTTLE_ENGINE_WELCOME_H_
#define SCUTTLE_ENGINE_WELCOME_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/delta_builder.h"
#include "engine/types.h"
#include "wire/endpoint.h"

namespace scuttle {

struct WelcomeConfig {
  // Start a session automatically when a SynAck shows the peer is more than
  // `trigger_packets` packets ahead of us (see WelcomeTriggerVersions).
  bool auto_join = true;
  int trigger_packets = 4;
  // Chunks in flight per session (clamped to 1..wire::kMaxWelcomeWindow).
  uint16_t window = 32;
  // Responder: concurrent sessions served; a session with no request for this many gossip
  // intervals is dropped.
  int max_sessions = 4;
  int session_timeout_ticks = 4;
  // Joiner: silent ticks before re-requesting (1) and before abandoning the peer (2).
  int abandon_ticks = 2;
  // Joiner: peers queued while a session runs (tried next, in order).
  int max_pending = 4;
};

// How many versions behind counts as "more than `trigger_packets` packets": a packet holds
// at most max_packet_bytes / kMinEntryBytes entries (a 24-byte entry plus a small key).
inline constexpr size_t kWelcomeMinEntryBytes = 40;
inline uint64_t WelcomeTriggerVersions(const WelcomeConfig& c, size_t max_packet_bytes) {
  return static_cast<uint64_t>(c.trigger_packets) * (max_packet_bytes / kWelcomeMinEntryBytes);
}

// Chunk seqs carry an epoch in their high bits: a resync request opens a new epoch, so the
// joiner can tell chunks planned from the superseded projection (still in flight) from
// the fresh stream, and does not mistake them for new losses.
inline constexpr int kWelcomeEpochBits = 16;

struct WelcomeStats {
  // Joiner side.
  uint64_t sessions_started = 0;
  uint64_t sessions_completed = 0;
  uint64_t sessions_abandoned = 0;  // responder went silent: resumed elsewhere
  uint64_t requests_sent = 0;
  uint64_t resyncs_sent = 0;
  uint64_t chunks_received = 0;
  uint64_t chunks_stray = 0;  // not of the running session (still applied: verified)
  uint64_t chunk_gaps = 0;    // seq jumps seen (lost or reordered chunks)
  // Responder side.
  uint64_t sessions_served = 0;
  uint64_t sessions_expired = 0;
  uint64_t sessions_rejected = 0;  // max_sessions reached
  uint64_t requests_received = 0;
  uint64_t chunks_sent = 0;
};

// Responder: one joiner being served.
struct WelcomeServeSession {
  Endpoint peer;
  uint64_t id = 0;
  PeerProjection projection;
  uint32_t next_seq = 1;  // seq of the next chunk
  TimeUs last_request_us = 0;
};

// Joiner: the session we run (at most one).
struct WelcomeJoin {
  bool active = false;
  Endpoint peer;
  uint64_t id = 0;
  uint16_t window = 0;
  uint32_t max_seq = 0;        // highest seq received
  uint32_t epoch_min = 0;      // chunks of older seq epochs are stale (see kWelcomeEpochBits)
  uint32_t since_request = 0;  // chunks received since the last request
  bool loss = false;           // a gap seen since the last request: ask to resync
  bool chunk_this_tick = false;
  int idle_ticks = 0;
  // The last request went without the responder's cookie (engine/reply_guard.h), so it
  // answers with a Syn carrying one; we then ask again at once (QUIC's Retry, in effect).
  bool awaiting_cookie = false;
  // What the responder's SynAck digest said it holds, name → (generation, max_version):
  // done means we hold at least that.
  absl::flat_hash_map<std::string, std::pair<Generation, Version>> target;
};

struct WelcomeState {
  std::vector<WelcomeServeSession> serving;
  WelcomeJoin join;
  std::vector<Endpoint> pending;
  Endpoint last_failed;  // the peer we abandoned last (not picked again right away)
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_WELCOME_H_
