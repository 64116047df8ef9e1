// scuttled: the scuttle sidecar daemon (DESIGN §10). One Node (gossip over UDP) plus the
// local admin HTTP API. Flags are absl flags (--flagfile works); logs go to stderr.
//
// Exit codes: 0 after a graceful leave on SIGTERM/SIGINT; 2 on a bad flag (one line on
// stderr naming it); 1 when the node cannot start (busy gossip or admin port, io_uring
// refused with --io=uring, ...).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "engine/shard.h"
#include "node/keyring_file.h"
#include "node/node.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "api/admin_server.h"
#include "node/advertise.h"
#include "node/persister.h"
#include "wire/absl_compat.h"
#include "wire/packet.h"

ABSL_FLAG(std::string, node_name, "", "Node name, unique in the cluster (default: hostname)");
ABSL_FLAG(std::string, listen_addr, "0.0.0.0:7400",
          "UDP gossip address to bind, ip:port or [ipv6]:port; [::] is dual-stack (IPv4 "
          "peers too)");
ABSL_FLAG(std::string, advertise_addr, "",
          "Gossip address announced to peers, ip:port or [ipv6]:port (default: listen_addr; "
          "for 0.0.0.0 the first non-loopback, non-link-local IPv4 address, else 127.0.0.1; "
          "for [::] the first such IPv6 address, else that IPv4 one, else ::1)");
ABSL_FLAG(std::vector<std::string>, seeds, {},
          "Comma-separated host:port seeds (hostnames re-resolved every "
          "--seed_resolve_interval)");
ABSL_FLAG(std::string, cluster_id, "scuttle", "Cluster id; peers with another id are refused");
ABSL_FLAG(int32_t, gossip_interval_ms, 1000, "Gossip round interval (jittered by +-10%)");
ABSL_FLAG(int32_t, fanout, 3, "Live peers contacted per round");
ABSL_FLAG(int64_t, max_packet_bytes, 65507,
          "Largest datagram sent, 600..65507 (about 1400 on paths that fragment)");
ABSL_FLAG(int32_t, max_datagrams_per_reply, 1,
          "A delta larger than --max_packet_bytes continues in up to this many datagrams per "
          "reply, sent in one flush (UDP GSO when equal-sized), 1..64; 1 = one per round. "
          "With --max_packet_bytes=1400 try 45: 63 KB per handshake, no IP fragments");
ABSL_FLAG(double, phi_threshold, 8.0,
          "Phi-accrual backstop: dead at it without probes (scaled by local health); "
          "suspicion starts at phi 2 and is confirmed by probes");
ABSL_FLAG(int32_t, probe_timeout_ms, 0,
          "Confirmation of a suspect: a direct ping waits this long, then a ping-req round "
          "twice as long, before the verdict dead (0 = the gossip interval). The window from "
          "suspicion to verdict is ~3x this: a pause shorter than suspicion onset plus the "
          "window ends suspect, not dead (docs/detection.md); kill -9 -> dead grows with it");
ABSL_FLAG(int32_t, phi_window, 1000, "Phi-accrual sampling window (heartbeat arrivals)");
ABSL_FLAG(int64_t, phi_initial_interval_ms, 0,
          "Young-node prior: the heartbeat interval a peer is expected to keep, worth 4 "
          "samples until its own arrivals outweigh it (0 = --gossip_interval_ms, which is "
          "what a healthy peer shows)");
ABSL_FLAG(bool, quiet_rounds, true,
          "Idle cost (docs/detection.md): a node with nothing to exchange for 2 rounds starts "
          "one handshake every 2 rounds instead of --fanout every round; an unanswered Syn is "
          "a probe (ping-req, --probe_indirect_rounds), confirmed on its own deadlines, and "
          "only the node's own packets clear a doubt. false = the full-fanout detector");
ABSL_FLAG(int32_t, quiet_heartbeats, 64,
          "With --quiet_rounds: a quiet Syn carries at most this many heartbeats (a rotating "
          "slice) and deaths also travel in digests, so idle bytes stay flat in N "
          "(docs/detection.md, bounded quiet handshakes); 0 = every heartbeat up to 1024");
ABSL_FLAG(int32_t, quiet_buckets, 16,
          "With --quiet_rounds and --quiet_heartbeats > 0: at most this many bucket hashes in "
          "a quiet Syn (a power of two, 1..256)");
ABSL_FLAG(int32_t, probe_indirect_rounds, 0,
          "Ping-req rounds (fresh relays each) before a verdict: each one adds a probe timeout "
          "to a real crash and cuts false deaths under loss (3 for lossy networks). 0 = 2 "
          "with --quiet_rounds, 1 without");
ABSL_FLAG(int64_t, phi_max_interval_ms, 10000,
          "Heartbeat gaps longer than this are not rhythm samples (pauses, partitions)");
ABSL_FLAG(absl::Duration, dead_node_grace, absl::Hours(24),
          "A node dead or left for this long is forgotten");
