// ClusterSim (sim/cluster_sim.h), the world: setup, the simulated network and the round
// loop. Faults are in cluster_sim_faults.cc, the workload in cluster_sim_workload.cc, the
// convergence checks and the report in cluster_sim_report.cc.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sim/cluster_sim.h"
#include "sim/cluster_sim_node.h"
#include "wire/absl_compat.h"

namespace scuttle::sim {

using cluster_sim_internal::HashBytes;
using cluster_sim_internal::Mix;
using cluster_sim_internal::WallSeconds;
using cluster_sim_internal::kGossipPort;

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
  if (config_.quiet_after_rounds >= 0) cfg.quiet_after_rounds = config_.quiet_after_rounds;
  if (config_.quiet_syn_period >= 0) cfg.quiet_syn_period = config_.quiet_syn_period;
  if (config_.quiet_heartbeats >= 0) cfg.quiet_heartbeats = static_cast<size_t>(config_.quiet_heartbeats);
  if (config_.quiet_buckets >= 0) cfg.quiet_buckets = static_cast<size_t>(config_.quiet_buckets);
  cfg.gossip_interval_us = config_.gossip_interval_us;
  cfg.epidemic.rumor_interval_us = config_.rumor_interval_us;
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
  n.probe_timer_at = 0;
  n.rumor_timer_at = 0;
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
Generation ClusterSim::generation(uint32_t node) const { return nodes_[node]->gen; }

void ClusterSim::Hash(uint64_t x) { stats_.trace_hash = Mix(stats_.trace_hash ^ x); }

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
  ArmTimers(n);
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
  ArmTimers(n);
  const double period = static_cast<double>(config_.gossip_interval_us) / (1.0 + n.drift);
  const double jitter = 1.0 + config_.tick_jitter * (2.0 * rng_.Unit() - 1.0);
  ScheduleTick(n, static_cast<TimeUs>(period * jitter));
}

// The engine's due times are on its local clock (offset, drift); events are in simulated
// time. One armed event per node and clock, moved earlier when the engine wants it sooner;
// a stale one (superseded, or of an earlier incarnation) does nothing when it fires.
void ClusterSim::ArmTimers(Node& n) {
  if (n.engine == nullptr) return;
  ArmTimer(n, SimEventKind::kProbeTimer, n.engine->ProbeDueUs(), &n.probe_timer_at);
  ArmTimer(n, SimEventKind::kRumorTimer, n.engine->RumorCycleDueUs(LocalTime(n, now_us_)),
           &n.rumor_timer_at);
}

void ClusterSim::ArmTimer(Node& n, SimEventKind kind, TimeUs due_local, TimeUs* armed_at) {
  if (due_local == 0) return;
  const TimeUs local_now = LocalTime(n, now_us_);
  const TimeUs at =
      now_us_ + std::max<TimeUs>(1, static_cast<TimeUs>(static_cast<double>(due_local - local_now) /
                                                        (1.0 + n.drift)));
  if (*armed_at > now_us_ && *armed_at <= at) return;
  *armed_at = at;
  SimEvent e;
  e.at = at;
  e.kind = kind;
  e.node = n.index;
  e.tag = n.incarnation;
  queue_.Push(e);
}

void ClusterSim::OnEngineTimer(const SimEvent& e) {
  Node& n = *nodes_[e.node];
  TimeUs* armed = e.kind == SimEventKind::kProbeTimer ? &n.probe_timer_at : &n.rumor_timer_at;
  if (n.engine == nullptr || e.tag != n.incarnation || e.at != *armed) return;
  *armed = 0;
  if (now_us_ < n.paused_until_us) {  // fires late, when the process resumes
    *armed = n.paused_until_us;
    SimEvent later = e;
    later.at = n.paused_until_us;
    queue_.Push(later);
    return;
  }
  if (e.kind == SimEventKind::kProbeTimer) {
    n.engine->OnProbeTimer(LocalTime(n, now_us_));
  } else {
    n.engine->OnRumorCycle(LocalTime(n, now_us_));
  }
  ArmTimers(n);
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
      case SimEventKind::kProbeTimer:
      case SimEventKind::kRumorTimer:
        OnEngineTimer(e);
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
    if (round_ == config_.rounds / 2) {
      stats_.tail_start_bytes = stats_.bytes_sent;
      stats_.tail_start_round = round_;
    }
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

}  // namespace scuttle::sim
