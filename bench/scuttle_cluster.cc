// scuttle_cluster: the cluster suite (DESIGN §12, issue #7).
//
// N real Engines in one process, each with its own io::Transport on 127.0.0.1:<port>
// (real UDP sockets on loopback), driven by a few worker threads. Each worker sweeps its
// engines: Poll(0) -> Engine::OnPacket, a jittered gossip timer (interval ±10%, as
// node/node.cc arms it) -> Engine::OnTick, then Flush; it sleeps 0.5 ms when a sweep found
// nothing to do. Engine state is touched only by its worker; the main thread posts
// commands (writes, kills, checks) to a worker's queue. Events (EventSink) timestamp
// arrivals on the worker with the same clock the writes use.
//
// Measures, per N in --nodes (default 10,50,100,250) with --interval_ms (300) and fanout 3:
//   membership  time for every node to learn every other (bootstrap from 3 seeds)
//   idle        gossip bytes sent per node per second (transport tx bytes, UDP payload)
//   convergence one write on a random node -> every node has it: time and time/interval
//               (gossip rounds), median and p99 over --writes writes, one at a time
//   load        bytes per node per second under --writes_per_node_per_s writes
//   detection   stop one engine (socket closed, no more gossip): time until every other
//               node's failure detector says dead
// and, for the join, a separate --join_nodes cluster (interval --join_interval_ms) whose
// owners hold --join_mb MB in total (1 KB values), fully replicated before a new node joins
// with three seeds: time until it holds every key (verified on its state), two ways, in
// the same run and interleaved rep-major (--join_reps):
//   anti-entropy  plain Scuttlebutt: welcome off on the joiner (no auto trigger), so the
//                 state arrives as one <= 64 KB delta per handshake, a few per gossip round
//   welcome       the joiner asks seeds[0] for a snapshot (engine/welcome.h)
// A join that has not finished after --join_timeout_s is recorded as timed out, with the
// share of keys it held by then. --nodes=0 runs the join alone (bench/run's join suite).
//
// Output: JSON (--out=FILE).
#define SCUTTLE_BENCH_COUNT_ALLOCS
#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/alloc_counter.h"
#include "bench/json_out.h"
#include "engine/engine.h"
#include "io/clock.h"
#include "io/transport.h"
#include "nlohmann/json.hpp"
#include "sim/flags.h"
#include "wire/absl_compat.h"

ABSL_FLAG(bool, quick, false,
          "CI size: --nodes=10 --interval_ms=100 --writes=3 --idle_s=1 --load_s=1 --join_mb=1 "
          "--join_timeout_s=30 (each unless given)");
ABSL_FLAG(std::vector<std::string>, nodes, std::vector<std::string>({"10", "50", "100", "250"}),
          "cluster sizes, one run each (0: no cluster run, the join only)");
ABSL_FLAG(int32_t, interval_ms, 300, "gossip interval of the cluster runs, 10..10000");
ABSL_FLAG(int32_t, writes, 30, "timed writes (write-to-all), 1..10000");
ABSL_FLAG(double, idle_s, 10, "seconds of idle traffic measured, 0.1..3600");
ABSL_FLAG(double, load_s, 10, "seconds of traffic under writes measured, 0.1..3600");
ABSL_FLAG(double, writes_per_node_per_s, 1.0, "write rate under load, 0..10000");
ABSL_FLAG(int32_t, threads, 2, "worker threads driving the engines, 1..64");
ABSL_FLAG(std::vector<std::string>, join_mb, std::vector<std::string>({"1", "10", "100"}),
          "state sizes a joining node fetches, one run each (0: no join run)");
ABSL_FLAG(int32_t, join_nodes, 5, "cluster size of the join runs, 2..1000");
ABSL_FLAG(int32_t, join_interval_ms, 100, "gossip interval of the join runs, 10..10000");
ABSL_FLAG(std::string, join_mode, "both", "anti-entropy | welcome | both");
ABSL_FLAG(int32_t, join_reps, 1, "repetitions of each join run, 1..100");
ABSL_FLAG(double, join_timeout_s, 300, "give up a join after this, 1..36000");
ABSL_FLAG(std::string, io, "uring", "transport: uring | epoll");
ABSL_FLAG(std::string, out, "", "write the JSON here (default: stdout)");

namespace scuttle::bench {
namespace {

using nlohmann::json;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "scuttle_cluster: %s\n", what.c_str());
  std::exit(1);
}

int64_t NowUs() { return io::MonotonicNowUs(); }
void SleepMs(double ms) { std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms)); }

