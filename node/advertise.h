// Which gossip address scuttled announces to peers when --advertise_addr is not given.
//
//   listen on a specific address  -> that address
//   listen on 0.0.0.0             -> the first usable IPv4 address of the host, else
//                                    127.0.0.1
//   listen on [::] (dual-stack)   -> the first usable IPv6 address (global or unique-local;
//                                    link-local ones need a zone and are skipped), else
//                                    the first usable IPv4 address, else ::1
// "Usable" leaves out loopback, link-local and unspecified addresses; interfaces are
// taken in the kernel's order (getifaddrs). The port is the listen port. A host whose
// peers reach it through another address (NAT, a second interface, IPv4 peers of a
// [::]-bound node on a host with IPv6) must set --advertise_addr.
#ifndef SCUTTLE_NODE_ADVERTISE_H_
#define SCUTTLE_NODE_ADVERTISE_H_

#include <vector>

#include "wire/endpoint.h"

namespace scuttle {

bool IsUnspecified(const Endpoint& ep);

// The choice above over `candidates` (the host's interface addresses, any port).
Endpoint ChooseAdvertise(const Endpoint& listen, const std::vector<Endpoint>& candidates);

// The host's interface addresses (getifaddrs), IPv4 and IPv6, in the kernel's order.
std::vector<Endpoint> InterfaceAddresses();

}  // namespace scuttle

#endif  // SCUTTLE_NODE_ADVERTISE_H_
