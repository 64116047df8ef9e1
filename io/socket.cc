#include "io/socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle::io {

ScopedFd& ScopedFd::operator=(ScopedFd&& o) noexcept {
  if (this != &o) {
    Reset();
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

void ScopedFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

MappedRegion& MappedRegion::operator=(MappedRegion&& o) noexcept {
  if (this != &o) {
    Reset();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

absl::StatusOr<MappedRegion> MappedRegion::Map(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return ErrnoStatus(errno, "mmap buffer pool");
  MappedRegion r;
  r.data_ = static_cast<uint8_t*>(p);
  r.size_ = bytes;
  return r;
}

void MappedRegion::Reset() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

absl::Status ErrnoStatus(int err, const char* what) {
  const char* name = strerrorname_np(err);
  // absl's errno -> code mapping (EADDRINUSE -> kFailedPrecondition, EPERM ->
  // kPermissionDenied...), with the errno name so logs can be grepped.
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(what, ": ", std::strerror(err), " (", name ? name : "?", ")"));
}

socklen_t ToSockaddr(const Endpoint& ep, int socket_family, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(sockaddr_in6));
  if (ep.family == 4 && socket_family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(ep.port);
    std::memcpy(&sin->sin_addr, ep.addr.data(), 4);
    return sizeof(sockaddr_in);
  }
  if (socket_family != AF_INET6 || (ep.family != 4 && ep.family != 6)) return 0;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(ep.port);
  if (ep.family == 6) {
    std::memcpy(&sin6->sin6_addr, ep.addr.data(), 16);
  } else {  // ::ffff:a.b.c.d reaches an IPv4 peer from a dual-stack socket
    sin6->sin6_addr.s6_addr[10] = 0xff;
    sin6->sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(&sin6->sin6_addr.s6_addr[12], ep.addr.data(), 4);
  }
  return sizeof(sockaddr_in6);
}

Endpoint FromSockaddr(const void* sa, socklen_t len) {
  Endpoint ep;
  sa_family_t family;
  if (len < sizeof(family)) return ep;
  std::memcpy(&family, sa, sizeof(family));
  if (family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in sin;
    std::memcpy(&sin, sa, sizeof(sin));
    ep.family = 4;
    ep.port = ntohs(sin.sin_port);
    std::memcpy(ep.addr.data(), &sin.sin_addr, 4);
  } else if (family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, sa, sizeof(sin6));
    ep.port = ntohs(sin6.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
      ep.family = 4;
      std::memcpy(ep.addr.data(), &sin6.sin6_addr.s6_addr[12], 4);
    } else {
      ep.family = 6;
      std::memcpy(ep.addr.data(), &sin6.sin6_addr, 16);
    }
  }
  return ep;
}

namespace {

// Best effort: as root SO_*BUFFORCE passes net.core.[rw]mem_max, otherwise the kernel
// clamps SO_*BUF silently. Either way the socket works, so errors are ignored.
void SetBufferSize(int fd, int force_opt, int opt, size_t bytes) {
  if (bytes == 0) return;
  int v = static_cast<int>(bytes);
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof(v)) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
  }
}

}  // namespace

absl::StatusOr<ScopedFd> OpenUdpSocket(const Endpoint& bind, const UdpSocketOptions& opt) {
  if (!bind.valid()) return absl::InvalidArgumentError("io: bind endpoint is not set");
  const int family = bind.family == 4 ? AF_INET : AF_INET6;
  const int type = SOCK_DGRAM | SOCK_CLOEXEC | (opt.nonblocking ? SOCK_NONBLOCK : 0);
  ScopedFd fd(::socket(family, type, IPPROTO_UDP));
  if (!fd.valid()) return ErrnoStatus(errno, "io: socket(AF_INET*, SOCK_DGRAM)");
  if (family == AF_INET6) {
    int off = 0;  // dual-stack: IPv4 peers arrive v4-mapped, see FromSockaddr
    (void)::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  SetBufferSize(fd.get(), SO_RCVBUFFORCE, SO_RCVBUF, opt.rcvbuf_bytes);
  SetBufferSize(fd.get(), SO_SNDBUFFORCE, SO_SNDBUF, opt.sndbuf_bytes);
  sockaddr_storage ss;
  const socklen_t len = ToSockaddr(bind, family, &ss);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    const std::string what = absl::StrCat("io: bind ", AV(bind.ToString()));
    return ErrnoStatus(errno, what.c_str());
  }
  return fd;
}

absl::StatusOr<Endpoint> LocalEndpoint(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return ErrnoStatus(errno, "io: getsockname");
  }
  return FromSockaddr(&ss, len);
}

}  // namespace scuttle::io
