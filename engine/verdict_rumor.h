// Death/alive verdicts spread by rumor mongering with feedback and a counter (seed 001,
// Demers et al. 1987, §1.4; #16 items 1 and 4).
//
// A verdict (a node of generation g is dead, tagged with the last heartbeat its prober
// saw; or it is alive at heartbeat h, a refutation) becomes a hot rumor at a node when the
// node reaches it by probing, accepts it from a peer, refutes one on itself, or applies an
// alive verdict that revived a node. It is pushed at once to `fanout` random live members,
// then once per rumor cycle while it stays hot. Each push asks for feedback (Verdict.seq
// != 0): the receiver answers "it was news" (it took the verdict up, so it is now pushing
// it too) or "I already knew" (already dead with that tag, stale, already alive...).
//
// Losing interest is Demers' feedback + counter, with his cycle convention (as
// RumorMonger::NoteContact/EndCycle for key-value rumors): a cycle's contacts are judged
// together at the start of the next cycle. A cycle in which every contact that answered
// already knew adds one to the counter; a cycle with any "news" resets it
// (RumorCounter::kConsecutive, the reading that reproduces Table 1); a cycle in which
// nobody answered is no information (a lost reply is not a "knew"). After k such cycles in
// a row the node loses interest (k = max(rumor_k, kMinVerdictK)). A per-verdict cap on cycles (kMaxCyclesPerK * k +
// kCycleSlack) stops a node whose contacts never answer (a partition, old peers that send
// no feedback).
//
// Why not RumorMonger itself: its ids are (owner, version) pairs that ride in delta parts,
// while a verdict carries its own fields (name, generation, state, tag) and a sequence
// number that ties feedback to it; keeping that beside RumorMonger's slots would split one
// entry over two structures. This list is small (a few verdicts are hot at a time; the
// bound is kMaxHotVerdicts, the oldest dropped and counted) and scanned linearly.
//
// Sans-IO and not thread-safe: one instance per engine; peer choice and sending belong to
// the engine (engine/probe.cc).
#ifndef SCUTTLE_ENGINE_VERDICT_RUMOR_H_
#define SCUTTLE_ENGINE_VERDICT_RUMOR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/types.h"

namespace scuttle {

inline constexpr size_t kMaxHotVerdicts = 64;
// Verdicts lose interest after max(rumor_k, kMinVerdictK) cycles of "knew" in a row. A
// survivor a verdict misses waits tens of intervals for its own phi, and one more cycle
// costs `fanout` small datagrams per node per death. Measured (engine/probe_test.cc,
// RumoredVerdictReachesEverySurvivorUnderLoss, 200 seeds of 49 survivors at 5% loss,
// fanout 3): k = 1 missed 95 of 9,800, k = 2 missed 6, k = 3 and k = 4 none (10.9 and 13.9
// pushes per survivor against 7.8 at k = 2).
inline constexpr uint32_t kMinVerdictK = 3;
// Cycle cap per verdict: kMaxCyclesPerK * k + kCycleSlack.
inline constexpr uint32_t kMaxCyclesPerK = 4;
inline constexpr uint32_t kCycleSlack = 8;

struct HotVerdict {
  std::string name;
  Generation generation = 0;
  uint8_t kind = 0;        // wire::kVerdictDead / kVerdictAlive
  uint64_t heartbeat = 0;  // the verdict's tag
  uint32_t seq = 0;        // nonzero; feedback carries it back
  uint32_t counter = 0;    // cycles in a row in which every answered contact already knew
  uint32_t cycles = 0;     // rumor cycles that pushed it (the push at once not counted)
  // This cycle's feedback: 0 none yet, 1 every answer so far "knew", 2 some answer "news".
  uint8_t cycle_result = 0;
};

struct VerdictRumorStats {
  uint64_t hot = 0;            // verdicts that became hot here
  uint64_t dropped_full = 0;   // oldest hot verdict evicted because the list was full
  uint64_t lost_interest = 0;  // by the counter (k cycles in a row of "knew")
  uint64_t capped = 0;         // by the cycle cap
  uint64_t stale_feedback = 0; // feedback for no hot verdict (late, evicted, or forged)
};

class VerdictRumors {
 public:
  explicit VerdictRumors(size_t capacity = kMaxHotVerdicts)
      : capacity_(capacity == 0 ? 1 : capacity) {}

  // Makes the verdict hot with a zero counter and a fresh seq, replacing any hot verdict on
  // the same name (the caller only adds what it now holds as the newest word on the node:
  // a refutation supersedes the death it answers, a new generation the old one). Evicts
  // the oldest when full. Returns the entry; the reference is valid until the next
  // non-const call.
  HotVerdict& Add(std::string_view name, Generation generation, uint8_t kind,
                  uint64_t heartbeat);

  // Feedback for the push with `seq` on `name` (one contact's answer). Returns false (and
  // counts a stale result) when no such verdict is hot.
  bool OnFeedback(uint32_t seq, std::string_view name, bool news);

  // Judges the cycle that just ended for every hot verdict and drops those that lost
  // interest (counter reached k) or used their cycles (cycle cap). REQUIRES: k >= 1.
  void EndCycle(uint32_t k);

  static uint32_t MaxCycles(uint32_t k) { return kMaxCyclesPerK * k + kCycleSlack; }

  std::vector<HotVerdict>& hot() { return hot_; }
  const std::vector<HotVerdict>& hot() const { return hot_; }
  bool empty() const { return hot_.empty(); }
  size_t size() const { return hot_.size(); }
  const VerdictRumorStats& stats() const { return stats_; }

 private:
  size_t capacity_;
  std::vector<HotVerdict> hot_;  // oldest first
  uint32_t next_seq_ = 1;
  VerdictRumorStats stats_;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_VERDICT_RUMOR_H_
