"""KazooClient.transaction(): multi (opcode 14) with create/delete/set_data/check,
commit results, and per-operation error results on failure."""

import re

import pytest
from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoAuthError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import make_digest_acl

from conftest import HOSTS, WAIT


def test_commit_success_results(zk, root):
    zk.create(root + "/old", b"old")
    zk.create(root + "/gone")
    t = zk.transaction()
    t.create(root + "/new", b"new")
    t.set_data(root + "/old", b"changed", version=0)
    t.check(root + "/new", 0)
    t.delete(root + "/gone", version=0)
    results = t.commit()
    assert results[0] == root + "/new"
    assert isinstance(results[1], ZnodeStat) and results[1].version == 1
    assert results[2:] == [True, True]
    assert zk.get(root + "/new")[0] == b"new"
    assert zk.get(root + "/old")[0] == b"changed"
    assert zk.exists(root + "/gone") is None
    # All ops of one multi share one zxid.
    assert zk.exists(root + "/new").czxid == zk.exists(root + "/old").mzxid


def test_commit_failure_per_op_results(zk, root):
    zk.create(root + "/a", b"a")
    t = zk.transaction()
    t.create(root + "/b", b"b")
    t.set_data(root + "/a", b"A")
    t.check(root + "/a", 5)          # wrong version: fails
    t.delete(root + "/a")
    t.create(root + "/c")
    results = t.commit()
    assert [type(r) for r in results] == [
        RolledBackError, RolledBackError, BadVersionError,
        RuntimeInconsistency, RuntimeInconsistency,
    ]
    # Nothing was applied.
    assert zk.exists(root + "/b") is None
    assert zk.exists(root + "/c") is None
    data, stat = zk.get(root + "/a")
    assert (data, stat.version) == (b"a", 0)


@pytest.mark.parametrize("bad_op, expected", [
    ("create_existing", NodeExistsError),
    ("delete_missing", NoNodeError),
    ("delete_nonempty", NotEmptyError),
    ("set_missing", NoNodeError),
    ("check_missing", NoNodeError),
])
def test_first_op_failure_classes(zk, root, bad_op, expected):
    zk.create(root + "/exists/child", makepath=True)
    t = zk.transaction()
    if bad_op == "create_existing":
        t.create(root + "/exists")
    elif bad_op == "delete_missing":
        t.delete(root + "/missing")
    elif bad_op == "delete_nonempty":
        t.delete(root + "/exists")
    elif bad_op == "set_missing":
        t.set_data(root + "/missing", b"x")
    elif bad_op == "check_missing":
        t.check(root + "/missing", 0)
    t.create(root + "/after")
    results = t.commit()
    assert len(results) == 2
    assert type(results[0]) is expected
    assert type(results[1]) is RuntimeInconsistency
    assert zk.exists(root + "/after") is None


def test_ops_see_earlier_ops(zk, root):
    t = zk.transaction()
    t.create(root + "/p", b"p")
    t.create(root + "/p/c1")
    t.create(root + "/p/c2")
    t.set_data(root + "/p", b"p2")
    t.check(root + "/p", 1)
    t.delete(root + "/p/c1")
    results = t.commit()
    assert results[:3] == [root + "/p", root + "/p/c1", root + "/p/c2"]
    assert zk.get_children(root + "/p") == ["c2"]
    assert zk.get(root + "/p")[0] == b"p2"

    # ...and a later failure undoes them all.
    t = zk.transaction()
    t.delete(root + "/p/c2")
    t.delete(root + "/p")
    t.create(root + "/p")           # recreate ok
    t.delete(root + "/p/nothing")   # fails
    results = t.commit()
    assert type(results[3]) is NoNodeError
    assert zk.get_children(root + "/p") == ["c2"]


def test_sequence_and_ephemeral_in_transaction(zk, root):
    zk.create(root + "/q")
    t = zk.transaction()
    t.create(root + "/q/item-", b"1", sequence=True)
    t.create(root + "/q/item-", b"2", sequence=True)
    t.create(root + "/q/eph", ephemeral=True)
    r = t.commit()
    assert re.fullmatch(re.escape(root) + r"/q/item-0000000000", r[0])
    assert re.fullmatch(re.escape(root) + r"/q/item-0000000001", r[1])
    assert zk.exists(root + "/q/eph").ephemeralOwner == zk.client_id[0]


def test_transaction_acl_check(client_factory, zk, root):
    locked = zk.create(root + "/locked", acl=[make_digest_acl("x", "y", all=True)])
    anon = client_factory()
    t = anon.transaction()
    t.create(root + "/fine")
    t.create(locked + "/child")
    results = t.commit()
    assert [type(r) for r in results] == [RolledBackError, NoAuthError]
    assert zk.exists(root + "/fine") is None


def test_transaction_context_manager(zk, root):
    with zk.transaction() as t:
        t.create(root + "/ctx1")
        t.create(root + "/ctx2")
    assert t.committed
    assert sorted(zk.get_children(root)) == ["ctx1", "ctx2"]
    with pytest.raises(ValueError):
        t.create(root + "/ctx3")  # already committed


def test_transaction_async_and_chroot(client_factory, zk, root):
    chrooted = client_factory(hosts=HOSTS + root)
    t = chrooted.transaction()
    t.create("/x", b"1")
    t.create("/x/y")
    assert t.commit_async().get(timeout=WAIT) == ["/x", "/x/y"]
    assert zk.exists(root + "/x/y") is not None


def test_many_ops(zk, root):
    t = zk.transaction()
    for i in range(200):
        t.create("%s/n%03d" % (root, i), b"v")
    results = t.commit()
    assert len(results) == 200
    assert zk.exists(root).numChildren == 200
