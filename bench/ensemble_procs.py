"""Who else used the CPU during a measured window: the difference of two captures of
/proc/[0-9]*/stat (`cat /proc/[0-9]*/stat > FILE`), minus the benchmark's own processes.

    python3 bench/ensemble_procs.py BEFORE AFTER HZ WINDOW_S EXCLUDE_PID...

Prints a JSON object: {"kernel": cores, "user": cores, "top": [[comm, cores], ...]} where
kernel = kernel threads (kworker, jbd2, ksoftirqd, ...: block I/O, journal commits and network
softirqs are largely the servers' own fsyncs and loopback traffic), user = other user processes
(other workloads on the machine). Processes that started or ended inside the window are counted
for the part the AFTER (or BEFORE) capture saw, so the sums are lower bounds.
"""
import json
import sys


def parse(path):
    out = {}
    for line in open(path, errors="replace"):
        try:
            pid = int(line.split(" ", 1)[0])
            comm = line[line.index("(") + 1:line.rindex(")")]
            f = line[line.rindex(")") + 2:].split()
            # f[0] is state (field 3); utime, stime are fields 14, 15; starttime field 22;
            # flags field 9 (PF_KTHREAD = 0x00200000).
            out[pid] = (comm, int(f[11]) + int(f[12]), int(f[19]), int(f[6]) & 0x00200000 != 0)
        except (ValueError, IndexError):
            continue
    return out


before, after = parse(sys.argv[1]), parse(sys.argv[2])
hz, win = float(sys.argv[3]), max(float(sys.argv[4]), 1e-3)
exclude = {int(p) for p in sys.argv[5:] if p.isdigit()}
kernel = user = 0.0
by = {}
for pid, (comm, t1, start, kthread) in after.items():
    if pid in exclude:
        continue
    b = before.get(pid)
    t0 = b[1] if b and b[2] == start else 0
    d = (t1 - t0) / hz / win
    if d <= 0:
        continue
    if kthread:
        kernel += d
        name = comm.split("/")[0]  # kworker/0:1H-kblockd -> kworker
    else:
        user += d
        name = comm
    by[name] = by.get(name, 0.0) + d
top = sorted(by.items(), key=lambda x: -x[1])[:5]
print(json.dumps({"kernel": round(kernel, 3), "user": round(user, 3),
                  "top": [[n, round(c, 3)] for n, c in top if c >= 0.01]}))
