"""Multi-process test harness for scuttled (DESIGN §11). Python 3 stdlib only.

Starts real `scuttled` processes on loopback, each with its own gossip UDP port, admin TCP
port and log file, talks to their admin API, and kills/terminates/restarts them. Every
wait is a poll against a deadline (`wait_until`); nothing sleeps blindly.

Ports: each node takes one port number P and uses UDP P for gossip and TCP P for the
admin API. P is drawn at random below the kernel's ephemeral range, locked with flock()
on a file in $TMPDIR/scuttle-itest-ports (so concurrent ctest jobs never pick the same
one) and probed by binding both sockets; if scuttled still exits 1 (busy port, some
unrelated process), the node is retried on another port.

Cleanup: every child is killed (SIGKILL) on Cluster.close(), which tests run in a
finally; an atexit hook and SIGTERM/SIGINT/SIGHUP handlers catch the rest, so a ctest
timeout does not leak daemons.
"""

import argparse
import atexit
import base64
import errno
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

SKIP = 77  # ctest SKIP_RETURN_CODE

# Fast settings: the defaults of every node unless a test overrides them.
FAST_FLAGS = {
    "gossip_interval_ms": "100",
    "fanout": "3",
    "phi_threshold": "8",
    "phi_initial_interval_ms": "300",
    "phi_max_interval_ms": "2000",
    "dead_node_grace": "5s",
    "log_level": "info",
}

_ALL_PROCS = set()  # every Popen started here, for the atexit/signal cleanup


def _die_with_parent():
    """In the child before exec: SIGKILL it when the test process dies, even by SIGKILL
    (a ctest timeout), which no atexit hook survives."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; atexit/signal cleanup still apply
        pass


def log(*args):
    print("[%8.3f]" % (time.monotonic() - _T0), *args, flush=True)


_T0 = time.monotonic()


class WaitTimeout(AssertionError):
    pass


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns a truthy value (returned) or the deadline passes.

    AssertionError (a check() inside the predicate) fails at once; any other exception
    (connection refused, HTTP error, a node restarting) counts as "not yet" and the last
    one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = predicate()
            if v:
                return v
            last = v
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - a poll may hit a starting node
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() >= deadline:
            raise WaitTimeout("timed out after %.1fs waiting for %s (last: %r)"
                              % (timeout, what, last))
        time.sleep(interval)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---- ports --------------------------------------------------------------------------------

def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class PortLocks:
    """Hands out port numbers free for both UDP and TCP on 127.0.0.1, flock-reserved."""

    def __init__(self):
        self.dir = os.path.join(tempfile.gettempdir(), "scuttle-itest-ports")
        os.makedirs(self.dir, exist_ok=True)
        self.held = {}  # port -> fd
        hi = min(_ephemeral_low(), 65536) - 1
        self.lo, self.hi = 20000, max(hi, 20500)

    @staticmethod
    def _probe(port):
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                if kind == socket.SOCK_STREAM:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
            finally:
                s.close()
        return True

    def take(self):
        for _ in range(2000):
            port = random.randint(self.lo, self.hi)
            if port in self.held:
                continue
            fd = os.open(os.path.join(self.dir, str(port)), os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            if self._probe(port):
                self.held[port] = fd
                return port
            os.close(fd)
        raise RuntimeError("no free port found")

    def take_range(self, n):
        """n consecutive ports, each free and locked (for tools that number ports from a
        base, like tools/demo)."""
        for _ in range(200):
            base = random.randint(self.lo, self.hi - n)
            got = []
            for p in range(base, base + n):
                fd = os.open(os.path.join(self.dir, str(p)), os.O_CREAT | os.O_RDWR, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    break
                if not self._probe(p):
                    os.close(fd)
                    break
                self.held[p] = fd
                got.append(p)
            if len(got) == n:
                return base
            for p in got:
                self.release(p)
        raise RuntimeError("no %d consecutive free ports found" % n)

    def release(self, port):
        fd = self.held.pop(port, None)
        if fd is not None:
            os.close(fd)

    def release_all(self):
        for p in list(self.held):
            self.release(p)


# ---- HTTP -----------------------------------------------------------------------------------

class HttpError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body))
        self.status = status
        self.body = body


def http(method, url, body=None, timeout=5.0, token=None):
    """Returns (status, parsed JSON or raw text). Never raises for HTTP error statuses.
    token: the admin bearer token (scuttled --admin_token_file)."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw.decode() or "null")
    except (ValueError, UnicodeDecodeError):
        return status, raw


def entry_value(e):
    """The value of a kv entry as bytes (the API uses "value" or "value_base64")."""
    if e is None:
        return None
    if "value_base64" in e:
        return base64.b64decode(e["value_base64"])
    return e["value"].encode()


