#!/usr/bin/env python3
"""scuttled --profile=local|lan|wan: each sets the defaults it names (seen in GET
/v1/config), a flag given explicitly wins, an unknown profile exits 2 naming --profile,
and a wan-profile cluster (1,400-byte datagrams) still replicates.

  python3 profile_test.py --bin build/release/tools/scuttled --io epoll
"""

import subprocess
import sys

import harness as h

EXPECT = {
    # phi_initial_interval_ms 0: the young-node prior is the gossip interval in every profile.
    "local": {"gossip_interval_ms": 100, "phi_initial_interval_ms": 0,
              "phi_max_interval_ms": 2000, "max_packet_bytes": 65507},
    "lan": {"gossip_interval_ms": 1000, "phi_threshold": 8, "phi_max_interval_ms": 10000,
            "phi_initial_interval_ms": 0, "max_packet_bytes": 65507},
    "wan": {"max_packet_bytes": 1400, "phi_threshold": 12, "phi_initial_interval_ms": 0,
            "phi_max_interval_ms": 30000, "gossip_interval_ms": 1000},
}


def config(node):
    st, js = node.request("GET", "/v1/config")
    h.check(st == 200, "/v1/config answered %s" % st)
    return {k: v["value"] for k, v in js["config"].items()}


def same(a, b):
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def test(c, args):
    p = subprocess.run([args.bin, "--profile=fast", "--admin_addr=", "--listen_addr=127.0.0.1:0"],
                       capture_output=True, text=True, timeout=10)
    h.check(p.returncode == 2 and "--profile" in p.stderr,
            "--profile=fast: exit %d, stderr %r" % (p.returncode, p.stderr))
    # The harness's fast flags are explicit: leave them out so the profile's show.
    for name in ("gossip_interval_ms", "phi_initial_interval_ms", "phi_max_interval_ms",
                 "phi_threshold"):
        c.flags.pop(name, None)
    for profile, want in EXPECT.items():
        n = c.add("p-" + profile, seeds=[], profile=profile)
        got = config(n)
        for k, v in want.items():
            h.check(same(got[k], v), "--profile=%s: %s = %r, want %r" % (profile, k, got[k], v))
        n.sigterm()
    # Explicit flags win over the profile.
    n = c.add("p-explicit", seeds=[], profile="wan", max_packet_bytes=9000, phi_threshold=9)
    got = config(n)
    h.check(same(got["max_packet_bytes"], 9000) and same(got["phi_threshold"], 9),
            "explicit flags lost to the profile: %r" % {k: got[k] for k in
                                                        ("max_packet_bytes", "phi_threshold")})
    n.sigterm()
    # A wan-profile pair (fast rounds, so the test stays short) replicates a write.
    a = c.add("w0", seeds=[], profile="wan", gossip_interval_ms=100)
    b = c.add("w1", seeds=[a], profile="wan", gossip_interval_ms=100)
    c.wait_members([a, b], timeout=30)
    a.put("k", "v" * 300)
    c.wait_value(a, "k", "v" * 300, nodes=[a, b], timeout=30)


if __name__ == "__main__":
    args = h.base_args(__doc__).parse_args()
    sys.exit(h.run(test, args))
