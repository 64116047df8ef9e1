#!/usr/bin/env python3
"""SIGSTOP one scuttled for 5 s, and for a pause that ends inside the confirmation window
(issue #16 item 3, Lifeguard local health).

4 nodes, 100 ms rounds, the young-node prior from the gossip interval (the daemon's
default). One node is stopped with SIGSTOP while the others keep running; after 5 s it
gets SIGCONT. Checks:
  - the others notice: each marks it suspect (or dead, when its probes time out first);
  - when it wakes, the stopped node declares nobody dead: its member list never shows a
    running peer as dead and its `dead` member-event counter does not move (its own late
    tick rebases the silence clocks instead of reading its stall as theirs);
  - it refutes or is heard again: every node lists it alive again within a deadline.
What the others concluded during the pause is printed (suspect only, or dead then
refuted) — a 5 s pause is 50 rounds here, longer than the confirmation window, so the
others declaring it dead and it refuting is the expected outcome.

Second case, a pause inside the confirmation window (docs/detection.md): 4 fresh nodes with
--probe_timeout_ms=1000 (the window from suspicion to verdict is then >= 3 s: a 1 s ping
and a 2 s ping-req round) and --phi_threshold=30 (the phi-only backstop beyond it). The
node is stopped until the first observer lists it suspect, then continued. Checks: no
observer ever lists it dead and no observer's `dead` event counter moves; every observer
lists it alive again.

  python3 sigstop_test.py --bin build/release/tools/scuttled --io epoll
"""

import signal
import sys
import time

import harness as h

PAUSE_S = 5.0


def dead_events(node):
    st, text = node.request("GET", "/metrics")
    h.check(st == 200, "/metrics answered %s" % st)
    if isinstance(text, bytes):
        text = text.decode()
    for line in str(text).splitlines():
        if line.startswith('scuttle_member_events_total{event="dead"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test(c, args):
    # The prior follows the gossip interval (the default): drop the harness's override.
    c.flags.pop("phi_initial_interval_ms", None)
    nodes = c.start_many(4, seeds_count=1)
    c.wait_members(timeout=30)
    h.wait_until(lambda: min(m["heartbeat"] for m in nodes[0].members().values()) >= 20,
                 30, "20 heartbeats from every node")
    sleeper, others = nodes[3], nodes[:3]
    before = dead_events(sleeper)
    worst = {o.name: "alive" for o in others}  # the worst state each observer showed
    rank = {"alive": 0, "suspect": 1, "dead": 2, "left": 3}

    def observe():
        for o in others:
            s = o.states().get(sleeper.name, "alive")
            if rank.get(s, 0) > rank[worst[o.name]]:
                worst[o.name] = s

    sleeper.proc.send_signal(signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        # Every observer suspects it (a condition), then the pause runs its 5 s course
        # while the observers are watched.
        h.wait_until(lambda: observe() or all(w != "alive" for w in worst.values()),
                     PAUSE_S + 10, "every observer suspects the stopped node", interval=0.05)
        t_suspect = time.monotonic() - t0
        h.wait_until(lambda: observe() or time.monotonic() - t0 >= PAUSE_S, PAUSE_S + 10,
                     "the end of the pause", interval=0.05)
    finally:
        sleeper.proc.send_signal(signal.SIGCONT)
    h.log("stopped %.1fs; all observers suspected it after %.2fs; worst states: %s"
          % (time.monotonic() - t0, t_suspect, worst))

    # Awake: it must never list a running peer as dead, and everyone lists it alive again.
    seen_dead = []

    def healed():
        st = sleeper.states()
        seen_dead.extend(n for n in (o.name for o in others) if st.get(n) == "dead")
        h.check(not seen_dead, "the woken node declared %s dead" % sorted(set(seen_dead)))
        return all(o.states().get(sleeper.name) == "alive" for o in others) and \
            all(st.get(o.name) == "alive" for o in others)
    t1 = time.monotonic()
    h.wait_until(healed, 30, "every node lists the woken node alive (and it lists them)",
                 interval=0.05)
    h.log("alive everywhere %.2fs after SIGCONT" % (time.monotonic() - t1))
    after = dead_events(sleeper)
    h.check(after == before, "the woken node raised %d dead events" % (after - before))
    print("sigstop: observers' worst state during the %.0fs pause: %s; alive again %.2fs "
          "after SIGCONT; the woken node declared 0 peers dead"
          % (PAUSE_S, sorted(set(worst.values())), time.monotonic() - t1), flush=True)
    for nd in nodes:  # the second case runs a cluster of its own
        nd.sigterm()


def test_inside_window(c, args):
    nodes = c.start_many(4, prefix="w", seeds_count=1, probe_timeout_ms=1000,
                         phi_threshold=30)
    c.wait_members(nodes=nodes, expect=nodes, timeout=30)
    h.wait_until(lambda: min(m["heartbeat"] for m in nodes[0].members().values()) >= 20,
                 30, "20 heartbeats from every node")
    sleeper, others = nodes[3], nodes[:3]
    dead0 = {o.name: dead_events(o) for o in others}
    seen = set()

    def states():
        got = [o.states().get(sleeper.name, "alive") for o in others]
        seen.update(got)
        return got

    sleeper.proc.send_signal(signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        h.wait_until(lambda: "suspect" in states() or "dead" in seen, 15,
                     "an observer suspects the stopped node", interval=0.02)
    finally:
        sleeper.proc.send_signal(signal.SIGCONT)
    paused = time.monotonic() - t0
    h.check("dead" not in seen, "declared dead before any observer suspected it")
    h.wait_until(lambda: states() == ["alive"] * len(others), 30,
                 "every observer lists the woken node alive", interval=0.02)
    h.log("paused %.2fs (until the first suspicion); states seen: %s" % (paused, sorted(seen)))
    h.check("dead" not in seen, "an observer listed the node dead: %s" % sorted(seen))
    for o in others:
        moved = dead_events(o) - dead0[o.name]
        h.check(moved == 0, "%s raised %d dead events for a pause inside the window"
                % (o.name, moved))
    print("sigstop inside the window: paused %.2fs, observers' states %s, 0 dead events"
          % (paused, sorted(seen)), flush=True)


def both(c, args):
    test(c, args)
    test_inside_window(c, args)


if __name__ == "__main__":
    sys.exit(h.run(both, h.base_args(__doc__).parse_args()))