ABSL_FLAG(absl::Duration, tombstone_grace, absl::Hours(1), "Deleted keys are GC'd after this");
ABSL_FLAG(std::string, admin_addr, "127.0.0.1:7480",
          "Admin HTTP API address, ip:port (empty: no admin API)");
ABSL_FLAG(std::string, io, "auto",
          "Transport: auto (io_uring, else epoll; never xdp) | uring | epoll | xdp (AF_XDP, "
          "docs/xdp.md)");
ABSL_FLAG(std::string, xdp_interface, "",
          "--io=xdp: interface to attach to (default: the one holding --listen_addr)");
ABSL_FLAG(int32_t, xdp_queue, 0, "--io=xdp: receive queue to bind (the only one redirected)");
ABSL_FLAG(std::string, xdp_mode, "auto", "--io=xdp: auto (native, else generic) | drv | skb");
ABSL_FLAG(std::string, xdp_zerocopy, "auto",
          "--io=xdp: auto (zero-copy where the driver has it, else copy) | on | off");
ABSL_FLAG(int64_t, xdp_umem_bytes, 0,
          "--io=xdp: UMEM size in bytes, 4 KiB frames split between receive and send "
          "(0 = one frame per receive buffer and send slot)");
ABSL_FLAG(std::string, shards, "1",
          "Engine shards: N threads, one engine each, shard s on gossip port + s "
          "(docs/shards.md); 'auto' = the CPUs this process may run on. Every node of a "
          "cluster needs the same count");
ABSL_FLAG(int64_t, max_key_bytes, 1024, "Largest key");
ABSL_FLAG(int64_t, max_value_bytes, 61440, "Largest value");
ABSL_FLAG(int64_t, max_keys_per_node, 4 * 1024 * 1024, "Most keys (incl. tombstones) per node");
ABSL_FLAG(int64_t, max_nodes, 16 * 1024, "Most nodes known in the cluster");
ABSL_FLAG(absl::Duration, seed_resolve_interval, absl::Seconds(60),
          "How often seed hostnames are re-resolved");
ABSL_FLAG(std::string, log_level, "info", "trace | debug | info | warn | error");
ABSL_FLAG(uint64_t, generation, 0, "Node generation; 0 = wall-clock microseconds (tests only)");
ABSL_FLAG(int32_t, max_watchers, 32, "Concurrent GET /v1/watch streams (503 beyond)");
ABSL_FLAG(int64_t, watch_buffer_events, 1024,
          "Events a watch stream may lag behind before it gets an overflow event");
ABSL_FLAG(int64_t, watch_log_events, 65536,
          "Recent events kept for watchers resuming with since=SEQ");
ABSL_FLAG(int64_t, watch_log_bytes, 64 << 20, "Memory bound on the kept watch events");
ABSL_FLAG(bool, rumor, true,
          "Rumor mongering (Demers et al.): push fresh updates to random peers at once and "
          "every --rumor_interval_ms while hot (feedback + counter --rumor_k), on top of "
          "anti-entropy; at N=50, 300 ms rounds: write -> all nodes median x0.09 of "
          "anti-entropy alone, bytes per write x0.89 (bench/README.md)");
ABSL_FLAG(bool, push_fresh, true,
          "With --rumor (no effect without it): push a local write, and an update learned "
          "for the first time, at once to --fanout random peers instead of at the next "
          "rumor cycle (bench/README.md, 'push fresh')");
ABSL_FLAG(int32_t, rumor_interval_ms, 20,
          "With --rumor: while an update is hot, a rumor cycle (judge the last cycle's "
          "feedback, push to --rumor_fanout peers) every this many ms instead of once per "
          "gossip round; no cycles while nothing is hot. 0: rumors ride the gossip round");
ABSL_FLAG(int32_t, rumor_fanout, 3, "With --rumor: peers each rumor cycle pushes to, 1..64");
ABSL_FLAG(int32_t, rumor_k, 2,
          "Rumor mongering: a node stops spreading an update after k unnecessary contacts "
          "in a row, 1..64");
ABSL_FLAG(std::string, anti_entropy, "push-pull",
          "Anti-entropy exchange (seed 001; Demers et al. 1987 section 1.3): push-pull (Syn, "
          "SynAck, Ack), pull (peers send what we lack; no Ack) or push (we send what peers lack)");
ABSL_FLAG(bool, direct_mail, false,
          "Direct mail (Demers et al. section 1.2): mail each local write at once to "
          "--direct_mail_peers peers; anti-entropy still repairs what the mail missed");
ABSL_FLAG(int32_t, direct_mail_peers, 0,
          "Peers each local write is mailed to, 1..64 (0: 2 when --direct_mail is on); "
          "needs --direct_mail");
ABSL_FLAG(bool, death_certificates, false,
          "Dormant death certificates (Demers et al. section 2.1): tombstones (the "
          "certificates) go after --tombstone_grace (tau1) everywhere except on about "
          "--retention_sites nodes per owner, which keep them for --dormant_grace (tau2). "
          "Replaces the ack-frontier tombstone GC");
