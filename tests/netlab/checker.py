"""Jepsen-style history checker for netlab (docs/netlab.md).

While faults run, one client per node writes, overwrites, deletes and TTL-writes keys
`t/<owner>/k<n>` in that node's own map through its admin API; every operation is logged
with its start, end and result (ok + version, or the error: an unacknowledged operation
is "indeterminate", either outcome is allowed). Every node's view is observed two ways:
a /v1/watch stream (key and member events, each stamped with the time it was read) and
periodic samples of GET /v1/kv?prefix=t/ and GET /v1/members.

Checks (each violation names the seed and prints the history excerpt of its key/node):
  1. acknowledged writes are eventually visible: after the faults heal, every running
     node's view of every running owner equals that owner's last acknowledged operation
     per key (a put's value; absent after a delete or an expired TTL), within the
     convergence bound;
  2. no deleted key reappears: once an observer has seen a key deleted at version d, it
     never again shows that key at a version <= d;
  3. per-owner versions only rise on every observer: watch events per (owner,
     generation, key), kv samples per (owner, key) for owners with one incarnation, and
     members' max_version per (owner, generation);
  4. membership converges after heal: every running node sees every running node alive;
  5. no false deaths: a node declared dead by an observer while both were running and
     connected (no partition, pause or kill involving the pair, and no stall of the delay
     relay, within the detection bound before the declaration) is a violation;
  6. every node killed (and not restarted within the bound) is declared dead by every
     running node within the detection bound.
Bounds come from the daemon's flags (Bounds below).
"""

import json
import math
import random
import socket
import threading
import time

from netlab import log


class Violation(AssertionError):
    pass


class Bounds:
    """Detection and convergence bounds derived from the flags the nodes run with.

    phi accrual (engine/membership.cc): phi = elapsed / mean * log10(e), dead at
    phi >= phi_threshold, mean <= phi_max_interval_ms; so silence of
    phi_threshold * ln(10) * phi_max_interval_ms always kills, plus the rounds it takes
    the news to reach everyone (dead is decided locally by every observer, so one round
    of slack for the last heartbeat). Convergence after heal: anti-entropy with fanout f
    reaches everyone in ~log_(f+1)(N) rounds when nothing is lost; we allow
    4 * (ceil(log2 N) + 2) rounds, scaled by 1 / (1 - loss) and plus the path delay, and
    twice the detection bound (partitioned halves may first have to see each other
    alive again before they gossip)."""

    def __init__(self, flags, n, loss=0.0, rtt_ms=0.0):
        self.interval_s = float(flags.get("gossip_interval_ms", 1000)) / 1000.0
        thr = float(flags.get("phi_threshold", 8))
        max_iv = float(flags.get("phi_max_interval_ms", 10000)) / 1000.0
        self.detect_s = thr * math.log(10) * max_iv + 2 * self.interval_s + rtt_ms / 1000.0
        self.rounds = 4 * (math.ceil(math.log2(max(n, 2))) + 2)
        self.converge_s = (self.rounds * (self.interval_s + rtt_ms / 1000.0) / max(0.05, 1 - loss)
                           + 2 * self.detect_s)

    def __repr__(self):
        return "Bounds(detect %.1fs, converge %.1fs)" % (self.detect_s, self.converge_s)


class History:
    def __init__(self, seed, t0):
        self.seed = seed
        self.t0 = t0
        self.lock = threading.Lock()
        self.ops = []        # dicts: node, inc, kind, key, value, ttl, start, end, ok, version, err
        self.watch = []      # (t, observer, inc, event dict)
        self.kv = []         # (start, end, observer, inc, {(owner, key): (version, value)})
        self.members = []    # (start, end, observer, inc, {name: member dict})
        self.violations = []

    def now(self):
        return time.monotonic() - self.t0

    def add(self, lst, item):
        with self.lock:
            lst.append(item)

    def violate(self, what, owner=None, key=None):
        self.violations.append((what, owner, key))

    def excerpt(self, owner=None, key=None, limit=30):
        lines = []
        for op in self.ops:
            if (owner is None or op["node"] == owner) and (key is None or op["key"] == key):
                lines.append("  op  %8.3f..%8.3f %s#%d %s %s %r ttl=%s -> %s"
                             % (op["start"], op["end"], op["node"], op["inc"], op["kind"],
                                op["key"], op.get("value"), op.get("ttl"),
                                ("ok v%s" % op["version"]) if op["ok"] else
                                ("ERR %s" % op["err"])))
        for t, obs, inc, e in self.watch:
            if (owner is None or e.get("node") == owner) and (key is None or e.get("key") == key):
                lines.append("  see %8.3f %s#%d %s" % (t, obs, inc, json.dumps(e, sort_keys=True)))
        lines.sort(key=lambda s: float(s.split()[1].split("..")[0]))
        if len(lines) > limit:
            lines = lines[-limit:]
        return "\n".join(lines)

    def report(self):
        if not self.violations:
            return ""
        out = ["%d VIOLATION(S), seed %d:" % (len(self.violations), self.seed)]
        for what, owner, key in self.violations[:10]:
            out.append("* " + what)
            out.append(self.excerpt(owner, key))
        return "\n".join(out)