struct Options {
  std::vector<int> nodes = {10, 50, 100, 250};
  int interval_ms = 300;
  int fanout = 3;
  int writes = 30;
  double idle_s = 10;
  double load_s = 10;
  double write_rate = 1.0;  // writes per node per second under load
  int threads = 2;
  double phi = 8.0;
  io::IoKind io = io::IoKind::kUring;
  std::vector<int> join_mb = {1, 10, 100};
  int join_nodes = 5;
  int join_interval_ms = 100;
  std::string join_mode = "both";  // anti-entropy | welcome | both (welcome: if the engine has it)
  int join_reps = 1;
  double join_timeout_s = 300;
  std::string out;
};

class Bench;

// One engine with its socket.
struct BNode final : public PacketSink, public EventSink {
  int idx = 0;
  std::string name;
  Bench* bench = nullptr;
  std::unique_ptr<io::Transport> t;
  std::unique_ptr<Engine> e;
  bool up = true;
  int64_t next_tick_us = 0;
  Rng jitter{1};
  // Written on the worker, read anywhere.
  std::atomic<uint64_t> tx_bytes{0}, tx_packets{0}, rx_bytes{0};
  std::atomic<uint64_t> replica_keys{0};  // kSet events for other owners' keys
  std::atomic<uint64_t> joined{0};        // kJoined events
  std::atomic<int64_t> arrival_us{0};     // current tracked write seen at
  std::atomic<int64_t> dead_at_us{0};     // current victim declared dead at

  std::span<uint8_t> Acquire(size_t n) override { return t->AcquireTx(n); }
  void Commit(const Endpoint& to, std::span<const uint8_t> p) override { t->CommitTx(to, p); }
  void Abort() override { t->AbortTx(); }
  void OnKey(const NodeState& node, KeyEvent ev, std::string_view key, std::string_view value,
             Version version) override;
  void OnMember(const NodeState& node, MemberEvent ev) override;
};

class Worker {
 public:
  explicit Worker(int id) : id_(id) {}
  void Start() { th_ = std::thread([this] { Run(); }); }
  void Stop() {
    stop_ = true;
    if (th_.joinable()) th_.join();
  }
  void Post(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    cmds_.push_back(std::move(fn));
    has_cmds_ = true;
  }
  // Runs fn on the worker and waits.
  template <typename T>
  T Call(std::function<T()> fn) {
    std::promise<T> p;
    auto f = p.get_future();
    Post([&] { p.set_value(fn()); });
    return f.get();
  }
  std::vector<BNode*> nodes;  // worker thread only (adopt through Post)

 private:
  void Run() {
    std::vector<std::function<void()>> batch;
    while (!stop_.load(std::memory_order_relaxed)) {
      if (has_cmds_.load(std::memory_order_acquire)) {
        {
          std::lock_guard<std::mutex> l(mu_);
          batch.swap(cmds_);
          has_cmds_ = false;
        }
        for (auto& fn : batch) fn();
        batch.clear();
      }
      bool busy = false;
      for (BNode* n : nodes) {
        if (!n->up) continue;
        absl::Status s = n->t->Poll(0, [&](const io::RxDatagram& d) {
          busy = true;
          n->e->OnPacket(NowUs(), d.from, d.data);
        });
        if (!s.ok()) Die(std::string(s.message()));
        const int64_t now = NowUs();
        if (now >= n->next_tick_us) {
          n->e->OnTick(now);
          const double f = 0.9 + 0.2 * n->jitter.Unit();
          n->next_tick_us = now + static_cast<int64_t>(static_cast<double>(n->e->config().gossip_interval_us) * f);
          busy = true;
        }
        if (absl::Status fl = n->t->Flush(); !fl.ok()) Die(std::string(fl.message()));
        const io::TransportStats& st = n->t->stats();
        n->tx_bytes.store(st.tx_bytes, std::memory_order_relaxed);
        n->tx_packets.store(st.tx_packets, std::memory_order_relaxed);
        n->rx_bytes.store(st.rx_bytes, std::memory_order_relaxed);
      }
      if (!busy) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    for (BNode* n : nodes) n->t.reset();  // transports die on their thread
  }

  int id_;
  std::thread th_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::function<void()>> cmds_;
  std::atomic<bool> has_cmds_{false};
};

class Bench {
 public:
  Bench(const Options& o, int interval_ms) : o_(o), interval_ms_(interval_ms) {
    for (int i = 0; i < o.threads; ++i) workers_.push_back(std::make_unique<Worker>(i));
    for (auto& w : workers_) w->Start();
  }
  ~Bench() {
    for (auto& w : workers_) w->Stop();
  }

