// Transport: the batch-oriented UDP datagram interface under one event loop (DESIGN §9).
//
// Batch-oriented because the engine works per tick: receive everything that arrived,
// then send everything it produced in one submission. Buffer ownership is explicit so a
// kernel-bypass backend (AF_XDP, DPDK) can implement the same interface later:
//   - receive buffers belong to the transport; a datagram is lent to the callback and is
//     valid only for the duration of that call (zero copy);
//   - send buffers are slots of a preallocated pool; the caller encodes straight into a
//     slot (AcquireTx), then hands it back with a destination (CommitTx). The slot
//     returns to the pool when the kernel is done with it.
//
// Threading: a Transport is used by one thread (the loop that polls it). Only Wake() may
// be called from other threads. stats() is read on the owning thread; other threads ask
// the loop (EventLoop::Post) rather than reading it.
#ifndef SCUTTLE_IO_TRANSPORT_H_
#define SCUTTLE_IO_TRANSPORT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wire/endpoint.h"

namespace scuttle::io {

// Largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP).
inline constexpr size_t kMaxUdpPayloadBytes = 65507;

enum class IoKind : uint8_t {
  kAuto,   // io_uring, falling back to epoll when the kernel or a sandbox refuses it
  kUring,  // io_uring or an error
  kEpoll,  // epoll + recvmmsg/sendmmsg
  kXdp,    // AF_XDP on one interface queue (io/xdp_transport.h); never chosen by kAuto
};

// AF_XDP attach mode: native (driver) XDP, generic (skb) XDP, or native where the driver
// has it and generic otherwise.
enum class XdpMode : uint8_t { kAuto, kDrv, kSkb };
// AF_XDP zero-copy: kAuto tries it and falls back to copy mode with a log line.
enum class XdpZerocopy : uint8_t { kAuto, kOn, kOff };

// IoKind::kXdp only (docs/xdp.md).
struct XdpOptions {
  // Interface to attach to; empty = the interface that holds the bind address.
  std::string interface;
  uint32_t queue = 0;  // receive queue to bind (and the only one redirected)
  XdpMode mode = XdpMode::kAuto;
  XdpZerocopy zerocopy = XdpZerocopy::kAuto;
  // UMEM size; 0 = one 4 KiB frame per receive buffer and per send slot. Otherwise split
  // evenly between receive and send frames (rounded down to powers of two).
  size_t umem_bytes = 0;
};

struct TransportOptions {
  IoKind kind = IoKind::kAuto;
  // Local address; port 0 picks a free port (see Transport::local_endpoint()).
  Endpoint bind;
  // Datagrams larger than this are dropped as rx_truncated; also the tx slot size unless
  // tx_slot_bytes says otherwise.
  size_t max_datagram_bytes = kMaxUdpPayloadBytes;
  // Bytes per send slot; 0 means max_datagram_bytes. An encoder that builds back to
  // front (FlatBuffers) needs head room beyond the datagram it finally sends: the engine
  // asks for max_packet_bytes + 1024 and sends a sub-span (CommitTx(to, span)).
  size_t tx_slot_bytes = 0;
  // Receive buffers (io_uring: provided-buffer ring entries, rounded up to a power of
  // two; epoll: the recvmmsg batch). Memory is mapped lazily, so small datagrams only
  // touch the first page of each buffer.
  size_t rx_buffer_count = 256;
  // Send slots: the bound on datagrams queued or in flight.
  size_t tx_slot_count = 256;
  // SO_RCVBUF / SO_SNDBUF; 0 keeps the system default.
  size_t socket_rcvbuf_bytes = 4 << 20;
  size_t socket_sndbuf_bytes = 4 << 20;
  // UDP GSO (io/gso.h): consecutive datagrams to one destination of equal size (a shorter
  // last one allowed) go to the kernel as one segmented send. Off, or on a kernel without
  // UDP_SEGMENT, every datagram is its own send. A run the route refuses (segment above
  // its MTU, no checksum offload) is resent one datagram at a time and counted.
  bool udp_gso = true;
  // UDP GRO: the kernel may coalesce same-sized datagrams from one source; the transport
  // splits them again, so on_datagram always sees single datagrams. Only used when
  // max_datagram_bytes is kMaxUdpPayloadBytes (a coalesced buffer may be that large).
  bool udp_gro = true;
  // Zero-copy send (io_uring IORING_OP_SENDMSG_ZC, epoll MSG_ZEROCOPY): a datagram (or
  // GSO run) of at least this many bytes is handed to the kernel by reference; its slot
  // stays busy until the kernel's completion notification, not just the send result.
  // 0 = never. Off by default: it only pays where the device reads the pages itself (a
  // NIC with scatter-gather); on loopback and veth the kernel copies them anyway, later
  // and at a higher cost (bench/README.md §1). A kernel or socket without it falls back
  // to copying sends with one log line.
  size_t zerocopy_min_bytes = 0;
  // Test hook: set SO_NO_CHECK on the socket, with which the kernel refuses every GSO
  // send (EINVAL), to exercise the one-by-one resend.
  bool test_refuse_gso = false;
  // Test hook: make io_uring setup fail with this errno, as a seccomp profile would
  // (EPERM for Docker's default profile). 0 = off.
  int simulate_uring_errno = 0;
  XdpOptions xdp;
};

// Why a datagram was dropped. Every drop is counted under exactly one reason.
enum class Drop : uint8_t {
  kRxTruncated,   // larger than max_datagram_bytes (MSG_TRUNC); never delivered
  kRxError,       // receive error reported by the kernel
  kTxPoolFull,    // AcquireTx found no free slot
  kTxTooLarge,    // AcquireTx asked for more than the tx slot size
  kTxBadAddress,  // CommitTx to an endpoint this socket cannot reach (family mismatch)
  kTxError,       // send error reported by the kernel (ECONNREFUSED, ENETUNREACH, ...)
  kTxBadSpan,     // CommitTx with a span outside the acquired slot (a caller bug; the
                  // slot is returned unsent rather than sending unrelated memory)
  kCount,
};
inline constexpr size_t kDropReasonCount = static_cast<size_t>(Drop::kCount);
// Stable snake_case name for metrics ("rx_truncated", ...).
const char* DropName(Drop reason);
// The effective send slot size of `options` (tx_slot_bytes, or max_datagram_bytes).
size_t TxSlotBytes(const TransportOptions& options);

struct TransportStats {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_bytes = 0;
  uint64_t polls = 0;       // Poll() calls
  uint64_t flushes = 0;     // Flush() calls that submitted at least one datagram
  uint64_t wakeups = 0;     // Wake() events consumed by Poll()
  uint64_t rx_rearms = 0;   // io_uring: multishot recvmsg re-armed (e.g. ENOBUFS)
  uint64_t tx_retries = 0;  // epoll: sendmmsg hit EAGAIN, rest kept queued
  uint64_t tx_gso_sends = 0;      // coalesced sends handed to the kernel (UDP_SEGMENT)
  uint64_t tx_gso_segments = 0;   // datagrams that went out inside them
  uint64_t tx_gso_fallbacks = 0;  // coalesced sends refused and resent one by one
  uint64_t rx_gro_batches = 0;    // received buffers that carried several datagrams
  uint64_t tx_zc_sends = 0;       // zero-copy sends handed to the kernel
  uint64_t tx_zc_copied = 0;      // ... of which the kernel reported it copied the bytes
  uint64_t tx_zc_fallbacks = 0;   // zero-copy sends refused and resent by copy
  uint64_t tx_zc_pending = 0;     // slots sent, waiting for the zero-copy notification
  bool gso = false;               // UDP GSO in use on this socket
  bool gro = false;               // UDP GRO in use on this socket
  bool zerocopy = false;          // zero-copy sends enabled (zerocopy_min_bytes > 0)
  // AF_XDP (IoKind::kXdp): datagrams that took the kernel's UDP socket instead of the
  // XSK rings (too large for a frame or the MTU, an IP fragment, an unresolved
  // neighbour, a route out of another interface), frames copied from an oversized send
  // slot into UMEM, neighbour-table misses, and frames the kernel dropped on the XSK
  // (XDP_STATISTICS: receive ring full, invalid descriptors).
  uint64_t xdp_rx_kernel = 0;
  uint64_t xdp_tx_kernel = 0;
  uint64_t xdp_tx_staged = 0;
  uint64_t xdp_neigh_misses = 0;
  uint64_t xdp_rx_dropped = 0;
  uint64_t xdp_rx_realigned = 0;  // payloads moved to 8-byte alignment (IPv6, zero-copy)
  bool xdp_zerocopy = false;  // the XSK is bound in zero-copy mode
  std::array<uint64_t, kDropReasonCount> drops{};

