// XdpTransport: the AF_XDP backend (DESIGN §9, docs/xdp.md), IoKind::kXdp.
//
// One XSK socket on one interface queue, with scuttle's own XDP program
// (io/xdp_program.h) redirecting only UDP to our port into it. Datagrams are received
// and sent through a UMEM of 4 KiB frames:
//   - a received frame's payload is lent to the Poll callback in place, then the frame
//     goes straight back to the fill ring;
//   - AcquireTx hands out the payload area of a free send frame, 64 bytes in, so Flush
//     writes the Ethernet + IPv4/IPv6 + UDP headers in front of the payload in place and
//     posts the frame on the TX ring; one sendto(MSG_DONTWAIT) per batch kicks the
//     kernel, and frames come back through the completion ring.
// Next hops come from the kernel's routing and neighbour tables (io/xdp_neigh.h).
//
// The transport also keeps an ordinary UDP socket bound to the same address and port.
// It holds the port, and carries what the XSK cannot: datagrams larger than a frame or
// the MTU (the kernel fragments and reassembles), IP fragments and packets with options
// or extension headers (the program passes them), datagrams to a neighbour the kernel
// has not resolved yet (that send makes it resolve), destinations routed out of another
// interface, and packets that reached the interface on another queue. Each of these is
// counted (TransportStats::xdp_*).
//
// REQUIRES (checked by Open, with a message naming what is missing): CAP_NET_ADMIN,
// CAP_NET_RAW and CAP_BPF (or CAP_SYS_ADMIN); an interface that holds the bind address
// or is named in XdpOptions::interface; an existing queue.
#ifndef SCUTTLE_IO_XDP_TRANSPORT_H_
#define SCUTTLE_IO_XDP_TRANSPORT_H_

#include <sys/socket.h>

#include <array>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "io/socket.h"
#include "io/transport.h"

struct xsk_umem;
struct xsk_socket;

namespace scuttle::io {

class NeighbourTable;
class XdpProgram;

// What Open needs to know about the interface; exposed for tests and messages.
struct XdpInterface {
  std::string name;
  int ifindex = 0;
  uint32_t mtu = 0;
  std::array<uint8_t, 6> mac{};
  uint32_t queues = 0;  // receive (or combined) channels; 0 = the driver does not say
};
// Finds the interface for `bind` (the one holding its address) or `name` if given.
absl::StatusOr<XdpInterface> FindXdpInterface(const Endpoint& bind, const std::string& name);
// The capabilities --io=xdp needs that this process lacks, comma-separated ("" = none).
std::string MissingXdpCapabilities();

class XdpTransport final : public Transport {
 public:
  static absl::StatusOr<std::unique_ptr<Transport>> Open(const TransportOptions& options);
  ~XdpTransport() override;

  const char* name() const override { return "xdp"; }
  const Endpoint& local_endpoint() const override { return local_; }
  const TransportStats& stats() const override { return stats_; }

  std::span<uint8_t> AcquireTx(size_t max_len) override;
  void CommitTx(const Endpoint& to, std::span<const uint8_t> packet) override;
  void CommitTx(const Endpoint& to, size_t len) override;
  void AbortTx() override;
  absl::Status Flush() override;

  absl::Status Poll(int64_t timeout_us,
                    absl::FunctionRef<void(const RxDatagram&)> on_datagram) override;
  void Wake() override;

  // The attach mode in use ("drv" or "skb") and the program's counters (tests, logs).
  const char* xdp_mode() const;
  uint64_t program_redirected() const;
  uint64_t program_passed() const;

  static constexpr uint32_t kFrameBytes = 4096;
  // Payload starts here in a send frame: room for Ethernet + IPv6 + UDP (62 bytes).
  static constexpr uint32_t kTxPayloadOffset = 64;
  static constexpr uint32_t kTxFrameCapacity = kFrameBytes - kTxPayloadOffset;

