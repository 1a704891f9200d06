"""Kazoo recipes, each driven by several clients (sessions) at once:
Lock, ReadLock/WriteLock, Semaphore, Election, Counter, Barrier, DoubleBarrier,
Queue, LockingQueue, Party, ShallowParty, leases and SetPartitioner."""

import datetime
import threading
import time

import pytest
from kazoo.exceptions import LockTimeout

from conftest import WAIT, Recorder, join_all, wait_until


def spawn(target, *args, name=None):
    t = threading.Thread(target=target, args=args, name=name, daemon=True)
    t.start()
    return t


class Occupancy:
    """Counts how many threads are inside a critical section at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self.current = 0
        self.max = 0
        self.entries = []

    def enter(self, who):
        with self._lock:
            self.current += 1
            self.max = max(self.max, self.current)
            self.entries.append(who)

    def leave(self):
        with self._lock:
            self.current -= 1


# ---------------------------------------------------------------- locks


def test_lock_contention_never_two_holders(client_factory, root):
    path = root + "/lock"
    clients = [client_factory() for _ in range(4)]
    occ = Occupancy()
    errors = []

    def worker(client, ident):
        try:
            for _ in range(3):
                lock = client.Lock(path, ident)
                assert lock.acquire(timeout=WAIT)
                occ.enter(ident)
                time.sleep(0.02)
                occ.leave()
                lock.release()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [spawn(worker, c, "w%d" % i, name="lock-w%d" % i)
               for i, c in enumerate(clients)]
    join_all(threads, timeout=40)
    assert errors == []
    assert occ.max == 1
    assert len(occ.entries) == 12
    assert clients[0].get_children(path) == []


def test_lock_timeout_nonblocking_and_holder_crash(client_factory, root):
    path = root + "/lock2"
    holder_client, waiter_client = client_factory(), client_factory()
    holder = holder_client.Lock(path, "holder")
    assert holder.acquire(timeout=WAIT)
    assert holder.is_acquired

    waiter = waiter_client.Lock(path, "waiter")
    assert waiter.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        waiter.acquire(timeout=0.3)

    got = threading.Event()

    def wait_for_lock():
        if waiter.acquire(timeout=WAIT):
            got.set()

    t = spawn(wait_for_lock)
    wait_until(lambda: waiter_client.Lock(path).contenders() == ["holder", "waiter"],
               message="both contenders queued")
    assert not got.is_set()
    # The holder's session goes away: its ephemeral lock node is deleted.
    holder_client.stop()
    assert got.wait(WAIT)
    join_all([t])
    assert waiter.contenders() == ["waiter"]
    waiter.release()
    assert waiter.contenders() == []


def test_lock_context_manager_reentrant_objects(client_factory, root):
    c = client_factory()
    lock = c.Lock(root + "/ctx", "me")
    with lock:
        assert lock.is_acquired
        assert lock.contenders() == ["me"]
    assert not lock.is_acquired


def test_read_write_locks(client_factory, root):
    path = root + "/rw"
    c1, c2, c3 = client_factory(), client_factory(), client_factory()
    r1, r2 = c1.ReadLock(path, "r1"), c2.ReadLock(path, "r2")
    assert r1.acquire(timeout=WAIT)
    assert r2.acquire(timeout=WAIT)  # readers share
    w = c3.WriteLock(path, "w")
    with pytest.raises(LockTimeout):
        w.acquire(timeout=0.3)
    r1.release()
    r2.release()
    assert w.acquire(timeout=WAIT)
    r3 = c1.ReadLock(path, "r3")
    assert r3.acquire(blocking=False) is False
    w.release()
    assert r3.acquire(timeout=WAIT)
    r3.release()


def test_semaphore(client_factory, root):
    path = root + "/sem"
    c1, c2, c3 = client_factory(), client_factory(), client_factory()
    s1 = c1.Semaphore(path, "s1", max_leases=2)
    s2 = c2.Semaphore(path, "s2", max_leases=2)
    s3 = c3.Semaphore(path, "s3", max_leases=2)
    assert s1.acquire(timeout=WAIT)
    assert s2.acquire(timeout=WAIT)
    assert sorted(s3.lease_holders()) == ["s1", "s2"]
    assert s3.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        s3.acquire(timeout=0.3)
    # A mismatching max_leases is detected from the stored value.
    with pytest.raises(ValueError):
        c3.Semaphore(path, "bad", max_leases=5).acquire(blocking=False)
    s1.release()
    assert s3.acquire(timeout=WAIT)
    assert sorted(s1.lease_holders()) == ["s2", "s3"]
    s2.release()
    s3.release()
    assert s1.lease_holders() == []


def test_semaphore_contention(client_factory, root):
    path = root + "/sem2"
    clients = [client_factory() for _ in range(4)]
    occ = Occupancy()
    errors = []

    def worker(client, ident):
        try:
            for _ in range(2):
                sem = client.Semaphore(path, ident, max_leases=2)
                assert sem.acquire(timeout=WAIT)
                occ.enter(ident)
                time.sleep(0.05)
                occ.leave()
                sem.release()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    join_all([spawn(worker, c, "s%d" % i) for i, c in enumerate(clients)], timeout=40)
    assert errors == []
    assert 1 <= occ.max <= 2
    assert len(occ.entries) == 8


# ---------------------------------------------------------------- election


def test_election_one_leader_at_a_time(client_factory, root):
    path = root + "/election"
    clients = [client_factory() for _ in range(3)]
    occ = Occupancy()
    gate = threading.Event()
    first_leader = []
    errors = []

    def lead(ident):
        occ.enter(ident)
        if not first_leader:
            first_leader.append(ident)
            gate.wait(WAIT)  # hold leadership until the test looked around
        time.sleep(0.05)
        occ.leave()
        # returning gives up leadership

    def campaign(client, ident):
        try:
            client.Election(path, ident).run(lead, ident)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [spawn(campaign, c, "e%d" % i) for i, c in enumerate(clients)]
    observer = clients[0].Election(path)
    wait_until(lambda: len(observer.contenders()) == 3, message="3 contenders")
    contenders = observer.contenders()
    assert sorted(contenders) == ["e0", "e1", "e2"]
    wait_until(lambda: first_leader, message="a leader")
    assert contenders[0] == first_leader[0]  # the leader is first in line
    gate.set()
    join_all(threads)
    assert errors == []
    assert occ.max == 1
    assert sorted(occ.entries) == ["e0", "e1", "e2"]
    assert occ.entries[0] == first_leader[0]


def test_election_cancel(client_factory, root):
    path = root + "/election2"
    leader_client, other_client = client_factory(), client_factory()
    release = threading.Event()
    led = []
    leader = leader_client.Election(path, "leader")
    t1 = spawn(leader.run, lambda: (led.append("leader"), release.wait(WAIT)))
    wait_until(lambda: led == ["leader"], message="leader elected")
    waiting = other_client.Election(path, "waiting")
    t2 = spawn(waiting.run, lambda: led.append("waiting"))
    wait_until(lambda: len(leader.contenders()) == 2, message="second contender")
    waiting.cancel()
    join_all([t2])
    release.set()
    join_all([t1])
    assert led == ["leader"]


# ---------------------------------------------------------------- counter


def test_counter_concurrent_increments(client_factory, root):
    path = root + "/counter"
    clients = [client_factory() for _ in range(3)]

    def bump(client):
        counter = client.Counter(path)
        for _ in range(15):
            counter += 1

    join_all([spawn(bump, c) for c in clients], timeout=40)
    counter = clients[0].Counter(path)
    assert counter.value == 45
    counter -= 5
    assert counter.value == 40
    assert (counter.pre_value, counter.post_value) == (45, 40)
    assert clients[0].get(path)[0] == b"40"


def test_counter_float_and_curator_format(zk, root):
    f = zk.Counter(root + "/float", default=0.5)
    f += 1.25
    assert f.value == 1.75
    cur = zk.Counter(root + "/curator", support_curator=True)
    cur += 300
    # Curator's SharedCount layout: big-endian 4-byte int.
    assert zk.get(root + "/curator")[0] == (300).to_bytes(4, "big")
    assert cur.value == 300


# ---------------------------------------------------------------- barriers


def test_barrier(client_factory, root):
    path = root + "/barrier"
    owner, waiter_client = client_factory(), client_factory()
    barrier = owner.Barrier(path)
    barrier.create()
    waiter = waiter_client.Barrier(path)
    assert waiter.wait(timeout=0.3) is False
    result = []
    t = spawn(lambda: result.append(waiter.wait(timeout=WAIT)))
    time.sleep(0.2)
    assert result == []
    assert barrier.remove()
    join_all([t])
    assert result == [True]
    assert waiter.wait(timeout=0.1) is True  # no barrier node: passes at once


def test_double_barrier(client_factory, root):
    path = root + "/dbarrier"
    n = 3
    clients = [client_factory() for _ in range(n)]
    log = Recorder()
    errors = []

    def participant(client, ident):
        try:
            db = client.DoubleBarrier(path, n, identifier=ident)
            log(("calling-enter", ident))
            db.enter()
            log(("entered", ident))
            db.leave()
            log(("left", ident))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [spawn(participant, clients[0], "p0"), spawn(participant, clients[1], "p1")]
    log.wait_for(lambda s: len([x for x in s if x[0] == "calling-enter"]) == 2)
    time.sleep(0.3)
    assert not any(x[0] == "entered" for x in log.snapshot()), "entered with 2 of 3"
    threads.append(spawn(participant, clients[2], "p2"))
    join_all(threads, timeout=30)
    assert errors == []
    items = log.snapshot()
    first_entered = min(i for i, x in enumerate(items) if x[0] == "entered")
    assert len([x for x in items[:first_entered] if x[0] == "calling-enter"]) == 3
    assert sorted(x[1] for x in items if x[0] == "left") == ["p0", "p1", "p2"]
    assert clients[0].get_children(path) == []


# ---------------------------------------------------------------- queues


def test_queue_priority_and_fifo(client_factory, root):
    path = root + "/queue"
    producer, consumer = client_factory(), client_factory()
    q = producer.Queue(path)
    q.put(b"a")
    q.put(b"b")
    q.put(b"urgent", priority=1)
    q.put(b"late", priority=999)
    assert len(q) == 4
    cq = consumer.Queue(path)
    assert [cq.get() for _ in range(4)] == [b"urgent", b"a", b"b", b"late"]
    assert cq.get() is None
    assert len(cq) == 0


def test_queue_competing_consumers(client_factory, root):
    path = root + "/queue2"
    producer = client_factory()
    q = producer.Queue(path)
    items = [b"item-%02d" % i for i in range(30)]
    for item in items:
        q.put(item)
    got = []
    lock = threading.Lock()

    def consume(client):
        cq = client.Queue(path)
        while True:
            item = cq.get()
            if item is None:
                return
            with lock:
                got.append(item)

    join_all([spawn(consume, client_factory()) for _ in range(3)], timeout=40)
    assert sorted(got) == items  # every item exactly once


def test_locking_queue(client_factory, root):
    path = root + "/lqueue"
    producer, c1, c2 = client_factory(), client_factory(), client_factory()
    producer.LockingQueue(path).put_all([b"one", b"two"])
    producer.LockingQueue(path).put(b"first", priority=1)
    q1, q2 = c1.LockingQueue(path), c2.LockingQueue(path)
    assert len(q1) == 3
    assert q1.get(timeout=WAIT) == b"first"
    assert q1.holds_lock()
    # The locked entry is skipped by other consumers.
    assert q2.get(timeout=WAIT) == b"one"
    assert q1.release()       # give "first" back without consuming it
    assert not q1.holds_lock()
    assert q2.consume()       # "one" is done
    assert q2.get(timeout=WAIT) == b"first"
    assert q2.consume()
    assert q1.get(timeout=WAIT) == b"two"
    c1.stop()                 # lock dies with the session: "two" is back
    assert q2.get(timeout=WAIT) == b"two"
    assert q2.consume()
    assert len(q2) == 0
    assert q2.get(timeout=0.3) is None


def test_locking_queue_blocks_until_put(client_factory, root):
    path = root + "/lqueue2"
    producer, consumer = client_factory(), client_factory()
    cq = consumer.LockingQueue(path)
    result = []
    t = spawn(lambda: result.append(cq.get(timeout=WAIT)))
    time.sleep(0.3)
    producer.LockingQueue(path).put(b"late")
    join_all([t])
    assert result == [b"late"]
    assert cq.consume()


# ---------------------------------------------------------------- party


@pytest.mark.parametrize("kind", ["Party", "ShallowParty"])
def test_party(client_factory, root, kind):
    path = root + "/" + kind.lower()
    clients = [client_factory() for _ in range(3)]
    parties = [getattr(c, kind)(path, "member-%d" % i) for i, c in enumerate(clients)]
    for p in parties:
        p.join()
    observer = getattr(clients[0], kind)(path)
    assert len(observer) == 3
    assert sorted(observer) == ["member-0", "member-1", "member-2"]
    parties[0].leave()
    assert sorted(observer) == ["member-1", "member-2"]
    clients[2].stop()  # ephemeral membership ends with the session
    wait_until(lambda: sorted(observer) == ["member-1"], message="party shrink")
    assert len(observer) == 1


# ---------------------------------------------------------------- leases


def test_non_blocking_leases(client_factory, root):
    a, b = client_factory(), client_factory()
    duration = datetime.timedelta(seconds=30)
    assert a.NonBlockingLease(root + "/lease", duration, identifier="a")
    assert not b.NonBlockingLease(root + "/lease", duration, identifier="b")
    # The holder may renew its own lease.
    assert a.NonBlockingLease(root + "/lease", duration, identifier="a")

    multi = root + "/multilease"
    assert a.MultiNonBlockingLease(2, multi, duration, identifier="a")
    assert b.MultiNonBlockingLease(2, multi, duration, identifier="b")
    c = client_factory()
    assert not c.MultiNonBlockingLease(2, multi, duration, identifier="c")


# ---------------------------------------------------------------- partitioner


def test_set_partitioner(client_factory, root):
    path = root + "/partition"
    items = set(range(8))
    parts = [c.SetPartitioner(path, set=items, time_boundary=0.3, identifier="p%d" % i)
             for i, c in enumerate([client_factory(), client_factory()])]
    deadline = time.monotonic() + 30
    while True:
        for p in parts:
            assert not p.failed
            if p.release:
                p.release_set()
            elif p.allocating:
                p.wait_for_acquire(timeout=0.2)
        if all(p.acquired for p in parts):
            sets = [set(p) for p in parts]
            if sets[0] | sets[1] == items and not sets[0] & sets[1]:
                break
        assert time.monotonic() < deadline, "partitioner did not settle"
        time.sleep(0.05)
    assert all(len(s) == 4 for s in sets)
    for p in parts:
        p.finish()
