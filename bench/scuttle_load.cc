// scuttle_load: the packet-rate suite (DESIGN §12, issue #7).
//
// One server thread answers a closed-loop load generator thread over loopback UDP. Every
// engine figure is read as a ratio to a raw server doing the same datagram exchange on the
// same machine in the same run, with the same generator:
//
//   kind "echo"       request of S bytes -> reply of S bytes, S in {64, 1400, 65507}
//     raw_mmsg          blocking recvmmsg(MSG_WAITFORONE) + sendmmsg from a fixed buffer
//     raw_uring         io_uring: multishot recvmsg + provided-buffer ring + sendmsg SQEs,
//                       one io_uring_enter per iteration (submit sends + wait)
//     transport_uring   io::Transport (io_uring): Poll -> AcquireTx/CommitTx -> Flush
//     transport_epoll   io::Transport (epoll + recvmmsg/sendmmsg)
//     transport_*_sealed  the same, keyed: the generator seals every request with a fresh
//                       counter, the server opens it (replay-checked) and seals its reply
//                       in place in the send slot; same wire sizes as the plaintext rows
//   kind "handshake"  Syn -> SynAck -> Ack: the generator replays a recorded Syn (from a
//                     real client Engine) and, for every SynAck, the recorded Ack. Both echo
//                     the server's return-routability cookie, so the reply guard stays on.
//     engine_uring      Engine::OnPacket on io::Transport (io_uring), the loop node/node.cc runs
//     engine_epoll      the same on the epoll transport
//     engine_*_sealed   the same with a keyring on both sides (wire/seal.h): the generator
//                       seals each Syn and Ack afresh (new counter, in place in its send
//                       slot), so the server's replay window accepts every one
//     raw_mmsg/raw_uring  the same sizes (Syn, SynAck, Ack bytes) with synthetic content
//     raw_mmsg_copy/raw_uring_copy  the same, but every reply is first copied from a
//                       256 KiB source into one of kServerBatch rotating send buffers, as
//                       any real server must produce its reply bytes (the plain raw loops
//                       send one constant, cache-hot buffer: the physical limit, not a
//                       like-for-like server)
//   Handshake profiles size the server state so the SynAck is small / ~1,400 / ~65,507 B:
//     small: the server has no keys -> a digest-only SynAck (~100-200 B; 64 B cannot hold
//            a digest, so the 64 B point is covered by the echo rows);
//     1400:  2,000 keys x 64 B values, max_packet_bytes = 1400, client knows nothing;
//     65507: the same state, max_packet_bytes = 65507.
//   The replayed Syn says "I know nothing", so every SynAck plans and encodes a full delta.
//
// Cores: "one" pins the generator and the server to the same CPU, "two" to different ones.
// Repetitions are interleaved (rep-major), so drift on a shared machine hits every server.
// Allocations: global operator new is replaced by a counting one (bench/alloc_counter.h);
// the generator allocates nothing once running, so the delta over the measured window is
// the server's, reported per server packet (rx + tx).
//
// Across a veth pair (--server_netns, run by bench/xdp_veth, issue #19): the servers bind
// the veth end in another network namespace, the generator the end in this one; echo only,
// at 64 B, 1,400 B and 8,972 B ("9000": one 9,000 B jumbo IP packet) datagrams, with two
// more servers, io::Transport on AF_XDP in native (transport_xdp_drv) and generic
// (transport_xdp_skb) mode. The load average is recorded before and after.
//
// Output: JSON (--out=FILE, default stdout) with one row per run; bench/run summarizes.
#define SCUTTLE_BENCH_COUNT_ALLOCS
#include "absl/flags/flag.h"
#include "bench/alloc_counter.h"
#include "bench/json_out.h"
#include "bench/load_common.h"
#include "bench/load_generator.h"
#include "bench/load_servers.h"
#include "sim/flags.h"

ABSL_FLAG(bool, quick, false,
          "CI size: --warmup_s=0.05 --duration_s=0.1 --reps=1 (each unless given)");
ABSL_FLAG(double, warmup_s, 0.3, "unmeasured seconds before each run, 0..60");
ABSL_FLAG(double, duration_s, 1.0, "measured seconds per run, 0.01..600");
ABSL_FLAG(int32_t, reps, 3, "repetitions of every run, interleaved, 1..100");
ABSL_FLAG(std::string, out, "", "write the JSON here (default: stdout)");
ABSL_FLAG(std::string, server, "",
          "only servers whose name contains this, or one of a comma-separated list (the raw_* "
          "baselines always run)");
