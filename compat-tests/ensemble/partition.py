#!/usr/bin/env python3
"""Kazoo-side steps of the network-partition test (compat-tests/ensemble/partition.sh).

Runs in the test's client network namespace (partition.sh starts it with `ip netns exec`).
Connection helpers (client(), connect_one(), stop()) come from check.py next to this file.

  partition.py seed --hosts H,.. --prefix P --count N --record FILE
      Creates P-0 .. P-(N-1) with data "<name> <time>" through one client (host list with
      failover); appends every acknowledged one to FILE (path TAB data). Exit 1 if one fails.

  partition.py writer --hosts H,.. --path P --ready FILE --go FILE --seconds S --out JSON
                      [--retry] [--record FILE]
      Connects (before the partition), creates FILE --ready, waits for FILE --go (it holds the
      cut time in unix milliseconds), then creates P. Without --retry: ONE create, waited for up
      to S seconds (the write to an isolated leader). With --retry: creates until one is
      acknowledged or S seconds pass (ConnectionLoss and timeouts retried; NodeExists with our
      data counts as acknowledged). JSON: {"ok": bool, "error": repr, "ms": ms from the cut to
      the outcome, "attempts": n}. Exit status 0 either way (partition.sh judges).

  partition.py ro --host H --record FILE [--prefix P]
      A read_only=True client connected to H alone: the session must be read-only
      (CONNECTED_RO), every node of FILE whose path starts with P must read back with its data,
      and create/set_data/delete must fail with NotReadOnlyCallError.

  partition.py verify --hosts H1,H2,.. --record FILE [--absent P1,P2,..] [--root /part]
      Each host alone (sync first): every node of FILE is there with its data, no --absent path
      exists, and every host has the same children of --root with the same data and Stat.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402  (client(), connect_one(), stop(), gather(), STAT_FIELDS)

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import (  # noqa: E402
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    NotReadOnlyCallError,
    OperationTimeoutError,
    SessionMovedError,
)
from kazoo.handlers.threading import KazooTimeoutError  # noqa: E402
from kazoo.protocol.states import KeeperState  # noqa: E402

TRANSIENT = (ConnectionLoss, OperationTimeoutError, KazooTimeoutError, SessionMovedError)


def now_ms():
    return int(time.time() * 1000)


def append_record(path, node, data):
    with open(path, "a", encoding="utf-8") as f:
        f.write("%s\t%s\n" % (node, data))


def read_record(path):
    out = {}
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    p, d = line.split("\t", 1)
                    out[p] = d
    return out


def ensure_parent(zk, path):
    parent = path.rsplit("/", 1)[0]
    if parent:
        zk.ensure_path(parent)


# ---------------------------------------------------------------------------------------------


def cmd_seed(a):
    zk = check.client(a.hosts)
    try:
        zk.start(timeout=check.CONNECT_TIMEOUT)
    except Exception as e:  # noqa: BLE001
        print("seed: cannot connect to %s: %r" % (a.hosts, e))
        return 2
    ok = 0
    try:
        ensure_parent(zk, a.prefix + "-0")
        for i in range(a.count):
            p = "%s-%d" % (a.prefix, i)
            d = "%s %d" % (p.rsplit("/", 1)[1], now_ms())
            try:
                zk.create_async(p, d.encode()).get(timeout=check.OP_TIMEOUT)
            except Exception as e:  # noqa: BLE001
                print("seed: create %s through %s failed: %r" % (p, a.hosts, e))
                return 1
            append_record(a.record, p, d)
            ok += 1
    finally:
        check.stop(zk)
    print("seed: %d nodes %s-* written through %s" % (ok, a.prefix, a.hosts))
    return 0


def cmd_writer(a):
    res = {"ok": False, "error": None, "ms": None, "attempts": 0, "hosts": a.hosts}
    zk = check.client(a.hosts)
    try:
        zk.start(timeout=check.CONNECT_TIMEOUT)
        ensure_parent(zk, a.path)
    except Exception as e:  # noqa: BLE001
        res["error"] = "connect: %r" % (e,)
        json.dump(res, open(a.out, "w"))
        return 0
    try:
        res["session"] = "0x%x" % zk.client_id[0]
        open(a.ready, "w").close()
        deadline = time.monotonic() + 120  # bounded wait for the go file
        while not os.path.exists(a.go) and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = None
        for _ in range(100):
            try:
                t0 = int(open(a.go).read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.01)
        if t0 is None:
            res["error"] = "no go file"
            return 0
        data = ("written through %s" % a.hosts).encode()
        end = time.monotonic() + a.seconds
        while True:
            res["attempts"] += 1
            try:
                zk.create_async(a.path, data).get(timeout=max(0.1, end - time.monotonic()))
                res["ok"] = True
            except NodeExistsError:
                # An earlier attempt that reported ConnectionLoss was committed after all.
                try:
                    got = zk.get(a.path)[0]
                except Exception as e:  # noqa: BLE001
                    got = repr(e)
                if got == data:
                    res["ok"] = True
                    res["note"] = "NodeExists with our data (an earlier attempt committed)"
                else:
                    res["error"] = "NodeExists with data %r" % (got,)
            except TRANSIENT as e:
                res["error"] = repr(e)
                if a.retry and time.monotonic() < end:
                    time.sleep(0.05)
                    continue
            except Exception as e:  # noqa: BLE001
                res["error"] = repr(e)
                if a.retry and time.monotonic() < end:
                    time.sleep(0.05)
                    continue
            break
        res["ms"] = now_ms() - t0
        if res["ok"]:
            res["error"] = None
            if a.record:
                append_record(a.record, a.path, data.decode())
        return 0
    finally:
        with open(a.out, "w") as f:
            json.dump(res, f)
        check.stop(zk)


def cmd_ro(a):
    problems = []
    zk = KazooClient(hosts=a.host, timeout=check.SESSION_TIMEOUT, read_only=True,
                     randomize_hosts=False, connection_retry=dict(check.CONN_RETRY))
    try:
        zk.start(timeout=check.CONNECT_TIMEOUT)
    except Exception as e:  # noqa: BLE001
        print("ro: cannot connect (read_only=True) to %s: %r" % (a.host, e))
        return 1
    try:
        if zk.client_state != KeeperState.CONNECTED_RO:
            problems.append("session state %s, want CONNECTED_RO" % zk.client_state)
        want = {p: d for p, d in read_record(a.record).items() if p.startswith(a.prefix)}
        res = check.gather([zk.get_async(p) for p in want])
        bad = []
        for (p, d), r in zip(want.items(), res):
            if isinstance(r, Exception):
                bad.append("%s: %r" % (p, r))
            elif r[0].decode("utf-8", "replace") != d:
                bad.append("%s: data %r, written %r" % (p, r[0], d))
        print("ro: %s read-only session 0x%x: %d/%d nodes written before the partition read "
              "back" % (a.host, zk.client_id[0], len(want) - len(bad), len(want)))
        problems += bad[:10]
        if not want:
            problems.append("nothing to read back")
        some = next(iter(want), "/")
        for name, op in (("create", lambda: zk.create("/part/ro-write", b"x")),
                         ("set_data", lambda: zk.set(some, b"changed")),
                         ("delete", lambda: zk.delete(some))):
            try:
                op()
                problems.append("%s SUCCEEDED on the read-only server" % name)
            except NotReadOnlyCallError:
                print("ro: %s -> NotReadOnlyCallError" % name)
            except Exception as e:  # noqa: BLE001
                problems.append("%s: %r, want NotReadOnlyCallError" % (name, e))
    finally:
        check.stop(zk)
    for p in problems:
        print("  PROBLEM %s" % p)
    return 1 if problems else 0


def subtree(zk, root):
    """{path: (data, stat tuple)} of ROOT's children (one level: the test writes flat)."""
    kids = sorted(zk.get_children(root))
    paths = [root.rstrip("/") + "/" + k for k in kids]
    out = {}
    for p, r in zip(paths, check.gather([zk.get_async(p) for p in paths])):
        if isinstance(r, Exception):
            raise r
        out[p] = (r[0], tuple(getattr(r[1], f) for f in check.STAT_FIELDS))
    return out


