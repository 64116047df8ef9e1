#include "io/transport.h"

#include "absl/strings/str_cat.h"
#include "io/epoll_transport.h"
#include "io/uring_transport.h"
#include "io/xdp_transport.h"
#include "spdlog/spdlog.h"
#include "wire/absl_compat.h"

namespace scuttle::io {
namespace {

// Static limits (STYLE: every buffer has a bound). io_uring caps a buffer ring at 32768
// entries and an SQ at 32768; 16384 tx slots keeps SQ sizing below that.
constexpr size_t kMaxRxBuffers = 32768;
constexpr size_t kMaxTxSlots = 16384;
// A send slot holds one datagram plus encoder head room; 1 MiB is far beyond either.
constexpr size_t kMaxTxSlotBytes = 1 << 20;

absl::Status Validate(const TransportOptions& o) {
  if (!o.bind.valid()) return absl::InvalidArgumentError("io: bind endpoint is not set");
  if (o.max_datagram_bytes == 0 || o.max_datagram_bytes > kMaxUdpPayloadBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("io: max_datagram_bytes must be in [1, ", kMaxUdpPayloadBytes, "]"));
  }
  if (o.rx_buffer_count == 0 || o.rx_buffer_count > kMaxRxBuffers) {
    return absl::InvalidArgumentError(
        absl::StrCat("io: rx_buffer_count must be in [1, ", kMaxRxBuffers, "]"));
  }
  if (o.tx_slot_bytes > kMaxTxSlotBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("io: tx_slot_bytes must be at most ", kMaxTxSlotBytes, " (0 = max_datagram_bytes)"));
  }
  if (o.tx_slot_count == 0 || o.tx_slot_count > kMaxTxSlots) {
    return absl::InvalidArgumentError(
        absl::StrCat("io: tx_slot_count must be in [1, ", kMaxTxSlots, "]"));
  }
  return absl::OkStatus();
}

}  // namespace

size_t TxSlotBytes(const TransportOptions& o) {
  return o.tx_slot_bytes != 0 ? o.tx_slot_bytes : o.max_datagram_bytes;
}

const char* DropName(Drop reason) {
  switch (reason) {
    case Drop::kRxTruncated:
      return "rx_truncated";
    case Drop::kRxError:
      return "rx_error";
    case Drop::kTxPoolFull:
      return "tx_pool_full";
    case Drop::kTxTooLarge:
      return "tx_too_large";
    case Drop::kTxBadAddress:
      return "tx_bad_address";
    case Drop::kTxError:
      return "tx_error";
    case Drop::kTxBadSpan:
      return "tx_bad_span";
    case Drop::kCount:
      break;
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Transport>> OpenTransport(const TransportOptions& options) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  switch (options.kind) {
    case IoKind::kUring:
      return UringTransport::Open(options);
    case IoKind::kEpoll:
      return EpollTransport::Open(options);
    case IoKind::kXdp:  // only ever on request: kAuto below never tries it
      return XdpTransport::Open(options);
    case IoKind::kAuto:
      break;
  }
  auto uring = UringTransport::Open(options);
  // kUnimplemented = "io_uring refused here" (see UringTransport::Open); anything else
  // (a busy port...) would fail the same way under epoll, so report it as is.
  if (uring.ok() || uring.status().code() != absl::StatusCode::kUnimplemented) return uring;
  // Container runtimes block io_uring by default (DESIGN §9): one line, then epoll.
  spdlog::warn("io: {}; falling back to epoll for {}", SV(uring.status().message()),
               options.bind.ToString());
  return EpollTransport::Open(options);
}

}  // namespace scuttle::io
