// Socket plumbing shared by the kernel transports: fd ownership, Endpoint <-> sockaddr,
// opening and binding the UDP socket, and lazily mapped buffer regions.
#ifndef SCUTTLE_IO_SOCKET_H_
#define SCUTTLE_IO_SOCKET_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wire/endpoint.h"

namespace scuttle::io {

// Owns a file descriptor; closes it on destruction.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&& o) noexcept;
  ~ScopedFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset();

 private:
  int fd_ = -1;
};

// Anonymous private mapping: pages are touched (and cost memory) only when used, so a
// pool of 64 KiB receive buffers that only ever sees 1400-byte gossip packets stays at
// one page per buffer.
class MappedRegion {
 public:
  MappedRegion() = default;
  MappedRegion(MappedRegion&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedRegion& operator=(MappedRegion&& o) noexcept;
  ~MappedRegion() { Reset(); }

  static absl::StatusOr<MappedRegion> Map(size_t bytes);
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  void Reset();

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Writes `ep` as a sockaddr for a socket of `socket_family` (AF_INET / AF_INET6); an
// IPv4 endpoint on an IPv6 socket becomes v4-mapped. Returns the length, or 0 when the
// socket cannot reach that family.
socklen_t ToSockaddr(const Endpoint& ep, int socket_family, sockaddr_storage* out);
// Reads a kernel-filled sockaddr; v4-mapped IPv6 comes back as an IPv4 endpoint so a
// peer has one name whichever socket family heard it. Unknown families -> invalid.
Endpoint FromSockaddr(const void* sa, socklen_t len);

struct UdpSocketOptions {
  bool nonblocking = false;
  size_t rcvbuf_bytes = 0;
  size_t sndbuf_bytes = 0;
};

// Opens a UDP socket bound to `bind` (dual-stack when IPv6). Errors name the address.
absl::StatusOr<ScopedFd> OpenUdpSocket(const Endpoint& bind, const UdpSocketOptions& opt);
// getsockname() as an Endpoint.
absl::StatusOr<Endpoint> LocalEndpoint(int fd);

// errno -> Status with "<what>: <strerror> (<errno name>)".
absl::Status ErrnoStatus(int err, const char* what);

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_SOCKET_H_
