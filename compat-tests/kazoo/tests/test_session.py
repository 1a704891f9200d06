"""Sessions and connections: start/stop/restart, connection state listeners,
session resumption with client_id, wrong password, expiry, reconnect after a
dropped TCP connection, retry, and the four-letter words Kazoo uses
(command() and server_version())."""

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, NoAuthError
from kazoo.protocol.states import KazooState, KeeperState
from kazoo.retry import KazooRetry, RetryFailedError
from kazoo.security import make_digest_acl

from conftest import HOSTS, WAIT, Recorder, shutdown, wait_until


def test_start_stop_and_states(client_factory):
    states = Recorder()
    c = client_factory(start=False)
    c.add_listener(states)
    assert c.state == KazooState.LOST
    assert not c.connected
    c.start(timeout=WAIT)
    assert c.connected
    assert c.client_state == KeeperState.CONNECTED
    sid, passwd = c.client_id
    assert sid != 0
    assert isinstance(passwd, bytes) and len(passwd) == 16
    states.wait_for(lambda s: KazooState.CONNECTED in s)
    c.stop()
    assert not c.connected
    states.wait_for(lambda s: s[-1] == KazooState.LOST)
    with pytest.raises(ConnectionClosedError):
        c.get("/")
    c.close()


def test_sessions_are_distinct(client_factory):
    a = client_factory()
    b = client_factory()
    assert a.client_id[0] != b.client_id[0]
    assert a.client_id[1] != b.client_id[1]


def test_restart_gives_new_session(zk, root):
    path = zk.create(root + "/eph", ephemeral=True)
    old_sid = zk.client_id[0]
    zk.restart()
    assert zk.connected
    assert zk.client_id[0] != old_sid
    # The old session was closed, so its ephemeral is gone.
    assert zk.exists(path) is None


def test_last_zxid_tracks_writes(zk, root):
    before = zk.last_zxid
    stat = zk.set(root, b"bump")
    assert stat.mzxid > before
    assert zk.last_zxid >= stat.mzxid


def test_read_only_capable_client_gets_read_write_session(client_factory, root):
    c = client_factory(read_only=True)
    # A normal (non read-only) server answers readOnly=false.
    assert c.client_state == KeeperState.CONNECTED
    c.create(root + "/from-ro-client", b"w")


# --------------------------------------------------------------------------
# A child process opens a session, creates an ephemeral, prints its client_id
# and is then SIGKILLed: the TCP connection drops without closeSession, as when
# an application crashes.  The session lives on until it times out.

CHILD = textwrap.dedent(
    """
    import sys, time
    from kazoo.client import KazooClient
    hosts, path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    c = KazooClient(hosts=hosts, timeout=timeout)
    c.start(timeout=15)
    c.create(path, b"orphan", ephemeral=True)
    sid, passwd = c.client_id
    print("%d %s" % (sid, passwd.hex()), flush=True)
    time.sleep(120)
    """
)


def crashed_session(path, timeout):
    """Return (sid, passwd) of a session whose client process was killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, HOSTS, path, str(timeout)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        if not line:
            _, err = proc.communicate(timeout=WAIT)
            pytest.fail("session child failed: %s" % err[-2000:])
        sid, passwd = line.split()
        return int(sid), bytes.fromhex(passwd)
    finally:
        proc.kill()
        proc.wait(timeout=WAIT)


def test_resume_session_with_client_id(client_factory, zk, root):
    path = root + "/orphan"
    sid, passwd = crashed_session(path, timeout=10)
    stat = zk.exists(path)
    assert stat is not None and stat.ephemeralOwner == sid

    resumed = client_factory(client_id=(sid, passwd))
    assert resumed.client_id == (sid, passwd)
    # The resumed session still owns the ephemeral and can work with it.
    assert resumed.get(path)[0] == b"orphan"
    assert resumed.set(path, b"adopted").version == 1
    child_free = resumed.create(root + "/by-resumed", ephemeral=True)
    assert zk.exists(child_free).ephemeralOwner == sid

    # Closing the resumed session removes the ephemerals of the original one.
    resumed.stop()
    wait_until(lambda: zk.exists(path) is None, message="ephemeral removal")
    assert zk.exists(child_free) is None


def test_wrong_password_is_refused(client_factory, zk, root):
    victim_path = zk.create(root + "/victim", ephemeral=True)
    sid, passwd = zk.client_id
    bad = bytes(b ^ 0xFF for b in passwd)
    intruder = client_factory(start=False, client_id=(sid, bad))
    # The server answers as for an expired session; Kazoo then drops the
    # session id and opens a brand-new session.
    intruder.start(timeout=WAIT)
    assert intruder.client_id[0] != sid
    # The real owner keeps its session.  (A Java server closes the owner's
    # connection before it checks the password; Kazoo then reconnects with
    # the right password, so only wait for that, don't require it.)
    wait_until(lambda: zk.connected, message="owner connected")
    assert zk.client_id[0] == sid
    assert zk.exists(victim_path).ephemeralOwner == sid
    zk.set(victim_path, b"still mine")


def test_session_expiry(client_factory, zk, root):
    path = root + "/short-lived"
    # 4 s is the smallest timeout a tickTime=2000 server grants.
    sid, passwd = crashed_session(path, timeout=4)
    events = Recorder()
    assert zk.exists(path, watch=events) is not None
    t0 = time.monotonic()
    events.wait_for(lambda e: len(e) >= 1, timeout=20, message="NodeDeleted on expiry")
    elapsed = time.monotonic() - t0
    assert events.items[0].type == "DELETED"
    assert events.items[0].path == path
    assert elapsed < 15
    # Resuming an expired session fails; Kazoo falls back to a new session.
    late = client_factory(start=False, client_id=(sid, passwd))
    late.start(timeout=WAIT)
    assert late.client_id[0] != sid


def test_pings_keep_idle_session_alive(client_factory, zk, root):
    # With a 4 s session Kazoo pings about every 1.3 s.  Staying idle for
    # longer than the timeout only works if the server answers the pings
    # (xid -2) and counts them as session activity.
    idle = client_factory(timeout=4)
    path = idle.create(root + "/idle", ephemeral=True)
    sid = idle.client_id[0]
    lost = Recorder()
    idle.add_listener(lambda state: lost(state) if state != KazooState.CONNECTED else None)
    time.sleep(6)
    assert lost.snapshot() == []
    assert idle.connected and idle.client_id[0] == sid
    assert zk.exists(path).ephemeralOwner == sid


def drop_connection(client):
    """Kill the client's TCP connection under it (no closeSession is sent)."""
    client._connection._socket.shutdown(socket.SHUT_RDWR)


