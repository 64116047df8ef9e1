// scuttle_xdp: the XDP program in front of an AF_XDP transport (io/xdp_transport.h).
//
// Redirects into the XSK map only what is ours: an IPv4 or IPv6 UDP datagram, not a
// fragment, to the configured port, arriving on the configured queue. Everything else
// (ARP, ICMP/NDP, TCP such as SSH and the admin API, other UDP, IP fragments, packets
// with IPv6 extension headers) goes on to the kernel with XDP_PASS, so the host keeps
// working with the program attached. A fragment or an odd header is not lost either:
// the kernel reassembles it and delivers it to the transport's ordinary UDP socket.
//
// Built by CMake with `clang -target bpf` (io/CMakeLists.txt), loaded with libxdp so it
// can share the interface with other programs through libxdp's dispatcher.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

#include "io/xdp/scuttle_xdp_config.h"

// The transport's socket, keyed by receive queue.
struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, SCUTTLE_XDP_MAX_QUEUES);
  __type(key, __u32);
  __type(value, __u32);
} scuttle_xsks SEC(".maps");

// One entry: what to redirect (written by the transport after load; all zero = nothing).
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct scuttle_xdp_config);
} scuttle_cfg SEC(".maps");

// Per-verdict counters, read by tests and `xdp` stats: [0] redirected, [1] passed.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u64);
} scuttle_counts SEC(".maps");

static __always_inline int Count(int verdict_index, int action) {
  __u32 k = verdict_index;
  __u64* c = bpf_map_lookup_elem(&scuttle_counts, &k);
  if (c) *c += 1;
  return action;
}

// libxdp's dispatcher: run at priority 20, and let the next program see what we pass.
struct {
  __uint(priority, 20);
  __uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(scuttle_xdp);

// "xdp.frags" (BPF_F_XDP_HAS_FRAGS): the program copes with multi-buffer frames (it
// passes them), so native mode attaches on an interface whose MTU exceeds a page
// (jumbo frames); without it the driver refuses, e.g. veth's "Peer MTU is too large".
SEC("xdp.frags")
int scuttle_xdp(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* end = (void*)(long)ctx->data_end;
  __u32 zero = 0;
  const struct scuttle_xdp_config* cfg = bpf_map_lookup_elem(&scuttle_cfg, &zero);
  if (!cfg || cfg->port_be == 0) return XDP_PASS;
  if (ctx->rx_queue_index != cfg->queue) return Count(1, XDP_PASS);

  // Too long for a UMEM frame, or spread over several buffers (a multi-buffer frame: the
  // XSK is not bound with XDP_USE_SG and would drop it): the kernel delivers it to the
  // transport's UDP socket.
  const __u64 len = bpf_xdp_get_buff_len(ctx);
  if (cfg->max_frame_bytes && len > cfg->max_frame_bytes) return Count(1, XDP_PASS);
  if (len != (__u64)(end - data)) return Count(1, XDP_PASS);

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > end) return Count(1, XDP_PASS);
  struct udphdr* udp;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > end) return Count(1, XDP_PASS);
    // Not UDP, options (ihl != 5: rare; the kernel handles them), or a fragment.
    if (ip->protocol != IPPROTO_UDP || ip->ihl != 5) return Count(1, XDP_PASS);
    if (ip->frag_off & bpf_htons(0x3fff)) return Count(1, XDP_PASS);
    udp = (void*)(ip + 1);
  } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = (void*)(eth + 1);
    if ((void*)(ip6 + 1) > end) return Count(1, XDP_PASS);
    if (ip6->nexthdr != IPPROTO_UDP) return Count(1, XDP_PASS);
    udp = (void*)(ip6 + 1);
  } else {
    return Count(1, XDP_PASS);  // ARP, VLAN-tagged, anything else
  }
  if ((void*)(udp + 1) > end) return Count(1, XDP_PASS);
  if (udp->dest != cfg->port_be) return Count(1, XDP_PASS);
  // No socket in the map for this queue (yet): the kernel stack delivers it instead.
  return Count(0, bpf_redirect_map(&scuttle_xsks, ctx->rx_queue_index, XDP_PASS));
}

char _license[] SEC("license") = "Dual BSD/GPL";
