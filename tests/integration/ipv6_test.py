#!/usr/bin/env python3
"""scuttled over IPv6: a cluster on [::1] (bind, advertise and seeds all IPv6), and a
dual-stack cluster of [::]-bound nodes where some members advertise IPv6 and others IPv4
addresses. Also the default advertised address of a [::]-bound node (node/advertise.h):
IPv6 when the host has a usable IPv6 address. Skipped (77) when the host has no IPv6
loopback.

  python3 ipv6_test.py --bin build/release/tools/scuttled --io epoll --case loopback
"""

import socket
import sys

import harness as h


def need_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as e:
        raise h.SkipTest("no IPv6 loopback on this host (%s)" % e)


def replicate(c, nodes):
    c.wait_members(nodes=nodes, timeout=20)
    for n in nodes:
        n.put("v6/%s" % n.name, n.gossip_addr)
    for n in nodes:
        c.wait_value(n, "v6/%s" % n.name, n.gossip_addr, nodes=nodes)


def case_loopback(c, args):
    """Three nodes on [::1]: bound, advertised and seeded by IPv6 literals."""
    need_ipv6()
    nodes = c.start_many(3, host="::1")
    for n in nodes:
        m = n.members()[n.name]
        h.check(m["gossip_addr"] == "[::1]:%d" % n.port, "%s advertises %s"
                % (n.name, m["gossip_addr"]))
    replicate(c, nodes)
    # The gossip really went over IPv6: every peer's address as the others see it.
    for n in nodes:
        for name, m in n.members().items():
            h.check(m["gossip_addr"].startswith("[::1]:"), "%s sees %s at %s"
                    % (n.name, name, m["gossip_addr"]))


def case_dual_stack(c, args):
    """[::]-bound nodes (IPv4 and IPv6 on one socket); two advertise [::1], one
    127.0.0.1, and the IPv4 one seeds from an IPv6 address."""
    need_ipv6()
    a = c.add("a", seeds=[], host="::1", listen_host="::")
    b = c.add("b", seeds=[a], host="127.0.0.1", listen_host="::")
    d = c.add("d", seeds=[b], host="::1", listen_host="::")
    nodes = [a, b, d]
    replicate(c, nodes)
    seen = a.members()
    h.check(seen["b"]["gossip_addr"] == "127.0.0.1:%d" % b.port, "a sees b at %s"
            % seen["b"]["gossip_addr"])
    h.check(seen["d"]["gossip_addr"] == "[::1]:%d" % d.port, "a sees d at %s"
            % seen["d"]["gossip_addr"])


def host_has_usable_ipv6():
    """A global or unique-local IPv6 address on some interface (the rule's first choice)."""
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                addr, _, _, scope = line.split()[:4]
                if int(scope, 16) == 0 and addr != "0" * 31 + "1":
                    return True
    except OSError:
        pass
    return False


def case_default_advertise(c, args):
    """No --advertise_addr and --listen_addr=[::]:P: the node announces an IPv6 address
    when the host has a usable one (else IPv4); an explicit IPv6 advertise is kept."""
    need_ipv6()
    n = c.add("w", seeds=[], host="::1", listen_host="::", start=False)
    n.flags["advertise_addr"] = None
    argv_addr = n.argv

    def argv():
        return [x for x in argv_addr() if not x.startswith("--advertise_addr=")]
    n.argv = argv
    n.start()
    got = n.members()["w"]["gossip_addr"]
    h.log("[::]:%d advertises %s (usable IPv6 on the host: %s)"
          % (n.port, got, host_has_usable_ipv6()))
    if host_has_usable_ipv6():
        h.check(got.startswith("[") and not got.startswith("[::1]")
                and not got.lower().startswith("[fe80"),
                "a [::]-bound node advertises %s on a host with IPv6" % got)
    else:
        h.check(not got.startswith("[::]") and not got.startswith("0.0.0.0"),
                "advertises a wildcard %s" % got)


CASES = {"loopback": case_loopback, "dual_stack": case_dual_stack,
         "default_advertise": case_default_advertise}


def main():
    ap = h.base_args(__doc__)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    args = ap.parse_args()
    return h.run(CASES[args.case], args)


if __name__ == "__main__":
    sys.exit(main())