def cmd_verify(a):
    hosts = a.hosts.split(",")
    want = read_record(a.record)
    absent = [p for p in a.absent.split(",") if p]
    problems = []
    trees = {}
    for h in hosts:
        try:
            zk = check.connect_one(h)  # connected to H alone, after sync("/")
        except Exception as e:  # noqa: BLE001
            print("verify: cannot connect to %s: %r" % (h, e))
            return 2
        try:
            zk.sync(a.root)
            tree = trees[h] = subtree(zk, a.root)
            missing = [p for p in want if p not in tree]
            wrong = [p for p in want if p in tree and tree[p][0].decode("utf-8", "replace")
                     != want[p]]
            present = [p for p in absent if zk.exists(p) is not None]
        finally:
            check.stop(zk)
        print("verify %s: %d children of %s, %d/%d written nodes present, %d with wrong data, "
              "%d must-not-exist paths present" % (h, len(tree), a.root, len(want) - len(missing),
                                                   len(want), len(wrong), len(present)))
        problems += ["%s: written node %s MISSING" % (h, p) for p in missing[:10]]
        problems += ["%s: %s data %r, written %r" % (h, p, tree[p][0][:50], want[p][:50])
                     for p in wrong[:10]]
        problems += ["%s: %s EXISTS (a write that must not have succeeded)" % (h, p)
                     for p in present]
    ref = hosts[0]
    for h in hosts[1:]:
        a_, b_ = trees[ref], trees[h]
        for p in sorted(set(a_) | set(b_)):
            if p not in b_:
                problems.append("%s only on %s" % (p, ref))
            elif p not in a_:
                problems.append("%s only on %s" % (p, h))
            elif a_[p] != b_[p]:
                problems.append("%s differs: %r on %s, %r on %s" % (p, a_[p], ref, b_[p], h))
    for p in problems[:40]:
        print("  PROBLEM %s" % p)
    print("verify: %s on %d servers: %s" % (a.root, len(hosts),
                                            "identical, all written nodes present"
                                            if not problems else "%d problems" % len(problems)))
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("seed")
    p.add_argument("--hosts", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--record", required=True)
    p = sub.add_parser("writer")
    p.add_argument("--hosts", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--go", required=True)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--out", required=True)
    p.add_argument("--retry", action="store_true")
    p.add_argument("--record", default="")
    p = sub.add_parser("ro")
    p.add_argument("--host", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--prefix", default="/")
    p = sub.add_parser("verify")
    p.add_argument("--hosts", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--absent", default="")
    p.add_argument("--root", default="/part")
    a = ap.parse_args()
    import logging
    logging.basicConfig(level=logging.CRITICAL)  # Kazoo's reconnect chatter is expected here
    return {"seed": cmd_seed, "writer": cmd_writer, "ro": cmd_ro,
            "verify": cmd_verify}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
