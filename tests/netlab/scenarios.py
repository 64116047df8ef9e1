"""netlab scenarios: named, seeded runs of the workload + checker under faults.

  tests/netlab/run --bin build/release/tools/scuttled                 the CI subset
  tests/netlab/run --bin ... --scenario loss20 --seed 7               one scenario
  tests/netlab/run --bin ... --soak                                   every scenario, longer
  tests/netlab/run --bin ... --list

Exit 0: no violations; 1: a violation (seed + history excerpt printed) or an error;
77: skipped (not root / no network namespaces), with the reason.
"""

import argparse
import json
import os
import random
import socket
import sys
import time
import traceback

import checker
import harness
import netlab
from netlab import Lab, check, log, wait_until

# Per-node settings of every netlab run (harness.FAST_FLAGS plus a tighter phi cap, so
# the detection bound stays short: see checker.Bounds).
NETLAB_FLAGS = dict(harness.FAST_FLAGS, phi_max_interval_ms="1000", dead_node_grace="10m")


class Scenario:
    def __init__(self, name, fn, ci=False, n=5, delay=False, mtu=1500, flags=None,
                 loss=0.0, rtt_ms=0.0, doc=""):
        self.name, self.fn, self.ci, self.n = name, fn, ci, n
        self.delay, self.mtu, self.flags = delay, mtu, dict(flags or {})
        self.loss, self.rtt_ms, self.doc = loss, rtt_ms, doc


SCENARIOS = {}


def scenario(name, **kw):
    def deco(fn):
        SCENARIOS[name] = Scenario(name, fn, doc=(fn.__doc__ or "").strip(), **kw)
        return fn
    return deco


class Ctx:
    def __init__(self, lab, rng, soak):
        self.lab, self.rng, self.soak = lab, rng, soak

    def hold(self, seconds):
        """Lets the workload run under the current faults for `seconds` (the scenario's
        timeline, not a wait for a condition)."""
        time.sleep(seconds * (3 if self.soak else 1))


@scenario("clean", ci=True)
def s_clean(ctx):
    """No fault: the veth/bridge baseline."""
    ctx.hold(6)


@scenario("loss1", loss=0.01)
def s_loss1(ctx):
    """1% random loss on every link, both ways."""
    ctx.lab.set_loss(1)
    ctx.hold(10)


@scenario("loss5", ci=True, loss=0.05)
def s_loss5(ctx):
    """5% random loss on every link, both ways."""
    ctx.lab.set_loss(5)
    ctx.hold(8)


@scenario("loss20", loss=0.20)
def s_loss20(ctx):
    """20% random loss on every link, both ways."""
    ctx.lab.set_loss(20)
    ctx.hold(10)


@scenario("delay20", ci=True, delay=True, rtt_ms=60)
def s_delay20(ctx):
    """20 ms +- 10 ms one-way on every path (relay)."""
    ctx.lab.set_delay(lambda i, j: (20, 10))
    ctx.hold(8)


@scenario("wan80", delay=True, rtt_ms=170, n=6)
def s_wan80(ctx):
    """Two halves 80 ms apart (one way), 1 ms inside a half."""
    half = ctx.lab.n // 2
    ctx.lab.set_delay(lambda i, j: (80, 2) if (i < half) != (j < half) else (1, 0.5))
    ctx.hold(10)


