"""Turn bench/ensemble.sh's raw JSON lines into Markdown: medians over runs, spread, ratios.

    python3 bench/ensemble_report.py RAW.jsonl JAVA_HEAP SECONDS_PER COMMIT [WARMUP_SECONDS]

Every ratio is ferrokeeper / Java: above 1 is better for throughput; below 1 is better for
latency, CPU per op, failover times and memory.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict

raw, heap, seconds_per, commit = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
warmup = float(sys.argv[5]) if len(sys.argv) > 5 else 0
rows = [json.loads(l) for l in open(raw) if l.strip()]
KINDS = ("java", "fk")
NAME = {"java": "Java", "fk": "fk"}


def med(v):
    return statistics.median(v) if v else None


def spread(v):
    return (max(v) - min(v)) if v else None


def ratio(f, j, digits=2):
    if f is None or j is None or j == 0:
        return "–"
    return "%.*f" % (digits, f / j)


# ---------------------------------------------------------------------------------------------
# Load rows
load = defaultdict(lambda: defaultdict(list))
for r in rows:
    if r.get("phase") != "load":
        continue
    x = r["r"]
    hz = r["hz"]
    win = max(r["window_ms"], 1) / 1000.0
    srv = [(b - a) / hz for a, b in zip(r["ticks0"], r["ticks1"])]
    srv_s = sum(srv)
    leader = r.get("leader", 0)
    lead_share = srv[leader - 1] / srv_s if leader and srv_s > 0 else None
    mb = (r["machine1"][0] - r["machine0"][0]) / hz  # busy CPU-seconds, all cores
    client_s = max(r["client_cpu_s"] - r["client_ticks_at_ready"] / hz, 0.0)
    other = max(mb - srv_s - client_s, 0.0)
    o = r.get("others") or {}
    kthreads = min(o.get("kernel", 0.0) * win, other)
    d0, d1 = r.get("disk0", [0, 0, 0, 0]), r.get("disk1", [0, 0, 0, 0])
    flushes = d1[0] - d0[0]
    load[(x["workload"], x["sessions"])][r["server"]].append(dict(
        run=r["run"], wl=x["workload"], ops=x["ops_per_sec"], p50=x["p50_us"], p99=x["p99_us"], p999=x["p999_us"],
        cpu_us=srv_s * 1e6 / max(x["ops"], 1), srv_cores=srv_s / win, client_cores=client_s / win,
        other_cores=other / win, kernel_cores=kthreads / win, rest_cores=(other - kthreads) / win,
        top=o.get("top", []), busy=mb / win, lead_share=lead_share,
        flush_s=flushes / win,
        # Every member fsyncs each batch it logs, so a third of the flushes is one member's.
        ops_per_flush=(3 * x["ops"] / flushes) if flushes > 0 and x["workload"] == "create" else None,
        flush_ms=((d1[1] - d0[1]) / flushes) if flushes > 0 else None,
        disk_busy=(d1[2] - d0[2]) / 1000.0 / win))


def agg(cells, key):
    v = [c[key] for c in cells if c[key] is not None]
    return med(v), spread(v)


cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | sed 's/.*: *//'"],
                     capture_output=True, text=True).stdout.strip()
runs = sorted({r["run"] for r in rows})
print("# ferrokeeper vs Java ZooKeeper 3.9.5, 3-member ensembles — %s" % time.strftime("%Y-%m-%d"))
print()
print("Machine: %s, %d cores, %s. ferrokeeper at commit %s (release build); Java ZooKeeper 3.9.5"
      " (Maven jars, QuorumPeerMain, -Xmx%s, logging WARN; ferrokeeper RUST_LOG=warn)."
      % (cpu or platform.processor(), os.cpu_count(), platform.platform(), commit, heap))
print()
print("Both ensembles: 3 members on 127.0.0.1, the same zoo.cfg (tickTime=2000, initLimit=10,"
      " syncLimit=5, forceSync on: a write is acknowledged only after the leader and a quorum have"
      " fsynced it), all three dataDirs on the same disk. **Three servers and the load generator"
      " share the machine's 2 cores; nothing is pinned** (the same for both kinds), and other"
      " processes on the machine are measured (the \"other\" share below). Kinds alternate run by"
      " run (%d runs: %s). Load generator: the Rust zookeeper-client closed loop of bench/src"
      " (one request in flight per session), session i connected to member i mod 3, so two"
      " thirds of the writes reach the leader through a follower; %g s measured after a 1 s"
      " warm-up per run, and each new ensemble first gets %g s of creates then %g s of getData at"
      " 32 sessions, unmeasured (the JVMs' JIT; the same for ferrokeeper). Figures are medians over runs, ± is the max−min spread; **every ratio is"
      " ferrokeeper / Java** (above 1 is better for throughput, below 1 is better for latency,"
      " CPU, time and memory)."
      % (len(runs), ", ".join("run %d: %s" % (n, " then ".join(
          NAME[k] for k in sorted({r["server"] for r in rows if r["run"] == n},
                                  key=lambda k: min(i for i, r in enumerate(rows)
                                                    if r["run"] == n and r["server"] == k))))
          for n in runs), seconds_per, warmup, warmup))
print()
print("Server CPU µs/op: utime+stime of all three members (/proc/<pid>/stat) over the measured"
      " seconds, divided by the operations completed.")
print()


def lat(c):
    return "%d/%d/%d" % tuple(agg(c, k)[0] for k in ("p50", "p99", "p999"))


def fmt(c, key, f, scale=1.0):
    v = agg(c, key)[0]
    return (f % (v * scale)) if v is not None else "–"


ORDER = sorted(load, key=lambda k: (k[0] != "create", k[0], k[1]))
WL_NAME = {"create": "create 100 B", "get": "getData 100 B"}
print("| workload | sessions | Java ops/s | fk ops/s | ratio | Java p50/p99/p99.9 µs | fk p50/p99/p99.9 µs | p99 ratio | Java server CPU µs/op | fk server CPU µs/op | CPU ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (wl, s) in ORDER:
    j, f = load[(wl, s)].get("java", []), load[(wl, s)].get("fk", [])
    if not j or not f:
        continue
    jo, jos = agg(j, "ops")
    fo, fos = agg(f, "ops")
    print("| %s | %d | %.0f ± %.0f | %.0f ± %.0f | %s | %s | %s | %s | %.1f ± %.1f | %.1f ± %.1f | %s |" % (
        WL_NAME.get(wl, wl), s, jo, jos, fo, fos, ratio(fo, jo), lat(j), lat(f),
        ratio(agg(f, "p99")[0], agg(j, "p99")[0]),
        *agg(j, "cpu_us"), *agg(f, "cpu_us"), ratio(agg(f, "cpu_us")[0], agg(j, "cpu_us")[0])))
print()
print("What bounds these rows, same windows (medians over runs). Cores busy: CPU-seconds per"
      " second from the three servers + the generator + kernel threads (kworker, jbd2,"
      " ksoftirqd...: mostly the block I/O and journal commits of the servers' own fsyncs) + the"
      " rest (other processes on the machine, and short-lived ones) = the machine's total from"
      " /proc/stat (2.00 = both cores); the largest other consumers are named. Disk: the dataDirs' device, whole"
      " machine (other processes' I/O included): cache flushes per second (an fsync is one), writes"
      " per fsync of one member (3 × writes / flushes: each member logs and fsyncs every"
      " write; a lower bound when other processes flush too), mean flush time, and the fraction"
      " of the window with I/O in flight.")
print()
print("| workload | sessions | kind | cores busy: servers + client + kernel threads + rest = total | largest others (cores, mean of runs) | leader's share of server CPU | disk flushes/s | writes per member fsync | mean flush ms | disk busy |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (wl, s) in ORDER:
    for k in KINDS:
        c = load[(wl, s)].get(k, [])
        if not c:
            continue
        tops = defaultdict(float)
        for cell in c:
            for name, cores in cell["top"]:
                tops[name] += cores / len(c)
        top = ", ".join("%s %.2f" % (n, v) for n, v in sorted(tops.items(), key=lambda x: -x[1])[:3] if v >= 0.02) or "–"
        print("| %s | %d | %s | %s + %s + %s + %s = %s | %s | %s | %s | %s | %s | %s |" % (
            WL_NAME.get(wl, wl), s, NAME[k], fmt(c, "srv_cores", "%.2f"), fmt(c, "client_cores", "%.2f"),
            fmt(c, "kernel_cores", "%.2f"), fmt(c, "rest_cores", "%.2f"), fmt(c, "busy", "%.2f"), top,
            fmt(c, "lead_share", "%.0f%%", 100),
            fmt(c, "flush_s", "%.0f"), fmt(c, "ops_per_flush", "%.1f"), fmt(c, "flush_ms", "%.2f"),
            fmt(c, "disk_busy", "%.0f%%", 100)))

print()
print("Per run (the machine is shared: \"other\" is CPU that was neither the servers' nor the"
      " generator's, in cores; named: the largest other processes in that window):")
print()
print("| workload | sessions | kind | run | ops/s | p50/p99/p99.9 µs | server cores | client cores | other cores: kernel threads + rest | named others |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (wl, s) in ORDER:
    for k in KINDS:
        for c in sorted(load[(wl, s)].get(k, []), key=lambda c: c["run"]):
            named = ", ".join("%s %.2f" % (n, v) for n, v in c["top"] if v >= 0.02) or "–"
            print("| %s | %d | %s | %d | %.0f | %d/%d/%d | %.2f | %.2f | %.2f + %.2f | %s |" % (
                WL_NAME.get(wl, wl), s, NAME[k], c["run"], c["ops"], c["p50"], c["p99"], c["p999"],
                c["srv_cores"], c["client_cores"], c["kernel_cores"], c["rest_cores"], named))

# ---------------------------------------------------------------------------------------------
# Failover
fo = defaultdict(lambda: defaultdict(list))
zn = defaultdict(list)
for r in rows:
    if r.get("phase") != "failover":
        continue
    x = r["r"]
    k = r["server"]
    for key in ("leader_s", "write_any_s", "write_all_s", "session_s"):
        if x.get(key) is not None:
            fo[key][k].append(x[key])
    fo["rejoin_s"][k].append(r["rejoin_ms"] / 1000.0)
    if r.get("znodes") is not None:
        zn[k].append(r["znodes"])
if fo:
    n = {k: len([r for r in rows if r.get("phase") == "failover" and r["server"] == k]) for k in KINDS}
    print()
    print("Leader failover: kill -9 of the leader of a settled, idle ensemble holding about %s znodes"
          " (the same preloaded tree for both kinds), %d kills of Java leaders and %d of fk leaders"
          " over the runs, each on the leader of that moment; the killed member is restarted and"
          " the ensemble settles before the next kill. Median [min–max] of all kills." % (
              " / ".join("%s %d" % (NAME[k], med(zn[k])) for k in KINDS if zn[k]) or "?", n["java"], n["fk"]))
    print()
    print("| failover, from the kill -9 | Java | fk | ratio |")
    print("|---|---|---|---|")
    labels = [
        ("leader_s", "a survivor answers `srvr` with Mode: leader (polled every 10 ms)"),
        ("write_any_s", "a write succeeds through a surviving member (fresh session + create, tried every 25 ms per survivor)"),
        ("write_all_s", "writes succeed through both surviving members"),
        ("session_s", "sessions opened on the survivors before the kill write again (client's own reconnect back-off 100/200/400 ms… included)"),
        ("rejoin_s", "killed member restarted: exec to `srvr` Mode: follower (process start, election, sync)"),
    ]
    for key, label in labels:
        cell = {}
        for k in KINDS:
            v = fo[key][k]
            cell[k] = "%.3f s [%.3f–%.3f]" % (med(v), min(v), max(v)) if v else "–"
        print("| %s | %s | %s | %s |" % (label, cell["java"], cell["fk"],
                                         ratio(med(fo[key]["fk"]), med(fo[key]["java"]))))
    print()
    print("Every kill, in order (s): " + "; ".join(
        "%s: %s" % (NAME[k], ", ".join("%.3f" % v for v in fo["write_any_s"][k])) for k in KINDS)
          + " (a write through a survivor); " + "; ".join(
        "%s: %s" % (NAME[k], ", ".join("%.3f" % v for v in fo["leader_s"][k])) for k in KINDS)
          + " (a survivor reports leader).")

# ---------------------------------------------------------------------------------------------
# Memory
mem = defaultdict(lambda: defaultdict(list))
mzn = defaultdict(lambda: defaultdict(list))
for r in rows:
    ph = r.get("phase")
    if ph in ("start", "rss_after_writes", "rss_after_load") and "rss_kb" in r:
        mem[ph][r["server"]].append(r["rss_kb"])
        if r.get("znodes") is not None:
            mzn[ph][r["server"]].append(r["znodes"])
if mem:
    print()
    print("| memory (RSS, VmRSS of each member) | Java: sum of 3 | fk: sum of 3 | ratio | Java per member | fk per member |")
    print("|---|---|---|---|---|---|")
    titles = {"start": "fresh ensemble, settled, idle",
              "rss_after_writes": "after the create runs (znodes on the leader: %s)",
              "rss_after_load": "after loading the same tree (znodes: %s), before the kills"}
    for ph in ("start", "rss_after_writes", "rss_after_load"):
        if not mem[ph]["java"] or not mem[ph]["fk"]:
            continue
        t = titles[ph]
        if "%s" in t:
            t = t % " / ".join("%s %d" % (NAME[k], med(mzn[ph][k])) for k in KINDS if mzn[ph][k])
        sums = {k: [sum(v) / 1024 for v in mem[ph][k]] for k in KINDS}
        per = {k: [x / 1024 for v in mem[ph][k] for x in v] for k in KINDS}
        print("| %s | %.0f MiB ± %.0f | %.0f MiB ± %.0f | %s | %.0f–%.0f MiB | %.0f–%.0f MiB |" % (
            t, med(sums["java"]), spread(sums["java"]), med(sums["fk"]), spread(sums["fk"]),
            ratio(med(sums["fk"]), med(sums["java"])),
            min(per["java"]), max(per["java"]), min(per["fk"]), max(per["fk"])))

# ---------------------------------------------------------------------------------------------
# Background
bg = defaultdict(list)
st = defaultdict(list)
for r in rows:
    if r.get("phase") == "start":
        bg[r["server"]].append(r.get("quiet_busy", 0))
        st[r["server"]].append(r["settle_ms"] / 1000.0)
if st:
    print()
    print("Start-up (all three started at once until one leader + two followers answer `srvr`,"
          " polled every 50 ms): Java %s s, fk %s s (median; includes JVM start for Java)."
          % ("%.2f" % med(st["java"]) if st["java"] else "–", "%.2f" % med(st["fk"]) if st["fk"] else "–"))
    print("Machine busy (fraction of both cores, 1 s sample) just before each block's ensemble"
          " started, i.e. load from other processes: Java blocks %s, fk blocks %s."
          % (", ".join("%.0f%%" % (100 * x) for x in bg["java"]), ", ".join("%.0f%%" % (100 * x) for x in bg["fk"])))
