#!/usr/bin/env python3
"""Multi-process cluster tests for scuttled: one --case per ctest test (tests/integration.cmake).

  python3 tests/integration/cluster_test.py --bin build/itest/tools/scuttled --io epoll --case leave

Cases: cli, replication, failure_detection, leave, restart, late_join, bad_cluster.
Timing bounds are stated next to each wait; the fast settings are harness.FAST_FLAGS
(gossip every 100ms, phi threshold 8, initial interval 300ms, dead_node_grace 5s).
"""

import base64
import os
import random
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, log, wait_until  # noqa: E402

# Bounds (seconds). With gossip every 100ms a heartbeat reaches every peer within a few
# rounds, so the observed mean inter-arrival is ~100-200ms and phi=8 fires after
# 8 * mean / log10(e) ≈ 1.8-3.7s of silence. We allow 8s.
DETECT_BOUND = 8.0
# A leaving node gossips `leaving` before it exits: peers must show "left" long before
# phi could fire (≈1.8s at the fastest), so the bound is 1.5s.
LEAVE_BOUND = 1.5
REPLICATE_BOUND = 5.0


def expect_exit(argv, code, what, timeout=10):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == code, "%s: expected exit %d, got %d; output:\n%s"
          % (what, code, p.returncode, out[-3000:]))
    check(out.strip(), "%s: exit %d without any message" % (what, code))
    log("%s -> exit %d: %s" % (what, code, out.strip().splitlines()[-1][:160]))
    return out


# ---- cli ----------------------------------------------------------------------------------

def case_cli(c, args):
    """Flags, exit codes, healthz, HTTP errors, binary values, TTL."""
    base = [c.bin, "--node_name=x", "--io=%s" % c.io, "--cluster_id=%s" % c.cluster_id]
    p1 = c.ports.take()
    addr = "127.0.0.1:%d" % p1
    good = base + ["--listen_addr=" + addr, "--admin_addr=" + addr]
    expect_exit(good + ["--no_such_flag=1"], 2, "unknown flag")
    expect_exit(good + ["--io=carrier_pigeon"], 2, "--io=carrier_pigeon")
    expect_exit(base + ["--listen_addr=not-an-address", "--admin_addr=" + addr], 2,
                "malformed --listen_addr")
    expect_exit(good + ["--dead_node_grace=banana"], 2, "malformed --dead_node_grace")
    expect_exit(good + ["--gossip_interval_ms=0"], 2, "--gossip_interval_ms=0")

    # Busy gossip port (UDP) and busy admin port (TCP) -> exit 1.
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", p1))
    try:
        expect_exit(good, 1, "busy gossip port")
    finally:
        u.close()
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", p1))
    t.listen(1)
    try:
        expect_exit(good, 1, "busy admin port")
    finally:
        t.close()
    c.ports.release(p1)

    n = c.add("solo")
    hz = n.healthz()
    want_transport = {"uring": "io_uring", "epoll": "epoll"}.get(c.io)
    check(hz.get("node") == "solo", "healthz node: %r" % hz)
    if want_transport:
        check(hz.get("transport") == want_transport, "healthz transport: %r" % hz)
    st = n.stats()
    if want_transport:
        check(st["transport"]["name"] in (want_transport, c.io),
              "stats transport name: %r" % st["transport"].get("name"))
    me = n.members()
    check(list(me) == ["solo"] and me["solo"]["self"] is True and me["solo"]["state"] == "alive",
          "members of a lone node: %r" % me)

    # Errors are JSON {error, detail} with the right status.
    for method, path, body, want in [
        ("GET", "/v1/kv/missing", None, (404,)),
        ("DELETE", "/v1/kv/missing", None, (404,)),
        ("GET", "/v1/nope", None, (404,)),
        ("PUT", "/v1/kv/big", b"x" * (200 * 1024), (413,)),
        ("PUT", "/v1/kv/" + "k" * 5000, b"v", (400, 413)),
        ("PUT", "/v1/kv/t?ttl=banana", b"v", (400,)),
        ("POST", "/v1/members", b"", (405,)),
    ]:
        code, js = n.request(method, path, body)
        check(code in want, "%s %s: want %s, got %d %r" % (method, path[:40], want, code, js))
        check(isinstance(js, dict) and "error" in js and "detail" in js,
              "%s %s: error body not {error, detail}: %r" % (method, path[:40], js))

    # Values round-trip: UTF-8 as "value", anything else as "value_base64".
    r = n.put("text", "héllo wörld")
    check(r["key"] == "text" and r["version"] >= 1, "put reply %r" % r)
    e = n.get("text")
    check(e["value"] == "héllo wörld" and e["version"] == r["version"] and e["node"] == "solo",
          "get text: %r" % e)
    blob = bytes(range(256)) * 4
    n.put("bin", blob)
    e = n.get("bin")
    check("value_base64" in e and base64.b64decode(e["value_base64"]) == blob, "binary: %r" % e)
    check(n.put("text", "v2")["version"] > r["version"], "versions rise")
    d = n.delete("text")
    check(d is not None and d["version"] > r["version"], "delete reply %r" % d)
    check(n.get("text") is None, "deleted key still readable")

    # TTL: the key expires on its own.
    n.put("short", "lived", ttl="1s")
    check(h.entry_value(n.get("short")) == b"lived", "ttl key readable before expiry")
    wait_until(lambda: n.get("short") is None, 6, "ttl=1s key to expire")

    rc = n.sigterm()
    check(rc == 0, "SIGTERM exit code %d, want 0" % rc)
    # SIGINT too
    n.start(new_admin_port=True)
    n.proc.send_signal(signal.SIGINT)
    rc = n.proc.wait(10)
    n.log_file.close()
    check(rc == 0, "SIGINT exit code %d, want 0" % rc)

    # A restart on the same addresses right after a stop must work (a service manager's
    # restart): the admin port has server-side TIME_WAIT connections from the requests
    # above, which must not make the port look busy.
    tw = _time_wait_count(n.admin_port)
    try:
        n.start()
    except h.ProcessExited as e:
        raise AssertionError("restart on the same admin port %d failed (exit %s) with %d "
                             "TIME_WAIT connections on it" % (n.admin_port, e.code, tw))
    n.sigterm()


