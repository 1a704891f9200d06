"""Turn bench/run.sh's raw JSON lines into a Markdown table with ratios and spread."""
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict

raw, heap = sys.argv[1], sys.argv[2]
run_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
rows = [json.loads(l) for l in open(raw)]
cells = defaultdict(lambda: defaultdict(list))
mem = defaultdict(list)
restart = defaultdict(list)
crowd = defaultdict(lambda: defaultdict(list))
snaps = defaultdict(list)
for r in rows:
    x = r["r"]
    if "snapsplit" in r:
        snaps[r["server"]].append((r["snapsplit"], x, r["cpu_ticks"] / r["hz"] * 1e6 / max(x["ops"], 1)))
        continue
    if x["workload"] in ("storm", "fanout"):
        t = x.get("all_connected_s", x.get("all_notified_s"))
        crowd[(x["workload"], x["sessions"])][r["server"]].append((t, x["p50_us"], x["p99_us"], r["cpu_ticks"] / r["hz"]))
        continue
    if x["workload"] == "restart":
        restart[r["server"]].append((r["restart_s"], r["rss_restart_kb"], r["snap_bytes"], x["znodes"]))
        continue
    if x["workload"] == "load":
        mem[r["server"]].append((r["rss_after_kb"], x["znodes"], x["seconds"], r["rss_before_kb"]))
        continue
    key = (x["workload"], x.get("size", 100), x["sessions"])
    cpu_us_per_op = r["cpu_ticks"] / r["hz"] * 1e6 / max(x["ops"], 1)
    # Client core utilisation over warm-up + run (the generator also connects and sets up).
    client_util = r.get("client_cpu_s", 0) / (run_seconds + 1.0)
    # Server CPU covers the measured seconds only (from the generator's ready file).
    cells[key][r["server"]].append((x["ops_per_sec"], x["p50_us"], x["p99_us"], x["p999_us"], cpu_us_per_op, client_util))


def med(v, i):
    vals = [t[i] for t in v]
    return statistics.median(vals), (max(vals) - min(vals))


cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | sed 's/.*: *//'"], capture_output=True, text=True).stdout.strip()
print("# ferrokeeper vs Java ZooKeeper 3.9.5 — %s" % time.strftime("%Y-%m-%d"))
print()
generators = sorted({r["r"].get("generator", "zookeeper-client") for r in rows
              if "ops" in r["r"] and r["r"]["workload"] not in ("storm", "fanout")})
described = {
    "lean": "bench/src/lean.rs: raw client-protocol frames, every session on one thread and one epoll",
    "zookeeper-client": "the Rust zookeeper-client crate's async client",
}
print("Machine: %s, %d cores, %s; Java heap -Xmx%s; server pinned to CPU 0,"
      " load generator (closed loop, one request in flight per session; measured through %s) to CPU 1."
      % (cpu or platform.processor(), os.cpu_count(), platform.platform(), heap,
         " and ".join(described.get(g, g) for g in generators) or "none"))
print("Both servers run with forceSync=yes: a write is acknowledged only after an fsync of its log"
      " batch (group commit), data on the same disk. Figures are medians over"
      " runs, ± is the max−min spread; ratio = ferrokeeper / Java (throughput) or Java / ferrokeeper"
      " (latency, CPU), so > 1 means ferrokeeper is better.")
