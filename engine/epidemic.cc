#include "engine/epidemic.h"

#include <algorithm>
#include <cassert>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/node_state.h"
#include "wire/absl_compat.h"

namespace scuttle {

std::string_view ToString(AntiEntropyMode m) {
  switch (m) {
    case AntiEntropyMode::kPushPull: return "push-pull";
    case AntiEntropyMode::kPull: return "pull";
    case AntiEntropyMode::kPush: return "push";
  }
  return "unknown";
}

absl::StatusOr<AntiEntropyMode> ParseAntiEntropyMode(std::string_view s) {
  if (s == "push-pull") return AntiEntropyMode::kPushPull;
  if (s == "pull") return AntiEntropyMode::kPull;
  if (s == "push") return AntiEntropyMode::kPush;
  return absl::InvalidArgumentError(
      absl::StrCat("anti-entropy mode '", AV(s), "': want push, pull or push-pull"));
}

Epidemic::Epidemic(const EpidemicConfig* config)
    : config_(config), monger_(config->rumor_options) {}

uint64_t Epidemic::Intern(std::string_view name) {
  auto it = ids_.find(std::string(name));
  if (it != ids_.end()) return it->second;
  const uint64_t id = names_.size();
  names_.emplace_back(name);
  ids_.emplace(std::string(name), id);
  return id;
}

void Epidemic::set_rumor_k(int k) {
  assert(k >= 1 && static_cast<uint32_t>(k) <= RumorOptions::kMaxK);
  monger_.set_k(static_cast<uint32_t>(k));
}

void Epidemic::OnUpdate(const NodeState& owner, Version version, bool local) {
  if (!config_->rumor) return;
  const RumorId id{Intern(owner.name()), version};
  if (local) {
    monger_.OnLocalUpdate(id);
  } else {
    monger_.OnRemoteUpdate(id);
  }
}

// Groups rumor ids into one (min-1, max] range per owner, skipping owners that vanished
// or whose versions no longer exist (a new generation restarted the numbering).
void Epidemic::Ranges(const Cluster& cluster, const std::vector<RumorId>& ids,
                      std::vector<VersionRange>* out) {
  out->clear();
  for (const RumorId& id : ids) {
    const NodeState* node = cluster.Find(names_[id.owner]);
    if (node == nullptr || id.version == 0 || id.version > node->max_version()) continue;
    auto it = std::find_if(out->begin(), out->end(),
                           [&](const VersionRange& r) { return r.node == node; });
    if (it == out->end()) {
      out->push_back(VersionRange{node, id.version - 1, id.version});
    } else {
      it->from = std::min(it->from, id.version - 1);
      it->to = std::max(it->to, id.version);
    }
  }
}

void Epidemic::PushRanges(const Cluster& cluster, std::vector<VersionRange>* out) {
  scratch_.clear();
  if (config_->rumor) monger_.PushRumors(config_->rumor_options.max_hot_rumors, &scratch_);
  Ranges(cluster, scratch_, out);
}

void Epidemic::PullRanges(const Cluster& cluster, std::vector<VersionRange>* out) {
  scratch_.clear();
  if (config_->rumor) monger_.PullRumors(config_->rumor_options.max_hot_rumors, &scratch_);
  Ranges(cluster, scratch_, out);
}

void Epidemic::OnContact(std::string_view owner, Version from, Version to,
                         bool peer_already_knew) {
  auto it = ids_.find(std::string(owner));
  if (it == ids_.end()) return;
  // Every hot rumor of this owner inside the range took part in the contact.
  scratch_.clear();
  monger_.PushRumors(config_->rumor_options.max_hot_rumors, &scratch_);
  if (scratch_.empty()) monger_.PullRumors(config_->rumor_options.max_hot_rumors, &scratch_);
  for (const RumorId& id : scratch_) {
    if (id.owner == it->second && id.version > from && id.version <= to) {
      monger_.NoteContact(id, peer_already_knew);
    }
  }
}

bool Epidemic::IsRetentionSite(const NodeState& owner, const NodeState& self,
                               size_t cluster_size) const {
  if (config_->retention_sites <= 0) return false;
  if (static_cast<size_t>(config_->retention_sites) >= cluster_size) return true;
  // A stable hash (absl::Hash is salted per process), so simulations replay exactly.
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  mix(owner.name());
  mix(self.name());
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  // h / 2^64 < r / N, computed without overflow.
  return static_cast<double>(h) <
         18446744073709551616.0 * config_->retention_sites / static_cast<double>(cluster_size);
}

}  // namespace scuttle
