// NeighbourTable: where an AF_XDP transport sends a datagram (io/xdp_transport.h).
//
// An XSK frame carries its own Ethernet header, so the transport needs what the kernel's
// IP stack would have found: the route to the destination (output interface, next hop,
// preferred source address) and the next hop's link-layer address. Both come from the
// kernel over rtnetlink (RTM_GETROUTE, RTM_GETNEIGH), cached for a few seconds. Nothing
// is hard-coded: a miss (no neighbour entry yet, or one the kernel marks unusable) tells
// the caller to send that datagram through its ordinary UDP socket, which makes the
// kernel resolve the neighbour (ARP / neighbour discovery) so the next lookup finds it.
#ifndef SCUTTLE_IO_XDP_NEIGH_H_
#define SCUTTLE_IO_XDP_NEIGH_H_

#include <array>
#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "wire/endpoint.h"

struct mnl_socket;
struct nlmsghdr;

namespace scuttle::io {

struct NextHop {
  enum class Kind : uint8_t {
    kDirect,       // out of our interface to `mac`, from `source`
    kUnresolved,   // out of our interface, neighbour not (yet) known: use the kernel
    kOtherRoute,   // another interface, or no route: use the kernel
  };
  Kind kind = Kind::kOtherRoute;
  std::array<uint8_t, 6> mac{};
  std::array<uint8_t, 16> source{};  // preferred source address (4 or 16 bytes used)
  // The kernel's entry is stale: usable, but the kernel should see one datagram to
  // re-confirm it (its NUD_DELAY/PROBE cycle); the transport sends the next datagram
  // through its UDP socket and clears this.
  bool nudge = false;
};

class NeighbourTable {
 public:
  // Opens the netlink socket in the calling thread's network namespace.
  static absl::StatusOr<std::unique_ptr<NeighbourTable>> Open(int ifindex);
  ~NeighbourTable();
  NeighbourTable(const NeighbourTable&) = delete;
  NeighbourTable& operator=(const NeighbourTable&) = delete;

  // The next hop for `to` (its family and address; the port is ignored) at now_us.
  // Cached for kTtlUs when resolved, kMissTtlUs when not.
  NextHop& Lookup(const Endpoint& to, int64_t now_us);
  // Forgets `to` so the next Lookup asks the kernel again.
  void Forget(const Endpoint& to);

  static constexpr int64_t kTtlUs = 5'000'000;
  static constexpr int64_t kMissTtlUs = 200'000;
  static constexpr size_t kMaxEntries = 4096;  // then the cache starts over

 private:
  NeighbourTable() = default;
  struct Key {
    uint8_t family;
    std::array<uint8_t, 16> addr;
    friend bool operator==(const Key&, const Key&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.family, k.addr);
    }
  };
  struct Entry {
    NextHop hop;
    int64_t expires_us = 0;
  };
  NextHop Resolve(const Endpoint& to);
  // RTM_GETROUTE: output interface, gateway (or the destination itself), source.
  bool Route(int family, const uint8_t* dst, int* oif, uint8_t* next_hop, uint8_t* source);
  // RTM_GETNEIGH on our interface; false when there is no usable entry.
  bool Neighbour(int family, const uint8_t* addr, NextHop* hop);
  // Sends one request and runs the reply through `cb`; false on any error.
  bool Request(void* buf, int (*cb)(const ::nlmsghdr*, void*), void* data);

  mnl_socket* nl_ = nullptr;
  uint32_t port_id_ = 0;
  uint32_t seq_ = 0;
  int ifindex_ = 0;
  absl::flat_hash_map<Key, Entry> cache_;
};

}  // namespace scuttle::io

#endif  // SCUTTLE_IO_XDP_NEIGH_H_
