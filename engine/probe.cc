// Failure confirmation: detect -> confirm -> spread (engine/probe.h; DESIGN §5, SWIM §4,
// Lifeguard §4).
#include <algorithm>
#include <cmath>

#include "engine/delta_builder.h"
#include "engine/engine.h"
#include "engine/node_state.h"

namespace scuttle {

int IndirectRounds(int configured, int relays, double f) {
  const int floor = std::clamp(configured, 1, kMaxIndirectRounds);
  if (!(f > 0)) return floor;
  const double relay_fail = 1 - (1 - f) * (1 - f);
  const double q = f * std::pow(relay_fail, std::max(relays, 0));
  if (!(q > 0)) return floor;
  if (q >= 0.5) return kMaxIndirectRounds;
  const double need = std::ceil(std::log(kFalseVerdictTarget) / std::log(q));
  return std::clamp(static_cast<int>(need), floor, kMaxIndirectRounds);
}

void Engine::NoteExchange(bool answered) {
  probe_.exchanges_ok *= kExchangeDecay;
  probe_.exchanges_failed *= kExchangeDecay;
  (answered ? probe_.exchanges_ok : probe_.exchanges_failed) += 1;
}

TimeUs Engine::ProbeTimeoutUs() const {
  const MembershipConfig& m = config_.membership;
  const TimeUs base = m.probe_timeout_us > 0 ? m.probe_timeout_us : config_.gossip_interval_us;
  return base * (1 + probe_.health);
}

void Engine::RaiseHealth() {
  probe_.health = std::min(probe_.health + 1, kMaxLocalHealth);
  probe_.on_time_ticks = 0;
  probe_.stats.health_max =
      std::max<uint64_t>(probe_.stats.health_max, static_cast<uint64_t>(probe_.health));
}

// Lifeguard local health: a tick more than a round late means this process stalled (a
// SIGSTOP, a swapped-out or overloaded host). Nobody's heartbeat could reach us meanwhile,
// so the stall is not evidence against them: shift their silence clocks by it, drop the
// probes whose deadlines ran out while we slept, and widen our own timeouts for a while.
void Engine::ProbeTick(TimeUs now_us) {
  const TimeUs interval = config_.gossip_interval_us;
  if (probe_.last_tick_us >= 0) {
    const TimeUs gap = now_us - probe_.last_tick_us;
    if (gap > 2 * interval) {
      ++probe_.stats.late_ticks;
      membership_.Rebase(cluster_, gap - interval, now_us);
      probe_.pending.clear();
      probe_.relays.clear();
      probe_.syn_waits.clear();  // their SynAcks could not reach a stopped process
      RaiseHealth();
    } else if (probe_.health > 0 && ++probe_.on_time_ticks >= kHealthyTicksPerStep) {
      --probe_.health;
      probe_.on_time_ticks = 0;
    }
  }
  probe_.last_tick_us = now_us;
}

// SWIM §3 with the handshake as the ping: a Syn unanswered half a probe timeout later
// (OnProbeTimer, or the next tick) makes its peer suspect; StartProbes then asks relays
// at once (the Syn was the direct ping) and AdvanceProbes judges. A live peer behind a
// lost Syn or SynAck answers the ping (5% loss: 1 in 10 quiet handshakes costs a ping and
// an ack); only a peer that also misses the second direct ping and all k relayed pings of
// every ping-req round is declared dead.
// What counts as an answer: any verified packet from the peer's address (ObserveDirect
// removes the wait), not a newer heartbeat relayed by a third party — with quiet rounds
// the last heartbeats of a crashed node keep spreading for several rounds after the crash
// and would clear every suspicion of it meanwhile.
void Engine::CheckUnansweredSyns(TimeUs now_us) {
  const TimeUs wait_us = ProbeTimeoutUs() / 2;
  std::vector<SynWait>& waits = probe_.syn_waits;
  for (size_t i = 0; i < waits.size();) {
    const SynWait w = waits[i];
    if (now_us - w.sent_us < wait_us) {
      ++i;
      continue;
    }
    waits.erase(waits.begin() + static_cast<std::ptrdiff_t>(i));
    NoteExchange(false);
    for (NodeState* node : cluster_.nodes()) {
      if (node == &cluster_.self() || node->endpoint != w.to) continue;
      if (membership_.SuspectUnanswered(*node, now_us, events_)) ++stats_.syn_unanswered;
      break;
    }
  }
}

void Engine::RunProbes(TimeUs now_us) {
  const MembershipConfig& mc = config_.membership;
  if (!mc.confirm || mc.external) return;
  if (mc.probe_unanswered_syn) CheckUnansweredSyns(now_us);
  AdvanceProbes(now_us);
  StartProbes(now_us);
}

TimeUs Engine::ProbeDueUs() const {
  const MembershipConfig& mc = config_.membership;
  if (!mc.confirm || mc.external) return 0;
  TimeUs due = 0;
  auto earliest = [&](TimeUs t) { due = due == 0 ? t : std::min(due, t); };
  for (const PendingProbe& p : probe_.pending) earliest(p.deadline_us);
  const TimeUs wait_us = ProbeTimeoutUs() / 2;
  for (const SynWait& w : probe_.syn_waits) earliest(w.sent_us + wait_us);
  return due;
}

void Engine::OnProbeTimer(TimeUs now_us) {
  last_now_us_ = std::max(last_now_us_, now_us);
  // After a stall (a SIGSTOP) this timer may fire before the overdue round: judge the
  // stall first, as the round would, so no probe deadline that ran out while we slept
  // declares anyone dead.
  if (probe_.last_tick_us >= 0 && now_us - probe_.last_tick_us > 2 * config_.gossip_interval_us) {
    ProbeTick(now_us);
  }
  RunProbes(now_us);
}

void Engine::StartProbes(TimeUs now_us) {
  const MembershipConfig& m = config_.membership;
  const size_t max_probes = static_cast<size_t>(std::max(m.max_probes, 0));
  for (NodeState* node : cluster_.nodes()) {
    if (probe_.pending.size() >= max_probes) break;
    if (node == &cluster_.self() || node->liveness.state != MemberState::kSuspect ||
        !node->endpoint.valid()) {
      continue;
    }
    const bool probing =
        std::any_of(probe_.pending.begin(), probe_.pending.end(),
                    [&](const PendingProbe& p) { return p.name == node->name(); });
    if (probing) continue;
    PendingProbe p;
    p.name = node->name();
    p.generation = node->generation();
    p.heartbeat = node->heartbeat;
    p.seq = probe_.next_seq++;
    ++probe_.stats.suspicions;
    if (node->liveness.held) {
      // An unanswered Syn was the direct ping (SWIM §3): go straight to ping-req.
      p.syn_born = true;
      SendIndirect(p, *node, now_us);
      probe_.pending.push_back(std::move(p));
      continue;
    }
    p.deadline_us = now_us + ProbeTimeoutUs();
    if (SendProbe(node->endpoint, wire::kProbePing, p.seq, p.heartbeat, MakeNodeRef(*node, 0),
                  node->name())) {
      ++probe_.stats.pings_sent;
    }
    probe_.pending.push_back(std::move(p));
  }
}

// One ping-req round: k random live members ping the suspect for us, and one more direct
// ping. The first round waits two probe timeouts (relayed acks take four hops), later ones
// one each.
void Engine::SendIndirect(PendingProbe& p, const NodeState& node, TimeUs now_us) {
  p.deadline_us = now_us + (p.rounds == 0 ? 2 : 1) * ProbeTimeoutUs();
  ++p.rounds;
  p.indirect = true;
  const wire::NodeRef ref = MakeNodeRef(node, 0);
  if (SendProbe(node.endpoint, wire::kProbePing, p.seq, p.heartbeat, ref, p.name)) {
    ++probe_.stats.pings_sent;
  }
  membership_.ChoosePeers(cluster_, config_.membership.probe_relays + 1, {}, rng_, &peers_);
  int asked = 0;
  for (const Endpoint& relay : peers_) {
    if (relay == node.endpoint || asked >= config_.membership.probe_relays) continue;
    if (SendProbe(relay, wire::kProbePingReq, p.seq, p.heartbeat, ref, p.name)) {
      ++probe_.stats.ping_reqs_sent;
      ++asked;
    }
  }
}

void Engine::AdvanceProbes(TimeUs now_us) {
  std::erase_if(probe_.relays, [&](const RelayedProbe& r) { return r.deadline_us <= now_us; });
  std::vector<PendingProbe> keep;
  for (PendingProbe& p : probe_.pending) {
    NodeState* node = cluster_.Find(p.name);
    // Resolved without us: it came back (heartbeat, ack), restarted, or was declared.
    if (node == nullptr || node->generation() != p.generation ||
        node->liveness.state != MemberState::kSuspect) {
      continue;
    }
    if (node->heartbeat != p.heartbeat) {
      // Where gossip lags, a relayed heartbeat may predate the crash: the probe goes on,
      // and its verdict carries the newest heartbeat we know (so nobody who heard that one
      // too takes it for stale). Elsewhere a newer heartbeat settles it.
      if (!GossipLags()) continue;
      p.heartbeat = std::max(p.heartbeat, node->heartbeat);
    }
    if (p.deadline_us > now_us) {
      keep.push_back(std::move(p));
      continue;
    }
    const double samples = probe_.exchanges_ok + probe_.exchanges_failed;
    const int rounds = IndirectRounds(config_.membership.probe_indirect_rounds,
                                      config_.membership.probe_relays,
                                      samples > 0 ? probe_.exchanges_failed / samples : 0);
    if (p.rounds < rounds) {
      // SWIM ping-req: k random live members ping it for us; one more direct ping too.
      // The first round gets two timeouts (relayed acks take four hops); each further
      // round (probe_indirect_rounds) resends both with new relays and gets one more.
      SendIndirect(p, *node, now_us);
      keep.push_back(std::move(p));
      continue;
    }
    // No ack, direct or relayed, within the bounded time: confirmed dead.
    if (membership_.Declare(*node, now_us, events_)) {
      ++probe_.stats.confirmed_dead;
      // The suspect hears it too: a live one refutes at once (SWIM tells the suspect).
      SpreadVerdict(*node, wire::kVerdictDead, p.heartbeat, node->endpoint);
    }
  }
  probe_.pending = std::move(keep);
}

bool Engine::SendProbe(const Endpoint& to, uint8_t kind, uint32_t seq, uint64_t heartbeat,
                       const wire::NodeRef& target, std::string_view target_name) {
  const wire::ProbeFields f{kind, seq, heartbeat, target};
  const bool sent = Send(
      to, Outgoing{.type = wire::MessageType::kProbe, .probe = &f, .probe_name = target_name});
  if (!sent) RaiseHealth();  // a full send queue is our problem, not the peer's
  return sent;
}

// A verdict this node reached, accepted, refuted or applied is a hot rumor (seed 001
// §1.4; engine/verdict_rumor.h): pushed now, then every rumor cycle until the counter runs
// out (engine_verdict.cc).
void Engine::SpreadVerdict(const NodeState& node, uint8_t state, uint64_t heartbeat,
                           const Endpoint& also) {
  const HotVerdict& v = verdicts_.Add(node.name(), node.generation(), state, heartbeat);
  probe_.stats.verdicts_dropped_full = verdicts_.stats().dropped_full;
  PushVerdict(v, also);
}

void Engine::HandleProbe(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us) {
  const wire::ProbeFields& f = pkt.probe;
  const std::string_view target = pkt.Name(f.target);
  NodeState& self = cluster_.self();
  switch (f.kind) {
    case wire::kProbePing: {
      // Answer only for our own incarnation; the ack mirrors the ping's fields.
      if (target != self.name() || f.target.generation != self.generation()) return;
      if (SendProbe(from, wire::kProbeAck, f.seq, self.heartbeat, MakeNodeRef(self, 0),
                    self.name())) {
        ++probe_.stats.acks_sent;
      }
      return;
    }
    case wire::kProbePingReq: {
      const NodeState* node = cluster_.Find(target);
      if (node == nullptr || node == &self || node->generation() != f.target.generation ||
          !node->endpoint.valid() || probe_.relays.size() >= kMaxRelays) {
        ++probe_.stats.relay_drops;
        return;
      }
      RelayedProbe r;
      r.seq = probe_.next_seq++;
      r.origin_seq = f.seq;
      r.origin = from;
      r.target = node->name();
      r.deadline_us = now_us + 3 * ProbeTimeoutUs();
      if (SendProbe(node->endpoint, wire::kProbePing, r.seq, f.heartbeat, MakeNodeRef(*node, 0),
                    node->name())) {
        ++probe_.stats.relayed;
        probe_.relays.push_back(std::move(r));
      }
      return;
    }
    case wire::kProbeAck:
      OnProbeAck(pkt, now_us);
      return;
    default:
      return;
  }
}

void Engine::OnProbeAck(const wire::DecodedPacket& pkt, TimeUs now_us) {
  const wire::ProbeFields& f = pkt.probe;
  const std::string_view target = pkt.Name(f.target);
  NodeState* node = cluster_.Find(target);
  if (node == nullptr || node->generation() != f.target.generation) return;
  // An ack for a ping we relayed: pass it on to the asker with its own seq.
  for (auto it = probe_.relays.begin(); it != probe_.relays.end(); ++it) {
    if (it->seq != f.seq || it->target != target) continue;
    const Endpoint origin = it->origin;
    const uint32_t origin_seq = it->origin_seq;
    probe_.relays.erase(it);
    SendProbe(origin, wire::kProbeAck, origin_seq, f.heartbeat, f.target, target);
    break;
  }
  const bool ours =
      std::any_of(probe_.pending.begin(), probe_.pending.end(), [&](const PendingProbe& p) {
        return p.seq == f.seq && p.name == target;
      });
  if (!ours) return;
  ++probe_.stats.acks_received;
  if (probe_.health > 0) --probe_.health;  // Lifeguard: a successful probe lowers it
  if (f.heartbeat > node->heartbeat) {
    node->heartbeat = f.heartbeat;
    membership_.OnHeartbeat(*node, now_us, events_);
  } else {
    membership_.OnProbeAck(*node, now_us, events_);
  }
  std::erase_if(probe_.pending, [&](const PendingProbe& p) { return p.name == target; });
}

// One refutation per verdict tag: the heartbeat steps a kRefuteStep above the tag once,
// and the alive verdict goes out. Every later dead verdict or dead-flagged digest entry
// with that tag (they keep coming until the refutation has reached their holders) only
// repeats the push, at most once a round — a step each would run the 16-bit summary
// heartbeats around their ring within seconds.
void Engine::Refute(uint64_t tag, const Endpoint& also, TimeUs now_us) {
  NodeState& self = cluster_.self();
  if (self.heartbeat < tag + kRefuteStep) {
    self.heartbeat = tag + kRefuteStep;
  } else if (now_us - last_refute_us_ < config_.gossip_interval_us) {
    return;
  }
  last_refute_us_ = now_us;
  ++probe_.stats.refutations_sent;
  SpreadVerdict(self, wire::kVerdictAlive, self.heartbeat, also);
}

void Engine::ApplyVerdict(const wire::DecodedPacket& pkt, const Endpoint& from, TimeUs now_us) {
  const wire::ProbeFields& f = pkt.probe;
  const std::string_view name = pkt.Name(f.target);
  ++probe_.stats.verdicts_received;
  NodeState& self = cluster_.self();
  if (name == self.name()) {
    // Refute a verdict on this incarnation: a heartbeat above the verdict's wins.
    if (f.kind != wire::kVerdictDead || f.target.generation != self.generation()) return;
    Refute(f.heartbeat, from, now_us);
    return;
  }
  NodeState* node = cluster_.Find(name);
  if (node == nullptr || node->generation() != f.target.generation) return;
  if (f.kind == wire::kVerdictAlive) {
    if (config_.membership.testonly_ignore_refutation || f.heartbeat <= node->heartbeat) return;
    const bool was_down = node->liveness.state == MemberState::kDead ||
                          node->liveness.state == MemberState::kSuspect;
    node->heartbeat = f.heartbeat;
    membership_.OnHeartbeat(*node, now_us, events_);
    if (was_down) {
      ++probe_.stats.refutations_applied;
      SpreadVerdict(*node, wire::kVerdictAlive, f.heartbeat, Endpoint());
    }
    return;
  }
  // Stale: we heard a heartbeat after the prober's last one. Where gossip lags, one less
  // than a refutation step above the tag is no such proof (it may predate the crash and
  // have reached us before the prober): a live node refutes with a whole step.
  const uint64_t slack = GossipLags() ? kRefuteStep / 2 : 0;
  if (f.heartbeat + slack < node->heartbeat) {
    ++probe_.stats.verdicts_stale;
    return;
  }
  if (!membership_.Declare(*node, now_us, events_)) return;  // already dead: no news
  // The tag: only a heartbeat above it revives the node (with bounded quiet handshakes a
  // slice may bring an older one many rounds late).
  if (BoundedQuiet() || GossipLags()) node->heartbeat = std::max(node->heartbeat, f.heartbeat);
  ++probe_.stats.verdicts_applied;
  std::erase_if(probe_.pending, [&](const PendingProbe& p) { return p.name == name; });
  SpreadVerdict(*node, wire::kVerdictDead, f.heartbeat, Endpoint());
}

}  // namespace scuttle