ABSL_FLAG(absl::Duration, dormant_grace, absl::ZeroDuration(),
          "tau2: how long retention sites keep death certificates, > --tombstone_grace "
          "(0: 10 x --tombstone_grace); needs --death_certificates");
ABSL_FLAG(int32_t, retention_sites, 0,
          "Expected retention sites per owner, 1..1024 (0: 3); needs --death_certificates");
ABSL_FLAG(std::string, profile, "",
          "Network profile (docs/netlab.md): local (one host: 100 ms rounds, 2 s phi max "
          "interval), lan (the built-in defaults) or wan (1,400-byte datagrams that never "
          "fragment, phi threshold 12, 30 s phi max interval); sets the defaults of the "
          "flags it names that are not given explicitly");
ABSL_FLAG(std::string, data_dir, "",
          "Directory where the node saves its own keys (with TTL deadlines) and the known "
          "members, crash-safely; on restart they come back under a new generation and the "
          "saved members join the seeds (empty: nothing is saved)");
ABSL_FLAG(absl::Duration, data_sync_interval, absl::Seconds(1),
          "How often --data_dir is rewritten when something changed: a crash loses at most "
          "this much of the node's own writes");
ABSL_FLAG(std::string, keyring_file, "",
          "Gossip encryption keyring: a 0600 file of base64 32-byte keys, one per line, the "
          "primary first (scuttlectl keys ... writes changes back to it). Empty = plaintext");
ABSL_FLAG(bool, encrypt_verify_incoming, true,
          "With a keyring: refuse plaintext datagrams (false while migrating a plaintext "
          "cluster to encryption, or back)");
ABSL_FLAG(bool, encrypt_verify_outgoing, true,
          "With a keyring: seal outgoing datagrams (false during the first migration step)");
ABSL_FLAG(std::string, encrypt_cipher, "auto",
          "auto (AES-256-GCM with AES-NI, else XChaCha20-Poly1305) | aes256gcm | "
          "xchacha20poly1305; clusters mixing CPUs without AES-NI use xchacha20poly1305");
ABSL_FLAG(std::string, compression, "none",
          "none | zstd: compress datagram payloads with zstd toward peers that advertise it "
          "(negotiated per peer, so mixed clusters work; sent plain when it saves nothing)");
ABSL_FLAG(int32_t, compression_level, 1,
          "zstd level for --compression=zstd: 1 .. 19, or a fast level -7 .. -1 (cheaper on "
          "small datagrams, literals left uncompressed)");
ABSL_FLAG(std::string, admin_token_file, "",
          "A 0600 file holding the admin API bearer token; every request must then carry "
          "Authorization: Bearer <token>");
ABSL_FLAG(bool, admin_insecure, false,
          "Allow --admin_addr beyond loopback without --admin_token_file (not recommended)");
ABSL_FLAG(std::string, locality, "",
          "This node's place, widest first: region/zone/rack (gossiped under the reserved "
          "key __scuttle/locality); used by --spatial_exponent");
ABSL_FLAG(double, spatial_exponent, 0,
          "Peer choice: 0 = uniform; a > 0 picks a peer at locality distance d with "
          "probability ~ Q(d)^-a, Q(d) = peers within distance d (2 = Demers et al.), 0..8");

namespace scuttle {
namespace {

constexpr int kExitBadFlags = 2;
constexpr int kExitStartFailed = 1;

// absl's parser exits with 1 on a malformed flag; scuttled promises 2 for every bad flag.
bool g_parsing_flags = false;
void ExitTwoIfParsing() {
  if (g_parsing_flags) std::_Exit(kExitBadFlags);
}

[[noreturn]] void BadFlag(const std::string& msg) {
  std::fprintf(stderr, "scuttled: %s\n", msg.c_str());
  std::exit(kExitBadFlags);
}

// --profile: like memberlist's LAN/WAN/local configs, a named set of defaults. A flag given
// on the command line always wins. Values measured in docs/netlab.md (netlab scenarios).
bool GivenOnCommandLine(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") break;
    if (!a.starts_with("-")) continue;
    a.remove_prefix(a.starts_with("--") ? 2 : 1);
    if (a.substr(0, a.find('=')) == flag) return true;
  }
  return false;
}

void ApplyProfile(int argc, char** argv) {
  const std::string profile = absl::GetFlag(FLAGS_profile);
  if (profile.empty() || profile == "lan") return;  // lan: the built-in defaults
  struct Setting {
    const char* flag;
    const char* value;
  };
  std::vector<Setting> settings;
  if (profile == "local") {
    // The young-node prior follows the gossip interval (--phi_initial_interval_ms=0).
    settings = {{"gossip_interval_ms", "100"}, {"phi_max_interval_ms", "2000"}};
  } else if (profile == "wan") {
    // Patience comes from the threshold, not from the prior: a 10 s prior would keep a
    // node that dies young undetected for minutes. A rumor cycle longer than a WAN round
    // trip, so each cycle's feedback is back before it is judged.
    settings = {{"max_packet_bytes", "1400"},
                {"phi_threshold", "12"},
                {"phi_max_interval_ms", "30000"},
                {"rumor_interval_ms", "200"}};
  } else {
    BadFlag("--profile='" + profile + "': want local, lan or wan");
  }
  for (const Setting& s : settings) {
    absl::CommandLineFlag* f = absl::FindCommandLineFlag(s.flag);
    if (f == nullptr || GivenOnCommandLine(argc, argv, s.flag)) continue;
    std::string err;
    if (!f->ParseFrom(s.value, &err)) BadFlag(absl::StrCat("--profile: ", s.flag, ": ", err));
  }
}

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "scuttle";
  return buf;
}

