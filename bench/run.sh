#!/usr/bin/env bash
# Side-by-side benchmark: Java ZooKeeper 3.9.5 and ferrokeeper on this machine, same load
# generator (bench/src/main.rs: set-up through zookeeper-client, the measured closed loop
# through bench/src/lean.rs unless GENERATOR=zookeeper-client), servers alternated run by run.
# Writes bench/results/<date>.md and prints it.
#
#   bash bench/run.sh                 # full matrix
#   RUNS=1 SECONDS_PER=2 bash bench/run.sh   # quicker
#
# Server pinned to CPU 0, load generator to CPU 1 (2-core machine), so the client does not
# steal the server's core; server CPU per op comes from /proc/<pid>/stat.
set -euo pipefail
cd "$(dirname "$0")/.."
source compat-tests/lib/common.sh
source bench/lib.sh

RUNS=${RUNS:-2}
SECONDS_PER=${SECONDS_PER:-3}
WORKLOADS=${WORKLOADS:-"create set delete get exists children mixed90 mixed50"}
SESSIONS=${SESSIONS:-"1 8 32 128"}
BIG_VALUE_WORKLOADS=${BIG_VALUE_WORKLOADS:-"create set"}   # also run with 1 KiB values
ZNODES=${ZNODES:-100000}
RESTART=${RESTART:-1}          # also time a restart on the loaded data directory
CROWD=${CROWD:-10000}          # sessions for the connection storm and the watch fan-out (0 = skip)
SNAPSHOT=${SNAPSHOT:-1}        # also split write latency by whether a snapshot is being written (needs RESTART=1)
SNAP_SECONDS=${SNAP_SECONDS:-30}
SNAP_SESSIONS=${SNAP_SESSIONS:-32}
SNAP_COUNT=${SNAP_COUNT:-200000}  # snapCount for that run: a snapshot of the loaded tree every few seconds
generator_flags   # GENERATOR=lean (default) or zookeeper-client: the measured loop
# zkServer.sh's default ZK_SERVER_HEAP is 1000m; with a million znodes Java 3.9.5 can run out of
# it while it restarts (its start-up snapshot), so the harness gives it twice that.
JAVA_HEAP=${JAVA_HEAP:-2000m}
PORT_JAVA=23181
PORT_FK=23182

prepare_bench raw.jsonl

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# restart_on_data java|fk: start the server on its existing data directory, pinned to CPU 0;
# prints "<pid> <seconds to serving>" (bench/restart.py) and sets PORT_OF_KIND.
restart_on_data() {
  local kind=$1 cmd
  if [ "$kind" = java ]; then
    cmd=(taskset -c 0 java "-Xmx$JAVA_HEAP" -Dlogback.configurationFile="$COMPAT_DIR/java-zk/logback.xml"
         -Dzookeeper.extendedTypesEnabled=true -cp "$(java_zk_cp)"
         org.apache.zookeeper.server.ZooKeeperServerMain "$work/$kind/zoo.cfg")
  else
    cmd=(env RUST_LOG=info taskset -c 0 "$(ferrokeeper_bin)" --config "$work/$kind/zoo.cfg")
  fi
  python3 bench/restart.py "$(port_of "$kind")" "$work/$kind/restart.log" -- "${cmd[@]}"
}
port_of() { if [ "$1" = java ]; then echo $PORT_JAVA; else echo $PORT_FK; fi; }

