#!/usr/bin/env python3
"""scuttled --io=xdp in a real network (docs/xdp.md): 3 nodes, one network namespace each,
on a bridge (the netlab topology, tests/netlab/netlab.py), namespaces named s19-<pid>-*.

  python3 tests/integration/xdp_cluster_test.py --bin .../scuttled --case mixed
  python3 tests/integration/xdp_cluster_test.py --bin .../scuttled --case all --xdp_mode skb

--case mixed: n0 on AF_XDP, n1 on io_uring, n2 on epoll. Keys written on each node reach
  every node, a delete on the XDP node reaches every node, n0 answers ping (ARP + ICMP pass
  its XDP program) and its admin API over TCP on the attached interface, and n0 really
  received gossip through its XSK (transport stats).
--case all: every node on AF_XDP. Replication and deletes; a garbage barrage at n0's port
  (every datagram counted as a drop, n0 keeps serving and replicating); kill -9 of n2 is
  detected as dead by the others; n2's restart removes the program its dead predecessor left
  attached and rejoins; SIGTERM of n1 detaches its program.

Needs root and network namespaces: without them it exits 77 (skipped) saying why.
"""
import argparse
import os
import random
import socket
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "netlab"))
import harness as h  # noqa: E402
import netlab  # noqa: E402
from harness import check, log, wait_until  # noqa: E402

# Our own namespace prefix and subnet, so this never meets a netlab run.
netlab.PREFIX = "s19-"
netlab.SUBNET = "10.19.1."


def node_argv_with_io(io_of):
    """NetNode.argv with a per-node --io (the Lab has one io for all)."""
    orig = netlab.NetNode.argv

    def argv(self):
        io = io_of.get(self.index)
        return [("--io=" + io) if (io and a.startswith("--io=")) else a for a in orig(self)]
    netlab.NetNode.argv = argv


def has_xdp(node):
    r = netlab.sh("ip", "-n", node.ns, "link", "show", "dev", "eth0")
    return " xdp" in r.stdout


def transport(node):
    return node.stats()["transport"]


def replicate_and_delete(lab, tag):
    for n in lab.nodes:
        n.put("%s-%s" % (tag, n.name), "v-" + n.name)
    for n in lab.nodes:
        lab_wait_value(lab, n, "%s-%s" % (tag, n.name), "v-" + n.name)
    n0 = lab.nodes[0]
    n0.delete("%s-%s" % (tag, n0.name))
    lab_wait_value(lab, n0, "%s-%s" % (tag, n0.name), None)
    log("replicated 3 keys and a delete (%s)" % tag)


def lab_wait_value(lab, owner, key, value, timeout=20):
    want = None if value is None else value.encode()
    wait_until(lambda: all(h.entry_value(n.get(key, node=owner.name)) == want
                           for n in lab.nodes if n.running()),
               timeout, "%s's %s = %r everywhere" % (owner.name, key, value), interval=0.05)


def wait_alive(lab, nodes=None, timeout=20):
    nodes = nodes or [n for n in lab.nodes if n.running()]
    wait_until(lambda: all(all(o.states().get(x.name) == "alive" for x in nodes) for o in nodes),
               timeout, "membership of %s" % [n.name for n in nodes])


def xsk_received(node):
    t = transport(node)
    check(t["name"] == "xdp", "%s runs %s, not xdp" % (node.name, t["name"]))
    return t["rx_packets"] - t["xdp_rx_kernel"]


def case_mixed(lab, args):
    n0, n1, n2 = lab.nodes
    wait_alive(lab)
    replicate_and_delete(lab, "mixed")
    check(transport(n1)["name"] == "io_uring" or transport(n1)["name"] == "epoll", "n1 transport")
    check(transport(n2)["name"] == "epoll", "n2 transport")
    wait_until(lambda: xsk_received(n0) > 10, 10, "gossip through n0's XSK")
    # ARP + ICMP pass the program.
    netlab.sh("ip", "-n", n1.ns, "neigh", "flush", "all", check_rc=False)
    r = netlab.sh("ip", "netns", "exec", n1.ns, "ping", "-c", "1", "-W", "2", n0.ip, check_rc=False)
    check(r.returncode == 0, "ping %s from %s failed: %s%s" % (n0.ip, n1.name, r.stdout, r.stderr))
    # The admin API over TCP on the attached interface (bound to 0.0.0.0 for this case).
    s = netlab.ns_socket(n1.ns)
    s.settimeout(5)
    s.connect((n0.ip, netlab.ADMIN_PORT))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = s.recv(4096)
    s.close()
    check(reply.startswith(b"HTTP/1.1 200"), "admin API over eth0: %r" % reply[:80])
    log("ping and the admin API work with n0's program attached; n0 XSK rx %d, kernel rx %d"
        % (xsk_received(n0), transport(n0)["xdp_rx_kernel"]))