def _time_wait_count(port):
    """TIME_WAIT TCP sockets whose local port is `port` (from /proc/net/tcp)."""
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if int(parts[1].split(":")[1], 16) == port and parts[3] == "06":
                count += 1
    return count


# ---- replication ----------------------------------------------------------------------------

def case_replication(c, args):
    nodes = c.start_many(5)
    t0 = time.monotonic()
    c.wait_members(timeout=15)
    log("5 nodes see each other alive after %.2fs" % (time.monotonic() - t0))
    # From here on no node may show a healthy peer suspect-then-dead: on loopback with a
    # 100ms gossip interval phi cannot legitimately reach 8.
    with h.FlapMonitor(c) as mon:
        _replication(c, nodes)
        # keep watching the first seconds of the cluster's life, when the detectors have
        # few samples (until the cluster is 5s old)
        wait_until(lambda: time.monotonic() - t0 >= 5 and mon.polls >= 50, 10,
                   "5s of member polls")
    mon.assert_no_false_dead("healthy 5-node cluster")


def _replication(c, nodes):

    # One key per node, written concurrently-ish; every node must see all five.
    puts = {}
    t0 = time.monotonic()
    for n in nodes:
        puts[n.name] = n.put("k/" + n.name, "v-" + n.name)["version"]
    for n in nodes:
        c.wait_value(n, "k/" + n.name, "v-" + n.name, timeout=REPLICATE_BOUND)
    log("5 writes on 5 nodes replicated everywhere in %.3fs" % (time.monotonic() - t0))
    for obs in nodes:
        for n in nodes:
            e = obs.get("k/" + n.name, node=n.name)
            check(e["version"] == puts[n.name] and e["node"] == n.name,
                  "%s sees %s's key with %r, put returned version %d"
                  % (obs.name, n.name, e, puts[n.name]))

    # Overwrite, then delete, on different owners.
    owner = nodes[2]
    v2 = owner.put("k/" + owner.name, "second")["version"]
    check(v2 > puts[owner.name], "overwrite version %d <= %d" % (v2, puts[owner.name]))
    c.wait_value(owner, "k/" + owner.name, "second", timeout=REPLICATE_BOUND)

    victim = nodes[3]
    t0 = time.monotonic()
    d = victim.delete("k/" + victim.name)
    check(d is not None and d["version"] > puts[victim.name], "delete reply %r" % d)
    c.wait_value(victim, "k/" + victim.name, None, timeout=REPLICATE_BOUND)
    log("delete replicated everywhere in %.3fs" % (time.monotonic() - t0))
    for obs in nodes:
        listed = {e["key"] for e in obs.kv(node=victim.name)}
        check("k/" + victim.name not in listed, "%s still lists deleted key: %r" % (obs.name, listed))
        m = obs.members()[victim.name]
        check(m["max_version"] >= d["version"], "%s: %s max_version %d < delete version %d"
              % (obs.name, victim.name, m["max_version"], d["version"]))
    check(victim.delete("k/" + victim.name) is None, "second delete should be 404")

    # Many keys from one node, a binary value, a prefix listing.
    for i in range(50):
        nodes[0].put("bulk/%03d" % i, "x" * i)
    nodes[0].put("bulk/bin", b"\x00\xff\xfe")
    def all_bulk():
        for n in nodes:
            got = {e["key"]: h.entry_value(e) for e in n.kv(prefix="bulk/", node=nodes[0].name)}
            if len(got) != 51:
                return False
            check(got["bulk/bin"] == b"\x00\xff\xfe", "binary value on %s: %r" % (n.name, got["bulk/bin"]))
            check(all(got["bulk/%03d" % i] == b"x" * i for i in range(50)), "bulk values on %s" % n.name)
        return True
    wait_until(all_bulk, REPLICATE_BOUND * 2, "51 bulk keys everywhere")
    # Prefix listing without node= covers every owner.
    allk = nodes[4].kv(prefix="k/")
    check({(e["node"], e["key"]) for e in allk} ==
          {(n.name, "k/" + n.name) for n in nodes if n is not victim},
          "kv?prefix=k/ on n04: %r" % allk)
    for n in nodes:
        check(n.alive(), "%s died" % n.name)