# ---- nodes ----------------------------------------------------------------------------------

class Node:
    def __init__(self, cluster, name, port, flags):
        self.cluster = cluster
        self.name = name
        self.port = port          # gossip UDP port (and the first admin TCP port)
        self.admin_port = port
        self.flags = dict(flags)
        self.proc = None
        self.log_path = None
        self.log_file = None
        self.starts = 0
        self.exit_codes = []
        # Gossip host advertised to peers (and bound, unless listen_host is set): IPv6
        # literals work ("::1"); listen_host "::" binds dual-stack.
        self.host = cluster.host
        self.listen_host = None
        self.token = None  # admin bearer token, when started with --admin_token_file

    # -- addresses
    @staticmethod
    def _hostport(host, port):
        return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)

    @property
    def gossip_addr(self):
        return self._hostport(self.host, self.port)

    @property
    def admin_addr(self):
        return "127.0.0.1:%d" % self.admin_port

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- process control
    def argv(self):
        f = dict(self.flags)
        f["node_name"] = self.name
        f["listen_addr"] = self._hostport(self.listen_host or self.host, self.port)
        f["advertise_addr"] = self.gossip_addr
        f["admin_addr"] = self.admin_addr
        f["io"] = self.cluster.io
        argv = [self.cluster.bin]
        for k, v in f.items():
            if v is None:
                continue
            argv.append("--%s=%s" % (k, v))
        return argv

    def start(self, wait=True, new_admin_port=False, **flag_overrides):
        """Starts (or restarts) the process. flag_overrides replace flags for this and later
        starts (e.g. generation=5, seeds=...). new_admin_port: serve the admin API on a fresh
        port (the gossip address stays), so a restart does not depend on the old admin
        port's TIME_WAIT connections (see cluster_test.py case_cli)."""
        check(not self.alive(), "%s already running" % self.name)
        if new_admin_port:
            self.admin_port = self.cluster.ports.take()
        self.flags.update(flag_overrides)
        self.starts += 1
        self.log_path = os.path.join(self.cluster.dir, "%s.%d.log" % (self.name, self.starts))
        self.log_file = open(self.log_path, "wb")
        argv = self.argv()
        self.log_file.write(("$ " + " ".join(argv) + "\n").encode())
        self.log_file.flush()
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        _ALL_PROCS.add(self.proc)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        def ready():
            if self.proc.poll() is not None:
                raise ProcessExited(self)
            st, body = http("GET", self.url("/healthz"), timeout=1.0, token=self.token)
            return st == 200 and isinstance(body, dict) and body.get("status") == "ok"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except ProcessExited:
                raise
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            if time.monotonic() > deadline:
                raise WaitTimeout("%s not healthy after %ss" % (self.name, timeout))
            time.sleep(0.03)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.exit_codes.append(self.proc.wait(10))
        self.log_file.close()

    def sigterm(self, timeout=10):
        """Sends SIGTERM and returns the exit code (asserting it exits within timeout)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s did not exit within %ss of SIGTERM" % (self.name, timeout))
        self.exit_codes.append(rc)
        self.log_file.close()
        return rc

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    # -- admin API
    def url(self, path, **query):
        q = {k: v for k, v in query.items() if v is not None}
        u = "http://%s%s" % (self.admin_addr, path)
        if q:
            u += "?" + urllib.parse.urlencode(q)
        return u

    def request(self, method, path, body=None, timeout=5.0, **query):
        return http(method, self.url(path, **query), body, timeout, token=self.token)

    def _ok(self, method, path, body=None, **query):
        st, js = self.request(method, path, body, **query)
        if st != 200:
            raise HttpError(st, js)
        return js

    def healthz(self):
        return self._ok("GET", "/healthz")

    def members(self):
        """name -> member dict (as in GET /v1/members)."""
        js = self._ok("GET", "/v1/members")
        return {m["name"]: m for m in js["members"]}

    def states(self):
        return {n: m["state"] for n, m in self.members().items()}

    def put(self, key, value, ttl=None):
        return self._ok("PUT", "/v1/kv/" + urllib.parse.quote(key, safe=""), value, ttl=ttl)

    def delete(self, key):
        st, js = self.request("DELETE", "/v1/kv/" + urllib.parse.quote(key, safe=""))
        if st == 404:
            return None
        if st != 200:
            raise HttpError(st, js)
        return js

    def get(self, key, node=None):
        """The entry of `key` owned by `node` (default: this node), or None when 404."""
        st, js = self.request("GET", "/v1/kv/" + urllib.parse.quote(key, safe=""),
                              node=node or self.name)
        if st == 404:
            return None
        if st != 200:
            raise HttpError(st, js)
        return js

    def kv(self, prefix=None, node=None):
        return self._ok("GET", "/v1/kv", prefix=prefix, node=node)["entries"]

    def stats(self):
        return self._ok("GET", "/v1/debug/stats")

    def __repr__(self):
        return "Node(%s @%d)" % (self.name, self.port)


class ProcessExited(Exception):
    def __init__(self, node):
        super().__init__("%s exited with code %s" % (node.name, node.proc.poll()))
        self.node = node
        self.code = node.proc.poll()


class Cluster:
    """A set of scuttled processes sharing a temp dir, cluster id and fast settings."""

    def __init__(self, bin, io, cluster_id=None, keep=False, host="127.0.0.1", **flags):
        self.bin = os.path.abspath(bin)
        self.io = io
        self.host = host  # gossip host of new nodes (Node.host)
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="scuttle-itest-")
        self.ports = PortLocks()
        self.cluster_id = cluster_id or "itest-%d-%d" % (os.getpid(), random.randint(0, 1 << 30))
        self.flags = dict(FAST_FLAGS)
        self.flags["cluster_id"] = self.cluster_id
        self.flags.update({k: str(v) for k, v in flags.items()})
        self.nodes = []
        self.closed = False
        _CLUSTERS.append(self)

    # -- membership of the harness
    def seeds_of(self, nodes):
        return ",".join(n.gossip_addr for n in nodes)

    def add(self, name=None, seeds=None, start=True, host=None, listen_host=None, **flags):
        """Creates (and by default starts) a node. seeds: list of Nodes (default: the first
        node, unless this is the first)."""
        name = name or "n%02d" % len(self.nodes)
        if seeds is None:
            seeds = self.nodes[:1]
        f = dict(self.flags)
        f["seeds"] = self.seeds_of(seeds) if seeds else None
        f.update({k: (None if v is None else str(v)) for k, v in flags.items()})
        # --shards N: shard s listens on gossip port + s (docs/shards.md), so a node needs
        # N consecutive free ports.
        span = int(f.get("shards") or 1)
        for attempt in range(5):
            node = Node(self, name, self.ports.take() if span == 1 else self.ports.take_range(span), f)
            node.host = host or self.host
            node.listen_host = listen_host
            self.nodes.append(node)
            if not start:
                return node
            try:
                return node.start()
            except ProcessExited as e:
                self.nodes.remove(node)
                node.log_file.close()
                if e.code == 1 and attempt < 4:  # busy port raced us: another port
                    log("%s: exit 1 on port %d, retrying" % (name, node.port))
                    self.ports.release(node.port)
                    continue
                self.dump_node_log(node)
                raise

    def start_many(self, n, prefix="n", seeds_count=3, **flags):
        """Starts n nodes named prefix00..; every node seeds from the first seeds_count."""
        first = len(self.nodes)
        out = []
        for i in range(n):
            seeds = self.nodes[first:first + min(seeds_count, i)] if i else []
            out.append(self.add("%s%02d" % (prefix, first + i), seeds=seeds, **flags))
        return out

    def running(self):
        return [n for n in self.nodes if n.alive()]

    # -- convergence helpers
    def wait_members(self, nodes=None, expect=None, state="alive", timeout=20, what=None):
        """Waits until every node in `nodes` (default: running) sees every node in `expect`
        (default: the same set) in `state`."""
        nodes = nodes or self.running()
        expect = expect or nodes
        names = {n.name for n in expect}

        def ok():
            for n in nodes:
                st = n.states()
                for name in names:
                    if st.get(name) != state:
                        return False
            return True
        return wait_until(ok, timeout, what or "%d nodes see %s %s"
                          % (len(nodes), sorted(names), state))

    def wait_value(self, owner, key, value, nodes=None, timeout=20):
        """Waits until every node has owner's `key` = value (value None: absent/deleted)."""
        nodes = nodes or self.running()
        want = None if value is None else (value.encode() if isinstance(value, str) else value)

        def ok():
            return all(entry_value(n.get(key, node=owner.name)) == want for n in nodes)
        return wait_until(ok, timeout, "%s's %s = %r on %d nodes"
                          % (owner.name, key, value, len(nodes)), interval=0.02)

    # -- diagnostics and cleanup
    def dump_node_log(self, node, limit=200_000):
        if not node.log_path or not os.path.exists(node.log_path):
            return
        with open(node.log_path, "rb") as f:
            data = f.read()
        print("----- log %s (%s, %d bytes) -----" % (node.name, node.log_path, len(data)))
        if len(data) > limit:
            data = b"...\n" + data[-limit:]
        sys.stdout.write(data.decode(errors="replace"))
        print("----- end %s -----" % node.name, flush=True)

    def dump_logs(self):
        seen = set()
        for n in self.nodes:
            # every incarnation's log
            for i in range(1, n.starts + 1):
                p = os.path.join(self.dir, "%s.%d.log" % (n.name, i))
                if p in seen:
                    continue
                seen.add(p)
                n.log_path = p
                self.dump_node_log(n)

    def close(self):
        if self.closed:
            return
        self.closed = True
        stop_nodes(self.nodes)
        self.ports.release_all()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)