ABSL_FLAG(std::string, size, "", "only this size label: 64, 1400, 65507, small");
ABSL_FLAG(std::string, kind, "", "only this kind: echo | handshake");
ABSL_FLAG(int32_t, window_small, 64, "generator window (exchanges in flight), small sizes");
ABSL_FLAG(int32_t, window_large, 16, "generator window, replies over 8 KiB");
ABSL_FLAG(int32_t, cores, 0, "only runs on this many cores: 1 or 2 (0: both)");
ABSL_FLAG(std::string, server_netns, "",
          "run the servers in this network namespace (bench/xdp_veth sets up the veth pair): "
          "echo only, sizes 64, 1400, 9000, plus the AF_XDP servers; needs root");
ABSL_FLAG(std::string, server_addr, "", "with --server_netns: the servers' IPv4 address there");
ABSL_FLAG(std::string, gen_addr, "", "with --server_netns: the generator's IPv4 address here");
ABSL_FLAG(int64_t, zerocopy_min_bytes, 0,
          "> 0: also the engine_*_zc rows, MSG_ZEROCOPY from this reply size");

namespace scuttle::bench {
namespace {

const Profile kProfiles[] = {{"small", 65507, 0}, {"1400", 1650, 2000}, {"65507", 65507, 2000}};
// The veth suite's jumbo size: the largest UDP payload in one 9,000 B MTU IPv4 packet.
constexpr size_t kJumboPayload = 9000 - 20 - 8;

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string one, five, fifteen;
  f >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

struct Options {
  double warmup_s = 0.3;
  double duration_s = 1.0;
  int reps = 3;
  int window_small = 64;
  int window_large = 16;
  int cpu_a = 0, cpu_b = 1;
  std::string out;
  std::string only_server;  // substring filter
  std::string only_size;    // exact size label filter
  std::string only_kind;    // echo | handshake
  size_t zerocopy_min = 0;  // > 0: also engine_{uring,epoll}_zc rows with this threshold
  int only_cores = 0;       // 1 or 2: only runs on that many cores
};

nlohmann::json RunOne(const RunSpec& spec, const Options& o) {
  const int server_cpu = o.cpu_b;
  const int gen_cpu = spec.cores == 1 ? o.cpu_b : o.cpu_a;
  std::atomic<bool> stop_server{false}, stop_gen{false};
  ServerCounters sc;
  std::promise<uint16_t> ready;
  auto ready_f = ready.get_future();
  std::atomic<pid_t> server_tid{0}, gen_tid{0};
  std::thread server_thread([&] {
    server_tid = ::gettid();
    PinSelf(server_cpu);
    EnterNetns(Net().server_netns);
    // Thread names let `perf report --comm` separate the servers of one run (15 chars).
    pthread_setname_np(pthread_self(), spec.server.substr(0, 15).c_str());
    std::unique_ptr<Server> server = MakeServer(spec, o.zerocopy_min);
    ready.set_value(server->port());
    server->Run(stop_server, sc);
  });
  const uint16_t port = ready_f.get();
  const int gen_fd = OpenUdp(2 * kSockBuf, Net().gen_ip);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(Net().server_ip);
  to.sin_port = htons(port);
  if (::connect(gen_fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) Die("connect");

  const bool sealed = IsSealed(spec.server);
  Exchange ex = spec.server.rfind("engine_", 0) == 0 ? RecordHandshake(gen_fd, port, sealed)
                                                     : Synthetic(spec.request, spec.reply, spec.ack, sealed);
  const uint32_t window = static_cast<uint32_t>(ex.reply_bytes > 8192 ? o.window_large : o.window_small);
  GenCounters gc;
  std::thread gen_thread([&] {
    gen_tid = ::gettid();
    PinSelf(gen_cpu);
    pthread_setname_np(pthread_self(), "load-gen");
    Generate(gen_fd, ex, window, stop_gen, gc);
  });

  auto sleep_s = [](double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); };
  sleep_s(o.warmup_s);
  const auto t0 = Clock::now();
  const uint64_t r0 = gc.replies.load();
  const uint64_t ssw0 = ThreadSwitches(server_tid), gsw0 = ThreadSwitches(gen_tid);  // allocates
  const uint64_t a0 = AllocCount(), b0 = AllocBytes();
  const uint64_t st0 = gc.stalls.load(), gb0 = gc.batches.load();
  const int64_t scpu0 = ThreadCpuNs(server_thread), gcpu0 = ThreadCpuNs(gen_thread);
  sleep_s(o.duration_s);
  const int64_t scpu1 = ThreadCpuNs(server_thread), gcpu1 = ThreadCpuNs(gen_thread);
  const uint64_t a1 = AllocCount(), b1 = AllocBytes();
  const uint64_t ssw1 = ThreadSwitches(server_tid), gsw1 = ThreadSwitches(gen_tid);
  const uint64_t r1 = gc.replies.load();
  const uint64_t st1 = gc.stalls.load(), gb1 = gc.batches.load();
  const auto t1 = Clock::now();
  stop_gen = true;
  gen_thread.join();
  stop_server = true;
  server_thread.join();
  ::close(gen_fd);

  const double dt = std::chrono::duration<double>(t1 - t0).count();
  const double exchanges = static_cast<double>(r1 - r0);
  // Server packets per exchange: request in, reply out, ack in.
  const double per_ex = ex.ack.empty() ? 2.0 : 3.0;
  nlohmann::json j;
  j["kind"] = spec.kind;
  j["server"] = spec.server;
  j["size"] = spec.size_label;
  j["cores"] = spec.cores;
  j["rep"] = spec.rep;
  j["sealed"] = sealed;
  j["request_bytes"] = ex.WireBytes(ex.request);
  j["reply_bytes"] = ex.reply_bytes;
  j["ack_bytes"] = ex.WireBytes(ex.ack);
  j["window"] = window;
  j["seconds"] = dt;
  j["exchanges_per_s"] = exchanges / dt;
  j["packets_per_s"] = exchanges * per_ex / dt;
  j["reply_gbit_per_s"] = exchanges * static_cast<double>(ex.reply_bytes) * 8 / dt / 1e9;
  j["server_cpu_us_per_exchange"] = exchanges > 0 ? static_cast<double>(scpu1 - scpu0) / 1e3 / exchanges : 0;
  j["gen_cpu_us_per_exchange"] = exchanges > 0 ? static_cast<double>(gcpu1 - gcpu0) / 1e3 / exchanges : 0;
  j["server_cpu_util"] = static_cast<double>(scpu1 - scpu0) / 1e9 / dt;
  j["allocs_per_packet"] = exchanges > 0 ? static_cast<double>(a1 - a0) / (exchanges * per_ex) : 0;
  j["alloc_bytes_per_packet"] = exchanges > 0 ? static_cast<double>(b1 - b0) / (exchanges * per_ex) : 0;
  j["allocs_in_window"] = a1 - a0;
  j["stalls"] = st1 - st0;
  // How the two threads interleave: context switches per exchange, and replies per
  // generator recvmmsg (on one core, a slower server answers larger batches, and the
  // generator then copies more reply bytes per batch through the shared L2).
  j["server_switches_per_exchange"] = exchanges > 0 ? static_cast<double>(ssw1 - ssw0) / exchanges : 0;
  j["gen_switches_per_exchange"] = exchanges > 0 ? static_cast<double>(gsw1 - gsw0) / exchanges : 0;
  j["replies_per_gen_batch"] = gb1 > gb0 ? exchanges / static_cast<double>(gb1 - gb0) : 0;
  j["server_drops"] = sc.drops.load();
  // io::Transport servers, whole run (warm-up included): packets, and for xdp those that
  // went through the kernel socket instead of the rings.
  j["server_rx_packets"] = sc.rx_packets.load();
  j["server_tx_packets"] = sc.tx_packets.load();
  j["server_rx_kernel"] = sc.rx_kernel.load();
  j["server_tx_kernel"] = sc.tx_kernel.load();
  j["reply_min"] = gc.reply_min == SIZE_MAX ? 0 : gc.reply_min;
  j["reply_max"] = gc.reply_max;
  return j;
}

int Main(int argc, char** argv) {
  constexpr std::string_view kFiles[] = {"bench/scuttle_load.cc"};
  cli::ParseFlagsOrExit(argc, argv, "scuttle_load",
                        "usage: scuttle_load [flags]\n  packet rate: engine and transports vs "
                        "raw recvmmsg/sendmmsg and io_uring loops, same run",
                        cli::FlagsDefinedIn(kFiles));
  Options o;
  const cli::RunLength len = cli::ReadRunLengthOrExit("scuttle_load", absl::GetFlag(FLAGS_quick),
                                                      FLAGS_warmup_s, FLAGS_duration_s, FLAGS_reps);
  o.warmup_s = len.warmup_s;
  o.duration_s = len.duration_s;
  o.reps = len.reps;
  o.out = absl::GetFlag(FLAGS_out);
  o.only_server = absl::GetFlag(FLAGS_server);
  o.only_size = absl::GetFlag(FLAGS_size);
  o.only_kind = absl::GetFlag(FLAGS_kind);
  o.window_small = absl::GetFlag(FLAGS_window_small);
  o.window_large = absl::GetFlag(FLAGS_window_large);
  o.only_cores = absl::GetFlag(FLAGS_cores);
  const int64_t zc = absl::GetFlag(FLAGS_zerocopy_min_bytes);
  const std::string netns = absl::GetFlag(FLAGS_server_netns);
  const bool veth = !netns.empty();
  if (veth) {
    for (const char* flag : {"server_addr", "gen_addr"}) {
      const std::string v = flag == std::string_view("server_addr") ? absl::GetFlag(FLAGS_server_addr)
                                                                    : absl::GetFlag(FLAGS_gen_addr);
      in_addr a{};
      if (::inet_pton(AF_INET, v.c_str(), &a) != 1) {
        cli::BadFlag("scuttle_load", "--" + std::string(flag) + "='" + v + "': want an IPv4 address (with --server_netns)");
      }
      (flag == std::string_view("server_addr") ? Net().server_ip : Net().gen_ip) = ntohl(a.s_addr);
    }
    Net().server_netns = netns;
    constexpr std::string_view kNotVeth[] = {"zerocopy_min_bytes"};
    if (absl::Status st = cli::RefuseSetFlags(kNotVeth, "--server_netns"); !st.ok()) {
      cli::BadFlag("scuttle_load", SV(st.message()));
    }
    if (o.only_kind == "handshake") cli::BadFlag("scuttle_load", "--kind=handshake does not apply to --server_netns (echo only)");
  } else {
    constexpr std::string_view kVethOnly[] = {"server_addr", "gen_addr"};
    if (absl::Status st = cli::RefuseSetFlags(kVethOnly, "scuttle_load without --server_netns"); !st.ok()) {
      cli::BadFlag("scuttle_load", SV(st.message()));
    }
  }
  for (absl::Status st : {
           cli::InRange("window_small", o.window_small, 1, 4096),
           cli::InRange("window_large", o.window_large, 1, 4096),
           cli::InRange<int64_t>("zerocopy_min_bytes", zc, 0, 65507),
           cli::InRange("cores", o.only_cores, 0, 2),
       }) {
    if (!st.ok()) cli::BadFlag("scuttle_load", SV(st.message()));
  }
  if (!o.only_kind.empty() && o.only_kind != "echo" && o.only_kind != "handshake") {
    cli::BadFlag("scuttle_load", "--kind=" + o.only_kind + ": want echo or handshake");
  }
  if (veth && !o.only_size.empty() && o.only_size != "64" && o.only_size != "1400" && o.only_size != "9000") {
    cli::BadFlag("scuttle_load", "--size=" + o.only_size + ": want 64, 1400 or 9000 (with --server_netns)");
  }
  if (!veth && !o.only_size.empty() && o.only_size != "64" && o.only_size != "1400" &&
      o.only_size != "65507" && o.only_size != "small") {
    cli::BadFlag("scuttle_load", "--size=" + o.only_size + ": want 64, 1400, 65507 or small");
  }
  o.zerocopy_min = static_cast<size_t>(zc);
  cpu_set_t avail;
  CPU_ZERO(&avail);
  sched_getaffinity(0, sizeof(avail), &avail);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &avail)) cpus.push_back(c);
  std::vector<int> core_counts = {1};
  if (cpus.size() >= 2) {
    o.cpu_a = cpus[0];
    o.cpu_b = cpus[1];
    core_counts.push_back(2);
  } else {
    o.cpu_a = o.cpu_b = cpus.at(0);
  }

