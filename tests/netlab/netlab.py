"""netlab: real scuttled processes on a real (virtual) network. Python 3 stdlib only.

Topology (docs/netlab.md): one network namespace per node (`eth0`, 10.15.0.(10+i)/24,
lo), all joined by veth pairs to a Linux bridge `br0` that lives in a namespace of its
own (the "switch"). Nothing is addressed in the host's namespace: the test process
reaches a node's admin API (127.0.0.1:7480 inside the node's namespace) through sockets
it creates inside that namespace (setns(2) on the calling thread, then back).

Faults are applied from the outside, on the switch:
  - loss, partitions (full or one-way): nftables rules in a `bridge` table on the
    switch's forward hook, per (from, to) port pair (`numgen random mod 100 < P drop`);
  - bandwidth: tc `tbf` on both ends of a node's veth;
  - MTU: every veth and the bridge (1,500 or 9,000);
  - delay and jitter: this kernel has no netem, so a delaying UDP relay (relay.py) runs
    in the switch namespace. With `delay=True` every node advertises (and is seeded
    with) a relay address 10.15.0.(100+i):7400 instead of its own; the relay forwards a
    datagram from node j to node i after delay(j, i), sending it from j's relay address
    so replies take the relay too. The relay is used even where a kernel has netem (so
    every machine measures the same thing). Relay traffic crosses the switch's input
    and output hooks, not forward: partitions block it (input rules), loss rules do not.
  - processes: SIGSTOP/SIGCONT, kill -9, restart (new generation, same address).

Cleanup: every namespace is named s15-<pid>-<role>; Lab.close() (run in a finally, an
atexit hook and the harness's signal handlers) deletes them, which also removes the
veths, rules and qdiscs; children die with the test (PR_SET_PDEATHSIG). At start,
namespaces s15-<pid>-* whose <pid> is no longer running are removed (stale runs).
"""

import atexit
import ctypes
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import HttpError, ProcessExited, WaitTimeout, check, log, wait_until  # noqa: E402,F401

PREFIX = "s15-"
SUBNET = "10.15.0."
NODE_IP0 = 10      # node i: 10.15.0.(10+i)
RELAY_IP0 = 100    # node i's relay address: 10.15.0.(100+i)
GOSSIP_PORT = 7400
ADMIN_PORT = 7480
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def sh(*argv, check_rc=True, input=None):
    r = subprocess.run(list(argv), input=input, capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                                 (r.stderr or r.stdout).strip()))
    return r


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: %s" % os.strerror(e))


_HOME_NS = None


