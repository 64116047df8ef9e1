#!/usr/bin/env python3
"""Hostile input against a running scuttled (DESIGN §11, issue 4 "Hostile input").

  python3 tests/integration/hostile_test.py --bin .../scuttled --craft .../scuttle_craft --io epoll

A 3-node cluster; the target is n00. To its gossip port we send: random bytes, truncated
datagrams, 65507-byte junk, valid headers with random payloads, headers with a wrong
magic/version/flags/length, a wrong cluster (hash and id), semantically broken but
verifiable packets (crafted by scuttle_craft), bit-flipped valid packets, BadCluster
messages, and a flood of well-formed Syns. Each batch is paced and its drop counter in
/v1/debug/stats must rise by exactly the number sent (reason by reason). Afterwards the
node must still serve (healthz, PUT/GET), replicate, hold every key written before, and
its RSS must not have grown by more than a bound.
"""

import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, log, wait_until  # noqa: E402

HDR = struct.Struct("<HBBHHII")  # magic, version, flags, shard, reserved, payload_bytes, hash
MAGIC = 0x5343
RSS_BOUND_KB = 64 * 1024


def fnv1a32(s):
    x = 0x811C9DC5
    for b in s.encode():
        x ^= b
        x = (x * 0x01000193) & 0xFFFFFFFF
    return x


class Craft:
    def __init__(self, path, cluster_id, port):
        self.path, self.cluster_id, self.port = path, cluster_id, port

    def decode(self, datagram):
        """(ok, type-or-reason) of one datagram, decoded by wire/'s own decoder."""
        out = subprocess.run([self.path, "--decode"], input=datagram, check=True,
                             stdout=subprocess.PIPE).stdout.decode().split()
        return out[0] == "ok", out[1]

    def __call__(self, **kw):
        kw.setdefault("cluster_id", self.cluster_id)
        kw.setdefault("port", self.port)
        argv = [self.path]
        for k, v in kw.items():
            argv += ["--" + k, str(v)]
        return subprocess.run(argv, check=True, stdout=subprocess.PIPE).stdout


def header(pkt):
    return list(HDR.unpack_from(pkt))


def with_header(pkt, **fields):
    names = ["magic", "version", "flags", "shard", "reserved", "payload_bytes", "cluster_hash"]
    hd = header(pkt)
    for k, v in fields.items():
        hd[names.index(k)] = v
    return HDR.pack(*hd) + pkt[HDR.size:]


class Counters:
    """Reads the target's stats and returns deltas against a baseline."""

    def __init__(self, node):
        self.node = node
        self.base = self.read()

    def read(self):
        return h.flat_counters(self.node.stats())

    def delta(self, key, now=None):
        now = now if now is not None else self.read()
        return now.get(key, 0) - self.base.get(key, 0)

    def rebase(self):
        self.base = self.read()