# ---- clients -----------------------------------------------------------------------------

class Workload:
    """One client thread per node: put / overwrite / delete / ttl-put at ~rate ops/s."""

    def __init__(self, lab, history, seed, rate=8.0, keys=6, ttl_s=2):
        self.lab = lab
        self.h = history
        self.rate = rate
        self.keys = keys
        self.ttl_s = ttl_s
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n, random.Random(seed * 1000 + i)),
                                         daemon=True) for i, n in enumerate(lab.nodes)]
        self.counter = 0

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def _run(self, node, rng):
        live = set()
        while not self.stop.wait(rng.expovariate(self.rate)):
            if not node.running():
                live.clear()  # a restart starts from an empty map
                continue
            k = "t/%s/k%d" % (node.name, rng.randrange(self.keys))
            r = rng.random()
            if k in live and r < 0.25:
                kind = "delete"
            elif r < 0.35:
                kind = "ttl"
            else:
                kind = "put"
            with self.h.lock:
                self.counter += 1
                val = "%s-%d" % (node.name, self.counter)
            op = {"node": node.name, "inc": node.starts, "kind": kind, "key": k,
                  "value": None if kind == "delete" else val,
                  "ttl": ("%ds" % self.ttl_s) if kind == "ttl" else None,
                  "start": self.h.now(), "ok": False, "version": None, "err": None}
            try:
                if kind == "delete":
                    st, js = node.request("DELETE", "/v1/kv/" + k, timeout=2.0)
                else:
                    st, js = node.request("PUT", "/v1/kv/" + k, val, timeout=2.0, ttl=op["ttl"])
                if st == 200:
                    op["ok"], op["version"] = True, js.get("version")
                else:
                    op["err"] = "HTTP %d %s" % (st, js)
                    if kind == "delete" and st == 404:
                        op["err"] = "404 (absent: expired or deleted)"
            except Exception as e:  # noqa: BLE001 - a paused or killed node: indeterminate
                op["err"] = "%s: %s" % (type(e).__name__, e)
            op["end"] = self.h.now()
            if op["ok"]:
                if kind == "put":
                    live.add(k)
                else:
                    live.discard(k)
            self.h.add(self.h.ops, op)


# ---- observers ---------------------------------------------------------------------------

class Observers:
    """Per node: a /v1/watch reader thread and a kv/members sampler thread."""

    def __init__(self, lab, history, sample_s=0.4):
        self.lab = lab
        self.h = history
        self.sample_s = sample_s
        self.stop = threading.Event()
        self.threads = []
        for n in lab.nodes:
            self.threads.append(threading.Thread(target=self._watch, args=(n,), daemon=True))
            self.threads.append(threading.Thread(target=self._sample, args=(n,), daemon=True))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def _sample(self, node):
        while not self.stop.wait(self.sample_s):
            if not node.running():
                continue
            inc = node.starts
            try:
                t1 = self.h.now()
                st, js = node.request("GET", "/v1/kv", timeout=2.0, prefix="t/")
                t2 = self.h.now()
                if st == 200:
                    view = {(e["node"], e["key"]): (e["version"], e.get("value"))
                            for e in js["entries"]}
                    self.h.add(self.h.kv, (t1, t2, node.name, inc, view))
                t1 = self.h.now()
                st, js = node.request("GET", "/v1/members", timeout=2.0)
                t2 = self.h.now()
                if st == 200:
                    self.h.add(self.h.members, (t1, t2, node.name, inc,
                                                {m["name"]: m for m in js["members"]}))
            except Exception:  # noqa: BLE001 - paused/killed meanwhile
                pass

    def _watch(self, node):
        cursor_inc, cursor = None, 0  # resume after the last event read (no repeats)
        while not self.stop.is_set():
            if not node.running():
                self.stop.wait(0.05)
                continue
            inc = node.starts
            if inc != cursor_inc:
                cursor_inc, cursor = inc, 0
            try:
                s = node.open_socket()
                s.settimeout(0.5)
                host, port = node.admin_addr.rsplit(":", 1)
                s.connect((host, int(port)))
                s.sendall(b"GET /v1/watch?since=%d HTTP/1.0\r\nHost: x\r\n\r\n" % cursor)
                buf = b""
                while not self.stop.is_set() and node.starts == inc:
                    try:
                        chunk = s.recv(65536)
                    except socket.timeout:
                        if not node.alive():
                            break
                        continue
                    if not chunk:
                        break
                    t = self.h.now()
                    buf += chunk
                    while b"\n\n" in buf:
                        block, buf = buf.split(b"\n\n", 1)
                        for line in block.split(b"\n"):
                            if line.startswith(b"data: "):
                                try:
                                    e = json.loads(line[6:])
                                except ValueError:
                                    continue
                                if "seq" in e and node.starts == inc:
                                    cursor = max(cursor, e["seq"])
                                if "event" in e:
                                    self.h.add(self.h.watch, (t, node.name, inc, e))
                s.close()
            except Exception:  # noqa: BLE001 - restarting node
                self.stop.wait(0.1)
            # A reconnect to the same incarnation resumes from 0: events repeat, which the
            # checks tolerate (same versions), and nothing is missed.


