"""Start a server command and time it until it serves: `srvr` answers with a Mode line.

    python3 bench/restart.py PORT LOGFILE -- command args...

Prints `<pid> <seconds>`; the server keeps running. Polls every 5 ms for at most 300 s.
"""
import socket
import subprocess
import sys
import time

port, logfile = int(sys.argv[1]), sys.argv[2]
cmd = sys.argv[sys.argv.index("--") + 1:]


def serving():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"srvr")
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
        return b"Mode:" in data
    except OSError:
        return False


t0 = time.monotonic()
with open(logfile, "ab") as log:
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
while time.monotonic() - t0 < 300:
    if serving():
        print(p.pid, "%.3f" % (time.monotonic() - t0))
        sys.exit(0)
    if p.poll() is not None:
        print("server exited with", p.returncode, file=sys.stderr)
        sys.exit(1)
    time.sleep(0.005)
print("server did not serve within 300 s", file=sys.stderr)
p.kill()
sys.exit(1)