  uint64_t drop(Drop reason) const { return drops[static_cast<size_t>(reason)]; }
  void CountDrop(Drop reason, uint64_t n = 1) { drops[static_cast<size_t>(reason)] += n; }
};

// One received datagram, lent to the Poll callback.
struct RxDatagram {
  Endpoint from;
  // Points into the transport's receive buffer: valid only during the callback.
  std::span<const uint8_t> data;
  // Reserved for backends that may deliver partial datagrams; the kernel backends
  // never deliver a truncated datagram (they count Drop::kRxTruncated instead).
  bool truncated = false;
};

class Transport {
 public:
  virtual ~Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // "io_uring", "epoll" or "xdp".
  virtual const char* name() const = 0;
  // The bound address, with the actual port when bound to port 0.
  virtual const Endpoint& local_endpoint() const = 0;
  virtual const TransportStats& stats() const = 0;

  // --- Send side -------------------------------------------------------------------
  // Returns a writable slot of exactly max_len bytes, or an empty span (counted as
  // Drop::kTxPoolFull / kTxTooLarge) when no slot is free or max_len exceeds the slot
  // size (TransportOptions::tx_slot_bytes). Acquiring again before CommitTx/AbortTx
  // abandons the previous slot (AbortTx).
  virtual std::span<uint8_t> AcquireTx(size_t max_len) = 0;
  // Queues the datagram `packet`, a sub-span anywhere inside the most recently acquired
  // slot, for `to`. The kernel reads it in place: no copy. A span that is not inside the
  // slot is a caller bug: the slot goes back to the pool unsent (Drop::kTxBadSpan).
  // No-op when no slot is acquired.
  virtual void CommitTx(const Endpoint& to, std::span<const uint8_t> packet) = 0;
  // Queues the first `len` bytes of the most recently acquired slot for `to`.
  // REQUIRES: a slot is acquired and len <= its size.
  virtual void CommitTx(const Endpoint& to, size_t len) = 0;
  // Returns the most recently acquired slot to the pool unused. No-op if none.
  virtual void AbortTx() = 0;
  // Hands every queued datagram to the kernel in one batch (one sendmmsg chain / one
  // io_uring submission). Send errors are counted, never returned: UDP is lossy and
  // one bad peer must not stop the loop. Returns an error only if the transport itself
  // is broken.
  virtual absl::Status Flush() = 0;