# ---- checks ------------------------------------------------------------------------------

def _expected(history, owner, inc, now):
    """{key: set of allowed values (None = absent)} for owner's incarnation inc."""
    per_key = {}
    for op in history.ops:
        if op["node"] != owner or op["inc"] != inc:
            continue
        per_key.setdefault(op["key"], []).append(op)
    out = {}
    for key, ops in per_key.items():
        allowed = {None}  # before any acknowledged op: absent
        for op in ops:
            if op["kind"] == "delete":
                res = {None}
            elif op["kind"] == "ttl":
                # expired by now (with a round of slack) or not yet
                res = {None} if now > op["end"] + float(op["ttl"][:-1]) + 1.0 else {op["value"], None}
            else:
                res = {op["value"]}
            if op["ok"] or (op["kind"] == "delete" and op["err"] and op["err"].startswith("404")):
                allowed = res
            else:
                allowed = allowed | res  # indeterminate: either
        out[key] = allowed
    return out


def check_final(lab, history, bounds, heal_t):
    """Checks 1 and 4; returns the seconds from heal_t to full convergence."""
    running = [n for n in lab.nodes if n.running()]
    names = {n.name for n in running}
    deadline = time.monotonic() + bounds.converge_s
    last = None
    while True:
        now = history.now()
        bad = []
        for obs in running:
            try:
                st, js = obs.request("GET", "/v1/kv", timeout=2.0, prefix="t/")
                states = obs.states()
            except Exception as e:  # noqa: BLE001
                bad.append("%s: %s" % (obs.name, e))
                continue
            view = {(e["node"], e["key"]): e.get("value") for e in js["entries"]}
            for name in names:
                if states.get(name) != "alive":
                    bad.append("%s sees %s %s" % (obs.name, name, states.get(name)))
            for owner in running:
                exp = _expected(history, owner.name, owner.starts, now)
                keys = set(exp) | {k for (o, k) in view if o == owner.name}
                for k in keys:
                    got = view.get((owner.name, k))
                    if got not in exp.get(k, {None}):
                        bad.append((obs.name, owner.name, k, got, sorted(map(str, exp.get(k, {None})))))
        if not bad:
            return history.now() - heal_t
        last = bad
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for b in last[:5]:
        if isinstance(b, tuple):
            obs, owner, k, got, exp = b
            history.violate("not converged %.1fs after heal: %s shows %s's %s = %r, expected one of %s"
                            % (bounds.converge_s, obs, owner, k, got, exp), owner, k)
        else:
            history.violate("not converged %.1fs after heal: %s" % (bounds.converge_s, b))
    return None


