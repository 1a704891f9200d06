"""Shared fixtures for the Kazoo compatibility suite.

The server under test is given by the ZK_HOSTS environment variable
(e.g. "127.0.0.1:22184"); compat-tests/kazoo/run.sh sets it.  Every test works
below its own "/kazoo-<uuid>" root, so the suite can run any number of times
against the same server.
"""

import collections
import logging
import os
import socket
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoAuthError, NoNodeError
from kazoo.protocol.connection import ConnectionHandler

HOSTS = os.environ.get("ZK_HOSTS", "")

# Session timeout (seconds) asked for by ordinary test clients.  A Java server
# with tickTime=2000 clamps to [4 s, 40 s]; 10 s keeps a stalled test short.
SESSION_TIMEOUT = 10.0
# Upper bound for any single "wait for something to happen" in the suite.
WAIT = 15.0


# ---------------------------------------------------------------------------
# What Kazoo put on the wire during the run (printed in the terminal summary),
# so a server author sees which opcodes and four-letter words the suite needs.

_OPCODES = collections.Counter()
_FOUR_LETTER = collections.Counter()
_OPNAMES = {
    -11: "closeSession", 1: "create", 2: "delete", 3: "exists", 4: "getData",
    5: "setData", 6: "getACL", 7: "setACL", 8: "getChildren", 9: "sync",
    11: "ping", 12: "getChildren2", 13: "check", 14: "multi", 15: "create2",
    16: "reconfig", 100: "auth", 102: "sasl",
}


def _record_requests():
    original_submit = ConnectionHandler._submit
    original_command = KazooClient.command

    def _submit(self, request, timeout, xid=None):
        op = getattr(request, "type", None)
        if op is None:
            _OPCODES["connect"] += 1
        else:
            _OPCODES[op] += 1
            for sub in getattr(request, "operations", None) or ():
                _OPCODES["multi:%s" % _OPNAMES.get(sub.type, sub.type)] += 1
        return original_submit(self, request, timeout, xid)

    def command(self, cmd=b"ruok"):
        _FOUR_LETTER[cmd.decode("ascii", "replace")] += 1
        return original_command(self, cmd)

    ConnectionHandler._submit = _submit
    KazooClient.command = command


def _host_port():
    host, _, port = HOSTS.split(",")[0].split("/")[0].rpartition(":")
    return host, int(port)


def _port_open():
    try:
        socket.create_connection(_host_port(), timeout=2).close()
        return True
    except OSError:
        return False


def pytest_configure(config):
    if not HOSTS:
        raise pytest.UsageError("set ZK_HOSTS=host:port (run.sh does this)")
    # Kazoo logs every connection drop at WARNING; the tests that drop
    # connections on purpose would otherwise flood the output.
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    _record_requests()


def pytest_sessionstart(session):
    # Fail fast (instead of one 15 s connect timeout per test) when nothing
    # answers at ZK_HOSTS.
    if not _port_open():
        pytest.exit("nothing listens at ZK_HOSTS=%s" % HOSTS, returncode=3)


def pytest_report_header(config):
    return "kazoo compat: ZK_HOSTS=%s" % HOSTS


def pytest_terminal_summary(terminalreporter):
    if not _OPCODES:
        return
    def order(kv):  # numeric opcodes first, in order; then the rest
        return (0, kv[0], "") if isinstance(kv[0], int) else (1, 0, kv[0])

    ops = ", ".join(
        "%s(%s)=%d" % (_OPNAMES.get(k, k), k, v) if isinstance(k, int)
        else "%s=%d" % (k, v)
        for k, v in sorted(_OPCODES.items(), key=order)
    )
    terminalreporter.write_line("kazoo requests sent: " + ops)
    if _FOUR_LETTER:
        terminalreporter.write_line(
            "four-letter words sent: "
            + ", ".join("%s=%d" % kv for kv in sorted(_FOUR_LETTER.items())))


def new_client(hosts=None, **kwargs):
    """A started KazooClient (caller stops it)."""
    kwargs.setdefault("timeout", SESSION_TIMEOUT)
    c = KazooClient(hosts=hosts or HOSTS, **kwargs)
    try:
        c.start(timeout=WAIT)
    except Exception:
        shutdown(c)
        if not _port_open():
            # The server died mid-run: stop here rather than time out in
            # every remaining test.
            pytest.exit("server at %s stopped answering" % HOSTS, returncode=1)
        raise
    return c


def shutdown(client):
    """Stop and close a client, ignoring errors (for teardown)."""
    try:
        client.stop()
    except Exception:  # noqa: BLE001 - teardown must not fail the test
        pass
    try:
        client.close()
    except Exception:  # noqa: BLE001
        pass


@pytest.fixture
def client_factory():
    """make() -> started KazooClient; all of them are stopped at teardown."""
    made = []

    def make(hosts=None, start=True, **kwargs):
        if start:
            c = new_client(hosts, **kwargs)
        else:
            kwargs.setdefault("timeout", SESSION_TIMEOUT)
            c = KazooClient(hosts=hosts or HOSTS, **kwargs)
        made.append(c)
        return c

    yield make
    for c in reversed(made):
        shutdown(c)


@pytest.fixture
def zk(client_factory):
    return client_factory()


# Every digest identity the tests put into ACLs, so teardown can clean up.
DIGEST_USERS = [
    "alice:pw", "bob:b", "carol:c", "reader:r", "admin:a", "dave:d",
    "eve:e", "rc:pw", "u:p", "x:y",
]


def _remove_tree(client, path):
    """Delete path and below; tolerate nodes we may not list (leaves)."""
    try:
        children = client.get_children(path)
    except NoAuthError:
        children = []
    except NoNodeError:
        return
    for child in children:
        _remove_tree(client, path + "/" + child)
    try:
        client.delete(path)
    except NoNodeError:
        pass


@pytest.fixture
def root(zk):
    """A fresh, unique root path for this test (removed afterwards, best effort)."""
    path = "/kazoo-" + uuid.uuid4().hex
    zk.ensure_path(path)
    yield path
    cleaner = None
    try:
        cleaner = new_client()
        for cred in DIGEST_USERS:
            cleaner.add_auth("digest", cred)
        _remove_tree(cleaner, path)
    except KazooException:
        # Whatever is left sits under a unique name; later runs don't care.
        pass
    finally:
        if cleaner is not None:
            shutdown(cleaner)


def wait_until(predicate, timeout=WAIT, interval=0.02, message="condition"):
    """Poll predicate() until it is truthy; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s" % (timeout, message))
        time.sleep(interval)


class Recorder:
    """Thread-safe list of things observed by callbacks (watches, listeners)."""

    def __init__(self):
        self.items = []
        self._cond = threading.Condition()

    def __call__(self, *args):
        with self._cond:
            self.items.append(args[0] if len(args) == 1 else args)
            self._cond.notify_all()

    def append(self, item):
        self(item)

    def snapshot(self):
        with self._cond:
            return list(self.items)

    def wait_for(self, predicate, timeout=WAIT, message="recorded events"):
        """Wait until predicate(items) is truthy; fail the test on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.items):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        "timed out after %.1fs waiting for %s; got %r"
                        % (timeout, message, self.items)
                    )
                self._cond.wait(left)
            return list(self.items)

    def wait_len(self, n, timeout=WAIT):
        return self.wait_for(lambda items: len(items) >= n, timeout,
                             message="%d recorded events" % n)


def join_all(threads, timeout=WAIT):
    """Join threads with one shared deadline; fail if any is still running."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    if alive:
        pytest.fail("threads still running after %.1fs: %s" % (timeout, alive))
