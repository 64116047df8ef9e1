// Welcome / bulk join (seed 002): the Engine methods. See engine/welcome.h.
#include "engine/welcome.h"

#include <algorithm>

#include "engine/engine.h"
#include "wire/absl_compat.h"

namespace scuttle {
namespace {

uint16_t ClampWindow(uint16_t w) {
  return std::clamp<uint16_t>(w, 1, wire::kMaxWelcomeWindow);
}

// seed 002: a joiner inherits the responder's ack frontier atomically with the snapshot.
// Collects, on every replica, the tombstones its owner has announced collected (the rule
// RunGc applies each round), so no chunk carries one even when the announcement arrived
// after the last GC run; each part's last_gc_version then carries the cut. The frontier of
// our own map is not passed on: it is what our peers hold of it, nothing the joiner can use.
// Returns the number of tombstones collected.
size_t CutAtOwnerFrontier(Cluster& cluster) {
  size_t n = 0;
  for (NodeState* node : cluster.nodes()) {
    if (node != &cluster.self() && node->owner_gc() > 0 && node->num_tombstones() > 0) {
      n += node->GcTombstonesUpTo(std::min(node->owner_gc(), node->max_version()));
    }
  }
  return n;
}

}  // namespace

// ---- Joiner ------------------------------------------------------------------------------

bool Engine::StartWelcome(const Endpoint& peer) {
  if (!peer.valid() || peer == config_.advertise) return false;
  WelcomeJoin& j = welcome_.join;
  if (j.active) {
    if (peer == j.peer) return false;
    auto& pending = welcome_.pending;
    if (std::find(pending.begin(), pending.end(), peer) == pending.end() &&
        pending.size() < static_cast<size_t>(std::max(0, config_.welcome.max_pending))) {
      pending.push_back(peer);
    }
    return false;
  }
  j = WelcomeJoin{};
  j.active = true;
  j.peer = peer;
  j.id = rng_() | 1;
  j.window = ClampWindow(config_.welcome.window);
  ++stats_.welcome.sessions_started;
  SendWelcomeRequest(/*resync=*/true);
  return true;
}

void Engine::SendWelcomeRequest(bool resync) {
  WelcomeJoin& j = welcome_.join;
  wire::WelcomeFields f;
  f.session = j.id;
  f.ack = j.max_seq;
  f.window = j.window;
  f.resync = resync;
  j.since_request = 0;
  j.loss = false;
  // A resync opens a new seq epoch at the responder: chunks of older epochs are still
  // in flight from the old projection; they are applied but neither count nor signal loss.
  if (resync) j.epoch_min = (j.max_seq >> kWelcomeEpochBits) + 1;
  j.awaiting_cookie = config_.security.guard.enabled && !echoes_.contains(j.peer);
  if (Send(j.peer, Outgoing{.type = wire::MessageType::kWelcomeRequest, .digest = true,
                            .welcome = &f})) {
    ++stats_.welcome.requests_sent;
    if (resync) ++stats_.welcome.resyncs_sent;
  }
}

// The auto trigger: a SynAck whose digest shows the peer far ahead of us.
void Engine::MaybeStartWelcome(const wire::DecodedPacket& synack, const Endpoint& from) {
  const WelcomeConfig& wc = config_.welcome;
  if (!wc.auto_join || from == welcome_.join.peer) return;
  uint64_t behind = 0;
  for (const wire::DigestEntry& e : synack.digest.entries) {
    const std::string_view name = synack.Name(e.node);
    if (name == cluster_.self().name()) continue;
    const NodeState* node = cluster_.Find(name);
    if (node == nullptr || e.node.generation > node->generation()) {
      behind += e.max_version;
    } else if (e.node.generation == node->generation() && e.max_version > node->max_version()) {
      behind += e.max_version - node->max_version();
    }
  }
  if (behind <= WelcomeTriggerVersions(wc, config_.max_packet_bytes)) return;
  if (!StartWelcome(from)) return;
  for (const wire::DigestEntry& e : synack.digest.entries) {
    welcome_.join.target[AV(synack.Name(e.node))] = {e.node.generation, e.max_version};
  }
}

// True when we hold at least what the responder's digest showed.
bool Engine::WelcomeCaughtUp() const {
  for (const auto& [name, gm] : welcome_.join.target) {
    if (name == cluster_.self().name()) continue;
    const NodeState* node = cluster_.Find(name);
    if (node == nullptr) return false;  // (a forgotten node ends via the empty-last rule)
    if (node->generation() > gm.first) continue;
    if (node->generation() < gm.first || node->max_version() < gm.second) return false;
  }
  return true;
}

void Engine::HandleWelcomeChunk(const wire::DecodedPacket& pkt, const Endpoint& from,
                                TimeUs now_us) {
  WelcomeStats& ws = stats_.welcome;
  ++ws.chunks_received;
  WelcomeJoin& j = welcome_.join;
  const bool ours = j.active && from == j.peer && pkt.welcome.session == j.id;
  bool gap = false;
  for (size_t i = 0; i < pkt.num_parts(); ++i) {
    const PartOutcome o = applier_.ApplyPart(pkt, pkt.part(i), now_us);
    applier_.Count(o);
    gap |= o == PartOutcome::kGap || o == PartOutcome::kBehindReset;
  }
  if (!ours) {
    ++ws.chunks_stray;  // verified and applied like any delta; no session bookkeeping
    return;
  }
  j.chunk_this_tick = true;
  j.idle_ticks = 0;
  const uint32_t seq = pkt.welcome.seq;
  const uint32_t epoch = seq >> kWelcomeEpochBits;
  if (epoch < j.epoch_min) return;  // answers a request we superseded by a resync
  const bool new_epoch = epoch > (j.max_seq >> kWelcomeEpochBits);
  const uint32_t expected = new_epoch ? (epoch << kWelcomeEpochBits) + 1 : j.max_seq + 1;
  if (seq > expected) {
    ++ws.chunk_gaps;
    j.loss = true;
  }
  if (gap) j.loss = true;
  j.epoch_min = std::max(j.epoch_min, epoch);
  j.max_seq = std::max(j.max_seq, seq);
  ++j.since_request;
  if (pkt.welcome.last && seq >= j.max_seq) {
    // Done when nothing was lost and we hold what the responder showed us, or when the
    // responder had nothing more to give (bounds a session that cannot catch up fully).
    if (!j.loss && (WelcomeCaughtUp() || pkt.num_parts() == 0)) {
      ++ws.sessions_completed;
      j.active = false;
      j.target.clear();
      // Chain the next queued peer (it may be ahead on nodes this one lacked).
      while (!welcome_.pending.empty() && !welcome_.join.active) {
        const Endpoint next = welcome_.pending.front();
        welcome_.pending.erase(welcome_.pending.begin());
        StartWelcome(next);
      }
      return;
    }
    SendWelcomeRequest(/*resync=*/true);
    return;
  }
  if (j.since_request >= std::max<uint32_t>(1, j.window / 2)) SendWelcomeRequest(j.loss);
}

// ---- Responder ---------------------------------------------------------------------------

void Engine::HandleWelcomeRequest(const wire::DecodedPacket& pkt, const Endpoint& from,
                                  TimeUs now_us) {
  WelcomeStats& ws = stats_.welcome;
  ++ws.requests_received;
  // A snapshot stream goes only to a source that proved it receives our packets (DESIGN
  // §8): otherwise one spoofed request would aim up to 64 chunks of ~64 KB at a victim.
  // Instead, a Syn (within the 3x allowance) hands the joiner our cookie: its next request,
  // one tick later, echoes it. A joiner started by a SynAck already holds the cookie.
  if (!verified_) {
    ++stats_.security.welcome_refused;
    SendSyn(from);
    return;
  }
  const uint64_t id = pkt.welcome.session;
  auto& serving = welcome_.serving;
  auto it = std::find_if(serving.begin(), serving.end(), [&](const WelcomeServeSession& s) {
    return s.peer == from && s.id == id;
  });
  bool fresh = false;
  if (it == serving.end()) {
    // A joiner runs one session: a new id from the same peer replaces its old one.
    std::erase_if(serving, [&](const WelcomeServeSession& s) { return s.peer == from; });
    if (serving.size() >= static_cast<size_t>(std::max(0, config_.welcome.max_sessions))) {
      ++ws.sessions_rejected;
      return;
    }
    serving.emplace_back();
    serving.back().peer = from;
    serving.back().id = id;
    it = serving.end() - 1;
    fresh = true;
    ++ws.sessions_served;
  }
  WelcomeServeSession& s = *it;
  s.last_request_us = now_us;
  if (config_.frontier_gc) stats_.tombstones_gced_frontier += CutAtOwnerFrontier(cluster_);
  // A resync (or a new session) restarts from the joiner's real digest; otherwise chunks
  // still in flight are ahead of it, so the digest is merged into the projection.
  if (fresh || pkt.welcome.resync) {
    s.projection.Reset(pkt);
    // A new seq epoch: the joiner ignores chunks of older epochs (see welcome.h).
    s.next_seq = (((s.next_seq - 1) >> kWelcomeEpochBits) + 1) << kWelcomeEpochBits | 1;
  } else {
    s.projection.Merge(pkt);
  }
  const uint32_t window = ClampWindow(pkt.welcome.window);
  const uint32_t sent = s.next_seq - 1;
  const uint32_t ack = std::min(pkt.welcome.ack, sent);
  const uint32_t in_flight = pkt.welcome.resync ? 0 : sent - ack;
  // At least one chunk answers every request (an empty `last` chunk when nothing is due),
  // so the joiner always learns where it stands.
  const uint32_t credit = in_flight >= window ? 1 : window - in_flight;
  for (uint32_t i = 0; i < credit; ++i) {
    wire::WelcomeFields f;
    f.session = id;
    f.seq = s.next_seq;
    bool complete = false;
    if (!Send(from, Outgoing{.type = wire::MessageType::kWelcomeChunk,
                             .projection = &s.projection, .welcome = &f,
                             .complete = &complete})) {
      return;
    }
    ++s.next_seq;
    ++ws.chunks_sent;
    const bool progressed = delta_builder_.planned_parts() > 0;
    delta_builder_.Advance(&s.projection);
    if (complete || !progressed) break;
  }
}

// ---- Timers ------------------------------------------------------------------------------

void Engine::WelcomeTick(TimeUs now_us) {
  WelcomeStats& ws = stats_.welcome;
  // Responder: drop sessions whose joiner stopped asking.
  const TimeUs timeout =
      static_cast<TimeUs>(std::max(1, config_.welcome.session_timeout_ticks)) *
      config_.gossip_interval_us;
  ws.sessions_expired += std::erase_if(welcome_.serving, [&](const WelcomeServeSession& s) {
    return now_us - s.last_request_us > timeout;
  });
  // Joiner: a silent tick → ask again (resync); `abandon_ticks` silent ticks → another peer.
  WelcomeJoin& j = welcome_.join;
  if (!j.active) return;
  if (j.chunk_this_tick) {
    j.chunk_this_tick = false;
    j.idle_ticks = 0;
    return;
  }
  ++j.idle_ticks;
  if (j.idle_ticks < std::max(2, config_.welcome.abandon_ticks)) {
    SendWelcomeRequest(/*resync=*/true);
    return;
  }
  ++ws.sessions_abandoned;
  const Endpoint failed = j.peer;
  welcome_.last_failed = failed;
  j.active = false;
  j.target.clear();
  std::erase(welcome_.pending, failed);
  while (!welcome_.pending.empty() && !j.active) {
    const Endpoint next = welcome_.pending.front();
    welcome_.pending.erase(welcome_.pending.begin());
    StartWelcome(next);
  }
  if (j.active) return;
  // Nobody queued: resume with another live peer (our digest tells it where to start).
  membership_.ChoosePeers(cluster_, 3, config_.seeds, rng_, &peers_);
  for (const Endpoint& p : peers_) {
    if (p != failed && StartWelcome(p)) break;
  }
  // Nobody else known: try the same peer again with a new session (it may have been full).
  if (!j.active) StartWelcome(failed);
}

}  // namespace scuttle
