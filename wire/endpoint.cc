#include "wire/endpoint.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "wire/absl_compat.h"

namespace scuttle {

Endpoint Endpoint::V4(uint32_t host_order_ip, uint16_t port) {
  Endpoint e;
  e.family = 4;
  e.port = port;
  const uint32_t n = htonl(host_order_ip);
  std::memcpy(e.addr.data(), &n, 4);
  return e;
}

absl::StatusOr<Endpoint> Endpoint::Parse(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("bad endpoint '", AV(text), "': want [v6]:port"));
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad endpoint '", AV(text), "': want ip:port"));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535 ||
      port_text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in endpoint '", AV(text), "'"));
  }
  if (host.size() >= INET6_ADDRSTRLEN) {
    return absl::InvalidArgumentError(absl::StrCat("bad address in endpoint '", AV(text), "'"));
  }
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, host.data(), host.size());
  Endpoint e;
  e.port = static_cast<uint16_t>(port);
  if (inet_pton(AF_INET, buf, e.addr.data()) == 1) {
    e.family = 4;
  } else if (inet_pton(AF_INET6, buf, e.addr.data()) == 1) {
    e.family = 6;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address in endpoint '", AV(text), "' (hostnames are resolved by io/)"));
  }
  return e;
}

std::string Endpoint::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == 4) {
    inet_ntop(AF_INET, addr.data(), buf, sizeof(buf));
    return absl::StrCat(buf, ":", port);
  }
  if (family == 6) {
    inet_ntop(AF_INET6, addr.data(), buf, sizeof(buf));
    return absl::StrCat("[", buf, "]:", port);
  }
  return "unset";
}

}  // namespace scuttle
