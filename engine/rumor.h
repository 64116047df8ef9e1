// Rumor mongering (seed 001, Demers et al. 1987, §1.4): the per-site list of hot rumors.
//
// A site that learns a fresh update (a local write, or the first receipt from a peer) makes
// it a hot rumor and sends it on each contact until it loses interest. How it loses
// interest is the paper's taxonomy:
//
//   removal  feedback  only a contact whose peer already knew the rumor ("unnecessary")
//                      moves the site towards losing interest;
//            blind     every contact does, whatever the peer answered.
//   decay    counter   lose interest after k such contacts. With feedback the counter
//                      counts k unnecessary contacts *in a row*: a contact that spread the
//                      rumor resets it (RumorCounter::kConsecutive, the default — this is
//                      the reading that reproduces the paper's Table 1; see
//                      docs/demers.md). kCumulative never resets.
//            coin      lose interest with probability 1/k after each such contact.
//
//   variant  push      the site sends its hot rumors on contacts it initiates;
//            pull      it sends them when a peer pulls from it;
//            push-pull both.
//
// Sans-IO: no clock, no sockets, no threads, no global RNG. The coin comes from the
// caller's scuttle::Rng (engine/rng.h), passed in, so one seed reproduces a run bit for
// bit. Peer selection, the cycle structure and the transport belong to the caller (the
// engine, or the paper model in sim/demers.h).
//
// Not thread-safe; one instance per engine (or per simulated site).
#ifndef SCUTTLE_ENGINE_RUMOR_H_
#define SCUTTLE_ENGINE_RUMOR_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/rng.h"

namespace scuttle {

// Opaque rumor id: in the engine, (owner index, version) — versions are the paper's
// timestamps, unique per owner.
struct RumorId {
  uint64_t owner = 0;
  uint64_t version = 0;

  friend bool operator==(const RumorId&, const RumorId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const RumorId& id) {
    return H::combine(std::move(h), id.owner, id.version);
  }
};

enum class RumorVariant { kPush, kPull, kPushPull };
enum class RumorRemoval { kFeedback, kBlind };
enum class RumorDecay { kCounter, kCoin };
// What the feedback counter counts (ignored for coin and for blind, where there is no
// feedback to reset on).
enum class RumorCounter { kConsecutive, kCumulative };

struct RumorOptions {
  RumorVariant variant = RumorVariant::kPush;
  RumorRemoval removal = RumorRemoval::kFeedback;
  RumorDecay decay = RumorDecay::kCounter;
  RumorCounter counter = RumorCounter::kConsecutive;
  uint32_t k = 2;                // REQUIRES: 1 <= k <= kMaxK.
  size_t max_hot_rumors = 4096;  // REQUIRES: >= 1. Oldest is dropped when full.

  static constexpr uint32_t kMaxK = 1000;
  static constexpr size_t kMaxHotRumorsLimit = size_t{1} << 24;
};

// Validates options that come from flags or config.
absl::Status ValidateRumorOptions(const RumorOptions& options);

// Flag spellings: "push" | "pull" | "push-pull", "feedback" | "blind", "counter" | "coin",
// "consecutive" | "cumulative". Parse* return InvalidArgument on anything else.
std::string_view ToString(RumorVariant v);
std::string_view ToString(RumorRemoval r);
std::string_view ToString(RumorDecay d);
std::string_view ToString(RumorCounter c);
absl::StatusOr<RumorVariant> ParseRumorVariant(std::string_view s);
absl::StatusOr<RumorRemoval> ParseRumorRemoval(std::string_view s);
absl::StatusOr<RumorDecay> ParseRumorDecay(std::string_view s);
absl::StatusOr<RumorCounter> ParseRumorCounter(std::string_view s);

struct RumorStats {
  uint64_t added = 0;          // rumors that became hot
  uint64_t dropped_full = 0;   // oldest hot rumor evicted because the list was full
  uint64_t contacts = 0;       // OnContactResult calls on a hot rumor
  uint64_t unnecessary = 0;    // ... whose peer already knew it
  uint64_t lost_interest = 0;  // rumors that stopped being hot by decay
  uint64_t stale_results = 0;  // OnContactResult on a rumor that was no longer hot
};

class RumorMonger {
 public:
  // REQUIRES: ValidateRumorOptions(options).ok().
  explicit RumorMonger(const RumorOptions& options);

