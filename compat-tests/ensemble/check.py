#!/usr/bin/env python3
"""Kazoo-side checks for the ensemble suite (compat-tests/ensemble/run.sh).

  check.py load --hosts H1,H2,.. --seconds S --out FILE [--stop STOPFILE] [--min-acks N]
      One Kazoo client per host (client k connects first to host k, with the whole list after it
      so it fails over), each doing synchronous sequential creates /load/w<k>-<seq> with data
      "w<k> n=<i> s=<session>" until S seconds pass or STOPFILE exists. Every ACKNOWLEDGED create
      is appended to FILE (path TAB data TAB worker TAB unix-time; flushed per write). Each client
      also owns an ephemeral /ephemerals/w<k>-<session>: at the end its session must be the same
      one, never have been LOST (expired), and still own that ephemeral. Transient errors (connection loss,
      timeouts while a leader is elected) are counted, not failures; any other error is.
      Writes FILE.summary.json; exit 1 on expiry, lost ephemeral, unexpected error or < N acks.

  check.py verify --hosts H1,H2,.. --acked FILE
      Connects to EACH host alone, sync()s, then: every acknowledged write is there with its
      data; every host lists the same children of /load; each worker's acknowledged sequence
      numbers rise in the order they were acknowledged; no path was acknowledged twice.

  check.py same --hosts H1,H2,..
      Connects to each host alone, sync()s and walks the whole tree from "/": every host must
      hold the same nodes with the same data and the same Stat (all 11 fields; only the local
      times of /zookeeper/config may differ, as they do between Java members). Retried up to 3
      times (1 s apart) so sessions that are still closing do not count as divergence.

  check.py curator-verify --hosts H1,H2,.. --creates FILE --increments FILE
      The Curator load's (curator-load/, ferrokeeper.CuratorLoad) acknowledgements, on EACH host
      alone after sync(): every acknowledged create (FILE: one path a line) is a child of
      /curator-load with its client's data ("c<k> ..."); the acknowledged increments (FILE: "value
      client [confirmed]" lines) are exactly 1..N, no gap, no duplicate (mutual exclusion held);
      /curator-counter holds N (the highest acknowledged increment) at version N (one setData per
      increment, no unacknowledged one).

  check.py rw --via H --check H1,H2,.. [--count N] [--tag T]
      Through a client connected ONLY to H: create N nodes /rw/T-<i>, read each back on the same
      connection; then on each --check host alone: sync() and read every one back.

Exit status 0 = all good, 1 = a check failed, 2 = could not run (e.g. no connection).
"""

import argparse
import json
import logging
import os
import sys
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    NodeExistsError,
    OperationTimeoutError,
    SessionExpiredError,
    SessionMovedError,
)
from kazoo.handlers.threading import KazooTimeoutError

SESSION_TIMEOUT = 10.0  # seconds asked for; tickTime=500 allows 1..10 s
CONNECT_TIMEOUT = 20.0
OP_TIMEOUT = 15.0
# Reconnect quickly through the host list while a new leader is elected (Kazoo's default
# doubles the pause after each failed pass up to an hour, which can outlast the session).
CONN_RETRY = dict(max_tries=-1, delay=0.05, backoff=1.5, max_jitter=0.2, max_delay=0.5)
TRANSIENT = (ConnectionLoss, OperationTimeoutError, KazooTimeoutError, SessionMovedError)
STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
               "ephemeralOwner", "dataLength", "numChildren", "pzxid")


