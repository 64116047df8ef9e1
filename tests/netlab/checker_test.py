"""Unit test of the netlab history checker on synthetic histories (no root needed):
every check must catch the violation planted for it and stay quiet on a clean history."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402


class FakeNode:
    def __init__(self, i):
        self.index, self.name, self.starts = i, "n%d" % i, 1

    def alive(self):
        return True


class FakeLab:
    def __init__(self, n, intervals=()):
        self.nodes = [FakeNode(i) for i in range(n)]
        self.intervals = list(intervals)


def ev(kind, node, key, version, gen=1, value=None, seq=0):
    e = {"event": kind, "node": node, "key": key, "version": version, "generation": gen, "seq": seq}
    if value is not None:
        e["value"] = value
    return e


def fresh():
    return checker.History(seed=99, t0=0.0)


def expect(h, substring):
    msgs = [v[0] for v in h.violations]
    assert any(substring in m for m in msgs), "expected %r in %r" % (substring, msgs)
    assert "seed 99" in h.report()


def test_clean():
    h = fresh()
    h.watch += [(1.0, "n1", 1, ev("set", "n0", "t/n0/k0", 2, value="a")),
                (2.0, "n1", 1, ev("deleted", "n0", "t/n0/k0", 3))]
    h.kv += [(0.5, 0.6, "n1", 1, {("n0", "t/n0/k0"): (2, "a")}), (2.5, 2.6, "n1", 1, {})]
    h.members += [(0.5, 0.6, "n1", 1, {"n0": {"generation": 1, "max_version": 2}}),
                  (2.5, 2.6, "n1", 1, {"n0": {"generation": 1, "max_version": 3}})]
    checker.check_monotonic(h, restarted=set())
    false, det = checker.check_deaths(FakeLab(2), h, checker.Bounds({}, 2))
    assert not h.violations and not false and det == [], h.violations


def test_version_regression_in_watch():
    h = fresh()
    h.watch += [(1.0, "n1", 1, ev("set", "n0", "t/n0/k0", 5, value="b")),
                (2.0, "n1", 1, ev("set", "n0", "t/n0/k0", 4, value="a"))]
    checker.check_monotonic(h, restarted=set())
    expect(h, "back to v4")


def test_reappearance_in_kv_sample():
    h = fresh()
    h.watch += [(1.0, "n1", 1, ev("deleted", "n0", "t/n0/k0", 6))]
    h.kv += [(2.0, 2.1, "n1", 1, {("n0", "t/n0/k0"): (5, "old")})]
    checker.check_monotonic(h, restarted=set())
    expect(h, "reappeared")


def test_members_regression():
    h = fresh()
    h.members += [(0.5, 0.6, "n1", 1, {"n0": {"generation": 1, "max_version": 9}}),
                  (1.5, 1.6, "n1", 1, {"n0": {"generation": 1, "max_version": 7}})]
    checker.check_monotonic(h, restarted=set())
    expect(h, "after (gen 1, v9)")


def test_false_death_and_excuse():
    b = checker.Bounds({"gossip_interval_ms": 100, "phi_max_interval_ms": 1000}, 3)
    h = fresh()
    h.watch += [(5.0, "n1", 1, {"event": "dead", "node": "n0", "seq": 1})]
    checker.check_deaths(FakeLab(3), h, b)
    expect(h, "false death")
    # the same declaration during a partition of the pair is not a violation
    h = fresh()
    h.watch += [(5.0, "n1", 1, {"event": "dead", "node": "n0", "seq": 1})]
    lab = FakeLab(3, [{"kind": "block", "pairs": {(0, 1)}, "start": 3.0, "end": 8.0}])
    false, _ = checker.check_deaths(lab, h, b)
    assert not false and not h.violations
    # ...nor just after the delay relay froze every path (a stall of the test's network)
    h = fresh()
    h.watch += [(5.0, "n1", 1, {"event": "dead", "node": "n0", "seq": 1})]
    false, _ = checker.check_deaths(FakeLab(3, [{"kind": "stall", "start": 4.0, "end": 4.9}]), h, b)
    assert not false and not h.violations
    # but a stall after the declaration excuses nothing
    h = fresh()
    h.watch += [(5.0, "n1", 1, {"event": "dead", "node": "n0", "seq": 1})]
    checker.check_deaths(FakeLab(3, [{"kind": "stall", "start": 5.5, "end": 6.0}]), h, b)
    expect(h, "false death")


def test_undetected_kill():
    b = checker.Bounds({"gossip_interval_ms": 100, "phi_max_interval_ms": 1000}, 3)
    lab = FakeLab(3, [{"kind": "down", "nodes": {2}, "start": 1.0, "end": 1.0 + b.detect_s + 1}])
    h = fresh()
    h.watch += [(3.0, "n0", 1, {"event": "dead", "node": "n2", "seq": 1})]  # n1 never does
    checker.check_deaths(lab, h, b)
    expect(h, "did not declare killed n2 dead")
    h = fresh()
    h.watch += [(3.0, "n0", 1, {"event": "dead", "node": "n2", "seq": 1}),
                (3.5, "n1", 1, {"event": "dead", "node": "n2", "seq": 1})]
    _, det = checker.check_deaths(lab, h, b)
    assert not h.violations and det == [2.5], (h.violations, det)


def test_expected_final_state():
    h = fresh()
    h.ops += [
        {"node": "n0", "inc": 1, "kind": "put", "key": "a", "value": "1", "ttl": None,
         "start": 0, "end": 0.1, "ok": True, "version": 2, "err": None},
        {"node": "n0", "inc": 1, "kind": "delete", "key": "a", "value": None, "ttl": None,
         "start": 1, "end": 1.1, "ok": True, "version": 3, "err": None},
        {"node": "n0", "inc": 1, "kind": "put", "key": "b", "value": "2", "ttl": None,
         "start": 1, "end": 1.1, "ok": True, "version": 4, "err": None},
        {"node": "n0", "inc": 1, "kind": "put", "key": "b", "value": "3", "ttl": None,
         "start": 2, "end": 4.1, "ok": False, "version": None, "err": "timeout"},
        {"node": "n0", "inc": 1, "kind": "ttl", "key": "c", "value": "4", "ttl": "2s",
         "start": 2, "end": 2.1, "ok": True, "version": 5, "err": None},
    ]
    e = checker._expected(h, "n0", 1, now=3.0)
    assert e == {"a": {None}, "b": {"2", "3"}, "c": {"4", None}}, e
    e = checker._expected(h, "n0", 1, now=10.0)
    assert e["c"] == {None}, e


if __name__ == "__main__":
    n = 0
    for name, fn in sorted(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            n += 1
    print("PASSED %d checker tests" % n)
