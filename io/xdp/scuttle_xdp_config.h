// Shared between the XDP program (io/xdp/scuttle_xdp.bpf.c) and the transport that
// configures it (io/xdp_transport.cc): the layout of the one-entry config map.
#ifndef SCUTTLE_IO_XDP_SCUTTLE_XDP_CONFIG_H_
#define SCUTTLE_IO_XDP_SCUTTLE_XDP_CONFIG_H_

#include <linux/types.h>

#define SCUTTLE_XDP_MAX_QUEUES 64
// The program's name as the kernel lists it (15 characters at most): how a start
// recognises programs of ours left attached by a process that died.
#define SCUTTLE_XDP_PROG_NAME "scuttle_xdp"

struct scuttle_xdp_config {
  __u16 port_be;  // UDP destination port, network order; 0 = redirect nothing
  __u16 pad;
  __u32 queue;      // receive queue the socket is bound to
  __u32 owner_pid;  // process that attached the program (stale-program cleanup)
  __u32 max_frame_bytes;  // longer frames are passed to the kernel (0 = no limit)
};

#endif  // SCUTTLE_IO_XDP_SCUTTLE_XDP_CONFIG_H_
