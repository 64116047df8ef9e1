#include "sim/cluster_sim.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "wire/absl_compat.h"

namespace scuttle::sim {
namespace {

constexpr uint16_t kGossipPort = 7400;
constexpr uint64_t kFullRecheckPairs = uint64_t{2000} * 2000;

uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t HashBytes(std::span<const uint8_t> b) {
  uint64_t h = Mix(b.size());
  size_t i = 0;
  for (; i + 8 <= b.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, b.data() + i, 8);
    h = Mix(h ^ w);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, b.data() + i, b.size() - i);
  return Mix(h ^ tail);
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// ---- Per-node plumbing -------------------------------------------------------------------

struct ClusterSim::Node {
  uint32_t index = 0;
  std::string name;
  Endpoint ep;
  Generation gen = 1;
  TimeUs offset_us = 0;
  double drift = 0;
  std::unique_ptr<NodeSink> sink;
  std::unique_ptr<NodeEvents> events;
  std::unique_ptr<Engine> engine;
  uint64_t incarnation = 0;
  uint32_t down_since = 0;
  TimeUs crashed_at_us = 0;
  TimeUs paused_until_us = 0;  // paused while now < this
  uint32_t started_round = 0;  // the round the current engine started
  int64_t restart_round = -1;  // while down: the round it comes back, or -1 for never
  // fresh_keys workload: this incarnation's live keys, and the next key number.
  std::vector<std::string> fresh_live;
  uint64_t next_key = 0;
};

// Lends the simulator's one send buffer; a committed datagram is copied into the network.
class ClusterSim::NodeSink final : public PacketSink {
 public:
  NodeSink(ClusterSim* sim, uint32_t node) : sim_(sim), node_(node) {}
  std::span<uint8_t> Acquire(size_t min_bytes) override {
    std::vector<uint8_t>& buf = sim_->send_buf_;
    if (buf.size() < min_bytes) buf.resize(min_bytes);
    return {buf.data(), buf.size()};
  }
  void Commit(const Endpoint& to, std::span<const uint8_t> packet) override {
    sim_->Send(node_, to, packet);
  }
  void Abort() override {}

 private:
  ClusterSim* sim_;
  uint32_t node_;
};

// Owner-side events feed the checker's histories; replica-side ones its per-delivery
// capture.
class ClusterSim::NodeEvents final : public EventSink {
 public:
  NodeEvents(ClusterSim* sim, uint32_t node) : sim_(sim), node_(node) {}
  void OnKey(const NodeState& node, KeyEvent event, std::string_view key, std::string_view value,
             Version version) override {
    const Node& self = *sim_->nodes_[node_];
    if (node.name() == self.name) {
      sim_->Hash(Mix(version) ^
                 HashBytes({reinterpret_cast<const uint8_t*>(key.data()), key.size()}));
      if (event == KeyEvent::kExpired) sim_->MarkActivity();
      if (event != KeyEvent::kSet) sim_->OnOwnerDelete(node_);
      if (sim_->config_.check_invariants) {
        sim_->checker_->OnOwnerKey(node_, node.generation(), event, key, value, version);
      }
    } else if (sim_->config_.check_invariants) {
      sim_->checker_->OnReplicaKey(node, event, key, version);
    }
  }
  void OnMember(const NodeState& node, MemberEvent event) override {
    if (event == MemberEvent::kDead) sim_->OnDeadEvent(node_, node);
  }
  void OnReset(const NodeState& node) override {
    if (sim_->config_.check_invariants) sim_->checker_->OnReplicaReset(node);
  }

