#!/usr/bin/env python3
"""scuttled's seed-001 strategy flags (--anti_entropy, --direct_mail, --death_certificates):
invalid combinations exit 2 with one line naming the flag, and each mode visibly changes
what a live 3-node cluster does.

  python3 modes_test.py --bin build/release/tools/scuttled --io epoll
"""

import re
import subprocess
import sys

import harness as h

# (extra argv, flag the one-line error must name)
BAD = [
    (["--anti_entropy=sideways"], "--anti_entropy"),
    (["--direct_mail_peers=3"], "--direct_mail_peers"),
    (["--direct_mail", "--direct_mail_peers=0x"], "--direct_mail_peers"),
    (["--direct_mail", "--direct_mail_peers=65"], "--direct_mail_peers"),
    (["--dormant_grace=2h"], "--dormant_grace"),
    (["--retention_sites=5"], "--retention_sites"),
    (["--death_certificates", "--tombstone_grace=1h", "--dormant_grace=30m"], "--dormant_grace"),
    (["--death_certificates", "--retention_sites=2000"], "--retention_sites"),
]


def metric(node, name):
    st, text = node.request("GET", "/metrics")
    h.check(st == 200, "/metrics answered %s" % st)
    text = text.decode() if isinstance(text, bytes) else str(text)
    m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)
    h.check(m is not None, "%s is not in /metrics" % name)
    return float(m.group(1))


def check_bad_flags(args):
    for extra, flag in BAD:
        argv = [args.bin, "--admin_addr=", "--listen_addr=127.0.0.1:0"] + extra
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        lines = p.stderr.strip().splitlines()
        h.log("%s -> %d %r" % (" ".join(extra), p.returncode, p.stderr.strip()))
        h.check(p.returncode == 2, "%s: exit %d, want 2" % (extra, p.returncode))
        h.check(len(lines) == 1 and flag.lstrip("-") in lines[0],
                "%s: want one line naming %s, got %r" % (extra, flag, p.stderr))


def tombstones(node, owner):
    return node.members()[owner.name]["tombstones"]


def case_modes(c, args):
    check_bad_flags(args)

    # Pull anti-entropy + direct mail + dormant death certificates (every node of 3 is a
    # retention site with the default 3 sites).
    nodes = c.start_many(3, anti_entropy="pull", direct_mail="true",
                         death_certificates="true", tombstone_grace="1s",
                         dormant_grace="1h")
    c.wait_members(timeout=20)
    cfg = nodes[0]._ok("GET", "/v1/config")["config"]
    h.check(str(cfg["anti_entropy"]["value"]) == "pull", "config: %r" % cfg["anti_entropy"])
    nodes[0].put("mode/a", "1")
    c.wait_value(nodes[0], "mode/a", "1", nodes=nodes)
    h.wait_until(lambda: metric(nodes[0], "scuttle_direct_mails_total") >= 1, 10,
                 "direct mail counted on the writer")
    for n in nodes:
        acks = n.stats()["engine"]["packets_out"].get("ack", 0)
        h.check(acks == 0, "%s sent %d Acks under --anti_entropy=pull" % (n.name, acks))

    nodes[0].delete("mode/a")
    c.wait_value(nodes[0], "mode/a", None, nodes=nodes)
    h.wait_until(lambda: all(tombstones(n, nodes[0]) == 1 for n in nodes), 10,
                 "the death certificate on every node")
    # Well past tau1 (1 s = 10 rounds): retention sites still hold the certificate.
    start = nodes[0].stats()["engine"]["rounds"]
    h.wait_until(lambda: nodes[0].stats()["engine"]["rounds"] >= start + 30, 20, "30 rounds")
    for n in nodes:
        h.check(tombstones(n, nodes[0]) == 1,
                "%s dropped the dormant certificate before tau2" % n.name)

    # Control: push anti-entropy, no certificates, same tau1: the tombstone goes.
    for n in nodes:
        n.sigterm()
    others = c.start_many(3, prefix="p", anti_entropy="push", tombstone_grace="1s")
    c.wait_members(nodes=others, timeout=20)
    others[0].put("mode/b", "2")
    c.wait_value(others[0], "mode/b", "2", nodes=others)
    others[0].delete("mode/b")
    c.wait_value(others[0], "mode/b", None, nodes=others)
    h.wait_until(lambda: all(tombstones(n, others[0]) == 0 for n in others), 20,
                 "tombstone collected without --death_certificates")
    h.check(metric(others[0], "scuttle_direct_mails_total") == 0,
            "direct mail without --direct_mail")


def main():
    ap = h.base_args(__doc__)
    args = ap.parse_args()
    return h.run(case_modes, args)


if __name__ == "__main__":
    sys.exit(main())
