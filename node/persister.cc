#include "node/persister.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/membership.h"
#include "spdlog/spdlog.h"
#include "wire/absl_compat.h"

namespace scuttle {
namespace {

bool SameContent(const PersistedState& a, const PersistedState& b) {
  if (a.members != b.members || a.keys.size() != b.keys.size()) return false;
  for (size_t i = 0; i < a.keys.size(); ++i) {
    const PersistedKey& x = a.keys[i];
    const PersistedKey& y = b.keys[i];
    if (x.key != y.key || x.value != y.value || x.version != y.version ||
        (x.expires_unix_us == 0) != (y.expires_unix_us == 0)) {
      return false;
    }
  }
  return true;
}

}  // namespace

Persister::Persister(std::string dir, absl::Duration interval)
    : dir_(std::move(dir)), interval_(interval) {}

Persister::~Persister() { Stop(); }

std::vector<std::string> Persister::Load() {
  auto st = ReadState(dir_, kMaxFileBytes);
  if (!st.ok()) {
    const std::string path = absl::StrCat(dir_, "/", kStateFileName);
    const std::string aside =
        absl::StrCat(path, ".corrupt.", absl::ToUnixSeconds(absl::Now()));
    std::rename(path.c_str(), aside.c_str());
    spdlog::error("data_dir: {}; not loaded (moved to {}), starting empty",
                  SV(st.status().message()), aside);
    return {};
  }
  if (!st->has_value()) {
    spdlog::info("data_dir: {}: no saved state, first start", dir_);
    return {};
  }
  loaded_ = std::move(**st);
  spdlog::info("data_dir: loaded {} keys and {} members saved by generation {}",
               loaded_->keys.size(), loaded_->members.size(), loaded_->generation);
  return loaded_->members;
}

void Persister::Restore(Node* node) {
  node_ = node;
  if (loaded_.has_value()) {
    const int64_t now_us = absl::ToUnixMicros(absl::Now());
    size_t restored = 0, expired = 0, failed = 0;
    for (const PersistedKey& k : loaded_->keys) {
      absl::StatusOr<Version> v;
      if (k.expires_unix_us != 0) {
        if (k.expires_unix_us <= now_us) {
          ++expired;
          continue;
        }
        v = node->SetWithTtl(k.key, k.value, absl::Microseconds(k.expires_unix_us - now_us));
      } else {
        v = node->Set(k.key, k.value);
      }
      if (v.ok()) {
        ++restored;
      } else {
        ++failed;
        spdlog::warn("data_dir: key '{}' not restored: {}", k.key, SV(v.status().message()));
      }
    }
    spdlog::info("data_dir: restored {} keys under generation {} ({} expired while down, {} "
                 "refused)",
                 restored, node->generation(), expired, failed);
    loaded_.reset();
  }
  thread_ = std::thread([this] { Loop(); });
}

void Persister::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    SyncOnce();
    lock.lock();
    cv_.wait_for(lock, absl::ToChronoMicroseconds(interval_), [this] { return stop_; });
  }
}

void Persister::SyncOnce() {
  auto keys = node_->Scan("", node_->name());
  auto members = node_->Members();
  if (!keys.ok() || !members.ok()) return;  // the loop is busy or stopping: next time
  PersistedState st;
  st.generation = node_->generation();
  st.written_unix_us = absl::ToUnixMicros(absl::Now());
  for (KvEntry& e : *keys) {
    if (e.key.starts_with(kReservedKeyPrefix)) continue;  // scuttle re-gossips its own
    st.keys.push_back(PersistedKey{std::move(e.key), std::move(e.value), e.version,
                                   e.expires_in_us > 0 ? st.written_unix_us + e.expires_in_us
                                                       : 0});
  }
  for (const MemberInfo& m : *members) {
    if (m.is_self || m.state == MemberState::kLeft || m.state == MemberState::kDead) continue;
    if (st.members.size() >= kMaxSavedMembers) break;
    st.members.push_back(m.gossip_addr.ToString());
  }
  if (have_last_ && SameContent(st, last_)) return;
  if (absl::Status s = WriteState(dir_, st); !s.ok()) {
    if (!failing_) spdlog::error("data_dir: saving state failed: {}", SV(s.message()));
    failing_ = true;
    return;
  }
  if (failing_) spdlog::info("data_dir: saving state works again");
  failing_ = false;
  last_ = std::move(st);
  have_last_ = true;
}

void Persister::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  SyncOnce();  // the final state, with the node still running
}

}  // namespace scuttle
