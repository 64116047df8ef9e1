#include "engine/rumor.h"

#include <cassert>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {
namespace {

template <typename E, size_t N>
absl::StatusOr<E> ParseEnum(std::string_view what, std::string_view s,
                            const std::pair<std::string_view, E> (&names)[N]) {
  std::string allowed;
  for (const auto& [name, value] : names) {
    if (name == s) return value;
    absl::StrAppend(&allowed, allowed.empty() ? "" : "|", AV(name));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("bad ", AV(what), " '", AV(s), "': want ", allowed));
}

constexpr std::pair<std::string_view, RumorVariant> kVariants[] = {
    {"push", RumorVariant::kPush},
    {"pull", RumorVariant::kPull},
    {"push-pull", RumorVariant::kPushPull}};
constexpr std::pair<std::string_view, RumorRemoval> kRemovals[] = {
    {"feedback", RumorRemoval::kFeedback}, {"blind", RumorRemoval::kBlind}};
constexpr std::pair<std::string_view, RumorDecay> kDecays[] = {{"counter", RumorDecay::kCounter},
                                                               {"coin", RumorDecay::kCoin}};
constexpr std::pair<std::string_view, RumorCounter> kCounters[] = {
    {"consecutive", RumorCounter::kConsecutive}, {"cumulative", RumorCounter::kCumulative}};

template <typename E, size_t N>
std::string_view NameOf(E value, const std::pair<std::string_view, E> (&names)[N]) {
  for (const auto& [name, v] : names) {
    if (v == value) return name;
  }
  return "?";
}

}  // namespace

std::string_view ToString(RumorVariant v) { return NameOf(v, kVariants); }
std::string_view ToString(RumorRemoval r) { return NameOf(r, kRemovals); }
std::string_view ToString(RumorDecay d) { return NameOf(d, kDecays); }
std::string_view ToString(RumorCounter c) { return NameOf(c, kCounters); }
absl::StatusOr<RumorVariant> ParseRumorVariant(std::string_view s) {
  return ParseEnum("variant", s, kVariants);
}
absl::StatusOr<RumorRemoval> ParseRumorRemoval(std::string_view s) {
  return ParseEnum("removal", s, kRemovals);
}
absl::StatusOr<RumorDecay> ParseRumorDecay(std::string_view s) {
  return ParseEnum("decay", s, kDecays);
}
absl::StatusOr<RumorCounter> ParseRumorCounter(std::string_view s) {
  return ParseEnum("counter", s, kCounters);
}

absl::Status ValidateRumorOptions(const RumorOptions& options) {
  if (options.k < 1 || options.k > RumorOptions::kMaxK) {
    return absl::InvalidArgumentError(
        absl::StrCat("k must be in [1, ", RumorOptions::kMaxK, "], got ", options.k));
  }
  if (options.max_hot_rumors < 1 || options.max_hot_rumors > RumorOptions::kMaxHotRumorsLimit) {
    return absl::InvalidArgumentError(absl::StrCat("max_hot_rumors must be in [1, ",
                                                   RumorOptions::kMaxHotRumorsLimit, "], got ",
                                                   options.max_hot_rumors));
  }
  return absl::OkStatus();
}

RumorMonger::RumorMonger(const RumorOptions& options) : options_(options) {
  assert(ValidateRumorOptions(options).ok());
}

bool RumorMonger::AddHot(RumorId id) {
  if (index_.contains(id)) return false;
  if (index_.size() >= options_.max_hot_rumors) {
    // Bounded list: the oldest rumor has had the most chances to spread, and anti-entropy
    // still delivers it to whoever it missed.
    assert(head_ < slots_.size() && slots_[head_].live);  // Kill keeps head_ on a live slot
    Kill(head_);
    ++stats_.dropped_full;
  }
  index_.emplace(id, slots_.size());
  slots_.push_back(Slot{id, 0, true, 0});
  ++stats_.added;
  MaybeCompact();
  assert(index_.size() <= options_.max_hot_rumors);
  return true;
}