def ns_socket(ns, family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A socket created inside network namespace `ns` (it stays there for its lifetime)."""
    global _HOME_NS
    if _HOME_NS is None:
        _HOME_NS = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        _setns(fd)
        try:
            return socket.socket(family, kind)
        finally:
            _setns(_HOME_NS)
    finally:
        os.close(fd)


class NsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, ns, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self.ns = ns

    def connect(self):
        s = ns_socket(self.ns)
        s.settimeout(self.timeout)
        try:
            s.connect((self.host, self.port))
        except BaseException:
            s.close()
            raise
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s


def ns_http(ns, method, path, body=None, timeout=5.0, port=ADMIN_PORT):
    """(status, parsed JSON or raw bytes) of one admin request inside namespace ns."""
    c = NsHTTPConnection(ns, "127.0.0.1", port, timeout)
    try:
        data = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": "application/octet-stream"} if data is not None else {}
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        status, raw = r.status, r.read()
    finally:
        c.close()
    try:
        return status, json.loads(raw.decode() or "null")
    except (ValueError, UnicodeDecodeError):
        return status, raw


def netns_supported():
    """None when namespaces, veth, bridges and nftables work here; else why not."""
    if os.geteuid() != 0:
        return "not root (netlab needs CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    for tool in ("ip", "nft", "tc"):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "/usr/sbin:/sbin").split(":") + ["/usr/sbin", "/sbin"]):
            return "`%s` is not installed" % tool
    name = "%s%d-probe" % (PREFIX, os.getpid())
    r = sh("ip", "netns", "add", name, check_rc=False)
    if r.returncode != 0:
        return "cannot create a network namespace: %s" % r.stderr.strip()
    try:
        r = sh("ip", "-n", name, "link", "add", "p0", "type", "veth", "peer", "name", "p1",
               check_rc=False)
        if r.returncode != 0:
            return "no veth support: %s" % r.stderr.strip()
        r = sh("ip", "-n", name, "link", "add", "b0", "type", "bridge", check_rc=False)
        if r.returncode != 0:
            return "no bridge support: %s" % r.stderr.strip()
        r = sh("ip", "netns", "exec", name, "nft", "add", "table", "bridge", "probe",
               check_rc=False)
        if r.returncode != 0:
            return "no nftables bridge family: %s" % r.stderr.strip()
    finally:
        sh("ip", "netns", "del", name, check_rc=False)
    return None


def cleanup_stale():
    """Deletes s15-<pid>-* namespaces left by runs whose process is gone."""
    r = sh("ip", "netns", "list", check_rc=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(re.escape(PREFIX) + r"(\d+)-", name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            sh("ip", "netns", "del", name, check_rc=False)


def _preexec_in_ns(ns):
    path = "/run/netns/" + ns

    def fn():
        fd = os.open(path, os.O_RDONLY)
        _setns(fd)
        os.close(fd)
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the test
    return fn


class NetNode(harness.Node):
    """A scuttled in its own namespace. Reuses harness.Node's admin helpers (put, get,
    kv, members, states, stats...) over ns_http."""

    def __init__(self, lab, index, flags):
        super().__init__(lab, "n%d" % index, GOSSIP_PORT, flags)
        self.lab = lab
        self.index = index
        self.ns = "%s%d-n%d" % (PREFIX, lab.pid, index)
        self.ip = SUBNET + str(NODE_IP0 + index)
        self.relay_ip = SUBNET + str(RELAY_IP0 + index)
        self.host = self.ip
        self.paused = False

    @property
    def gossip_addr(self):  # what peers use: the relay's address when delays are on
        return "%s:%d" % (self.relay_ip if self.lab.delay else self.ip, GOSSIP_PORT)

    @property
    def admin_addr(self):
        return "127.0.0.1:%d" % ADMIN_PORT

    def argv(self):
        f = dict(self.flags)
        f["node_name"] = self.name
        f["listen_addr"] = "%s:%d" % (self.ip, GOSSIP_PORT)
        f["advertise_addr"] = self.gossip_addr
        f["admin_addr"] = self.admin_addr
        f["io"] = self.lab.io
        return [self.lab.bin] + ["--%s=%s" % (k, v) for k, v in f.items() if v is not None]

    def start(self, wait=True, **flag_overrides):
        check(not self.alive(), "%s already running" % self.name)
        self.flags.update({k: str(v) for k, v in flag_overrides.items()})
        self.starts += 1
        self.paused = False
        self.log_path = os.path.join(self.lab.dir, "%s.%d.log" % (self.name, self.starts))
        self.log_file = open(self.log_path, "wb")
        argv = self.argv()
        self.log_file.write(("$ ip netns exec %s %s\n" % (self.ns, " ".join(argv))).encode())
        self.log_file.flush()
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_preexec_in_ns(self.ns))
        harness._ALL_PROCS.add(self.proc)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        def ready():
            if self.proc.poll() is not None:
                raise ProcessExited(self)
            st, body = self.request("GET", "/healthz", timeout=1.0)
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

    def request(self, method, path, body=None, timeout=5.0, **query):
        import urllib.parse
        q = {k: v for k, v in query.items() if v is not None}
        if q:
            path += "?" + urllib.parse.urlencode(q)
        return ns_http(self.ns, method, path, body, timeout)

    def open_socket(self):
        return ns_socket(self.ns)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def running(self):
        return self.alive() and not self.paused

    def __repr__(self):
        return "NetNode(%s %s)" % (self.name, self.ip)


class Lab:
    """N namespaces on one bridge, faults, and the nodes. Use as a context manager."""

    def __init__(self, bin, n, io="epoll", mtu=1500, delay=False, keep=False, **flags):
        self.bin = os.path.abspath(bin)
        self.io = io
        self.n = n
        self.mtu = mtu
        self.delay = delay
        self.keep = keep
        self.pid = os.getpid()
        self.switch = "%s%d-sw" % (PREFIX, self.pid)
        self.dir = tempfile.mkdtemp(prefix="scuttle-netlab-")
        self.cluster_id = "netlab-%d" % self.pid
        self.host = SUBNET + str(NODE_IP0)
        self.flags = dict(harness.FAST_FLAGS)
        self.flags["cluster_id"] = self.cluster_id
        self.flags.update({k: str(v) for k, v in flags.items()})
        self.nodes = []
        self.namespaces = []
        self.relay = None
        self.loss = {}        # (i, j) -> percent, i -> j
        self.blocked = set()  # (i, j): i -> j dropped
        self.shaped = set()   # nodes with a tbf on their veth
        self.events = []      # (t, what) fault timeline
        # Fault intervals for the checker: {"kind": block|pause|down|stall, "pairs"|"nodes"
        # (a stall of the relay: every pair), "start", "end" (None while active), times in
        # seconds since t0.
        self.intervals = []
        self.closed = False
        self.t0 = time.monotonic()
        _LABS.append(self)

    # -- topology
    def __enter__(self):
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.keep = True
        self.close()
        return False

    def _addns(self, name):
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def build(self):
        cleanup_stale()
        self._addns(self.switch)
        sw = self.switch
        sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", sw, "link", "set", "br0", "mtu", str(self.mtu))
        for i in range(self.n):
            node = NetNode(self, i, self.flags)
            self._addns(node.ns)
            sh("ip", "link", "add", "v%d" % i, "netns", sw, "mtu", str(self.mtu), "type", "veth",
               "peer", "name", "eth0", "netns", node.ns, "mtu", str(self.mtu))
            sh("ip", "-n", sw, "link", "set", "v%d" % i, "master", "br0", "up")
            sh("ip", "-n", node.ns, "addr", "add", node.ip + "/24", "dev", "eth0")
            sh("ip", "-n", node.ns, "link", "set", "eth0", "up")
            self.nodes.append(node)
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        # The bridge must not add latency by waiting to learn ports.
        sh("ip", "-n", sw, "link", "set", "br0", "type", "bridge", "forward_delay", "0",
           "stp_state", "0", check_rc=False)
        self._apply_nft()
        if self.delay:
            for i in range(self.n):
                sh("ip", "-n", sw, "addr", "add", "%s%d/24" % (SUBNET, RELAY_IP0 + i), "dev", "br0")
            self.relay = Relay(self)
        self.mark("built %d namespaces, mtu %d%s" % (self.n, self.mtu,
                                                     ", delay relay" if self.delay else ""))

    def mark(self, what):
        t = round(time.monotonic() - self.t0, 3)
        self.events.append((t, what))
        log("lab: " + what)

    def now(self):
        return time.monotonic() - self.t0

    # -- faults
    def _apply_nft(self):
        rules = []
        for (i, j) in sorted(self.blocked):
            rules.append('iifname "v%d" oifname "v%d" drop' % (i, j))
        for (i, j), p in sorted(self.loss.items()):
            if p > 0:
                rules.append('iifname "v%d" oifname "v%d" numgen random mod 100 < %d drop'
                             % (i, j, p))
        # Relay traffic goes to the switch itself (input) and out of it (output).
        for (i, j) in sorted(self.blocked):
            rules_in = 'iifname "v%d" ip daddr %s%d drop' % (i, SUBNET, RELAY_IP0 + j)
            rules.append("__in " + rules_in)
        fwd = "\n    ".join(r for r in rules if not r.startswith("__in "))
        inp = "\n    ".join(r[5:] for r in rules if r.startswith("__in "))
        text = """flush ruleset
