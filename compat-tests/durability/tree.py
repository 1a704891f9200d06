#!/usr/bin/env python3
"""Builds, dumps and checks a ZooKeeper tree for the dataDir migration suite (run.sh).

  tree.py build PORT STATEFILE [PREFIX]   rich deterministic tree under /mig-PREFIX (default "a");
                                          leaves its ephemeral-owning session ALIVE (os._exit
                                          without closing it) and saves its id/password in STATEFILE
  tree.py dump PORT OUT.json              every node from "/" (incl. /zookeeper): data, full Stat,
                                          ACL list, sorted children
  tree.py compare [--loose] A.json B.json [NAME_A NAME_B]
                                          exit 0 if equal, else print the first differences;
                                          --loose ignores ctime/mtime and which (nonzero) session
                                          owns an ephemeral (trees built on two fresh servers)
  tree.py resume PORT STATEFILE           reconnect with the saved session id/password: the session
                                          must still be valid and own its ephemerals; exits without
                                          closing the session (it stays alive)
  tree.py container PORT STATEFILE        delete the only child of the builder's container node; the
                                          server must then reap the (now empty) container
  tree.py snapcheck LISTING STATEFILE...  LISTING is Java's SnapshotFormatter output for a snapshot:
                                          TTL nodes, containers and ephemerals must carry the right
                                          ephemeralOwner encoding, ephemerals' sessions must be in it

Kazoo only. Everything is deterministic: fixed names and data, no randomness; only the server's
zxids, times and sequence counters vary, and those are what the dumps compare.
"""

import json
import os
import sys
import time
from binascii import hexlify, unhexlify

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    NoNodeError,
    NodeExistsError,
    NotEmptyError,
)
from kazoo.protocol.serialization import Create2, long_struct
from kazoo.security import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_digest_acl,
)

SESSION_TIMEOUT = 40.0  # seconds; the default maxSessionTimeout for tickTime=2000
CONNECT_TIMEOUT = 15.0
AUTH = ("digest", "alice:secret")
TTL_MS = 3600 * 1000  # long enough never to expire during a run


def log(msg):
    print("[tree.py] %s" % msg, file=sys.stderr, flush=True)


def connect(port, client_id=None, auth=True):
    c = KazooClient(
        hosts="127.0.0.1:%d" % port,
        timeout=SESSION_TIMEOUT,
        client_id=client_id,
        connection_retry={"max_tries": 3, "delay": 0.2, "max_delay": 1},
        command_retry=None,
    )
    c.start(timeout=CONNECT_TIMEOUT)
    if auth:
        c.add_auth(*AUTH)
    return c


# ---------------------------------------------------------------------------------------------
# Requests kazoo lacks: CreateContainer (opcode 19) and CreateTTL (opcode 21). Both answer with a
# Create2Response (path + Stat), so they reuse Create2's (de)serialization.


class CreateContainer(Create2):
    type = 19


class CreateTTL(Create2):
    type = 21

    def __new__(cls, path, data, acl, flags, ttl):
        self = super().__new__(cls, path, data, acl, flags)
        self.ttl = ttl
        return self

    def serialize(self):
        b = super().serialize()
        b.extend(long_struct.pack(self.ttl))
        return b


CONTAINER_FLAG = 4
PERSISTENT_WITH_TTL = 5
PERSISTENT_SEQUENTIAL_WITH_TTL = 6


def call(client, request):
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=CONNECT_TIMEOUT)


def create_container(client, path, value=b"", acl=None):
    return call(client, CreateContainer(path, value, acl or OPEN_ACL_UNSAFE, CONTAINER_FLAG))


def create_ttl(client, path, value=b"", ttl=TTL_MS, sequence=False, acl=None):
    flags = PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else PERSISTENT_WITH_TTL
    return call(client, CreateTTL(path, value, acl or OPEN_ACL_UNSAFE, flags, ttl))


# ---------------------------------------------------------------------------------------------
# build


