#!/usr/bin/env bash
# Ensemble benchmark: a 3-member Java ZooKeeper 3.9.5 ensemble (QuorumPeerMain) against a
# 3-member ferrokeeper ensemble on this machine, same zoo.cfg, same load generator
# (bench/src/main.rs), kinds alternated run by run. Writes bench/results/<date>-ensemble.md and
# .jsonl and prints the Markdown.
#
#   bash bench/ensemble.sh                               # RUNS=2, ~10 minutes on 2 cores
#   RUNS=1 SECONDS_PER=2 FAILOVER_REPS=1 bash bench/ensemble.sh   # quicker
#
# Per kind and run:
#   1. three fresh members (tickTime=2000, initLimit=10, syncLimit=5, forceSync on, every dataDir
#      under one work directory on the same disk), ensemble settled (one leader, two followers);
#   2. creates of 100-byte znodes at each of $WRITE_SESSIONS sessions, then getData at
#      $READ_SESSIONS sessions; session i connects to member i mod 3 (--spread), so two thirds of
#      the writes arrive at followers and are forwarded to the leader; RSS of each member after
#      the writes;
#   3. a fresh ensemble again, $FAILOVER_ZNODES znodes of 100 B loaded (the same tree for both
#      kinds; RSS of each member after it), then $FAILOVER_REPS times: kill -9 of the leader by
#      the generator's `failover` workload, which times until a survivor answers srvr as leader
#      and until a write succeeds through a survivor; the killed member is restarted and timed
#      until it answers srvr as follower, and the ensemble settles before the next kill.
# Nothing is pinned: the machine has 2 cores, shared by the three members and the generator
# (and whatever else runs on the machine, which is measured from /proc/stat and reported).
# Server CPU per op: utime+stime of the three members from /proc/<pid>/stat over the measured
# seconds (from the generator's ready file to its exit).
#
# Ports 127.0.0.1:23300-23399 (client BASE+1..3, quorum BASE+21..23, election BASE+41..43).
# No `set -e`: lib.sh's helpers use failing commands as conditions; errors are checked here.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=../compat-tests/ensemble/lib.sh
source compat-tests/ensemble/lib.sh

RUNS=${RUNS:-2}
SECONDS_PER=${SECONDS_PER:-5}
WRITE_SESSIONS=${WRITE_SESSIONS:-"8 32"}
READ_SESSIONS=${READ_SESSIONS:-"32"}
FAILOVER_REPS=${FAILOVER_REPS:-3}
FAILOVER_ZNODES=${FAILOVER_ZNODES:-20000}
WARMUP=${WARMUP:-4}             # unmeasured seconds of creates, then of getData, on a new ensemble
JAVA_HEAP=${JAVA_HEAP:-1000m}   # zkServer.sh's default heap
QUIET_WAIT=${QUIET_WAIT:-20}    # seconds at most to wait for other load to drop before a block
QUIET_WAIT_RUN=${QUIET_WAIT_RUN:-8}  # ... and before each measured generator run
BASE=${BASE:-23300}
KINDS=${KINDS:-"java fk"}
export ENS_JAVA_HEAP=$JAVA_HEAP ENS_LOG_LEVEL=WARN RUST_LOG=warn

if [ "$BASE" -lt 23300 ] || [ $((BASE + 43)) -gt 23399 ]; then log "BASE must keep ports in 23300-23399"; exit 1; fi

cargo build --release --quiet || exit 1
cargo build --release --quiet -p ferrokeeper-bench || exit 1
fetch_java_zk || exit 1
gen=$REPO_DIR/target/release/ferrokeeper-bench
ENS_WORK=$(mktemp -d /tmp/fk-ensbench.XXXXXX)
export ENS_WORK
cleanup() {
  ens_stop_all 2>/dev/null || true
  if [ -f "$ENS_WORK/pids" ]; then
    while read -r p; do kill -9 "$p" 2>/dev/null || true; done < "$ENS_WORK/pids"
  fi
  rm -rf "$ENS_WORK"
}
trap cleanup EXIT
raw="$ENS_WORK/raw.jsonl"
: > "$raw"
hz=$(getconf CLK_TCK)
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}

