// Failure confirmation: detect -> confirm -> spread (DESIGN §5; #16).
//
// Phi-accrual (engine/membership.h) only raises suspicion. A suspect is then confirmed
// the way SWIM (Das et al. 2002, §4) and Lifeguard (Dadgar et al. 2018) do it:
//   1. a direct ping; no ack within probe_timeout ->
//   2. ping-req through k = probe_relays random live members (and one more direct ping);
//      no ack within 2 × probe_timeout -> the prober declares it dead.
// The verdict is tagged with the suspect's (generation, heartbeat) and spread by rumor
// mongering with feedback and a counter (seed 001, Demers et al. §1.4;
// engine/verdict_rumor.h): pushed at once to `fanout` random live members (and the
// suspect, so a live one refutes), each of which answers "news" or "already knew"; a member
// for which it was news takes it up and pushes it the same way. Every node holding it hot
// pushes it again each rumor cycle until k cycles in a row brought only "already knew".
// Infect-and-die (forward once on first hearing) missed ~e^-fanout of the members, who then
// waited ~60 intervals for their own phi with quiet rounds; with feedback + counter the
// residue falls to ~e^-(k+1)·fanout per Demers' analysis, in O(log N) network delays.
//
// Refutation (SWIM's incarnation number; here the heartbeat, which only the owner raises):
// a node that hears a dead verdict on its own incarnation raises its heartbeat and pushes
// an alive verdict with it. Every member orders the two by heartbeat, so the refutation
// wins, and anti-entropy carries the higher heartbeat to anyone the push missed (a node
// marked dead comes back at its next heartbeat whichever way it arrives).
//
// Local health (Lifeguard §4.3): a tick that comes late by more than a round (a paused
// process, an overloaded loop) shifts every peer's silence clock by the stall and raises
// the local health multiplier h (0..kMaxLocalHealth); probe timeouts and the phi-only dead
// threshold are multiplied by (1 + h). A send that fails for want of a buffer raises it
// too; each ack received lowers it, and so does a run of on-time ticks.
//
// Message sizes: a Probe and its ack carry the same fields (the same target name), so no
// reply is larger than its request; a relay pings only members from its own table (never
// an address taken from the packet), so ping-req cannot be aimed at a stranger.
#ifndef SCUTTLE_ENGINE_PROBE_H_
#define SCUTTLE_ENGINE_PROBE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/types.h"
#include "wire/endpoint.h"