# ---- failure detection ------------------------------------------------------------------------

def case_failure_detection(c, args):
    nodes = c.start_many(5)
    c.wait_members(timeout=15)
    # let the detectors sample some intervals first
    wait_until(lambda: all(m["heartbeat"] >= 10 for n in nodes for m in n.members().values()),
               10, "heartbeats >= 10 everywhere")
    victim, live = nodes[4], nodes[:4]
    with h.FlapMonitor(c, healthy=lambda: {n.name for n in live}) as mon:
        _detect(c, victim, live)
    mon.assert_no_false_dead("survivors of a kill -9")


def _detect(c, victim, live):
    victim.put("victim/key", "still here")
    c.wait_value(victim, "victim/key", "still here")
    t0 = time.monotonic()
    victim.kill9()
    seen_dead = {}
    history = {n.name: [] for n in live}

    def all_dead():
        now = time.monotonic() - t0
        for n in live:
            if n.name in seen_dead:
                continue
            st = n.states().get(victim.name)
            if not history[n.name] or history[n.name][-1][1] != st:
                history[n.name].append((round(now, 2), st))
            if st == "dead":
                seen_dead[n.name] = now
            check(st is not None, "%s forgot %s before showing it dead: %r"
                  % (n.name, victim.name, history[n.name]))
        return len(seen_dead) == len(live)
    wait_until(all_dead, DETECT_BOUND, "all live peers show %s dead" % victim.name, interval=0.02)
    log("kill -9 detected: first %.2fs, last %.2fs (bound %.1fs); transitions %r"
        % (min(seen_dead.values()), max(seen_dead.values()), DETECT_BOUND, history))
    # Data of a dead node stays readable until it is forgotten.
    for n in live:
        e = n.get("victim/key", node=victim.name)
        check(e is None or h.entry_value(e) == b"still here", "%s: %r" % (n.name, e))

    # After dead_node_grace (5s) every live node forgets the victim, and it must stay
    # forgotten: no node may bring it back from another's stale digest.
    wait_forgotten(live, victim.name, ("dead",), t0, 5.0 + DETECT_BOUND + 10)
    # The survivors are unaffected.
    c.wait_members(nodes=live, expect=live, timeout=2)
    live[0].put("after/kill", "ok")
    c.wait_value(live[0], "after/kill", "ok", nodes=live, timeout=REPLICATE_BOUND)


