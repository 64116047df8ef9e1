// scuttle_load's servers: the raw recvmmsg/sendmmsg and io_uring references, io::Transport
// echo servers and the engine on a transport, all behind one interface.
#ifndef SCUTTLE_BENCH_LOAD_SERVERS_H_
#define SCUTTLE_BENCH_LOAD_SERVERS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace scuttle::bench {

struct Profile {
  std::string label;
  size_t max_packet_bytes;
  size_t keys;
};

struct RunSpec {
  std::string kind;    // echo | handshake
  std::string server;  // raw_mmsg | raw_uring | transport_* (incl. transport_xdp_drv/skb) | engine_*
  std::string size_label;
  const Profile* profile = nullptr;  // handshake
  size_t request = 0, reply = 0, ack = 0;
  int cores = 1;
  int rep = 0;
};

struct ServerCounters {
  std::atomic<uint64_t> drops{0};
  // io::Transport servers: cumulative packets, and (xdp) those that took the kernel socket.
  std::atomic<uint64_t> rx_packets{0}, tx_packets{0}, rx_kernel{0}, tx_kernel{0};
};

class Server {
 public:
  virtual ~Server() = default;
  virtual uint16_t port() const = 0;
  virtual void Run(const std::atomic<bool>& stop, ServerCounters& c) = 0;
};

// "*_sealed" servers are keyed (BenchKeyring) and the generator seals what it sends them.
inline bool IsSealed(const std::string& server) {
  return server.size() > 7 && server.compare(server.size() - 7, 7, "_sealed") == 0;
}

// The server `s.server` names: echo replies of `s.reply` bytes, or the engine holding the
// state `s.profile` describes; "*_zc" engine servers send datagrams of at least
// zerocopy_min bytes zero-copy.
std::unique_ptr<Server> MakeServer(const RunSpec& s, size_t zerocopy_min = 0);

}  // namespace scuttle::bench

#endif  // SCUTTLE_BENCH_LOAD_SERVERS_H_
