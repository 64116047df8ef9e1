"""Delaying UDP relay for netlab (this kernel has no netem). Runs in the switch namespace.

--map R0:P=A0:P,R1:P=A1:P,...: relay address Ri stands for node i at Ai. A datagram that
arrives on Ri from Aj (node j) is sent to Ai from Rj after delay(j, i) +- jitter(j, i),
so node i sees it as coming from j's advertised (relay) address and its replies come
back through the relay too. Delays arrive as JSON lines on stdin: {"j,i": [ms, jitter]}.

Bounded: at most MAX_QUEUED datagrams wait (more are dropped and counted), so a stalled
peer cannot make the relay grow without limit. Jitter may reorder datagrams, as real
jitter does.

The relay is the test's network, so its own stalls are faults the scenario did not ask
for: on a loaded machine a user-space relay can be descheduled for a second, and every
path freezes at once (a 1 s freeze makes every node declare the others dead). Each
forwarding batch that leaves more than STALL_S after a datagram was due is printed as
`stall <due> <sent>` (CLOCK_MONOTONIC seconds, the clock the lab's t0 is read from); the
lab turns these into fault intervals (netlab.Lab.note_relay_stalls) and the figures.
"""

import argparse
import heapq
import json
import os
import random
import select
import socket
import sys
import time

MAX_QUEUED = 20000
# Beyond the scenarios' own jitter (<= 10 ms here) and ordinary scheduling latency (tens of
# ms on a loaded 2-core machine); well under the freeze the detector can ride out (~0.5 s).
STALL_S = 0.2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--map", required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    socks, real, index_of_real = [], [], {}
    for k, item in enumerate(args.map.split(",")):
        r, a = item.split("=")
        rh, rp = r.rsplit(":", 1)
        ah, ap_ = a.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        s.bind((rh, int(rp)))
        s.setblocking(False)
        socks.append(s)
        real.append((ah, int(ap_)))
        index_of_real[(ah, int(ap_))] = k
    delays = {}
    heap = []
    seq = 0
    forwarded = dropped = unknown = 0
    fd_index = {s.fileno(): k for k, s in enumerate(socks)}
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    buf = b""
    last_report = time.monotonic()
    late_max = 0.0
    while True:
        now = time.monotonic()
        timeout = max(0.0, heap[0][0] - now) if heap else 1.0
        rl, _, _ = select.select(list(fd_index) + [stdin], [], [], timeout)
        for fd in rl:
            if fd == stdin:
                chunk = os.read(stdin, 65536)
                if not chunk:
                    return  # the test went away
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    delays = {tuple(int(x) for x in k.split(",")): v
                              for k, v in json.loads(line).items()}
                continue
            i = fd_index[fd]
            s = socks[i]
            for _ in range(256):
                try:
                    data, src = s.recvfrom(65535)
                except BlockingIOError:
                    break
                j = index_of_real.get(src)
                if j is None:
                    unknown += 1
                    continue
                ms, jit = delays.get((j, i), (0, 0))
                d = ms + (rng.uniform(-jit, jit) if jit else 0)
                if len(heap) >= MAX_QUEUED:
                    dropped += 1
                    continue
                seq += 1
                heapq.heappush(heap, (time.monotonic() + max(0.0, d) / 1000.0, seq, j, i, data))
        now = time.monotonic()
        stalled_since = None
        while heap and heap[0][0] <= now:
            due, _, j, i, data = heapq.heappop(heap)
            late_max = max(late_max, now - due)
            if now - due > STALL_S and stalled_since is None:
                stalled_since = due  # the heap pops the most overdue first
            try:
                socks[j].sendto(data, real[i])
                forwarded += 1
            except OSError:
                dropped += 1
        if stalled_since is not None:
            print("stall %.6f %.6f" % (stalled_since, now), flush=True)
        if now - last_report > 5:
            last_report = now
            print("relay: forwarded %d dropped %d unknown %d queued %d late_max %.3f"
                  % (forwarded, dropped, unknown, len(heap), late_max), flush=True)
            late_max = 0.0


if __name__ == "__main__":
    main()