# bench_init KIND: a 3-member ensemble of KIND under $ENS_WORK/KIND (fresh directories), ports
# from $BASE. Same zoo.cfg for both kinds (lib.sh's ens_init keeps to 24000-24999 and
# tickTime 500, hence this copy of it).
bench_init() {
  local kind=$1 i j dir p
  ENS_NAME=$kind; ENS_DIR="$ENS_WORK/$kind"; ENS_BASE=$BASE; ENS_N=3
  ENS_KIND=("" "$kind" "$kind" "$kind"); ENS_RUNKIND=("" "" "" ""); ENS_OBS=("" 0 0 0)
  ENS_PID=("" "" "" "")
  rm -rf "$ENS_DIR"
  for i in 1 2 3; do
    for p in "$(ens_client_port "$i")" "$(ens_quorum_port "$i")" "$(ens_election_port "$i")"; do
      if port_in_use "$p"; then log "127.0.0.1:$p is already in use"; return 1; fi
    done
  done
  for i in 1 2 3; do
    dir=$(ens_member_dir "$i")
    mkdir -p "$dir/data"
    echo "$i" > "$dir/data/myid"
    {
      echo "tickTime=2000"
      echo "initLimit=10"
      echo "syncLimit=5"
      echo "dataDir=$dir/data"
      echo "4lw.commands.whitelist=*"
      echo "admin.enableServer=false"
      echo "maxClientCnxns=0"
      for j in 1 2 3; do
        echo "server.$j=127.0.0.1:$(ens_quorum_port "$j"):$(ens_election_port "$j");127.0.0.1:$(ens_client_port "$j")"
      done
    } > "$dir/zoo.cfg"
  done
}