def wait_forgotten(observers, subject, allowed, t0, timeout, stable=3.0):
    """Waits until every observer has forgotten `subject` (absent from its members) and
    keeps it forgotten for `stable` seconds. Until then the subject may only be in one of
    the `allowed` states; once an observer forgot it, it must never reappear (a node
    re-learning a forgotten member from a peer's stale digest is the bug this catches)."""
    forgotten_at = {}
    history = {o.name: [] for o in observers}

    def ok():
        now = time.monotonic() - t0
        for o in observers:
            st = o.states().get(subject)
            h_ = history[o.name]
            if not h_ or h_[-1][1] != st:
                h_.append((round(now, 2), st))
            if st is None:
                forgotten_at.setdefault(o.name, now)
                continue
            check(o.name not in forgotten_at,
                  "%s forgot %s at %.2fs and re-learned it (state %r) at %.2fs; its history: %r"
                  % (o.name, subject, forgotten_at.get(o.name, -1), st, now, h_))
            check(st in allowed, "%s shows %s as %r at %.2fs (allowed %r; resurrected after "
                  "being forgotten?); history %r"
                  % (o.name, subject, st, now, allowed, h_))
        return (len(forgotten_at) == len(observers)
                and now - max(forgotten_at.values()) >= stable)
    try:
        wait_until(ok, timeout, "%s forgotten by all and staying forgotten for %.0fs"
                   % (subject, stable), interval=0.03)
    except h.WaitTimeout as e:
        raise AssertionError("%s; dead_node_grace is 5s, yet %.0fs after the event the "
                             "observers' histories (t, state) are %r (forgotten and at once "
                             "re-learned from a peer's digest? the node logs show "
                             "'forgotten' followed by 'joined')"
                             % (e, timeout, history)) from None
    log("%s forgotten by every observer at %.2f..%.2fs after the event"
        % (subject, min(forgotten_at.values()), max(forgotten_at.values())))


# ---- leave ---------------------------------------------------------------------------------

def case_leave(c, args):
    nodes = c.start_many(5)
    c.wait_members(timeout=15)
    wait_until(lambda: all(m["heartbeat"] >= 5 for n in nodes for m in n.members().values()),
               10, "heartbeats >= 5 everywhere")
    leaver, live = nodes[4], nodes[:4]
    with h.FlapMonitor(c, healthy=lambda: {n.name for n in live}) as mon:
        _leave(c, leaver, live)
    mon.assert_no_false_dead("survivors of a graceful leave")


def _leave(c, leaver, live):
    leaver.put("leaver/key", "v")
    c.wait_value(leaver, "leaver/key", "v")
    t0 = time.monotonic()
    leaver.proc.send_signal(signal.SIGTERM)
    seen = {}
    bad = []

    def all_left():
        now = time.monotonic() - t0
        for n in live:
            if n.name in seen:
                continue
            st = n.states().get(leaver.name)
            if st in ("dead", "suspect"):
                bad.append((n.name, st, round(now, 2)))
            if st == "left":
                seen[n.name] = now
        return len(seen) == len(live)
    wait_until(all_left, LEAVE_BOUND, "all peers show %s left within %.1fs of SIGTERM"
               % (leaver.name, LEAVE_BOUND), interval=0.01)
    check(not bad, "peers saw the leaving node suspect/dead before left: %r" % bad)
    rc = leaver.proc.wait(10)
    leaver.exit_codes.append(rc)
    leaver.log_file.close()
    log("graceful leave seen: first %.3fs, last %.3fs after SIGTERM; exit %d after %.3fs"
        % (min(seen.values()), max(seen.values()), rc, time.monotonic() - t0))
    check(rc == 0, "exit code after SIGTERM: %d" % rc)
    # left is final: it must not flip to dead/alive, then it is forgotten after grace
    # and stays forgotten.
    wait_forgotten(live, leaver.name, ("left",), t0, 5.0 + 10)
    c.wait_members(nodes=live, expect=live, timeout=2)


# ---- restart with a new generation -------------------------------------------------------------