def log(msg):
    print("[check.py %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def client(hosts, timeout=SESSION_TIMEOUT):
    return KazooClient(hosts=hosts, timeout=timeout, randomize_hosts=False,
                       connection_retry=dict(CONN_RETRY))


def connect_one(host):
    """A client connected to HOST only, after sync('/')."""
    zk = client(host)
    zk.start(timeout=CONNECT_TIMEOUT)
    zk.sync("/")
    return zk


def stop(zk):
    try:
        zk.stop()
        zk.close()
    except Exception:  # noqa: BLE001 - best effort
        pass


def gather(asyncs, timeout=OP_TIMEOUT):
    """Results of async calls, exceptions in place of failed ones."""
    out = []
    for a in asyncs:
        try:
            out.append(a.get(timeout=timeout))
        except Exception as e:  # noqa: BLE001
            out.append(e)
    return out


def seq_of(path):
    return int(path.rsplit("-", 1)[1])


# ---------------------------------------------------------------------------------------------
# load


class Worker(threading.Thread):
    def __init__(self, k, hosts, args, out, lock):
        super().__init__(name="w%d" % k, daemon=True)
        self.k = k
        self.hosts = hosts
        self.args = args
        self.out = out
        self.lock = lock
        self.acks = 0
        self.transient = 0
        self.unexpected = []
        self.ack_times = []
        self.session = None
        self.expired = False
        self.closing = False
        self.suspended = 0
        self.servers = []  # every server this client was connected to, in order
        self.problems = []
        self.zk = None

    def listener(self, state):
        if self.closing:
            return
        if state == KazooState.LOST:
            self.expired = True
        elif state == KazooState.SUSPENDED:
            self.suspended += 1
        elif state == KazooState.CONNECTED:
            try:
                peer = "%s:%d" % self.zk._connection._socket.getpeername()[:2]
            except Exception:  # noqa: BLE001 - diagnostics only
                peer = "?"
            self.servers.append(peer)

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001
            self.problems.append("worker crashed: %r" % (e,))

    def _run(self):
        a = self.args
        zk = self.zk = client(self.hosts, a.session_timeout)
        zk.add_listener(self.listener)
        zk.start(timeout=CONNECT_TIMEOUT)  # the listener records the server
        self.session = zk.client_id[0]
        eph = "/ephemerals/w%d-%x" % (self.k, self.session)
        zk.ensure_path("/load")
        zk.ensure_path("/ephemerals")
        zk.create(eph, b"session %x" % self.session, ephemeral=True)
        pad = b"." * max(0, a.size)
        deadline = time.monotonic() + a.seconds
        i = 0
        while time.monotonic() < deadline and not (a.stop and os.path.exists(a.stop)):
            if self.expired:
                break
            data = b"w%d n=%d s=%x " % (self.k, i, self.session) + pad
            try:
                path = zk.create_async("/load/w%d-" % self.k, data, sequence=True).get(
                    timeout=OP_TIMEOUT)
            except TRANSIENT:
                self.transient += 1
                time.sleep(0.02)
                continue
            except SessionExpiredError:
                self.expired = True
                break
            except Exception as e:  # noqa: BLE001
                self.unexpected.append("%s: %r" % (time.strftime("%H:%M:%S"), e))
                time.sleep(0.05)
                if len(self.unexpected) > 100:
                    break
                continue
            t = time.time()
            with self.lock:
                self.out.write("%s\t%s\t%d\t%.3f\n" % (path, data.decode(), self.k, t))
                self.out.flush()
            self.acks += 1
            self.ack_times.append(t)
            i += 1
        # The end: same session, never expired, ephemeral still owned.
        if self.expired:
            self.problems.append("session 0x%x EXPIRED" % self.session)
        else:
            cid = zk.client_id
            if not cid or cid[0] != self.session:
                self.problems.append("session changed: 0x%x -> %r" % (self.session, cid))
            stat = None
            for _ in range(20):  # bounded: a reconnect may be in progress
                try:
                    stat = zk.exists(eph)
                    break
                except TRANSIENT:
                    time.sleep(0.5)
                except SessionExpiredError:
                    self.expired = True
                    self.problems.append("session 0x%x EXPIRED (at the end)" % self.session)
                    break
            if not self.expired:
                if stat is None:
                    self.problems.append("ephemeral %s is gone" % eph)
                elif stat.ephemeralOwner != self.session:
                    self.problems.append("ephemeral %s owned by 0x%x, not 0x%x"
                                         % (eph, stat.ephemeralOwner, self.session))
        if self.unexpected:
            self.problems.append("%d unexpected errors, first: %s"
                                 % (len(self.unexpected), self.unexpected[0]))
        self.closing = True
        stop(zk)


def max_gap(times):
    """(gap seconds, time the gap started) over sorted ack times."""
    times = sorted(times)
    best = (0.0, None)
    for a, b in zip(times, times[1:]):
        if b - a > best[0]:
            best = (b - a, a)
    return best


def cmd_load(a):
    hosts = a.hosts.split(",")
    lock = threading.Lock()
    with open(a.out, "a", encoding="utf-8") as out:
        workers = []
        for k in range(len(hosts) * a.per_host):
            first = k % len(hosts)
            ordered = hosts[first:] + hosts[:first]
            workers.append(Worker(k, ",".join(ordered), a, out, lock))
        for w in workers:
            w.start()
        limit = time.monotonic() + a.seconds + 120  # bounded even if a worker hangs
        for w in workers:
            w.join(max(0.1, limit - time.monotonic()))
        hung = [w.k for w in workers if w.is_alive()]
    all_times = [t for w in workers for t in w.ack_times]
    gap, gap_at = max_gap(all_times)
    acks = sum(w.acks for w in workers)
    summary = {
        "acked": acks,
        "transient_errors": sum(w.transient for w in workers),
        "unexpected_errors": sum(len(w.unexpected) for w in workers),
        "max_gap_s": round(gap, 3),
        "max_gap_at": gap_at,
        "workers": [{
            "worker": w.k, "session": "0x%x" % w.session if w.session else None,
            "acked": w.acks, "transient_errors": w.transient, "disconnects": w.suspended,
            "expired": w.expired, "servers": w.servers, "problems": w.problems,
            "max_gap_s": round(max_gap(w.ack_times)[0], 3),
        } for w in workers],
    }
    problems = ["w%d: %s" % (w.k, p) for w in workers for p in w.problems]
    problems += ["w%d: did not finish" % k for k in hung]
    if acks < a.min_acks:
        problems.append("only %d acknowledged writes (want >= %d)" % (acks, a.min_acks))
    summary["problems"] = problems
    with open(a.out + ".summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    print("load: %d acknowledged writes, %d transient errors, %d unexpected, longest pause "
          "between acks %.2f s (at %s), sessions %s"
          % (acks, summary["transient_errors"], summary["unexpected_errors"], gap,
             time.strftime("%H:%M:%S", time.localtime(gap_at)) if gap_at else "-",
             " ".join("%s(%d disconnects)" % (w["session"], w["disconnects"])
                      for w in summary["workers"])))
    for w in summary["workers"]:
        print("  w%d session %s: %d acked, %d transient, connected to %s"
              % (w["worker"], w["session"], w["acked"], w["transient_errors"],
                 " -> ".join(w["servers"])))
    for p in problems:
        print("  PROBLEM %s" % p)
    return 1 if problems else 0


# ---------------------------------------------------------------------------------------------
# verify


def read_acked(path):
    acked = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            p, data, k, t = line.split("\t")
            acked.append((p, data, int(k), float(t)))
    return acked


def cmd_verify(a):
    hosts = a.hosts.split(",")
    acked = read_acked(a.acked)
    problems = []
    # Per-client order and uniqueness (independent of the servers).
    seen = {}
    last = {}
    for p, _, k, _ in acked:
        if p in seen:
            problems.append("%s acknowledged twice" % p)
        seen[p] = True
        s = seq_of(p)
        if k in last and s <= last[k][0]:
            problems.append("w%d: %s acknowledged after %s (sequence went backwards)"
                            % (k, p, last[k][1]))
        last[k] = (s, p)
    children = {}
    for h in hosts:
        try:
            zk = connect_one(h)
        except Exception as e:  # noqa: BLE001
            print("verify: cannot connect to %s: %r" % (h, e))
            return 2
        try:
            kids = set(zk.get_children("/load"))
            children[h] = kids
            missing = [p for p, _, _, _ in acked if p.rsplit("/", 1)[1] not in kids]
            wrong = []
            present = [(p, d) for p, d, _, _ in acked if p.rsplit("/", 1)[1] in kids]
            for i in range(0, len(present), 500):
                batch = present[i:i + 500]
                res = gather([zk.get_async(p) for p, _ in batch])
                for (p, d), r in zip(batch, res):
                    if isinstance(r, Exception):
                        wrong.append("%s: %r" % (p, r))
                    elif r[0].decode("utf-8", "replace") != d:
                        wrong.append("%s: data %r, acknowledged %r" % (p, r[0][:60], d[:60]))
        finally:
            stop(zk)
        print("verify %s: %d children of /load, %d/%d acknowledged writes present, %d with "
              "wrong data" % (h, len(kids), len(acked) - len(missing), len(acked), len(wrong)))
        for p in missing[:10]:
            problems.append("%s: LOST acknowledged write %s" % (h, p))
        if len(missing) > 10:
            problems.append("%s: ... %d acknowledged writes lost in all" % (h, len(missing)))
        problems += ["%s: %s" % (h, w) for w in wrong[:10]]
    ref = hosts[0]
    for h in hosts[1:]:
        if children[h] != children[ref]:
            only_ref = sorted(children[ref] - children[h])
            only_h = sorted(children[h] - children[ref])
            problems.append("children of /load differ: %d only on %s (%s), %d only on %s (%s)"
                            % (len(only_ref), ref, " ".join(only_ref[:5]),
                               len(only_h), h, " ".join(only_h[:5])))
    if not acked:
        problems.append("no acknowledged writes to verify")
    for p in problems:
        print("  PROBLEM %s" % p)
    print("verify: %d acknowledged writes checked on %d servers: %s"
          % (len(acked), len(hosts), "OK" if not problems else "%d problems" % len(problems)))
    return 1 if problems else 0


# ---------------------------------------------------------------------------------------------
# curator-verify


def cmd_curator_verify(a):
    hosts = a.hosts.split(",")
    problems = []
    with open(a.creates, encoding="utf-8") as f:
        creates = [line.strip() for line in f if line.strip()]
    values = []
    by_value = {}
    with open(a.increments, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            v = int(parts[0])
            values.append(v)
            by_value.setdefault(v, []).append(" ".join(parts[1:]))
    # The acknowledgements themselves (independent of the servers).
    dup_creates = len(creates) - len(set(creates))
    if dup_creates:
        problems.append("%d creates acknowledged twice" % dup_creates)
    n = max(values) if values else 0
    dups = sorted(v for v, who in by_value.items() if len(who) > 1)
    gaps = sorted(set(range(1, n + 1)) - set(values))
    if dups:
        problems.append("increments acknowledged more than once (two lock holders?): %s"
                        % "; ".join("%d by %s" % (v, ", ".join(by_value[v])) for v in dups[:10]))
    if gaps:
        problems.append("%d values below the highest acknowledged increment %d never acknowledged: %s"
                        % (len(gaps), n, " ".join(map(str, gaps[:20]))))
    if [v for v in values if v < 1]:
        problems.append("acknowledged increments below 1")
    if not creates:
        problems.append("no acknowledged Curator creates")
    if not values:
        problems.append("no acknowledged Curator increments")
    for h in hosts:
        try:
            zk = connect_one(h)
        except Exception as e:  # noqa: BLE001
            print("curator-verify: cannot connect to %s: %r" % (h, e))
            return 2
        try:
            kids = set(zk.get_children("/curator-load"))
            present = [p for p in creates if p.rsplit("/", 1)[1] in kids]
            missing = [p for p in creates if p.rsplit("/", 1)[1] not in kids]
            wrong = []
            for i in range(0, len(present), 500):
                batch = present[i:i + 500]
                for p, r in zip(batch, gather([zk.get_async(p) for p in batch])):
                    want = p.rsplit("/", 1)[1].rsplit("-", 1)[0] + " "
                    if isinstance(r, Exception):
                        wrong.append("%s: %r" % (p, r))
                    elif not r[0].decode("utf-8", "replace").startswith(want):
                        wrong.append("%s: data %r, not of client %s" % (p, r[0][:60], want.strip()))
            data, stat = zk.get("/curator-counter")
            value = int(data.decode())
        except Exception as e:  # noqa: BLE001
            problems.append("%s: %r" % (h, e))
            continue
        finally:
            stop(zk)
        print("curator-verify %s: %d/%d acknowledged creates present (%d children of /curator-load), "
              "counter %d at version %d, highest acknowledged increment %d"
              % (h, len(present), len(creates), len(kids), value, stat.version, n))
        for p in missing[:10]:
            problems.append("%s: LOST acknowledged Curator create %s" % (h, p))
        if len(missing) > 10:
            problems.append("%s: ... %d acknowledged Curator creates lost in all" % (h, len(missing)))
        problems += ["%s: %s" % (h, w) for w in wrong[:10]]
        if value != n:
            problems.append("%s: /curator-counter is %d, the highest acknowledged increment is %d"
                            % (h, value, n))
        if stat.version != value:
            problems.append("%s: /curator-counter is %d at version %d (want one setData per "
                            "increment: version == value)" % (h, value, stat.version))
    for p in problems:
        print("  PROBLEM %s" % p)
    print("curator-verify: %d acknowledged creates, increments 1..%d (%d acknowledged, %d confirmed "
          "by reading back) checked on %d servers: %s"
          % (len(creates), n, len(values),
             sum(1 for who in by_value.values() for w in who if w.endswith("confirmed")),
             len(hosts), "OK" if not problems else "%d problems" % len(problems)))
    return 1 if problems else 0


# ---------------------------------------------------------------------------------------------
# same


def walk(zk):
    """{path: (data, stat tuple, sorted children)} for the whole tree, level by level."""
    tree = {}
    level = ["/"]
    while level:
        datas = gather([zk.get_async(p) for p in level])
        kids = gather([zk.get_children_async(p) for p in level])
        nxt = []
        for p, d, c in zip(level, datas, kids):
            if isinstance(d, NoNodeError) or isinstance(c, NoNodeError):
                continue  # deleted while walking (a closing session's ephemeral)
            if isinstance(d, Exception):
                raise d
            if isinstance(c, Exception):
                raise c
            c = sorted(c)
            tree[p] = (d[0], tuple(getattr(d[1], f) for f in STAT_FIELDS), c)
            nxt += [(p.rstrip("/") + "/" + x) for x in c]
        level = nxt
    return tree


# Java keeps /zookeeper/config (the quorum config, a local node: no txn sets it) with each
# member's own local time in ctime/mtime; they differ across members of a Java ensemble.
LOCAL_FIELDS = {"/zookeeper/config": ("ctime", "mtime")}


def diff_trees(a, b, name_a, name_b, limit=20):
    out = []
    for p in sorted(set(a) | set(b)):
        if p not in b:
            out.append("%s only on %s" % (p, name_a))
        elif p not in a:
            out.append("%s only on %s" % (p, name_b))
        else:
            da, sa, _ = a[p]
            db, sb, _ = b[p]
            if da != db:
                out.append("%s data: %r on %s, %r on %s" % (p, da[:40], name_a, db[:40], name_b))
            for f, x, y in zip(STAT_FIELDS, sa, sb):
                if x != y and f not in LOCAL_FIELDS.get(p, ()):
                    out.append("%s %s: %s on %s, %s on %s" % (p, f, x, name_a, y, name_b))
        if len(out) >= limit:
            out.append("...")
            break
    return out


def cmd_same(a):
    hosts = a.hosts.split(",")
    diffs = []
    for attempt in range(3):
        trees = {}
        for h in hosts:
            try:
                zk = connect_one(h)
            except Exception as e:  # noqa: BLE001
                print("same: cannot connect to %s: %r" % (h, e))
                return 2
            try:
                trees[h] = walk(zk)
            finally:
                stop(zk)
        diffs = []
        for h in hosts[1:]:
            diffs += diff_trees(trees[hosts[0]], trees[h], hosts[0], h)
        if not diffs:
            print("same: %d nodes, identical (data and all Stat fields) on %s"
                  % (len(trees[hosts[0]]), " ".join(hosts)))
            return 0
        log("trees differ (attempt %d): %s" % (attempt + 1, diffs[0]))
        time.sleep(1)
    for d in diffs:
        print("  DIFF %s" % d)
    print("same: servers differ")
    return 1


# ---------------------------------------------------------------------------------------------
# rw


def cmd_rw(a):
    problems = []
    try:
        zk = client(a.via)
        zk.start(timeout=CONNECT_TIMEOUT)
    except Exception as e:  # noqa: BLE001
        print("rw: cannot connect to %s: %r" % (a.via, e))
        return 2
    written = {}
    try:
        zk.ensure_path("/rw")
        for i in range(a.count):
            p = "/rw/%s-%d" % (a.tag, i)
            d = b"%s via %s #%d" % (a.tag.encode(), a.via.encode(), i)
            try:
                zk.create(p, d)
            except NodeExistsError:
                zk.set(p, d)
            written[p] = d
            got = zk.get(p)[0]
            if got != d:
                problems.append("%s: read back %r through %s right after writing %r"
                                % (p, got, a.via, d))
    except Exception as e:  # noqa: BLE001
        problems.append("writing through %s: %r" % (a.via, e))
    finally:
        stop(zk)
    print("rw: %d nodes written and read back through %s alone" % (len(written), a.via))
    for h in a.check.split(",") if a.check else []:
        try:
            zk = connect_one(h)
        except Exception as e:  # noqa: BLE001
            problems.append("cannot connect to %s: %r" % (h, e))
            continue
        try:
            res = gather([zk.get_async(p) for p in written])
            bad = [p for (p, d), r in zip(written.items(), res)
                   if isinstance(r, Exception) or r[0] != d]
            print("rw: %s (after sync) has %d/%d of them" % (h, len(written) - len(bad),
                                                            len(written)))
            problems += ["%s: %s missing or different" % (h, p) for p in bad[:5]]
        finally:
            stop(zk)
    for p in problems:
        print("  PROBLEM %s" % p)
    print("rw: %d nodes written through %s, read back there and after sync on %s: %s"
          % (len(written), a.via, a.check or "-", "OK" if not problems else "FAILED"))
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("load")
    p.add_argument("--hosts", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stop", default="")
    p.add_argument("--min-acks", type=int, default=1)
    p.add_argument("--per-host", type=int, default=1, help="clients per host")
    p.add_argument("--size", type=int, default=100, help="padding bytes per write")
    p.add_argument("--session-timeout", type=float, default=SESSION_TIMEOUT)
    p = sub.add_parser("verify")
    p.add_argument("--hosts", required=True)
    p.add_argument("--acked", required=True)
    p = sub.add_parser("same")
    p.add_argument("--hosts", required=True)
    p = sub.add_parser("curator-verify")
    p.add_argument("--hosts", required=True)
    p.add_argument("--creates", required=True)
    p.add_argument("--increments", required=True)
    p = sub.add_parser("rw")
    p.add_argument("--via", required=True)
    p.add_argument("--check", default="")
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--tag", default="rw")
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # Kazoo's reconnect chatter is expected here
    return {"load": cmd_load, "verify": cmd_verify, "same": cmd_same, "rw": cmd_rw,
            "curator-verify": cmd_curator_verify}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