Endpoint ParseAddrFlag(const char* flag, const std::string& text, bool allow_port0) {
  auto ep = Endpoint::Parse(text);
  if (!ep.ok()) {
    BadFlag(absl::StrCat("--", flag, "=", text, ": want ip:port (", ep.status().message(), ")"));
  }
  if (ep->port == 0 && !allow_port0) BadFlag(absl::StrCat("--", flag, "=", text, ": port is 0"));
  return *ep;
}

template <typename T>
T CheckRange(const char* flag, T v, T lo, T hi) {
  if (v < lo || v > hi) {
    BadFlag(absl::StrCat("--", flag, "=", v, " is out of range [", lo, ", ", hi, "]"));
  }
  return v;
}

absl::Duration CheckPositive(const char* flag, absl::Duration d) {
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    BadFlag(absl::StrCat("--", flag, "=", absl::FormatDuration(d),
                         " must be a positive, finite duration"));
  }
  return d;
}

// The seed-001 strategies (engine/epidemic.h). Combinations that would silently do
// nothing, or undo each other, are refused rather than ignored.
void ReadEpidemicFlags(EngineConfig* e) {
  EpidemicConfig& ep = e->epidemic;
  const std::string ae = absl::GetFlag(FLAGS_anti_entropy);
  auto mode = ParseAntiEntropyMode(ae);
  if (!mode.ok()) BadFlag("--anti_entropy=" + ae + ": want push, pull or push-pull");
  ep.anti_entropy = *mode;
  ep.push_fresh = absl::GetFlag(FLAGS_push_fresh);  // read by the engine only under --rumor

  const bool mail = absl::GetFlag(FLAGS_direct_mail);
  const int32_t mail_peers = absl::GetFlag(FLAGS_direct_mail_peers);
  if (!mail && mail_peers != 0) {
    BadFlag(absl::StrCat("--direct_mail_peers=", mail_peers, " needs --direct_mail"));
  }
  ep.direct_mail_peers =
      mail ? (mail_peers == 0 ? 2 : CheckRange<int32_t>("direct_mail_peers", mail_peers, 1, 64))
           : 0;

  const bool certs = absl::GetFlag(FLAGS_death_certificates);
  const absl::Duration dormant = absl::GetFlag(FLAGS_dormant_grace);
  const int32_t sites = absl::GetFlag(FLAGS_retention_sites);
  if (!certs) {
    if (dormant != absl::ZeroDuration()) {
      BadFlag("--dormant_grace=" + absl::FormatDuration(dormant) + " needs --death_certificates");
    }
    if (sites != 0) {
      BadFlag(absl::StrCat("--retention_sites=", sites, " needs --death_certificates"));
    }
    // No dormant copies: a tombstone goes after tombstone_grace or once every live peer
    // has it (seed 002 ack frontier), whichever comes first.
    ep.retention_sites = 0;
    ep.dormant_grace_us = 0;
    return;
  }
  ep.retention_sites = sites == 0 ? 3 : CheckRange<int32_t>("retention_sites", sites, 1, 1024);
  if (dormant != absl::ZeroDuration()) {
    CheckPositive("dormant_grace", dormant);
    if (absl::ToInt64Microseconds(dormant) <= e->tombstone_grace_us) {
      BadFlag("--dormant_grace=" + absl::FormatDuration(dormant) +
              " must be longer than --tombstone_grace=" +
              absl::FormatDuration(absl::Microseconds(e->tombstone_grace_us)) + " (tau2 > tau1)");
    }
    ep.dormant_grace_us = absl::ToInt64Microseconds(dormant);
  }
  // seed 001 (Demers et al. section 2.1): the dormant copies are what lets a far-behind
  // peer get incremental deletes; the ack frontier would drop them once the live peers
  // have them.
  e->frontier_gc = false;
}

