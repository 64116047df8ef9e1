#!/usr/bin/env python3
"""scuttlectl end to end on a 3-node loopback cluster of real scuttled processes.

  python3 tests/integration/scuttlectl_test.py --bin build/release/tools/scuttled \\
      --ctl build/release/tools/scuttlectl --io epoll

Every command of scuttlectl, human and --json output, and the exit-code contract:
0 ok, 1 not found, 2 usage error / request refused as invalid, 3 server or connection
error. Waits poll with deadlines (harness.wait_until); nothing sleeps blindly.
"""

import json
import os
import re
import select
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, log, wait_until  # noqa: E402

REPLICATE_BOUND = 10.0


class Ctl:
    def __init__(self, path):
        self.path = os.path.abspath(path)

    def run(self, node, *argv, stdin=None, timeout=20, addr=None):
        """Runs scuttlectl against node's admin API; returns (exit code, stdout bytes, stderr).

        node None: no --addr, so $SCUTTLE_ADDR or the default applies."""
        cmd = [self.path] + (["--addr", addr or node.admin_addr] if node else []) + list(argv)
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        return p.returncode, p.stdout, p.stderr.decode(errors="replace")

    def expect(self, code, node, *argv, **kw):
        rc, out, err = self.run(node, *argv, **kw)
        check(rc == code, "scuttlectl %s: exit %d, want %d\nstdout: %r\nstderr: %s"
              % (" ".join(argv), rc, code, out[-2000:], err[-2000:]))
        if code != 0:
            check(err.strip(), "scuttlectl %s: exit %d without a message" % (" ".join(argv), rc))
        log("scuttlectl %s -> %d %s" % (" ".join(argv), rc,
                                        (err.strip().splitlines() or [""])[-1][:120]))
        return out

    def json(self, node, *argv):
        return json.loads(self.expect(0, node, "--json", *argv))


def watch_lines(ctl, node, *argv, timeout=20):
    out = ctl.expect(0, node, "--json", "watch", *argv, timeout=timeout)
    return [json.loads(line) for line in out.decode().splitlines()]


def test(c, args):
    ctl = Ctl(args.ctl)
    n0, n1, n2 = c.start_many(3)
    c.wait_members(timeout=REPLICATE_BOUND)

    # health, members
    out = ctl.expect(0, n0, "health").decode()
    check(out.startswith("ok n00 ("), "health: %r" % out)
    check(ctl.json(n0, "health")["status"] == "ok", "health --json")
    table = ctl.expect(0, n1, "members").decode().splitlines()
    check(table[0].split()[:3] == ["NAME", "STATE", "ADDRESS"], "members header: %r" % table)
    check(len(table) == 4 and any(line.startswith("n01 *") for line in table),
          "members table: %r" % table)
    ms = ctl.json(n1, "members")["members"]
    check(sorted(m["name"] for m in ms) == ["n00", "n01", "n02"]
          and all(m["state"] == "alive" for m in ms), "members --json: %r" % ms)

    # put / get / ls / delete, replicated
    check(ctl.expect(0, n0, "put", "greeting", "hello").decode() == "greeting version 1\n",
          "put output")
    wait_until(lambda: ctl.run(n2, "get", "greeting", "--node", "n00")[:2] == (0, b"hello"),
               REPLICATE_BOUND, "greeting on n02 via scuttlectl")
    blob = bytes(range(256))
    ctl.expect(0, n0, "put", "blob", "-", stdin=blob)
    check(ctl.expect(0, n0, "get", "blob") == blob, "binary value through stdin/stdout")
    got = ctl.json(n0, "get", "blob")
    check("value_base64" in got, "--json get of bytes: %r" % got)
    ctl.expect(0, n0, "put", "grp/a", "1")
    ctl.expect(0, n0, "put", "grp/b", "2")
    wait_until(lambda: len(ctl.json(n1, "ls", "--prefix", "grp/", "--node", "n00")["entries"]) == 2,
               REPLICATE_BOUND, "grp/ on n01")
    rows = ctl.expect(0, n1, "ls", "--prefix", "grp/").decode().splitlines()
    check(rows[0].split() == ["NODE", "KEY", "VERSION", "VALUE"] and len(rows) == 3,
          "ls table: %r" % rows)
    check("deleted greeting" in ctl.expect(0, n0, "delete", "greeting").decode(), "delete output")
    ctl.expect(1, n0, "delete", "greeting")            # already deleted
    ctl.expect(1, n0, "get", "greeting")               # not found
    ctl.expect(1, n0, "get", "greeting", "--node", "nobody")
    wait_until(lambda: ctl.run(n2, "get", "greeting", "--node", "n00")[0] == 1,
               REPLICATE_BOUND, "the delete on n02")

    # TTL: expired on the owner, replicated as a delete
    ctl.expect(0, n0, "put", "w/ttl", "soon", "--ttl", "300ms")
    owner = watch_lines(ctl, n0, "--prefix", "w/", "--since", "0", "--count", "2")
    check([e["event"] for e in owner] == ["set", "expired"], "owner watch: %r" % owner)
    replica = watch_lines(ctl, n1, "--prefix", "w/", "--since", "0", "--count", "2")
    check([e["event"] for e in replica] == ["set", "deleted"]
          and all(e["node"] == "n00" and e["key"] == "w/ttl" for e in replica),
          "replica watch: %r" % replica)
    check(owner[0]["seq"] < owner[1]["seq"], "sequence order: %r" % owner)
    ctl.expect(2, n0, "put", "w/x", "v", "--ttl", "soon")  # bad TTL: 400

    # watch: human output, snapshot, resume
    human = ctl.expect(0, n0, "watch", "--prefix", "grp/", "--snapshot", "--count", "3").decode()
    lines = human.splitlines()
    check(len(lines) == 3 and "snapshot" in lines[0] and "snapshot_end" in lines[2],
          "watch --snapshot: %r" % lines)

    # config
    cfg = ctl.json(n0, "config", "get")["config"]
    check(cfg["fanout"]["live"] is True and cfg["node_name"]["live"] is False
          and cfg["node_name"]["value"] == "n00", "config get: %r" % {k: cfg[k] for k in
                                                                     ("fanout", "node_name")})
    out = ctl.expect(0, n0, "config", "set", "fanout=4", "tombstone_grace=2h").decode()
    check("fanout = 4" in out and "tombstone_grace = 2h" in out, "config set: %r" % out)
    check(ctl.json(n0, "config", "get")["config"]["fanout"]["value"] == 4, "fanout now 4")
    ctl.expect(2, n0, "config", "set", "fanout=0")          # bad value
    ctl.expect(2, n0, "config", "set", "max_nodes=5")       # not live
    ctl.expect(2, n0, "config", "set", "bogus=1")           # unknown
    ctl.expect(2, n0, "config", "set", "fanout")            # no '='
    metrics = h.http("GET", n0.url("/metrics"))[1].decode()
    check('scuttle_config_changes_total{field="fanout"} 1' in metrics, "config change counted")

    # usage errors: 2, before any request
    for argv in ([], ["bogus"], ["get"], ["get", "k", "--prefix", "x"], ["--timeout_s", "x", "health"],
                 ["--timeout", "2", "health"], ["--timeout_s", "0", "health"],
                 ["watch", "--count", "0"], ["config"], ["config", "frob"], ["--nope", "health"]):
        ctl.expect(2, n0, *argv)
    check(ctl.expect(0, n0, "--help").decode().count("Exit codes") == 1, "--help documents codes")

    # connection and server errors: 3
    check_unreachable(ctl, c.ports.take())
    check_watch_cut(ctl, n2, "--prefix", "nothing/")    # no event: from where it started
    check_watch_cut(ctl, n1, "--since", "0")            # after events: from the last one


