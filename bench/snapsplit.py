"""Split a run's request latencies by whether a snapshot was being written when each began.

    python3 bench/snapsplit.py SAMPLES INTERVALS

SAMPLES: `<start Unix ns> <latency µs>` per request (zkbench --samples); INTERVALS:
`<start ns> <end ns>` per snapshot (bench/snapwatch.py). Prints one JSON object: count and
p50/p99/p99.9 during snapshots and outside them, the number of snapshots and the seconds
spent writing them inside the measured window.
"""
import json
import sys

samples = []
with open(sys.argv[1]) as f:
    for line in f:
        a, b = line.split()
        samples.append((int(a), int(b)))
samples.sort()
intervals = []
with open(sys.argv[2]) as f:
    for line in f:
        a, b = line.split()
        intervals.append((int(a), int(b)))
intervals.sort()
t0 = samples[0][0] if samples else 0
t1 = samples[-1][0] if samples else 0
during, outside = [], []
i = 0
for at, us in samples:
    while i < len(intervals) and intervals[i][1] < at:
        i += 1
    if i < len(intervals) and intervals[i][0] <= at <= intervals[i][1]:
        during.append(us)
    else:
        outside.append(us)


def pct(v):
    if not v:
        return {"n": 0}
    v = sorted(v)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    return {"n": len(v), "p50_us": q(0.5), "p99_us": q(0.99), "p999_us": q(0.999)}


inside = [(max(a, t0), min(b, t1)) for a, b in intervals if b >= t0 and a <= t1]
print(json.dumps({
    "during": pct(during),
    "outside": pct(outside),
    "snapshots": len(inside),
    "snapshot_s": round(sum(b - a for a, b in inside) / 1e9, 2),
    "window_s": round((t1 - t0) / 1e9, 2),
}))
