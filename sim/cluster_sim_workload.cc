// ClusterSim: the write workload (which owner writes what, and when).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/shard.h"
#include "sim/cluster_sim.h"
#include "sim/cluster_sim_node.h"
#include "wire/absl_compat.h"

namespace scuttle::sim {

// ---- Workload ----------------------------------------------------------------------------

void ClusterSim::ScheduleWrites() {
  if (round_ < config_.write_start_round || round_ >= config_.write_stop_round ||
      config_.write_rate <= 0) {
    return;
  }
  const double whole = std::floor(config_.write_rate);
  uint64_t n = static_cast<uint64_t>(whole);
  if (rng_.Chance(config_.write_rate - whole)) ++n;
  for (uint64_t i = 0; i < n; ++i) {
    SimEvent e;
    e.at = now_us_ + static_cast<TimeUs>(rng_.Below(config_.gossip_interval_us));
    e.kind = SimEventKind::kWrite;
    queue_.Push(e);
  }
}

// The owner of the next write: with key_nodes = M, one of M evenly spaced nodes (the first
// at N / 2M); otherwise any node. Down owners are skipped by a few random probes, then by
// taking the next up candidate in order. Returns UINT32_MAX when none is up.
uint32_t ClusterSim::PickOwner() {
  const uint32_t n = size();
  const uint32_t m = config_.key_nodes == 0 ? n : std::min(config_.key_nodes, n);
  auto node_of = [&](uint64_t j) {
    return m == n ? static_cast<uint32_t>(j) : static_cast<uint32_t>((2 * j + 1) * n / (2 * m));
  };
  uint64_t j = rng_.Below(m);
  for (int probe = 0; probe < 4 && !up(node_of(j)); ++probe) j = rng_.Below(m);
  for (uint32_t i = 0; i < m && !up(node_of(j)); ++i) j = (j + 1) % m;
  return up(node_of(j)) ? node_of(j) : UINT32_MAX;
}

void ClusterSim::DoWrite() {
  const uint32_t owner = PickOwner();
  if (owner == UINT32_MAX) return;
  Node& on = *nodes_[owner];
  std::string key = absl::StrCat("k", rng_.Below(std::max<uint32_t>(config_.keys, 1)));
  // A shard writes only its own keys (issue #18): draw again, a few times, when the key
  // belongs to another shard; fresh keys skip numbers that are not ours.
  const uint16_t shards = std::max<uint16_t>(config_.shard_count, 1);
  for (int i = 0; i < 64 && shards > 1 && ShardOf(key, shards) != config_.shard; ++i) {
    key = absl::StrCat("k", rng_.Below(std::max<uint32_t>(config_.keys, 1)));
  }
  if (shards > 1 && !config_.fresh_keys && ShardOf(key, shards) != config_.shard) return;
  Engine& e = *on.engine;
  const TimeUs local = LocalTime(on, now_us_);
  const bool del = rng_.Chance(config_.delete_ratio);
  const bool ttl = rng_.Chance(config_.ttl_ratio);
  const uint32_t lo = std::min(config_.value_min_bytes, config_.value_max_bytes);
  const uint32_t len = lo + static_cast<uint32_t>(rng_.Below(config_.value_max_bytes - lo + 1));
  MarkActivity();
  if (config_.fresh_keys) {
    if (del && !on.fresh_live.empty()) {
      // Swap-remove a random live key (a TTL may have expired it already: then the delete
      // is refused and nothing is counted).
      const size_t i = rng_.Below(on.fresh_live.size());
      std::swap(on.fresh_live[i], on.fresh_live.back());
      key = std::move(on.fresh_live.back());
      on.fresh_live.pop_back();
      if (e.Delete(key, local).ok()) ++stats_.deletes;
      return;
    }
    do {
      key = absl::StrCat("f", on.next_key++);
    } while (shards > 1 && ShardOf(key, shards) != config_.shard);
  } else if (del && e.Delete(key, local).ok()) {
    ++stats_.deletes;
    return;
  }
  std::string value = absl::StrCat("w", stats_.writes, ":");
  value.resize(std::max<size_t>(len, value.size()), static_cast<char>('a' + rng_.Below(26)));
  // Small packets bound what one write may carry (Engine::CheckWrite); stay within it so
  // the workload keeps writing, unless even the prefix cannot fit (then errors are counted).
  const size_t room = e.MaxKeyValueBytes();
  if (room > key.size() + 8 && value.size() + key.size() > room) value.resize(room - key.size());
  absl::Status s;
  if (ttl) {
    const TimeUs ttl_us = static_cast<TimeUs>(1 + rng_.Below(10)) * config_.gossip_interval_us;
    s = e.SetWithTtl(key, value, ttl_us, local);
  } else {
    s = e.Set(key, value, local);
  }
  if (s.ok()) {
    ++stats_.writes;
    if (config_.fresh_keys) on.fresh_live.push_back(std::move(key));
  } else {
    ++stats_.write_errors;
  }
}

absl::Status ClusterSim::Write(uint32_t node, std::string_view key, std::string_view value) {
  if (!up(node)) return absl::UnavailableError("node is down");
  MarkActivity();
  absl::Status s = nodes_[node]->engine->Set(key, value, LocalTime(*nodes_[node], now_us_));
  if (s.ok()) ++stats_.writes;
  return s;
}

absl::Status ClusterSim::Erase(uint32_t node, std::string_view key) {
  if (!up(node)) return absl::UnavailableError("node is down");
  MarkActivity();
  absl::Status s = nodes_[node]->engine->Delete(key, LocalTime(*nodes_[node], now_us_));
  if (s.ok()) ++stats_.deletes;
  return s;
}

}  // namespace scuttle::sim