def case_restart(c, args):
    nodes = c.start_many(3)
    r = c.add("phoenix", seeds=nodes[:2], generation=100)
    nodes.append(r)
    c.wait_members(timeout=15)
    old = {"a": "old-a", "b": "old-b", "c": "old-c"}
    for k, v in old.items():
        r.put(k, v)
    r.delete("c")
    for k, v in (("a", "old-a"), ("b", "old-b"), ("c", None)):
        c.wait_value(r, k, v)
    peers = nodes[:3]
    for p in peers:
        m = p.members()["phoenix"]
        check(m["generation"] == 100, "%s sees phoenix generation %r" % (p.name, m["generation"]))

    r.kill9()
    # Restart right away (before anyone declares it dead): same name and address, newer
    # generation, different data.
    r.start(generation=200, new_admin_port=True)
    r.put("a", "new-a")
    r.put("d", "new-d")
    OLD_ONLY = {("a", b"old-a"), ("b", b"old-b")}
    NEW = {("a", b"new-a"), ("d", b"new-d")}
    t0 = time.monotonic()

    def replaced():
        done = True
        for p in peers:
            view = {(e["key"], h.entry_value(e)) for e in p.kv(node="phoenix")}
            check(not (view & OLD_ONLY and view & NEW),
                  "%s merged phoenix's generations: %r" % (p.name, sorted(view)))
            check(view <= OLD_ONLY or view <= NEW, "%s has unexpected phoenix data %r"
                  % (p.name, sorted(view)))
            m = p.members().get("phoenix")
            if view != NEW or m is None or m["generation"] != 200 or m["state"] != "alive":
                done = False
        return done
    wait_until(replaced, 10, "peers replace phoenix gen 100 by gen 200", interval=0.02)
    log("generation 200 replaced 100 on all peers in %.3fs" % (time.monotonic() - t0))
    for p in peers:
        check(p.get("b", node="phoenix") is None, "old key b survived on %s" % p.name)
    # The restarted node also gets everyone else's state.
    for p in peers:
        p.put("from/" + p.name, "x")
    for p in peers:
        c.wait_value(p, "from/" + p.name, "x")

    # A restart with an OLDER generation must not replace the newer one: peers keep 200,
    # and the stale node notices the conflict (engine_drops.self_conflict).
    r.kill9()
    r.start(generation=50, new_admin_port=True)

    def conflict_seen():
        if not r.alive():
            return "exited %d" % r.proc.poll()  # giving up on a stale generation is fine too
        return r.stats()["engine"]["engine_drops"].get("self_conflict", 0) > 0
    how = wait_until(conflict_seen, 10, "stale generation 50 counts self_conflict")
    log("stale generation 50: %s" % ("self_conflict counted" if how is True else how))
    for p in peers:
        m = p.members().get("phoenix")
        check(m is None or m["generation"] == 200,
              "%s replaced generation 200 by older %r" % (p.name, m and m["generation"]))
    # Then a proper restart with a newer generation heals it.
    if r.alive():
        r.kill9()
    r.start(generation=300, new_admin_port=True)
    r.put("e", "gen300")
    def healed():
        for p in peers:
            m = p.members().get("phoenix")
            if m is None or m["generation"] != 300 or m["state"] != "alive":
                return False
            keys = {e["key"] for e in p.kv(node="phoenix")}
            check(not keys & {"a", "b", "d"}, "%s kept pre-300 keys %r" % (p.name, keys))
            if keys != {"e"}:
                return False
        return True
    wait_until(healed, 10, "generation 300 everywhere")

    # The default generation (0 = wall-clock microseconds) is larger than any small one.
    r.kill9()
    r.start(generation=0, new_admin_port=True)
    gen = r.members()["phoenix"]["generation"]
    check(gen > 300, "default generation %d is not wall-clock based" % gen)
    wait_until(lambda: all(p.members().get("phoenix", {}).get("generation") == gen and
                           p.members()["phoenix"]["state"] == "alive" for p in peers),
               10, "wall-clock generation %d everywhere" % gen)


# ---- late join --------------------------------------------------------------------------------

