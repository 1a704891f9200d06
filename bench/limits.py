"""This machine's physical limits, for comparing benchmark figures against a floor:
fsync latency on the data disk, loopback TCP round trip, and one core's syscall rate.

    python3 bench/limits.py [DIR]     # DIR on the disk the servers' dataDir uses (default: bench/)
"""
import os
import socket
import statistics
import sys
import tempfile
import threading
import time

d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))


def fsync_latency(n=500):
    lat = []
    with tempfile.NamedTemporaryFile(dir=d) as f:
        block = b"x" * 512
        for _ in range(n):
            f.write(block)
            f.flush()
            t = time.perf_counter()
            os.fsync(f.fileno())
            lat.append((time.perf_counter() - t) * 1e6)
    return statistics.median(lat), sorted(lat)[int(n * 0.99)]


def loopback_rtt(n=20000):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def echo():
        c, _ = srv.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            b = c.recv(64)
            if not b:
                return
            c.sendall(b)

    threading.Thread(target=echo, daemon=True).start()
    s = socket.create_connection(srv.getsockname())
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(b"p")
        s.recv(64)
        lat.append((time.perf_counter() - t) * 1e6)
    s.close()
    return statistics.median(lat), sorted(lat)[int(n * 0.99)]


def syscall_rate(seconds=1.0):
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(1000):
            os.getppid()
        n += 1000
    return n / seconds


f50, f99 = fsync_latency()
r50, r99 = loopback_rtt()
rate = syscall_rate()
print("| limit | median | p99 |")
print("|---|---|---|")
print("| fsync of a 512 B append (%s) | %.0f µs | %.0f µs |" % (d, f50, f99))
print("| loopback TCP round trip, 1 byte, Python echo | %.0f µs | %.0f µs |" % (r50, r99))
print("| getppid() from Python, one core | %.2f M/s (includes interpreter cost) | |" % (rate / 1e6))
