"""Differential test: the same seeded random operations, bad ones included, from several
sessions, against Java ZooKeeper 3.9 and ferrokeeper; results, error codes, Stats (times and
session ids aside; zxids included) and watch events must be identical.

    python differential.py JAVA_HOSTPORT FK_HOSTPORT [--seed N] [--ops N]

Both servers must be fresh (the comparison includes zxids). A failure prints the seed and
the first differing operation.
"""
import argparse
import random
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.security import make_digest_acl, OPEN_ACL_UNSAFE

NAMES = ["a", "b", "c"]
SESSIONS = 3


def random_path(rng):
    depth = rng.randint(1, 3)
    return "/d/" + "/".join(rng.choice(NAMES) for _ in range(depth))


def random_acl(rng):
    return rng.choice([
        OPEN_ACL_UNSAFE,
        [make_digest_acl("u1", "p1", all=True)],
        [make_digest_acl("u1", "p1", read=True), make_digest_acl("u2", "p2", all=True)],
    ])


def make_ops(seed, count):
    """The whole operation list, decided before either server is touched."""
    rng = random.Random(seed)
    ops = []
    for _ in range(count):
        s = rng.randrange(SESSIONS)
        kind = rng.choices(
            ["create", "delete", "set", "get", "exists", "children", "get_acls", "set_acls",
             "multi", "sync", "watch_get", "watch_children", "watch_exists"],
            weights=[20, 12, 12, 8, 6, 6, 3, 3, 8, 2, 7, 7, 6])[0]
        p = random_path(rng)
        version = rng.choice([-1, -1, 0, 1, 2, 7])
        if kind == "create":
            op = (kind, p, rng.choice([b"", b"x", b"hello", None]), rng.random() < 0.2,
                  rng.random() < 0.3, rng.random() < 0.1 and s != 0)
        elif kind in ("delete", "set", "set_acls"):
            op = (kind, p, version, rng.choice([b"v1", b"", b"longer value"]))
        elif kind == "multi":
            sub = []
            for _ in range(rng.randint(1, 3)):
                q = random_path(rng)
                sub.append((rng.choice(["create", "delete", "set", "check"]), q,
                            rng.choice([-1, 0, 1])))
            op = (kind, sub)
        else:
            op = (kind, p)
        ops.append((s, op))
    return ops


class Runner:
    """One server: its sessions, and what every operation returned."""

    def __init__(self, hosts):
        self.clients = []
        self.events = [[] for _ in range(SESSIONS)]
        self.lock = threading.Lock()
        self.sids = {}
        for i in range(SESSIONS):
            c = KazooClient(hosts=hosts, timeout=10.0)
            c.start(timeout=15)
            if i == 1:
                c.add_auth("digest", "u1:p1")
            if i == 2:
                c.add_auth("digest", "u2:p2")
            self.clients.append(c)
            self.sids[c.client_id[0]] = "session%d" % i
        self.clients[0].ensure_path("/d")

    def norm_stat(self, st):
        if st is None:
            return None
        return (st.czxid, st.mzxid, st.pzxid, st.version, st.cversion, st.aversion,
                self.sids.get(st.ephemeralOwner, st.ephemeralOwner) if st.ephemeralOwner else 0,
                st.dataLength, st.numChildren)

    def watcher(self, i):
        def w(ev):
            with self.lock:
                self.events[i].append((ev.type, ev.path))
        return w

    def run(self, s, op):
        c = self.clients[s]
        kind = op[0]
        try:
            if kind == "create":
                _, p, data, eph, seq, makepath = op
                return ("ok", c.create(p, data, acl=None, ephemeral=eph, sequence=seq,
                                       makepath=makepath))
            if kind == "delete":
                return ("ok", c.delete(op[1], version=op[2]))
            if kind == "set":
                return ("ok", self.norm_stat(c.set(op[1], op[3], version=op[2])))
            if kind == "set_acls":
                rng = random.Random(hash(op[1]) & 0xffff)
                return ("ok", self.norm_stat(c.set_acls(op[1], random_acl(rng), version=op[2])))
            if kind == "get":
                d, st = c.get(op[1])
                return ("ok", d, self.norm_stat(st))
            if kind == "watch_get":
                d, st = c.get(op[1], watch=self.watcher(s))
                return ("ok", d, self.norm_stat(st))
            if kind == "exists":
                return ("ok", self.norm_stat(c.exists(op[1])))
            if kind == "watch_exists":
                return ("ok", self.norm_stat(c.exists(op[1], watch=self.watcher(s))))
            if kind == "children":
                ch, st = c.get_children(op[1], include_data=True)
                return ("ok", sorted(ch), self.norm_stat(st))
            if kind == "watch_children":
                return ("ok", sorted(c.get_children(op[1], watch=self.watcher(s))))
            if kind == "get_acls":
                acl, st = c.get_acls(op[1])
                return ("ok", sorted((a.perms, a.id.scheme, a.id.id) for a in acl), self.norm_stat(st))
            if kind == "sync":
                return ("ok", c.sync(op[1]))
            if kind == "multi":
                t = c.transaction()
                for sub, q, v in op[1]:
                    if sub == "create":
                        t.create(q, b"m")
                    elif sub == "delete":
                        t.delete(q, version=v)
                    elif sub == "set":
                        t.set_data(q, b"ms", version=v)
                    else:
                        t.check(q, v)
                res = t.commit()
                return ("ok", [r if not isinstance(r, Exception) else type(r).__name__ for r in
                               [self.norm_stat(x) if hasattr(x, "czxid") else x for x in res]])
        except KazooException as e:
            return ("error", type(e).__name__)
        except (ValueError, TypeError) as e:
            return ("client-error", type(e).__name__)
        return ("?",)

    def close(self):
        for c in self.clients:
            c.stop()
            c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("java")
    ap.add_argument("ferrokeeper")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--ops", type=int, default=10000)
    a = ap.parse_args()
    ops = make_ops(a.seed, a.ops)
    replay = "python differential.py JAVA FK --seed %d --ops %d" % (a.seed, a.ops)
    java, fk = Runner(a.java), Runner(a.ferrokeeper)
    failures = 0
    for n, (s, op) in enumerate(ops):
        rj, rf = java.run(s, op), fk.run(s, op)
        if rj != rf:
            failures += 1
            print("MISMATCH at op %d (session %d) %r\n  java:        %r\n  ferrokeeper: %r"
                  % (n, s, op, rj, rf))
            if failures >= 5:
                break
    time.sleep(1.0)
    if failures == 0:
        for i in range(SESSIONS):
            if java.events[i] != fk.events[i]:
                failures += 1
                print("MISMATCH in watch events of session %d:\n  java:        %r\n  ferrokeeper: %r"
                      % (i, java.events[i][:20], fk.events[i][:20]))
    events = sum(len(e) for e in java.events)
    java.close()
    fk.close()
    print("seed %d: %d operations, %d watch events compared" % (a.seed, len(ops), events))
    if failures:
        print("replay: " + replay)
    print("differential: %d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