table bridge netlab {
  chain links { type filter hook forward priority 0; policy accept;
    %s
  }
  chain to_switch { type filter hook input priority 0; policy accept;
    %s
  }
}
""" % (fwd, inp)
        sh("ip", "netns", "exec", self.switch, "nft", "-f", "-", input=text)

    def set_loss(self, percent, pairs=None):
        """Random loss on every directed link (or the given (i, j) pairs)."""
        pairs = pairs or [(i, j) for i in range(self.n) for j in range(self.n) if i != j]
        for p in pairs:
            self.loss[p] = int(percent)
        self._apply_nft()
        self.mark("loss %d%% on %d links" % (percent, len(pairs)))

    def partition(self, side_a, side_b, one_way=False):
        """Drops everything from side_a to side_b (and back unless one_way)."""
        for i in side_a:
            for j in side_b:
                self.blocked.add((i, j))
                if not one_way:
                    self.blocked.add((j, i))
        self.intervals.append({"kind": "block", "pairs": set(self.blocked), "start": self.now(),
                               "end": None})
        self._apply_nft()
        self.mark("partition %s %s %s" % (sorted(side_a), "->" if one_way else "|",
                                          sorted(side_b)))

    def _close(self, kind, node=None):
        for iv in self.intervals:
            if iv["kind"] == kind and iv["end"] is None and (node is None or node in iv["nodes"]):
                iv["end"] = self.now()

    def heal(self):
        self._close("block")
        self.blocked.clear()
        self.loss.clear()
        self._apply_nft()
        if self.relay:
            self.relay.set_delays({})
        for node in sorted(self.shaped):
            for ns, dev in ((self.switch, "v%d" % node), (self.nodes[node].ns, "eth0")):
                sh("tc", "-n", ns, "qdisc", "del", "dev", dev, "root", check_rc=False)
        self.shaped.clear()
        self.mark("heal")

    def reachable(self, i, j):
        return (i, j) not in self.blocked and (j, i) not in self.blocked

    def set_bandwidth(self, node, kbit, burst_bytes=32768):
        """tbf both ways on node's veth."""
        for ns, dev in ((self.switch, "v%d" % node), (self.nodes[node].ns, "eth0")):
            sh("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate",
               "%dkbit" % kbit, "burst", str(burst_bytes), "latency", "200ms")
        self.shaped.add(node)
        self.mark("bandwidth %d kbit/s on n%d" % (kbit, node))

    def set_delay(self, fn):
        """fn(i, j) -> (delay_ms, jitter_ms) for datagrams i -> j (needs delay=True)."""
        check(self.relay is not None, "Lab(delay=True) is needed for delays")
        self.relay.set_delays({(i, j): fn(i, j) for i in range(self.n) for j in range(self.n)
                               if i != j})
        self.mark("delay set")

    def link_counters(self):
        """{'v<i>': (rx_packets, tx_packets, rx_bytes, tx_bytes)} at the switch ports."""
        out = {}
        r = sh("ip", "-n", self.switch, "-j", "-s", "link", "show")
        for dev in json.loads(r.stdout):
            name = dev.get("ifname", "")
            if re.fullmatch(r"v\d+", name):
                s = dev["stats64"]
                out[name] = (s["rx"]["packets"], s["tx"]["packets"], s["rx"]["bytes"],
                             s["tx"]["bytes"])
        return out

    # -- nodes
    def start_all(self, **flags):
        for i, node in enumerate(self.nodes):
            seeds = self.nodes[:min(i, 3)] if i else []
            node.flags["seeds"] = ",".join(s.gossip_addr for s in seeds) or None
            node.flags.update({k: str(v) for k, v in flags.items()})
            node.start()
        self.mark("started %d nodes" % len(self.nodes))

    def running(self):
        return [n for n in self.nodes if n.alive()]

    def kill9(self, node):
        node.kill9()
        self.intervals.append({"kind": "down", "nodes": {node.index}, "start": self.now(),
                               "end": None})
        self.mark("kill -9 %s" % node.name)

    def restart(self, node):
        node.start()
        self._close("down", node.index)
        self.mark("restarted %s" % node.name)

    def pause(self, node):
        node.pause()
        self.intervals.append({"kind": "pause", "nodes": {node.index}, "start": self.now(),
                               "end": None})
        self.mark("SIGSTOP %s" % node.name)

    def resume(self, node):
        node.resume()
        self._close("pause", node.index)
        self.mark("SIGCONT %s" % node.name)

    def dump_logs(self, limit=60_000):
        for n in self.nodes:
            for k in range(1, n.starts + 1):
                p = os.path.join(self.dir, "%s.%d.log" % (n.name, k))
                if not os.path.exists(p):
                    continue
                with open(p, "rb") as f:
                    data = f.read()
                print("----- log %s.%d (%d bytes) -----" % (n.name, k, len(data)))
                if len(data) > limit:
                    data = b"...\n" + data[-limit:]
                sys.stdout.write(data.decode(errors="replace"))
        sys.stdout.flush()

    def note_relay_stalls(self):
        """The relay's own freezes (relay.py STALL_S) as fault intervals on every pair, so
        the checker does not blame the nodes for the network the test stopped; returns
        them as [(start, seconds)] for the figures."""
        if not self.relay:
            return []
        out = []
        for start, end in self.relay.stalls():
            start, end = start - self.t0, end - self.t0
            self.intervals.append({"kind": "stall", "start": start, "end": end})
            self.events.append((round(start, 3), "relay stalled %.3f s" % (end - start)))
            out.append((round(start, 3), round(end - start, 3)))
        if out:
            log("lab: the relay stalled (machine load): %r" % out)
        return out

    def close(self):
        if self.closed:
            return
        self.closed = True
        harness.stop_nodes(self.nodes, resume_first=True)
        if self.relay:
            self.relay.close()
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check_rc=False)
        self.namespaces = []
        if not self.keep:
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)


