#!/usr/bin/env python3
"""Gossip security end to end (DESIGN §8), real scuttled processes on loopback.

  python3 tests/integration/security_test.py --bin build/release/tools/scuttled \\
      --ctl build/release/tools/scuttlectl --craft build/release/tests/scuttle_craft --io epoll

1. An encrypted 5-node cluster replicates; a keyring file readable by others is refused.
2. Forged datagrams change nothing and are counted: plaintext (plaintext_refused), sealed
   with a wrong key (bad_key), a replayed sealed datagram (replayed).
3. Live key rotation with scuttlectl (install everywhere, use everywhere, remove the old
   key) keeps every member alive; `keys list` counts the members on each primary; the
   keyring files are rewritten (0600).
4. Plaintext -> encrypted migration of a running cluster with the two verify flags,
   restarting one node at a time.
5. Admin API bearer token (--admin_token_file), and no admin beyond loopback without one.
Waits poll with deadlines (harness.wait_until); nothing sleeps blindly.
"""

import base64
import os
import socket
import stat
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, log, wait_until  # noqa: E402


def new_key():
    return base64.b64encode(os.urandom(32)).decode()


def write_private(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def counter(node, key):
    return h.flat_counters(node.stats()).get(key, 0)


class Ctl:
    def __init__(self, path):
        self.path = os.path.abspath(path)

    def run(self, node, *argv, token_file=None):
        cmd = [self.path, "--addr", node.admin_addr]
        if token_file:
            cmd += ["--token_file", token_file]
        p = subprocess.run(cmd + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        return p.returncode, p.stdout.decode(), p.stderr.decode(errors="replace")

    def ok(self, node, *argv, **kw):
        rc, out, err = self.run(node, *argv, **kw)
        check(rc == 0, "scuttlectl %s on %s: exit %d: %s" % (" ".join(argv), node.name, rc, err))
        return out


def keys_list(node):
    return node._ok("GET", "/v1/keyring")


def encrypted_cluster(c, args, ctl, craft_path):
    key1 = new_key()
    files = {}

    def keyring_for(name):
        files[name] = write_private(os.path.join(c.dir, name + ".keyring"), key1 + "\n")
        return files[name]

    # A keyring others can read is refused (it holds the cluster's secret).
    loose = write_private(os.path.join(c.dir, "loose.keyring"), key1 + "\n", 0o644)
    p = subprocess.run([c.bin, "--node_name=loose", "--listen_addr=127.0.0.1:0",
                        "--admin_addr=", "--keyring_file=" + loose], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    check(p.returncode != 0 and b"chmod 600" in p.stdout,
          "world-readable keyring: exit %d, %r" % (p.returncode, p.stdout[-300:]))
    log("keyring file mode 0644 -> exit %d: %s" % (p.returncode, p.stdout.decode().strip()[-120:]))

    nodes = []
    for i in range(5):
        name = "e%d" % i
        nodes.append(c.add(name, seeds=nodes[:2], keyring_file=keyring_for(name)))
    c.wait_members(nodes=nodes, expect=nodes, timeout=20)
    nodes[3].put("secret/k", "v3")
    c.wait_value(nodes[3], "secret/k", "v3", nodes=nodes)
    st = h.flat_counters(nodes[0].stats())
    check(st["engine.security.sealed_out"] > 0 and st["engine.security.opened_in"] > 0,
          "no sealed traffic: %r" % {k: v for k, v in st.items() if "security" in k})
    kl = keys_list(nodes[0])
    wait_until(lambda: keys_list(nodes[0])["keys"][0]["members_primary"] == 5, 10,
               "every member gossips the primary's fingerprint")
    log("encrypted 5-node cluster replicates; cipher %s" % kl["cipher"])

    # Forged datagrams from an attacker without the key (and a replay from one with it).
    target = nodes[0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def craft(**kw):
        argv = [craft_path, "--cluster_id", c.cluster_id, "--port", str(sock.getsockname()[1])]
        for k, v in kw.items():
            argv += ["--" + k, str(v)]
        return subprocess.run(argv, check=True, stdout=subprocess.PIPE).stdout

    gossip = ("127.0.0.1", target.port)
    for what, pkt, key in [
        ("plaintext syn", craft(type="syn", name="evil"), "plaintext_refused"),
        ("plaintext ack", craft(type="ack", name="evil", part_node="e1", generation=1 << 62,
                                part_entries=3), "plaintext_refused"),
        ("wrong-key syn", craft(type="syn", name="evil", seal_key=new_key()), "bad_key"),
        ("wrong-key ack", craft(type="ack", name="evil", part_node="e1", generation=1 << 62,
                                part_entries=3, seal_key=new_key()), "bad_key"),
    ]:
        before = counter(target, "engine.security.drops." + key)
        for _ in range(10):
            sock.sendto(pkt, gossip)
        wait_until(lambda: counter(target, "engine.security.drops." + key) >= before + 10, 10,
                   "%s counted as %s" % (what, key))
        log("10 x %-14s -> security.drops.%s +10" % (what, key))
    insider = craft(type="syn", name="insider", seal_key=key1, seal_sender=777, seal_counter=9)
    before = counter(target, "engine.security.drops.replayed")
    for _ in range(3):
        sock.sendto(insider, gossip)
    wait_until(lambda: counter(target, "engine.security.drops.replayed") >= before + 2, 10,
               "replays of one sealed datagram counted")
    log("3 x the same sealed datagram -> 1 opened, security.drops.replayed +2")
    for n in nodes:
        ms = n.members()
        check("evil" not in ms, "%s admitted the forger: %r" % (n.name, sorted(ms)))
        e = n.get("secret/k", node="e3")
        check(e is not None and h.entry_value(e) == b"v3", "%s lost e3's key" % n.name)
    sock.close()
    return nodes, files, key1


def rotation(c, ctl, nodes, files, key1):
    key2 = ctl.ok(nodes[0], "keys", "generate").strip()
    check(len(base64.b64decode(key2)) == 32, "keys generate: %r" % key2)
    with h.FlapMonitor(c) as mon:
        for n in nodes:
            ctl.ok(n, "keys", "install", key2)
        kl = keys_list(nodes[0])
        check(len(kl["keys"]) == 2 and kl["keys"][0]["primary"], "after install: %r" % kl)
        fp2 = [k["fingerprint"] for k in kl["keys"] if not k["primary"]][0]
        for i, n in enumerate(nodes):
            ctl.ok(n, "keys", "use", fp2)
            # Everyone learns by gossip how many members already seal with the new key.
            wait_until(lambda: next(k["members_primary"] for k in keys_list(nodes[-1])["keys"]
                                    if k["fingerprint"] == fp2) == i + 1, 10,
                       "%d members on the new primary" % (i + 1))
            log("%s uses the new key; %d members seen on it" % (n.name, i + 1))
        outs = []

        def five_on_new_key():
            outs.append(ctl.ok(nodes[0], "keys", "list"))
            return "%s  *        5/" % fp2 in outs[-1]
        # (5/6 while e0 still counts the insider of the replay check as alive)
        wait_until(five_on_new_key, 10, "keys list on e0 shows 5 members on the new key")
        log("scuttlectl keys list after use everywhere:\n" + outs[-1].rstrip())
        for n in nodes:
            ctl.ok(n, "keys", "remove", key1)
        nodes[1].put("after/rotation", "yes")
        c.wait_value(nodes[1], "after/rotation", "yes", nodes=nodes)
        c.wait_members(nodes=nodes, expect=nodes, timeout=10)
    mon.assert_no_false_dead("live key rotation")
    for n in nodes:
        text = open(files[n.name]).read()
        check(key2 in text and key1 not in text, "%s keyring file not rewritten: %r" % (n.name, text))
        mode = stat.S_IMODE(os.stat(files[n.name]).st_mode)
        check(mode == 0o600, "%s keyring file mode %o" % (n.name, mode))
    rc, _, err = ctl.run(nodes[0], "keys", "remove", key2)
    check(rc == 2 and "primary" in err, "removing the primary: exit %d %s" % (rc, err))
    log("rotation: install, use, remove on 5 live nodes; no false deaths; files rewritten")


def migration(c):
    key = new_key()
    nodes = [c.add("m0", seeds=[])]
    for i in range(1, 3):
        nodes.append(c.add("m%d" % i, seeds=nodes[:1]))
    c.wait_members(nodes=nodes, expect=nodes)
    files = {n.name: write_private(os.path.join(c.dir, n.name + ".keyring"), key + "\n")
             for n in nodes}
    steps = [("false", "false"), ("false", "true"), ("true", "true")]
    for incoming, outgoing in steps:
        for n in nodes:
            n.sigterm()
            n.start(keyring_file=files[n.name], encrypt_verify_incoming=incoming,
                    encrypt_verify_outgoing=outgoing, seeds=c.seeds_of([m for m in nodes if m is not n]))
            c.wait_members(nodes=nodes, expect=nodes, timeout=20,
                           what="verify_incoming=%s verify_outgoing=%s after restarting %s"
                           % (incoming, outgoing, n.name))
        log("migration step verify_incoming=%s verify_outgoing=%s: all 3 members alive"
            % (incoming, outgoing))
    nodes[2].put("migrated", "ok")
    c.wait_value(nodes[2], "migrated", "ok", nodes=nodes)
    st = h.flat_counters(nodes[0].stats())
    check(st["engine.security.sealed_out"] > 0, "nothing sealed after the migration")


def admin_token(c, ctl):
    token_file = write_private(os.path.join(c.dir, "admin.token"), "s3cret-token\n")
    n = c.add("tok", seeds=[], start=False)
    n.flags["admin_token_file"] = token_file
    n.token = "s3cret-token"
    n.start()
    st, body = h.http("GET", n.url("/v1/members"))
    check(st == 401 and body.get("error") == "unauthorized", "no token: %r %r" % (st, body))
    st, _ = h.http("GET", n.url("/healthz"), token="wrong")
    check(st == 401, "wrong token: %r" % st)
    check(n.members() is not None, "with the token")
    rc, _, err = ctl.run(n, "members")
    check(rc == 2 and "401" in err, "scuttlectl without the token: %d %s" % (rc, err))
    ctl.ok(n, "members", token_file=token_file)
    log("admin token: 401 without or with a wrong token; scuttlectl --token_file works")
    p = subprocess.run([c.bin, "--node_name=wide", "--listen_addr=127.0.0.1:0",
                        "--admin_addr=0.0.0.0:0"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    check(p.returncode == 2 and b"admin_token_file" in p.stdout,
          "admin beyond loopback without a token: exit %d %r" % (p.returncode, p.stdout[-300:]))
    log("--admin_addr=0.0.0.0 without a token -> exit 2")


def test(c, args):
    ctl = Ctl(args.ctl)
    nodes, files, key1 = encrypted_cluster(c, args, ctl, os.path.abspath(args.craft))
    rotation(c, ctl, nodes, files, key1)
    for n in nodes:
        n.kill9()
    migration(c)
    admin_token(c, ctl)


def main():
    ap = h.base_args(__doc__)
    ap.add_argument("--ctl", required=True, help="path to scuttlectl")
    ap.add_argument("--craft", required=True, help="path to scuttle_craft")
    args = ap.parse_args()
    return h.run(test, args)


if __name__ == "__main__":
    sys.exit(main())
