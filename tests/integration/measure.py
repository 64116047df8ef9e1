#!/usr/bin/env python3
"""Measures replication and failure-detection times of an N-node loopback cluster.

  python3 tests/integration/measure.py --bin build/itest/tools/scuttled --io uring --nodes 50

Replication time: from the PUT's reply on one node until every node returns the new value
(each node is polled by its own thread; the time recorded is the first poll that saw it).
Detection time: from kill -9 until each live node lists the victim as "dead".
Leave time: from SIGTERM until each live node lists the node as "left".
Settings are harness.FAST_FLAGS (gossip 100ms, fanout 3, phi 8, initial interval 300ms).
Registered in ctest as integration.measure5.* (default) and integration.measure50.*
(label `slow`, skipped unless SCUTTLE_SLOW=1).
"""

import os
import random
import statistics
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, log, wait_until  # noqa: E402


def poll_all(nodes, cond, timeout, t0, interval=0.005):
    """Runs cond(node) on every node in its own thread until true; returns
    {name: seconds since t0 of the first true poll}; raises if any misses the deadline."""
    seen = {}
    errors = []
    lock = threading.Lock()

    def worker(n):
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            try:
                if cond(n):
                    with lock:
                        seen[n.name] = time.monotonic() - t0
                    return
            except Exception:  # noqa: BLE001 - transient while polling
                pass
            time.sleep(interval)
        with lock:
            errors.append(n.name)

    ts = [threading.Thread(target=worker, args=(n,)) for n in nodes]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise h.WaitTimeout("%d nodes missed the %.0fs deadline: %s"
                            % (len(errors), timeout, sorted(errors)[:10]))
    return seen


def summary(xs):
    xs = sorted(xs)
    p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    return "min %.3fs  median %.3fs  p90 %.3fs  max %.3fs" % (xs[0], statistics.median(xs),
                                                               p(0.9), xs[-1])


def measure(c, args):
    n = args.nodes
    t0 = time.monotonic()
    nodes = c.start_many(n, seeds_count=3)
    log("started %d nodes in %.1fs" % (n, time.monotonic() - t0))
    c.wait_members(timeout=30 + n)
    log("full membership (%d x %d alive) after %.1fs" % (n, n, time.monotonic() - t0))
    # Let the failure detectors sample a few seconds of heartbeats before measuring.
    wait_until(lambda: min(m["heartbeat"] for m in nodes[0].members().values()) >= 30,
               30, "30 heartbeats from every node")
    rss = [nd.rss_kb() for nd in nodes]
    log("RSS per node: median %d KiB, max %d KiB" % (statistics.median(rss), max(rss)))

    mon = h.FlapMonitor(c, interval=0.1).__enter__()  # false suspects/deads, reported
    t_mon = time.monotonic()
    rng = random.Random(args.seed)
    results = {"replication_last": [], "replication_all": []}
    for r in range(args.rounds):
        writer = rng.choice(nodes)
        key, val = "measure/%d" % r, "value-%d" % r
        writer.put(key, val)
        t1 = time.monotonic()
        seen = poll_all(nodes, lambda nd: h.entry_value(nd.get(key, node=writer.name)) == val.encode(),
                        30, t1)
        results["replication_last"].append(max(seen.values()))
        results["replication_all"].extend(seen.values())
        log("round %d: write on %s visible on all %d nodes after %.3fs (median node %.3fs)"
            % (r, writer.name, n, max(seen.values()), statistics.median(seen.values())))

    # Observe the healthy cluster for at least `--observe` seconds and 10 polls per node.
    wait_until(lambda: time.monotonic() - t_mon >= args.observe and mon.polls >= 10,
               args.observe + 60, "healthy-cluster observation")
    mon.__exit__(None, None, None)
    false_dead = len(mon.false_states(("dead",)))
    false_suspect = len(mon.false_states(("suspect",)))
    log("healthy-cluster member polls: %d; false dead %d, false suspect %d%s"
        % (mon.polls, false_dead, false_suspect,
           (" e.g. %r" % mon.events[:5]) if mon.events else ""))

    # Detection: kill -9 one node (never the first, which seeds everyone).
    victim = rng.choice(nodes[1:])
    live = [nd for nd in nodes if nd is not victim]
    victim.kill9()
    t1 = time.monotonic()
    seen = poll_all(live, lambda nd: nd.states().get(victim.name) == "dead", 30, t1,
                    interval=0.02)
    det = sorted(seen.values())
    log("kill -9 %s: dead on all %d live nodes after %.3fs (first %.3fs, median %.3fs)"
        % (victim.name, len(live), det[-1], det[0], statistics.median(det)))

    # Graceful leave of another node.
    leaver = rng.choice(live[1:])
    live2 = [nd for nd in live if nd is not leaver]
    leaver.proc.send_signal(h.signal.SIGTERM)
    t1 = time.monotonic()
    seen_l = poll_all(live2, lambda nd: nd.states().get(leaver.name) == "left", 30, t1,
                      interval=0.01)
    lv = sorted(seen_l.values())
    rc = leaver.proc.wait(10)
    log("SIGTERM %s: left on all %d nodes after %.3fs (median %.3fs); exit %d"
        % (leaver.name, len(live2), lv[-1], statistics.median(lv), rc))

    print()
    print("=== %d-node loopback cluster, io=%s, gossip 100ms, fanout 3 ===" % (n, args.io))
    print("replication (write -> all %d nodes), %d rounds: %s"
          % (n, args.rounds, summary(results["replication_last"])))
    print("replication (write -> each node):           %s" % summary(results["replication_all"]))
    print("detection (kill -9 -> dead on each node):   %s" % summary(det))
    print("leave (SIGTERM -> left on each node):       %s" % summary(lv))
    print("false positives while healthy (member polls every ~0.1s): dead %d, suspect %d"
          % (false_dead, false_suspect))
    print(flush=True)
    check(rc == 0, "leaver exit code %d" % rc)


def main():
    ap = h.base_args(__doc__)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--observe", type=float, default=3.0,
                    help="seconds to watch the healthy cluster for false suspects/deads")
    ap.add_argument("--opt-in", dest="opt_in", default=None,
                    help="skip (exit 77) unless this environment variable is set")
    args = ap.parse_args()
    if args.opt_in and not os.environ.get(args.opt_in):
        print("skipped: set %s=1 to run the %d-node measurement" % (args.opt_in, args.nodes))
        return h.SKIP
    return h.run(measure, args)


if __name__ == "__main__":
    sys.exit(main())
