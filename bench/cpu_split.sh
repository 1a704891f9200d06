#!/usr/bin/env bash
# Where each server's CPU goes per operation: user space (the server's own code, and for Java
# the JIT, GC and JVM) against the kernel (TCP send and receive on loopback, including handing
# each reply to the client's socket and waking it, epoll, futexes, fsync). Read from
# /proc/<pid>/stat (utime, stime) over the measured seconds only, same setup as bench/run.sh:
# server pinned to CPU 0, generator to CPU 1, alternating kinds.
#
#   bash bench/cpu_split.sh                        # get and create, 8 and 32 sessions, 2 runs
#   RUNS=1 WORKLOADS="get" SESSIONS=32 bash bench/cpu_split.sh
#
# Prints a Markdown table (and writes it to bench/results/<date>-cpu-split.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source compat-tests/lib/common.sh
source bench/lib.sh

RUNS=${RUNS:-2}
SECONDS_PER=${SECONDS_PER:-3}
WORKLOADS=${WORKLOADS:-"get create"}
SESSIONS=${SESSIONS:-"8 32"}
JAVA_HEAP=${JAVA_HEAP:-2000m}
generator_flags   # GENERATOR=lean (default) or zookeeper-client, as in bench/run.sh
PORT_JAVA=23181
PORT_FK=23182

prepare_bench raw
hz=$(getconf CLK_TCK)

for run in $(seq 1 "$RUNS"); do
  order="java fk"; [ $((run % 2)) -eq 0 ] && order="fk java"
  for kind in $order; do
    start_server "$kind" "$work/$kind"
    for wl in $WORKLOADS; do
      for s in $SESSIONS; do
        measured "$PID" taskset -c 1 "$gen" --server "127.0.0.1:$PORT" --workload "$wl" --sessions "$s" \
            --seconds "$SECONDS_PER" --ready-file "$work/ready" "${LEAN[@]}"
        ops=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops"])' "$work/line")
        echo "$kind $wl $s $USER_TICKS $SYS_TICKS $ops" >> "$raw"
      done
    done
    if [ "$kind" = java ]; then stop_pid "$JAVA_ZK_PID"; else stop_pid "$FK_PID"; fi
  done
done

mkdir -p bench/results
out="bench/results/$(date +%Y-%m-%d)-cpu-split.md"
python3 - "$raw" "$hz" "$(date +%Y-%m-%d)" > "$out" <<'EOF'
import statistics, sys
from collections import defaultdict
raw, hz, day = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cells = defaultdict(list)
for line in open(raw):
    kind, wl, s, u, k, ops = line.split()
    ops = max(int(ops), 1)
    cells[(wl, int(s), kind)].append((int(u) / hz * 1e6 / ops, int(k) / hz * 1e6 / ops))
print("# Server CPU per operation, user vs kernel — %s" % day)
print()
print("`bash bench/cpu_split.sh`: server pinned to CPU 0, generator to CPU 1; /proc/<pid>/stat over the measured seconds; medians over runs.")
print()
print("| workload | sessions | Java user µs/op | Java kernel µs/op | fk user µs/op | fk kernel µs/op | fk total / Java total |")
print("|---|---|---|---|---|---|---|")
for (wl, s) in sorted({(w, n) for (w, n, _) in cells}):
    j, f = cells.get((wl, s, "java")), cells.get((wl, s, "fk"))
    if not j or not f:
        continue
    ju, jk = statistics.median(x[0] for x in j), statistics.median(x[1] for x in j)
    fu, fk = statistics.median(x[0] for x in f), statistics.median(x[1] for x in f)
    print("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.2f |" % (wl, s, ju, jk, fu, fk, (fu + fk) / max(ju + jk, 1e-9)))
EOF
cat "$out"
