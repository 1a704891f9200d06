"""Record when a server is writing a snapshot, by watching its data directory.

    python3 bench/snapwatch.py VERSION2_DIR OUT SECONDS

Polls every 5 ms for SECONDS. A snapshot is being written while a snapshot file is
unfinished (`*.tmp`, or ferrokeeper's `.fk-snapshot-*` scratch) or a `snapshot.*` file grew
since the last poll; this covers both servers (Java writes `snapshot.<zxid>` in place or
through a `.tmp`, ferrokeeper through `snapshot.<zxid>.tmp`). Writes one line per snapshot:
`<start Unix ns> <end Unix ns>`, each widened by one poll.
"""
import os
import sys
import time

d, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
POLL = 0.005
sizes = {}
intervals = []
cur = None
end = time.monotonic() + seconds
while time.monotonic() < end:
    now = time.time_ns()
    active = False
    try:
        names = os.listdir(d)
    except OSError:
        names = []
    seen = {}
    for n in names:
        if not (n.startswith("snapshot.") or n.startswith(".fk-snapshot")):
            continue
        try:
            size = os.stat(os.path.join(d, n)).st_size
        except OSError:
            continue
        seen[n] = size
        if n.endswith(".tmp") or n.startswith(".fk-snapshot"):
            active = True
        elif n in sizes and sizes[n] != size:
            active = True
        elif n not in sizes and sizes:
            active = True  # appeared since the last poll
    sizes = seen
    if active and cur is None:
        cur = [now - int(POLL * 1e9), now]
    elif active:
        cur[1] = now
    elif cur is not None:
        cur[1] = now
        intervals.append(cur)
        cur = None
    time.sleep(POLL)
if cur is not None:
    intervals.append(cur)
with open(out, "w") as f:
    for a, b in intervals:
        f.write("%d %d\n" % (a, b))