namespace scuttle {

inline constexpr int kMaxLocalHealth = 8;
// A node refuting a dead verdict raises its heartbeat this far above the verdict's tag,
// not by one: where gossip lags (quiet rounds), a relayed heartbeat a few rounds above a
// tag is most likely one of the node's last before it crashed, still spreading; only one
// a refutation step above it proves the node outlived the verdict (docs/detection.md,
// "Direct evidence"). The 16-bit summary heartbeats compare modulo 2^16 with half the ring
// as the horizon, so a step leaves room for 31 refutations in a row.
inline constexpr uint64_t kRefuteStep = 1024;
// Ping-reqs a member relays at once (bounded; more are dropped and counted).
inline constexpr size_t kMaxRelays = 64;
// On-time ticks that lower the local health multiplier by one.
inline constexpr int kHealthyTicksPerStep = 10;

struct PendingProbe {
  std::string name;
  Generation generation = 0;
  uint64_t heartbeat = 0;  // the suspect's heartbeat when probing began (the verdict's tag)
  uint32_t seq = 0;
  TimeUs deadline_us = 0;
  bool indirect = false;   // the ping-req round is under way
  int rounds = 0;          // ping-req rounds sent (MembershipConfig::probe_indirect_rounds)
  bool syn_born = false;   // suspected for an unanswered Syn: began with ping-req
};

struct RelayedProbe {
  uint32_t seq = 0;         // ours, in the ping we sent the target
  uint32_t origin_seq = 0;  // the asker's
  Endpoint origin;
  std::string target;
  TimeUs deadline_us = 0;
};

struct ProbeStats {
  uint64_t suspicions = 0;         // probes started
  uint64_t pings_sent = 0;
  uint64_t ping_reqs_sent = 0;
  uint64_t acks_sent = 0;
  uint64_t acks_received = 0;      // answers to our own probes
  uint64_t relayed = 0;            // ping-reqs we served
  uint64_t relay_drops = 0;        // ping-reqs refused: table full or unknown target
  uint64_t confirmed_dead = 0;     // verdicts this node reached by probing
  uint64_t verdicts_received = 0;
  uint64_t verdicts_applied = 0;   // dead verdicts that marked a node dead here
  uint64_t verdicts_stale = 0;     // dead verdicts older than a heartbeat we had seen
  uint64_t suspicions_from_digest = 0;  // dead flags in digest entries that made us probe
  uint64_t refutations_sent = 0;   // alive verdicts on ourselves
  uint64_t refutations_applied = 0;  // alive verdicts that revived a node here
  // Verdict rumor mongering (engine/verdict_rumor.h).
  uint64_t verdict_pushes = 0;        // verdict pushes sent (asking for feedback)
  uint64_t verdict_feedback_knew = 0; // feedback received: the peer already knew
  uint64_t verdict_feedback_new = 0;  // feedback received: it was news to the peer
  uint64_t verdict_replies_sent = 0;  // feedback we sent for pushes we received
  uint64_t verdicts_dropped_full = 0; // hot verdicts evicted: the list was full
  uint64_t verdict_cycles = 0;        // rumor cycles that pushed hot verdicts
  uint64_t verdicts_retired = 0;      // hot verdicts on an incarnation that was gone
  uint64_t late_ticks = 0;         // local health: ticks a round or more late
  uint64_t health_max = 0;         // the highest local health multiplier reached
};

// The one Syn of a round whose SynAck is awaited (SWIM's ping of the period).
struct SynWait {
  Endpoint to;
  TimeUs sent_us = 0;
};
inline constexpr size_t kMaxSynWaits = 4;

struct ProbeState {
  std::vector<PendingProbe> pending;  // <= MembershipConfig::max_probes
  std::vector<RelayedProbe> relays;   // <= kMaxRelays
  std::vector<SynWait> syn_waits;     // <= kMaxSynWaits
  uint32_t next_seq = 1;
  int health = 0;  // Lifeguard local health multiplier
  int on_time_ticks = 0;
  TimeUs last_tick_us = -1;
  // Awaited Syns answered / unanswered, decayed by kExchangeDecay a sample: the measured
  // chance f that a handshake round trip fails (IndirectRounds).
  double exchanges_ok = 0;
  double exchanges_failed = 0;
  ProbeStats stats;
};

// A window of ~50 awaited Syns (~100 quiet rounds) for the loss estimate.
inline constexpr double kExchangeDecay = 0.98;
// IndirectRounds keeps a live member's chance of a false verdict per suspicion below this.
inline constexpr double kFalseVerdictTarget = 1e-6;
inline constexpr int kMaxIndirectRounds = 8;

// The ping-req rounds a suspicion needs so that a live suspect, whose direct round trips
// fail with probability f and whose relayed ones (four hops) with 1 - (1 - f)^2, is
// declared dead with probability below kFalseVerdictTarget: each round fails with
// q = f (1 - (1 - f)^2)^relays, so rounds = ln(target) / ln(q), at least `configured`,
// at most kMaxIndirectRounds. f = 5%-loss round trips (0.0975): 2 rounds; 20% loss (0.36):
// 6. Lifeguard (Dadgar et al. 2018) widens timeouts from local health; this widens the
// confirmation from the loss the node measures on its own handshakes.
int IndirectRounds(int configured, int relays, double f);

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_PROBE_H_