  // --- Receive side ----------------------------------------------------------------
  // Waits up to timeout_us (< 0: no limit; 0: do not block) for datagrams or Wake(),
  // then calls on_datagram for every datagram of this batch. Also reclaims send slots
  // whose sends completed. REQUIRES: not called from inside on_datagram.
  virtual absl::Status Poll(int64_t timeout_us,
                            absl::FunctionRef<void(const RxDatagram&)> on_datagram) = 0;

  // Thread-safe: makes a blocked (or the next) Poll return promptly.
  virtual void Wake() = 0;

 protected:
  Transport() = default;
};

// Opens a transport per options.kind. kAuto tries io_uring and falls back to epoll,
// with one log line, when io_uring is refused (EPERM/EACCES from seccomp, ENOSYS,
// EINVAL/ENOMEM from old kernels). Bind errors name the address, e.g. kFailedPrecondition
// "io: bind 127.0.0.1:7400: Address already in use (EADDRINUSE)" (absl's errno mapping).
// Threading (io_uring): the ring is created disabled and bound to the first thread that
// calls Poll/Flush, so a transport may be opened on one thread and run on another.
// Destroy it on that thread or after that thread has exited.
absl::StatusOr<std::unique_ptr<Transport>> OpenTransport(const TransportOptions& options);

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_TRANSPORT_H_
