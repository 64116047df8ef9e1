// The transport conformance suite (tests/io/transport_conformance.cc): the parameterised
// TransportTest every Transport backend passes, and the helpers the transport tests share.
//
// Backends: io_uring and epoll over loopback (instantiated by tests/io/transport_test.cc),
// and AF_XDP in generic (skb) and native (drv) mode, with an AF_XDP or an epoll peer,
// across a veth pair between two network namespaces (instantiated by
// tests/io/xdp_transport_test.cc). The veth pair is created on first use (root only;
// otherwise every xdp case skips with the reason) and removed when the test program
// ends, also after a failure. Nothing sleeps: every wait is Poll() in a loop until a
// condition or a deadline (STYLE, Tests).
#ifndef SCUTTLE_TESTS_IO_TRANSPORT_CONFORMANCE_H_
#define SCUTTLE_TESTS_IO_TRANSPORT_CONFORMANCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "io/clock.h"
#include "io/transport.h"

namespace scuttle::io::conformance {

inline constexpr int64_t kDeadlineUs = 5'000'000;

Endpoint Loopback(uint16_t port = 0);
// A loopback transport of `kind` with 64 receive buffers and 64 send slots.
TransportOptions Options(IoKind kind, size_t max_datagram_bytes = kMaxUdpPayloadBytes);

// Deterministic contents so the receiver can check every byte.
std::vector<uint8_t> Pattern(size_t len, uint32_t seed);
// Acquire + copy + commit; false if no slot of that size was handed out.
bool Send(Transport& t, const Endpoint& to, const std::vector<uint8_t>& bytes);

// Polls `t` until cond() or the deadline; returns cond().
template <typename Cond, typename OnDatagram>
bool PollUntil(Transport& t, Cond cond, OnDatagram on_datagram, int64_t deadline_us = kDeadlineUs) {
  const int64_t deadline = MonotonicNowUs() + deadline_us;
  while (!cond() && MonotonicNowUs() < deadline) {
    EXPECT_TRUE(t.Poll(10'000, on_datagram).ok());
  }
  return cond();
}

// Receives until `want` datagrams arrived; returns them in arrival order.
std::vector<std::vector<uint8_t>> ReceiveN(Transport& t, size_t want);
// Polls the sender until every committed datagram completed.
void DrainSends(Transport& t, uint64_t packets);

// --- The veth pair for AF_XDP --------------------------------------------------------------

// Two namespaces s19-<pid>-a / -b joined by a veth pair (devices s19a<pid> / s19b<pid>),
// 10.19.0.1/24 + fd19::1/64 on a's end and .2 / ::2 on b's, MTU 1500.
struct Veth {
  std::string a, b, dev_a, dev_b;
  std::string skip_reason;  // non-empty: not available here (not root, no namespaces)
};
// Creates the pair on first call; removed at program exit. ASSERTs inside on a partial
// set-up (root, but a command failed).
const Veth& VethPair();
// Runs a shell command quietly; its exit status.
int Sh(const std::string& cmd);
// Switches the calling thread into namespace `ns` ("" = back to the starting one).
void Enter(const std::string& ns);
// An XDP program is attached to `dev` in `ns`.
bool HasXdp(const std::string& ns, const std::string& dev);
// Opens a transport inside namespace `ns`.
absl::StatusOr<std::unique_ptr<Transport>> OpenIn(const std::string& ns, const TransportOptions& o);

// --- The parameterised suite ---------------------------------------------------------------

struct Backend {
  IoKind kind;                     // kUring / kEpoll (loopback) or kXdp (veth)
  XdpMode mode = XdpMode::kAuto;   // xdp: skb or drv
  IoKind peer = IoKind::kXdp;      // xdp: the second transport of a test (namespace b)
};
std::string BackendName(const ::testing::TestParamInfo<Backend>& info);

// Loopback backends open every transport on 127.0.0.1. Xdp backends open the first
// transport of a test as AF_XDP on veth end a (namespace a), and the later ones on end b:
// the second as `peer`, any further one with epoll (one XSK per queue). A 127.0.0.1 bind
// address becomes the veth end's address (same port); a veth address picks its end.
class TransportTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override;
  void TearDown() override;
  bool IsXdp() const { return GetParam().kind == IoKind::kXdp; }
  // The options of this backend (bind 127.0.0.1:0; see above).
  TransportOptions Opts(size_t max_datagram_bytes = kMaxUdpPayloadBytes) const;
  // Opens a transport; skips the test if the kernel refuses io_uring (the only acceptable
  // reason to skip), nullptr (with a failure) on any other error.
  std::unique_ptr<Transport> Open(const TransportOptions& o);
  // Opens without expecting success (where the error is the point).
  absl::StatusOr<std::unique_ptr<Transport>> TryOpen(TransportOptions o);
  bool skipped_ = false;

 private:
  int opens_ = 0;
  bool xsk_used_[2] = {false, false};
};

#define OPEN_OR_SKIP(var, opts)                                 \
  std::unique_ptr<Transport> var = Open(opts);                  \
  if (skipped_) GTEST_SKIP() << "kernel refuses io_uring here"; \
  ASSERT_NE(var, nullptr)

}  // namespace scuttle::io::conformance

#endif  // SCUTTLE_TESTS_IO_TRANSPORT_CONFORMANCE_H_
