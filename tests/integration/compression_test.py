#!/usr/bin/env python3
"""--compression=zstd on real scuttled processes (issue #17 item 5): a mixed 3-node cluster
(two nodes with zstd, one without) replicates; the zstd pair exchanges compressed datagrams,
the plain node never receives one (negotiation), nobody drops a datagram as bad_flags or
bad_compression; GET /v1/config shows the flags; bad flag values exit 2.

  python3 compression_test.py --bin build/release/tools/scuttled --io epoll
"""

import json
import re
import subprocess
import sys

import harness as h


def metric(node, name):
    st, text = node.request("GET", "/metrics")
    h.check(st == 200, "/metrics answered %s" % st)
    text = text.decode() if isinstance(text, bytes) else str(text)
    m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)
    h.check(m is not None, "%s is not in /metrics" % name)
    return float(m.group(1))


def drops(node, reason):
    return node.stats()["engine"]["decode_drops"].get(reason, 0)


def case_compression(c, args):
    for extra, flag in ((["--compression=lz4"], "compression"),
                        (["--compression=zstd", "--compression_level=0"], "compression_level")):
        p = subprocess.run([args.bin, "--admin_addr=", "--listen_addr=127.0.0.1:0"] + extra,
                           capture_output=True, text=True, timeout=10)
        h.log("%s -> %d %r" % (" ".join(extra), p.returncode, p.stderr.strip()))
        h.check(p.returncode == 2 and flag in p.stderr, "%s: exit %d %r" % (extra, p.returncode,
                                                                          p.stderr))
    z0 = c.add("z00", compression="zstd")
    z1 = c.add("z01", compression="zstd", compression_level="3")
    plain = c.add("p02")
    nodes = [z0, z1, plain]
    c.wait_members(timeout=20)
    cfg = z1._ok("GET", "/v1/config")["config"]
    h.check(str(cfg["compression"]["value"]) == "zstd", "config: %r" % cfg["compression"])
    h.check(str(cfg["compression_level"]["value"]) == "3", "config: %r" % cfg["compression_level"])
    h.check(str(plain._ok("GET", "/v1/config")["config"]["compression"]["value"]) == "none",
            "plain node's config")
    doc = json.dumps([{"service": "checkout", "zone": "eu-west-1b", "port": 8080 + i,
                       "healthy": True} for i in range(20)])
    for i, n in enumerate(nodes):
        n.put("svc/%d" % i, doc)
    for i, n in enumerate(nodes):
        c.wait_value(n, "svc/%d" % i, doc, nodes=nodes)
    h.wait_until(lambda: metric(z0, "scuttle_compressed_received_packets_total") >= 1 and
                 metric(z1, "scuttle_compressed_received_packets_total") >= 1, 15,
                 "compressed datagrams between the zstd nodes")
    h.check(metric(plain, "scuttle_compressed_received_packets_total") == 0,
            "the plain node was sent compressed datagrams")
    for n in nodes:
        h.check(drops(n, "bad_flags") == 0, "%s dropped datagrams as bad_flags" % n.name)
        h.check(drops(n, "bad_compression") == 0, "%s: bad_compression drops" % n.name)
    stats = z0.stats()["engine"]["compression"]
    h.log("z00 compression stats: %r" % stats)
    h.check(stats["wire_bytes_out"] < stats["plain_bytes_out"], "compression saved bytes")


def main():
    ap = h.base_args(__doc__)
    args = ap.parse_args()
    return h.run(case_compression, args)


if __name__ == "__main__":
    sys.exit(main())