 private:
  ClusterSim* sim_;
  uint32_t node_;
};

// ---- Setup -------------------------------------------------------------------------------

ClusterSim::ClusterSim(ClusterSimConfig config)
    : config_(std::move(config)),
      rng_(config_.seed),
      tamper_rng_(Mix(config_.seed ^ 0x7a3d5eed)),
      pool_(config_.max_inflight_packets) {
  wall_start_ = WallSeconds();
  Resolve();
  stats_.nodes = config_.nodes;
  stats_.seed = config_.seed;
  is_deleter_.assign(config_.nodes, false);
  std::vector<std::string> names;
  for (uint32_t i = 0; i < config_.nodes; ++i) {
    auto n = std::make_unique<Node>();
    n->index = i;
    n->name = absl::StrFormat("n%05u", i);
    n->ep = Endpoint::V4((127u << 24) | (i + 1), kGossipPort);
    if (config_.max_clock_offset_us > 0) {
      n->offset_us = static_cast<TimeUs>(rng_.Below(2 * config_.max_clock_offset_us + 1)) -
                     config_.max_clock_offset_us;
    }
    if (config_.max_drift > 0) n->drift = (2 * rng_.Unit() - 1) * config_.max_drift;
    n->sink = std::make_unique<NodeSink>(this, i);
    n->events = std::make_unique<NodeEvents>(this, i);
    names.push_back(n->name);
    nodes_.push_back(std::move(n));
  }
  ClusterChecker::Options co;
  co.seed = config_.seed;
  co.strict_seed_invariant = config_.strict_seed_invariant;
  co.stale_regression_is_violation = config_.stale_regression_is_violation;
  co.max_recorded = config_.max_recorded_violations;
  co.log = config_.log;
  checker_ = std::make_unique<ClusterChecker>(co, std::move(names));
  for (auto& n : nodes_) {
    StartEngine(*n);
    // First ticks spread over the first round.
    ScheduleTick(*n, static_cast<TimeUs>(rng_.Below(config_.gossip_interval_us)));
  }
}

ClusterSim::~ClusterSim() = default;

void ClusterSim::Resolve() {
  ClusterSimConfig& c = config_;
  c.nodes = std::max<uint32_t>(c.nodes, 1);
  c.gossip_interval_us = std::max<TimeUs>(c.gossip_interval_us, 1000);
  if (c.dead_bound_rounds == 0) {
    // phi >= threshold once silence exceeds threshold / log10(e) mean intervals; the mean
    // is at most max(initial, max_interval). Plus slack for hearing of the node at all.
    const double worst_mean = static_cast<double>(
        std::max(c.membership.initial_interval_us, c.membership.max_interval_us));
    const double silence = c.membership.phi_threshold / M_LOG10E * worst_mean;
    c.dead_bound_rounds =
        static_cast<uint32_t>(std::ceil(silence / static_cast<double>(c.gossip_interval_us))) + 15;
  }
  if (c.converge_bound_rounds == 0) c.converge_bound_rounds = 40;
  const uint32_t quiet = c.converge_bound_rounds;
  if (c.write_stop_round == 0) c.write_stop_round = c.rounds > quiet ? c.rounds - quiet : 0;
  if (c.fault_stop_round == 0) {
    // Random crashes stop early enough that pending restarts land before writes stop.
    const uint32_t margin = c.crash_rate > 0 ? c.restart_max_rounds : 0;
    c.fault_stop_round = c.write_stop_round > margin ? c.write_stop_round - margin : 0;
  }
}

TimeUs ClusterSim::LocalTime(const Node& n, TimeUs t) const {
  return t + n.offset_us + static_cast<TimeUs>(static_cast<double>(t - kStartUs) * n.drift);
}

void ClusterSim::StartEngine(Node& n) {
  EngineConfig cfg;
  cfg.cluster_id = "sim";
  cfg.node_name = n.name;
  cfg.generation = n.gen;
  cfg.advertise = n.ep;
  cfg.max_packet_bytes = config_.max_packet_bytes;
  cfg.fanout = config_.fanout;
  cfg.gossip_interval_us = config_.gossip_interval_us;
  cfg.tombstone_grace_us = config_.tombstone_grace_us;
  cfg.frontier_gc = config_.frontier_gc;
  cfg.membership = config_.membership;
  cfg.limits.max_nodes = std::max<size_t>(cfg.limits.max_nodes, config_.nodes + 16);
  for (uint32_t s = 0; s < std::min(config_.num_seeds, config_.nodes); ++s) {
    cfg.seeds.push_back(nodes_[s]->ep);
  }
  cfg.rng_seed = Mix(config_.seed ^ Mix(n.index) ^ Mix(n.gen << 32));
  if (config_.configure_engine) config_.configure_engine(n.index, &cfg);
  n.engine = std::make_unique<Engine>(std::move(cfg), n.sink.get(), n.events.get());
  n.started_round = round_;
  ++n.incarnation;
}

void ClusterSim::ScheduleTick(Node& n, TimeUs after) {
  SimEvent e;
  e.at = now_us_ + std::max<TimeUs>(after, 1);
  e.kind = SimEventKind::kTick;
  e.node = n.index;
  e.tag = n.incarnation;
  queue_.Push(e);
}

bool ClusterSim::up(uint32_t node) const { return nodes_[node]->engine != nullptr; }
const Engine& ClusterSim::engine(uint32_t node) const { return *nodes_[node]->engine; }
Engine& ClusterSim::mutable_engine(uint32_t node) { return *nodes_[node]->engine; }
const std::string& ClusterSim::name(uint32_t node) const { return nodes_[node]->name; }

void ClusterSim::Hash(uint64_t x) { stats_.trace_hash = Mix(stats_.trace_hash ^ x); }

// ---- Faults ------------------------------------------------------------------------------

void ClusterSim::Crash(uint32_t node) {
  Node& n = *nodes_[node];
  if (n.engine == nullptr) return;
  if (config_.check_invariants) checker_->CheckOwnerModel(node, n.engine->self());
  AbsorbStats(*n.engine);
  n.engine.reset();
  n.down_since = round_;
  n.crashed_at_us = now_us_;
  n.restart_round = -1;
  ++stats_.crashes;
  Hash(Mix(0xc0ffee) ^ node);
  MarkActivity();
}

void ClusterSim::Restart(uint32_t node) {
  Node& n = *nodes_[node];
  if (n.engine != nullptr) return;
  ++n.gen;  // DESIGN §1: a restart takes a new, larger generation
  n.fresh_live.clear();
  StartEngine(n);
  ScheduleTick(n, static_cast<TimeUs>(rng_.Below(config_.gossip_interval_us)));
  n.restart_round = -1;
  ++stats_.restarts;
  Hash(Mix(0xbeef) ^ node);
  MarkActivity();
}

void ClusterSim::Pause(uint32_t node, TimeUs duration_us) {
  Node& n = *nodes_[node];
  if (n.engine == nullptr) return;
  n.paused_until_us = std::max(n.paused_until_us, now_us_ + duration_us);
  ++stats_.pauses;
  Hash(Mix(0x9a05e) ^ node);
  MarkActivity();
}

bool ClusterSim::paused(uint32_t node) const { return now_us_ < nodes_[node]->paused_until_us; }

// Names are "n%05u": the index is the number.
void ClusterSim::OnDeadEvent(uint32_t /*observer*/, const NodeState& node) {
  const uint32_t x = static_cast<uint32_t>(std::atoi(node.name().data() + 1));
  if (x >= nodes_.size()) return;
  const Node& n = *nodes_[x];
  if (node.generation() != n.gen) return;  // an older incarnation: rightly dead
  if (n.engine == nullptr) {
    stats_.detection_intervals.push_back(static_cast<double>(now_us_ - n.crashed_at_us) /
                                         static_cast<double>(config_.gossip_interval_us));
  } else if (now_us_ < n.paused_until_us + 3 * config_.gossip_interval_us) {
    ++stats_.paused_declared_dead;
  } else {
    ++stats_.false_deaths;
  }
}

void ClusterSim::Partition(const std::vector<uint32_t>& group_of_node) {
  group_ = group_of_node;
  group_.resize(nodes_.size(), 0);
  MarkActivity();
}

void ClusterSim::Heal() {
  group_.clear();
  last_heal_round_ = round_;
  MarkActivity();
}

bool ClusterSim::Partitioned(uint32_t a, uint32_t b) const {
  return !group_.empty() && group_[a] != group_[b];
}

void ClusterSim::RandomFaults() {
  const ClusterSimConfig& c = config_;
  if (c.partition_at > 0 && round_ == c.partition_at) {
    std::vector<uint32_t> perm(nodes_.size());
    for (uint32_t i = 0; i < perm.size(); ++i) perm[i] = i;
    for (uint32_t i = 0; i + 1 < perm.size(); ++i) {
      std::swap(perm[i], perm[i + rng_.Below(perm.size() - i)]);
    }
    std::vector<uint32_t> groups(nodes_.size());
    for (uint32_t i = 0; i < perm.size(); ++i) {
      groups[perm[i]] = i % std::max<uint32_t>(c.partition_groups, 1);
    }
    Partition(groups);
  }
  if (c.heal_at > 0 && round_ == c.heal_at) Heal();
  for (auto& n : nodes_) {
    if (n->engine == nullptr && n->restart_round >= 0 && n->restart_round <= round_) {
      Restart(n->index);
    }
  }
  if (c.pause_rate > 0 && round_ > 0 && round_ < c.fault_stop_round) {
    for (auto& n : nodes_) {
      if (n->engine != nullptr && !paused(n->index) && rng_.Chance(c.pause_rate)) {
        Pause(n->index, c.pause_us);
      }
    }
  }
  if (c.crash_rate <= 0 || round_ >= c.fault_stop_round || round_ == 0) return;
  uint32_t down = 0;
  for (auto& n : nodes_) down += n->engine == nullptr;
  const uint32_t max_down =
      static_cast<uint32_t>(c.max_down_fraction * static_cast<double>(nodes_.size()));
  for (auto& n : nodes_) {
    if (n->engine == nullptr || !rng_.Chance(c.crash_rate) || down >= max_down) continue;
    Crash(n->index);
    ++down;
    if (rng_.Chance(c.restart_prob)) {
      const uint32_t span =
          c.restart_max_rounds - std::min(c.restart_min_rounds, c.restart_max_rounds);
      n->restart_round = round_ + c.restart_min_rounds + rng_.Below(span + 1);
    }
  }
}

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
    key = absl::StrCat("f", on.next_key++);
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

// ---- Network -----------------------------------------------------------------------------

int32_t ClusterSim::NodeOf(const Endpoint& ep) const {
  if (ep.family != 4 || ep.port != kGossipPort || ep.addr[0] != 127) return -1;
  const uint32_t host = (uint32_t{ep.addr[1]} << 16) | (uint32_t{ep.addr[2]} << 8) | ep.addr[3];
  if (host == 0 || host > nodes_.size()) return -1;
  return static_cast<int32_t>(host - 1);
}

void ClusterSim::Send(uint32_t from, const Endpoint& to, std::span<const uint8_t> bytes) {
  ++stats_.packets_sent;
  stats_.bytes_sent += bytes.size();
  const int32_t dst = NodeOf(to);
  if (dst < 0) {
    ++stats_.dropped_no_route;
    return;
  }
  const uint32_t d = static_cast<uint32_t>(dst);
  const LinkModel link = config_.link_override ? config_.link_override(from, d) : config_.link;
  if (Partitioned(from, d)) {
    ++stats_.dropped_partition;
    return;
  }
  if (rng_.Chance(link.loss)) {
    ++stats_.dropped_loss;
    return;
  }
  const int copies = rng_.Chance(link.dup) ? 2 : 1;
  stats_.duplicated += copies - 1;
  for (int c = 0; c < copies; ++c) {
    SimEvent e;
    e.at = now_us_ + DrawDelay(link, rng_);
    e.kind = SimEventKind::kDatagram;
    e.node = d;
    e.from = from;
    if (!pool_.Alloc(bytes, &e.slot)) {
      ++stats_.dropped_queue_full;
      continue;
    }
    queue_.Push(e);
  }
}

void ClusterSim::OnDatagram(const SimEvent& e) {
  Node& n = *nodes_[e.node];
  if (n.engine == nullptr || Partitioned(e.from, e.node)) {
    ++(n.engine == nullptr ? stats_.dropped_down : stats_.dropped_partition);
    pool_.Free(e.slot);
    return;
  }
  if (now_us_ < n.paused_until_us) {
    ++stats_.dropped_paused;
    pool_.Free(e.slot);
    return;
  }
  // Moved out of the pool while delivering: replies may grow the pool's slot vector.
  std::vector<uint8_t> data = std::move(pool_.Get(e.slot));
  if (config_.tamper) {
    if (config_.tamper(e.from, e.node, &data, tamper_rng_)) ++stats_.tampered;
  }
  Hash(Mix(static_cast<uint64_t>(now_us_)) ^ Mix((uint64_t{e.from} << 32) | e.node) ^
       HashBytes(data));
  const bool check = config_.check_invariants;
  if (check) checker_->BeforeDeliver(e.node, e.from, *n.engine, data);
  n.engine->OnPacket(LocalTime(n, now_us_), nodes_[e.from]->ep, data);
  if (check) checker_->AfterDeliver(e.node, *n.engine);
  ++stats_.packets_delivered;
  pool_.Get(e.slot) = std::move(data);
  pool_.Free(e.slot);
}

void ClusterSim::OnTick(const SimEvent& e) {
  Node& n = *nodes_[e.node];
  if (n.engine == nullptr || e.tag != n.incarnation) return;
  if (now_us_ < n.paused_until_us) {  // the timer fires late, when the process resumes
    ScheduleTick(n, n.paused_until_us - now_us_);
    return;
  }
  n.engine->OnTick(LocalTime(n, now_us_));
  const double period = static_cast<double>(config_.gossip_interval_us) / (1.0 + n.drift);
  const double jitter = 1.0 + config_.tick_jitter * (2.0 * rng_.Unit() - 1.0);
  ScheduleTick(n, static_cast<TimeUs>(period * jitter));
}

void ClusterSim::ProcessUntil(TimeUs end) {
  while (!queue_.empty() && queue_.top().at < end) {
    const SimEvent e = queue_.Pop();
    now_us_ = e.at;
    switch (e.kind) {
      case SimEventKind::kDatagram:
        OnDatagram(e);
        break;
      case SimEventKind::kTick:
        OnTick(e);
        break;
      case SimEventKind::kWrite:
        DoWrite();
        break;
    }
  }
  now_us_ = end;
}

// ---- Rounds ------------------------------------------------------------------------------

void ClusterSim::RunRounds(uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    const TimeUs start = kStartUs + static_cast<TimeUs>(round_) * config_.gossip_interval_us;
    now_us_ = std::max(now_us_, start);
    checker_->set_round(round_);
    RandomFaults();
    ScheduleWrites();
    ProcessUntil(start + config_.gossip_interval_us);
    CheckConvergence();
    CheckMembership(false);
    SampleTombstones();
    ++round_;
    if (config_.stop_when_converged && stats_.converged && Settled()) break;
  }
}

// No write, fault, heal or restart is still to come.
bool ClusterSim::Settled() const {
  const ClusterSimConfig& c = config_;
  if (round_ < c.write_stop_round && c.write_rate > 0) return false;
  if (c.heal_at > 0 && round_ <= c.heal_at) return false;
  if (c.crash_rate > 0 && round_ < c.fault_stop_round) return false;
  for (const auto& n : nodes_) {
    if (n->engine == nullptr && n->restart_round >= 0) return false;
  }
  return true;
}

void ClusterSim::OnOwnerDelete(uint32_t owner) {
  if (!is_deleter_[owner]) {
    is_deleter_[owner] = true;
    deleters_.push_back(owner);
  }
  auto& per_round = stats_.deletes_per_round;
  if (per_round.size() <= round_) per_round.resize(round_ + 1, 0);
  ++per_round[round_];
}

// Tombstones exist only for owners that deleted (or expired) something, so this costs
// up replicas × deleting owners, not N².
void ClusterSim::SampleTombstones() {
  uint64_t round_max = 0;
  for (const auto& r : nodes_) {
    if (r->engine == nullptr) continue;
    uint64_t held = 0;
    for (uint32_t o : deleters_) {
      if (const NodeState* s = r->engine->FindNode(nodes_[o]->name); s != nullptr) {
        held += s->num_tombstones();
      }
    }
    round_max = std::max(round_max, held);
  }
  stats_.final_max_tombstones_per_replica = round_max;
  stats_.max_tombstones_by_round.push_back(round_max);
  stats_.max_tombstones_per_replica = std::max(stats_.max_tombstones_per_replica, round_max);
}

const ClusterSimStats& ClusterSim::Run() {
  if (round_ < config_.rounds) RunRounds(config_.rounds - round_);
  return Finish();
}

bool ClusterSim::PairConverged(uint32_t replica, uint32_t owner) const {
  const Node& r = *nodes_[replica];
  const Node& o = *nodes_[owner];
  if (r.engine == nullptr || o.engine == nullptr || replica == owner) return true;
  const NodeState* s = r.engine->FindNode(o.name);
  return s != nullptr && s->generation() == o.gen &&
         s->max_version() == o.engine->self().max_version();
}

bool ClusterSim::Converged() const {
  const uint64_t n = nodes_.size();
  const uint64_t pairs = n * n;
  if (witness_ >= pairs) witness_ = 0;
  // Row-major over (replica, owner) pairs, starting at the last failure and wrapping.
  for (uint64_t k = 0; k < pairs; ++k) {
    const uint64_t p = (witness_ + k) % pairs;
    if (!PairConverged(static_cast<uint32_t>(p / n), static_cast<uint32_t>(p % n))) {
      witness_ = p;
      return false;
    }
  }
  return true;
}

// Called at the end of every round: convergence is measured from the last round with a
// write, crash, restart, partition, heal or TTL expiry.
void ClusterSim::CheckConvergence() {
  if (last_activity_round_ == round_) {
    stats_.converged = false;
    stats_.rounds_to_converge = -1;
    return;
  }
  // Staying converged costs a full pass over the N² pairs; past 2,000 nodes (seconds per
  // pass) it is re-verified every 8 rounds and at Finish().
  const uint64_t n = nodes_.size();
  if (stats_.converged && n * n > kFullRecheckPairs && (round_ - last_activity_round_) % 8 != 0) {
    return;
  }
  if (!Converged()) {
    stats_.converged = false;
    stats_.rounds_to_converge = -1;
    return;
  }
  if (stats_.converged) return;
  stats_.converged = true;
  stats_.rounds_to_converge = round_ - last_activity_round_;
  if (!config_.check_invariants) return;
  // Equal max_versions imply equal maps under the seed invariant; verify it outright once.
  for (const auto& r : nodes_) {
    if (r->engine == nullptr) continue;
    for (const auto& o : nodes_) {
      if (o->engine == nullptr || o.get() == r.get()) continue;
      checker_->CompareMaps(r->name, *r->engine->FindNode(o->name), o->engine->self(),
                            ViolationKind::kSeedInvariant);
    }
  }
}

// A node down for dead_bound_rounds must be dead (or left, or forgotten) at every up node.
// The bound runs from the latest of: the crash; the observer's own (re)start (it hears of
// the crashed node afresh, its detector starting from the initial interval); the last heal
// (the crashed node's last heartbeats, relayed late across the healed partition, are fresh
// arrivals to the detector). Checked once when a pair reaches the bound and at the end.
void ClusterSim::CheckMembership(bool final_check) {
  for (const auto& x : nodes_) {
    if (x->engine != nullptr) continue;
    for (const auto& r : nodes_) {
      if (r->engine == nullptr) continue;
      const uint32_t down_for =
          round_ - std::max({x->down_since, r->started_round, last_heal_round_});
      if (down_for < config_.dead_bound_rounds) continue;
      if (!final_check && down_for != config_.dead_bound_rounds) continue;
      ++stats_.dead_checks;
      const NodeState* s = r->engine->FindNode(x->name);
      if (s == nullptr || s->generation() > x->gen) continue;
      const MemberState st = s->liveness.state;
      if (st == MemberState::kDead || st == MemberState::kLeft) continue;
      Violation v;
      v.kind = ViolationKind::kNotDeclaredDead;
      v.seed = config_.seed;
      v.round = round_;
      v.replica = r->name;
      v.owner = x->name;
      v.generation = s->generation();
      v.detail = absl::StrCat("down since round ", x->down_since, " (", down_for, " rounds, bound ",
                              config_.dead_bound_rounds, ") but ", MemberStateName(st));
      checker_->Record(std::move(v));
    }
  }
}

// A node up, not paused and silent-free for live_bound_rounds must not be dead at any up
// observer that has held that verdict for live_bound_rounds too: its refutation (a higher
// heartbeat, pushed and gossiped) must have won.
void ClusterSim::CheckLiveNotDead() {
  const TimeUs bound = static_cast<TimeUs>(config_.live_bound_rounds) * config_.gossip_interval_us;
  for (const auto& x : nodes_) {
    if (x->engine == nullptr || now_us_ < x->paused_until_us + bound) continue;
    if (round_ - x->started_round < config_.live_bound_rounds) continue;
    if (!group_.empty() || round_ - last_heal_round_ < config_.live_bound_rounds) continue;
    for (const auto& r : nodes_) {
      if (r->engine == nullptr || r.get() == x.get() || now_us_ < r->paused_until_us) continue;
      const NodeState* s = r->engine->FindNode(x->name);
      if (s == nullptr || s->generation() != x->gen) continue;
      if (s->liveness.state != MemberState::kDead) continue;
      if (LocalTime(*r, now_us_) - s->liveness.state_since_us < bound) continue;
      Violation v;
      v.kind = ViolationKind::kLiveDeclaredDead;
      v.seed = config_.seed;
      v.round = round_;
      v.replica = r->name;
      v.owner = x->name;
      v.generation = s->generation();
      v.detail = absl::StrCat("up and responsive for ", config_.live_bound_rounds,
                              "+ rounds but dead here since ", s->liveness.state_since_us);
      checker_->Record(std::move(v));
    }
  }
}

void ClusterSim::AbsorbStats(const Engine& e) {
  for (size_t i = 0; i < kPartOutcomeCount; ++i) stats_.parts[i] += e.apply_stats().parts[i];
  stats_.entries_applied += e.apply_stats().entries_applied;
  stats_.deltas_truncated += e.build_stats().truncated;
  stats_.resets_sent += e.build_stats().resets;
  stats_.tombstones_gced += e.stats().tombstones_gced;
  stats_.tombstones_gced_frontier += e.stats().tombstones_gced_frontier;
  stats_.keys_expired += e.stats().keys_expired;
  for (size_t i = 0; i < kEngineDropCount; ++i) stats_.engine_drops[i] += e.stats().engine_drops[i];
  const ProbeStats& p = e.probe_stats();
  stats_.refutations_sent += p.refutations_sent;
  stats_.refutations_applied += p.refutations_applied;
  stats_.probes_started += p.suspicions;
  stats_.confirmed_dead += p.confirmed_dead;
  stats_.verdicts_applied += p.verdicts_applied;
  stats_.late_ticks += p.late_ticks;
  for (size_t i = 0; i < wire::kDropReasonCount; ++i) {
    stats_.decode_drops[i] += e.stats().decode_drops[i];
  }
}

const ClusterSimStats& ClusterSim::Finish() {
  if (finished_) return stats_;
  finished_ = true;
  if (round_ > 0) checker_->set_round(round_ - 1);
  if (stats_.converged && !Converged()) {
    stats_.converged = false;
    stats_.rounds_to_converge = -1;
  }
  for (const auto& n : nodes_) {
    if (n->engine == nullptr) continue;
    if (config_.check_invariants) checker_->CheckOwnerModel(n->index, n->engine->self());
    AbsorbStats(*n->engine);
  }
  if (round_ > 0) {
    --round_;  // the checks describe the last round run
    CheckMembership(true);
    CheckLiveNotDead();
    ++round_;
  }
  stats_.rounds = round_;
  stats_.quiet_round = last_activity_round_ + 1;
  // Bounded convergence: once the quiet window is at least the bound, not having
  // converged within it is a violation.
  const uint32_t quiet = round_ > last_activity_round_ + 1 ? round_ - last_activity_round_ - 1 : 0;
  const bool late = stats_.converged &&
                    stats_.rounds_to_converge > static_cast<int64_t>(config_.converge_bound_rounds);
  if ((!stats_.converged && quiet >= config_.converge_bound_rounds) || late) {
    Violation v;
    v.kind = ViolationKind::kNotConverged;
    v.seed = config_.seed;
    v.round = round_ > 0 ? round_ - 1 : 0;
    v.detail = late ? absl::StrCat("converged only after ", stats_.rounds_to_converge,
                                   " quiet rounds; bound ", config_.converge_bound_rounds)
                    : absl::StrCat("not converged ", quiet, " rounds after the last fault/write");
    for (const auto& r : nodes_) {
      if (r->engine == nullptr || !v.replica.empty()) continue;
      for (const auto& o : nodes_) {
        if (o->engine == nullptr || o.get() == r.get()) continue;
        const NodeState* s = r->engine->FindNode(o->name);
        if (s == nullptr || s->generation() != o->gen ||
            s->max_version() != o->engine->self().max_version()) {
          v.replica = r->name;
          v.owner = o->name;
          v.generation = o->gen;
          absl::StrAppend(&v.detail, "; e.g. replica holds ",
                          s == nullptr
                              ? std::string("nothing")
                              : absl::StrCat("gen ", s->generation(), " max ", s->max_version()),
                          ", owner max ", o->engine->self().max_version());
          break;
        }
      }
    }
    checker_->Record(std::move(v));
  }
  stats_.invariant_violations = checker_->violations();
  stats_.stale_regressions = checker_->violations_of(ViolationKind::kStaleRegression);
  for (size_t k = 0; k < static_cast<size_t>(ViolationKind::kCount); ++k) {
    stats_.violations_by_kind[k] = checker_->violations_of(static_cast<ViolationKind>(k));
  }
  stats_.keys_checked = checker_->keys_checked();
  stats_.peak_inflight = pool_.peak_inflight();
  stats_.bytes_per_node_per_round =
      round_ == 0 ? 0
                  : static_cast<double>(stats_.bytes_sent) /
                        (static_cast<double>(nodes_.size()) * static_cast<double>(round_));
  stats_.wall_seconds = WallSeconds() - wall_start_;
  return stats_;
}

}  // namespace scuttle::sim
