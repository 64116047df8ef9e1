#!/usr/bin/env python3
"""A 5-node cluster of `scuttled --shards 2` (issue #18, docs/shards.md).

  python3 tests/integration/shards_test.py --bin .../scuttled --io epoll

Every node runs two engine shards, shard s on gossip port + s. Checked, on every node:
  - keys of both shards (chosen with ShardOf, computed here from the spec) replicate,
    are deleted, and TTL keys expire;
  - GET /v1/kv merges both shards; /v1/debug/stats shows each shard holding only its
    slice (keys_replicated per shard);
  - a kill -9 is detected: dead in /v1/members (shard 0 decides) on every survivor, and
    dead in shard 1's own view (its members_by_state), which only shard 0's records set;
  - garbage on every shard port of a node is counted as dropped by that shard, and the
    cluster still replicates afterwards;
  - a node started with --shards 1 against the cluster is refused (counted
    shard_count_mismatch) and the refusal is logged.
"""

import http.client
import json
import os
import random
import re
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, log, wait_until  # noqa: E402

SHARDS = 2
HDR = struct.Struct("<HBBHHII")  # magic, version, flags, shard, reserved, payload_bytes, hash
MAGIC = 0x5343

# ---- ShardOf (engine/shard.h): SipHash-2-4 keyed "scuttle/shard/v1", little-endian, mod N.
M64 = (1 << 64) - 1


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & M64


def siphash24(key16, msg):
    k0, k1 = struct.unpack("<QQ", key16)
    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573

    def rounds(n):
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & M64; v1 = _rotl(v1, 13); v1 ^= v0; v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & M64; v3 = _rotl(v3, 16); v3 ^= v2
            v0 = (v0 + v3) & M64; v3 = _rotl(v3, 21); v3 ^= v0
            v2 = (v2 + v1) & M64; v1 = _rotl(v1, 17); v1 ^= v2; v2 = _rotl(v2, 32)

    tail = len(msg) % 8
    for i in range(0, len(msg) - tail, 8):
        m = struct.unpack_from("<Q", msg, i)[0]
        v3 ^= m
        rounds(2)
        v0 ^= m
    b = (len(msg) & 0xFF) << 56
    for i in range(tail):
        b |= msg[len(msg) - tail + i] << (8 * i)
    v3 ^= b
    rounds(2)
    v0 ^= b
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def shard_of(key, n=SHARDS):
    return siphash24(b"scuttle/shard/v1", key.encode()) % n


def keys_on_each_shard(prefix, per_shard):
    """per_shard keys prefix-0, prefix-1, ... for every shard."""
    out = {s: [] for s in range(SHARDS)}
    i = 0
    while any(len(v) < per_shard for v in out.values()):
        k = "%s-%d" % (prefix, i)
        if len(out[shard_of(k)]) < per_shard:
            out[shard_of(k)].append(k)
        i += 1
    return [k for s in range(SHARDS) for k in out[s]]


def shard_stats(node):
    st = node.stats()
    check(st.get("shard_count") == SHARDS, "%s: shard_count %r" % (node.name, st.get("shard_count")))
    return st["shards"]


def fnv1a32(s):
    x = 0x811C9DC5
    for b in s.encode():
        x ^= b
        x = (x * 0x01000193) & 0xFFFFFFFF
    return x


def sse_events(node, query, count, timeout=20):
    """Opens GET /v1/watch?query on node and returns (first comment, the first `count`
    events as {"id", "event", "data"}), reading with a deadline."""
    conn = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=timeout)
    conn.request("GET", "/v1/watch?" + query)
    resp = conn.getresponse()
    if resp.status != 200:
        check(False, "watch %s: HTTP %d %s" % (query, resp.status, resp.read()[:300]))
    deadline = time.monotonic() + timeout
    comment, events, cur = None, [], {}
    while comment is None or len(events) < count:
        check(time.monotonic() < deadline, "watch %s: %d/%d events" % (query, len(events), count))
        line = resp.fp.readline().decode().rstrip("\n")
        if line.startswith(": scuttle watch from seq "):
            comment = line[len(": scuttle watch from seq "):]
        elif line.startswith("id: "):
            cur["id"] = line[4:]
        elif line.startswith("event: "):
            cur["event"] = line[7:]
        elif line.startswith("data: "):
            cur["data"] = json.loads(line[6:])
        elif line == "" and cur:
            events.append(cur)
            cur = {}
    conn.close()
    return comment, events


