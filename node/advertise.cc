#include "node/advertise.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace scuttle {
namespace {

bool Usable(const Endpoint& ep) {
  if (!ep.valid() || IsUnspecified(ep)) return false;
  const auto& a = ep.addr;
  if (ep.family == 4) {
    if (a[0] == 127) return false;                  // loopback
    if (a[0] == 169 && a[1] == 254) return false;   // link-local
    return true;
  }
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return false;  // fe80::/10 link-local
  bool loopback = a[15] == 1;
  for (int i = 0; i < 15; ++i) loopback = loopback && a[i] == 0;
  if (loopback) return false;
  if (a[0] == 0 && a[1] == 0 && a[10] == 0xff && a[11] == 0xff) return false;  // v4-mapped
  return true;
}

}  // namespace

bool IsUnspecified(const Endpoint& ep) {
  for (uint8_t b : ep.addr) {
    if (b != 0) return false;
  }
  return true;
}

Endpoint ChooseAdvertise(const Endpoint& listen, const std::vector<Endpoint>& candidates) {
  if (!IsUnspecified(listen)) return listen;
  auto first = [&](uint8_t family) -> const Endpoint* {
    for (const Endpoint& c : candidates) {
      if (c.family == family && Usable(c)) return &c;
    }
    return nullptr;
  };
  const Endpoint* pick = listen.family == 6 ? first(6) : nullptr;
  if (pick == nullptr) pick = first(4);
  Endpoint ep;
  if (pick != nullptr) {
    ep = *pick;
  } else if (listen.family == 6) {
    ep = *Endpoint::Parse("[::1]:0");
  } else {
    ep = *Endpoint::Parse("127.0.0.1:0");
  }
  ep.port = listen.port;
  return ep;
}

std::vector<Endpoint> InterfaceAddresses() {
  std::vector<Endpoint> out;
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0) return out;
  for (const ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    Endpoint ep;
    if (i->ifa_addr->sa_family == AF_INET) {
      sockaddr_in sin;
      std::memcpy(&sin, i->ifa_addr, sizeof(sin));
      ep.family = 4;
      std::memcpy(ep.addr.data(), &sin.sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      sockaddr_in6 sin6;
      std::memcpy(&sin6, i->ifa_addr, sizeof(sin6));
      ep.family = 6;
      std::memcpy(ep.addr.data(), &sin6.sin6_addr, 16);
    } else {
      continue;
    }
    out.push_back(ep);
  }
  ::freeifaddrs(ifs);
  return out;
}

}  // namespace scuttle