// Every flag defined in this file, for GET /v1/config (the live ones are overlaid with
// the node's current values there).
std::vector<ConfigFlag> FlagsForConfig() {
  std::vector<ConfigFlag> out;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!flag->Filename().ends_with("scuttled_main.cc")) continue;
    ConfigFlag f;
    f.name = std::string(SV(name));
    f.value = flag->CurrentValue();
    f.help = flag->Help();
    if (flag->IsOfType<int32_t>() || flag->IsOfType<int64_t>() || flag->IsOfType<uint64_t>()) {
      f.type = ConfigFlag::Type::kInt;
    } else if (flag->IsOfType<double>()) {
      f.type = ConfigFlag::Type::kDouble;
    } else if (flag->IsOfType<bool>()) {
      f.type = ConfigFlag::Type::kBool;
    }
    out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(),
            [](const ConfigFlag& a, const ConfigFlag& b) { return a.name < b.name; });
  return out;
}

bool IsLoopback(const Endpoint& ep) {
  if (ep.family == 4) return ep.addr[0] == 127;
  if (ep.family == 6) {
    for (size_t i = 0; i < 15; ++i) {
      if (ep.addr[i] != 0) return false;
    }
    return ep.addr[15] == 1;
  }
  return false;
}

struct Config {
  NodeOptions node;
  std::string data_dir;
  absl::Duration data_sync_interval;
  std::optional<AdminOptions> admin;
  spdlog::level::level_enum log_level = spdlog::level::info;
};

