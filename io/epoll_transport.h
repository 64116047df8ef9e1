// EpollTransport: the fallback backend (DESIGN §9) for hosts where io_uring is refused
// (Docker's default seccomp profile, containerd RuntimeDefault). A nonblocking UDP
// socket and an eventfd under one epoll; recvmmsg and sendmmsg move whole batches per
// system call.
#ifndef SCUTTLE_IO_EPOLL_TRANSPORT_H_
#define SCUTTLE_IO_EPOLL_TRANSPORT_H_

#include <sys/socket.h>

#include <memory>

#include "absl/status/statusor.h"
#include "io/gso.h"
#include "io/socket.h"
#include "io/transport.h"
#include "io/tx_pool.h"
#include "io/zerocopy.h"

namespace scuttle::io {

class EpollTransport final : public Transport {
 public:
  static absl::StatusOr<std::unique_ptr<Transport>> Open(const TransportOptions& options);
  ~EpollTransport() override = default;

  const char* name() const override { return "epoll"; }
  const Endpoint& local_endpoint() const override { return local_; }
  const TransportStats& stats() const override { return stats_; }

  std::span<uint8_t> AcquireTx(size_t max_len) override;
  void CommitTx(const Endpoint& to, std::span<const uint8_t> packet) override;
  void CommitTx(const Endpoint& to, size_t len) override;
  void AbortTx() override { tx_.AbortPending(); }
  absl::Status Flush() override;

  absl::Status Poll(int64_t timeout_us,
                    absl::FunctionRef<void(const RxDatagram&)> on_datagram) override;
  void Wake() override;

 private:
  EpollTransport(TxPool tx) : tx_(std::move(tx)) {}
  absl::Status Init(const TransportOptions& options);
  absl::Status Wait(int64_t timeout_us, bool* readable);
  // One recvmmsg batch; returns how many datagrams the kernel returned.
  int ReceiveBatch(absl::FunctionRef<void(const RxDatagram&)> on_datagram);
  void SetWantWritable(bool want);
  void DrainWakeFd();
  // Reads MSG_ZEROCOPY notifications from the error queue and frees their slots.
  void ReapZerocopy();

  // Queues slot i's `len` bytes at `offset` for `to` (the common tail of both CommitTx).
  void QueueTx(const Endpoint& to, uint32_t i, size_t offset, size_t len);

  TransportStats stats_;
  ScopedFd sock_;
  ScopedFd epoll_;
  ScopedFd wake_;
  int family_ = 0;
  Endpoint local_;
  size_t max_datagram_bytes_ = 0;

  // Receive: rx_count_ buffers of rx_stride_ bytes, one mmsghdr each.
  size_t rx_count_ = 0;
  size_t rx_stride_ = 0;
  MappedRegion rx_buffers_;
  std::unique_ptr<mmsghdr[]> rx_msgs_;
  std::unique_ptr<iovec[]> rx_iovs_;
  std::unique_ptr<sockaddr_storage[]> rx_addrs_;
  struct alignas(cmsghdr) RxControl {
    uint8_t bytes[kGsoControlBytes];
  };
  std::unique_ptr<RxControl[]> rx_control_;  // UDP_GRO cmsg per buffer (when gro)
  // The last batch received something: more is likely queued, skip epoll_wait.
  bool rx_backlog_ = false;

  // Send: committed slots in order, [tx_head_, tx_tail_) of tx_queue_ (a FIFO no longer
  // than the pool, so it cannot overflow).
  TxPool tx_;
  std::unique_ptr<uint32_t[]> tx_queue_;
  size_t tx_head_ = 0;
  size_t tx_len_ = 0;
  std::unique_ptr<mmsghdr[]> tx_msgs_;
  std::unique_ptr<uint32_t[]> tx_runs_;  // queue entries each tx_msgs_ entry carries
  std::unique_ptr<GsoGroup[]> tx_groups_;  // coalesced sends of one sendmmsg (when gso)
  size_t tx_group_count_ = 0;
  size_t tx_solo_ = 0;  // head entries to send one by one (a refused run being resent)
  bool want_writable_ = false;
  // Zero-copy sends (TransportOptions::zerocopy_min_bytes; 0 = off).
  size_t zc_min_bytes_ = 0;
  ZerocopyTracker zc_;
};

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_EPOLL_TRANSPORT_H_