def stop_nodes(nodes, resume_first=False):
    """Kills every node process still running and closes its log. resume_first sends
    SIGCONT first, for a node a test left paused with SIGSTOP."""
    for n in nodes:
        if n.proc and n.proc.poll() is None:
            try:
                if resume_first:
                    n.proc.send_signal(signal.SIGCONT)
                n.proc.kill()
                n.proc.wait(10)
            except Exception:  # noqa: BLE001
                pass
        if n.log_file and not n.log_file.closed:
            n.log_file.close()

_CLUSTERS = []


def _kill_all():
    for c in _CLUSTERS:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass
    for p in list(_ALL_PROCS):
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass


atexit.register(_kill_all)


def _on_signal(signum, _frame):
    _kill_all()
    sys.exit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


# ---- false-positive monitor -------------------------------------------------------------------

class FlapMonitor:
    """Polls every node's member list in a background thread and records each time a node
    the test considers healthy is shown as anything but alive. Use as a context manager;
    `healthy` is a callable returning the names that must be alive right now (default: the
    running nodes)."""

    def __init__(self, cluster, healthy=None, interval=0.03):
        self.cluster = cluster
        self.healthy = healthy or (lambda: {n.name for n in cluster.running()})
        self.interval = interval
        self.events = []  # (seconds, observer, subject, state)
        self.polls = 0
        self._stop = None
        self._thread = None
        self._t0 = None

    def __enter__(self):
        import threading
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            ok_names = self.healthy()
            for n in list(self.cluster.running()):
                if n.name not in ok_names:
                    continue
                try:
                    st = n.states()
                except Exception:  # noqa: BLE001 - a node being stopped
                    continue
                for subject, state in st.items():
                    if subject in ok_names and state != "alive" and subject in self.healthy():
                        self.events.append((round(time.monotonic() - self._t0, 3), n.name,
                                            subject, state))
            self.polls += 1
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if exc[0] is not None and self.events:
            log("meanwhile, healthy nodes were shown non-alive %d times, e.g. %r"
                % (len(self.events), self.events[:10]))
        return False

    def false_states(self, states=("dead", "suspect", "left")):
        return [e for e in self.events if e[3] in states]

    def assert_no_false_dead(self, what):
        bad = self.false_states(("dead", "left"))
        sus = self.false_states(("suspect",))
        log("%s: %d member polls, %d false dead/left, %d false suspect observations"
            % (what, self.polls, len(bad), len(sus)))
        check(not bad, "%s: healthy nodes shown dead/left (t, observer, subject, state): %r"
              % (what, bad[:20]))


