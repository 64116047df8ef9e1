// Node: the thread-safe key and member calls, each a command posted to the loop.
#include "node/node.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <cstring>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/node_state.h"
#include "engine/rng.h"
#include "engine/shard.h"
#include "io/clock.h"
#include "node/keyring_file.h"
#include "io/socket.h"
#include "spdlog/spdlog.h"
#include "wire/absl_compat.h"
#include "node/node_runtime.h"

namespace scuttle {

namespace {

// Applications may not write scuttle's own keys (the locality label, engine/membership.h).
absl::Status CheckUserKey(std::string_view key) {
  if (!key.starts_with(kReservedKeyPrefix)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "key '", AV(key), "': keys under '", AV(kReservedKeyPrefix), "' are reserved for scuttle"));
}

// A kExpiring key past its deadline is gone for readers even before the next round's
// expiry turns it into a tombstone.
bool Visible(const NodeState::Slot& s, TimeUs now_us) {
  if (s.status == KeyStatus::kTombstone) return false;
  return s.status != KeyStatus::kExpiring || s.time_us > now_us;
}

// The nodes a Scan or Snapshot reads: every node, or the one named (NotFound if unknown).
absl::StatusOr<std::vector<const NodeState*>> SelectNodes(const Engine& e, std::string_view n) {
  std::vector<const NodeState*> nodes;
  if (n.empty()) {
    nodes.assign(e.cluster().nodes().begin(), e.cluster().nodes().end());
  } else if (const NodeState* ns = e.FindNode(n); ns != nullptr) {
    nodes.push_back(ns);
  } else {
    return absl::NotFoundError(absl::StrCat("unknown node '", std::string(n), "'"));
  }
  return nodes;
}

}  // namespace

absl::StatusOr<Version> Node::Set(std::string_view key, std::string_view value) {
  if (absl::Status s = CheckUserKey(key); !s.ok()) return s;
  return Call<Version>(ShardFor(key), [k = std::string(key), v = std::string(value)](Runtime& rt)
                           -> absl::StatusOr<Version> {
    Engine& e = rt.engine();
    if (absl::Status s = e.Set(k, v, io::MonotonicNowUs()); !s.ok()) return s;
    return e.self().max_version();
  });
}

absl::StatusOr<Version> Node::SetWithTtl(std::string_view key, std::string_view value,
                                         absl::Duration ttl) {
  if (absl::Status s = CheckUserKey(key); !s.ok()) return s;
  const TimeUs ttl_us = absl::ToInt64Microseconds(ttl);
  return Call<Version>(ShardFor(key), [k = std::string(key), v = std::string(value), ttl_us](Runtime& rt)
                           -> absl::StatusOr<Version> {
    Engine& e = rt.engine();
    if (absl::Status s = e.SetWithTtl(k, v, ttl_us, io::MonotonicNowUs()); !s.ok()) return s;
    return e.self().max_version();
  });
}

absl::StatusOr<Version> Node::Delete(std::string_view key) {
  if (absl::Status s = CheckUserKey(key); !s.ok()) return s;
  return Call<Version>(ShardFor(key), [k = std::string(key)](Runtime& rt) -> absl::StatusOr<Version> {
    Engine& e = rt.engine();
    if (absl::Status s = e.Delete(k, io::MonotonicNowUs()); !s.ok()) return s;
    return e.self().max_version();
  });
}

absl::Status Node::Leave() {
  return CallEach<bool>([](Runtime& rt) -> absl::StatusOr<bool> {
           rt.engine().Leave();
           return true;
         })
      .status();
}

