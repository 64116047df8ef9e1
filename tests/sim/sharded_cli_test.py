#!/usr/bin/env python3
"""`scuttle-sim cluster --shards N` end to end through the command line (sim/sharded_sim.h):
a small sharded run with loss and crashes reports totals and one full report per shard
(JSON and text), every shard clean and converged, no shard other than 0 suspecting
anyone; a planted bug makes the per-shard checkers fire and the command exit 1.

    python3 tests/sim/sharded_cli_test.py --build-dir build/release
Exit 0 when every check holds, 1 listing the failed ones.
"""
import argparse
import json
import os
import subprocess
import sys

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL: " + what)


def run(sim, args):
    p = subprocess.run([sim, "cluster"] + args, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    sim = os.path.join(ap.parse_args().build_dir, "sim", "scuttle-sim")

    # --restart_pct=0: every crash stays down past the dead bound, so dead checks happen
    # whatever the seed's trajectory (with restarts, whether any crash stayed down long
    # enough depended on the seed).
    base = ["--nodes=12", "--rounds=90", "--loss_pct=5", "--crash_pct=1.5", "--restart_pct=0",
            "--dead_bound_rounds=25", "--seed=11", "--writes_per_round=6"]
    rc, out, err = run(sim, base + ["--shards=3", "--json"])
    check(rc == 0, "clean sharded run exits 0 (rc=%d, stderr=%s)" % (rc, err.strip()))
    j = json.loads(out)
    check(j["shards"] == 3, "shards reported")
    per = j["per_shard"]
    check(len(per) == 3, "one report per shard")
    check(j["invariant_violations"] == 0, "0 violations in total")
    check(j["converged"], "every shard converged")
    check(j["external_suspicions"] == 0, "no shard other than 0 suspected a node")
    check(j["crashes"] > 0, "the run crashed nodes (crashes=%d)" % j["crashes"])
    check(j["membership_records"] > 0, "shard 0 published membership")
    for k in ("packets", "bytes", "entries_applied", "dead_checks"):
        check(j[k] == sum(s[k] for s in per), "%s total is the sum over shards" % k)
    check(j["writes"] == sum(s["writes"] for s in per), "writes total is the sum over shards")
    for i, s in enumerate(per):
        check(s["invariant_violations"] == 0, "shard %d: 0 violations" % i)
        check(s["converged"], "shard %d converged" % i)
        check(s["writes"] > 0, "shard %d wrote its own keys" % i)
        check(s["crashes"] == j["crashes"] or i > 0,
              "shard 0 holds the node-level crash count")
    check(per[0]["dead_checks"] > 0, "crashed nodes checked dead on shard 0")
    check(all(s["dead_checks"] > 0 for s in per[1:]),
          "crashed nodes checked dead on the other shards too")
    check(len({s["trace_hash"] for s in per}) == 3, "each shard ran its own traffic")

    rc, text, _ = run(sim, base + ["--shards=3"])
    check(rc == 0, "text mode exits 0")
    check("external_suspicions: 0" in text and "--- shard 2\n" in text,
          "text mode has the totals and a section per shard")

    # The checkers run on every shard: a planted bug is caught and the command fails.
    rc, out, _ = run(sim, ["--nodes=8", "--rounds=60", "--seed=3", "--shards=2",
                           "--plant_bug=drop-tombstones", "--plant_bug_pct=50", "--json"])
    j = json.loads(out)
    check(rc == 1, "planted bug: exit 1 (rc=%d)" % rc)
    check(all(s["invariant_violations"] > 0 for s in j["per_shard"]),
          "planted bug caught on every shard")

    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