void RumorMonger::Kill(size_t pos) {
  assert(pos < slots_.size() && slots_[pos].live);
  slots_[pos].live = false;
  index_.erase(slots_[pos].id);
  while (head_ < slots_.size() && !slots_[head_].live) ++head_;
}

void RumorMonger::MaybeCompact() {
  const size_t live = index_.size();
  if (slots_.size() <= 2 * live + kCompactSlack) return;
  size_t out = 0;
  for (size_t i = head_; i < slots_.size(); ++i) {
    if (!slots_[i].live) continue;
    slots_[out] = slots_[i];
    index_[slots_[out].id] = out;
    ++out;
  }
  assert(out == live);
  slots_.resize(out);
  head_ = 0;
}

void RumorMonger::AppendOldestFirst(size_t max_rumors, std::vector<RumorId>* out) const {
  size_t n = 0;
  for (size_t i = head_; i < slots_.size() && n < max_rumors; ++i) {
    if (!slots_[i].live) continue;
    out->push_back(slots_[i].id);
    ++n;
  }
}

void RumorMonger::PushRumors(size_t max_rumors, std::vector<RumorId>* out) const {
  if (options_.variant == RumorVariant::kPull) return;
  AppendOldestFirst(max_rumors, out);
}

void RumorMonger::PullRumors(size_t max_rumors, std::vector<RumorId>* out) const {
  if (options_.variant == RumorVariant::kPush) return;
  AppendOldestFirst(max_rumors, out);
}

bool RumorMonger::OnContactResult(RumorId id, bool peer_already_knew, Rng& rng) {
  auto it = index_.find(id);
  if (it == index_.end()) {
    ++stats_.stale_results;
    return false;
  }
  const size_t pos = it->second;
  Slot& slot = slots_[pos];
  assert(slot.live && slot.id == id);
  ++stats_.contacts;
  if (peer_already_knew) ++stats_.unnecessary;
  const bool blind = options_.removal == RumorRemoval::kBlind;
  // Feedback: only an unnecessary contact counts. Blind: every contact does (§1.4).
  if (!blind && !peer_already_knew) {
    // The contact spread the rumor. Under the consecutive counter this restarts the count
    // of unnecessary contacts (the reading that reproduces Table 1, docs/demers.md).
    if (options_.counter == RumorCounter::kConsecutive) slot.counter = 0;
    return false;
  }
  bool lose = false;
  if (options_.decay == RumorDecay::kCoin) {
    lose = rng.Below(options_.k) == 0;  // probability 1/k
  } else {
    lose = ++slot.counter >= options_.k;
  }
  if (!lose) return false;
  Kill(pos);
  MaybeCompact();
  ++stats_.lost_interest;
  return true;
}

void RumorMonger::NoteContact(RumorId id, bool peer_already_knew) {
  auto it = index_.find(id);
  if (it == index_.end()) {
    ++stats_.stale_results;
    return;
  }
  Slot& slot = slots_[it->second];
  if (slot.cycle == 0) {
    noted_.push_back(id);
    slot.cycle = peer_already_knew ? 1 : 2;
  } else if (!peer_already_knew) {
    slot.cycle = 2;
  }
}

void RumorMonger::EndCycle(Rng& rng) {
  // OnContactResult may kill and compact, so each rumor is looked up again.
  for (const RumorId& id : noted_) {
    auto it = index_.find(id);
    if (it == index_.end()) continue;  // went cold (evicted) since it was noted
    Slot& slot = slots_[it->second];
    const uint8_t cycle = std::exchange(slot.cycle, 0);
    if (cycle == 0) continue;  // noted twice (evicted and re-added in one cycle)
    OnContactResult(id, /*peer_already_knew=*/cycle == 1, rng);
  }
  noted_.clear();
}

void RumorMonger::set_k(uint32_t k) {
  assert(k >= 1 && k <= RumorOptions::kMaxK);
  options_.k = k;
}

void RumorMonger::Clear() {
  slots_.clear();
  noted_.clear();
  index_.clear();
  head_ = 0;
}

}  // namespace scuttle
