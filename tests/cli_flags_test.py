#!/usr/bin/env python3
"""Command-line contract of the simulator, bench and tool binaries (scuttle-sim, bench/,
scuttlectl) that use absl flags
(sim/flags.h): --help exits 0 and lists the flags, an unknown flag or an old spelling
exits non-zero naming it, a bad value or a flag that does not apply to the chosen
command or mode exits 2 with a message saying so.

    python3 tests/cli_flags_test.py --build-dir build/release [--only scuttle-sim]
Exit 0 when every check holds, 1 listing the failed ones.
"""
import argparse
import os
import subprocess
import sys

# binary (relative to the build dir), command prefix, then checks:
#   help: flags --help must list
#   refused: (args, text on stderr): must exit 2 with that text
#   ok: args that must exit 0 (quick runs, so the refusals above are not refusing all)
BINARIES = [
    {
        "bin": "sim/scuttle-sim", "prefix": ["demers"],
        "help": ["--variant=push", "--delivery=snapshot", "--seed=1"],
        "refused": [
            (["--nodes=5"], "--nodes does not apply to scuttle-sim demers"),
            (["--mode=push"], "--mode does not apply to scuttle-sim demers"),
            (["--n=1"], "--n=1: want 2.."),
            (["--variant=sideways"], "push|pull|push-pull"),
            # explicitly set to its default: still refused for a scheme it cannot change
            (["--variant=pull", "--delivery=snapshot"], "--delivery does not apply"),
            (["--decay=coin", "--counter=consecutive"], "--counter does not apply"),
            (["stray"], "unexpected argument 'stray'"),
        ],
        "old": ["--max-cycles=5"],
        "ok": [["--n=50", "--trials=2", "--k=1..2"]],
    },
    {
        "bin": "sim/scuttle-sim", "prefix": ["antientropy"],
        "help": ["--mode=pull", "--trials=100"],
        "refused": [
            (["--variant=pull"], "--variant does not apply to scuttle-sim antientropy"),
            (["--loss_pct=5"], "--loss_pct does not apply"),
        ],
        "old": [],
        "ok": [["--n=50", "--trials=2", "--mode=push-pull"]],
    },
    {
        "bin": "sim/scuttle-sim", "prefix": ["cluster"],
        "help": ["--loss_pct=0", "--max_packet_bytes=65507", "--writes_per_round=4"],
        "refused": [
            (["--k=3"], "--k does not apply to scuttle-sim cluster"),
            (["--loss_pct=101"], "--loss_pct=101: want 0..100"),
            (["--soak_seeds=2", "--crash_pct=1"], "--crash_pct does not apply to --soak_seeds"),
            (["--partition_at_round=5"], "--heal_at_round"),
            (["--shards=0"], "--shards=0: want 1..256"),
            (["--shards=2", "--pause_pct=1"], "--pause_pct does not apply with --shards"),
            (["--soak_seeds=2", "--shards=2"], "--shards does not apply to --soak_seeds"),
        ],
        "old": ["--loss=0.1", "--partition-at=5", "--write-rate=3", "--no-check"],
        "ok": [["--nodes=4", "--rounds=20", "--loss_pct=5", "--nocheck_invariants"],
               ["--nodes=4", "--rounds=20", "--shards=2"]],
    },
    {
        "bin": "bench/scuttle_load", "prefix": [],
        "help": ["--duration_s=1", "--warmup_s=0.3", "--zerocopy_min_bytes=0"],
        "refused": [
            (["--kind=bulk"], "--kind=bulk: want echo or handshake"),
            (["--reps=0"], "--reps=0: want 1..100"),
            (["--size=9000"], "--size=9000"),
            (["--server_addr=10.0.0.1"], "--server_addr does not apply"),
            (["--server_netns=x", "--server_addr=1.2.3", "--gen_addr=10.0.0.1"],
             "--server_addr='1.2.3': want an IPv4 address"),
            (["x"], "unexpected argument 'x'"),
        ],
        "old": ["--duration=1", "--warmup=0.1"],
        "ok": [],
    },
    {
        "bin": "bench/scuttle_cluster", "prefix": [],
        "help": ["--interval_ms=300", "--writes_per_node_per_s=1", "--join_mb=1,10,100"],
        "refused": [
            (["--nodes=0", "--writes=5"], "--writes does not apply to --nodes=0"),
            (["--join_mb=0", "--join_reps=2"], "--join_reps does not apply to --join_mb=0"),
            (["--nodes=ten"], "--nodes: 'ten' is not an integer"),
            (["--io=dpdk"], "--io=dpdk: want uring or epoll"),
            (["--join_mode=fast"], "--join_mode=fast"),
        ],
        "old": ["--write_rate=2"],
        "ok": [],
    },
    {
        "bin": "bench/scuttle_state", "prefix": [],
        "help": ["--keys=1000,10000", "--sim_budget_s=90"],
        "refused": [
            (["--keys=0"], "--keys: '0' is not an integer in 1.."),
            (["--reps=1000"], "--reps=1000: want 1..100"),
        ],
        "old": [],
        "ok": [],
    },
    {
        "bin": "bench/scuttle_gso", "prefix": [],
        "help": ["--duration_ms=400", "--reps=5"],
        "refused": [
            (["--to=10.0.0.1:7417"], "--to does not apply to scuttle_gso"),
            (["--reps=0"], "--reps=0"),
        ],
        "old": ["--ms=50"],
        "ok": [],
    },
    {
        "bin": "bench/scuttle_gso", "prefix": ["serve"],
        "help": ["--listen=0.0.0.0:7417", "--io=uring"],
        "refused": [
            (["--reps=2"], "--reps does not apply to scuttle_gso serve"),
            (["--io=dpdk"], "--io: want uring or epoll"),
        ],
        "old": [],
        "ok": [],
    },
    {
        "bin": "bench/scuttle_gso", "prefix": ["client"],
        "help": ["--shape=mtu", "--exchanges=1000"],
        "refused": [
            (["--listen=0.0.0.0:1"], "--listen does not apply to scuttle_gso client"),
            (["--to=10.0.0.1:7417", "--shape=square"], "--shape: want one or mtu"),
        ],
        "old": [],
        "ok": [],
    },
    {
        # scuttlectl takes positional arguments; every check here fails before a request.
        "bin": "tools/scuttlectl", "prefix": [],
        "help": ["--timeout_s=5", "--addr=", "Exit codes"],
        "refused": [
            (["get", "k", "--prefix=x"], "--prefix does not apply to 'get'"),
            (["--timeout_s=0", "health"], "--timeout_s wants a positive number"),
            (["frobnicate"], "unknown command 'frobnicate'"),
        ],
        "old": ["--timeout=2"],
        "ok": [["keys", "generate"]],
    },
]


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def check(build, b):
    exe = os.path.join(build, b["bin"])
    name = " ".join([os.path.basename(exe)] + b["prefix"])
    base = [exe] + b["prefix"]
    fails = []

    def expect(ok, what):
        if not ok:
            fails.append(f"{name}: {what}")

    p = run(base + ["--help"])
    expect(p.returncode == 0, f"--help exits {p.returncode}, want 0")
    for f in b["help"]:
        expect(f in p.stdout, f"--help does not list {f}")
    p = run(base + ["--no_such_flag_21"])
    expect(p.returncode != 0, "an unknown flag exits 0")
    expect("no_such_flag_21" in p.stderr, f"unknown flag not named: {p.stderr!r}")
    for old in b["old"]:
        p = run(base + [old])
        flag = old.split("=")[0].lstrip("-")
        expect(p.returncode != 0 and flag in p.stderr,
               f"old spelling {old} not refused by name (exit {p.returncode}): {p.stderr!r}")
    for args, text in b["refused"]:
        p = run(base + args)
        expect(p.returncode == 2, f"{args} exits {p.returncode}, want 2")
        expect(text in p.stderr, f"{args}: {text!r} not in {p.stderr!r}")
    for args in b["ok"]:
        p = run(base + args)
        expect(p.returncode == 0, f"{args} exits {p.returncode}: {p.stderr[-300:]!r}")
    return fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--only", default=None, help="check only binaries whose path has this")
    ap.add_argument("--no-bench", action="store_true",
                    help="the build has no benchmarks (SCUTTLE_BENCH=OFF): skip bench/")
    args = ap.parse_args()
    fails, checked = [], 0
    for b in BINARIES:
        if args.only and args.only not in b["bin"]:
            continue
        if args.no_bench and b["bin"].startswith("bench/"):
            print(f"skip {b['bin']}: SCUTTLE_BENCH=OFF")
            continue
        if not os.path.exists(os.path.join(args.build_dir, b["bin"])):
            fails.append(f"{b['bin']}: not built")
            continue
        fails += check(args.build_dir, b)
        checked += 1
    for f in fails:
        print("FAIL", f)
    print(f"{checked} binaries/commands checked, {len(fails)} failures")
    return 1 if fails or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