@scenario("partition", ci=True)
def s_partition(ctx):
    """Halves cut apart (both ways), then healed: 30 s in --soak, 10 s in CI."""
    a = list(range(ctx.lab.n // 2))
    b = list(range(ctx.lab.n // 2, ctx.lab.n))
    ctx.lab.partition(a, b)
    ctx.hold(10)


@scenario("partition_oneway")
def s_partition_oneway(ctx):
    """Asymmetric: the first half's datagrams to the second half are dropped, not back."""
    a = list(range(ctx.lab.n // 2))
    b = list(range(ctx.lab.n // 2, ctx.lab.n))
    ctx.lab.partition(a, b, one_way=True)
    ctx.hold(10)


@scenario("flapping")
def s_flapping(ctx):
    """A random half cut off and healed every 1-3 s, eight times."""
    for _ in range(8):
        nodes = list(range(ctx.lab.n))
        ctx.rng.shuffle(nodes)
        k = ctx.rng.randint(1, ctx.lab.n // 2)
        ctx.lab.partition(nodes[:k], nodes[k:])
        ctx.hold(ctx.rng.uniform(1, 3))
        ctx.lab.heal()
        ctx.hold(ctx.rng.uniform(1, 3))


@scenario("sigstop", ci=True)
def s_sigstop(ctx):
    """One node paused with SIGSTOP for 5 s, then SIGCONT."""
    victim = ctx.lab.nodes[ctx.rng.randrange(ctx.lab.n)]
    ctx.hold(2)
    ctx.lab.pause(victim)
    time.sleep(5)
    ctx.lab.resume(victim)
    ctx.hold(2)


@scenario("kill_restart", ci=True)
def s_kill_restart(ctx):
    """kill -9 of a node with writes in flight; restart once every node declared it dead."""
    victim = ctx.lab.nodes[1 + ctx.rng.randrange(ctx.lab.n - 1)]
    ctx.hold(2)
    ctx.lab.kill9(victim)
    others = [n for n in ctx.lab.nodes if n is not victim]
    b = checker.Bounds(dict(NETLAB_FLAGS), ctx.lab.n)
    wait_until(lambda: all(o.states().get(victim.name) == "dead" for o in others),
               b.detect_s, "every node declares %s dead" % victim.name, interval=0.05)
    ctx.lab.restart(victim)
    ctx.hold(4)


@scenario("mtu1500_default", mtu=1500, loss=0.05)
def s_mtu_default(ctx):
    """1,500-byte MTU, 5% loss, default --max_packet_bytes (65,507): during a write burst
    a full datagram is ~45 IP fragments."""
    _burst(ctx)


@scenario("mtu1500_1400", mtu=1500, loss=0.05, flags={"max_packet_bytes": "1400"})
def s_mtu_1400(ctx):
    """As mtu1500_default with --max_packet_bytes=1400 (no fragmentation)."""
    _burst(ctx)


@scenario("mtu9000_default", mtu=9000, loss=0.05)
def s_mtu_jumbo(ctx):
    """9,000-byte MTU, 5% loss, default --max_packet_bytes."""
    _burst(ctx)


@scenario("bandwidth")
def s_bandwidth(ctx):
    """Every node limited to 2 Mbit/s both ways (tbf)."""
    for i in range(ctx.lab.n):
        ctx.lab.set_bandwidth(i, 2000)
    _burst(ctx)


BULK_LIMIT_S = 240
BULK_KEYS, BULK_VALUE = 400, 300  # 120 KB per node; fits --max_packet_bytes=1400's limit


@scenario("bandwidth_1400", flags={"max_packet_bytes": "1400"})
def s_bandwidth_1400(ctx):
    """As bandwidth, with --max_packet_bytes=1400."""
    for i in range(ctx.lab.n):
        ctx.lab.set_bandwidth(i, 2000)
    _burst(ctx)


def _burst(ctx):
    """BULK_KEYS values of BULK_VALUE bytes per node on top of the workload, then the time
    until every node has all of them."""
    if ctx.lab.mtu_loss and hasattr(ctx.lab, "set_loss"):
        ctx.lab.set_loss(5)
    for n in ctx.lab.nodes:
        for k in range(BULK_KEYS):
            n.put("bulk/%s/%03d" % (n.name, k), "x" * BULK_VALUE)
    s0 = tx_bytes(ctx.lab.nodes)
    t0 = time.monotonic()
    want = BULK_KEYS * ctx.lab.n

    def spread():
        return all(len(o.kv(prefix="bulk/")) == want for o in ctx.lab.nodes)
    try:
        wait_until(spread, BULK_LIMIT_S, "bulk keys everywhere", interval=0.1)
        ctx.figures["bulk_spread_s"] = round(time.monotonic() - t0, 2)
    except harness.WaitTimeout:
        # A figure, not a correctness check (the checker's checks still run): report it.
        have = min(len(o.kv(prefix="bulk/")) for o in ctx.lab.nodes)
        ctx.figures["bulk_spread_s"] = "> %d (%d of %d keys on the worst node)" % (
            BULK_LIMIT_S, have, want)
        log("burst did not spread within %d s: %s" % (BULK_LIMIT_S, ctx.figures["bulk_spread_s"]))
    s1 = tx_bytes(ctx.lab.nodes)
    ctx.figures["bulk_delivered"] = round(sum(s1[k][2] - s0[k][2] for k in s1)
                                          / max(1, sum(s1[k][1] - s0[k][1] for k in s1)), 3)
    ctx.figures["bulk_tx_datagrams"] = sum(s1[k][1] - s0[k][1] for k in s1)


# Scenarios whose own timeline also runs on loopback (no fault in it, or only loss,
# which loopback runs without); every other scenario's loopback figure is clean's.
LOOPBACK_TWINS = ("clean", "mtu1500_default", "mtu1500_1400", "mtu9000_default")


# ---- loopback baseline ----------------------------------------------------------------------

class LoopLab:
    """The same nodes on 127.0.0.1 (harness.Cluster): the loopback figure of the table."""

    def __init__(self, bin, n, io, flags):
        self.c = harness.Cluster(bin, io, **flags)
        self.n = n
        self.nodes = []
        self.intervals = []
        self.mtu_loss = False
        self.t0 = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.c.close()

    def start_all(self):
        for i in range(self.n):
            node = self.c.add("n%d" % i, seeds=self.c.nodes[:min(i, 3)] if i else [])
            node.index = i
            node.paused = False
            node.open_socket = lambda: socket.socket()
            node.running = node.alive
            self.nodes.append(node)

    def running(self):
        return [n for n in self.nodes if n.alive()]

    def link_counters(self):
        return {}

    def dump_logs(self):
        self.c.dump_logs()


# ---- runner -----------------------------------------------------------------------------------

def tx_bytes(nodes):
    out = {}
    for n in nodes:
        try:
            t = n.stats()["transport"]
            out[n.name] = (t["tx_bytes"], t["tx_packets"], t["rx_packets"])
        except Exception:  # noqa: BLE001
            pass
    return out


def run_scenario(sc, args, seed, loopback=False):
    rng = random.Random(seed)
    flags = dict(NETLAB_FLAGS)
    flags.update(sc.flags)
    log("=== scenario %s%s seed %d: %s" % (sc.name, " (loopback)" if loopback else "", seed, sc.doc))
    if loopback:
        lab_cm = LoopLab(args.bin, sc.n, args.io, flags)
    else:
        lab_cm = Lab(args.bin, sc.n, io=args.io, mtu=sc.mtu, delay=sc.delay, keep=args.keep,
                     **flags)
    figures = {"scenario": sc.name + (" (loopback)" if loopback else ""), "seed": seed}
    with lab_cm as lab:
        lab.mtu_loss = sc.name.startswith("mtu")
        lab.start_all()
        b = checker.Bounds(flags, sc.n, loss=sc.loss, rtt_ms=sc.rtt_ms)
        wait_until(lambda: all(all(o.states().get(x.name) == "alive" for x in lab.nodes)
                               for o in lab.nodes), b.converge_s, "initial membership")
        h = checker.History(seed, lab.t0)
        obs = checker.Observers(lab, h).start()
        wl = checker.Workload(lab, h, seed).start()
        ctx = Ctx(lab, rng, args.soak)
        ctx.figures = figures
        t_start = time.monotonic()
        tx0 = tx_bytes(lab.nodes)
        ok = False
        try:
            if not loopback or sc.name in LOOPBACK_TWINS:
                sc.fn(ctx)
            else:
                s_clean(ctx)
            if not loopback:
                lab.heal()
                for n in lab.nodes:
                    if n.paused:
                        lab.resume(n)
            heal_t = h.now()
            wl.close()
            stalls = lab.note_relay_stalls() if hasattr(lab, "note_relay_stalls") else []
            tx1 = tx_bytes(lab.nodes)
            dur = time.monotonic() - t_start
            conv = checker.check_final(lab, h, b, heal_t)
            obs.close()
            restarted = {n.name for n in lab.nodes if n.starts > 1}
            checker.check_monotonic(h, restarted)
            false, det = checker.check_deaths(lab, h, b)
            lat = checker.write_latencies(lab, h)
            common = [k for k in tx1 if k in tx0]
            figures.update({
                "ops": len(h.ops), "acked": sum(1 for o in h.ops if o["ok"]),
                "converge_s": None if conv is None else round(conv, 2),
                "converge_rounds": None if conv is None else round(conv / b.interval_s, 1),
                "write_all_p50_ms": round(1000 * checker.pct(lat, 0.5), 1),
                "write_all_p99_ms": round(1000 * checker.pct(lat, 0.99), 1),
                "writes_measured": len(lat),
                "false_deaths": len(false),
                "detect_s": [round(d, 2) for d in det],
                "bytes_per_node_s": round(sum(tx1[k][0] - tx0[k][0] for k in common)
                                          / max(1, len(common)) / dur),
                # datagrams received / datagrams sent, over all nodes (IP fragments lost
                # on the way lose the whole datagram)
                "delivered": round(sum(tx1[k][2] - tx0[k][2] for k in common)
                                   / max(1, sum(tx1[k][1] - tx0[k][1] for k in common)), 3),
                "bounds": repr(b),
                "violations": len(h.violations),
                "relay_stalls": stalls,
            })
            log("figures: " + json.dumps(figures, sort_keys=True))
            if h.violations:
                print(h.report())
                print("fault timeline: %r" % getattr(lab, "events", []))
                print("reproduce: tests/netlab/run --bin %s --scenario %s --seed %d"
                      % (args.bin, sc.name, seed), flush=True)
            ok = not h.violations
        except BaseException:
            traceback.print_exc(file=sys.stdout)
            print("scenario %s seed %d failed; fault timeline: %r"
                  % (sc.name, seed, getattr(lab, "events", [])), flush=True)
            raise
        finally:
            wl.close()
            obs.close()
            if not ok:
                lab.dump_logs()
    return ok, figures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--io", default="epoll", choices=["auto", "uring", "epoll"])
    ap.add_argument("--scenario", action="append", help="name (repeatable); default: the CI subset")
    ap.add_argument("--seed", type=int, default=None, help="default: 15 (CI) or random (--soak)")
    ap.add_argument("--soak", action="store_true", help="every scenario, 3x longer fault phases")
    ap.add_argument("--loopback", action="store_true", help="also the loopback baseline of each")
    ap.add_argument("--figures", help="append each scenario's figures (JSON lines) to this file")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    if args.list:
        for sc in SCENARIOS.values():
            print("%-18s %s %s" % (sc.name, "[ci]" if sc.ci else "    ", sc.doc))
        return 0
    why = netlab.netns_supported()
    if why:
        print("SKIPPED: netlab needs root and network namespaces: %s" % why)
        return harness.SKIP
    if not os.path.exists(args.bin):
        print("scuttled binary %s does not exist" % args.bin)
        return 1
    names = args.scenario or ([s.name for s in SCENARIOS.values()] if args.soak
                              else [s.name for s in SCENARIOS.values() if s.ci])
    seed = args.seed if args.seed is not None else (random.randrange(1 << 30) if args.soak else 15)
    failed = []
    for name in names:
        if name not in SCENARIOS:
            print("unknown scenario %r (see --list)" % name)
            return 1
        runs = [False, True] if args.loopback and name in LOOPBACK_TWINS else [False]
        for lo in runs:
            try:
                ok, fig = run_scenario(SCENARIOS[name], args, seed, loopback=lo)
            except Exception:  # noqa: BLE001
                traceback.print_exc(file=sys.stdout)
                ok, fig = False, {"scenario": name, "error": True}
            if args.figures:
                with open(args.figures, "a") as f:
                    f.write(json.dumps(fig, sort_keys=True) + "\n")
            if not ok:
                failed.append(name + (" (loopback)" if lo else ""))
    if failed:
        print("FAILED scenarios (seed %d): %s" % (seed, ", ".join(failed)), flush=True)
        return 1
    print("PASSED %d scenario(s), seed %d, 0 violations" % (len(names), seed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