def check_watch(c, nodes):
    """Watch tokens carry one position per shard; other shard counts are refused."""
    n0, n1 = nodes[0], nodes[1]
    st, body = n1.request("GET", "/v1/watch", since="5")
    check(st == 400 and "one engine shard" in body["detail"], "plain SEQ refused: %d %r" % (st, body))
    st, body = n1.request("GET", "/v1/watch", since="s0:0")
    check(st == 400 and "1 engine shard(s)" in body["detail"], "1 position refused: %d %r" % (st, body))
    st, body = n1.request("GET", "/v1/watch", since="s0:0,s1:x")
    check(st == 400, "a bad position refused: %d %r" % (st, body))

    keys = keys_on_each_shard("w/%s" % n0.name, 3)
    # The position now (a stream's first line), then the writes, then a stream from there.
    start, _ = sse_events(n1, "prefix=w/", 0)
    check(re.fullmatch(r"s0:\d+,s1:\d+", start or ""), "start token %r" % start)
    for k in keys:
        n0.put(k, "x")
    wait_until(lambda: len(n1.kv(prefix="w/")) == len(keys), 20, "watched keys replicated")
    comment, events = sse_events(n1, "prefix=w/&since=" + start, len(keys))
    check(comment == start, "stream starts at %r, asked %r" % (comment, start))
    check(sorted(e["data"]["key"] for e in events) == sorted(keys), "watched keys %r" % events)
    check({e["data"]["shard"] for e in events} == {0, 1}, "events of both shards")
    for e in events:
        check(re.fullmatch(r"s0:\d+,s1:\d+", e["id"]), "event id %r" % e["id"])
        check(e["data"]["shard"] == shard_of(e["data"]["key"]), "event shard = ShardOf")
    # Resume after the first event: the other events come again, and nothing else.
    _, again = sse_events(n1, "prefix=w/&since=" + events[0]["id"], len(keys) - 1)
    check([e["data"]["key"] for e in again] == [e["data"]["key"] for e in events[1:]],
          "resumed stream: %r" % again)


