"""Node CRUD through KazooClient: create/ensure_path/exists/get/set/get_children/delete,
the stat fields a server returns, and the error codes mapped to Kazoo exceptions."""

import re

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    ReconfigDisabledError,
)
from kazoo.protocol.states import ZnodeStat

from conftest import HOSTS, WAIT, wait_until


def test_create_returns_path_and_get_returns_data(zk, root):
    path = root + "/plain"
    assert zk.create(path, b"hello") == path
    data, stat = zk.get(path)
    assert data == b"hello"
    assert isinstance(stat, ZnodeStat)
    assert stat.version == 0
    assert stat.cversion == 0
    assert stat.aversion == 0
    assert stat.dataLength == 5
    assert stat.numChildren == 0
    assert stat.ephemeralOwner == 0
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.czxid > 0
    assert stat.ctime == stat.mtime and stat.ctime > 0


def test_create_default_value_is_empty(zk, root):
    path = zk.create(root + "/empty")
    data, stat = zk.get(path)
    assert data == b""
    assert stat.dataLength == 0


def test_create_existing_raises_node_exists(zk, root):
    zk.create(root + "/dup", b"1")
    with pytest.raises(NodeExistsError):
        zk.create(root + "/dup", b"2")
    assert zk.get(root + "/dup")[0] == b"1"


def test_create_without_parent_raises_no_node(zk, root):
    with pytest.raises(NoNodeError):
        zk.create(root + "/missing/child", b"x")


def test_create_makepath(zk, root):
    path = root + "/a/b/c/d"
    assert zk.create(path, b"deep", makepath=True) == path
    assert zk.get(path)[0] == b"deep"
    for parent in (root + "/a", root + "/a/b", root + "/a/b/c"):
        assert zk.exists(parent) is not None
    # makepath on an existing parent chain is fine, existing leaf is not.
    zk.create(root + "/a/b/other", makepath=True)
    with pytest.raises(NodeExistsError):
        zk.create(path, makepath=True)


def test_create_include_data_returns_stat(zk, root):
    path, stat = zk.create(root + "/withstat", b"abc", include_data=True)
    assert path == root + "/withstat"
    assert isinstance(stat, ZnodeStat)
    assert stat.dataLength == 3
    assert stat.version == 0
    assert stat == zk.exists(path)


def test_create_include_data_sequence_ephemeral(zk, root):
    path, stat = zk.create(root + "/es-", b"", ephemeral=True, sequence=True,
                           include_data=True)
    assert re.fullmatch(re.escape(root) + r"/es-\d{10}", path)
    assert stat.ephemeralOwner == zk.client_id[0]


def test_sequence_nodes_are_numbered_in_order(zk, root):
    parent = zk.create(root + "/seq")
    names = [zk.create(parent + "/n-", sequence=True) for _ in range(3)]
    names.append(zk.create(parent + "/m-", ephemeral=True, sequence=True))
    suffixes = []
    for name in names:
        m = re.fullmatch(re.escape(parent) + r"/[nm]-(\d{10})", name)
        assert m, name
        suffixes.append(int(m.group(1)))
    # The counter is the parent's cversion: 0, 1, 2, 3 for a fresh parent.
    assert suffixes == [0, 1, 2, 3]
    # The counter counts creations; a delete neither advances nor rewinds it.
    zk.delete(names[-1])
    nxt = zk.create(parent + "/n-", sequence=True)
    assert nxt.endswith("%010d" % 4)
    assert zk.create(parent + "/n-", sequence=True).endswith("%010d" % 5)
    # A sequence node with an empty prefix sits directly under the parent.
    bare = zk.create(parent + "/", sequence=True)
    assert re.fullmatch(re.escape(parent) + r"/\d{10}", bare)


def test_ephemeral_node_owned_by_session(client_factory, root):
    owner = client_factory()
    watcher = client_factory()
    path = owner.create(root + "/eph", b"e", ephemeral=True)
    stat = watcher.exists(path)
    assert stat.ephemeralOwner == owner.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        owner.create(path + "/child")
    owner.stop()
    # Closing the session removes its ephemerals.
    wait_until(lambda: watcher.exists(path) is None, message="ephemeral removal")


def test_ensure_path(zk, root):
    path = root + "/x/y/z"
    assert zk.ensure_path(path)
    assert zk.exists(path) is not None
    # Idempotent.
    assert zk.ensure_path(path)
    assert zk.ensure_path(root)
    assert zk.get_children(root + "/x") == ["y"]


def test_exists(zk, root):
    assert zk.exists(root + "/nope") is None
    zk.create(root + "/yes", b"12")
    stat = zk.exists(root + "/yes")
    assert stat.dataLength == 2
    assert zk.exists("/") is not None
    assert zk.exists("/zookeeper") is not None


def test_set_and_versions(zk, root):
    path = zk.create(root + "/v", b"0")
    stat = zk.set(path, b"1")
    assert stat.version == 1
    stat = zk.set(path, b"2", version=1)
    assert stat.version == 2
    assert stat.mzxid > stat.czxid
    with pytest.raises(BadVersionError):
        zk.set(path, b"3", version=1)
    data, stat = zk.get(path)
    assert (data, stat.version) == (b"2", 2)
    # version -1 matches anything
    assert zk.set(path, b"", version=-1).version == 3
    assert zk.get(path)[0] == b""


def test_get_set_missing_raise_no_node(zk, root):
    with pytest.raises(NoNodeError):
        zk.get(root + "/missing")
    with pytest.raises(NoNodeError):
        zk.set(root + "/missing", b"x")


