#!/usr/bin/env python3
"""scuttled --data_dir: a restarted node comes back with its own keys (TTL ones too) under
a new generation, rejoins through its saved members when the seeds are down, survives
kill -9 at random points of its rewrites with a complete earlier state, and reports a
corrupt state file instead of loading it.

  python3 persist_test.py --bin build/release/tools/scuttled --io epoll --case restart
"""

import glob
import os
import random
import sys

import harness as h


def data_dir(c, name):
    d = os.path.join(c.dir, "data-" + name)
    os.makedirs(d, exist_ok=True)
    return d


def own_keys(node, prefix):
    return {e["key"]: h.entry_value(e) for e in node.kv(prefix=prefix, node=node.name)}


def case_restart(c, args):
    nodes = c.start_many(3)
    x = c.add("x", seeds=nodes, data_dir=data_dir(c, "x"), data_sync_interval="50ms")
    c.wait_members(timeout=20)
    x.put("p/plain", "1")
    x.put("p/ttl", "2", ttl="1h")
    x.put("p/gone", "3")
    x.delete("p/gone")
    gen0 = x.members()["x"]["generation"]
    c.wait_value(x, "p/ttl", "2", nodes=nodes)
    x.sigterm()  # graceful: the final state is written at shutdown
    x.start(new_admin_port=True)
    got = own_keys(x, "p/")
    h.check(got == {"p/plain": b"1", "p/ttl": b"2"}, "restored %r" % got)
    gen1 = x.members()["x"]["generation"]
    h.check(gen1 > gen0, "generation %d -> %d" % (gen0, gen1))
    c.wait_members(timeout=20)
    for n in nodes:  # peers drop the old generation and take the restored keys
        h.wait_until(lambda n=n: n.members()["x"]["generation"] == gen1, 20,
                     "%s sees x's new generation" % n.name)
    c.wait_value(x, "p/plain", "1", nodes=nodes)
    c.wait_value(x, "p/gone", None, nodes=nodes)


def case_rejoin(c, args):
    """The only seed is down at restart: x rejoins through the members it saved."""
    s = c.add("s", seeds=[])
    a = c.add("a", seeds=[s])
    x = c.add("x", seeds=[s], data_dir=data_dir(c, "x"), data_sync_interval="50ms")
    c.wait_members(timeout=20)
    x.put("r/k", "v")
    c.wait_value(x, "r/k", "v", nodes=[a])
    # kill -9 loses what the last --data_sync_interval did not save: wait for the save.
    state = os.path.join(x.flags["data_dir"], "state")

    def saved():
        with open(state, "rb") as f:
            data = f.read()
        return b"r/k" in data and b"127.0.0.1:%d" % a.port in data
    h.wait_until(saved, 10, "x's key and members saved")
    x.kill9()
    s.kill9()
    # A new gossip port too, so a cannot find x at its old address: x must call a.
    x.port = x.admin_port = c.ports.take()
    x.start()
    c.wait_members(nodes=[x, a], expect=[x, a], timeout=20,
                   what="x rejoined a with the seed down")
    h.wait_until(lambda: a.members()["x"]["generation"] == x.members()["x"]["generation"],
                 20, "a sees x's new generation")
    c.wait_value(x, "r/k", "v", nodes=[a])


def case_kill9(c, args):
    """Writes k0, k1, ... one after the other with the state rewritten every 5 ms; kill -9
    after a random number of writes; the restarted node must hold exactly k0..kM for some
    M, with the right values, and never report a corrupt file."""
    rng = random.Random(args.seed)
    h.log("seed %d" % args.seed)
    d = data_dir(c, "x")
    x = c.add("x", seeds=[], data_dir=d, data_sync_interval="5ms")
    total = 0
    restored_any = False
    for round_ in range(args.rounds):
        n = rng.randint(1, 60)
        for i in range(total, total + n):
            x.put("k/%06d" % i, "value-%d-%s" % (i, "x" * (i % 50)))
        total += n
        x.kill9()
        x.start(new_admin_port=True)
        got = own_keys(x, "k/")
        want = {"k/%06d" % i: ("value-%d-%s" % (i, "x" * (i % 50))).encode()
                for i in range(len(got))}
        h.check(got == want, "round %d: restored %d keys that are not k0..k%d with their "
                "values" % (round_, len(got), len(got) - 1))
        with open(x.log_path, "rb") as f:
            log = f.read().decode(errors="replace")
        h.check("corrupt" not in log and "not loaded" not in log,
                "round %d: the state file was reported corrupt" % round_)
        h.log("round %d: %d written, %d restored" % (round_, total, len(got)))
        restored_any = restored_any or len(got) > 0
        # The next round writes on top of what came back.
        total = len(got)
    h.check(restored_any, "no round restored anything: the state is never written")


def case_corrupt(c, args):
    d = data_dir(c, "x")
    x = c.add("x", seeds=[], data_dir=d, data_sync_interval="50ms")
    x.put("c/k", "v")
    x.sigterm()
    path = os.path.join(d, "state")
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        f.seek(0)
        f.write(data)
    x.start(new_admin_port=True)
    h.check(own_keys(x, "c/") == {}, "a corrupt state was loaded")
    with open(x.log_path, "rb") as f:
        log = f.read().decode(errors="replace")
    h.check("checksum mismatch" in log and "not loaded" in log, "corruption not reported")
    h.check(glob.glob(path + ".corrupt.*"), "the corrupt file was not kept aside")
    # A fresh state is written again from here on.
    x.put("c/new", "w")
    x.sigterm()
    x.start(new_admin_port=True)
    h.check(own_keys(x, "c/") == {"c/new": b"w"}, "state after the corrupt one not saved")


CASES = {"restart": case_restart, "rejoin": case_rejoin, "kill9": case_kill9,
         "corrupt": case_corrupt}


def main():
    ap = h.base_args(__doc__)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    args = ap.parse_args()
    return h.run(CASES[args.case], args)


if __name__ == "__main__":
    sys.exit(main())