absl::StatusOr<KvEntry> Node::Get(std::string_view key, std::string_view node) {
  return Call<KvEntry>(ShardFor(key), [k = std::string(key), n = std::string(node)](Runtime& rt)
                           -> absl::StatusOr<KvEntry> {
    const Engine& e = rt.engine();
    const NodeState* ns = n.empty() ? &e.self() : e.FindNode(n);
    if (ns == nullptr) return absl::NotFoundError(absl::StrCat("unknown node '", std::string(n), "'"));
    const uint32_t idx = ns->Find(k);
    if (idx == NodeState::kNoSlot || !Visible(ns->slot(idx), io::MonotonicNowUs())) {
      return absl::NotFoundError(absl::StrCat("no key '", k, "' on node '", std::string(ns->name()), "'"));
    }
    const NodeState::Slot& s = ns->slot(idx);
    return KvEntry{std::string(ns->name()), k, std::string(ns->ValueOf(s)), s.version, 0};
  });
}

absl::StatusOr<std::vector<KvEntry>> Node::Scan(std::string_view prefix, std::string_view node) {
  absl::StatusOr<KvSnapshot> snap = ScanShards(prefix, node, /*with_ttl=*/true);
  if (!snap.ok()) return snap.status();
  return std::move(snap->entries);
}

absl::StatusOr<KvSnapshot> Node::ScanShards(std::string_view prefix, std::string_view node,
                                            bool with_ttl) {
  struct Part {
    std::vector<KvEntry> entries;
    uint64_t seq = 0;
  };
  // Each shard scans its slice on its own thread, at once; the slices are disjoint
  // (metadata keys are read from shard 0 only), so merging is concatenation and a sort.
  auto parts = CallEach<Part>([p = std::string(prefix), n = std::string(node), with_ttl](
                                  Runtime& rt) -> absl::StatusOr<Part> {
    const Engine& e = rt.engine();
    absl::StatusOr<std::vector<const NodeState*>> selected = SelectNodes(e, n);
    if (!selected.ok()) return selected.status();
    const std::vector<const NodeState*>& nodes = *selected;
    const TimeUs now = io::MonotonicNowUs();
    const bool skip_metadata = rt.shard() != 0;
    Part out;
    // Events are appended only on this thread, so no event can slip between the two.
    out.seq = rt.events().last_seq();
    for (const NodeState* ns : nodes) {
      ns->Scan(p, [&](const NodeState::Slot& s) {
        if (!Visible(s, now)) return;
        const std::string_view key = ns->KeyOf(s);
        if (skip_metadata && IsReplicatedToAllShards(key)) return;
        const int64_t left = with_ttl && s.status == KeyStatus::kExpiring &&
                                     ns == &e.cluster().self()
                                 ? s.time_us - now
                                 : 0;
        out.entries.push_back(KvEntry{std::string(ns->name()), std::string(key),
                                      std::string(ns->ValueOf(s)), s.version, left});
      });
    }
    return out;
  });
  if (!parts.ok()) return parts.status();
  KvSnapshot out;
  if (parts->size() == 1) {
    out.entries = std::move((*parts)[0].entries);
  } else {
    size_t total = 0;
    for (const Part& part : *parts) total += part.entries.size();
    out.entries.reserve(total);
    for (Part& part : *parts) {
      std::move(part.entries.begin(), part.entries.end(), std::back_inserter(out.entries));
    }
  }
  for (const Part& part : *parts) out.seqs.push_back(part.seq);
  out.seq = out.seqs[0];
  std::sort(out.entries.begin(), out.entries.end(), [](const KvEntry& a, const KvEntry& b) {
    return a.node != b.node ? a.node < b.node : a.key < b.key;
  });
  return out;
}