print()
print("| workload | value | sessions | Java ops/s | fk ops/s | ratio | Java p50/p99/p99.9 µs | fk p50/p99/p99.9 µs | Java CPU µs/op | fk CPU µs/op | CPU ratio | client core busy (J/fk) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (wl, size, s) in sorted(cells):
    j, f = cells[(wl, size, s)].get("java", []), cells[(wl, size, s)].get("fk", [])
    if not j or not f:
        continue
    jt, jts = med(j, 0)
    ft, fts = med(f, 0)
    jc, _ = med(j, 4)
    fc, _ = med(f, 4)
    lat = lambda v: "%d/%d/%d" % (med(v, 1)[0], med(v, 2)[0], med(v, 3)[0])
    ju, fu = med(j, 5)[0], med(f, 5)[0]
    print("| %s | %s | %d | %.0f ± %.0f | %.0f ± %.0f | %.2f | %s | %s | %.1f | %.1f | %.2f | %.0f%% / %.0f%% |"
          % (wl, "1 KiB" if size == 1024 else "%d B" % size, s, jt, jts, ft, fts, ft / max(jt, 1),
             lat(j), lat(f), jc, fc, jc / max(fc, 1e-9), ju * 100, fu * 100))
short = sorted({"%s %s ×%d (%s run %d)" % (r["r"]["workload"], r["r"].get("size", 100), r["r"]["sessions"], r["server"], r["run"])
                for r in rows if r["r"].get("exhausted", 0) > 0})
if short:
    print()
    print("Cut short (a session ran out of nodes to delete before the end): " + "; ".join(short) + ".")
print()
print("| memory (fresh server, then load) | Java RSS | fk RSS | ratio |")
print("|---|---|---|---|")
if mem["java"] and mem["fk"]:
    jr = statistics.median(m[0] for m in mem["java"]) / 1024
    fr = statistics.median(m[0] for m in mem["fk"]) / 1024
    n = mem["fk"][0][1]
    jb = statistics.median(m[3] for m in mem["java"]) / 1024
    fb = statistics.median(m[3] for m in mem["fk"]) / 1024
    print("| idle, fresh start | %.0f MiB | %.1f MiB | %.1f× smaller |" % (jb, fb, jb / max(fb, 1e-9)))
    print("| after %d znodes of 100 B | %.0f MiB | %.0f MiB | %.1f× smaller |" % (n, jr, fr, jr / max(fr, 1e-9)))

if restart["java"] and restart["fk"]:
    print()
    print("| recovery (restart on the loaded dataDir, page cache dropped) | Java | fk | ratio |")
    print("|---|---|---|---|")
    jm = lambda i: statistics.median(m[i] for m in restart["java"])
    fm = lambda i: statistics.median(m[i] for m in restart["fk"])
    n = restart["fk"][0][3]
    print("| start to serving, %d znodes | %.2f s | %.2f s | %.1f× faster |" % (n, jm(0), fm(0), jm(0) / max(fm(0), 1e-9)))
    print("| RSS after restart | %.0f MiB | %.0f MiB | %.1f× smaller |" % (jm(1) / 1024, fm(1) / 1024, jm(1) / max(fm(1), 1e-9)))
    print("| newest snapshot on disk | %.1f MiB | %.1f MiB | %.2f× |" % (jm(2) / 2**20, fm(2) / 2**20, jm(2) / max(fm(2), 1)))

if snaps["java"] and snaps["fk"]:
    print()
    n = snaps["fk"][0][1]["sessions"]
    print("| snapshots (setData 100 B, %d sessions, loaded tree; each request filed by whether a snapshot was being written when it began) | Java | fk |" % n)
    print("|---|---|---|")
    m = lambda v: statistics.median(v)
    def lat(kind, part):
        parts = [t[0][part] for t in snaps[kind] if t[0][part]["n"] > 0]
        if not parts:
            return "no samples"
        return "%d/%d/%d µs (%d requests)" % (m(p["p50_us"] for p in parts), m(p["p99_us"] for p in parts),
                                             m(p["p999_us"] for p in parts), sum(p["n"] for p in parts))
    print("| ops/s over the window | %.0f | %.0f |" % (m(t[1]["ops_per_sec"] for t in snaps["java"]), m(t[1]["ops_per_sec"] for t in snaps["fk"])))
    print("| server CPU µs/op | %.1f | %.1f |" % (m(t[2] for t in snaps["java"]), m(t[2] for t in snaps["fk"])))
    print("| snapshots written in the window (per run) | %s | %s |" % (
        ", ".join("%d in %.1f s" % (t[0]["snapshots"], t[0]["snapshot_s"]) for t in snaps["java"]),
        ", ".join("%d in %.1f s" % (t[0]["snapshots"], t[0]["snapshot_s"]) for t in snaps["fk"])))
    print("| p50/p99/p99.9 outside snapshots | %s | %s |" % (lat("java", "outside"), lat("fk", "outside")))
    print("| p50/p99/p99.9 during snapshots | %s | %s |" % (lat("java", "during"), lat("fk", "during")))
    for kind, name in (("java", "Java"), ("fk", "fk")):
        d = [t[0]["during"]["p999_us"] for t in snaps[kind] if t[0]["during"]["n"] > 0]
        o = [t[0]["outside"]["p999_us"] for t in snaps[kind] if t[0]["outside"]["n"] > 0]
        if d and o:
            print()
            print("%s: p99.9 during a snapshot / outside = %.2f." % (name, m(d) / max(m(o), 1)))

if crowd:
    print()
    print("| crowd | sessions | Java: all done | fk: all done | ratio | Java p50/p99 µs | fk p50/p99 µs | Java CPU s | fk CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    names = {"storm": "connection storm (all connect at once; until the last is connected)",
             "fanout": "watch fan-out (one setData; until every watcher has its event)"}
    for (wl, n) in sorted(crowd):
        j, f = crowd[(wl, n)].get("java", []), crowd[(wl, n)].get("fk", [])
        if not j or not f:
            continue
        m = lambda v, i: statistics.median(t[i] for t in v)
        print("| %s | %d | %.3f s | %.3f s | %.1f× | %d/%d | %d/%d | %.2f | %.2f |" % (
            names[wl], n, m(j, 0), m(f, 0), m(j, 0) / max(m(f, 0), 1e-9),
            m(j, 1), m(j, 2), m(f, 1), m(f, 2), m(j, 3), m(f, 3)))