  const std::string load_before = LoadAverage();
  // Calibration: each handshake profile's Syn/SynAck/Ack sizes, for the raw servers.
  struct Sizes {
    size_t syn, synack, ack;
  };
  std::vector<Sizes> sizes;
  for (const Profile& p : kProfiles) {
    if (veth) break;  // echo only
    RunSpec s;
    s.server = "engine_epoll";
    s.profile = &p;
    std::atomic<bool> stop{false};
    ServerCounters sc;
    std::unique_ptr<Server> server = MakeServer(s);
    std::thread t([&] { server->Run(stop, sc); });
    const int fd = OpenUdp(kSockBuf);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(server->port());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) Die("connect");
    Exchange ex = RecordHandshake(fd, server->port(), false);
    sizes.push_back({ex.request.size(), ex.reply_bytes, ex.ack.size()});
    stop = true;
    t.join();
    ::close(fd);
    std::fprintf(stderr, "scuttle_load: profile %s: Syn %zu B, SynAck %zu B, Ack %zu B\n",
                 p.label.c_str(), ex.request.size(), ex.reply_bytes, ex.ack.size());
  }

  std::vector<RunSpec> specs;
  // One echo row per (server, size) of a repetition on `cores` cores.
  const auto add_echo = [&specs](std::initializer_list<const char*> servers,
                                 std::initializer_list<size_t> sizes, int cores, int rep) {
    for (size_t sz : sizes) {
      for (const char* srv : servers) {
        RunSpec s;
        s.kind = "echo";
        s.server = srv;
        s.size_label = sz == kJumboPayload ? "9000" : std::to_string(sz);
        s.request = s.reply = sz;
        s.cores = cores;
        s.rep = rep;
        specs.push_back(s);
      }
    }
  };
  for (int rep = 0; veth && rep < o.reps; ++rep) {
    for (int cores : core_counts) {
      add_echo({"raw_mmsg", "raw_uring", "transport_uring", "transport_epoll",
                "transport_xdp_drv", "transport_xdp_skb"},
               {size_t{64}, size_t{1400}, kJumboPayload}, cores, rep);
    }
  }
  for (int rep = 0; !veth && rep < o.reps; ++rep) {
    for (int cores : core_counts) {
      add_echo({"raw_mmsg", "raw_uring", "transport_uring", "transport_epoll",
                "transport_uring_sealed", "transport_epoll_sealed"},
               {size_t{64}, size_t{1400}, kMaxDatagram}, cores, rep);
      for (size_t pi = 0; pi < std::size(kProfiles); ++pi) {
        for (const char* srv : {"raw_mmsg", "raw_uring", "raw_mmsg_copy", "raw_uring_copy",
                                "engine_uring", "engine_epoll", "engine_uring_sealed",
                                "engine_epoll_sealed", "engine_uring_zc", "engine_epoll_zc"}) {
          if (o.zerocopy_min == 0 && std::string_view(srv).ends_with("_zc")) continue;
          RunSpec s;
          s.kind = "handshake";
          s.server = srv;
          s.size_label = kProfiles[pi].label;
          s.profile = &kProfiles[pi];
          s.request = sizes[pi].syn;
          s.reply = sizes[pi].synack;
          s.ack = sizes[pi].ack;
          s.cores = cores;
          s.rep = rep;
          specs.push_back(s);
        }
      }
    }
  }
  nlohmann::json runs = nlohmann::json::array();
  for (const RunSpec& s : specs) {
    if (!o.only_server.empty() && s.server.rfind("raw_", 0) != 0) {
      // A comma-separated list of substrings; raw baselines always run.
      bool match = false;
      for (size_t b = 0; b <= o.only_server.size();) {
        size_t e = o.only_server.find(',', b);
        if (e == std::string::npos) e = o.only_server.size();
        if (e > b && s.server.find(o.only_server.substr(b, e - b)) != std::string::npos) match = true;
        b = e + 1;
      }
      if (!match) continue;
    }
    if ((!o.only_size.empty() && s.size_label != o.only_size) ||
        (!o.only_kind.empty() && s.kind != o.only_kind) || (o.only_cores != 0 && s.cores != o.only_cores)) {
      continue;
    }
    nlohmann::json j = RunOne(s, o);
    std::fprintf(stderr, "%-9s %-16s %-6s cores=%d rep=%d  %10.0f exch/s  %7.2f us/exch(server cpu)  allocs/pkt=%.4f stalls=%llu batch=%.1f gen=%.2fus sw=%.3f\n",
                 s.kind.c_str(), s.server.c_str(), s.size_label.c_str(), s.cores, s.rep,
                 j["exchanges_per_s"].get<double>(), j["server_cpu_us_per_exchange"].get<double>(),
                 j["allocs_per_packet"].get<double>(),
                 static_cast<unsigned long long>(j["stalls"].get<uint64_t>()),
                 j["replies_per_gen_batch"].get<double>(), j["gen_cpu_us_per_exchange"].get<double>(),
                 j["server_switches_per_exchange"].get<double>() + j["gen_switches_per_exchange"].get<double>());
    runs.push_back(std::move(j));
  }
  nlohmann::json doc;
  doc["suite"] = "packet_rate";
  doc["config"] = {{"warmup_s", o.warmup_s}, {"duration_s", o.duration_s}, {"reps", o.reps},
                   {"window_small", o.window_small}, {"window_large", o.window_large},
                   {"cpus", cpus}, {"server_batch", kServerBatch},
                   {"server_netns", netns}, {"load_average_before", load_before},
                   {"load_average_after", LoadAverage()}};
  doc["runs"] = std::move(runs);
  return WriteJson(doc, o.out);
}

}  // namespace
}  // namespace scuttle::bench

int main(int argc, char** argv) { return scuttle::bench::Main(argc, argv); }