absl::StatusOr<std::vector<MemberInfo>> Node::Members() {
  using Result = std::vector<MemberInfo>;
  auto members_of = [](Runtime& rt) -> absl::StatusOr<Result> {
    const Engine& e = rt.engine();
    const TimeUs now = io::MonotonicNowUs();
    Result out;
    out.reserve(e.cluster().size());
    for (const NodeState* ns : e.cluster().nodes()) {
      MemberInfo m;
      m.name = ns->name();
      m.generation = ns->generation();
      m.gossip_addr = ns->endpoint;
      m.is_self = ns == &e.self();
      if (m.is_self) {
        m.state = ns->leaving ? MemberState::kLeft : MemberState::kAlive;
      } else {
        m.state = ns->liveness.state;
        m.phi = e.membership().Phi(*ns, now);
      }
      m.heartbeat = ns->heartbeat;
      m.max_version = ns->max_version();
      m.last_gc_version = ns->last_gc_version();
      m.keys = ns->num_live();
      m.tombstones = ns->num_tombstones();
      // Remote input: only a well-formed label (printable ASCII) is reported.
      if (const std::string_view loc = LocalityOf(*ns); ValidateLocality(loc).ok()) {
        m.locality = std::string(loc);
      }
      out.push_back(std::move(m));
    }
    std::sort(out.begin(), out.end(),
              [](const MemberInfo& a, const MemberInfo& b) { return a.name < b.name; });
    return out;
  };
  if (loops_.size() == 1) return Call<Result>(0, members_of);
  // States, addresses and phi are shard 0's (it alone decides liveness); keys, tombstones
  // and max_version (the owner's writes) are summed over the shards' slices.
  auto each = CallEach<Result>(members_of);
  if (!each.ok()) return each.status();
  Result out = std::move((*each)[0]);
  absl::flat_hash_map<std::string_view, MemberInfo*> by_name;
  for (MemberInfo& m : out) by_name[m.name] = &m;
  for (size_t s = 1; s < each->size(); ++s) {
    for (const MemberInfo& m : (*each)[s]) {
      auto it = by_name.find(m.name);
      if (it == by_name.end()) continue;  // not (yet, or any more) known to shard 0
      it->second->keys += m.keys;
      it->second->tombstones += m.tombstones;
      it->second->max_version += m.max_version;
    }
  }
  return out;
}

absl::StatusOr<NodeStats> Node::Stats() {
  absl::StatusOr<NodeStats> result = Call<NodeStats>(0, &Node::StatsOf);
  if (result.ok()) result->subscription_overflows = dispatcher_->overflows();
  return result;
}

absl::StatusOr<std::vector<NodeStats>> Node::ShardStats() {
  absl::StatusOr<std::vector<NodeStats>> result = CallEach<NodeStats>(&Node::StatsOf);
  if (result.ok()) (*result)[0].subscription_overflows = dispatcher_->overflows();
  return result;
}

absl::StatusOr<NodeStats> Node::StatsOf(Runtime& rt) {
    NodeStats s = rt.counters();
    const io::Transport& t = rt.loop().transport();
    s.transport_name = t.name();
    s.transport = t.stats();
    s.engine = rt.engine().stats();
    s.apply = rt.engine().apply_stats();
    s.build = rt.engine().build_stats();
    s.loop = rt.loop().stats();
    const Engine& e = rt.engine();
    s.rumor = e.rumor_stats();
    s.probe = e.probe_stats();
    s.rumors_hot = e.epidemic_hot();
    s.forgotten_remembered = e.cluster().forgotten_count();
    for (const NodeState* ns : e.cluster().nodes()) {
      const bool self = ns == &e.self();
      const MemberState st = self ? (ns->leaving ? MemberState::kLeft : MemberState::kAlive)
                                  : ns->liveness.state;
      ++s.members_by_state[static_cast<size_t>(st)];
      (self ? s.keys_local : s.keys_replicated) += ns->num_live();
      (self ? s.tombstones_local : s.tombstones_replicated) += ns->num_tombstones();
      if (self) s.expiring_local = ns->num_expiring();
      s.arena_allocated_bytes += ns->arena().allocated_bytes();
      s.arena_live_bytes += ns->arena().live_bytes();
    }
    s.watch = rt.events().stats();
    return s;
}

absl::StatusOr<KvSnapshot> Node::Snapshot(std::string_view prefix, std::string_view node) {
  return ScanShards(prefix, node, /*with_ttl=*/false);
}

std::unique_ptr<Subscription> Node::Subscribe(WatchFilter filter,
                                              std::function<void(const WatchEvent&)> callback) {
  const uint64_t id = dispatcher_->Add(std::move(filter), std::move(callback));
  return std::unique_ptr<Subscription>(new Subscription(dispatcher_, id));
}

}  // namespace scuttle
