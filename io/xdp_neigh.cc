#include "io/xdp_neigh.h"

#include <libmnl/libmnl.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "io/socket.h"

namespace scuttle::io {
namespace {

// Replies to one route or neighbour query fit easily: a message and a handful of
// attributes. Queries are doit requests (one answer or one error), never dumps.
constexpr size_t kBufBytes = 8192;

size_t AddrLen(int family) { return family == AF_INET ? 4 : 16; }

// A netlink doit request in `buf`: message `type`, sequence `seq`, the family header T
// (zeroed, then set by `fill`) and the address attribute `attr`.
template <typename T, typename Fill>
void PutRequest(char* buf, uint16_t type, uint32_t seq, uint16_t attr, int family,
                const uint8_t* addr, Fill fill) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = seq;
  fill(static_cast<T*>(mnl_nlmsg_put_extra_header(nlh, sizeof(T))));
  mnl_attr_put(nlh, attr, AddrLen(family), addr);
}

struct RouteReply {
  int family = 0;
  int oif = 0;
  bool unicast = false;
  bool has_gateway = false;
  bool has_source = false;
  uint8_t gateway[16] = {};
  uint8_t source[16] = {};
};

int OnRouteAttr(const nlattr* a, void* data) {
  auto* r = static_cast<RouteReply*>(data);
  const size_t len = AddrLen(r->family);
  switch (mnl_attr_get_type(a)) {
    case RTA_OIF:
      if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) r->oif = static_cast<int>(mnl_attr_get_u32(a));
      break;
    case RTA_GATEWAY:
      if (mnl_attr_get_payload_len(a) == len) {
        std::memcpy(r->gateway, mnl_attr_get_payload(a), len);
        r->has_gateway = true;
      }
      break;
    case RTA_PREFSRC:
      if (mnl_attr_get_payload_len(a) == len) {
        std::memcpy(r->source, mnl_attr_get_payload(a), len);
        r->has_source = true;
      }
      break;
    default:
      break;
  }
  return MNL_CB_OK;
}

int OnRoute(const nlmsghdr* nlh, void* data) {
  if (nlh->nlmsg_type != RTM_NEWROUTE) return MNL_CB_OK;
  auto* r = static_cast<RouteReply*>(data);
  const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
  r->unicast = rtm->rtm_type == RTN_UNICAST;
  return mnl_attr_parse(nlh, sizeof(*rtm), OnRouteAttr, data);
}

struct NeighReply {
  uint16_t state = 0;
  bool has_mac = false;
  uint8_t mac[6] = {};
};

int OnNeighAttr(const nlattr* a, void* data) {
  auto* r = static_cast<NeighReply*>(data);
  if (mnl_attr_get_type(a) == NDA_LLADDR && mnl_attr_get_payload_len(a) == 6) {
    std::memcpy(r->mac, mnl_attr_get_payload(a), 6);
    r->has_mac = true;
  }
  return MNL_CB_OK;
}

int OnNeigh(const nlmsghdr* nlh, void* data) {
  if (nlh->nlmsg_type != RTM_NEWNEIGH) return MNL_CB_OK;
  const auto* ndm = static_cast<const ndmsg*>(mnl_nlmsg_get_payload(nlh));
  static_cast<NeighReply*>(data)->state = ndm->ndm_state;
  return mnl_attr_parse(nlh, sizeof(*ndm), OnNeighAttr, data);
}

}  // namespace

