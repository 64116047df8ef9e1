// scuttle_node_shards: end-to-end handshake rate of a scuttle::Node (the scuttled runtime) with
// 1 and with 2 engine shards, in the same run (issue #18, docs/shards.md).
//
// The server is a real Node: its shard threads, event loops, transports, command queues
// and timers, started with NodeOptions::shards = N. The load is scuttle_load's closed-loop
// generator (bench/load_generator.h) replaying a recorded Syn -> SynAck -> Ack handshake:
// G generator threads (2 by default, for every N, so the load side costs the same), each
// on its own socket, generator g aimed at shard g mod N's port (base + shard) with a
// handshake recorded from a client engine of that shard. The total window is the same for
// every N.
//
// Reported per run: exchanges/s (all generators), server CPU per exchange (process CPU
// minus the generator threads' own CPU, so the load generator is accounted for), generator
// CPU per exchange, and the ratio of the 2-shard row to the 1-shard row of the same
// repetition. Repetitions interleave 1 and 2 shards (drift on a shared machine hits both).
//
//   build/release/bench/scuttle_node_shards --reps=5 --duration_s=1 --size=1400
//
// Profiles as scuttle_load's: "small" (no keys: a digest-only SynAck) and "1400" (2,000
// keys of 64 B, max_packet_bytes 1650: a full ~1,400 B SynAck per exchange). With N shards
// the keys split by ShardOf, so each shard's SynAck is as full as the 1-shard one.
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/load_common.h"
#include "bench/load_generator.h"
#include "node/node.h"
#include "sim/flags.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(bool, quick, false, "CI size: --warmup_s=0.05 --duration_s=0.1 --reps=1 (each unless given)");
ABSL_FLAG(double, warmup_s, 0.3, "unmeasured seconds before each run, 0..60");
ABSL_FLAG(double, duration_s, 1.0, "measured seconds per run, 0.01..600");
ABSL_FLAG(int32_t, reps, 3, "repetitions of every run, interleaved, 1..100");
ABSL_FLAG(std::string, size, "", "only this profile: small or 1400 (default both)");
ABSL_FLAG(std::string, io, "epoll", "transport of the node: uring, epoll or both");
ABSL_FLAG(int32_t, generators, 2, "generator threads (for every shard count), 1..64");
ABSL_FLAG(int32_t, window, 64, "exchanges in flight, over all generators, 1..4096");
ABSL_FLAG(bool, pin, true, "pin the shard threads (NodeOptions::pin_threads; N > 1 only)");
ABSL_FLAG(std::string, out, "", "write the JSON here (default: stdout)");