// Reads and validates every flag; exits 2 with one line on the first bad one.
Config ReadFlags() {
  Config c;
  EngineConfig& e = c.node.engine;
  e.node_name = absl::GetFlag(FLAGS_node_name);
  if (e.node_name.empty()) e.node_name = Hostname();
  if (e.node_name.size() > wire::kMaxNameBytes) {
    BadFlag(absl::StrCat("--node_name is ", e.node_name.size(), " bytes; the limit is ",
                         wire::kMaxNameBytes));
  }
  e.cluster_id = absl::GetFlag(FLAGS_cluster_id);
  if (e.cluster_id.empty() || e.cluster_id.size() > 128) {
    BadFlag("--cluster_id must be 1..128 bytes");
  }

  const std::string listen = absl::GetFlag(FLAGS_listen_addr);
  c.node.listen = ParseAddrFlag("listen_addr", listen, /*allow_port0=*/true);
  const std::string adv = absl::GetFlag(FLAGS_advertise_addr);
  if (adv.empty()) {
    e.advertise = ChooseAdvertise(c.node.listen, InterfaceAddresses());
  } else {
    e.advertise = ParseAddrFlag("advertise_addr", adv, /*allow_port0=*/false);
    if (IsUnspecified(e.advertise)) {
      BadFlag("--advertise_addr=" + adv + ": peers cannot reach a wildcard address");
    }
  }
  for (const std::string& seed : absl::GetFlag(FLAGS_seeds)) {
    std::string host;
    uint16_t port = 0;
    if (absl::Status s = ParseHostPort(seed, &host, &port); !s.ok()) {
      BadFlag(absl::StrCat("--seeds: ", s.message()));
    }
    c.node.seeds.push_back(seed);
  }

  e.gossip_interval_us = int64_t{CheckRange<int32_t>("gossip_interval_ms",
                                                     absl::GetFlag(FLAGS_gossip_interval_ms), 1,
                                                     3'600'000)} * kUsPerMs;
  e.fanout = CheckRange<int32_t>("fanout", absl::GetFlag(FLAGS_fanout), 1, 1024);
  const int32_t indirect_rounds =
      CheckRange<int32_t>("probe_indirect_rounds", absl::GetFlag(FLAGS_probe_indirect_rounds), 0, 8);
  e.membership.probe_indirect_rounds =
      indirect_rounds > 0 ? indirect_rounds : (absl::GetFlag(FLAGS_quiet_rounds) ? 2 : 1);
  const int32_t quiet_buckets =
      CheckRange<int32_t>("quiet_buckets", absl::GetFlag(FLAGS_quiet_buckets), 1, 256);
  if ((quiet_buckets & (quiet_buckets - 1)) != 0) {
    BadFlag(absl::StrCat("--quiet_buckets=", quiet_buckets, " must be a power of two"));
  }
  const int32_t quiet_heartbeats = CheckRange<int32_t>(
      "quiet_heartbeats", absl::GetFlag(FLAGS_quiet_heartbeats), 0, kMaxSummaryHeartbeats);
  if (absl::GetFlag(FLAGS_quiet_rounds)) {
    e.quiet_after_rounds = 2;
    e.membership.probe_unanswered_syn = true;
    e.quiet_heartbeats = static_cast<size_t>(quiet_heartbeats);
    e.quiet_buckets = quiet_heartbeats > 0 ? static_cast<size_t>(quiet_buckets) : 0;
  }
  e.max_packet_bytes = static_cast<size_t>(CheckRange<int64_t>(
      "max_packet_bytes", absl::GetFlag(FLAGS_max_packet_bytes), 600, 65507));
  e.max_datagrams_per_reply =
      CheckRange<int32_t>("max_datagrams_per_reply", absl::GetFlag(FLAGS_max_datagrams_per_reply),
                          1, kMaxDatagramsPerReply);
  const double phi = absl::GetFlag(FLAGS_phi_threshold);
  if (!(phi > 0) || phi > 1e6) BadFlag(absl::StrCat("--phi_threshold=", phi, " must be > 0"));
  e.membership.phi_threshold = phi;
  e.membership.probe_timeout_us =
      int64_t{1000} *
      CheckRange<int32_t>("probe_timeout_ms", absl::GetFlag(FLAGS_probe_timeout_ms), 0, 600000);
  e.membership.window =
      CheckRange<int32_t>("phi_window", absl::GetFlag(FLAGS_phi_window), 1, 1'000'000);
  e.membership.initial_interval_us =
      CheckRange<int64_t>("phi_initial_interval_ms", absl::GetFlag(FLAGS_phi_initial_interval_ms),
                          0, 86'400'000) * kUsPerMs;
  e.membership.max_interval_us =
      CheckRange<int64_t>("phi_max_interval_ms", absl::GetFlag(FLAGS_phi_max_interval_ms), 1,
                          86'400'000) * kUsPerMs;
  e.membership.dead_node_grace_us = absl::ToInt64Microseconds(
      CheckPositive("dead_node_grace", absl::GetFlag(FLAGS_dead_node_grace)));
  e.tombstone_grace_us = absl::ToInt64Microseconds(
      CheckPositive("tombstone_grace", absl::GetFlag(FLAGS_tombstone_grace)));
  c.node.seed_resolve_interval =
      CheckPositive("seed_resolve_interval", absl::GetFlag(FLAGS_seed_resolve_interval));
  e.epidemic.rumor = absl::GetFlag(FLAGS_rumor);
  e.epidemic.rumor_options.k = static_cast<uint32_t>(CheckRange<int64_t>(
      "rumor_k", absl::GetFlag(FLAGS_rumor_k), 1, kMaxLiveRumorK));
  e.epidemic.rumor_interval_us =
      int64_t{1000} *
      CheckRange<int32_t>("rumor_interval_ms", absl::GetFlag(FLAGS_rumor_interval_ms), 0, 60000);
  e.epidemic.rumor_fanout =
      CheckRange<int32_t>("rumor_fanout", absl::GetFlag(FLAGS_rumor_fanout), 1, 64);
  ReadEpidemicFlags(&c.node.engine);
  c.node.locality = absl::GetFlag(FLAGS_locality);
  if (!c.node.locality.empty()) {
    if (absl::Status s = ValidateLocality(c.node.locality); !s.ok()) {
      BadFlag(absl::StrCat("--", s.message()));
    }
  }
  const double spatial = absl::GetFlag(FLAGS_spatial_exponent);
  if (!(spatial >= 0 && spatial <= kMaxSpatialExponent)) {
    BadFlag(absl::StrCat("--spatial_exponent=", spatial, " is out of range [0, ",
                         kMaxSpatialExponent, "]"));
  }
  e.membership.spatial_exponent = spatial;

  {
    // Bounds: the engine's header names at most kMaxShards; more threads than 4 per CPU
    // only adds context switches (and ports).
    const std::string text = absl::GetFlag(FLAGS_shards);
    const std::vector<int> cpus = AllowedCpus();
    const int64_t ncpu = std::max<int64_t>(1, static_cast<int64_t>(cpus.size()));
    int64_t shards = 0;
    if (text == "auto") {
      shards = std::min<int64_t>(ncpu, kMaxShards);
    } else if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos ||
               !absl::SimpleAtoi(text, &shards)) {
      BadFlag(absl::StrCat("--shards='", text, "': want a number of shards or 'auto'"));
    }
    const int64_t limit = std::min<int64_t>(kMaxShards, 4 * ncpu);
    if (shards < 1 || shards > limit) {
      BadFlag(absl::StrCat("--shards=", text, " is out of range [1, ", limit, "] (at most ",
                           kMaxShards, ", and at most 4 per CPU this process may use: ", ncpu,
                           ")"));
    }
    c.node.shards = static_cast<int>(shards);
  }

  e.limits.max_key_bytes = static_cast<size_t>(
      CheckRange<int64_t>("max_key_bytes", absl::GetFlag(FLAGS_max_key_bytes), 1, 65535));
  e.limits.max_value_bytes = static_cast<size_t>(CheckRange<int64_t>(
      "max_value_bytes", absl::GetFlag(FLAGS_max_value_bytes), 0, 65507));
  e.limits.max_keys_per_node = static_cast<size_t>(CheckRange<int64_t>(
      "max_keys_per_node", absl::GetFlag(FLAGS_max_keys_per_node), 1, int64_t{1} << 32));
  e.limits.max_nodes = static_cast<size_t>(
      CheckRange<int64_t>("max_nodes", absl::GetFlag(FLAGS_max_nodes), 1, 1 << 20));

  const std::string io = absl::GetFlag(FLAGS_io);
  if (io == "auto") {
    c.node.io = io::IoKind::kAuto;
  } else if (io == "uring") {
    c.node.io = io::IoKind::kUring;
  } else if (io == "epoll") {
    c.node.io = io::IoKind::kEpoll;
  } else if (io == "xdp") {
    c.node.io = io::IoKind::kXdp;
  } else {
    BadFlag("--io=" + io + ": want auto, uring, epoll or xdp");
  }
  c.node.xdp.interface = absl::GetFlag(FLAGS_xdp_interface);
  c.node.xdp.queue = static_cast<uint32_t>(
      CheckRange<int64_t>("xdp_queue", absl::GetFlag(FLAGS_xdp_queue), 0, 63));
  c.node.xdp.umem_bytes = static_cast<size_t>(CheckRange<int64_t>(
      "xdp_umem_bytes", absl::GetFlag(FLAGS_xdp_umem_bytes), 0, int64_t{1} << 30));
  const std::string xmode = absl::GetFlag(FLAGS_xdp_mode);
  if (xmode == "auto" || xmode == "drv" || xmode == "skb") {
    c.node.xdp.mode = xmode == "drv"   ? io::XdpMode::kDrv
                      : xmode == "skb" ? io::XdpMode::kSkb
                                       : io::XdpMode::kAuto;
  } else {
    BadFlag("--xdp_mode=" + xmode + ": want auto, drv or skb");
  }
  const std::string zc = absl::GetFlag(FLAGS_xdp_zerocopy);
  if (zc == "auto" || zc == "on" || zc == "off") {
    c.node.xdp.zerocopy = zc == "on"    ? io::XdpZerocopy::kOn
                          : zc == "off" ? io::XdpZerocopy::kOff
                                        : io::XdpZerocopy::kAuto;
  } else {
    BadFlag("--xdp_zerocopy=" + zc + ": want auto, on or off");
  }
  if (c.node.io == io::IoKind::kXdp && c.node.shards > 1) {
    // Each shard would need its own queue and XSK (docs/xdp.md, "Limits").
    BadFlag("--io=xdp runs one shard for now: use --shards=1");
  }

  const std::string level = absl::GetFlag(FLAGS_log_level);
  if (level == "trace") {
    c.log_level = spdlog::level::trace;
  } else if (level == "debug") {
    c.log_level = spdlog::level::debug;
  } else if (level == "info") {
    c.log_level = spdlog::level::info;
  } else if (level == "warn") {
    c.log_level = spdlog::level::warn;
  } else if (level == "error") {
    c.log_level = spdlog::level::err;
  } else {
    BadFlag("--log_level=" + level + ": want trace, debug, info, warn or error");
  }
  c.node.generation = absl::GetFlag(FLAGS_generation);
  c.node.events.max_events = static_cast<size_t>(CheckRange<int64_t>(
      "watch_log_events", absl::GetFlag(FLAGS_watch_log_events), 0, 1 << 24));
  c.node.events.max_bytes = static_cast<size_t>(CheckRange<int64_t>(
      "watch_log_bytes", absl::GetFlag(FLAGS_watch_log_bytes), 0, int64_t{1} << 40));

  c.data_dir = absl::GetFlag(FLAGS_data_dir);
  c.data_sync_interval =
      CheckPositive("data_sync_interval", absl::GetFlag(FLAGS_data_sync_interval));
  c.node.keyring_file = absl::GetFlag(FLAGS_keyring_file);
  e.security.verify_incoming = absl::GetFlag(FLAGS_encrypt_verify_incoming);
  e.security.verify_outgoing = absl::GetFlag(FLAGS_encrypt_verify_outgoing);
  if (absl::StatusOr<wire::Cipher> ci = wire::ParseCipher(absl::GetFlag(FLAGS_encrypt_cipher));
      ci.ok()) {
    e.security.cipher = *ci;
  } else {
    BadFlag(absl::StrCat("--encrypt_cipher: ", ci.status().message()));
  }
  if (!wire::CipherAvailable(e.security.cipher)) {
    BadFlag("--encrypt_cipher=aes256gcm: this CPU has no AES-NI; use xchacha20poly1305");
  }
  if (absl::StatusOr<wire::Compression> co = wire::ParseCompression(absl::GetFlag(FLAGS_compression));
      co.ok()) {
    e.compression.mode = *co;
  } else {
    BadFlag(absl::StrCat("--compression: ", co.status().message()));
  }
  e.compression.level = CheckRange<int32_t>("compression_level",
                                            absl::GetFlag(FLAGS_compression_level),
                                            wire::kMinZstdLevel, wire::kMaxZstdLevel);
  if (e.compression.level == 0) BadFlag("--compression_level=0: want -7..-1 or 1..19");

  const std::string admin = absl::GetFlag(FLAGS_admin_addr);
  if (!admin.empty()) {  // empty: no admin API (embedded use, tests)
    AdminOptions a;
    a.listen = ParseAddrFlag("admin_addr", admin, /*allow_port0=*/true);
    const std::string token_file = absl::GetFlag(FLAGS_admin_token_file);
    if (!token_file.empty()) {
      absl::StatusOr<std::string> token = LoadSecretFile(token_file);
      if (!token.ok()) BadFlag(absl::StrCat("--admin_token_file: ", token.status().message()));
      a.token = *token;
    } else if (!IsLoopback(a.listen) && !absl::GetFlag(FLAGS_admin_insecure)) {
      // DESIGN §8: an unauthenticated admin API owns the node; only loopback may skip it.
      BadFlag("--admin_addr=" + admin +
              " reaches beyond loopback: set --admin_token_file (or --admin_insecure)");
    }
    a.max_key_bytes = e.limits.max_key_bytes;
    a.max_value_bytes = e.limits.max_value_bytes;
    a.max_packet_bytes = e.max_packet_bytes;
    a.max_watchers = static_cast<size_t>(
        CheckRange<int32_t>("max_watchers", absl::GetFlag(FLAGS_max_watchers), 0, 4096));
    a.watch_buffer_events = static_cast<size_t>(CheckRange<int64_t>(
        "watch_buffer_events", absl::GetFlag(FLAGS_watch_buffer_events), 1, 1 << 24));
    a.flags = FlagsForConfig();
    c.admin = a;
  }
  return c;
}

}  // namespace
}  // namespace scuttle