absl::StatusOr<std::unique_ptr<NeighbourTable>> NeighbourTable::Open(int ifindex) {
  std::unique_ptr<NeighbourTable> t(new NeighbourTable());
  t->ifindex_ = ifindex;
  t->nl_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (t->nl_ == nullptr) return ErrnoStatus(errno, "io: netlink socket (neighbour table)");
  if (mnl_socket_bind(t->nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
    return ErrnoStatus(errno, "io: netlink bind (neighbour table)");
  }
  t->port_id_ = mnl_socket_get_portid(t->nl_);
  // A reply that never comes must not hang the loop: the kernel answers doit requests
  // synchronously, so a short timeout only guards against the unexpected.
  timeval tv{.tv_sec = 0, .tv_usec = 200'000};
  setsockopt(mnl_socket_get_fd(t->nl_), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return t;
}

NeighbourTable::~NeighbourTable() {
  if (nl_ != nullptr) mnl_socket_close(nl_);
}

bool NeighbourTable::Request(void* buf, int (*cb)(const nlmsghdr*, void*), void* data) {
  auto* nlh = static_cast<nlmsghdr*>(buf);
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return false;
  const uint32_t seq = nlh->nlmsg_seq;
  char reply[kBufBytes];
  // Skip answers to earlier requests that timed out (their sequence numbers differ).
  for (int i = 0; i < 4; ++i) {
    const ssize_t n = mnl_socket_recvfrom(nl_, reply, sizeof(reply));
    if (n <= 0) return false;
    const int r = mnl_cb_run(reply, static_cast<size_t>(n), seq, port_id_, cb, data);
    if (r >= MNL_CB_STOP) return true;
    if (errno != EPROTO && errno != EILSEQ) return false;  // EILSEQ: an old sequence
  }
  return false;
}

bool NeighbourTable::Route(int family, const uint8_t* dst, int* oif, uint8_t* next_hop,
                           uint8_t* source) {
  alignas(nlmsghdr) char buf[512];
  PutRequest<rtmsg>(buf, RTM_GETROUTE, ++seq_, RTA_DST, family, dst, [&](rtmsg* rtm) {
    rtm->rtm_family = static_cast<uint8_t>(family);
    rtm->rtm_dst_len = static_cast<uint8_t>(AddrLen(family) * 8);
  });
  RouteReply r;
  r.family = family;
  if (!Request(buf, OnRoute, &r) || !r.unicast) return false;
  *oif = r.oif;
  std::memcpy(next_hop, r.has_gateway ? r.gateway : dst, AddrLen(family));
  if (r.has_source) std::memcpy(source, r.source, AddrLen(family));
  return true;
}

bool NeighbourTable::Neighbour(int family, const uint8_t* addr, NextHop* hop) {
  alignas(nlmsghdr) char buf[512];
  PutRequest<ndmsg>(buf, RTM_GETNEIGH, ++seq_, NDA_DST, family, addr, [&](ndmsg* ndm) {
    ndm->ndm_family = static_cast<uint8_t>(family);
    ndm->ndm_ifindex = ifindex_;
  });
  NeighReply r;
  if (!Request(buf, OnNeigh, &r)) return false;  // ENOENT: never resolved
  constexpr uint16_t kUsable =
      NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT;
  if (!(r.state & kUsable) || !r.has_mac) return false;
  std::memcpy(hop->mac.data(), r.mac, 6);
  hop->nudge = (r.state & NUD_STALE) != 0;
  return true;
}

NextHop NeighbourTable::Resolve(const Endpoint& to) {
  NextHop hop;
  const int family = to.family == 4 ? AF_INET : AF_INET6;
  int oif = 0;
  uint8_t next[16] = {};
  if (!Route(family, to.addr.data(), &oif, next, hop.source.data()) || oif != ifindex_) {
    hop.kind = NextHop::Kind::kOtherRoute;
    return hop;
  }
  hop.kind = Neighbour(family, next, &hop) ? NextHop::Kind::kDirect : NextHop::Kind::kUnresolved;
  return hop;
}

NextHop& NeighbourTable::Lookup(const Endpoint& to, int64_t now_us) {
  const Key key{to.family, to.addr};
  auto it = cache_.find(key);
  if (it != cache_.end() && it->second.expires_us > now_us) return it->second.hop;
  if (it == cache_.end() && cache_.size() >= kMaxEntries) cache_.clear();
  Entry& e = cache_[key];
  e.hop = Resolve(to);
  e.expires_us = now_us + (e.hop.kind == NextHop::Kind::kUnresolved ? kMissTtlUs : kTtlUs);
  return e.hop;
}

void NeighbourTable::Forget(const Endpoint& to) { cache_.erase(Key{to.family, to.addr}); }

}  // namespace scuttle::io
