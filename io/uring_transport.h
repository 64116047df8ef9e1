// UringTransport: the default backend (DESIGN §9). One ring per loop thread
// (SINGLE_ISSUER | DEFER_TASKRUN: completions are reaped only when the owner asks, no
// IPIs), the socket registered as fixed file 0, a multishot recvmsg that fills buffers
// from a provided-buffer ring (one SQE receives until the ring runs dry), and one
// SENDMSG SQE per datagram, all submitted by one io_uring_enter per Flush.
#ifndef SCUTTLE_IO_URING_TRANSPORT_H_
#define SCUTTLE_IO_URING_TRANSPORT_H_

#include <liburing.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "io/gso.h"
#include "io/socket.h"
#include "io/transport.h"
#include "io/tx_pool.h"

namespace scuttle::io {

class UringTransport final : public Transport {
 public:
  // Errors that mean "io_uring is not usable here" (seccomp EPERM, ENOSYS, EINVAL from
  // an old kernel...) come back as kUnimplemented so OpenTransport(kAuto) can fall back.
  static absl::StatusOr<std::unique_ptr<Transport>> Open(const TransportOptions& options);
  // REQUIRES: called on the polling thread, or after that thread has exited (the kernel
  // cancels a thread's requests when it exits).
  ~UringTransport() override;

  const char* name() const override { return "io_uring"; }
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
  explicit UringTransport(TxPool tx) : tx_(std::move(tx)) {}
  absl::Status InitRing(const TransportOptions& options);
  absl::Status InitBufferRing(const TransportOptions& options);
  absl::Status InitSocket(const TransportOptions& options);
  void InitZerocopy(size_t min_bytes);
  absl::Status Start();
  io_uring_sqe* GetSqe();
  void ArmRecv();
  void ArmWake();
  absl::Status Wait(int64_t timeout_us);
  void ReapCompletions(absl::FunctionRef<void(const RxDatagram&)> on_datagram);
  void HandleRecv(const io_uring_cqe& cqe, absl::FunctionRef<void(const RxDatagram&)> on_datagram);
  // A send's result, once its slots are free to reuse (copying sends: at the result;
  // zero-copy sends: at the kernel's notification).
  void FinishSend(uint32_t slot, int32_t res);
  void FinishGsoSend(uint32_t group, int32_t res);
  // Both CQEs of a zero-copy send (the result, then the F_NOTIF notification).
  void HandleZcSend(const io_uring_cqe& cqe);
  // Puts `count` slots back at the head of the send queue, to go out one by one.
  void Requeue(const uint32_t* slots, size_t count);
  // Turns queued slots into SENDMSG SQEs (one per lone datagram or GSO run).
  void PrepareSends();
  void RecycleBuffer(uint16_t bid);
  void CancelAndDrain();

  // Queues slot i's `len` bytes at `offset` for `to` (the common tail of both CommitTx).
  void QueueTx(const Endpoint& to, uint32_t i, size_t offset, size_t len);

  TransportStats stats_;
  io_uring ring_{};
  bool ring_ok_ = false;
  unsigned ring_flags_ = 0;
  // Set by Start() on the first Poll/Flush: the ring was created disabled so that its
  // single issuer is the loop thread, not the thread that opened the transport.
  bool started_ = false;
  std::thread::id owner_;

  ScopedFd sock_;
  ScopedFd wake_;
  int family_ = 0;
  Endpoint local_;

  // Provided-buffer ring (group 0): br_entries_ buffers of rx_buf_len_ bytes, each laid
  // out by the kernel as io_uring_recvmsg_out | name | payload.
  MappedRegion br_mem_;
  io_uring_buf_ring* br_ = nullptr;
  uint32_t br_entries_ = 0;
  MappedRegion rx_buffers_;
  size_t rx_stride_ = 0;
  size_t rx_buf_len_ = 0;
  int pending_recycles_ = 0;
  msghdr recv_msg_{};  // template of the multishot recvmsg: name and control lengths
  bool recv_armed_ = false;
  bool wake_armed_ = false;
  uint64_t wake_buf_ = 0;

  TxPool tx_;
  size_t tx_inflight_ = 0;  // SENDMSG SQEs prepared or submitted, not yet completed
  // Committed slots not yet turned into SQEs, in order: [tx_head_, tx_head_ + tx_len_) of
  // tx_queue_ (no longer than the pool, so it cannot overflow).
  std::unique_ptr<uint32_t[]> tx_queue_;
  size_t tx_head_ = 0;
  size_t tx_len_ = 0;
  size_t tx_solo_ = 0;  // head entries to send one by one (a refused run being resent)
  GsoGroupPool groups_;  // one per coalesced send in flight
  // Zero-copy sends (TransportOptions::zerocopy_min_bytes; 0 = off): the result of a send
  // whose notification is still due, per slot (only lone datagrams go zero-copy).
  size_t zc_min_bytes_ = 0;
  bool zc_report_ = false;  // IORING_SEND_ZC_REPORT_USAGE (6.2): count copied sends
  std::unique_ptr<int32_t[]> zc_slot_res_;
};

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_URING_TRANSPORT_H_
