// The epidemic strategies of seed 001 (Demers et al. 1987) layered on Scuttlebutt
// anti-entropy, which stays the reliable backstop:
//   - anti-entropy mode: push-pull (the three-way handshake), pull (no Ack) or push (the
//     SynAck carries only a digest, the Ack carries the delta);
//   - direct mail: each local write is sent at once to a few peers;
//   - rumor mongering: fresh updates are hot rumors pushed (or pulled) to random peers
//     each round until the site loses interest (RumorMonger: feedback/blind,
//     counter/coin, k);
//   - death certificates with dormant copies: tombstones are the certificates (removed
//     after tombstone_grace, τ1); a few retention sites per owner keep them for
//     dormant_grace (τ2) so far-behind peers get incremental deletes instead of resets.
//     Resurrection of an old copy is impossible either way: a peer whose max is below a
//     sender's last_gc_version is reset (seed 000).
// A rumor is an update (owner, version); on the wire it travels as an ordinary delta part
// covering the owner's hot versions, so the applier's rules keep it safe.
#ifndef SCUTTLE_ENGINE_EPIDEMIC_H_
#define SCUTTLE_ENGINE_EPIDEMIC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/cluster.h"
#include "engine/rng.h"
#include "engine/rumor.h"
#include "engine/types.h"

namespace scuttle {

enum class AntiEntropyMode : uint8_t { kPushPull = 0, kPull = 1, kPush = 2 };
std::string_view ToString(AntiEntropyMode m);
absl::StatusOr<AntiEntropyMode> ParseAntiEntropyMode(std::string_view s);

struct EpidemicConfig {
  AntiEntropyMode anti_entropy = AntiEntropyMode::kPushPull;
  // Direct mail: peers each local write is mailed to (0 = off).
  int direct_mail_peers = 0;
  // A mailed part covers the owner's last this-many versions, so a peer slightly behind
  // can still apply it without a gap.
  Version direct_mail_window = 16;
  bool rumor = false;
  RumorOptions rumor_options;
  int rumor_fanout = 1;  // peers contacted per round (or rumor cycle) for rumors
  // Rumor cycles decoupled from anti-entropy (#16 item 4): 0 = a rumor cycle is the gossip
  // round (Demers' model as the simulator's Table 1-3 reproductions run it). > 0: while
  // this node has hot rumors it runs a rumor cycle every rumor_interval_us (judge the last
  // cycle's contacts together, then push to rumor_fanout peers), much shorter than the
  // gossip interval; with nothing hot there is no cycle and no traffic. Demers et al. §1.4
  // analyse residue and traffic per cycle, not per unit of time, so a shorter cycle keeps
  // the residue s = e^{-(k+1)(1-s)} bound and the traffic (counter k, feedback) and only
  // moves t_last from rounds to rumor cycles. The cycle should exceed a round trip so
  // feedback arrives before it is judged (late feedback folds into the next cycle).
  TimeUs rumor_interval_us = 0;
  // #16 item 4, "push what is fresh": with rumor on, a local write, and an update a node
  // learns for the first time, are pushed at once to `fanout` random peers instead of
  // waiting for the next round (Demers' rumor mongering started at the moment of infection;
  // feedback and counter still decide when a node loses interest, and anti-entropy stays
  // the safety net). Each node forwards an update once on first hearing, so the push costs
  // about fanout messages per node per update and spreads in network delays, not rounds.
  // Measured (bench/README.md, "push fresh"): at N=10/50 on loopback, 300 ms rounds, it
  // cuts write -> all nodes to a fraction of the round-based push for about fanout small
  // datagrams per node per write, so scuttled turns it on with --rumor (--push_fresh).
  // The library default stays off: the round-based rumor tests and the simulator count
  // sends per round.
  bool push_fresh = false;
  // Expected number of retention sites per owner keeping dormant death certificates.
  int retention_sites = 3;
  TimeUs dormant_grace_us = 0;  // τ2; 0 means 10 × tombstone grace
};

// A version range of one owner to send: (from, to].
struct VersionRange {
  const NodeState* node;
  Version from;
  Version to;
};

class Epidemic {
 public:
  explicit Epidemic(const EpidemicConfig* config);

  // An update became known here: locally written, or first learned from a rumor.
  void OnUpdate(const NodeState& owner, Version version, bool local);
  // Hot ranges to push on a contact this node initiates (empty under pull), or to answer
  // a pull with (empty under push). At most one range per owner, oldest rumors first.
  void PushRanges(const Cluster& cluster, std::vector<VersionRange>* out);
  void PullRanges(const Cluster& cluster, std::vector<VersionRange>* out);
  // One contact carried `range`; the peer did (or did not) already know it. Under blind
  // removal the engine calls this at send time with knew = false. Noted only: the round's
  // contacts are judged together by EndRound (RumorMonger::NoteContact).
  void OnContact(std::string_view owner, Version from, Version to, bool peer_already_knew);
  // End of a gossip round: one feedback event per rumor contacted since the last call
  // (Demers et al. §1.4: a site's contacts in one cycle are judged together). Results that
  // arrive after the round's end (late acks) fold into the next round.
  void EndRound(Rng& rng) { monger_.EndCycle(rng); }

  // Changes the rumor mongers' k live (RumorMonger::set_k). The caller keeps
  // config->rumor_options.k in step. REQUIRES: 1 <= k <= RumorOptions::kMaxK.
  void set_rumor_k(int k);

  bool blind() const { return config_->rumor_options.removal == RumorRemoval::kBlind; }
  const RumorMonger& monger() const { return monger_; }

  // Dormant death certificates: whether this node is a retention site for `owner`, where
  // tombstones live for dormant_grace instead of tombstone_grace. Expected
  // retention_sites nodes per owner, chosen by hashing (owner, self): no coordination.
  bool IsRetentionSite(const NodeState& owner, const NodeState& self,
                       size_t cluster_size) const;

 private:
  uint64_t Intern(std::string_view name);
  void Ranges(const Cluster& cluster, const std::vector<RumorId>& ids,
              std::vector<VersionRange>* out);

  const EpidemicConfig* config_;
  RumorMonger monger_;
  absl::flat_hash_map<std::string, uint64_t> ids_;
  std::vector<std::string> names_;
  std::vector<RumorId> scratch_;
};

}  // namespace scuttle

#endif  // SCUTTLE_ENGINE_EPIDEMIC_H_
