// Endpoint: a UDP gossip address (IPv4 or IPv6 + port) as a plain value type.
//
// The engine, the wire format and the transports all name peers by Endpoint. It holds no
// socket state, so the sans-IO engine and the simulator can use it freely.
#ifndef SCUTTLE_WIRE_ENDPOINT_H_
#define SCUTTLE_WIRE_ENDPOINT_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace scuttle {

struct Endpoint {
  // 4 or 6; 0 means "unset".
  uint8_t family = 0;
  uint16_t port = 0;
  // IPv4 uses the first 4 bytes, network order; the rest stays zero.
  std::array<uint8_t, 16> addr{};

  static Endpoint V4(uint32_t host_order_ip, uint16_t port);
  // Parses "1.2.3.4:7400", "[::1]:7400". Hostnames are not resolved here (see io/).
  static absl::StatusOr<Endpoint> Parse(std::string_view text);

  bool valid() const { return family == 4 || family == 6; }
  std::string ToString() const;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Endpoint& e) {
    return H::combine(std::move(h), e.family, e.port, e.addr);
  }
};

}  // namespace scuttle

#endif  // SCUTTLE_WIRE_ENDPOINT_H_