def case_late_join(c, args):
    flags = {"max_packet_bytes": 1400}
    nodes = c.start_many(3, **flags)
    c.wait_members(timeout=15)
    rng = random.Random(4)
    t0 = time.monotonic()
    expected = {n.name: {} for n in nodes}
    for i in range(500):
        n = nodes[i % 3]
        key = "state/%04d" % i
        val = "%d:" % i + "z" * rng.randint(0, 200)
        n.put(key, val)
        expected[n.name][key] = val.encode()
    for i in range(0, 500, 10):  # 50 deletes -> tombstones
        n = nodes[i % 3]
        key = "state/%04d" % i
        n.delete(key)
        del expected[n.name][key]
    log("500 puts + 50 deletes in %.2fs" % (time.monotonic() - t0))

    def view_ok(n):
        for owner in nodes:
            got = {e["key"]: h.entry_value(e) for e in n.kv(prefix="state/", node=owner.name)}
            if got != expected[owner.name]:
                return False
        return True
    wait_until(lambda: all(view_ok(n) for n in nodes), 30, "3 nodes converge on 450 keys",
               interval=0.2)
    owner_max = {n.name: n.members()[n.name]["max_version"] for n in nodes}

    t0 = time.monotonic()
    late = c.add("late", seeds=nodes[:1], **flags)
    def late_ok():
        m = late.members()
        return (all(n.name in m and m[n.name]["max_version"] == owner_max[n.name] for n in nodes)
                and view_ok(late))
    wait_until(late_ok, 30, "late joiner gets all 450 keys and 50 tombstones", interval=0.05)
    dt = time.monotonic() - t0
    log("late joiner converged (450 live keys, 50 tombstones, 1400-byte packets) in %.2fs" % dt)
    # Live keys match at once. Tombstone counts converge a little later: owners collect
    # tombstones as soon as every live peer has them (ack-frontier GC), and replicas drop
    # theirs once they hear the owner's gc, so a joiner briefly holds more than the owner.
    m = late.members()
    for n in nodes:
        mine = n.members()[n.name]
        check(m[n.name]["keys"] == mine["keys"],
              "late joiner's %s live keys %r != owner's %r" % (n.name, m[n.name]["keys"], mine["keys"]))
    def tombstones_match():
        m = late.members()
        return all(m[n.name]["tombstones"] == n.members()[n.name]["tombstones"] for n in nodes)
    wait_until(tombstones_match, 30, "late joiner's tombstone counts match the owners'")
    c.wait_members(timeout=10)
    late.put("state/late", "hi")
    c.wait_value(late, "state/late", "hi")


# ---- BadCluster isolation -------------------------------------------------------------------

def case_bad_cluster(c, args):
    nodes = c.start_many(3)
    c.wait_members(timeout=15)
    before = {n.name: n.stats()["engine"]["engine_drops"].get("cluster_mismatch", 0)
              for n in nodes}
    # An intruder of another cluster that seeds from all of ours.
    x = c.add("intruder", seeds=nodes, cluster_id="some-other-cluster")
    x.put("x/secret", "nope")
    nodes[0].put("ours", "ours")

    def mismatches():
        return sum(n.stats()["engine"]["engine_drops"].get("cluster_mismatch", 0) - before[n.name]
                   for n in nodes)
    wait_until(lambda: mismatches() >= 10, 10, "cluster_mismatch drops on our nodes")
    # The intruder learns it is in the wrong cluster.
    xs = x.stats()["engine"]
    log("our cluster_mismatch drops: %d; intruder stats: bad_cluster_received=%r"
        % (mismatches(), xs.get("bad_cluster_received")))
    check(xs.get("bad_cluster_received", 0) > 0,
          "intruder never got a BadCluster reply: %r" % {k: v for k, v in xs.items()
                                                         if not isinstance(v, dict)})
    # Observe for a while: never in each other's member lists, never each other's keys.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for n in nodes:
            check("intruder" not in n.members(), "%s lists the intruder" % n.name)
            check(n.get("x/secret", node="intruder") is None, "%s has intruder data" % n.name)
        check(set(x.members()) == {"intruder"}, "intruder lists %r" % sorted(x.members()))
        time.sleep(0.1)
    c.wait_value(nodes[0], "ours", "ours", nodes=nodes)
    check(x.get("ours", node=nodes[0].name) is None, "intruder got our data")
    check(x.alive() and all(n.alive() for n in nodes), "someone died")


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = h.base_args(__doc__)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    args = ap.parse_args()
    fn = CASES[args.case]
    return h.run(fn, args)


if __name__ == "__main__":
    sys.exit(main())