# ---- stats helpers ----------------------------------------------------------------------------

def flat_counters(d, prefix=""):
    """Flattens nested stats into {"a.b.c": number}."""
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flat_counters(v, prefix + k + "."))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix[:-1]] = d
    return out


# ---- runner ---------------------------------------------------------------------------------

def base_args(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--bin", required=True, help="path to scuttled")
    ap.add_argument("--io", default="uring", choices=["auto", "uring", "epoll"])
    ap.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    ap.add_argument("--verbose_logs", action="store_true", help="print node logs on success too")
    return ap


def run(test_fn, args, cluster_kwargs=None):
    """Runs test_fn(cluster, args) with a fresh Cluster; prints all node logs on failure.
    Returns the process exit code (0 ok, 1 fail, 77 skipped)."""
    if not os.path.exists(args.bin):
        print("scuttled binary %s does not exist" % args.bin)
        return 1
    c = Cluster(args.bin, args.io, keep=args.keep, **(cluster_kwargs or {}))
    t0 = time.monotonic()
    try:
        test_fn(c, args)
    except SkipTest as e:
        print("SKIPPED: %s" % e)
        return SKIP
    except BaseException:  # noqa: BLE001 - any failure: logs, then fail
        traceback.print_exc(file=sys.stdout)
        _stop_quietly(c)
        c.dump_logs()
        print("FAILED %s (io=%s) after %.1fs; logs in %s"
              % (test_fn.__name__, args.io, time.monotonic() - t0, c.dir), flush=True)
        c.keep = True
        c.close()
        return 1
    if args.verbose_logs:
        _stop_quietly(c)
        c.dump_logs()
    c.close()
    print("PASSED %s (io=%s) in %.1fs" % (test_fn.__name__, args.io, time.monotonic() - t0),
          flush=True)
    return 0


def _stop_quietly(c):
    for n in c.nodes:
        if n.proc and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait(10)


class SkipTest(Exception):
    pass
