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
import re
import selectors
import socket
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


def kill_until_dead(live, rng, timeout):
    """kill -9 a random node of `live` other than the first (it seeds everyone); returns
    (victim, survivors, sorted seconds until each survivor lists it dead)."""
    victim = rng.choice(live[1:])
    survivors = [nd for nd in live if nd is not victim]
    victim.kill9()
    seen = poll_all(survivors, lambda nd: nd.states().get(victim.name) == "dead", timeout,
                    time.monotonic(), interval=0.02)
    return victim, survivors, sorted(seen.values())


def write_until_everywhere(nodes, writer, key, val, timeout, interval=0.005):
    """PUTs key=val on `writer`; returns (seconds the PUT took, {name: seconds from its
    reply until that node serves the value})."""
    t_put = time.monotonic()
    writer.put(key, val)
    t1 = time.monotonic()
    seen = poll_all(nodes, lambda nd: h.entry_value(nd.get(key, node=writer.name)) == val.encode(),
                    timeout, t1, interval=interval)
    return t1 - t_put, seen


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
        _, seen = write_until_everywhere(nodes, writer, key, val, 30)
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
    victim, live, det = kill_until_dead(nodes, rng, 30)
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


# ---- the #16 table: one script run, default flags at 300 ms rounds ---------------------------

def sent_bytes(nodes, by_type=None):
    """Sum of scuttle_transport_sent_bytes_total over the nodes; with a dict, also adds the
    engine's scuttle_sent_bytes_total by message type into it."""
    total = 0.0
    for nd in nodes:
        st, text = nd.request("GET", "/metrics")
        text = text.decode() if isinstance(text, bytes) else str(text)
        for line in text.splitlines():
            if line.startswith("scuttle_transport_sent_bytes_total "):
                total += float(line.split()[1])
            elif by_type is not None and line.startswith('scuttle_sent_bytes_total{type="'):
                t = line.split('"')[1]
                by_type[t] = by_type.get(t, 0.0) + float(line.split()[-1])
            elif by_type is not None and line.startswith('scuttle_sent_packets_total{type="'):
                t = "#" + line.split('"')[1]
                by_type[t] = by_type.get(t, 0.0) + float(line.split()[-1])
    return total


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def new_cluster(args, interval_ms, **flags):
    """A cluster with the daemon's defaults (not the harness's fast flags) but the given
    gossip interval; flags=None removes a flag."""
    c = h.Cluster(args.bin, args.io, keep=args.keep)
    for k in list(h.FAST_FLAGS):
        if k not in ("log_level",):
            c.flags.pop(k, None)
    c.flags["gossip_interval_ms"] = str(interval_ms)
    c.flags["dead_node_grace"] = "10m"
    for k, v in flags.items():
        if v is None:
            c.flags.pop(k, None)
        else:
            c.flags[k] = str(v)
    return c


def row(rows, name, value, baseline=""):
    rows.append((name, value, baseline))
    log("ROW %s: %s %s" % (name, value, baseline))


def kill_row(rows, c, nodes, interval_s, label, rng, kills=3):
    """kill -9 `kills` nodes one after another (each once every survivor lists the last one
    dead); the figure is the median over the kills of each kill's median survivor."""
    live = list(nodes)
    meds, lasts = [], []
    for _ in range(kills):
        victim, live, det = kill_until_dead(live, rng, 60)
        meds.append(statistics.median(det))
        lasts.append(det[-1])
        log("kill -9 %s: median survivor %.2f s, last %.2f s" % (victim.name, meds[-1],
                                                                 lasts[-1]))
    med, last = statistics.median(meds), statistics.median(lasts)
    row(rows, "%s kill -9 -> dead on every survivor, %d kills one after another (median / "
        "last survivor, median over kills)" % (label, kills),
        "%.2f s / %.2f s" % (med, last),
        "= %.1f / %.1f intervals (target median <= 8); per kill medians %s intervals"
        % (med / interval_s, last / interval_s,
           "/".join("%.1f" % (m / interval_s) for m in meds)))