  // Creates node i (transport on loopback, engine with seeds = the first three nodes).
  // auto_welcome false: the engine never starts a welcome join by itself (plain joins).
  BNode* Add(std::vector<Endpoint> seeds, bool auto_welcome = true) {
    auto n = std::make_unique<BNode>();
    n->idx = static_cast<int>(nodes_.size());
    char name[16];
    std::snprintf(name, sizeof(name), "n%04d", n->idx);
    n->name = name;
    n->bench = this;
    io::TransportOptions to;
    to.kind = o_.io;
    to.bind = Endpoint::V4(INADDR_LOOPBACK, 0);
    to.tx_slot_bytes = wire::kMaxUdpPayloadBytes + 1024;
    to.rx_buffer_count = 64;
    to.tx_slot_count = 64;
    to.socket_rcvbuf_bytes = 1 << 20;
    to.socket_sndbuf_bytes = 1 << 20;
    auto t = io::OpenTransport(to);
    if (!t.ok()) Die("OpenTransport: " + std::string(t.status().message()));
    n->t = std::move(*t);
    EngineConfig c;
    c.cluster_id = "bench-cluster";
    c.node_name = n->name;
    c.generation = 1;
    c.advertise = n->t->local_endpoint();
    c.fanout = o_.fanout;
    c.gossip_interval_us = int64_t{interval_ms_} * 1000;
    c.membership.phi_threshold = o_.phi;
    c.membership.initial_interval_us = 3 * c.gossip_interval_us;
    c.membership.max_interval_us = 20 * c.gossip_interval_us;
    c.seeds = std::move(seeds);
    if constexpr (requires { c.welcome.auto_join; }) c.welcome.auto_join = auto_welcome;
    c.rng_seed = 1000 + static_cast<uint64_t>(n->idx);
    n->jitter = Rng(77 + static_cast<uint64_t>(n->idx));
    n->e = std::make_unique<Engine>(std::move(c), n.get(), n.get());
    n->next_tick_us = NowUs() + static_cast<int64_t>(n->jitter.Unit() * interval_ms_ * 1000);
    BNode* raw = n.get();
    nodes_.push_back(std::move(n));
    Worker& w = worker_of(raw->idx);
    w.Post([raw, &w] { w.nodes.push_back(raw); });
    return raw;
  }

  std::vector<Endpoint> Seeds(int count) const {
    std::vector<Endpoint> s;
    for (int i = 0; i < count && i < static_cast<int>(nodes_.size()); ++i) s.push_back(nodes_[i]->t->local_endpoint());
    return s;
  }

  Worker& worker_of(int idx) { return *workers_[static_cast<size_t>(idx) % workers_.size()]; }
  std::vector<std::unique_ptr<BNode>>& nodes() { return nodes_; }
  int interval_ms() const { return interval_ms_; }

  // Tracked write / victim (read by the workers' event sinks).
  std::atomic<int> cur_write{-1};
  std::atomic<int> victim{-1};

  // Waits until pred() or timeout; returns elapsed ms or -1.
  static double WaitFor(const std::function<bool()>& pred, double timeout_s, double poll_ms = 2) {
    const int64_t t0 = NowUs();
    while (!pred()) {
      if (NowUs() - t0 > static_cast<int64_t>(timeout_s * 1e6)) return -1;
      SleepMs(poll_ms);
    }
    return static_cast<double>(NowUs() - t0) / 1e3;
  }

  uint64_t TotalTx(bool only_up = true) const {
    uint64_t s = 0;
    for (auto& n : nodes_) {
      if (!only_up || n->up) s += n->tx_bytes.load();
    }
    return s;
  }

