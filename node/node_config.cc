// Node: live configuration (PATCH /v1/config) and the gossip keyring.
#include "node/node.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <cstring>
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
#include "io/clock.h"
#include "node/keyring_file.h"
#include "io/socket.h"
#include "spdlog/spdlog.h"
#include "wire/absl_compat.h"
#include "node/node_runtime.h"

namespace scuttle {

// ---- Live configuration ---------------------------------------------------------------------

namespace {

constexpr std::pair<const char*, spdlog::level::level_enum> kLogLevels[] = {
    {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
    {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
    {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
    {"off", spdlog::level::off},
};

std::optional<spdlog::level::level_enum> ParseLogLevel(std::string_view name) {
  for (const auto& [n, level] : kLogLevels) {
    if (name == n) return level;
  }
  return std::nullopt;
}

std::string LogLevelName(spdlog::level::level_enum level) {
  for (const auto& [n, l] : kLogLevels) {
    if (l == level) return n;
  }
  return "info";
}

absl::Status CheckDuration(const char* field, const std::optional<absl::Duration>& d) {
  if (d.has_value() && (*d <= absl::ZeroDuration() || *d == absl::InfiniteDuration())) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", absl::FormatDuration(*d), " must be a positive, finite duration"));
  }
  return absl::OkStatus();
}

LiveConfig CurrentConfig(const Engine& e) {
  const EngineConfig& c = e.config();
  LiveConfig l;
  l.gossip_interval_ms = c.gossip_interval_us / kUsPerMs;
  l.fanout = c.fanout;
  l.phi_threshold = c.membership.phi_threshold;
  l.dead_node_grace = absl::Microseconds(c.membership.dead_node_grace_us);
  l.tombstone_grace = absl::Microseconds(c.tombstone_grace_us);
  l.log_level = LogLevelName(spdlog::get_level());
  l.rumor_k = static_cast<int>(c.epidemic.rumor_options.k);
  return l;
}

}  // namespace

absl::Status ValidateLiveConfigPatch(const LiveConfigPatch& p) {
  if (p.gossip_interval_ms.has_value() &&
      (*p.gossip_interval_ms < 1 || *p.gossip_interval_ms > 3'600'000)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gossip_interval_ms: ", *p.gossip_interval_ms, " is out of range [1, 3600000]"));
  }
  if (p.fanout.has_value() && (*p.fanout < 1 || *p.fanout > 1024)) {
    return absl::InvalidArgumentError(
        absl::StrCat("fanout: ", *p.fanout, " is out of range [1, 1024]"));
  }
  if (p.phi_threshold.has_value() && !(*p.phi_threshold > 0 && *p.phi_threshold <= 1e6)) {
    return absl::InvalidArgumentError(
        absl::StrCat("phi_threshold: ", *p.phi_threshold, " is out of range (0, 1e6]"));
  }
  if (absl::Status s = CheckDuration("dead_node_grace", p.dead_node_grace); !s.ok()) return s;
  if (absl::Status s = CheckDuration("tombstone_grace", p.tombstone_grace); !s.ok()) return s;
  if (p.log_level.has_value() && !ParseLogLevel(*p.log_level).has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("log_level: '", *p.log_level,
                     "' is not one of trace, debug, info, warn, error, critical, off"));
  }
  if (p.rumor_k.has_value() && (*p.rumor_k < 1 || *p.rumor_k > kMaxLiveRumorK)) {
    return absl::InvalidArgumentError(absl::StrCat("rumor_k: ", *p.rumor_k,
                                                   " is out of range [1, ", kMaxLiveRumorK, "]"));
  }
  return absl::OkStatus();
}

namespace {

KeyringInfo KeyringOf(const Engine& e, const std::string& file) {
  const SecurityConfig& sec = e.config().security;
  KeyringInfo info;
  info.cipher = sec.keyring.empty() ? "none" : wire::CipherName(e.cipher());
  info.verify_incoming = sec.verify_incoming;
  info.verify_outgoing = sec.verify_outgoing;
  info.file = file;
  for (const wire::Key& k : sec.keyring.keys()) {
    KeyringInfo::KeyUse u;
    u.fingerprint = k.fingerprint;
    u.primary = &k == &sec.keyring.primary();
    if (u.primary) {
      info.keys.insert(info.keys.begin(), u);
    } else {
      info.keys.push_back(u);
    }
  }
  for (const NodeState* ns : e.cluster().nodes()) {
    const bool self = ns == &e.self();
    if (!self && ns->liveness.state != MemberState::kAlive &&
        ns->liveness.state != MemberState::kSuspect) {
      continue;
    }
    ++info.members;
    std::string_view fp;
    const uint32_t idx = ns->Find(kKeyringKey);
    if (idx != NodeState::kNoSlot && ns->slot(idx).status == KeyStatus::kSet) {
      fp = ns->ValueOf(ns->slot(idx));
    }
    bool matched = false;
    for (KeyringInfo::KeyUse& u : info.keys) {
      if (!fp.empty() && u.fingerprint == fp) {
        ++u.members_primary;
        matched = true;
      }
    }
    if (!matched) ++info.members_other;
  }
  return info;
}

}  // namespace

absl::StatusOr<KeyringInfo> Node::Keyring() {
  return Call<KeyringInfo>(0, [file = keyring_file_](Runtime& rt) -> absl::StatusOr<KeyringInfo> {
    return KeyringOf(rt.engine(), file);
  });
}

absl::StatusOr<KeyringInfo> Node::UpdateKeyring(KeyringOp op, std::string_view key) {
  std::lock_guard<std::mutex> lock(keyring_mu_);
  absl::StatusOr<wire::Keyring> current = Call<wire::Keyring>(0,
      [](Runtime& rt) -> absl::StatusOr<wire::Keyring> {
        return rt.engine().config().security.keyring;
      });
  if (!current.ok()) return current.status();
  wire::Keyring next = *current;
  absl::Status s;
  switch (op) {
    case KeyringOp::kInstall: {
      absl::StatusOr<wire::KeyBytes> bytes = wire::DecodeKey(key);
      s = bytes.ok() ? next.Install(*bytes) : bytes.status();
      break;
    }
    case KeyringOp::kUse: s = next.Use(key); break;
    case KeyringOp::kRemove: s = next.Remove(key); break;
  }
  if (!s.ok()) return s;
  if (!keyring_file_.empty()) {
    if (absl::Status w = WriteKeyringFile(keyring_file_, next); !w.ok()) {
      return absl::InternalError(absl::StrCat("keyring file not written, nothing changed: ", w.message()));
    }
  }
  // Every shard seals with the same keyring and gossips its fingerprint.
  auto each = CallEach<KeyringInfo>([next = std::move(next), file = keyring_file_](
                               Runtime& rt) mutable -> absl::StatusOr<KeyringInfo> {
    Engine& e = rt.engine();
    const std::string fp = next.empty() ? std::string() : next.primary().fingerprint;
    if (rt.shard() == 0) spdlog::info("keyring: {} key(s), primary {}", next.size(), fp);
    e.SetKeyring(std::move(next));
    if (!fp.empty()) {
      if (absl::Status s = e.Set(kKeyringKey, fp, io::MonotonicNowUs()); !s.ok()) return s;
    }
    return KeyringOf(e, file);
  });
  if (!each.ok()) return each.status();
  return std::move((*each)[0]);
}

absl::StatusOr<LiveConfig> Node::GetLiveConfig() {
  return Call<LiveConfig>(0,
      [](Runtime& rt) -> absl::StatusOr<LiveConfig> { return CurrentConfig(rt.engine()); });
}

absl::StatusOr<LiveConfig> Node::UpdateLiveConfig(const LiveConfigPatch& patch) {
  if (absl::Status s = ValidateLiveConfigPatch(patch); !s.ok()) return s;
  // Every shard takes the change (each validates nothing more: done above).
  auto each = CallEach<LiveConfig>([patch](Runtime& rt) -> absl::StatusOr<LiveConfig> {
    EngineConfig& c = rt.engine().mutable_config();
    const LiveConfig before = CurrentConfig(rt.engine());
    auto changed = [&](const char* field, const std::string& from, const std::string& to) {
      if (rt.shard() == 0) spdlog::info("config: {} {} -> {}", field, from, to);
      ++rt.counters().config_changes[field];
    };
    if (patch.gossip_interval_ms.has_value()) {
      rt.SetInterval(*patch.gossip_interval_ms * kUsPerMs);
      changed("gossip_interval_ms", absl::StrCat(before.gossip_interval_ms),
              absl::StrCat(*patch.gossip_interval_ms));
    }
    if (patch.fanout.has_value()) {
      c.fanout = static_cast<int>(*patch.fanout);
      changed("fanout", absl::StrCat(before.fanout), absl::StrCat(*patch.fanout));
    }
    if (patch.phi_threshold.has_value()) {
      c.membership.phi_threshold = *patch.phi_threshold;
      changed("phi_threshold", absl::StrCat(before.phi_threshold),
              absl::StrCat(*patch.phi_threshold));
    }
    if (patch.dead_node_grace.has_value()) {
      c.membership.dead_node_grace_us = absl::ToInt64Microseconds(*patch.dead_node_grace);
      changed("dead_node_grace", absl::FormatDuration(before.dead_node_grace),
              absl::FormatDuration(*patch.dead_node_grace));
    }
    if (patch.tombstone_grace.has_value()) {
      c.tombstone_grace_us = absl::ToInt64Microseconds(*patch.tombstone_grace);
      changed("tombstone_grace", absl::FormatDuration(before.tombstone_grace),
              absl::FormatDuration(*patch.tombstone_grace));
    }
    if (patch.rumor_k.has_value()) {
      rt.engine().SetRumorK(static_cast<int>(*patch.rumor_k));
      changed("rumor_k", absl::StrCat(before.rumor_k), absl::StrCat(*patch.rumor_k));
    }
    if (patch.log_level.has_value()) {
      changed("log_level", before.log_level, *patch.log_level);  // logged at the old level
      if (rt.shard() == 0) spdlog::set_level(*ParseLogLevel(*patch.log_level));
    }
    return CurrentConfig(rt.engine());
  });
  absl::StatusOr<LiveConfig> result =
      each.ok() ? absl::StatusOr<LiveConfig>(std::move((*each)[0])) : each.status();
  if (result.ok()) gossip_interval_us_ = result->gossip_interval_ms * kUsPerMs;
  return result;
}

}  // namespace scuttle