def check_monotonic(history, restarted):
    """Checks 2 and 3 over the recorded watch events and samples."""
    # Watch: per (observer, inc, owner, generation, key): versions never fall; after a
    # delete at d, no set at <= d.
    last = {}
    for t, obs, inc, e in sorted(history.watch, key=lambda x: x[0]):
        if e.get("event") not in ("set", "deleted", "expired") or not str(e.get("key", "")).startswith("t/"):
            continue
        k = (obs, inc, e["node"], e["generation"], e["key"])
        v = e["version"]
        prev = last.get(k)
        if prev is not None and v < prev[0]:
            history.violate("%s (watch) saw %s's %s go from v%d (%s) back to v%d (%s) at %.3f"
                            % (obs, e["node"], e["key"], prev[0], prev[1], v, e["event"], t),
                            e["node"], e["key"])
        last[k] = (max(v, prev[0]) if prev else v, e["event"])
    # kv samples against earlier samples and against watch deletes read before the sample.
    deleted_at = {}  # (obs, inc, owner, key) -> [(t_seen, version)]
    for t, obs, inc, e in history.watch:
        if e.get("event") in ("deleted", "expired") and e["node"] not in restarted:
            deleted_at.setdefault((obs, inc, e["node"], e["key"]), []).append((t, e["version"]))
    seen = {}
    for t1, t2, obs, inc, view in sorted(history.kv, key=lambda x: x[0]):
        for (owner, key), (v, val) in view.items():
            if owner in restarted:
                continue
            k = (obs, inc, owner, key)
            prev = seen.get(k)
            if prev is not None and v < prev:
                history.violate("%s (kv sample at %.3f) shows %s's %s at v%d after v%d"
                                % (obs, t1, owner, key, v, prev), owner, key)
            seen[k] = max(v, prev or 0)
            for (td, d) in deleted_at.get(k, ()):
                if td < t1 and v <= d:
                    history.violate("%s: %s's %s reappeared (v%d = %r at %.3f) after its delete "
                                    "at v%d was seen at %.3f" % (obs, owner, key, v, val, t1, d, td),
                                    owner, key)
    # members: (generation, max_version) per observer incarnation and owner never falls.
    mv = {}
    for t1, t2, obs, inc, ms in sorted(history.members, key=lambda x: x[0]):
        for name, m in ms.items():
            k = (obs, inc, name)
            cur = (m.get("generation", 0), m.get("max_version", 0))
            prev = mv.get(k)
            if prev is not None and cur < prev:
                history.violate("%s (members at %.3f) shows %s at (gen %d, v%d) after (gen %d, v%d)"
                                % (obs, t1, name, cur[0], cur[1], prev[0], prev[1]), name)
            mv[k] = max(cur, prev) if prev else cur


def member_transitions(history):
    """[(t, observer, inc, subject, state)] from watch member events."""
    out = []
    for t, obs, inc, e in history.watch:
        if e.get("event") in ("dead", "suspect", "alive", "left", "joined", "restarted") and "key" not in e:
            out.append((t, obs, inc, e["node"], e["event"]))
    out.sort()
    return out


def check_deaths(lab, history, bounds):
    """Checks 5 and 6. Returns (false deaths, [detection seconds per kill])."""
    window = bounds.detect_s

    def excused(obs, subj, t):
        oi, si = int(obs[1:]), int(subj[1:])
        for iv in lab.intervals:
            end = iv["end"] if iv["end"] is not None else float("inf")
            if end < t - window or iv["start"] > t:
                continue
            if iv["kind"] in ("pause", "down") and (oi in iv["nodes"] or si in iv["nodes"]):
                return True
            if iv["kind"] == "block" and ((oi, si) in iv["pairs"] or (si, oi) in iv["pairs"]):
                return True
            if iv["kind"] == "stall":  # the relay (every path) froze: not connected
                return True
        return False

    false = []
    tr = member_transitions(history)
    for t, obs, inc, subj, state in tr:
        if state == "dead" and not excused(obs, subj, t):
            false.append((t, obs, subj))
            history.violate("false death: %s declared %s dead at %.3f while both ran connected"
                            % (obs, subj, t), subj)
    detections = []
    for iv in lab.intervals:
        if iv["kind"] != "down":
            continue
        (victim,) = iv["nodes"]
        vname = "n%d" % victim
        t_kill = iv["start"]
        end = iv["end"] if iv["end"] is not None else history.now()
        worst, missing = 0.0, []
        for n in lab.nodes:
            if n.index == victim or not n.alive():
                continue
            seen = [t for t, obs, inc, subj, st in tr
                    if obs == n.name and subj == vname and st == "dead" and t >= t_kill]
            if seen and seen[0] <= end and seen[0] - t_kill <= bounds.detect_s:
                worst = max(worst, seen[0] - t_kill)
            else:
                missing.append((n.name, seen[:1]))
        if missing and end - t_kill >= bounds.detect_s:
            # (a node restarted before the bound need not have been declared dead)
            history.violate("%s did not declare killed %s dead within %.1fs (kill at %.3f)"
                            % (missing, vname, bounds.detect_s, t_kill), vname)
        if missing:
            continue
        detections.append(worst)
    return false, detections


def write_latencies(lab, history):
    """Seconds from a put's ack to the time its version was seen by every other node that
    ran throughout (watch events); puts overwritten before spreading are skipped."""
    first_seen = {}
    for t, obs, inc, e in history.watch:
        if e.get("event") == "set":
            k = (obs, e["node"], e["key"], e["version"])
            if k not in first_seen:
                first_seen[k] = t
    out = []
    names = [n.name for n in lab.nodes]
    for op in history.ops:
        if not op["ok"] or op["kind"] == "delete":
            continue
        ts = [first_seen.get((o, op["node"], op["key"], op["version"])) for o in names
              if o != op["node"]]
        if all(x is not None for x in ts):
            out.append(max(0.0, max(ts) - op["end"]))
    return out


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]