int main(int argc, char** argv) {
  using namespace scuttle;
  absl::SetProgramUsageMessage(
      "scuttle sidecar daemon: gossip-replicated key-value store and membership.\n"
      "  scuttled --node_name=n1 --listen_addr=0.0.0.0:7400 --seeds=host1:7400,host2:7400");
  bool usage = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    usage = usage || a.starts_with("--help") || a.starts_with("-help") ||
            a.starts_with("--version") || a.starts_with("--only_check_args");
  }
  if (!usage) {
    g_parsing_flags = true;
    std::atexit(ExitTwoIfParsing);
  }
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  g_parsing_flags = false;
  if (rest.size() > 1) {
    BadFlag(absl::StrCat("unexpected argument '", rest[1], "' (flags look like --name=value)"));
  }
  ApplyProfile(argc, argv);
  Config config = ReadFlags();

  auto logger = spdlog::stderr_color_mt("scuttled");
  spdlog::set_default_logger(logger);
  spdlog::set_level(config.log_level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ %v");

  // Signals are taken synchronously by this thread (sigwait); every thread started below
  // inherits the mask, so none of them is interrupted.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Bind the admin port before gossiping, so a busy port fails before peers see us.
  std::unique_ptr<AdminServer> admin;
  if (config.admin.has_value()) {
    auto a = AdminServer::Bind(*config.admin);
    if (!a.ok()) {
      spdlog::error("{}", SV(a.status().message()));
      return kExitStartFailed;
    }
    admin = std::move(*a);
  }
  const EngineConfig& ec = config.node.engine;
  if (ec.limits.max_key_bytes + ec.limits.max_value_bytes + AdminOptions::kWriteOverheadBytes >
      ec.max_packet_bytes) {
    spdlog::warn(
        "--max_packet_bytes={} limits key+value to {} bytes, below --max_key_bytes + "
        "--max_value_bytes; larger writes are refused (413)",
        ec.max_packet_bytes,
        ec.max_packet_bytes > AdminOptions::kWriteOverheadBytes
            ? ec.max_packet_bytes - AdminOptions::kWriteOverheadBytes
            : 0);
  }
  std::unique_ptr<Persister> persister;
  if (!config.data_dir.empty()) {
    if (absl::Status s = PrepareDataDir(config.data_dir); !s.ok()) {
      spdlog::error("--data_dir: {}", SV(s.message()));
      return kExitStartFailed;
    }
    persister = std::make_unique<Persister>(config.data_dir, config.data_sync_interval);
    // The saved members rejoin the cluster when the configured seeds are down.
    for (std::string& m : persister->Load()) {
      if (std::find(config.node.seeds.begin(), config.node.seeds.end(), m) ==
          config.node.seeds.end()) {
        config.node.seeds.push_back(std::move(m));
      }
    }
  }
  auto node = Node::Start(config.node);
  if (!node.ok()) {
    spdlog::error("{}", SV(node.status().message()));
    return kExitStartFailed;
  }
  if (persister != nullptr) persister->Restore(node->get());
  if (admin != nullptr) admin->Serve(node->get());
  spdlog::info("scuttled: {} up (cluster '{}', seeds [{}])", (*node)->name(), ec.cluster_id,
               absl::StrJoin(config.node.seeds, ","));

  int sig = 0;
  sigwait(&sigs, &sig);
  spdlog::info("scuttled: {}: leaving the cluster", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  if (admin != nullptr) admin->Stop();
  if (persister != nullptr) persister->Stop();
  absl::Status s = (*node)->Stop();
  if (!s.ok()) {
    spdlog::error("scuttled: event loop: {}", SV(s.message()));
    return kExitStartFailed;
  }
  spdlog::info("scuttled: bye");
  return 0;
}