  // A fresh update written locally / learned for the first time from a peer: it becomes
  // a hot rumor with a zero counter. Returns false (and changes nothing) if it was hot
  // already. The caller decides freshness: a site that once lost interest in a rumor
  // must not call this again for it (it is "removed", not susceptible).
  bool OnLocalUpdate(RumorId id) { return AddHot(id); }
  bool OnRemoteUpdate(RumorId id) { return AddHot(id); }

  bool IsHot(RumorId id) const { return index_.contains(id); }
  size_t hot_count() const { return index_.size(); }
  bool empty() const { return index_.empty(); }

  // What to send to the peer of a contact: all hot rumors, oldest first, at most
  // `max_rumors` (the caller's packet budget), appended to *out. PushRumors is for a
  // contact this site initiates and is empty under kPull; PullRumors answers a peer that
  // pulls from this site and is empty under kPush.
  void PushRumors(size_t max_rumors, std::vector<RumorId>* out) const;
  void PullRumors(size_t max_rumors, std::vector<RumorId>* out) const;

  // The outcome of one contact on which hot rumor `id` was sent to a peer:
  // `peer_already_knew` is the peer's feedback (ignored under kBlind). Applies the
  // counter or the coin; returns true iff the site lost interest now (id is no longer
  // hot). A result for a rumor that is not hot (evicted or already cold) is counted in
  // stats().stale_results and ignored.
  bool OnContactResult(RumorId id, bool peer_already_knew, Rng& rng);

  // Demers' convention for a site with several contacts in one cycle (a push to each of
  // `fanout` peers, answers to every puller): they are judged together, as ONE feedback
  // event at the end of the cycle — unnecessary iff every peer already knew (counter +1,
  // or one coin toss), necessary if any peer learned it (the consecutive counter resets).
  // Judged one by one instead, a hot rumor would take several counts per cycle and a
  // reset could be undone by a later "knew" in the same cycle, which misses Table 3 by
  // 2-10x in residue (docs/demers.md, `--judge contact`). NoteContact records one
  // contact's outcome (a result for a rumor that is not hot is a stale result);
  // EndCycle applies one OnContactResult per rumor noted since the last EndCycle.
  // Memory: at most one pending entry per hot rumor (plus rumors re-added this cycle).
  void NoteContact(RumorId id, bool peer_already_knew);
  void EndCycle(Rng& rng);
  size_t pending_results() const { return noted_.size(); }

  // Forgets every hot rumor (keeps options and capacity; stats are kept too).
  void Clear();

  // Changes k while rumors are hot (a live config change). Counters keep their values: a
  // hot rumor whose counter already reached the new k loses interest at its next counted
  // contact; coin decay uses 1/k from the next contact on.
  // REQUIRES: 1 <= k <= RumorOptions::kMaxK.
  void set_k(uint32_t k);

  const RumorOptions& options() const { return options_; }
  const RumorStats& stats() const { return stats_; }

 private:
  // Hot rumors live in `slots_` in insertion order, so oldest-first is a forward scan.
  // A rumor that goes cold leaves a dead slot behind; dead slots before `head_` are
  // skipped in O(1) and the vector is compacted once dead slots outnumber live ones, so
  // slots_.size() <= 2 * hot_count() + kCompactSlack and every operation is amortized O(1).
  struct Slot {
    RumorId id;
    uint32_t counter;  // contacts counted towards k (counter decay)
    bool live;
    // This cycle's noted contacts: 0 none, 1 every peer knew, 2 some peer learned it.
    uint8_t cycle;
  };
  static constexpr size_t kCompactSlack = 16;

  bool AddHot(RumorId id);
  void AppendOldestFirst(size_t max_rumors, std::vector<RumorId>* out) const;
  void Kill(size_t pos);
  void MaybeCompact();

  RumorOptions options_;
  std::vector<Slot> slots_;
  size_t head_ = 0;                             // slots_[0, head_) are dead
  absl::flat_hash_map<RumorId, size_t> index_;  // live id -> position in slots_
  std::vector<RumorId> noted_;                  // rumors with a noted contact this cycle
  RumorStats stats_;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_RUMOR_H_
