// XdpProgram: scuttle's own XDP program (io/xdp/scuttle_xdp.bpf.c) attached to one
// interface for one AF_XDP socket (io/xdp_transport.h).
//
// The object is embedded in the binary and loaded through libxdp, which puts it behind
// its multi-program dispatcher when a bpffs is mounted at /sys/fs/bpf (so it can share
// the interface with other XDP programs) and attaches it alone otherwise. The program
// redirects only UDP to our port on our queue; everything else passes to the kernel.
//
// Lifetime: the destructor detaches. A process killed before that leaves the program
// attached; the next Attach on that interface removes programs of ours (recognised by
// name) whose owner process is gone or whose port is the one the caller now holds.
#ifndef SCUTTLE_IO_XDP_PROGRAM_H_
#define SCUTTLE_IO_XDP_PROGRAM_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "io/transport.h"

struct xdp_program;

namespace scuttle::io {

// "auto", "drv", "skb".
const char* XdpModeName(XdpMode mode);

struct XdpProgramOptions {
  int ifindex = 0;
  std::string ifname;  // for messages
  XdpMode mode = XdpMode::kAuto;
  uint16_t port = 0;   // UDP destination port to redirect (host order)
  uint32_t queue = 0;  // receive queue whose socket gets it
  // Datagrams whose frame is longer than this are passed to the kernel (they would not
  // fit a UMEM frame); the transport receives them on its UDP socket.
  uint32_t max_frame_bytes = 0;
};

class XdpProgram {
 public:
  // Loads the embedded object, removes stale programs of ours from the interface (see
  // above), attaches in the requested mode and writes the config. Errors say what is
  // missing (capability, driver support).
  static absl::StatusOr<std::unique_ptr<XdpProgram>> Attach(const XdpProgramOptions& options);
  ~XdpProgram();  // detaches
  XdpProgram(const XdpProgram&) = delete;
  XdpProgram& operator=(const XdpProgram&) = delete;

  // The XSKMAP the AF_XDP socket registers in.
  int xsk_map_fd() const { return xsk_map_fd_; }
  // The mode it was attached in: kDrv or kSkb.
  XdpMode mode() const { return mode_; }
  uint32_t program_id() const;
  // Frames the program redirected / passed to the kernel so far (summed over CPUs).
  uint64_t redirected() const { return Count(0); }
  uint64_t passed() const { return Count(1); }

  // Removes programs of ours on `ifindex` whose owner is dead, or that redirect `port`
  // (which the caller holds now, so their owner cannot be using it). Returns how many.
  static int RemoveStale(int ifindex, uint16_t port);

 private:
  XdpProgram() = default;
  uint64_t Count(uint32_t index) const;

  xdp_program* prog_ = nullptr;
  int ifindex_ = 0;
  XdpMode mode_ = XdpMode::kAuto;
  int xsk_map_fd_ = -1;
  int counts_fd_ = -1;
  // The network namespace the interface lives in: the ifindex means something only
  // there, so the destructor detaches from inside it whatever thread runs it.
  int netns_fd_ = -1;
};

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_XDP_PROGRAM_H_