def expect_error(exc_type, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc_type:
        return
    raise AssertionError("%s%r did not raise %s" % (fn.__name__, args, exc_type.__name__))


class Counter:
    """Counts the requests that become transactions (successful or failed writes)."""

    def __init__(self):
        self.n = 0

    def add(self, k=1):
        self.n += k


def filler(c, path, count, txns, tag):
    """`count` setData calls on one node: pushes the server past snapCount between sections so
    the interesting nodes end up both inside snapshots and in the logs after them."""
    for i in range(count):
        c.set(path, b"%s-%04d" % (tag, i))
    txns.add(count)


def build(port, statefile, prefix):
    root = "/mig-" + prefix
    c = connect(port)
    txns = Counter()
    txns.add(1)  # createSession

    alice_all = make_digest_acl("alice", "secret", all=True)
    bob_cd = make_digest_acl("bob", "hunter2", create=True, delete=True)
    local_all = ACL(Permissions.ALL, Id("ip", "127.0.0.1"))
    local_rw = ACL(Permissions.READ | Permissions.WRITE, Id("ip", "127.0.0.1"))
    subnet_read = ACL(Permissions.READ, Id("ip", "127.0.0.0/8"))
    world_read = READ_ACL_UNSAFE[0]
    mixed = [world_read, alice_all, local_rw, bob_cd]

    c.create(root, b"root of " + prefix.encode())
    c.create(root + "/counter", b"0")
    txns.add(2)

    # Quota on the whole subtree: Java keeps zookeeper_stats' data up to date in memory (without
    # a txn) and recomputes it when it loads a snapshot.
    qroot = "/zookeeper/quota" + root
    c.create(qroot, b"")
    c.create(qroot + "/zookeeper_limits", b"count=100000,bytes=100000000")
    c.create(qroot + "/zookeeper_stats", b"count=0,bytes=0")
    txns.add(3)

    # Plain data: empty, text, binary, null, larger, non-ASCII name.
    c.create(root + "/plain", b"")
    c.create(root + "/plain/empty", b"")
    c.create(root + "/plain/text", b"hello, world")
    c.create(root + "/plain/binary", bytes(range(256)))
    c.create(root + "/plain/null", None)
    c.create(root + "/plain/large", bytes((i * 7 + 3) % 256 for i in range(5000)))
    c.create(root + "/plain/\u00fcn\u00efcode-\u540d\u524d", "\u00e9t\u00e9".encode("utf-8"))
    txns.add(7)

    # Nested path (makepath creates each missing ancestor with empty data).
    c.create(root + "/deep/a/b/c/d/e", b"leaf", makepath=True)
    c.set(root + "/deep/a/b", b"middle")
    txns.add(7)

    filler(c, root + "/counter", 60, txns, b"f1")

    # Sequential nodes; deleting some advances the parent's cversion and so the counter.
    c.create(root + "/seq", b"")
    txns.add(1)
    for i in range(8):
        c.create(root + "/seq/item-", b"item%d" % i, sequence=True)
    txns.add(8)
    c.delete(root + "/seq/item-0000000001")
    c.delete(root + "/seq/item-0000000003")
    txns.add(2)
    for i in range(2):
        c.create(root + "/seq/other-", b"other%d" % i, sequence=True)
    txns.add(2)

    # Versions: several setData, ending in empty and null data; one with an explicit version.
    c.create(root + "/versions", b"v0")
    for i in range(1, 5):
        c.set(root + "/versions", b"v%d" % i)
    c.set(root + "/versions", b"v5", version=4)
    c.set(root + "/versions", b"")
    c.create(root + "/versions-null", b"x")
    c.set(root + "/versions-null", None)
    txns.add(9)

    # ACLs.
    c.create(root + "/acl", b"")
    c.create(root + "/acl/digest", b"d", acl=[alice_all])
    c.create(root + "/acl/ip", b"i", acl=[local_all])
    c.create(root + "/acl/readonly", b"r", acl=READ_ACL_UNSAFE)
    c.create(root + "/acl/mixed", b"m", acl=mixed)
    c.create(root + "/acl/mixed-again", b"m2", acl=list(mixed))  # same list, shared ACL entry
    c.create(root + "/acl/subnet", b"s", acl=[subnet_read, alice_all])
    c.create(root + "/acl/auth", b"a", acl=CREATOR_ALL_ACL)  # auth scheme -> digest:alice:...
    c.create(root + "/acl/changed", b"c")
    c.set_acls(root + "/acl/changed", [alice_all])
    c.set_acls(root + "/acl/changed", mixed, version=1)
    c.set_acls(root + "/acl/changed", [alice_all, local_all, world_read])
    txns.add(12)
    expect_error(BadVersionError, c.set_acls, root + "/acl/changed", [alice_all], version=0)
    txns.add(1)

    filler(c, root + "/counter", 60, txns, b"f2")

    # Ephemerals owned by this (builder) session, which stays alive after we exit.
    c.create(root + "/eph", b"")
    txns.add(1)
    ephemerals = [c.create(root + "/eph/owner", b"mine", ephemeral=True)]
    ephemerals.append(c.create(root + "/eph/guarded", b"g", ephemeral=True, acl=[alice_all]))
    for i in range(3):
        ephemerals.append(c.create(root + "/eph/es-", b"es%d" % i, ephemeral=True, sequence=True))
    c.set(root + "/eph/owner", b"mine, updated")
    txns.add(6)

    # A second session that creates ephemerals and closes: closeSession deletes them.
    c2 = connect(port)
    c2.create(root + "/eph/short-lived", b"bye", ephemeral=True)
    c2.create(root + "/eph/short-seq-", b"bye", ephemeral=True, sequence=True)
    c2.stop()
    c2.close()
    txns.add(4)

    # Containers (kept non-empty so the server does not reap them during the build) and TTL nodes.
    create_container(c, root + "/container", b"box")
    c.create(root + "/container/child", b"inside")
    create_container(c, root + "/container2", b"box2")
    c.create(root + "/container2/keep", b"k")
    c.create(root + "/container2/drop", b"d")
    c.delete(root + "/container2/drop")
    c.create(root + "/ttls", b"")
    create_ttl(c, root + "/ttls/ttl", b"lives an hour")
    create_ttl(c, root + "/ttls/ttlseq-", b"seq ttl", sequence=True)
    create_ttl(c, root + "/ttls/ttlseq-", b"seq ttl 2", sequence=True)
    c.create(root + "/ttls/ttl/child", b"under a ttl node")
    txns.add(11)

    filler(c, root + "/counter", 60, txns, b"f3")

    # Deletions: pzxid / cversion / numChildren of the parents.
    c.create(root + "/gone", b"")
    for i in range(10):
        c.create(root + "/gone/x%d" % i, b"x")
    for i in range(5):
        c.delete(root + "/gone/x%d" % i)
    c.create(root + "/gone/sub/deeper", b"", makepath=True)
    c.delete(root + "/gone/sub/deeper")
    c.delete(root + "/gone/sub")
    c.create(root + "/gone/versioned", b"")
    c.set(root + "/gone/versioned", b"1")
    c.delete(root + "/gone/versioned", version=1)
    txns.add(1 + 10 + 5 + 2 + 2 + 3)

    # Failed single writes (Java logs them as error txns: they take a zxid).
    expect_error(NodeExistsError, c.create, root + "/gone", b"")
    expect_error(NoNodeError, c.set, root + "/missing", b"")
    expect_error(BadVersionError, c.set, root + "/versions", b"", version=99)
    expect_error(NoNodeError, c.delete, root + "/missing")
    expect_error(NotEmptyError, c.delete, root + "/gone")
    txns.add(5)

    # Multi: two that succeed, two that fail (a failed multi is logged too and takes a zxid).
    c.create(root + "/multi", b"")
    txns.add(1)
    t = c.transaction()
    t.create(root + "/multi/a", b"a")
    t.create(root + "/multi/b", b"b")
    t.create(root + "/multi/s-", b"s", sequence=True)
    t.set_data(root + "/multi/a", b"a2")
    t.check(root + "/multi/b", 0)
    t.create(root + "/multi/doomed", b"")
    t.delete(root + "/multi/doomed")
    res = t.commit()
    assert not any(isinstance(r, Exception) for r in res), res
    t = c.transaction()
    t.set_data(root + "/multi/b", b"b2", version=0)
    t.create(root + "/multi/c", b"c", acl=mixed)
    t.delete(root + "/multi/a", version=1)
    res = t.commit()
    assert not any(isinstance(r, Exception) for r in res), res
    t = c.transaction()
    t.create(root + "/multi/never", b"n")
    t.check(root + "/multi/b", 99)
    res = t.commit()
    assert any(isinstance(r, Exception) for r in res), res
    t = c.transaction()
    t.delete(root + "/multi/absent")
    t.create(root + "/multi/never2", b"n")
    res = t.commit()
    assert any(isinstance(r, Exception) for r in res), res
    txns.add(4)
    expect_error(NoNodeError, c.get, root + "/multi/never")

    # Bulk: many nodes, then drop some; then enough writes to go past snapCount several times.
    c.create(root + "/bulk", b"")
    for i in range(50):
        c.create(root + "/bulk/n-%03d" % i, b"payload %03d " % i * 10)
    for i in range(40, 50):
        c.delete(root + "/bulk/n-%03d" % i)
    txns.add(61)
    filler(c, root + "/counter", 150, txns, b"f4")
    c.set(root + "/counter", b"final")
    c.sync(root)
    txns.add(1)

    sid, passwd = c.client_id
    state = {
        "root": root,
        "session_id": sid,
        "session_id_hex": "0x%x" % sid,
        "password": hexlify(passwd).decode(),
        "ephemerals": ephemerals,
        "container": root + "/container",
        "container_child": root + "/container/child",
        "txns": txns.n,
    }
    with open(statefile, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    log("built %s: ~%d txns, session 0x%x left open with %d ephemerals"
        % (root, txns.n, sid, len(ephemerals)))
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit WITHOUT closing the session: the kernel closes the socket, the server keeps the
    # session (and its ephemerals) until its timeout.
    os._exit(0)


# ---------------------------------------------------------------------------------------------
# dump / compare

STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
               "ephemeralOwner", "dataLength", "numChildren", "pzxid")


def dump(port, out):
    c = connect(port)
    nodes = {}
    todo = ["/"]
    while todo:
        path = todo.pop()
        data, stat = c.get(path)
        acls, astat = c.get_acls(path)
        children = sorted(c.get_children(path))
        nodes[path] = {
            "data": None if data is None else hexlify(data).decode(),
            "stat": {f: getattr(stat, f) for f in STAT_FIELDS},
            "acl": [[a.perms, a.id.scheme, a.id.id] for a in acls],
            "children": children,
        }
        if tuple(astat) != tuple(stat):
            nodes[path]["getACL_stat_differs"] = {f: getattr(astat, f) for f in STAT_FIELDS}
        for ch in children:
            todo.append(("" if path == "/" else path) + "/" + ch)
    c.stop()
    c.close()
    with open(out, "w") as f:
        json.dump({"nodes": nodes}, f, indent=1, sort_keys=True)
    log("dumped %d nodes to %s" % (len(nodes), out))


def loosen(nodes):
    for n in nodes.values():
        st = n["stat"]
        st.pop("ctime", None)
        st.pop("mtime", None)
        if st.get("ephemeralOwner"):
            st["ephemeralOwner"] = "some session"
    return nodes


def compare(a_file, b_file, a_name="before", b_name="after", loose=False, limit=40):
    with open(a_file) as f:
        a = json.load(f)["nodes"]
    with open(b_file) as f:
        b = json.load(f)["nodes"]
    if loose:
        a, b = loosen(a), loosen(b)
    diffs = []
    diffs += only_in(set(a) - set(b), a_name)
    diffs += only_in(set(b) - set(a), b_name)
    for p in sorted(set(a) & set(b)):
        na, nb = a[p], b[p]
        for key in sorted(set(na) | set(nb)):
            va, vb = na.get(key), nb.get(key)
            if va == vb:
                continue
            if key == "stat" and isinstance(va, dict) and isinstance(vb, dict):
                for f in STAT_FIELDS:
                    if va.get(f) != vb.get(f):
                        diffs.append("%s: stat.%s %s=%s %s=%s"
                                     % (p, f, a_name, fmt(f, va.get(f)), b_name, fmt(f, vb.get(f))))
            else:
                diffs.append("%s: %s %s=%s %s=%s"
                             % (p, key, a_name, short(va), b_name, short(vb)))
    if not diffs:
        print("dumps equal (%d nodes)" % len(a))
        return 0
    print("%d differences (%d nodes in %s, %d in %s); first %d:"
          % (len(diffs), len(a), a_name, len(b), b_name, min(limit, len(diffs))))
    for d in diffs[:limit]:
        print("  " + d)
    return 1


def only_in(paths, name):
    """One line per missing subtree: its top path and how many nodes lie below it."""
    out = []
    for p in sorted(paths):
        parent = p.rsplit("/", 1)[0] or "/"
        if p != "/" and parent in paths:
            continue
        below = sum(1 for q in paths if q.startswith(p.rstrip("/") + "/"))
        out.append("%s: only in %s%s" % (p, name, " (with %d nodes below it)" % below if below else ""))
    return out


def fmt(field, v):
    if isinstance(v, int) and v >= 0 and field in ("czxid", "mzxid", "pzxid", "ephemeralOwner"):
        return "0x%x" % v
    return repr(v)


def short(v):
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= 120 else s[:117] + "..."


# ---------------------------------------------------------------------------------------------
# resume / container


def load_state(statefile):
    with open(statefile) as f:
        return json.load(f)


def resume(port, statefile):
    st = load_state(statefile)
    sid, passwd = st["session_id"], unhexlify(st["password"])
    states = []
    c = KazooClient(
        hosts="127.0.0.1:%d" % port,
        timeout=SESSION_TIMEOUT,
        client_id=(sid, passwd),
        connection_retry={"max_tries": 3, "delay": 0.2, "max_delay": 1},
    )
    c.add_listener(lambda s: states.append(s))
    errors = []
    try:
        c.start(timeout=CONNECT_TIMEOUT)
    except Exception as e:  # noqa: BLE001
        print("could not reconnect session 0x%x: %r" % (sid, e))
        os._exit(1)
    got = c.client_id[0]
    if got != sid:
        errors.append("session 0x%x was not resumed: the server gave session %s (expired?)"
                      % (sid, "none" if got is None else "0x%x" % got))
    if KazooState.LOST in states:
        errors.append("client saw state LOST (session expired): %r" % states)
    if c.state != KazooState.CONNECTED:
        errors.append("client state %s, want CONNECTED" % c.state)
    if not errors:
        c.add_auth(*AUTH)
        for p in st["ephemerals"]:
            stat = c.exists(p)
            if stat is None:
                errors.append("ephemeral %s is gone" % p)
            elif stat.ephemeralOwner != sid:
                errors.append("ephemeral %s: ephemeralOwner 0x%x, want 0x%x"
                              % (p, stat.ephemeralOwner, sid))
        # The session must be usable: a read on it round-trips.
        try:
            c.get_children(st["root"] + "/eph")
        except Exception as e:  # noqa: BLE001
            errors.append("read on the resumed session failed: %r" % e)
    for e in errors:
        print(e)
    if not errors:
        print("session 0x%x resumed; its %d ephemerals are present and owned by it"
              % (sid, len(st["ephemerals"])))
    sys.stdout.flush()
    # Leave the session alive (a later migration may resume it again).
    os._exit(1 if errors else 0)


def container(port, statefile, wait_s=15.0):
    st = load_state(statefile)
    c = connect(port)
    try:
        if c.exists(st["container"]) is None:
            print("container %s is missing before the check" % st["container"])
            return 1
        c.delete(st["container_child"])
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if c.exists(st["container"]) is None:
                print("empty container %s was reaped" % st["container"])
                return 0
            time.sleep(0.2)
        print("container %s still exists %.0fs after its last child was deleted "
              "(not loaded as a container?)" % (st["container"], wait_s))
        return 1
    finally:
        c.stop()
        c.close()


# ---------------------------------------------------------------------------------------------
# snapcheck: node types as stored in a snapshot (clients never see them: a TTL node's or a
# container's Stat.ephemeralOwner reads 0)

TTL_OWNER = (0xFF << 56) | TTL_MS  # EphemeralType.TTL: 0xFF in the top byte, the TTL below
CONTAINER_OWNER = 1 << 63  # EphemeralType.CONTAINER: 0x8000000000000000


def parse_snapshot_listing(path):
    nodes, sessions, last_zxid = {}, {}, None
    section, cur = None, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("ZNode Details"):
                section = "nodes"
            elif line.startswith("Session Details"):
                section = "sessions"
            elif line.startswith("Last zxid:"):
                last_zxid = int(line.split(":", 1)[1].strip(), 16)
            elif line == "----" or not line:
                cur = None
            elif section == "nodes" and line.startswith("  ") and cur is not None:
                k, _, v = line.strip().partition(" = ")
                nodes[cur][k] = v
            elif section == "nodes":
                cur = line
                nodes[cur] = {}
            elif section == "sessions":
                parts = [x.strip() for x in line.split(",")]
                if len(parts) == 3 and parts[0].startswith("0x"):
                    sessions[int(parts[0], 16)] = (int(parts[1]), int(parts[2]))
    return nodes, sessions, last_zxid


def snapcheck(listing, statefiles):
    import re
    nodes, sessions, last_zxid = parse_snapshot_listing(listing)
    errors = []
    if last_zxid is None:
        errors.append("no 'Last zxid' line: not a complete SnapshotFormatter listing")
    owned = {}
    for p, n in nodes.items():
        if "ephemeralOwner" in n:
            owned.setdefault(int(n["ephemeralOwner"], 16), []).append(p)
    checked = 0
    for sf in statefiles:
        st = load_state(sf)
        root, sid = st["root"], st["session_id"]
        ttl_re = re.compile(re.escape(root) + r"/ttls/ttlseq-\d{10}$")
        if root not in nodes:
            errors.append("%s is not in the snapshot" % root)
            continue
        if root + "/ttls/ttl" not in nodes:
            errors.append("%s/ttls/ttl is not in the snapshot" % root)
        for p in sorted(nodes):
            if p != root and not p.startswith(root + "/"):
                continue
            if p == root + "/ttls/ttl" or ttl_re.match(p):
                want, kind = TTL_OWNER, "TTL node (ttl %d ms)" % TTL_MS
            elif p in (root + "/container", root + "/container2"):
                want, kind = CONTAINER_OWNER, "container"
            elif p in st["ephemerals"]:
                want, kind = sid, "ephemeral of session 0x%x" % sid
            else:
                want, kind = 0, "persistent node"
            got = int(nodes[p].get("ephemeralOwner", "-1"), 16)
            checked += 1
            if got != want:
                errors.append("%s: ephemeralOwner 0x%x, want 0x%x (%s)" % (p, got, want, kind))
        if sid in owned:
            if sid not in sessions:
                errors.append("session 0x%x owns %d nodes but is not in the session list"
                              % (sid, len(owned[sid])))
            else:
                timeout, count = sessions[sid]
                if timeout != int(SESSION_TIMEOUT * 1000):
                    errors.append("session 0x%x: timeout %d, want %d"
                                  % (sid, timeout, int(SESSION_TIMEOUT * 1000)))
                if count != len(owned[sid]):
                    errors.append("session 0x%x: ephemeralCount %d, but it owns %d nodes"
                                  % (sid, count, len(owned[sid])))
    for e in errors[:40]:
        print(e)
    if errors:
        return 1
    print("%d nodes type-checked in %d-node snapshot (last zxid 0x%x, %d sessions)"
          % (checked, len(nodes), last_zxid, len(sessions)))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "build" and len(args) in (2, 3):
        build(int(args[0]), args[1], args[2] if len(args) == 3 else "a")
    elif cmd == "dump" and len(args) == 2:
        dump(int(args[0]), args[1])
    elif cmd == "compare" and len([x for x in args if x != "--loose"]) in (2, 4):
        return compare(*[x for x in args if x != "--loose"], loose="--loose" in args)
    elif cmd == "resume" and len(args) == 2:
        resume(int(args[0]), args[1])
    elif cmd == "container" and len(args) == 2:
        return container(int(args[0]), args[1])
    elif cmd == "snapcheck" and len(args) >= 2:
        return snapcheck(args[0], args[1:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
