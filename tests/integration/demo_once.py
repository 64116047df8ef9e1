#!/usr/bin/env python3
"""ctest demo_once: runs `tools/demo --nodes 5 --once` (the README's first command, in its
non-interactive form) and checks it exits 0 without leaving scuttled processes behind.
Exits 77 (skipped) while tools/demo does not exist yet.

Under ctest it passes --bin (the scuttled ctest built: no second, release-preset build
inside a test) and free port ranges (--gossip-port/--admin-port), so it neither collides
with parallel tests nor with a demo someone is running on the default ports."""

import argparse
import os
import signal
import subprocess
import sys
import time


def scuttled_pids():
    pids = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv0 = f.read().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(argv0) == b"scuttled":
            pids.add(int(d))
    return pids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", required=True)
    ap.add_argument("--bin", help="scuttled to use (the demo's --bin); default: let it build")
    ap.add_argument("--default_ports", action="store_true",
                    help="use the demo's default ports instead of free ones")
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=280)
    args = ap.parse_args()
    if not os.path.exists(args.demo):
        print("SKIPPED: %s does not exist yet" % args.demo)
        return 77
    argv = [args.demo, "--nodes", str(args.nodes), "--once"]
    if args.bin:
        argv += ["--bin", args.bin]
    if not args.default_ports:
        sys.dont_write_bytecode = True
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import harness  # noqa: E402 - port locks shared with the other integration tests
        locks = harness.PortLocks()
        g = locks.take_range(args.nodes)
        a = locks.take_range(args.nodes)
        argv += ["--gossip-port", str(g), "--admin-port", str(a)]
    print("$ " + " ".join(argv), flush=True)
    before = scuttled_pids()
    t0 = time.monotonic()
    p = subprocess.Popen(argv,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        sys.stdout.write(out.decode(errors="replace"))
        print("FAILED: demo did not finish within %.0fs" % args.timeout)
        return 1
    text = out.decode(errors="replace")
    sys.stdout.write(text)
    print("demo exited %d after %.1fs" % (p.returncode, time.monotonic() - t0))
    if p.returncode != 0:
        return 1
    # Its daemons must be gone (they are children of the demo's session).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [pid for pid in scuttled_pids() - before if _sid(pid) == p.pid]
        if not left:
            break
        time.sleep(0.1)
    else:
        print("FAILED: demo left scuttled processes running: %s" % left)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return 1
    return 0


def _sid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[3])
    except (OSError, ValueError, IndexError):
        return -1


if __name__ == "__main__":
    sys.exit(main())