start_ensemble() { # KIND: fresh directories, all three started, settled; sets SETTLE_MS
  local t0
  bench_init "$1" || return 1
  t0=$(now_ms)
  ens_start_all || return 1
  wait_ensemble 120 || { ens_show_logs 30 >&2; return 1; }
  SETTLE_MS=$(( $(now_ms) - t0 ))
}

ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
member_ticks() { local i; for i in 1 2 3; do printf '%s ' "$(ticks_of "${ENS_PID[i]:-0}")"; done; }
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
# The dataDirs' disk, /proc/diskstats: flushes completed, ms flushing, ms busy (io_ticks), writes.
DISK=$(basename "$(findmnt -no SOURCE --target /tmp 2>/dev/null)" 2>/dev/null)
disk_stats() { awk -v d="${DISK:-none}" '$3 == d {print $19, $20, $13, $8; f = 1} END {if (!f) print 0, 0, 0, 0}' /proc/diskstats; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
member_rss() { local i; for i in 1 2 3; do printf '%s ' "$(rss_kb "${ENS_PID[i]:-0}")"; done; }
json_list() { local out="" x; for x in "$@"; do out="${out:+$out,}$x"; done; printf '[%s]' "$out"; }
node_count() { # on the leader (srvr "Node count: N"), else null
  local l n=""
  if l=$(leader_index); then
    n=$( (four_letter "$(ens_client_port "$l")" srvr) 2>/dev/null | tr -d '\r' | sed -n 's/^Node count: *//p' | head -1)
  fi
  echo "${n:-null}"
}

# wait_quiet [SECS]: up to SECS (default $QUIET_WAIT) s until the machine, minus the running
# members, is < 20% busy over 1 s (other processes); prints the busy fraction seen last.
sum_ticks() { local x t=0; for x in "$@"; do t=$((t + x)); done; echo "$t"; }
wait_quiet() {
  local n b0 t0 b1 t1 e0 e1 f=1 secs=${1:-$QUIET_WAIT}
  for ((n = 0; n < secs; n++)); do
    read -r b0 t0 < <(machine_ticks); e0=$(sum_ticks $(member_ticks))
    sleep 1
    read -r b1 t1 < <(machine_ticks); e1=$(sum_ticks $(member_ticks))
    f=$(awk -v b=$((b1 - b0 - (e1 - e0))) -v t=$((t1 - t0)) 'BEGIN {printf "%.2f", (t > 0 ? b / t : 0)}')
    awk -v f="$f" 'BEGIN {exit !(f < 0.20)}' && break
  done
  echo "$f"
}

# load_run KIND RUN WORKLOAD SESSIONS: one generator run over all three members.
load_run() {
  local kind=$1 run=$2 wl=$3 s=$4 pypid gpid="" c0="" c1 m0 m1 d0 d1 g0=0 w0 w1 leader line q others
  q=$(wait_quiet "$QUIET_WAIT_RUN")
  leader=$(leader_index || echo 0)
  rm -f "$ENS_WORK/ready"
  timeout $((SECONDS_PER + 120)) python3 bench/rusage.py "$ENS_WORK/client_cpu" "$gen" \
      --server "$(ens_hosts)" --spread --workload "$wl" --sessions "$s" --size 100 \
      --seconds "$SECONDS_PER" --ready-file "$ENS_WORK/ready" > "$ENS_WORK/line" &
  pypid=$!
  # Poll for the ready file only; then block in wait (no polling during the measured seconds).
  while kill -0 "$pypid" 2>/dev/null && [ ! -e "$ENS_WORK/ready" ]; do sleep 0.01; done
  if [ -e "$ENS_WORK/ready" ]; then
    c0=$(member_ticks); m0=$(machine_ticks); d0=$(disk_stats); w0=$(now_ms)
    cat /proc/[0-9]*/stat > "$ENS_WORK/procs0" 2>/dev/null
    gpid=$(pgrep -P "$(pgrep -P "$pypid" | head -1)" | head -1 || true)
    [ -z "$gpid" ] && gpid=$(pgrep -P "$pypid" | head -1 || true)
    g0=$(ticks_of "${gpid:-0}")
  fi
  wait "$pypid" || { log "$kind $wl $s: generator failed"; ens_show_logs 20 >&2; return 1; }
  c1=$(member_ticks); m1=$(machine_ticks); d1=$(disk_stats); w1=$(now_ms)
  cat /proc/[0-9]*/stat > "$ENS_WORK/procs1" 2>/dev/null
  [ -n "$c0" ] || { c0=$c1; m0=$m1; d0=$d1; w0=$w1; cp "$ENS_WORK/procs1" "$ENS_WORK/procs0"; }
  others=$(python3 bench/ensemble_procs.py "$ENS_WORK/procs0" "$ENS_WORK/procs1" "$hz" \
      "$(awk -v w=$((w1 - w0)) 'BEGIN {print w / 1000}')" $$ "$pypid" ${gpid:-} "${ENS_PID[1]}" "${ENS_PID[2]}" "${ENS_PID[3]}" \
      $(pgrep -P "$pypid" || true)) || others=null
  line=$(cat "$ENS_WORK/line")
  echo "{\"server\":\"$kind\",\"run\":$run,\"phase\":\"load\",\"quiet_busy\":$q,\"leader\":$leader,\"hz\":$hz,\"window_ms\":$((w1 - w0)),\"ticks0\":$(json_list $c0),\"ticks1\":$(json_list $c1),\"machine0\":$(json_list $m0),\"machine1\":$(json_list $m1),\"disk0\":$(json_list $d0),\"disk1\":$(json_list $d1),\"client_ticks_at_ready\":$g0,\"others\":$others,\"client_cpu_s\":$(cat "$ENS_WORK/client_cpu"),\"r\":$line}" >> "$raw"
  log "$kind run $run $wl x$s: $line"
}

failover_rep() { # KIND RUN REP
  local kind=$1 run=$2 rep=$3 l others=() i surv line t0 rejoin zn
  l=$(leader_index) || { log "no single leader: $(ens_modes)"; return 1; }
  for i in 1 2 3; do [ "$i" = "$l" ] || others+=("$i"); done
  surv=$(ens_hosts "${others[@]}")
  zn=$(node_count)
  line=$(timeout 120 "$gen" --server "$surv" --workload failover --kill-pid "${ENS_PID[l]}") \
      || { log "$kind failover failed"; ens_show_logs 30 >&2; return 1; }
  ens_kill "$l"
  t0=$(now_ms)
  ens_start "$l"
  ens_wait_mode "$l" follower 120 || { log "member $l did not rejoin: $(ens_modes)"; ens_show_logs 30 >&2; return 1; }
  rejoin=$(( $(now_ms) - t0 ))
  wait_ensemble 60 || { ens_show_logs 30 >&2; return 1; }
  echo "{\"server\":\"$kind\",\"run\":$run,\"phase\":\"failover\",\"rep\":$rep,\"killed\":$l,\"znodes\":${zn:-null},\"rejoin_ms\":$rejoin,\"r\":$line}" >> "$raw"
  log "$kind run $run failover $rep (killed member $l, ${zn} znodes): $line; restarted member serving as follower after ${rejoin} ms"
  sleep 2
}

block() { # KIND RUN
  local kind=$1 run=$2 q settle s rep line
  q=$(wait_quiet)
  log "$kind run $run: machine busy before start ${q} (other processes)"
  start_ensemble "$kind" || return 1
  settle=$SETTLE_MS
  sleep 2
  echo "{\"server\":\"$kind\",\"run\":$run,\"phase\":\"start\",\"quiet_busy\":$q,\"settle_ms\":$settle,\"rss_kb\":$(json_list $(member_rss)),\"leader\":$(leader_index || echo 0)}" >> "$raw"
  log "$kind run $run: ensemble settled in ${settle} ms ($(ens_modes))"
  # Warm-up, unmeasured, the same for both kinds (mostly for the JVMs' JIT).
  if [ "$WARMUP" -gt 0 ]; then
    timeout $((WARMUP + 120)) "$gen" --server "$(ens_hosts)" --spread --workload create --sessions 32 --seconds "$WARMUP" >/dev/null \
      && timeout $((WARMUP + 120)) "$gen" --server "$(ens_hosts)" --spread --workload get --sessions 32 --seconds "$WARMUP" >/dev/null \
      || { log "$kind: warm-up failed"; ens_show_logs 20 >&2; return 1; }
  fi
  for s in $WRITE_SESSIONS; do load_run "$kind" "$run" create "$s" || return 1; done
  sleep 2
  echo "{\"server\":\"$kind\",\"run\":$run,\"phase\":\"rss_after_writes\",\"znodes\":$(node_count),\"rss_kb\":$(json_list $(member_rss)),\"leader\":$(leader_index || echo 0)}" >> "$raw"
  for s in $READ_SESSIONS; do load_run "$kind" "$run" get "$s" || return 1; done
  ens_stop_all
  if [ "$FAILOVER_REPS" -gt 0 ]; then
    start_ensemble "$kind" || return 1
    line=$(timeout 300 "$gen" --server "$(ens_hosts)" --spread --workload load --sessions 32 --znodes "$FAILOVER_ZNODES") \
        || { log "$kind: load failed"; ens_show_logs 20 >&2; return 1; }
    sleep 2
    echo "{\"server\":\"$kind\",\"run\":$run,\"phase\":\"rss_after_load\",\"znodes\":$(node_count),\"rss_kb\":$(json_list $(member_rss)),\"leader\":$(leader_index || echo 0),\"r\":$line}" >> "$raw"
    log "$kind run $run: loaded $line"
    for rep in $(seq 1 "$FAILOVER_REPS"); do failover_rep "$kind" "$run" "$rep" || return 1; done
    ens_stop_all
  fi
  rm -rf "$ENS_WORK/$kind"
}

t_start=$(now_ms)
for run in $(seq 1 "$RUNS"); do
  order=$KINDS
  if [ $((run % 2)) -eq 0 ]; then order=$(echo "$KINDS" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "")}'); fi
  for kind in $order; do block "$kind" "$run" || { log "$kind run $run failed"; exit 1; }; done
done
log "benchmark took $(( ($(now_ms) - t_start) / 1000 )) s"
mkdir -p bench/results
out="bench/results/${RESULTS_NAME:-$(date +%Y-%m-%d)-ensemble}.md"
{
  python3 bench/ensemble_report.py "$raw" "$JAVA_HEAP" "$SECONDS_PER" "$commit" "$WARMUP"
  echo
  echo "Machine limits, same run (dataDirs' disk):"
  echo
  python3 bench/limits.py "$ENS_WORK"
} > "$out"
cp "$raw" "${out%.md}.jsonl"
cat "$out"