 private:
  const Options& o_;
  int interval_ms_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<BNode>> nodes_;
};

int ParseIdx(std::string_view name) {
  if (name.size() != 5 || name[0] != 'n') return -1;
  int v = 0;
  for (char c : name.substr(1)) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

void BNode::OnKey(const NodeState& node, KeyEvent ev, std::string_view key, std::string_view /*value*/,
                  Version /*version*/) {
  if (ev != KeyEvent::kSet) return;
  if (node.name() != name) replica_keys.fetch_add(1, std::memory_order_relaxed);
  if (key.size() == 7 && key[0] == 'w') {
    int id = 0;
    for (char c : key.substr(1)) id = id * 10 + (c - '0');
    if (id == bench->cur_write.load(std::memory_order_relaxed) && arrival_us.load(std::memory_order_relaxed) == 0) {
      arrival_us.store(NowUs(), std::memory_order_relaxed);
    }
  }
}

void BNode::OnMember(const NodeState& node, MemberEvent ev) {
  if (ev == MemberEvent::kJoined) joined.fetch_add(1, std::memory_order_relaxed);
  if (ev == MemberEvent::kDead && ParseIdx(node.name()) == bench->victim.load() && dead_at_us.load() == 0) {
    dead_at_us.store(NowUs(), std::memory_order_relaxed);
  }
}

// The bulk "welcome" join (engine/welcome.h) when this engine has it; false otherwise, so the
// suite builds against engines with and without it.
template <typename E>
bool TryStartWelcome(E& e, const Endpoint& peer) {
  if constexpr (requires { e.StartWelcome(peer); }) {
    return e.StartWelcome(peer);
  } else {
    return false;
  }
}

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double k = (static_cast<double>(v.size()) - 1) * p / 100;
  const size_t f = static_cast<size_t>(std::floor(k));
  const size_t c = std::min(f + 1, v.size() - 1);
  return v[f] + (v[c] - v[f]) * (k - static_cast<double>(f));
}

json Dist(const std::vector<double>& v) {
  if (v.empty()) return nullptr;
  return {{"min", Pct(v, 0)}, {"median", Pct(v, 50)}, {"p99", Pct(v, 99)}, {"max", Pct(v, 100)},
          {"n", v.size()}};
}

// Sum of every up engine's bytes_out / packets_out per message type (asks each worker).
std::vector<std::pair<uint64_t, uint64_t>> BytesByType(Bench& b, int n_nodes, int threads) {
  std::vector<std::pair<uint64_t, uint64_t>> sum(wire::kMessageTypeCount);
  for (int w = 0; w < threads && w < n_nodes; ++w) {
    auto part = b.worker_of(w).Call<std::vector<std::pair<uint64_t, uint64_t>>>([&b, w, threads] {
      std::vector<std::pair<uint64_t, uint64_t>> s(wire::kMessageTypeCount);
      for (auto& n : b.nodes()) {
        if (n->idx % threads != w || !n->up) continue;
        for (size_t t = 0; t < wire::kMessageTypeCount; ++t) {
          s[t].first += n->e->stats().bytes_out[t];
          s[t].second += n->e->stats().packets_out[t];
        }
      }
      return s;
    });
    for (size_t t = 0; t < sum.size(); ++t) {
      sum[t].first += part[t].first;
      sum[t].second += part[t].second;
    }
  }
  return sum;
}

json TypeBreakdown(const std::vector<std::pair<uint64_t, uint64_t>>& a,
                   const std::vector<std::pair<uint64_t, uint64_t>>& b, double seconds, int n_nodes) {
  json j = json::object();
  for (size_t t = 0; t < a.size(); ++t) {
    const uint64_t bytes = b[t].first - a[t].first, pkts = b[t].second - a[t].second;
    if (pkts == 0) continue;
    j[wire::MessageTypeName(static_cast<wire::MessageType>(t))] = {
        {"bytes_per_node_per_s", static_cast<double>(bytes) / seconds / n_nodes},
        {"packets_per_node_per_s", static_cast<double>(pkts) / seconds / n_nodes},
        {"bytes_per_packet", static_cast<double>(bytes) / static_cast<double>(pkts)}};
  }
  return j;
}

// Per-node bytes/s over a window: median, min, max, mean.
json PerNodeRate(Bench& b, double seconds, std::function<void()> during = nullptr) {
  auto& ns = b.nodes();
  std::vector<uint64_t> before(ns.size());
  for (size_t i = 0; i < ns.size(); ++i) before[i] = ns[i]->tx_bytes.load();
  const int64_t t0 = NowUs();
  if (during) {
    during();
  } else {
    SleepMs(seconds * 1e3);
  }
  const double dt = static_cast<double>(NowUs() - t0) / 1e6;
  std::vector<double> rates;
  for (size_t i = 0; i < ns.size(); ++i) {
    if (ns[i]->up) rates.push_back(static_cast<double>(ns[i]->tx_bytes.load() - before[i]) / dt);
  }
  json j = Dist(rates);
  j["mean"] = std::accumulate(rates.begin(), rates.end(), 0.0) / static_cast<double>(rates.size());
  j["seconds"] = dt;
  return j;
}

void RunCluster(const Options& o, int n_nodes, json& conv, json& traffic, json& detect) {
  std::fprintf(stderr, "scuttle_cluster: N=%d interval=%d ms\n", n_nodes, o.interval_ms);
  Bench b(o, o.interval_ms);
  std::vector<Endpoint> seeds;
  for (int i = 0; i < n_nodes; ++i) {
    b.Add(i < 3 ? std::vector<Endpoint>{} : b.Seeds(3));
    if (i == 2) {
      // The first three seed each other.
      for (int k = 0; k < 3; ++k) {
        BNode* n = b.nodes()[k].get();
        auto all = b.Seeds(3);
        b.worker_of(k).Post([n, all] {
          std::vector<Endpoint> s;
          for (const Endpoint& e : all)
            if (!(e == n->t->local_endpoint())) s.push_back(e);
          n->e->SetSeeds(s);
        });
      }
    }
  }
  auto& ns = b.nodes();
  const double interval_s = o.interval_ms / 1e3;
  const double member_ms = Bench::WaitFor(
      [&] {
        for (auto& n : ns)
          if (n->joined.load() < static_cast<uint64_t>(n_nodes - 1)) return false;
        return true;
      },
      120 + 2 * interval_s * n_nodes / 10, 10);
  std::fprintf(stderr, "  membership complete after %.0f ms\n", member_ms);
  SleepMs(2 * o.interval_ms);  // let digests settle

  // Idle traffic.
  const auto types0 = BytesByType(b, n_nodes, o.threads);
  json idle = PerNodeRate(b, o.idle_s);
  idle["by_type"] = TypeBreakdown(types0, BytesByType(b, n_nodes, o.threads), idle["seconds"].get<double>(), n_nodes);
  std::fprintf(stderr, "  idle by type: %s\n", idle["by_type"].dump().c_str());
  std::fprintf(stderr, "  idle: %.0f B/s/node (median)\n", idle["median"].get<double>());

  // Convergence: one write at a time.
  std::mt19937_64 rng(42 + static_cast<uint64_t>(n_nodes));
  std::vector<double> ms, rounds;
  int timeouts = 0;
  for (int w = 0; w < o.writes; ++w) {
    for (auto& n : ns) n->arrival_us.store(0);
    b.cur_write.store(w);
    const int writer = static_cast<int>(rng() % static_cast<uint64_t>(n_nodes));
    BNode* wn = ns[static_cast<size_t>(writer)].get();
    char key[16];
    std::snprintf(key, sizeof(key), "w%06d", w);
    const std::string k = key;
    const int64_t t0 = b.worker_of(writer).Call<int64_t>([wn, k] {
      const int64_t now = NowUs();
      if (!wn->e->Set(k, "value-of-the-tracked-write", now).ok()) Die("Set");
      return now;
    });
    const double waited = Bench::WaitFor(
        [&] {
          for (auto& n : ns)
            if (n->arrival_us.load() == 0) return false;
          return true;
        },
        60 * interval_s + 10, 1);
    if (waited < 0) {
      ++timeouts;
    } else {
      int64_t last = t0;
      for (auto& n : ns) last = std::max(last, n->arrival_us.load());
      const double d = static_cast<double>(last - t0) / 1e3;
      ms.push_back(d);
      rounds.push_back(d / o.interval_ms);
    }
    // Random phase for the next write.
    SleepMs(static_cast<double>(rng() % static_cast<uint64_t>(o.interval_ms)));
  }
  json c = {{"n", n_nodes}, {"fanout", o.fanout}, {"interval_ms", o.interval_ms}, {"writes", o.writes},
            {"timeouts", timeouts}, {"membership_ms", member_ms}, {"ms", Dist(ms)},
            {"rounds", Dist(rounds)}, {"rounds_samples", rounds}};
  std::fprintf(stderr, "  write->all: median %.2f rounds, p99 %.2f\n", Pct(rounds, 50), Pct(rounds, 99));
  conv.push_back(c);

  // Steady write load.
  const double write_rate = o.write_rate;
  std::atomic<uint64_t> load_writes{0};
  json load = PerNodeRate(b, o.load_s, [&] {
    const int64_t end = NowUs() + static_cast<int64_t>(o.load_s * 1e6);
    uint64_t seq = 0;
    while (NowUs() < end) {
      // Every 100 ms each node writes write_rate/10 keys on average.
      for (int i = 0; i < n_nodes; ++i) {
        BNode* n = ns[static_cast<size_t>(i)].get();
        const double p = write_rate / 10;
        if (std::uniform_real_distribution<double>(0, 1)(rng) >= p) continue;
        const uint64_t s = seq++;
        b.worker_of(i).Post([n, s, &load_writes] {
          char key[16];
          std::snprintf(key, sizeof(key), "load-%02d", static_cast<int>(s % 100));
          char value[64];
          std::memset(value, 'v', sizeof(value));
          if (n->e->Set(key, std::string_view(value, sizeof(value)), NowUs()).ok()) load_writes.fetch_add(1);
        });
      }
      SleepMs(100);
    }
  });
  const double writes_per_s = static_cast<double>(load_writes.load()) / load["seconds"].get<double>();
  std::fprintf(stderr, "  load: %.0f writes/s, %.0f B/s/node\n", writes_per_s, load["median"].get<double>());
  // chitchat: every Syn and SynAck carries the full digest; ~101 KB/s per node at N=100,
  // 300 ms (issue #7), growing linearly with N (the digest) and 1/interval.
  const double chitchat = 101e3 * (n_nodes / 100.0) * (300.0 / o.interval_ms);
  traffic.push_back({{"n", n_nodes}, {"interval_ms", o.interval_ms}, {"idle_bytes_per_node_per_s", idle},
                     {"writes_per_s", writes_per_s}, {"writes_per_node_per_s", writes_per_s / n_nodes},
                     {"load_bytes_per_node_per_s", load},
                     {"chitchat_idle_estimate_bytes_per_node_per_s", chitchat}});

  // Failure detection: stop the last node (not a seed).
  SleepMs(3 * o.interval_ms);
  const int victim = n_nodes - 1;
  for (auto& n : ns) n->dead_at_us.store(0);
  b.victim.store(victim);
  BNode* vn = ns[static_cast<size_t>(victim)].get();
  const int64_t t_kill = b.worker_of(victim).Call<int64_t>([vn] {
    vn->up = false;
    vn->t.reset();
    return NowUs();
  });
  const double dwait = Bench::WaitFor(
      [&] {
        for (auto& n : ns)
          if (n->up && n->dead_at_us.load() == 0) return false;
        return true;
      },
      120, 5);
  std::vector<double> dms;
  for (auto& n : ns)
    if (n->up && n->dead_at_us.load() > 0) dms.push_back(static_cast<double>(n->dead_at_us.load() - t_kill) / 1e3);
  json d = {{"n", n_nodes},
            {"interval_ms", o.interval_ms},
            {"phi_threshold", o.phi},
            {"initial_interval_ms", 3 * o.interval_ms},
            {"timed_out", dwait < 0},
            {"detected_by", dms.size()},
            {"detect_ms", dms.empty() ? json(nullptr)
                                      : json{{"first", Pct(dms, 0)}, {"median", Pct(dms, 50)},
                                             {"p99", Pct(dms, 99)}, {"max", Pct(dms, 100)}}}};
  std::fprintf(stderr, "  detection: median %.0f ms, all %.0f ms\n", Pct(dms, 50), Pct(dms, 100));
  detect.push_back(d);
}

void RunJoin(const Options& o, int mb, bool welcome, int rep, json& join) {
  std::fprintf(stderr, "scuttle_cluster: join with %d MB (N=%d, interval %d ms, %s, rep %d)\n", mb,
               o.join_nodes, o.join_interval_ms, welcome ? "welcome" : "anti-entropy", rep);
  Options jo = o;
  Bench b(jo, o.join_interval_ms);
  const int n = o.join_nodes;
  for (int i = 0; i < n; ++i) b.Add({});
  auto seeds = b.Seeds(3);
  for (int i = 0; i < n; ++i) {
    BNode* node = b.nodes()[static_cast<size_t>(i)].get();
    b.worker_of(i).Post([node, seeds] {
      std::vector<Endpoint> s;
      for (const Endpoint& e : seeds)
        if (!(e == node->t->local_endpoint())) s.push_back(e);
      node->e->SetSeeds(s);
    });
  }
  constexpr size_t kValue = 1000;
  const size_t total_keys = static_cast<size_t>(mb) * 1000 * 1000 / (kValue + 16);
  const size_t per_owner = total_keys / static_cast<size_t>(n);
  const size_t total = per_owner * static_cast<size_t>(n);
  json j = {{"state_bytes", total * (kValue + 16)},
            {"keys", total},
            {"n", n},
            {"mb", mb},
            {"rep", rep},
            {"interval_ms", o.join_interval_ms},
            {"mode", welcome ? "welcome" : "anti-entropy"},
            {"join_ms", -1},
            {"timed_out", false}};
  for (int i = 0; i < n; ++i) {
    BNode* node = b.nodes()[static_cast<size_t>(i)].get();
    b.worker_of(i).Call<int>([node, per_owner] {
      std::string v(kValue, 'x');
      char key[40];
      for (size_t k = 0; k < per_owner; ++k) {
        std::snprintf(key, sizeof(key), "key-%012zu", k);
        v[k % kValue] = static_cast<char>('a' + k % 26);
        if (!node->e->Set(key, v, NowUs()).ok()) Die("join Set");
      }
      return 0;
    });
  }
  const uint64_t want = total - per_owner;  // replica keys each member must hold
  const double pre_ms = Bench::WaitFor(
      [&] {
        for (int i = 0; i < n; ++i)
          if (b.nodes()[static_cast<size_t>(i)]->replica_keys.load() < want) return false;
        return true;
      },
      900, 20);
  std::fprintf(stderr, "  existing cluster replicated in %.0f ms\n", pre_ms);
  j["preexisting_replication_ms"] = pre_ms;
  if (pre_ms < 0) {
    j["error"] = "cluster did not replicate";
    join.push_back(j);
    return;
  }
  SleepMs(2 * o.join_interval_ms);
  const int64_t t0 = NowUs();
  const uint64_t rx0 = b.TotalTx();
  BNode* joiner = b.Add(seeds, /*auto_welcome=*/welcome);
  if (welcome) {
    const Endpoint peer = seeds[0];
    const bool started = b.worker_of(joiner->idx).Call<bool>([joiner, peer] { return TryStartWelcome(*joiner->e, peer); });
    if (!started) {
      j["error"] = "engine has no welcome join (or it refused to start)";
      join.push_back(j);
      return;
    }
  }
  // Done when the joiner's replicas of the other owners hold every key: counted from its
  // key events first (cheap), then checked on its own state (events could double count).
  auto held = [&] {
    return b.worker_of(joiner->idx).Call<size_t>([joiner] {
      size_t k = 0;
      for (const NodeState* ns : joiner->e->cluster().nodes()) {
        if (ns != &joiner->e->self()) k += ns->num_live();
      }
      return k;
    });
  };
  const double timeout_s = o.join_timeout_s;
  double ms = Bench::WaitFor([&] { return joiner->replica_keys.load() >= total; }, timeout_s, 5);
  if (ms >= 0 && held() < total) {
    const double left_s = timeout_s - ms / 1e3;
    ms = Bench::WaitFor([&] { return held() >= total; }, std::max(left_s, 0.1), 5);
    if (ms >= 0) ms = static_cast<double>(NowUs() - t0) / 1e3;
  }
  const size_t verified = held();
  const double bytes = static_cast<double>(b.TotalTx() - rx0);
  const double t_s = static_cast<double>(NowUs() - t0) / 1e6;
  j["join_ms"] = ms;
  j["timed_out"] = ms < 0;
  j["verified_keys"] = verified;
  j["held_fraction"] = total > 0 ? static_cast<double>(verified) / static_cast<double>(total) : 1.0;
  j["rounds"] = ms >= 0 ? ms / o.join_interval_ms : -1;
  j["mbit_per_s"] = ms > 0 ? static_cast<double>(total * (kValue + 16)) * 8 / 1e6 / (ms / 1e3) : 0;
  j["cluster_tx_bytes_during_join"] = bytes;
  j["seconds"] = t_s;
  if constexpr (requires { joiner->e->stats().welcome.chunks_received; }) {
    const auto ws = b.worker_of(joiner->idx).Call<std::vector<uint64_t>>([joiner] {
      const auto& w = joiner->e->stats().welcome;
      return std::vector<uint64_t>{w.sessions_started, w.sessions_completed, w.chunks_received,
                                   w.chunk_gaps, w.resyncs_sent};
    });
    j["joiner_welcome"] = {{"sessions_started", ws[0]}, {"sessions_completed", ws[1]},
                           {"chunks_received", ws[2]}, {"chunk_gaps", ws[3]},
                           {"resyncs_sent", ws[4]}};
  }
  if (ms >= 0) {
    std::fprintf(stderr, "  join: %.0f ms (%.1f rounds)\n", ms, ms / o.join_interval_ms);
  } else {
    std::fprintf(stderr, "  join: timed out after %.0f s holding %.1f%% of the keys\n", t_s,
                 100.0 * j["held_fraction"].get<double>());
  }
  join.push_back(j);
}

std::vector<int> ListFlag(const absl::Flag<std::vector<std::string>>& flag, std::string_view name,
                          int64_t hi) {
  absl::StatusOr<std::vector<int64_t>> v = cli::IntList(name, absl::GetFlag(flag), 0, hi);
  if (!v.ok()) cli::BadFlag("scuttle_cluster", SV(v.status().message()));
  return std::vector<int>(v->begin(), v->end());
}

// Reads and checks the flags; exits 2 on a bad one.
Options ReadFlags() {
  Options o;
  const bool quick = absl::GetFlag(FLAGS_quick);
  o.nodes = quick && !cli::FlagSet("nodes") ? std::vector<int>{10}
                                            : ListFlag(FLAGS_nodes, "nodes", 100000);
  o.interval_ms = cli::QuickOr(quick, FLAGS_interval_ms, 100);
  o.writes = cli::QuickOr(quick, FLAGS_writes, 3);
  o.idle_s = cli::QuickOr(quick, FLAGS_idle_s, 1.0);
  o.load_s = cli::QuickOr(quick, FLAGS_load_s, 1.0);
  o.write_rate = absl::GetFlag(FLAGS_writes_per_node_per_s);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.join_mb = quick && !cli::FlagSet("join_mb") ? std::vector<int>{1}
                                                : ListFlag(FLAGS_join_mb, "join_mb", 4096);
  o.join_nodes = absl::GetFlag(FLAGS_join_nodes);
  o.join_interval_ms = absl::GetFlag(FLAGS_join_interval_ms);
  o.join_mode = absl::GetFlag(FLAGS_join_mode);
  o.join_reps = absl::GetFlag(FLAGS_join_reps);
  o.join_timeout_s = cli::QuickOr(quick, FLAGS_join_timeout_s, 30.0);
  o.out = absl::GetFlag(FLAGS_out);
  const std::string io = absl::GetFlag(FLAGS_io);
  for (absl::Status st : {
           cli::InRange("interval_ms", o.interval_ms, 10, 10000),
           cli::InRange("writes", o.writes, 1, 10000),
           cli::InRange("idle_s", o.idle_s, 0.1, 3600.0),
           cli::InRange("load_s", o.load_s, 0.1, 3600.0),
           cli::InRange("writes_per_node_per_s", o.write_rate, 0.0, 10000.0),
           cli::InRange("threads", o.threads, 1, 64),
           cli::InRange("join_nodes", o.join_nodes, 2, 1000),
           cli::InRange("join_interval_ms", o.join_interval_ms, 10, 10000),
           cli::InRange("join_reps", o.join_reps, 1, 100),
           cli::InRange("join_timeout_s", o.join_timeout_s, 1.0, 36000.0),
       }) {
    if (!st.ok()) cli::BadFlag("scuttle_cluster", SV(st.message()));
  }
  if (o.join_mode != "anti-entropy" && o.join_mode != "welcome" && o.join_mode != "both") {
    cli::BadFlag("scuttle_cluster",
                 "--join_mode=" + o.join_mode + ": want anti-entropy, welcome or both");
  }
  if (io != "uring" && io != "epoll")
    cli::BadFlag("scuttle_cluster", "--io=" + io + ": want uring or epoll");
  o.io = io == "epoll" ? io::IoKind::kEpoll : io::IoKind::kUring;
  // A flag of a run that does not happen would be silently ignored: refuse it.
  const bool cluster_runs =
      std::any_of(o.nodes.begin(), o.nodes.end(), [](int n) { return n > 0; });
  const bool join_runs =
      std::any_of(o.join_mb.begin(), o.join_mb.end(), [](int m) { return m > 0; });
  constexpr std::string_view kClusterOnly[] = {"interval_ms", "writes", "idle_s", "load_s",
                                               "writes_per_node_per_s"};
  constexpr std::string_view kJoinOnly[] = {"join_nodes", "join_interval_ms", "join_mode",
                                            "join_reps", "join_timeout_s"};
  if (absl::Status st = cluster_runs
                            ? absl::OkStatus()
                            : cli::RefuseSetFlags(kClusterOnly, "--nodes=0 (no cluster run)");
      !st.ok()) {
    cli::BadFlag("scuttle_cluster", SV(st.message()));
  }
  if (absl::Status st = join_runs ? absl::OkStatus()
                                  : cli::RefuseSetFlags(kJoinOnly, "--join_mb=0 (no join run)");
      !st.ok()) {
    cli::BadFlag("scuttle_cluster", SV(st.message()));
  }
  return o;
}

int Main(int argc, char** argv) {
  constexpr std::string_view kFiles[] = {"bench/scuttle_cluster.cc"};
  cli::ParseFlagsOrExit(argc, argv, "scuttle_cluster",
                        "usage: scuttle_cluster [flags]\n  N engines on real loopback sockets: "
                        "write-to-all rounds, bytes per node per second, detection, join",
                        cli::FlagsDefinedIn(kFiles));
  const Options o = ReadFlags();
  json conv = json::array(), traffic = json::array(), detect = json::array(), join = json::array();
  for (int n : o.nodes)
    if (n > 0) RunCluster(o, n, conv, traffic, detect);
  // Rep-major, plain and welcome side by side: drift on a shared machine hits both alike.
  for (int rep = 0; rep < o.join_reps; ++rep) {
    for (int mb : o.join_mb) {
      if (mb <= 0) continue;
      if (o.join_mode != "welcome") RunJoin(o, mb, false, rep, join);
      if (o.join_mode != "anti-entropy") RunJoin(o, mb, true, rep, join);
    }
  }
  json doc = {{"suite", "cluster"},
              {"config",
               {{"nodes", o.nodes}, {"interval_ms", o.interval_ms}, {"fanout", o.fanout},
                {"writes", o.writes}, {"idle_s", o.idle_s}, {"load_s", o.load_s},
                {"write_rate_per_node", o.write_rate}, {"threads", o.threads},
                {"io", o.io == io::IoKind::kEpoll ? "epoll" : "uring"}, {"phi", o.phi},
                {"join_nodes", o.join_nodes}, {"join_interval_ms", o.join_interval_ms},
                {"join_mode", o.join_mode}, {"join_reps", o.join_reps},
                {"join_timeout_s", o.join_timeout_s}}},
              {"convergence", conv},
              {"traffic", traffic},
              {"detection", detect},
              {"join", join}};
  return WriteJson(doc, o.out);
}

}  // namespace
}  // namespace scuttle::bench

int main(int argc, char** argv) { return scuttle::bench::Main(argc, argv); }
