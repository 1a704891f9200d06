"""Watches: exists/get/get_children watch events, one-shot semantics, ordering,
and the watch-based helpers DataWatch, ChildrenWatch and TreeCache."""

import threading

from kazoo.recipe.cache import TreeCache, TreeEvent
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from conftest import WAIT, Recorder, wait_until


def kinds(events):
    return [(e.type, e.path) for e in events]


def test_exists_watch_created_changed_deleted(client_factory, zk, root):
    other = client_factory()
    path = root + "/w"
    ev = Recorder()
    assert zk.exists(path, watch=ev) is None
    other.create(path, b"1")
    ev.wait_len(1)
    assert zk.exists(path, watch=ev) is not None
    other.set(path, b"2")
    ev.wait_len(2)
    zk.exists(path, watch=ev)
    other.delete(path)
    ev.wait_len(3)
    assert kinds(ev.items) == [("CREATED", path), ("CHANGED", path), ("DELETED", path)]
    assert all(e.state == "CONNECTED" for e in ev.items)


def test_get_watch_is_one_shot(client_factory, zk, root):
    other = client_factory()
    path = zk.create(root + "/once", b"0")
    sentinel = zk.create(root + "/sentinel")
    ev = Recorder()
    zk.get(path, watch=ev)
    other.set(path, b"1")
    other.set(path, b"2")
    # Events on one connection arrive in order, so once the sentinel's event
    # is in, a second event for `path` would already be there.
    zk.get(sentinel, watch=ev)
    other.set(sentinel, b"s")
    ev.wait_len(2)
    assert kinds(ev.items) == [("CHANGED", path), ("CHANGED", sentinel)]


def test_get_watch_sees_delete_and_not_acl_change(client_factory, zk, root):
    other = client_factory()
    path = zk.create(root + "/d", b"0")
    ev = Recorder()
    zk.get(path, watch=ev)
    other.set_acls(path, zk.get_acls(path)[0])  # setACL fires nothing
    other.delete(path)
    ev.wait_len(1)
    assert kinds(ev.items) == [("DELETED", path)]


def test_children_watch_events(client_factory, zk, root):
    other = client_factory()
    parent = zk.create(root + "/parent")
    ev = Recorder()
    assert zk.get_children(parent, watch=ev) == []
    other.create(parent + "/a")
    ev.wait_len(1)
    children, stat = zk.get_children(parent, watch=ev, include_data=True)
    assert children == ["a"] and stat.numChildren == 1
    other.delete(parent + "/a")
    ev.wait_len(2)
    zk.get_children(parent, watch=ev)
    other.set(parent, b"data change is not a child event")
    other.delete(parent)
    ev.wait_len(3)
    assert kinds(ev.items) == [
        ("CHILD", parent), ("CHILD", parent), ("DELETED", parent),
    ]


def test_data_and_child_watch_on_same_node(client_factory, zk, root):
    other = client_factory()
    path = zk.create(root + "/both")
    data_ev, child_ev = Recorder(), Recorder()
    zk.get(path, watch=data_ev)
    zk.get_children(path, watch=child_ev)
    other.create(path + "/kid")
    child_ev.wait_len(1)
    other.delete(path + "/kid")
    other.delete(path)
    data_ev.wait_len(1)
    assert kinds(data_ev.items) == [("DELETED", path)]
    assert kinds(child_ev.items) == [("CHILD", path)]


def test_ephemeral_owner_close_fires_watches(client_factory, zk, root):
    owner = client_factory()
    path = owner.create(root + "/eph", ephemeral=True)
    data_ev, child_ev = Recorder(), Recorder()
    zk.exists(path, watch=data_ev)
    zk.get_children(root, watch=child_ev)
    owner.stop()
    data_ev.wait_len(1)
    child_ev.wait_len(1)
    assert kinds(data_ev.items) == [("DELETED", path)]
    assert kinds(child_ev.items) == [("CHILD", root)]


def test_events_arrive_in_change_order(client_factory, zk, root):
    other = client_factory()
    paths = [zk.create("%s/o%d" % (root, i)) for i in range(10)]
    ev = Recorder()
    for p in paths:
        zk.get(p, watch=ev)
    for p in reversed(paths):
        other.set(p, b"x")
    ev.wait_len(10)
    assert [e.path for e in ev.items] == list(reversed(paths))


def test_several_client_watchers_on_one_path(client_factory, zk, root):
    other = client_factory()
    path = zk.create(root + "/multi")
    a, b = Recorder(), Recorder()
    zk.get(path, watch=a)
    zk.exists(path, watch=b)
    other.set(path, b"1")
    a.wait_len(1)
    b.wait_len(1)
    assert kinds(a.items) == kinds(b.items) == [("CHANGED", path)]


def test_own_write_triggers_own_watch(zk, root):
    path = zk.create(root + "/self", b"0")
    ev = Recorder()
    zk.get(path, watch=ev)
    zk.set(path, b"1")
    ev.wait_len(1)
    assert kinds(ev.items) == [("CHANGED", path)]