def barrage(lab, target, sender):
    """Junk at target's gossip port from sender's namespace; returns how many sent."""
    rng = random.Random(19)
    s = netlab.ns_socket(sender.ns, socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    sizes = [1, 2, 7, 16, 100, 600, 1400, 1472, 3000, 9000, 65507]
    for i in range(600):
        n = sizes[i % len(sizes)]
        payload = bytes(rng.getrandbits(8) for _ in range(min(n, 64))) * (n // 64 + 1)
        s.sendto(payload[:n], (target.ip, netlab.GOSSIP_PORT))
        sent += 1
        if i % 50 == 49:
            time.sleep(0.01)  # paced: the point is parsing, not overflowing queues
    s.close()
    return sent


def case_all(lab, args):
    n0, n1, n2 = lab.nodes
    wait_alive(lab)
    replicate_and_delete(lab, "all")
    for n in lab.nodes:
        check(has_xdp(n), "%s: no XDP program on eth0" % n.name)
        wait_until(lambda n=n: xsk_received(n) > 10, 10, "gossip through %s's XSK" % n.name)

    def decode_drops(node):
        return sum(v for k, v in h.flat_counters(node.stats()).items()
                   if "drop" in k and isinstance(v, int))
    before = decode_drops(n0)
    sent = barrage(lab, n0, n1)
    wait_until(lambda: decode_drops(n0) - before >= sent, 15,
               "n0 counts the %d junk datagrams as drops" % sent)
    check(n0.healthz()["status"] == "ok", "n0 unhealthy after the barrage")
    replicate_and_delete(lab, "after-barrage")
    log("barrage of %d datagrams counted (%d drops), n0 still replicates"
        % (sent, decode_drops(n0) - before))

    lab.kill9(n2)
    wait_until(lambda: all(o.states().get(n2.name) == "dead" for o in (n0, n1)), 30,
               "n0 and n1 see the killed n2 dead")
    check(has_xdp(n2), "the kill -9'd n2 should have left its program attached")
    lab.restart(n2)
    wait_alive(lab)
    check(b"removed 1 stale XDP program" in open(n2.log_path, "rb").read(),
          "n2's restart did not report removing its predecessor's program")
    replicate_and_delete(lab, "after-restart")

    n1.sigterm()
    check(not has_xdp(n1), "n1's program still attached after SIGTERM")
    log("kill -9 detected, restart cleaned the stale program, SIGTERM detached")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--case", required=True, choices=["mixed", "all"])
    ap.add_argument("--xdp_mode", default="auto", choices=["auto", "drv", "skb"])
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    why = netlab.netns_supported()
    if why:
        print("SKIPPED: %s" % why)
        return h.SKIP
    for tool in ("ping",):
        if subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True).returncode:
            print("FAILED: this test needs `%s` (Debian package iputils-ping)" % tool)
            return 1
    io_of = {0: "xdp", 1: "uring", 2: "epoll"} if args.case == "mixed" else {0: "xdp", 1: "xdp", 2: "xdp"}
    node_argv_with_io(io_of)
    flags = {"xdp_mode": args.xdp_mode}
    t0 = time.monotonic()
    lab = netlab.Lab(args.bin, 3, io="xdp", keep=args.keep, **flags)
    with lab:
        try:
            if args.case == "mixed":
                lab.nodes[0].flags.update({"admin_addr": "0.0.0.0:%d" % netlab.ADMIN_PORT,
                                           "admin_insecure": "true"})
                orig_admin = netlab.NetNode.admin_addr
                netlab.NetNode.admin_addr = property(
                    lambda self: self.flags.get("admin_addr") or orig_admin.fget(self))
            lab.start_all()
            (case_mixed if args.case == "mixed" else case_all)(lab, args)
        except BaseException:  # noqa: BLE001 - diagnostics and logs, then fail
            traceback.print_exc(file=sys.stdout)
            for n in lab.nodes:
                try:
                    print("%s transport: %s" % (n.name, transport(n)))
                    print("%s nonzero: %s" % (n.name, {k: v for k, v in h.flat_counters(n.stats()).items() if v and ("drop" in k or "reject" in k or "bad" in k)}))
                except Exception:  # noqa: BLE001 - best effort
                    pass
            lab.dump_logs()
            print("FAILED xdp %s (%s) after %.1fs" % (args.case, args.xdp_mode,
                                                    time.monotonic() - t0))
            return 1
    print("PASSED xdp %s (%s) in %.1fs" % (args.case, args.xdp_mode, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