 private:
  struct TxEntry {
    uint32_t frame;
    uint32_t offset;  // payload offset in the frame
    uint32_t len;
    Endpoint to;
  };
  XdpTransport() = default;
  absl::Status Init(const TransportOptions& options);
  absl::Status CreateSocket(const TransportOptions& options);
  uint8_t* Frame(uint32_t frame) const;
  void ReleaseFrame(uint32_t frame) { tx_free_[tx_free_top_++] = frame; }
  void ReapCompletions();
  void Kick();
  // Writes the headers in front of the payload; returns the frame's byte count, 0 if
  // the datagram must go through the kernel instead.
  uint32_t WriteHeaders(const TxEntry& e, const std::array<uint8_t, 6>& mac,
                        const std::array<uint8_t, 16>& route_source);
  void SendThroughKernel(const Endpoint& to, const uint8_t* data, size_t len);
  // Staging slot i (of kKernelTxBatch): where AcquireTx hands out sends larger than a frame.
  uint8_t* Staging(uint32_t i) const { return staging_.data() + size_t{i} * staging_stride_; }
  // Queues staging slot ktx_len_ (`len` bytes at `offset`) for the kernel socket.
  void QueueKernelSend(const Endpoint& to, size_t offset, size_t len);
  // Sends the queued staging slots with one sendmmsg (repeated while it makes progress).
  void FlushKernelSends();
  int ReceiveXsk(absl::FunctionRef<void(const RxDatagram&)> on_datagram);
  int ReceiveKernel(absl::FunctionRef<void(const RxDatagram&)> on_datagram);
  void Deliver(const uint8_t* frame, uint32_t len,
               absl::FunctionRef<void(const RxDatagram&)> on_datagram);
  void ReadXskStatistics();

  TransportStats stats_;
  Endpoint local_;
  int family_ = 0;  // of the UDP socket
  size_t max_datagram_bytes_ = 0;
  size_t tx_slot_bytes_ = 0;
  XdpInterface if_;
  uint32_t queue_ = 0;
  bool bound_any_ = false;  // bind address is a wildcard: sources come from routes
  uint16_t ip_id_ = 0;

  ScopedFd udp_;
  ScopedFd wake_;
  std::unique_ptr<XdpProgram> prog_;
  std::unique_ptr<NeighbourTable> neigh_;

  MappedRegion umem_area_;
  xsk_umem* umem_ = nullptr;
  xsk_socket* xsk_ = nullptr;
  int xsk_fd_ = -1;
  // libxdp's ring views (struct xsk_ring_prod / xsk_ring_cons), kept opaque here.
  struct Rings;
  std::unique_ptr<Rings> rings_;
  uint32_t rx_frames_ = 0;  // frames [0, rx_frames_) receive
  uint32_t tx_frames_ = 0;  // frames [rx_frames_, rx_frames_ + tx_frames_) send

  std::unique_ptr<uint32_t[]> tx_free_;
  uint32_t tx_free_top_ = 0;
  uint32_t pending_ = UINT32_MAX;  // acquired, not committed
  size_t pending_len_ = 0;
  bool pending_staged_ = false;  // the slot is Staging(ktx_len_), not the frame
  // Sends larger than a frame: encoded into a staging slot, then sent through the kernel
  // socket kKernelTxBatch at a time (sendmmsg at Flush, or when every slot is queued).
  static constexpr uint32_t kKernelTxBatch = 16;
  MappedRegion staging_;
  size_t staging_stride_ = 0;
  uint32_t ktx_len_ = 0;  // staging slots queued for the kernel
  std::unique_ptr<mmsghdr[]> ktx_msgs_;
  std::unique_ptr<iovec[]> ktx_iovs_;
  std::unique_ptr<sockaddr_storage[]> ktx_addrs_;
  std::unique_ptr<TxEntry[]> tx_queue_;  // committed, not yet on the TX ring
  uint32_t tx_head_ = 0;
  uint32_t tx_len_ = 0;
  uint32_t tx_outstanding_ = 0;  // on the TX ring, not yet completed

  // Kernel-socket receive batch.
  static constexpr size_t kKernelRxBatch = 16;
  MappedRegion krx_buffers_;
  std::unique_ptr<mmsghdr[]> krx_msgs_;
  std::unique_ptr<iovec[]> krx_iovs_;
  std::unique_ptr<sockaddr_storage[]> krx_addrs_;
  bool xsk_backlog_ = false;
  bool kernel_backlog_ = false;
  uint64_t polls_since_stats_ = 0;
};

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_XDP_TRANSPORT_H_