def test_large_value_roundtrip(zk, root):
    blob = bytes(range(256)) * 2048  # 512 KiB, all byte values
    path = zk.create(root + "/big", blob)
    data, stat = zk.get(path)
    assert data == blob
    assert stat.dataLength == len(blob)


def test_unicode_paths_and_data(zk, root):
    name = "n\u00e9\u00fc-\u4e2d\u6587-\u20ac"  # 2- and 3-byte UTF-8
    path = zk.create(root + "/" + name, "d\u00e4ta".encode("utf-8"))
    assert zk.get_children(root) == [name]
    assert zk.get(path)[0].decode("utf-8") == "d\u00e4ta"


def test_server_side_path_validation(zk, root):
    # Characters outside the BMP decode to surrogates on a Java server, which
    # the path validator refuses; so does NUL.  Kazoo sends both unchanged.
    with pytest.raises(BadArgumentsError):
        zk.create(root + "/emoji-\U0001f600", b"")
    with pytest.raises(BadArgumentsError):
        zk.create(root + "/nul\u0000x", b"")
    assert zk.get_children(root) == []


def test_get_children_and_include_data(zk, root):
    parent = zk.create(root + "/p", b"parent")
    assert zk.get_children(parent) == []
    expected = {"c%02d" % i for i in range(30)}
    for name in expected:
        zk.create(parent + "/" + name)
    assert set(zk.get_children(parent)) == expected
    children, stat = zk.get_children(parent, include_data=True)
    assert set(children) == expected
    assert isinstance(stat, ZnodeStat)
    assert stat.numChildren == 30
    assert stat.dataLength == 6
    with pytest.raises(NoNodeError):
        zk.get_children(root + "/missing")
    with pytest.raises(NoNodeError):
        zk.get_children(root + "/missing", include_data=True)


def test_parent_stat_tracks_children(zk, root):
    parent = zk.create(root + "/cv")
    before = zk.exists(parent)
    a = zk.create(parent + "/a")
    zk.create(parent + "/b")
    mid = zk.exists(parent)
    assert mid.numChildren == 2
    assert mid.cversion == before.cversion + 2
    assert mid.pzxid > before.pzxid
    assert mid.version == before.version  # data version untouched
    zk.delete(a)
    after = zk.exists(parent)
    assert after.numChildren == 1
    # cversion counts deletes too
    assert after.cversion == before.cversion + 3
    assert after.pzxid > mid.pzxid


def test_delete(zk, root):
    path = zk.create(root + "/d", b"")
    zk.set(path, b"x")
    with pytest.raises(BadVersionError):
        zk.delete(path, version=0)
    zk.delete(path, version=1)
    assert zk.exists(path) is None
    with pytest.raises(NoNodeError):
        zk.delete(path)


def test_delete_not_empty_and_recursive(zk, root):
    zk.create(root + "/t/a/b", makepath=True)
    zk.create(root + "/t/c", b"c")
    with pytest.raises(NotEmptyError):
        zk.delete(root + "/t")
    zk.delete(root + "/t", recursive=True)
    assert zk.exists(root + "/t") is None
    # recursive delete of a missing node is a no-op (Kazoo swallows NoNode)
    zk.delete(root + "/t", recursive=True)


def test_async_api(zk, root):
    path = root + "/async"
    assert zk.create_async(path, b"a").get(timeout=WAIT) == path
    data, stat = zk.get_async(path).get(timeout=WAIT)
    assert data == b"a"
    assert zk.set_async(path, b"b").get(timeout=WAIT).version == 1
    assert zk.exists_async(path).get(timeout=WAIT).version == 1
    assert zk.get_children_async(root).get(timeout=WAIT) == ["async"]
    res = zk.get_async(root + "/missing")
    with pytest.raises(NoNodeError):
        res.get(timeout=WAIT)
    # many requests in flight at once come back in order
    results = [zk.set_async(path, str(i).encode()) for i in range(50)]
    versions = [r.get(timeout=WAIT).version for r in results]
    assert versions == list(range(2, 52))
    zk.delete_async(path).get(timeout=WAIT)
    assert zk.exists(path) is None


def test_chroot_client(client_factory, zk, root):
    zk.create(root + "/inside", b"in")
    chrooted = client_factory(hosts=HOSTS + root)
    assert chrooted.get("/inside")[0] == b"in"
    assert chrooted.create("/made", b"m") == "/made"
    assert zk.get(root + "/made")[0] == b"m"
    assert sorted(chrooted.get_children("/")) == ["inside", "made"]
    seq = chrooted.create("/s-", sequence=True)
    assert seq.startswith("/s-")
    assert chrooted.sync("/made") == "/made"


def test_sync(zk, root):
    path = zk.create(root + "/s")
    assert zk.sync(path) == path
    assert zk.sync("/") == "/"


def test_reserved_zookeeper_node(zk):
    children = zk.get_children("/zookeeper")
    assert "quota" in children
    data, _ = zk.get("/zookeeper/config")
    assert isinstance(data, bytes)


def test_client_side_path_validation(zk, root):
    # Kazoo rejects these before anything reaches the server.
    with pytest.raises(ValueError):
        zk.create(root + "/a/./b", b"")
    with pytest.raises(ValueError):
        zk.create(root + "/a/../b", b"")
    with pytest.raises(TypeError):
        zk.create("/x", "not-bytes")


def test_reconfig_disabled_by_default(zk):
    # Opcode 16.  A server without reconfigEnabled=true refuses it (-123)
    # before looking at anything else.
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining=None, leaving="2", new_members=None)