def test_data_watch_recipe(client_factory, zk, root):
    other = client_factory()
    path = root + "/dw"
    seen = Recorder()

    @zk.DataWatch(path)
    def watcher(data, stat):
        seen((data, stat.version if stat else None))

    seen.wait_len(1)
    other.create(path, b"a")
    seen.wait_for(lambda s: (b"a", 0) in s)
    other.set(path, b"b")
    seen.wait_for(lambda s: (b"b", 1) in s)
    other.delete(path)
    seen.wait_for(lambda s: s[-1] == (None, None) and len(s) >= 4)
    assert seen.items[0] == (None, None)
    assert [d for d, _ in seen.items] == [None, b"a", b"b", None]


def test_data_watch_with_event_and_stop(client_factory, zk, root):
    other = client_factory()
    path = zk.create(root + "/dw2", b"x")
    seen = Recorder()

    def watcher(data, stat, event):
        seen((data, event.type if event else None))
        if data == b"stop":
            return False  # stop watching

    DataWatch(zk, path, watcher)
    seen.wait_len(1)
    other.set(path, b"stop")
    seen.wait_len(2)
    other.set(path, b"ignored")
    # a fresh watch on the same connection proves later events were delivered
    probe = Recorder()
    zk.get(path, watch=probe)
    other.set(path, b"probe")
    probe.wait_len(1)
    assert seen.items == [(b"x", None), (b"stop", "CHANGED")]


def test_children_watch_recipe(client_factory, zk, root):
    other = client_factory()
    parent = zk.create(root + "/cw")
    seen = Recorder()
    ChildrenWatch(zk, parent, lambda children: seen(sorted(children)))
    seen.wait_len(1)
    other.create(parent + "/x")
    seen.wait_for(lambda s: s[-1] == ["x"])
    other.create(parent + "/y", ephemeral=True)
    seen.wait_for(lambda s: s[-1] == ["x", "y"])
    other.stop()  # ephemeral y goes away
    seen.wait_for(lambda s: s[-1] == ["x"] and len(s) >= 4)
    assert seen.items[0] == []


def test_children_watch_recipe_send_event(client_factory, zk, root):
    other = client_factory()
    parent = zk.create(root + "/cwe")
    seen = Recorder()

    def watcher(children, event):
        seen((sorted(children), event.type if event else None))

    zk.ChildrenWatch(parent, watcher, send_event=True)
    seen.wait_len(1)
    other.create(parent + "/k")
    seen.wait_len(2)
    assert seen.items == [([], None), (["k"], "CHILD")]


def test_tree_cache(client_factory, zk, root):
    other = client_factory()
    base = zk.create(root + "/tree", b"top")
    zk.create(base + "/a", b"A")
    zk.create(base + "/a/deep", b"D")
    events = Recorder()
    cache = TreeCache(zk, base)
    cache.listen(lambda ev: events(ev))
    cache.start()
    try:
        events.wait_for(lambda s: any(e.event_type == TreeEvent.INITIALIZED for e in s),
                        message="INITIALIZED")
        added = {e.event_data.path for e in events.snapshot()
                 if e.event_type == TreeEvent.NODE_ADDED}
        assert added == {base, base + "/a", base + "/a/deep"}
        assert cache.get_data(base + "/a/deep").data == b"D"
        assert cache.get_children(base) == frozenset(["a"])

        def seen(kind, path):
            return lambda s: any(e.event_type == kind and e.event_data
                                 and e.event_data.path == path for e in s)

        other.create(base + "/b", b"B")
        events.wait_for(seen(TreeEvent.NODE_ADDED, base + "/b"), message="added b")
        other.set(base + "/a", b"A2")
        events.wait_for(seen(TreeEvent.NODE_UPDATED, base + "/a"), message="updated a")
        other.delete(base + "/a", recursive=True)
        events.wait_for(seen(TreeEvent.NODE_REMOVED, base + "/a/deep"), message="removed deep")
        events.wait_for(seen(TreeEvent.NODE_REMOVED, base + "/a"), message="removed a")
        wait_until(lambda: cache.get_children(base) == frozenset(["b"]),
                   message="cache children")
        assert cache.get_data(base + "/a") is None
        assert cache.get_data(base + "/b").data == b"B"
        assert cache.get_data(base + "/a", default="gone") == "gone"
    finally:
        cache.close()


def test_watch_callback_can_call_client(client_factory, zk, root):
    other = client_factory()
    path = zk.create(root + "/cb", b"old")
    result = []
    done = threading.Event()

    def watcher(event):
        # The new data is visible by the time the event is delivered.
        result.append(zk.get(path)[0])
        done.set()

    zk.get(path, watch=watcher)
    other.set(path, b"new")
    assert done.wait(WAIT)
    assert result == [b"new"]