def run(c, args):
    nodes = c.start_many(3)
    c.wait_members(timeout=15)
    target = nodes[0]
    gossip = ("127.0.0.1", target.port)

    # State that must survive.
    written = {}
    for n in nodes:
        for i in range(20):
            k, v = "keep/%s/%02d" % (n.name, i), "v%d-%s" % (i, n.name)
            written[(n.name, k)] = (v.encode(), n.put(k, v)["version"])
    for (owner, k), (v, _) in written.items():
        c.wait_value(next(n for n in nodes if n.name == owner), k, v)
    st0 = target.stats()
    for sect in ("transport", "engine"):
        check(sect in st0, "stats lacks %r: %r" % (sect, list(st0)))
    for sect in ("packets_in", "decode_drops", "engine_drops"):
        check(sect in st0["engine"], "stats.engine lacks %r: %r" % (sect, list(st0["engine"])))
    rss0 = target.rss_kb()
    log("target %s pid %d RSS %d KiB" % (target.name, target.pid, rss0))

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    my_port = sock.getsockname()[1]
    craft = Craft(args.craft, c.cluster_id, my_port)
    rng = random.Random(args.seed)
    ctr = Counters(target)

    def send_all(dgrams, pace=16):
        for i, d in enumerate(dgrams):
            sock.sendto(d, gossip)
            if pace and i % pace == pace - 1:
                # Let the node drain: loopback drops silently when its buffer is full, and
                # then exact counts would be impossible. A few ms per batch keeps it flowing.
                target_rx_settle()

    def target_rx_settle():
        time.sleep(0.002)

    def expect(key, n, what, exact=True, timeout=10):
        wait_until(lambda: ctr.delta(key) >= n, timeout,
                   "%s: %s to rise by %d (now +%d)" % (what, key, n, ctr.delta(key)))
        got = ctr.delta(key)
        if exact:
            check(got == n, "%s: %s rose by %d, sent %d" % (what, key, got, n))
        log("%-34s -> %s +%d" % (what, key, got))

    def all_decode_drops(now=None):
        now = now if now is not None else ctr.read()
        return sum(ctr.delta(k, now) for k in now if k.startswith("engine.decode_drops."))

    def all_transport_drops(now=None):
        now = now if now is not None else ctr.read()
        return sum(ctr.delta(k, now) for k in now if k.startswith("transport.drops."))

    N = 50
    syn = craft(type="syn", name="hostile", generation=1)
    check(header(syn)[0] == MAGIC and header(syn)[5] == len(syn) - 16, "craft output header")
    check(header(syn)[6] == fnv1a32(c.cluster_id), "FNV-1a 32 of the cluster id in the header")

    # 1. Truncated below the header: too_short.
    ctr.rebase()
    send_all([bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 15))) for _ in range(N)])
    expect("engine.decode_drops.too_short", N, "1..15-byte datagrams")

    # 2. Random bytes (never starting with the magic): bad_magic.
    ctr.rebase()
    junk = []
    for _ in range(N):
        d = bytearray(rng.getrandbits(8) for _ in range(rng.randint(16, 1500)))
        if d[0] == 0x43 and d[1] == 0x53:
            d[0] = 0
        junk.append(bytes(d))
    send_all(junk)
    expect("engine.decode_drops.bad_magic", N, "random bytes")

    # 3. Header field corruptions of a valid Syn.
    for field, value, key in [
        ("magic", 0x4353 ^ 0xFFFF, "bad_magic"),
        ("version", 2, "bad_version"),
        ("version", 0, "bad_version"),
        ("flags", 1, "bad_flags"),     # compressed: not supported by this build
        ("flags", 0x80, "bad_flags"),  # unknown
        ("payload_bytes", len(syn) - 16 + 1, "bad_length"),
        ("payload_bytes", len(syn) - 16 - 1, "bad_length"),
        ("payload_bytes", 0xFFFFFFFF, "bad_length"),
    ]:
        ctr.rebase()
        send_all([with_header(syn, **{field: value})] * N)
        expect("engine.decode_drops." + key, N, "header %s=%#x" % (field, value))

    # Encrypted flag on a node without a keyring: dropped before decoding, never answered.
    ctr.rebase()
    send_all([with_header(syn, flags=2)] * N)
    expect("engine.security.drops.no_keyring", N, "header flags=0x2 (encrypted), no keyring")

    # 4. Valid Syns truncated anywhere past the header: bad_length.
    ctr.rebase()
    send_all([syn[:rng.randint(16, len(syn) - 1)] for _ in range(N)])
    expect("engine.decode_drops.bad_length", N, "truncated valid Syn")

    # 5. A correct header (length, magic, cluster hash) over a random payload: the
    # verifier (or a later check) rejects every one; almost all at verify_failed.
    ctr.rebase()
    pkts = []
    for _ in range(N):
        payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 1400)))
        pkts.append(HDR.pack(MAGIC, 1, 0, 0, 0, len(payload), fnv1a32(c.cluster_id)) + payload)
    send_all(pkts)
    wait_until(lambda: all_decode_drops() >= N, 10, "random payloads all dropped")
    vf = ctr.delta("engine.decode_drops.verify_failed")
    check(all_decode_drops() == N, "random payloads: %d decode drops, sent %d" % (all_decode_drops(), N))
    check(vf >= N * 0.9, "random payloads: only %d/%d verify_failed" % (vf, N))
    log("%-34s -> decode drops +%d (verify_failed +%d)" % ("valid header, random payload", N, vf))

    # 6. Oversized: 65507 bytes of junk, and 65507 bytes with a valid header (correct
    # length) over junk. The transport or the decoder must drop every one.
    ctr.rebase()
    big = []
    for i in range(10):
        payload = os.urandom(65507 - 16)
        hd = HDR.pack(MAGIC, 1, 0, 0, 0, len(payload), fnv1a32(c.cluster_id))
        big.append((hd if i % 2 else b"\0" * 16) + payload)
    for i, d in enumerate(big):  # one at a time: each is a third of a socket buffer
        sock.sendto(d, gossip)
        wait_until(lambda: all_decode_drops() + all_transport_drops() >= i + 1, 10,
                   "oversized datagram %d dropped (decode %d, transport %d)"
                   % (i, all_decode_drops(), all_transport_drops()))
    now = ctr.read()
    log("%-34s -> decode drops +%d, transport drops +%d (%s)"
        % ("65507-byte datagrams", all_decode_drops(now), all_transport_drops(now),
           {k: ctr.delta(k, now) for k in now if ctr.delta(k, now) and "drops" in k}))

    # 7. Wrong cluster: by header hash, and by cluster id under our hash. The node counts
    # cluster_mismatch and answers a Syn with BadCluster.
    ctr.rebase()
    other = craft(type="syn", name="hostile", cluster_id="not-" + c.cluster_id)
    other_with_our_hash = with_header(other, cluster_hash=fnv1a32(c.cluster_id))
    ours_wrong_hash = with_header(syn, cluster_hash=fnv1a32(c.cluster_id) ^ 0x1)
    sock.settimeout(0.0)
    _drain(sock)
    send_all([other] * N + [other_with_our_hash] * N + [ours_wrong_hash] * N)
    expect("engine.engine_drops.cluster_mismatch", 3 * N, "wrong cluster (3 ways)")
    # Each gets a BadCluster within its 3x allowance until the source's rate-limit bucket
    # (engine/reply_guard.h) runs dry; the rest are suppressed and counted.
    wait_until(lambda: ctr.delta("engine.security.unverified_replies")
               + ctr.delta("engine.security.replies_suppressed") >= 3 * N, 5,
               "every foreign Syn answered or suppressed")
    answered = ctr.delta("engine.security.unverified_replies")
    replies = []

    def all_replied():
        replies.extend(_drain(sock))
        return len(replies) >= answered
    wait_until(all_replied, 5, "the %d BadCluster replies" % answered)
    check(answered >= 20, "only %d of %d foreign Syns answered" % (answered, 3 * N))
    kinds = {craft.decode(r) for r in replies[:20]}
    check(kinds == {(True, "bad_cluster")}, "replies to foreign Syns: %r" % kinds)
    check(max(len(r) for r in replies) <= 3 * len(other), "BadCluster larger than 3x a Syn")
    log("%d BadCluster replies to %d foreign Syns (%s), %d suppressed by the rate limit"
        % (len(replies), 3 * N, sorted({len(r) for r in replies}),
           ctr.delta("engine.security.replies_suppressed")))

    # 8. Verifiable but semantically broken packets: each counted by its reason.
    for brk, kw in [
        ("bad_name", dict(type="syn")),
        ("bad_blob_range", dict(type="ack", part_node="hostile-owner", part_entries=3)),
        ("unsorted_entries", dict(type="ack", part_node="hostile-owner", part_entries=3)),
        ("entry_out_of_range", dict(type="ack", part_node="hostile-owner", part_entries=3)),
        ("bad_entry_status", dict(type="ack", part_node="hostile-owner", part_entries=3)),
        ("key_too_long", dict(type="synack", part_node="hostile-owner", part_entries=2)),
    ]:
        ctr.rebase()
        pkt = craft(name="hostile", **{"break": brk}, **kw)
        send_all([pkt] * N)
        expect("engine.decode_drops." + brk, N, "crafted " + brk)

    # 9. BadCluster messages in our own cluster: counted, nothing else.
    ctr.rebase()
    send_all([craft(type="bad_cluster", name="hostile")] * N)
    expect("engine.bad_cluster_received", N, "BadCluster in our cluster")

    # 10. Bit flips in valid packets: anything may happen except a crash. Flips stay out
    # of the header (covered above) and the sender name, so the node does not learn a
    # zoo of fake members.
    ctr.rebase()
    flips = []
    for _ in range(300):
        d = bytearray(syn)
        for _ in range(rng.randint(1, 4)):
            d[rng.randint(16, len(d) - 1)] ^= 1 << rng.randint(0, 7)
        flips.append(bytes(d))
    send_all(flips)
    wait_until(lambda: all_decode_drops() + ctr.delta("engine.packets_in.syn") >= 300 * 0.95
               and target.healthz(), 10, "bit-flipped Syns processed")
    log("%-34s -> decode drops +%d, accepted syn +%d" % ("300 bit-flipped Syns", all_decode_drops(),
        ctr.delta("engine.packets_in.syn")))

    # 11. Flood of well-formed Syns (as fast as Python sends them) while the admin API is
    # probed; the node must keep answering.
    ctr.rebase()
    flood_syn = craft(type="syn", name="flooder", generation=1, digest_nodes=0)
    lat = []
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            t = time.monotonic()
            try:
                target.healthz()
                lat.append(time.monotonic() - t)
            except Exception as e:  # noqa: BLE001
                lat.append(float("inf"))
                log("healthz failed during flood: %s" % e)
            time.sleep(0.02)
    prober = threading.Thread(target=probe)
    prober.start()
    sock.setblocking(False)
    sent = 0
    rx_bytes = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.flood_seconds:
        for _ in range(256):
            try:
                sock.sendto(flood_syn, gossip)
                sent += 1
            except BlockingIOError:
                break
        rx_bytes += sum(len(r) for r in _drain(sock, limit=256))
    stop.set()
    prober.join()
    rx_bytes += sum(len(r) for r in _drain(sock, wait=0.3, limit=1 << 20))
    dt = time.monotonic() - t0
    got = ctr.delta("engine.packets_in.syn")
    log("Syn flood: sent %d in %.1fs (%.0f/s); node counted %d syn; healthz max %.3fs over %d probes"
        % (sent, dt, sent / dt, got, max(lat), len(lat)))
    log("reflection: %d bytes of SynAck back for %d bytes of Syn (x%.1f)"
        % (rx_bytes, sent * len(flood_syn), rx_bytes / max(1, sent * len(flood_syn))))
    check(lat and max(lat) < 2.0, "healthz stalled during the flood: max %.3fs" % max(lat))
    check(got > 0, "no Syn of the flood was processed")

    # Amplification from a stranger (DESIGN §8): UDP source addresses can be spoofed, so
    # reply bytes / request bytes is a reflection factor; until a source echoes our cookie
    # it must stay <= 3 for every message type. Each probe comes from a fresh socket (a
    # new source address, its own rate-limit bucket) and advertises port 1 so the cluster
    # does not start gossiping to it. The SynAck, Ack, Rumor and RumorAck carry a 20-entry
    # part so that an uncapped answer would be large; the WelcomeRequest asks for a 64-chunk
    # window of the snapshot.
    table = []
    for kind, kw in [
        ("syn", dict(type="syn", digest_nodes=0)),
        ("syn+digest", dict(type="syn", digest_nodes=20)),
        ("synack", dict(type="synack", part_node="probe-owner", part_entries=20)),
        ("ack", dict(type="ack", part_node="probe-owner", part_entries=20)),
        ("foreign syn", dict(type="syn", cluster_id="not-" + c.cluster_id)),
        ("rumor", dict(type="rumor", part_node="probe-owner", part_entries=20)),
        ("rumor_ack", dict(type="rumor_ack", part_node="probe-owner", part_entries=20)),
        ("welcome_req", dict(type="welcome_request", welcome_window=64)),
    ]:
        one = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        one.bind(("127.0.0.1", 0))
        probe = craft(name="probe-" + kind.replace(" ", "-").replace("+", "-"), port=1, **kw)
        before = ctr.read().get("engine.security.unverified_in", 0)
        one.sendto(probe, gossip)
        wait_until(lambda: ctr.read().get("engine.security.unverified_in", 0) > before, 5,
                   "the %s probe counted as unverified" % kind)
        rep = _drain(one, wait=0.3, limit=1000)
        out = sum(len(r) for r in rep)
        table.append((kind, len(probe), len(rep), out, out / len(probe)))
        one.close()
    log("amplification from an unknown source (request bytes -> replies, bytes, factor):")
    for kind, n_in, n_rep, n_out, f in table:
        log("  %-12s %5d B -> %d replies %6d B  x%.2f" % (kind, n_in, n_rep, n_out, f))
    for kind, n_in, n_rep, n_out, f in table:
        check(f <= 3.0, "%s from a stranger drew x%.2f (%d B for %d B)" % (kind, f, n_out, n_in))
    check(table[0][2] >= 1, "a stranger's Syn still gets a (small) SynAck")

    # 12. Zero-length datagram (valid UDP): must not break the receive loop.
    sock.sendto(b"", gossip)

    # After all that: alive, serving, replicating, nothing lost, memory bounded.
    check(target.alive(), "target died (exit %s)" % target.proc.poll())
    check(target.healthz()["status"] == "ok", "healthz")
    for (owner, k), (v, ver) in written.items():
        for n in nodes:
            e = n.get(k, node=owner)
            check(e is not None and h.entry_value(e) == v and e["version"] == ver,
                  "%s lost %s's %s: %r (want %r v%d)" % (n.name, owner, k, e, v, ver))
    target.put("after/hostile", "still works")
    check(h.entry_value(target.get("after/hostile")) == b"still works", "read own write")
    c.wait_value(target, "after/hostile", "still works")
    nodes[1].put("after/peer", "x")
    c.wait_value(nodes[1], "after/peer", "x")
    c.wait_members(nodes=nodes, expect=nodes, timeout=10)
    rss1 = target.rss_kb()
    log("RSS before %d KiB, after %d KiB (+%d KiB; bound +%d KiB)"
        % (rss0, rss1, rss1 - rss0, RSS_BOUND_KB))
    check(rss1 - rss0 < RSS_BOUND_KB, "RSS grew by %d KiB" % (rss1 - rss0))
    final = h.flat_counters(target.stats())
    log("nonzero drop counters on target: %s"
        % {k: v for k, v in sorted(final.items()) if "drop" in k and v})
    sock.close()


def _drain(sock, wait=0.0, limit=100000):
    """Reads the datagrams waiting on a socket, at most `limit`, waiting up to `wait`
    seconds for more."""
    out = []
    sock.setblocking(False)
    deadline = time.monotonic() + wait
    while len(out) < limit:
        try:
            out.append(sock.recv(70000))
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return out
            time.sleep(0.005)
    return out


def main():
    ap = h.base_args(__doc__)
    ap.add_argument("--craft", required=True, help="path to scuttle_craft")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--flood_seconds", type=float, default=3.0)
    args = ap.parse_args()
    return h.run(run, args)


if __name__ == "__main__":
    sys.exit(main())