hz=$(getconf CLK_TCK)
for run in $(seq 1 "$RUNS"); do
  order="java fk"; [ $((run % 2)) -eq 0 ] && order="fk java"
  for kind in $order; do
    start_server "$kind" "$work/$kind"
    for wl in $WORKLOADS; do
      sizes=100
      case " $BIG_VALUE_WORKLOADS " in *" $wl "*) sizes="100 1024" ;; esac
      for size in $sizes; do
      for s in $SESSIONS; do
        measured "$PID" taskset -c 1 python3 bench/rusage.py "$work/client_cpu" "$gen" --server "127.0.0.1:$PORT" \
            --workload "$wl" --sessions "$s" --size "$size" --seconds "$SECONDS_PER" --ready-file "$work/ready" \
            "${LEAN[@]}"
        line=$(cat "$work/line")
        client_cpu=$(cat "$work/client_cpu")
        echo "{\"server\":\"$kind\",\"run\":$run,\"cpu_ticks\":$((USER_TICKS + SYS_TICKS)),\"hz\":$hz,\"client_cpu_s\":$client_cpu,\"r\":$line}" >> "$raw"
      done
      done
    done
    if [ "$CROWD" -gt 0 ]; then
      # Connection storm, then watch fan-out, each on the running server.
      for wl in storm fanout; do
        c0=$(cpu_ticks "$PID")
        line=$(taskset -c 1 "$gen" --server "127.0.0.1:$PORT" --workload "$wl" --sessions "$CROWD")
        c1=$(cpu_ticks "$PID")
        echo "{\"server\":\"$kind\",\"run\":$run,\"cpu_ticks\":$((c1 - c0)),\"hz\":$hz,\"r\":$line}" >> "$raw"
        sleep 1
      done
    fi
    if [ "$kind" = java ]; then stop_pid "$JAVA_ZK_PID"; else stop_pid "$FK_PID"; fi
    # Memory on a fresh server: RSS after loading exactly $ZNODES znodes.
    start_server "$kind" "$work/$kind"
    rss0=$(rss_kb "$PID")
    line=$(taskset -c 1 "$gen" --server "127.0.0.1:$PORT" --workload load --sessions 8 --znodes "$ZNODES")
    sleep 2
    rss1=$(rss_kb "$PID")
    echo "{\"server\":\"$kind\",\"run\":$run,\"rss_before_kb\":$rss0,\"rss_after_kb\":$rss1,\"r\":$line}" >> "$raw"
    if [ "$kind" = java ]; then stop_pid "$JAVA_ZK_PID"; else stop_pid "$FK_PID"; fi
    if [ "$RESTART" = 1 ]; then
      # Recovery: the same data directory, restarted; time from exec to serving, RSS after.
      snap_bytes=$(stat -c %s "$(ls -t "$work/$kind/data/version-2"/snapshot.* | head -1)")
      sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
      PID=""; secs=""
      restart_on_data "$kind" > "$work/restarted" || true; read -r PID secs < "$work/restarted" || true
      if [ -n "$secs" ]; then
        sleep 2
        rss2=$(rss_kb "$PID")
        echo "{\"server\":\"$kind\",\"run\":$run,\"restart_s\":$secs,\"rss_restart_kb\":$rss2,\"snap_bytes\":$snap_bytes,\"r\":{\"workload\":\"restart\",\"znodes\":$ZNODES}}" >> "$raw"
        stop_pid "$PID"
      else
        log "$kind did not come back on its data directory; last lines of its log:"
        tail -20 "$work/$kind/restart.log" >&2
      fi
      if [ "$SNAPSHOT" = 1 ]; then
        # Writes on the loaded tree with snapshots every few seconds; each request's latency
        # is filed under "during a snapshot" or "outside" by what the data directory shows
        # when it began (bench/snapwatch.py, bench/snapsplit.py).
        sed -i '/^snapCount=/d' "$work/$kind/zoo.cfg"
        echo "snapCount=$SNAP_COUNT" >> "$work/$kind/zoo.cfg"
        PID=""; secs=""
        restart_on_data "$kind" > "$work/restarted" || true; read -r PID secs < "$work/restarted" || true
        if [ -n "$secs" ]; then
          sleep 10   # the snapshot both servers take after loading
          taskset -c 1 python3 bench/snapwatch.py "$work/$kind/data/version-2" "$work/snaps" \
              "$((SNAP_SECONDS + 8))" &
          wpid=$!
          measured "$PID" taskset -c 1 "$gen" --server "127.0.0.1:$(port_of "$kind")" --workload set \
              --sessions "$SNAP_SESSIONS" --size 100 --seconds "$SNAP_SECONDS" --ready-file "$work/ready" \
              --samples "$work/samples" "${LEAN[@]}"
          wait "$wpid"
          split=$(python3 bench/snapsplit.py "$work/samples" "$work/snaps")
          echo "{\"server\":\"$kind\",\"run\":$run,\"snapsplit\":$split,\"cpu_ticks\":$((USER_TICKS + SYS_TICKS)),\"hz\":$hz,\"r\":$(cat "$work/line")}" >> "$raw"
          stop_pid "$PID"
        else
          log "$kind did not come back for the snapshot run; last lines of its log:"
          tail -20 "$work/$kind/restart.log" >&2
        fi
      fi
    fi
  done
done
mkdir -p bench/results
out="bench/results/${RESULTS_NAME:-$(date +%Y-%m-%d)}.md"
{ python3 bench/report.py "$raw" "$JAVA_HEAP" "$SECONDS_PER"; echo; echo "Machine limits, same run:"; echo; python3 bench/limits.py "$work"; } > "$out"
cp "$raw" "${out%.md}.jsonl"
cat "$out"
