// scuttle_shards: do engine shards scale? (issue #18, docs/shards.md) In one process and
// one run, 1 shard and then 2 shards (repeats interleaved), each shard one pinned thread
// that owns a pair of engines — shard s of node "a" and shard s of node "b", both built on
// that thread — and drives handshakes between them over an in-memory transport (no
// sockets, no locks, no queue shared with another thread): each handshake, "a" overwrites
// --keys_per_handshake of its keys of that shard and starts a Syn; the SynAck and the Ack
// (carrying a's writes) are handed over directly, so "b" applies them.
//
// Reported per shard count: handshakes/s and keys applied/s over the run's wall time (all
// shards together), and CPU time per handshake per shard from each thread's own CPU clock
// (CLOCK_THREAD_CPUTIME_ID), which the other work on a shared machine does not inflate.
// The figures are ratios in the same run, 2 shards / 1 shard, median of --reps repeats:
// ideal scaling is 2.0 for the rates and 1.0 for the CPU per handshake; a shared-state
// slowdown (false sharing, allocator contention, shared atomics) shows as CPU per handshake
// above 1.0 even when the machine is too busy for the rates to show anything.
//
// Allocator contention: each thread counts its own operator new calls (a thread_local
// counter, so the count shares nothing); allocations per handshake is reported per shard.
// Few allocations per handshake means glibc's per-thread malloc arenas cannot contend
// much; running with GLIBC_TUNABLES=glibc.malloc.arena_max=1 (one arena for every thread)
// checks it. CPU share = thread CPU / wall: the fraction of a core the shard got.
//
//   scuttle_shards --reps=7 --duration_ms=400 [--out=results/shards.json]
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "engine/engine.h"
#include "engine/shard.h"
#include "nlohmann/json.hpp"
#include "sim/flags.h"
#include "wire/absl_compat.h"

ABSL_FLAG(bool, quick, false, "CI size: --reps=1 --duration_ms=30 (each unless given)");
ABSL_FLAG(int32_t, reps, 7, "repetitions (1 shard and 2 shards each, interleaved), 1..100");
ABSL_FLAG(int32_t, duration_ms, 400, "target measured time per run, 1..600000");
ABSL_FLAG(int32_t, keys_per_handshake, 32, "keys a overwrites before each handshake, 1..1000");
ABSL_FLAG(int32_t, keyspace, 4096, "keys per shard that a cycles through, 1..1000000");
ABSL_FLAG(int32_t, value_bytes, 64, "value size, 1..4096");
ABSL_FLAG(std::string, out, "", "write the JSON here (default: stdout)");