class Watches:
    """One GET /v1/watch?prefix=... stream per node, read by a single selector thread, so
    a write's arrival on each node is seen when the node emits the event (no polling):
    first(key) -> {node name: monotonic time the event was read}. The tool's own delay is
    what the writer's own event takes to arrive after the PUT's reply (self_delay)."""

    def __init__(self, nodes, prefix):
        self.sel = selectors.DefaultSelector()
        self.seen = {}  # key -> {name: t}
        self.lock = threading.Lock()
        self.stop = False
        self.socks = []
        for nd in nodes:
            host, port = nd.admin_addr.rsplit(":", 1)
            s = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
            auth = ("Authorization: Bearer %s\r\n" % nd.token) if nd.token else ""
            s.sendall(("GET /v1/watch?prefix=%s HTTP/1.1\r\nHost: x\r\n%s\r\n"
                       % (prefix, auth)).encode())
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, [nd.name, b""])
            self.socks.append(s)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        pat = re.compile(rb'"key":"([^"]*)"')
        while not self.stop:
            for k, _ in self.sel.select(0.05):
                now = time.monotonic()
                try:
                    data = k.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    self.sel.unregister(k.fileobj)
                    continue
                name, tail = k.data
                buf = tail + data
                with self.lock:
                    for m in pat.finditer(buf):
                        self.seen.setdefault(m.group(1).decode(), {}).setdefault(name, now)
                k.data[1] = buf[-256:]

    def wait(self, key, names, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = dict(self.seen.get(key, {}))
            if len(got) >= len(names):
                return got
            time.sleep(0.002)
        raise h.WaitTimeout("%s reached %d of %d nodes in %.0f s"
                            % (key, len(got), len(names), timeout))

    def close(self):
        self.stop = True
        self.thread.join()
        for s in self.socks:
            s.close()


def rumor_counters(nodes):
    """Cluster totals of the rumor metrics (name -> value)."""
    tot = {}
    for nd in nodes:
        st, text = nd.request("GET", "/metrics")
        text = text.decode() if isinstance(text, bytes) else str(text)
        for line in text.splitlines():
            if line.startswith("scuttle_rumor") or line.startswith("scuttle_packets_sent_total"):
                name, _, v = line.rpartition(" ")
                try:
                    tot[name] = tot.get(name, 0.0) + float(v)
                except ValueError:
                    pass
    return tot


def write_rows(rows, c, nodes, label, writes, rng, detect="watch", gap_s=0.0):
    """One write at a time -> every node; returns (per-write 'last node' latencies,
    bytes sent by the cluster per write, elapsed seconds, extra stats)."""
    lat = []
    early = []  # nodes reached within 50 ms of the write (the push, not a round)
    self_delay = []
    w = Watches(nodes, "t/") if detect == "watch" else None
    tag = "%x" % rng.getrandbits(32)
    try:
        ty0 = {}
        b0 = sent_bytes(nodes, ty0)
        t0 = time.monotonic()
        for r in range(writes):
            writer = rng.choice(nodes)
            key, val = "t/%s/%d" % (tag, r), "v%d" % r
            if w is not None:
                t_put = time.monotonic()
                writer.put(key, val)
                put_s = time.monotonic() - t_put
                # From before the PUT was sent: the writer's own event bounds the tool's delay.
                got = w.wait(key, nodes, 30)
                arr = [t - t_put for t in got.values()]
                self_delay.append(got[writer.name] - t_put)
            else:
                put_s, seen = write_until_everywhere(nodes, writer, key, val, 30, interval=0.01)
                arr = list(seen.values())
            lat.append(max(arr))
            if gap_s > 0:  # every write alone: the previous one's traffic has died down
                tg = time.monotonic()
                wait_until(lambda: time.monotonic() - tg >= gap_s, gap_s + 5, "write gap",
                           interval=0.05)
            early.append(sum(1 for a in arr if a <= 0.05))
            log("%s write %d: last node %.0f ms, %d/%d within 50 ms (PUT took %.1f ms)"
                % (label, r, 1e3 * max(arr), early[-1], len(arr), 1e3 * put_s))
        dt = time.monotonic() - t0
        ty1 = {}
        b1 = sent_bytes(nodes, ty1)
    finally:
        if w is not None:
            w.close()
    by_type = {t: ty1[t] - ty0.get(t, 0.0) for t in ty1}
    log("%s: bytes sent by message type during the writes: %s" % (label, ", ".join(
        "%s %.0f" % (t, v) for t, v in sorted(by_type.items()) if v)))
    extra = {"early": early, "self_delay": self_delay, "by_type": by_type}
    return lat, (b1 - b0), dt, extra


def table(c0, args):
    rng = random.Random(args.seed)
    rows = []
    load0 = os.getloadavg()
    interval_ms = 300
    iv = interval_ms / 1000.0
    c0.close()
    configs = parse_configs(args.configs)
    base_name = configs[0][0]
    for n in (args.sizes if ("writes" in args.parts or "kill" in args.parts) else []):
        per = {}
        for cname, flags in configs:
            if cname != base_name and "writes" not in args.parts:
                continue
            c = new_cluster(args, interval_ms, **flags)
            try:
                t0 = time.monotonic()
                nodes = c.start_many(n, seeds_count=3)
                t_started = time.monotonic() - t0
                c.wait_members(timeout=60 + 2 * n)
                conv = time.monotonic() - t0
                wait_until(lambda: min(m["heartbeat"] for m in nodes[0].members().values())
                           >= 20, 60, "20 heartbeats from every node")
                if cname == base_name:
                    row(rows, "N=%d membership converged after start (last node started "
                        "after %.1f s)" % (n, t_started), "%.2f s" % conv,
                        "= %.1f intervals after the first start" % (conv / iv))
                if "writes" in args.parts:
                    write_config(rows, c, nodes, n, cname, args, rng, per)
                if cname == base_name:
                    if n == max(args.sizes) and args.idle_s > 0:
                        mon = h.FlapMonitor(c, interval=1.0).__enter__()
                        ti = time.monotonic()
                        wait_until(lambda: time.monotonic() - ti >= args.idle_s,
                                   args.idle_s + 60, "idle observation", interval=1.0)
                        mon.__exit__(None, None, None)
                        row(rows, "N=%d idle %.0f s: false deaths / false suspects" %
                            (n, args.idle_s),
                            "%d / %d" % (len(mon.false_states(("dead",))),
                                         len(mon.false_states(("suspect",)))),
                            "(%d member polls of every node)" % mon.polls)
                if "kill" in args.parts and (cname == base_name or "writes" in args.parts):
                    # Every configuration's own kill rows (same victims: a fresh rng per
                    # configuration from the run's seed), so a detector change is compared
                    # against its baseline in the same run.
                    kill_row(rows, c, nodes, iv, "N=%d %s" % (n, cname),
                             random.Random(args.seed * 1000 + n))
            finally:
                c.close()
        if base_name not in per:
            continue
        base = per[base_name]
        for cname, p in per.items():
            if cname == base_name:
                continue
            row(rows, "N=%d write -> all, %s vs %s (same run)" % (n, cname, base_name),
                "median x%.2f, p99 x%.2f" % (
                    statistics.median(p["lat"]) / statistics.median(base["lat"]),
                    pct(p["lat"], 0.99) / pct(base["lat"], 0.99)),
                "rumor bytes per write %.0f vs %.0f; all bytes above idle per write %.0f vs %.0f"
                % (p["rumor_bytes"], base["rumor_bytes"], p["above_idle"], base["above_idle"]))

    # Young node: 3 nodes, 100 ms rounds, one killed ~1 s after it joined; the prior from
    # the gossip interval (now the default) against the old 5 s default, same run.
    for label, prior in [] if "young" not in args.parts else (("prior = gossip interval (default)", None),
                         ("old default --phi_initial_interval_ms=5000", 5000)):
        c = new_cluster(args, 100, phi_initial_interval_ms=prior)
        try:
            nodes = c.start_many(2, seeds_count=1)
            c.wait_members(timeout=30)
            young = c.add("young", seeds=nodes[:1])
            t_join = time.monotonic()
            c.wait_members(timeout=30)
            wait_until(lambda: time.monotonic() - t_join >= 1.0, 5, "1 s after joining")
            young.kill9()
            t1 = time.monotonic()
            seen = poll_all(nodes, lambda nd: nd.states().get("young") == "dead", 120, t1,
                            interval=0.02)
            last = max(seen.values())
            row(rows, "young node killed 1 s after joining, 3 nodes, 100 ms, %s" % label,
                "%.2f s" % last, "= %.0f intervals (target <= 15)" % (last / 0.1))
        finally:
            c.close()

    if "sigstop" in args.parts:
        sigstop_row(rows, args, interval_ms)
        sigstop_window_row(rows, args, interval_ms)

    print()
    print("=== #16 multi-process table: io=%s, 300 ms rounds unless stated, fanout 3, "
          "load average %.2f at start, %.2f at end (2-core VM) ===" % (
              args.io, load0[0], os.getloadavg()[0]))
    for name, value, base in rows:
        print("| %s | %s | %s |" % (name, value, base))
    print(flush=True)


def five_with_sleeper(c):
    """Starts 5 nodes, waits for membership and 20 heartbeats from every node; returns
    (the node to pause, the 4 observers)."""
    nodes = c.start_many(5, seeds_count=1)
    c.wait_members(timeout=30)
    wait_until(lambda: min(m["heartbeat"] for m in nodes[0].members().values()) >= 20,
               30, "20 heartbeats")
    return nodes[4], nodes[:4]


def sigstop_row(rows, args, interval_ms):
    """SIGSTOP: one of 5 nodes stopped 5 s at 300 ms rounds."""
    c = new_cluster(args, interval_ms)
    try:
        sleeper, others = five_with_sleeper(c)
        worst = {o.name: "alive" for o in others}
        rank = {"alive": 0, "suspect": 1, "dead": 2, "left": 3}
        first = {}

        def observe():
            for o in others:
                s = o.states().get(sleeper.name, "alive")
                if s not in first and s != "alive":
                    first[s] = time.monotonic() - t0
                if rank.get(s, 0) > rank[worst[o.name]]:
                    worst[o.name] = s
        sleeper.proc.send_signal(h.signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            wait_until(lambda: observe() or time.monotonic() - t0 >= 5.0, 15, "5 s pause",
                       interval=0.05)
        finally:
            sleeper.proc.send_signal(h.signal.SIGCONT)
        t1 = time.monotonic()
        declared = set()

        def healed():
            st = sleeper.states()
            declared.update(o.name for o in others if st.get(o.name) == "dead")
            return all(o.states().get(sleeper.name) == "alive" for o in others)
        wait_until(healed, 30, "the woken node alive everywhere", interval=0.05)
        row(rows, "SIGSTOP 5 s (5 nodes, 300 ms): others' worst state / first suspect / "
            "first dead", "%s / %s / %s" % (sorted(set(worst.values())),
                                             "%.2f s" % first["suspect"] if "suspect" in first
                                             else "-", "%.2f s" % first["dead"]
                                             if "dead" in first else "-"),
            "alive everywhere %.2f s after SIGCONT; the woken node declared %d peers dead"
            % (time.monotonic() - t1, len(declared)))
    finally:
        c.close()


def sigstop_window_row(rows, args, interval_ms):
    """A pause that ends inside the confirmation window: one of 5 nodes stopped until the
    first observer lists it suspect, then continued (default flags, 300 ms rounds)."""
    c = new_cluster(args, interval_ms)
    try:
        sleeper, others = five_with_sleeper(c)
        seen = set()

        def states():
            got = [o.states().get(sleeper.name, "alive") for o in others]
            seen.update(got)
            return got
        sleeper.proc.send_signal(h.signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            wait_until(lambda: "suspect" in states() or "dead" in seen, 15,
                       "first suspicion", interval=0.02)
        finally:
            sleeper.proc.send_signal(h.signal.SIGCONT)
        paused = time.monotonic() - t0
        t1 = time.monotonic()
        wait_until(lambda: states() == ["alive"] * len(others), 30, "alive again",
                   interval=0.02)
        row(rows, "SIGSTOP until the first suspicion (5 nodes, 300 ms): pause / states the "
            "others showed", "%.2f s / %s" % (paused, sorted(seen)),
            "alive everywhere %.2f s after SIGCONT (target: suspect, never dead)"
            % (time.monotonic() - t1))
    finally:
        c.close()


def parse_configs(spec):
    """'defaults;rumor=false;rumor=true,push_fresh=true' -> [(label, {flag: value})]; the
    first is the baseline the others are compared with."""
    out = []
    for part in spec.split(";"):
        part = part.strip()
        if not part or part == "defaults":
            out.append(("defaults", {}))
            continue
        flags = dict(kv.split("=", 1) for kv in part.split(","))
        out.append(("--" + " --".join("%s=%s" % kv for kv in flags.items()), flags))
    return out


def write_config(rows, c, nodes, n, cname, args, rng, per):
    # Idle bytes over 5 s before the writes: the baseline for "all bytes above idle".
    b0 = sent_bytes(nodes)
    ti = time.monotonic()
    wait_until(lambda: time.monotonic() - ti >= 5, 10, "5 s idle")
    idle_bps = (sent_bytes(nodes) - b0) / (time.monotonic() - ti)
    lat, bytes_w, dt, ex = write_rows(rows, c, nodes, cname, args.writes, rng, args.detect,
                                      args.write_gap_s)
    above = (bytes_w - idle_bps * dt) / args.writes
    bt = ex["by_type"]
    rumor_b = (bt.get("rumor", 0.0) + bt.get("rumor_ack", 0.0)) / args.writes
    per[cname] = {"lat": lat, "above_idle": above, "rumor_bytes": rumor_b}
    early = ex["early"]
    row(rows, "N=%d one write -> all nodes, %s (%d writes, %s)" % (n, cname, args.writes,
                                                                 args.detect),
        "median %.0f ms, p99 %.0f ms" % (1e3 * statistics.median(lat), 1e3 * pct(lat, 0.99)),
        "reached within 50 ms: median %d of %d nodes, all %d in %d of %d writes; rumor+rumor_ack "
        "bytes per write %.0f (cluster); all bytes above idle per write %.0f; idle %.0f B/s "
        "per node%s" % (statistics.median(early), n, n, sum(1 for e in early if e == n),
                        args.writes, rumor_b, above, idle_bps / n,
                        ("; tool delay (the writer's own event after the PUT was sent) median "
                         "%.1f ms" % (1e3 * statistics.median(ex["self_delay"])))
                        if ex["self_delay"] else ""))


def main():
    ap = h.base_args(__doc__)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--observe", type=float, default=3.0,
                    help="seconds to watch the healthy cluster for false suspects/deads")
    ap.add_argument("--opt-in", dest="opt_in", default=None,
                    help="skip (exit 77) unless this environment variable is set")
    ap.add_argument("--table", action="store_true",
                    help="the #16 table: kill -9, young node, SIGSTOP, convergence, write -> "
                    "all with and without --rumor/--push_fresh, at 300 ms rounds")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                    default=[10, 50], help="--table cluster sizes")
    ap.add_argument("--writes", type=int, default=20, help="--table writes per config")
    ap.add_argument("--parts", type=lambda s: set(s.split(",")),
                    default={"writes", "kill", "young", "sigstop"},
                    help="--table parts to run: writes,kill,young,sigstop (convergence "
                    "comes with writes or kill)")
    ap.add_argument("--configs", default="defaults;rumor=false;rumor=true,rumor_interval_ms=0",
                    help="--table write configurations, ';'-separated flag lists (the first "
                    "is the baseline)")
    ap.add_argument("--detect", choices=("watch", "poll"), default="watch",
                    help="--table: see a write arrive by a /v1/watch stream per node "
                    "(default) or by polling GET /v1/kv every 10 ms")
    ap.add_argument("--write-gap-s", dest="write_gap_s", type=float, default=1.0,
                    help="--table: seconds between one write reaching every node and the next "
                    "write, so each write's bytes are its own")
    ap.add_argument("--idle-s", dest="idle_s", type=float, default=0,
                    help="--table: watch the largest default cluster this long for false "
                    "deaths (600 for the 10-minute figure)")
    args = ap.parse_args()
    if args.table:
        return h.run(table, args)
    if args.opt_in and not os.environ.get(args.opt_in):
        print("skipped: set %s=1 to run the %d-node measurement" % (args.opt_in, args.nodes))
        return h.SKIP
    return h.run(measure, args)


if __name__ == "__main__":
    sys.exit(main())