def run(c, args):
    # The same golden values as engine/shard_test.cc: this file's ShardOf is the engine's.
    check(siphash24(b"scuttle/shard/v1", b"") == 0xBB3A2B838024F486, "ShardHash('')")
    check(siphash24(b"scuttle/shard/v1", b"service/web-1/port") == 0x3D945C1920DFC26F,
          "ShardHash('service/web-1/port')")

    t0 = time.monotonic()
    nodes = c.start_many(5, seeds_count=2)
    c.wait_members(timeout=30)
    for n in nodes:
        st = shard_stats(n)
        check([s["port"] for s in st] == [n.port, n.port + 1], "%s: shard ports %r" % (n.name, st))
    log("5 nodes x %d shards alive everywhere after %.1fs" % (SHARDS, time.monotonic() - t0))

    # -- replication: keys of both shards, written on every node.
    written = {}
    for n in nodes:
        for k in keys_on_each_shard("rep/%s" % n.name, 3):
            v = "v-%s-%s" % (n.name, k)
            n.put(k, v)
            written[(n.name, k)] = v
    check({shard_of(k) for (_, k) in written} == set(range(SHARDS)), "keys on every shard")

    def replicated():
        for n in nodes:
            got = {(e["node"], e["key"]): h.entry_value(e).decode() for e in n.kv(prefix="rep/")}
            if got != written:
                return False
        return True
    wait_until(replicated, 30, "every key of both shards on every node (merged GET /v1/kv)")
    # Each shard holds only its slice: 5 owners x 3 keys per shard, no more.
    for n in nodes:
        for s in shard_stats(n):
            local, repl = s["node"]["keys_local"], s["node"]["keys_replicated"]
            check(local == 3 and repl == 12,
                  "%s shard %d: keys_local %d keys_replicated %d (want 3, 12)"
                  % (n.name, s["shard"], local, repl))
    for (owner, k), v in list(written.items())[:6]:
        e = nodes[-1].get(k, node=owner)
        check(e is not None and h.entry_value(e).decode() == v, "GET %s/%s routed" % (owner, k))
    log("replication of both shards ok after %.1fs" % (time.monotonic() - t0))
    check_watch(c, nodes)
    log("watch merge and per-shard resume tokens ok after %.1fs" % (time.monotonic() - t0))

    # -- deletes on both shards.
    gone = keys_on_each_shard("rep/%s" % nodes[1].name, 3)[:1] + \
        keys_on_each_shard("rep/%s" % nodes[1].name, 3)[3:4]
    check({shard_of(k) for k in gone} == {0, 1}, "deleted keys span both shards")
    for k in gone:
        check(nodes[1].delete(k) is not None, "DELETE %s" % k)
        del written[(nodes[1].name, k)]
    wait_until(replicated, 30, "deletes of both shards everywhere")
    log("deletes ok after %.1fs" % (time.monotonic() - t0))

    # -- TTLs on both shards: appear everywhere, then expire everywhere.
    ttl_keys = keys_on_each_shard("ttl/%s" % nodes[2].name, 2)
    for k in ttl_keys:
        nodes[2].put(k, "short", ttl="3s")

    def ttl_seen(count):
        return all(len(n.kv(prefix="ttl/")) == count for n in nodes)
    wait_until(lambda: ttl_seen(len(ttl_keys)), 20, "TTL keys of both shards everywhere")
    wait_until(lambda: ttl_seen(0), 30, "TTL keys of both shards expired everywhere")
    log("TTL expiry ok after %.1fs" % (time.monotonic() - t0))

    # -- garbage on every shard port of n00, counted by the shard that got it.
    target = nodes[0]
    rng = random.Random(18)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    base = [h.flat_counters(s) for s in shard_stats(target)]
    N = 40
    for s in range(SHARDS):
        port = target.port + s
        for i in range(N):
            junk = bytearray(rng.getrandbits(8) for _ in range(rng.randint(16, 1400)))
            if junk[0] == 0x43 and junk[1] == 0x53:
                junk[0] = 0
            sock.sendto(bytes(junk), ("127.0.0.1", port))                      # bad_magic
            sock.sendto(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 15))),
                        ("127.0.0.1", port))                                   # too_short
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 1200)))
            sock.sendto(HDR.pack(MAGIC, 1, 0, s, 0, len(payload), fnv1a32(c.cluster_id))
                        + payload, ("127.0.0.1", port))                        # verify_failed..
            if i % 8 == 7:
                # Let the node drain: loopback drops silently when its buffer is full.
                time.sleep(0.002)
    sock.close()

    def drops(s, now):
        return sum(v - base[s].get(k, 0) for k, v in now.items()
                   if k.startswith("engine.decode_drops.") or k.startswith("transport.drops."))

    def all_dropped():
        now = [h.flat_counters(x) for x in shard_stats(target)]
        return all(drops(s, now[s]) >= 3 * N for s in range(SHARDS))
    wait_until(all_dropped, 15, "garbage counted as dropped on every shard of %s" % target.name)
    now = [h.flat_counters(x) for x in shard_stats(target)]
    for s in range(SHARDS):
        check(drops(s, now[s]) == 3 * N, "shard %d: %d drops for %d garbage datagrams"
              % (s, drops(s, now[s]), 3 * N))
        log("shard %d (port %d): garbage %d -> drops +%d" % (s, target.port + s, 3 * N, drops(s, now[s])))
    for n in nodes:
        check(n.healthz()["status"] == "ok", "%s healthy after garbage" % n.name)
    after = keys_on_each_shard("after/%s" % target.name, 1)
    for k in after:
        target.put(k, "still")
    wait_until(lambda: all(len(n.kv(prefix="after/")) == len(after) for n in nodes), 20,
               "replication after the garbage")
    log("garbage barrage survived after %.1fs" % (time.monotonic() - t0))

    # -- another shard count is refused, counted and logged.
    odd = c.add("odd1", seeds=[nodes[0]], shards=1)
    def refused():
        now = h.flat_counters(shard_stats(nodes[0])[0])
        return now.get("engine.engine_drops.shard_count_mismatch", 0) > 0
    wait_until(refused, 15, "n00 counts shard_count_mismatch from a --shards 1 node")
    check("odd1" not in nodes[0].members(), "the --shards 1 node is not a member")
    wait_until(lambda: "runs another shard count" in open(nodes[0].log_path, errors="replace").read(),
               15, "the refusal is logged by n00")
    odd.kill9()
    log("another shard count refused and logged after %.1fs" % (time.monotonic() - t0))

    # -- kill -9: dead on every survivor, in shard 0's decision and shard 1's view.
    victim = nodes[4]
    survivors = nodes[:4]
    victim.kill9()

    def dead_everywhere():
        for n in survivors:
            if n.members().get(victim.name, {}).get("state") != "dead":
                return False
            for s in shard_stats(n):
                if s["node"]["members_by_state"].get("dead", 0) < 1:
                    return False
        return True
    wait_until(dead_everywhere, 30, "%s dead on every survivor, on both shards" % victim.name)
    for n in survivors:
        for s in shard_stats(n)[1:]:
            check(s["node"]["members_by_state"].get("alive", 0) == 4,
                  "%s shard %d: alive %r" % (n.name, s["shard"], s["node"]["members_by_state"]))
    log("kill -9 detected on both shards of every survivor after %.1fs" % (time.monotonic() - t0))


def main():
    ap = h.base_args(__doc__)
    args = ap.parse_args()
    return h.run(run, args, cluster_kwargs={"shards": SHARDS})


if __name__ == "__main__":
    sys.exit(main())