def test_reconnect_keeps_session(client_factory, root):
    states = Recorder()
    c = client_factory()
    c.add_listener(states)
    c.add_auth("digest", "rc:pw")
    secret = c.create(root + "/secret", b"s", acl=[make_digest_acl("rc", "pw", all=True)])
    eph = c.create(root + "/eph", ephemeral=True)
    sid = c.client_id[0]

    drop_connection(c)
    states.wait_for(lambda s: KazooState.SUSPENDED in s, message="SUSPENDED")
    states.wait_for(lambda s: s[-1] == KazooState.CONNECTED, message="reconnect")
    assert KazooState.LOST not in states.items
    assert c.client_id[0] == sid
    assert c.exists(eph).ephemeralOwner == sid
    # Kazoo re-sends its credentials after reconnecting.
    assert c.get(secret)[0] == b"s"


def test_retry(client_factory, root):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionLoss()
        return "done"

    retry = KazooRetry(max_tries=5, delay=0.01, max_jitter=0.01)
    assert retry(flaky) == "done"
    assert len(calls) == 3

    never = KazooRetry(max_tries=2, delay=0.01, max_jitter=0.01)
    with pytest.raises(RetryFailedError):
        never(lambda: (_ for _ in ()).throw(ConnectionLoss()))

    # Server errors that are not connection problems are not retried.
    c = client_factory()
    with pytest.raises(NoAuthError):
        locked = c.create(root + "/r", acl=[make_digest_acl("u", "p", read=True)])
        c.retry(c.set, locked, b"x")

    # The client's own retry helper rides over a dropped connection.
    path = c.create(root + "/retry", b"ok")
    drop_connection(c)
    assert c.retry(c.get, path)[0] == b"ok"


def test_command_ruok_srvr(zk):
    assert zk.command(b"ruok") == "imok"
    srvr = zk.command(b"srvr")
    assert "Zookeeper version:" in srvr
    assert "Mode:" in srvr


def test_server_version(zk):
    # Kazoo sends the 'envi' four-letter word and parses zookeeper.version=.
    envi = zk.command(b"envi")
    assert "zookeeper.version=" in envi
    version = zk.server_version()
    assert isinstance(version, tuple)
    assert all(isinstance(v, int) for v in version)
    assert (3, 5) <= version < (4,)


def test_command_needs_connection():
    c = KazooClient(hosts=HOSTS)
    with pytest.raises(ConnectionLoss):
        c.command(b"ruok")
    shutdown(c)


def test_many_clients(client_factory, root):
    clients = [client_factory() for _ in range(10)]
    for i, c in enumerate(clients):
        c.create("%s/c%d" % (root, i), ephemeral=True)
    assert len(clients[0].get_children(root)) == 10
    assert len({c.client_id[0] for c in clients}) == 10
    for c in clients[5:]:
        c.stop()
    wait_until(lambda: len(clients[0].get_children(root)) == 5,
               message="ephemerals of stopped clients to vanish")


def test_env_does_not_leak():
    # The suite must target the server given by ZK_HOSTS only.
    assert os.environ["ZK_HOSTS"] == HOSTS