def check_unreachable(ctl, closed):
    """A refused connection: exit 3, one line naming the address, the reason and the fix."""
    addr = "127.0.0.1:%d" % closed
    rc, _, err = ctl.run(None, "--addr", addr, "health", timeout=30)
    log("scuttlectl --addr %s health -> %d %s" % (addr, rc, err.strip()))
    want = "scuttlectl: cannot reach scuttled at %s: connection refused (is it running? " % addr
    check(rc == 3 and err.startswith(want) and "--addr" in err and err.count("\n") == 1,
          "unreachable: %d %r" % (rc, err))
    env = dict(os.environ, SCUTTLE_ADDR=addr)
    p = subprocess.run([ctl.path, "get", "k"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 3 and err.startswith(want) and "$SCUTTLE_ADDR" in err,
          "unreachable through $SCUTTLE_ADDR: %d %r" % (p.returncode, err))


def watch_seq(node):
    metrics = h.http("GET", node.url("/metrics"))[1].decode()
    return int(re.search(r"^scuttle_watch_log_sequence (\d+)$", metrics, re.M).group(1))


def watchers(node):
    metrics = h.http("GET", node.url("/metrics"))[1].decode()
    return int(re.search(r"^scuttle_watchers (\d+)$", metrics, re.M).group(1))


def check_watch_cut(ctl, node, *argv):
    """A watch whose server gets SIGTERM exits 3, says the stream ended or was cut, and names
    the --since that continues it: the last event printed, else the sequence it started
    after."""
    before = watch_seq(node)
    # Unbuffered: the first line read here must leave the rest for communicate().
    p = subprocess.Popen([ctl.path, "--addr", node.admin_addr, "watch"] + list(argv),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        if "--since" in argv:  # events to replay: the stream is live once one is printed
            ready = select.select([p.stdout], [], [], REPLICATE_BOUND)[0]
            out = [p.stdout.readline().decode()] if ready else []
            check(out and out[0], "watch printed nothing within %ss" % REPLICATE_BOUND)
        else:  # on a node no other watch used, so the gauge counts this stream alone
            out = []
            wait_until(lambda: watchers(node) == 1, REPLICATE_BOUND,
                       "the watch stream on %s" % node.name)
        after = watch_seq(node)
        check(node.sigterm() == 0, "%s exit code" % node.name)
        rest, err = p.communicate(timeout=20)
        out, err = out + rest.decode().splitlines(), err.decode()
        log("watch %s cut: %d %r" % (" ".join(argv), p.returncode, err.strip()))
        m = re.search(r"the watch stream from %s (ended|was cut) .* after (\d+) events?; "
                      r"resume with --since (\d+)$" % re.escape(node.admin_addr), err.strip())
        check(p.returncode == 3 and m and err.count("\n") == 1,
              "watch after server exit: %d %r" % (p.returncode, err))
        check(int(m.group(2)) == len(out), "events counted: %r vs %r" % (err, out))
        resume = int(m.group(3))
        if out:
            check(resume == int(out[-1].split()[0]), "resume from the last event: %r %r"
                  % (err, out[-1]))
        elif "--since" in argv:
            since = int(argv[argv.index("--since") + 1])
            check(resume == since, "resume from --since %d: %r" % (since, err))
        else:
            check(before <= resume <= after, "resume from the start: %d not in [%d, %d]"
                  % (resume, before, after))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def main():
    ap = h.base_args(__doc__)
    ap.add_argument("--ctl", required=True, help="path to scuttlectl")
    args = ap.parse_args()
    if not os.path.exists(args.ctl):
        print("scuttlectl binary %s does not exist" % args.ctl)
        return 1
    return h.run(test, args)


if __name__ == "__main__":
    sys.exit(main())