_LABS = []


def _close_all():
    for lab in _LABS:
        try:
            lab.close()
        except Exception:  # noqa: BLE001
            pass


atexit.register(_close_all)
# harness's SIGTERM/SIGINT handler calls its _kill_all and then sys.exit, which runs
# atexit, which closes the labs (namespaces included).


class Relay:
    """Runs relay.py in the switch namespace; delays are pushed over its stdin."""

    def __init__(self, lab):
        self.lab = lab
        spec = ",".join("%s%d:%d=%s:%d" % (SUBNET, RELAY_IP0 + i, GOSSIP_PORT, n.ip, GOSSIP_PORT)
                        for i, n in enumerate(lab.nodes))
        here = os.path.dirname(os.path.abspath(__file__))
        self.log = open(os.path.join(lab.dir, "relay.log"), "wb")
        in_ns = _preexec_in_ns(lab.switch)

        def preexec():
            in_ns()
            # The relay is the network: ahead of the load it carries (root, as netlab is),
            # so a busy machine stalls it less often; stalls left are measured (stalls()).
            try:
                os.setpriority(os.PRIO_PROCESS, 0, -10)
            except OSError:
                pass
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(here, "relay.py"), "--map", spec],
            stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=preexec)
        harness._ALL_PROCS.add(self.proc)
        self.set_delays({})

    def set_delays(self, delays):
        """{(i, j): (ms, jitter_ms)}; pairs absent: no delay."""
        msg = {"%d,%d" % k: list(v) for k, v in delays.items()}
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def stats(self):
        return None

    def stalls(self):
        """[(due, sent)] of every `stall` line the relay printed (monotonic seconds)."""
        self.log.flush()
        out = []
        with open(self.log.name, "rb") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] == b"stall":
                    out.append((float(parts[1]), float(parts[2])))
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