// Per-thread allocation counting: replaces the global operator new (the engine allocates
// through it). The default operator delete frees with free(), which matches.
namespace scuttle::bench {
thread_local uint64_t t_allocs = 0;
// Out of line, so the compiler does not pair the malloc below with the deletes' free().
[[gnu::noinline]] void* CountedNew(std::size_t n) {
  ++t_allocs;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace scuttle::bench

void* operator new(std::size_t n) { return scuttle::bench::CountedNew(n); }
void* operator new[](std::size_t n) { return scuttle::bench::CountedNew(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace scuttle::bench {
namespace {

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The CPUs this process may run on, in order.
std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  return cpus;
}

bool PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

// An in-memory PacketSink: datagrams wait in reusable buffers (no allocation once warm)
// until the driver hands them to the addressed engine.
class MemorySink : public PacketSink {
 public:
  MemorySink() : scratch_(wire::kMaxUdpPayloadBytes) {}
  std::span<uint8_t> Acquire(size_t min_bytes) override {
    if (scratch_.size() < min_bytes) scratch_.resize(min_bytes);
    return scratch_;
  }
  void Commit(const Endpoint& to, std::span<const uint8_t> packet) override {
    if (count_ == queue_.size()) queue_.emplace_back();
    Pending& p = queue_[count_++];
    p.to = to;
    p.bytes.assign(packet.begin(), packet.end());
  }
  void Abort() override {}

  struct Pending {
    Endpoint to;
    std::vector<uint8_t> bytes;
  };
  size_t count() const { return count_; }
  Pending& at(size_t i) { return queue_[i]; }
  void Clear() { count_ = 0; }

 private:
  std::vector<uint8_t> scratch_;
  std::vector<Pending> queue_;
  size_t count_ = 0;
};

struct Options {
  int keys_per_handshake = 32;
  int keyspace = 4096;
  int value_bytes = 64;
};

// Shard s of nodes "a" and "b", and the handshakes between them. Built on the thread that
// drives it, so every allocation comes from that thread's malloc arena.
class ShardPair {
 public:
  ShardPair(uint16_t shard, uint16_t shards, const Options& o) : o_(o) {
    a_ep_ = Endpoint::V4(0x7f000001, static_cast<uint16_t>(7400 + 2 * shard));
    b_ep_ = Endpoint::V4(0x7f000001, static_cast<uint16_t>(7401 + 2 * shard));
    a_ = std::make_unique<Engine>(Config("a", a_ep_, shard, shards), &a_sink_, nullptr);
    b_ = std::make_unique<Engine>(Config("b", b_ep_, shard, shards), &b_sink_, nullptr);
    // The keys of this shard: every node puts a key in the same shard (engine/shard.h).
    for (uint64_t i = 0; keys_.size() < static_cast<size_t>(o.keyspace); ++i) {
      std::string k = "key/" + std::to_string(i);
      if (ShardOf(k, shards) == shard) keys_.push_back(std::move(k));
    }
    value_.assign(static_cast<size_t>(o.value_bytes), 'v');
  }

  // One handshake: a writes, then Syn a->b, SynAck b->a, Ack a->b (and whatever else they
  // send each other), all delivered before returning.
  void Handshake() {
    now_ += 1000;  // 1 ms of virtual time per handshake
    for (int i = 0; i < o_.keys_per_handshake; ++i) {
      const std::string& k = keys_[next_key_];
      next_key_ = (next_key_ + 1) % keys_.size();
      value_[0] = static_cast<char>('a' + (serial_++ % 26));
      (void)a_->Set(k, value_, now_);
    }
    a_->SendSyn(b_ep_);
    for (int guard = 0; guard < 64; ++guard) {
      if (!Deliver(a_sink_, a_ep_) && !Deliver(b_sink_, b_ep_)) return;
    }
  }
  uint64_t keys_applied() const { return b_->apply_stats().entries_applied; }
  uint64_t handshakes() const {
    return b_->stats().packets_in[static_cast<size_t>(wire::MessageType::kAck)];
  }

 private:
  static EngineConfig Config(const std::string& name, const Endpoint& ep, uint16_t shard,
                             uint16_t shards) {
    EngineConfig c;
    c.cluster_id = "bench";
    c.node_name = name;
    c.generation = 1;
    c.advertise = ep;
    c.rng_seed = 7 + shard;
    c.shard = shard;
    c.shard_count = shards;
    c.membership.external = shard != 0;
    return c;
  }
  // Hands `from`'s queued datagrams to their engines; false when there were none.
  bool Deliver(MemorySink& sink, const Endpoint& from) {
    const size_t n = sink.count();
    if (n == 0) return false;
    // Deliveries may queue replies in the other sink only (a does not send to itself).
    for (size_t i = 0; i < n; ++i) {
      MemorySink::Pending& p = sink.at(i);
      Engine* to = p.to == a_ep_ ? a_.get() : p.to == b_ep_ ? b_.get() : nullptr;
      if (to != nullptr) to->OnPacket(now_, from, p.bytes);
    }
    sink.Clear();
    return true;
  }

  Options o_;
  Endpoint a_ep_, b_ep_;
  MemorySink a_sink_, b_sink_;
  std::unique_ptr<Engine> a_, b_;
  std::vector<std::string> keys_;
  std::string value_;
  size_t next_key_ = 0;
  uint64_t serial_ = 0;
  TimeUs now_ = 1'000'000;
};

struct ShardResult {
  uint64_t handshakes = 0;
  uint64_t keys_applied = 0;
  uint64_t allocs = 0;  // operator new calls by the shard's thread while measured
  double cpu_seconds = 0;
  double wall_seconds = 0;  // its own, from the common start to its last handshake
  int cpu = -1;
  bool pinned = false;
};

struct RunResult {
  uint16_t shards = 0;
  double wall_seconds = 0;
  std::vector<ShardResult> per_shard;
  double handshakes_per_s() const {
    uint64_t n = 0;
    for (const ShardResult& r : per_shard) n += r.handshakes;
    return static_cast<double>(n) / wall_seconds;
  }
  double keys_per_s() const {
    uint64_t n = 0;
    for (const ShardResult& r : per_shard) n += r.keys_applied;
    return static_cast<double>(n) / wall_seconds;
  }
  // Mean over shards of each shard's CPU seconds per handshake.
  double allocs_per_handshake() const {
    uint64_t a = 0, h = 0;
    for (const ShardResult& r : per_shard) {
      a += r.allocs;
      h += r.handshakes;
    }
    return static_cast<double>(a) / static_cast<double>(std::max<uint64_t>(h, 1));
  }
  double cpu_share() const {  // summed over shards: 2.0 = two whole cores
    double s = 0;
    for (const ShardResult& r : per_shard) s += r.cpu_seconds;
    return s / wall_seconds;
  }
  double cpu_us_per_handshake() const {
    double sum = 0;
    for (const ShardResult& r : per_shard) {
      sum += r.cpu_seconds / static_cast<double>(std::max<uint64_t>(r.handshakes, 1));
    }
    return sum * 1e6 / static_cast<double>(per_shard.size());
  }
};

// `shards` threads, each pinned to its own allowed CPU (round robin when there are fewer),
// each building its pair, warming it up, then running `iterations` handshakes after a
// common start.
RunResult RunShards(uint16_t shards, uint64_t iterations, const Options& o) {
  const std::vector<int> cpus = AllowedCpus();
  RunResult res;
  res.shards = shards;
  res.per_shard.resize(shards);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (uint16_t s = 0; s < shards; ++s) {
    threads.emplace_back([&, s] {
      ShardResult& r = res.per_shard[s];
      if (!cpus.empty()) {
        r.cpu = cpus[s % cpus.size()];
        r.pinned = PinTo(r.cpu);
      }
      ShardPair pair(s, shards, o);
      // Warm-up: the first handshakes carry whole maps and verify the return path.
      for (int i = 0; i < 200; ++i) pair.Handshake();
      const uint64_t h0 = pair.handshakes();
      const uint64_t k0 = pair.keys_applied();
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      const auto w0 = std::chrono::steady_clock::now();
      const double c0 = ThreadCpuSeconds();
      const uint64_t a0 = t_allocs;
      for (uint64_t i = 0; i < iterations; ++i) pair.Handshake();
      r.allocs = t_allocs - a0;
      r.cpu_seconds = ThreadCpuSeconds() - c0;
      r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
      r.handshakes = pair.handshakes() - h0;
      r.keys_applied = pair.keys_applied() - k0;
    });
  }
  while (ready.load() < shards) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();
  res.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

nlohmann::json RunJson(const RunResult& r) {
  nlohmann::json per = nlohmann::json::array();
  for (const ShardResult& s : r.per_shard) {
    per.push_back(
        {{"handshakes", s.handshakes},
         {"keys_applied", s.keys_applied},
         {"cpu_seconds", s.cpu_seconds},
         {"cpu_share", s.cpu_seconds / std::max(s.wall_seconds, 1e-9)},
         {"allocs_per_handshake",
          static_cast<double>(s.allocs) / static_cast<double>(std::max<uint64_t>(s.handshakes, 1))},
         {"cpu_us_per_handshake",
          s.cpu_seconds * 1e6 / static_cast<double>(std::max<uint64_t>(s.handshakes, 1))},
         {"cpu", s.cpu},
         {"pinned", s.pinned}});
  }
  return {{"shards", r.shards},
          {"wall_seconds", r.wall_seconds},
          {"handshakes_per_s", r.handshakes_per_s()},
          {"keys_applied_per_s", r.keys_per_s()},
          {"cpu_us_per_handshake", r.cpu_us_per_handshake()},
          {"allocs_per_handshake", r.allocs_per_handshake()},
          {"cpu_share", r.cpu_share()},
          {"per_shard", per}};
}

int Main() {
  const bool quick = absl::GetFlag(FLAGS_quick);
  const int reps = cli::QuickOr(quick, FLAGS_reps, 1);
  const int duration_ms = cli::QuickOr(quick, FLAGS_duration_ms, 30);
  Options o;
  o.keys_per_handshake = absl::GetFlag(FLAGS_keys_per_handshake);
  o.keyspace = absl::GetFlag(FLAGS_keyspace);
  o.value_bytes = absl::GetFlag(FLAGS_value_bytes);
  for (absl::Status s :
       {cli::InRange("reps", reps, 1, 100), cli::InRange("duration_ms", duration_ms, 1, 600000),
        cli::InRange("keys_per_handshake", o.keys_per_handshake, 1, 1000),
        cli::InRange("keyspace", o.keyspace, 1, 1000000),
        cli::InRange("value_bytes", o.value_bytes, 1, 4096)}) {
    if (!s.ok()) cli::BadFlag("scuttle_shards", SV(s.message()));
  }
  // Calibrate on one shard: iterations per shard for about duration_ms.
  uint64_t iterations = 100;
  for (;;) {
    const RunResult r = RunShards(1, iterations, o);
    if (r.wall_seconds * 1000 >= duration_ms / 4.0 || iterations >= (1ull << 32)) {
      iterations =
          std::max<uint64_t>(1, static_cast<uint64_t>(static_cast<double>(iterations) *
                                                      duration_ms / 1000.0 / r.wall_seconds));
      break;
    }
    iterations *= 4;
  }
  std::vector<double> hs_ratio, keys_ratio, cpu_ratio;
  nlohmann::json runs = nlohmann::json::array();
  for (int rep = 0; rep < reps; ++rep) {
    // Interleaved, alternating which goes first, so drift in the machine's load hits both.
    RunResult one, two;
    if (rep % 2 == 0) {
      one = RunShards(1, iterations, o);
      two = RunShards(2, iterations, o);
    } else {
      two = RunShards(2, iterations, o);
      one = RunShards(1, iterations, o);
    }
    hs_ratio.push_back(two.handshakes_per_s() / one.handshakes_per_s());
    keys_ratio.push_back(two.keys_per_s() / one.keys_per_s());
    cpu_ratio.push_back(two.cpu_us_per_handshake() / one.cpu_us_per_handshake());
    runs.push_back({{"rep", rep}, {"one", RunJson(one)}, {"two", RunJson(two)}});
    std::fprintf(stderr,
                 "rep %d: 1 shard %.0f hs/s %.0f keys/s %.1f us/hs (%.2f cores, %.2f allocs/hs) | "
                 "2 shards %.0f hs/s %.0f keys/s %.1f us/hs per shard (%.2f cores, %.2f "
                 "allocs/hs) | ratio hs %.2f keys %.2f cpu/hs %.2f\n",
                 rep, one.handshakes_per_s(), one.keys_per_s(), one.cpu_us_per_handshake(),
                 one.cpu_share(), one.allocs_per_handshake(), two.handshakes_per_s(),
                 two.keys_per_s(), two.cpu_us_per_handshake(), two.cpu_share(),
                 two.allocs_per_handshake(), hs_ratio.back(), keys_ratio.back(), cpu_ratio.back());
  }
  nlohmann::json j;
  j["bench"] = "scuttle_shards";
  j["cpus_allowed"] = AllowedCpus().size();
  j["reps"] = reps;
  j["iterations_per_shard"] = iterations;
  j["keys_per_handshake"] = o.keys_per_handshake;
  j["keyspace"] = o.keyspace;
  j["value_bytes"] = o.value_bytes;
  j["median"] = {{"handshakes_ratio_2_over_1", Median(hs_ratio)},
                 {"keys_applied_ratio_2_over_1", Median(keys_ratio)},
                 {"cpu_per_handshake_ratio_2_over_1", Median(cpu_ratio)}};
  j["runs"] = runs;
  const std::string text = j.dump(2) + "\n";
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::cout << text;
  } else {
    std::ofstream f(out);
    f << text;
    if (!f) {
      std::fprintf(stderr, "scuttle_shards: cannot write %s\n", out.c_str());
      return 1;
    }
  }
  std::fprintf(stderr,
               "median of %d: 2 shards / 1 shard: handshakes/s x%.2f, keys applied/s x%.2f, "
               "CPU per handshake per shard x%.2f\n",
               reps, Median(hs_ratio), Median(keys_ratio), Median(cpu_ratio));
  return 0;
}

}  // namespace
}  // namespace scuttle::bench

int main(int argc, char** argv) {
  const std::vector<std::string> flags = {
      "quick", "reps", "duration_ms", "keys_per_handshake", "keyspace", "value_bytes", "out"};
  scuttle::cli::ParseFlagsOrExit(
      argc, argv, "scuttle_shards",
      "usage: scuttle_shards [flags]\n  engine shards in one process: 1 vs 2 pinned shard "
      "threads, handshakes/s, keys applied/s and CPU per handshake, as 2/1 ratios",
      flags);
  return scuttle::bench::Main();
}