namespace scuttle::bench {
namespace {

struct NodeProfile {
  std::string label;
  size_t max_packet_bytes;
  size_t keys;
};
const NodeProfile kNodeProfiles[] = {{"small", 65507, 0}, {"1400", 1650, 2000}};

struct Options {
  double warmup_s = 0.3, duration_s = 1.0;
  int reps = 3, generators = 2, window = 64;
  bool pin = true;
};

int64_t ProcessCpuNs() {
  timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

nlohmann::json RunOne(int shards, io::IoKind kind, const NodeProfile& p, int rep,
                      const Options& o) {
  NodeOptions no;
  no.engine.cluster_id = "bench-load";
  no.engine.node_name = "load-server";
  no.engine.max_packet_bytes = p.max_packet_bytes;
  no.generation = 1;
  no.listen = *Endpoint::Parse("127.0.0.1:0");
  no.io = kind;
  no.shards = shards;
  no.pin_threads = o.pin;
  auto started = Node::Start(std::move(no));
  if (!started.ok()) Die(std::string(started.status().message()));
  std::unique_ptr<Node> node = std::move(*started);
  for (size_t i = 0; i < p.keys; ++i) {
    char key[32], value[64];
    std::snprintf(key, sizeof(key), "key-%011zu", i);
    std::memset(value, 'a' + static_cast<int>(i % 26), sizeof(value));
    if (!node->Set(key, std::string_view(value, sizeof(value))).ok()) Die("node Set");
  }
  const uint16_t base = node->gossip_endpoint().port;

  struct Gen {
    int fd = -1;
    Exchange ex;
    GenCounters c;
    std::thread t;
  };
  std::vector<std::unique_ptr<Gen>> gens;
  std::atomic<bool> stop{false};
  for (int g = 0; g < o.generators; ++g) {
    auto gen = std::make_unique<Gen>();
    const uint16_t shard = static_cast<uint16_t>(g % shards);
    gen->fd = OpenUdp(2 * kSockBuf);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(static_cast<uint16_t>(base + shard));
    if (::connect(gen->fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) Die("connect");
    gen->ex = RecordHandshake(gen->fd, static_cast<uint16_t>(base + shard), false, shard,
                              static_cast<uint16_t>(shards));
    gens.push_back(std::move(gen));
  }
  const uint32_t window =
      static_cast<uint32_t>(std::max(1, o.window / std::max(1, o.generators)));
  for (auto& g : gens) {
    Gen* gp = g.get();
    g->t = std::thread([gp, window, &stop] { Generate(gp->fd, gp->ex, window, stop, gp->c); });
  }
  auto sleep_s = [](double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); };
  auto replies = [&] {
    uint64_t r = 0;
    for (auto& g : gens) r += g->c.replies.load();
    return r;
  };
  auto gen_cpu = [&] {
    int64_t ns = 0;
    for (auto& g : gens) ns += ThreadCpuNs(g->t);
    return ns;
  };
  sleep_s(o.warmup_s);
  const auto t0 = Clock::now();
  const uint64_t r0 = replies();
  const int64_t p0 = ProcessCpuNs(), g0 = gen_cpu();
  sleep_s(o.duration_s);
  const int64_t p1 = ProcessCpuNs(), g1 = gen_cpu();
  const uint64_t r1 = replies();
  const auto t1 = Clock::now();
  uint64_t stalls = 0;
  for (auto& g : gens) stalls += g->c.stalls.load();
  stop = true;
  for (auto& g : gens) {
    g->t.join();
    ::close(g->fd);
  }
  auto st = node->ShardStats();
  node->Abort();

  const double dt = std::chrono::duration<double>(t1 - t0).count();
  const double ex = static_cast<double>(r1 - r0);
  const double server_ns = static_cast<double>((p1 - p0) - (g1 - g0));
  nlohmann::json j;
  j["shards"] = shards;
  j["io"] = kind == io::IoKind::kUring ? "uring" : "epoll";
  j["size"] = p.label;
  j["rep"] = rep;
  j["generators"] = o.generators;
  j["window"] = window * gens.size();
  j["pinned"] = o.pin && shards > 1;
  j["request_bytes"] = gens[0]->ex.request.size();
  j["reply_bytes"] = gens[0]->ex.reply_bytes;
  j["seconds"] = dt;
  j["exchanges_per_s"] = ex / dt;
  j["server_cpu_us_per_exchange"] = ex > 0 ? server_ns / 1e3 / ex : 0;
  j["gen_cpu_us_per_exchange"] = ex > 0 ? static_cast<double>(g1 - g0) / 1e3 / ex : 0;
  j["server_cpu_util"] = server_ns / 1e9 / dt;
  j["stalls"] = stalls;
  if (st.ok()) {
    nlohmann::json per = nlohmann::json::array();
    for (const NodeStats& s : *st) {
      constexpr size_t kSyn = static_cast<size_t>(wire::MessageType::kSyn);
      per.push_back(s.engine.packets_in[kSyn]);
    }
    j["syns_in_per_shard"] = std::move(per);
  }
  return j;
}

int Main(int argc, char** argv) {
  constexpr std::string_view kFiles[] = {"bench/node_shards.cc"};
  cli::ParseFlagsOrExit(argc, argv, "scuttle_node_shards",
                        "usage: scuttle_node_shards [flags]\n  end-to-end handshake rate of a Node "
                        "with 1 vs 2 engine shards, same run",
                        cli::FlagsDefinedIn(kFiles));
  Options o;
  const cli::RunLength len = cli::ReadRunLengthOrExit("scuttle_node_shards", absl::GetFlag(FLAGS_quick),
                                                      FLAGS_warmup_s, FLAGS_duration_s, FLAGS_reps);
  o.warmup_s = len.warmup_s;
  o.duration_s = len.duration_s;
  o.reps = len.reps;
  o.generators = absl::GetFlag(FLAGS_generators);
  o.window = absl::GetFlag(FLAGS_window);
  o.pin = absl::GetFlag(FLAGS_pin);
  for (absl::Status st : {
           cli::InRange("generators", o.generators, 1, 64),
           cli::InRange("window", o.window, 1, 4096),
       }) {
    if (!st.ok()) cli::BadFlag("scuttle_node_shards", SV(st.message()));
  }
  const std::string size = absl::GetFlag(FLAGS_size);
  if (!size.empty() && size != "small" && size != "1400") {
    cli::BadFlag("scuttle_node_shards", "--size=" + size + ": want small or 1400");
  }
  const std::string io_flag = absl::GetFlag(FLAGS_io);
  std::vector<io::IoKind> kinds;
  if (io_flag == "uring" || io_flag == "both") kinds.push_back(io::IoKind::kUring);
  if (io_flag == "epoll" || io_flag == "both") kinds.push_back(io::IoKind::kEpoll);
  if (kinds.empty()) cli::BadFlag("scuttle_node_shards", "--io=" + io_flag + ": want uring, epoll or both");
  spdlog::set_level(spdlog::level::warn);

  nlohmann::json runs = nlohmann::json::array();
  for (int rep = 0; rep < o.reps; ++rep) {
    for (io::IoKind kind : kinds) {
      for (const NodeProfile& p : kNodeProfiles) {
        if (!size.empty() && p.label != size) continue;
        double base_rate = 0, base_cpu = 0;
        for (int shards : {1, 2}) {
          nlohmann::json j = RunOne(shards, kind, p, rep, o);
          const double rate = j["exchanges_per_s"].get<double>();
          const double cpu = j["server_cpu_us_per_exchange"].get<double>();
          if (shards == 1) {
            base_rate = rate;
            base_cpu = cpu;
          } else if (base_rate > 0 && base_cpu > 0) {
            j["rate_vs_1_shard"] = rate / base_rate;
            j["server_cpu_vs_1_shard"] = cpu / base_cpu;
          }
          std::fprintf(stderr,
                       "%-5s %-5s shards=%d rep=%d  %9.0f exch/s  server %6.2f us/exch (util "
                       "%.2f cores)  gen %6.2f us/exch  stalls=%llu%s\n",
                       j["io"].get<std::string>().c_str(), p.label.c_str(), shards, rep, rate,
                       cpu, j["server_cpu_util"].get<double>(),
                       j["gen_cpu_us_per_exchange"].get<double>(),
                       static_cast<unsigned long long>(j["stalls"].get<uint64_t>()),
                       shards == 2 && base_rate > 0
                           ? ("  x" + std::to_string(rate / base_rate).substr(0, 5)).c_str()
                           : "");
          runs.push_back(std::move(j));
        }
      }
    }
  }
  nlohmann::json doc;
  doc["suite"] = "shards_e2e";
  doc["config"] = {{"warmup_s", o.warmup_s}, {"duration_s", o.duration_s}, {"reps", o.reps},
                   {"generators", o.generators}, {"window", o.window}, {"pin", o.pin},
                   {"cpus", AllowedCpus()}};
  doc["runs"] = std::move(runs);
  const std::string text = doc.dump(1);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::cout << text << "\n";
  } else {
    std::ofstream f(out);
    f << text << "\n";
    if (!f) Die("write " + out);
  }
  return 0;
}

}  // namespace
}  // namespace scuttle::bench

int main(int argc, char** argv) { return scuttle::bench::Main(argc, argv); }
