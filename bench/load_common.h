// scuttle_load's shared pieces: sockets, pinning, mmap'd buffers, the bench keyring and
// the generator's sealer (bench/scuttle_load.cc describes the suite).
#ifndef SCUTTLE_BENCH_LOAD_COMMON_H_
#define SCUTTLE_BENCH_LOAD_COMMON_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/replay.h"
#include "io/clock.h"
#include "io/transport.h"
#include "nlohmann/json.hpp"
#include "wire/packet.h"
#include "wire/seal.h"

namespace scuttle::bench {

using Clock = std::chrono::steady_clock;
inline constexpr uint8_t kReqTag = 0xA1;
inline constexpr uint8_t kAckTag = 0xA2;
inline constexpr uint8_t kReplyTag = 0xA3;
inline constexpr size_t kMaxDatagram = 65507;
inline constexpr size_t kBufBytes = 65536;
inline constexpr size_t kSockBuf = 4 << 20;
inline constexpr int kServerPollUs = 100'000;
inline constexpr uint32_t kServerBatch = 256;

[[noreturn]] inline void Die(const std::string& what) {
  std::fprintf(stderr, "scuttle_load: %s (%s)\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

inline void PinSelf(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int r = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); r != 0) {
    errno = r;
    Die("pthread_setaffinity_np cpu " + std::to_string(cpu));
  }
}

inline void SetBuf(int fd, int opt, int force_opt, size_t bytes) {
  const int v = static_cast<int>(bytes);
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof(v)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
  }
}

// Where the servers and the generator bind: both on loopback, or (bench/xdp_veth) the two
// ends of a veth pair, the servers' end in another network namespace.
struct BenchNet {
  uint32_t server_ip = INADDR_LOOPBACK;  // host order
  uint32_t gen_ip = INADDR_LOOPBACK;
  std::string server_netns;  // "" = the process's own
};
inline BenchNet& Net() {
  static BenchNet net;
  return net;
}

// Moves the calling thread into network namespace `name` (an `ip netns` name); "" = stay.
inline void EnterNetns(const std::string& name) {
  if (name.empty()) return;
  const int fd = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die("open /run/netns/" + name);
  if (::setns(fd, CLONE_NEWNET) != 0) Die("setns " + name);
  ::close(fd);
}

// A UDP socket bound to ip:0 (host order; default 127.0.0.1).
inline int OpenUdp(size_t bufbytes, uint32_t ip = INADDR_LOOPBACK) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  SetBuf(fd, SO_RCVBUF, SO_RCVBUFFORCE, bufbytes);
  SetBuf(fd, SO_SNDBUF, SO_SNDBUFFORCE, bufbytes);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(ip);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) Die("bind");
  return fd;
}

inline uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) Die("getsockname");
  return ntohs(a.sin_port);
}

// Uninitialized (lazily mapped) memory: big receive arrays touch only what they use.
struct Mapped {
  explicit Mapped(size_t n) : size(n) {
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) Die("mmap");
    data = static_cast<uint8_t*>(p);
  }
  ~Mapped() { ::munmap(data, size); }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;
  uint8_t* data;
  size_t size;
};

// The key every sealed server and the generator share (fixed: runs are reproducible).
inline const wire::Keyring& BenchKeyring() {
  static const wire::Keyring ring = [] {
    wire::KeyBytes key;
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(0x40 + i * 7);
    wire::Keyring r;
    if (!r.Install(key).ok()) Die("keyring install");
    return r;
  }();
  return ring;
}

// Seals the generator's datagrams as a keyed peer does: one sender id for the whole
// generator, a counter that rises by one per datagram (the server's replay window drops a
// repeated one as `replayed`).
struct GenSealer {
  const wire::Key* key = nullptr;
  wire::Cipher cipher = wire::Cipher::kAes256Gcm;
  uint64_t sender_id = 0x6c6f61642d67656eULL;  // "load-gen"
  uint64_t counter = 1;
  // Copies the plaintext datagram into `slot` and seals it there, in place; returns the
  // sealed length. REQUIRES: slot has plain.size() + kSealTrailerBytes bytes.
  size_t SealInto(std::span<const uint8_t> plain, uint8_t* slot) {
    std::memcpy(slot, plain.data(), plain.size());
    return wire::Seal(std::span<uint8_t>(slot, plain.size() + wire::kSealTrailerBytes),
                      plain.size(), wire::SealParams{key, cipher, sender_id, counter++})
        .size();
  }
};

// A plaintext datagram header for `len` bytes (header included): what wire::Seal needs.
inline void WriteHeader(uint8_t* d, size_t len) {
  wire::PacketHeader h{};
  h.magic = wire::kMagic;
  h.version = wire::kProtocolVersion;
  h.payload_bytes = static_cast<uint32_t>(len - wire::kHeaderBytes);
  std::memcpy(d, &h, sizeof(h));
}

inline int64_t ThreadCpuNs(std::thread& t) {
  clockid_t id;
  if (pthread_getcpuclockid(t.native_handle(), &id) != 0) return 0;
  timespec ts;
  if (clock_gettime(id, &ts) != 0) return 0;
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Context switches (voluntary + involuntary) of thread `tid` of this process so far.
inline uint64_t ThreadSwitches(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/status");
  uint64_t total = 0;
  for (std::string line; std::getline(f, line);) {
    if (line.find("ctxt_switches:") != std::string::npos) {
      total += std::strtoull(line.c_str() + line.find(':') + 1, nullptr, 10);
    }
  }
  return total;
}

}  // namespace scuttle::bench

#endif  // SCUTTLE_BENCH_LOAD_COMMON_H_
