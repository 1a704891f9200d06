#!/usr/bin/env bash
# Ensemble suite: real server processes forming ZooKeeper ensembles on 127.0.0.1 (Fast Leader
# Election + Zab), any mix of Java ZooKeeper 3.9.5 and ferrokeeper members, driven by Kazoo
# clients (check.py) and Curator clients (curator-load/) under write load while members are
# killed, restarted and replaced.
#
#   compat-tests/ensemble/run.sh                        the CI list (CI_SCENARIOS below)
#   compat-tests/ensemble/run.sh SCENARIO [ARGS] [SCENARIO [ARGS]...]
#   compat-tests/ensemble/run.sh selftest               every scenario with Java members only
#   compat-tests/ensemble/run.sh PORT                   as run-all.sh calls every suite (the port
#       of its standalone server is not used): the CI list when ZK_FLAVOR=java, FK_CI_SCENARIOS
#       when ZK_FLAVOR=ferrokeeper (about 4 minutes on a 2-core machine)
#
# KINDS is one word per member, in server id order: java (QuorumPeerMain) or fk (ferrokeeper),
# e.g. "java fk java". Quote it. FK_AS_JAVA=1 starts Java wherever fk is asked for, to dry-run
# the scripting (the scenario label then says {FK_AS_JAVA}).
#
# Scenarios and what each proves:
#   java3
#       3 Java members. The control: proves the harness itself can pass (and gives the Java
#       reference timings). Forms an ensemble, runs ~10 s of load, kill -9 of the leader mid-load,
#       a new leader must serve, the killed member restarts and rejoins as follower; no
#       acknowledged write may be lost, all three must hold identical trees, no client session
#       may expire. Prints kill -> new leader serving (srvr polled every 50 ms).
#   leader_kill [ROUNDS] [KINDS]          (default: 2 "fk fk fk"; 5 kinds for a 5-member ensemble)
#       The same with ROUNDS successive leader kills under one continuous load: leader election
#       after a crash, recovery of a crashed member's log (its uncommitted tail truncated or
#       kept as the new leader decides: DIFF/TRUNC/SNAP sync), durability of every acknowledged
#       write across leader changes, session migration (sessions survive their server's death).
#   mixed [KINDS]                         (default: "java fk java")
#       A mixed ensemble forms (the two implementations speak the same election and Zab wire
#       protocol), reports which member and kind leads, serves the same data from every member
#       under load, then leaders are killed (up to N rounds) until a member of another kind has
#       led too (members of each kind lead and follow the other kind). Same data checks.
#   rolling [FROM TO]                     (default: java fk)
#       A 3-member FROM ensemble under load; each member in turn is stopped (SIGTERM) and
#       replaced by a TO member on the SAME dataDir, myid and ports, which must rejoin before the
#       next is replaced. Proves a rolling upgrade: TO reads FROM's dataDir (snapshots + txn log)
#       and catches up from the quorum; at the end (all TO) no acknowledged write is lost, no
#       session expired (sessions moved across implementations), all members identical.
#       `rolling fk java` is the rollback.
#   observer [KINDS]                      (default: "java java java fk"; the last is the observer)
#       3 voters + 1 observer (server.4=...:observer, peerType=observer): srvr on it says
#       Mode: observer, it forwards writes (written through it alone, then read back from every
#       voter after sync), it serves reads (written through a voter, read through it), it
#       follows a new leader after a leader kill under load, and holds the same tree.
#   selftest
#       java3; leader_kill 2 "java java java"; leader_kill 1 (5 Java); mixed "java java java";
#       rolling java java; observer "java java java java": the harness against Java alone.
#
# The load, in every scenario that has one (start_load .. finish_load), is two programs in parallel:
#   Kazoo (check.py load): one client per member, sequential creates /load/w<k>-<seq>, each
#       acknowledged write recorded; at the end every one must be on every member (verify).
#   Curator (curator-load/, ferrokeeper.CuratorLoad, one JVM): 3 CuratorFramework clients (own
#       sessions; the full connect string rotated so client k starts on member k; session timeout
#       10 s; ExponentialBackoffRetry), each (a) creating /curator-load/c<k>-<seq> (paced to
#       ENSEMBLE_CURATOR_CREATE_RATE a second), every acknowledged path recorded, (b) incrementing
#       /curator-counter under one InterProcessMutex on /curator-lock (getData, +1, setData with
#       the version read), every acknowledged value recorded, (c) in a LeaderLatch on
#       /curator-latch. It fails (curator-load-clean) on a LOST connection state (session
#       expired), a setData that found the counter changed under its lock, an unexpected error,
#       or not exactly one latch leader at the end. Then, on EVERY member alone (check.py
#       curator-verify, curator-acked-durable): every acknowledged create is there, the
#       acknowledged increments are exactly 1..N (no gap, no duplicate: mutual exclusion held
#       across the leader changes) and /curator-counter holds N at version N.
#   Curator and its ZooKeeper 3.9.5 client come from Maven Central: lib.sh ens_curator_setup
#   compiles curator-load/ with Maven into compat-tests/.cache/curator-load (once; again when its
#   pom or sources change). ENSEMBLE_CURATOR=0 runs the Kazoo load alone.
#
# Timings: every kill -9 of a leader is timed until another member answers srvr as leader (polled
# every 50 ms; Java members' own "LEADER ELECTION TOOK" is quoted next to it); each scenario
# prints a TIME line with them, and the run ends with a table per scenario and per kind of new
# leader (min/median/max).
#
# Check lines: `PASS name (details)` / `FAIL name` + indented details; per-scenario timings
# (`TIME ...`) and a summary at the end. Exit status non-zero if anything failed. On a failure
# the tails of the members' server logs are printed.
#
# Environment: ENSEMBLE_LOAD_SECS (minimum load per scenario, 10), ENSEMBLE_MIN_ACKS (100, per
# load), ENSEMBLE_MIN_INCREMENTS (10), ENSEMBLE_CURATOR (1), ENSEMBLE_CURATOR_CLIENTS (3),
# ENSEMBLE_CURATOR_CREATE_RATE (creates/s per Curator client, 200; 0 = as fast as acknowledged).
#
# Ports 127.0.0.1:24000-24999 only (scenario k of a run uses block 24000+100*((k-1)%9):
# client +1..+19, quorum +21..+39, election +41..+59). tickTime=500, initLimit=10, syncLimit=5
# (ENS_TICK, ENS_EXTRA_CFG change them). Each scenario runs in its own process capped at
# ENSEMBLE_SCENARIO_TIMEOUT seconds (default 240); every server and client started is killed and
# the work directory removed on exit, also on failure or interrupt (ENSEMBLE_KEEP_WORK=1 keeps
# it, ENSEMBLE_KEEP_WORK=fail keeps it when a scenario failed). Needs Java 17+, Maven (Java
# ZooKeeper jars and the Curator load, cached in compat-tests/.cache) and the Kazoo virtualenv
# of compat-tests/kazoo (built from PyPI on first use). run-all.sh picks this suite up like
# every */run.sh.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# What CI runs (run-all.sh: ZK_FLAVOR=java, then ZK_FLAVOR=ferrokeeper). The ferrokeeper list
# takes about 4 minutes on a 2-core machine; each scenario well under 2.
CI_SCENARIOS=('java3')
FK_CI_SCENARIOS=('leader_kill 10 "fk fk fk"' 'leader_kill 2 "fk fk fk fk fk"' 'mixed "java fk java"'
                 'mixed "fk java fk"' 'rolling java fk' 'rolling fk java' 'observer "fk fk fk fk"'
                 'observer "java java java fk"')
SELFTEST=('java3' 'leader_kill 2 "java java java"' 'leader_kill 1 "java java java java java"'
          'mixed "java java java"' 'rolling java java' 'observer "java java java java"')
SCENARIOS=" java3 leader_kill mixed rolling observer selftest "

SCENARIO_TIMEOUT=${ENSEMBLE_SCENARIO_TIMEOUT:-240}
MIN_ACKS=${ENSEMBLE_MIN_ACKS:-100}   # a load that acknowledged fewer writes proves nothing
LOAD_SECS=${ENSEMBLE_LOAD_SECS:-10}  # minimum load duration per scenario
CURATOR=${ENSEMBLE_CURATOR:-1}       # 0: no Curator load next to the Kazoo load
CURATOR_CLIENTS=${ENSEMBLE_CURATOR_CLIENTS:-3}
CURATOR_CREATE_RATE=${ENSEMBLE_CURATOR_CREATE_RATE:-200}  # creates/s per Curator client (0: unpaced)
MIN_INCREMENTS=${ENSEMBLE_MIN_INCREMENTS:-10}  # Curator's counter increments under the lock
PY_TIMEOUT=180                       # one verify/same/rw run

# ---------------------------------------------------------------------------------------------
# Results (in the scenario's process)

NPASS=0
NFAIL=0
S=""   # current scenario label, prefixes every check name
pass_check() { NPASS=$((NPASS + 1)); printf 'PASS %s%s\n' "$1" "${2:+ ($2)}"; }
fail_check() {
  NFAIL=$((NFAIL + 1))
  printf 'FAIL %s\n' "$1"
  if [ -n "${2:-}" ]; then sed 's/^/    | /' <<<"$2"; fi
}
timing() { printf 'TIME %s: %s\n' "$S" "$1"; echo "$S: $1" >> "$ENS_WORK/../timings.txt"; }

# java_election_ms I : what Java logged for its last election ("LEADER ELECTION TOOK - N MS")
java_election_ms() {
  [ "${ENS_RUNKIND[$1]}" = java ] || return 0
  grep -o 'LEADER ELECTION TOOK - [0-9]* MS' "$(ens_member_dir "$1")/server.log" 2>/dev/null \
    | tail -1 | grep -o '[0-9]*'
}

# ---------------------------------------------------------------------------------------------
# Steps

# form S : start every member, wait for one leader + followers/observers.
form() {
  local t0 t1
  label_fk_as_java
  log "=== $S: $(ens_describe)"
  t0=$(now_ms)
  if ! ens_start_all; then fail_check "$S/starts" "a member did not start"; return 1; fi
  if wait_ensemble 90; then
    t1=$(now_ms)
    pass_check "$S/ensemble-formed" "$((t1 - t0)) ms from start: $(ens_modes)"
    timing "start -> ensemble serving $((t1 - t0)) ms"
  else
    fail_check "$S/ensemble-formed" "no single leader with all others following after 90 s: $(ens_modes)"
    return 1
  fi
}

LOAD_PID=""
LOAD_T0=0
CUR_PID=""
# start_load : check.py load (Kazoo) and CuratorLoad (Curator, curator-load/) in parallel against
# every member until the stop file (or the scenario's cap); returns once both are working.
start_load() {
  local n
  LOAD_OUT="$ENS_DIR/acked.tsv"
  LOAD_STOP="$ENS_DIR/load.stop"
  rm -f "$LOAD_OUT" "$LOAD_STOP"
  "${ENS_PY[@]}" "$HERE/check.py" load --hosts "$(ens_hosts)" --seconds "$SCENARIO_TIMEOUT" --out "$LOAD_OUT" \
      --stop "$LOAD_STOP" --min-acks "$MIN_ACKS" > "$ENS_DIR/load.txt" 2> "$ENS_DIR/load.err" &
  LOAD_PID=$!
  ens_record_pid "$LOAD_PID"
  LOAD_T0=$(now_ms)
  if [ "$CURATOR" = 1 ]; then
    CUR_CREATES="$ENS_DIR/curator-creates.txt"
    CUR_INCR="$ENS_DIR/curator-increments.txt"
    rm -f "$CUR_CREATES" "$CUR_INCR" "$ENS_DIR/curator.ready"
    java -Xmx"${ENS_CURATOR_HEAP:-256m}" -XX:+UseSerialGC -cp "$(ens_curator_cp)" ferrokeeper.CuratorLoad \
        --hosts "$(ens_hosts)" --clients "$CURATOR_CLIENTS" --seconds "$SCENARIO_TIMEOUT" \
        --stop "$LOAD_STOP" --ready "$ENS_DIR/curator.ready" --creates "$CUR_CREATES" \
        --increments "$CUR_INCR" --min-creates "$MIN_ACKS" --min-increments "$MIN_INCREMENTS" \
        --create-rate "$CURATOR_CREATE_RATE" \
        > "$ENS_DIR/curator.txt" 2> "$ENS_DIR/curator.err" &
    CUR_PID=$!
    ens_record_pid "$CUR_PID"
  fi
  sleep 2
  if ! kill -0 "$LOAD_PID" 2>/dev/null; then
    fail_check "$S/load-started" "$(cat "$ENS_DIR/load.txt" "$ENS_DIR/load.err" | tail -20)"
    LOAD_PID=""
    return 1
  fi
  if [ -n "$CUR_PID" ]; then
    # JVM start and three sessions: the clients must be working before anything is killed.
    for ((n = 0; n < 300; n++)); do
      [ -f "$ENS_DIR/curator.ready" ] && break
      kill -0 "$CUR_PID" 2>/dev/null || break
      sleep 0.1
    done
    if [ ! -f "$ENS_DIR/curator.ready" ]; then
      fail_check "$S/curator-load-started" "$(cat "$ENS_DIR/curator.txt"; tail -20 "$ENS_DIR/curator.err")"
      return 1
    fi
  fi
}

# wait_pid_gone PID SECS : until PID has exited (then reaps it, returns its status), 124 if not
wait_pid_gone() {
  local pid=$1 n
  for ((n = 0; n < $2 * 10; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 124
  fi
  wait "$pid"
}

# finish_load : let the loads run LOAD_SECS in all, stop them, judge them.
finish_load() {
  local rc left
  [ -n "$LOAD_PID" ] || return 1
  left=$(( LOAD_SECS * 1000 - ($(now_ms) - LOAD_T0) ))
  if [ "$left" -gt 0 ]; then sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"; fi
  touch "$LOAD_STOP"
  wait_pid_gone "$LOAD_PID" 90; rc=$?
  LOAD_PID=""
  if [ "$rc" = 124 ]; then
    fail_check "$S/load-clean" "the load did not stop within 90 s of its stop file
$(tail -20 "$ENS_DIR/load.err")"
  elif [ "$rc" = 0 ]; then
    pass_check "$S/load-clean" "$(head -1 "$ENS_DIR/load.txt"); no session expired"
    sed -n '2,$p' "$ENS_DIR/load.txt" | sed 's/^/    /'
  else
    fail_check "$S/load-clean" "check.py load exited $rc:
$(cat "$ENS_DIR/load.txt")
$(grep -v '^$' "$ENS_DIR/load.err" | tail -15)"
  fi
  timing "load: $(sed -n 's/.*longest pause between acks \([0-9.]* s\).*/longest pause between acknowledged writes \1/p' "$ENS_DIR/load.txt")"
  [ -n "$CUR_PID" ] || return 0
  wait_pid_gone "$CUR_PID" 90; rc=$?
  CUR_PID=""
  if [ "$rc" = 124 ]; then
    fail_check "$S/curator-load-clean" "the Curator load did not stop within 90 s of its stop file
$(tail -20 "$ENS_DIR/curator.err")"
  elif [ "$rc" = 0 ]; then
    pass_check "$S/curator-load-clean" "$(head -1 "$ENS_DIR/curator.txt"); no session lost"
    sed -n '2,$p' "$ENS_DIR/curator.txt" | sed 's/^/    /'
  else
    fail_check "$S/curator-load-clean" "CuratorLoad exited $rc:
$(cat "$ENS_DIR/curator.txt")
$(grep -v '^$' "$ENS_DIR/curator.err" | grep -v 'Session 0x0 for server\|ConnectException\|^\s*at ' | tail -15)"
  fi
  timing "curator: $(sed -n 's/.*longest pause between acked creates \([0-9.]* s\), between increments \([0-9.]* s\).*/longest pause between acknowledged creates \1, increments \2/p' "$ENS_DIR/curator.txt")"
}

kill_load() {
  local pid
  for pid in "$LOAD_PID" "$CUR_PID"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  LOAD_PID=""
  CUR_PID=""
}

py_check() { # NAME check.py-args... : PASS/FAIL on check.py's exit status
  local name=$1 out rc=0; shift
  out=$(timeout "$PY_TIMEOUT" "${ENS_PY[@]}" "$HERE/check.py" "$@" 2>&1) || rc=$?
  if [ "$rc" = 0 ]; then
    pass_check "$name" "$(tail -1 <<<"$out")"
  else
    [ "$rc" = 124 ] && out="$out
(check.py $1 timed out after ${PY_TIMEOUT} s)"
    fail_check "$name" "$out"
  fi
  return "$rc"
}

# verify_all : every member settled, every acknowledged write everywhere, identical trees.
verify_all() {
  local t0 t1 t2 t3
  if wait_ensemble 60; then :; else
    fail_check "$S/settled-before-verify" "$(ens_modes)"
  fi
  t0=$(now_ms)
  py_check "$S/no-acked-write-lost" verify --hosts "$(ens_hosts)" --acked "$LOAD_OUT"
  t1=$(now_ms)
  if [ "$CURATOR" = 1 ] && [ -f "${CUR_CREATES:-/nonexistent}" ]; then
    py_check "$S/curator-acked-durable" curator-verify --hosts "$(ens_hosts)" \
        --creates "$CUR_CREATES" --increments "$CUR_INCR"
  fi
  t2=$(now_ms)
  py_check "$S/servers-identical" same --hosts "$(ens_hosts)"
  t3=$(now_ms)
  timing "checks: Kazoo writes $((t1 - t0)) ms, Curator $((t2 - t1)) ms, identical trees $((t3 - t2)) ms"
}

# stats MS... : "min/median/max ms" of the numbers
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR) printf "%d/%d/%d ms", a[1], a[int((NR+1)/2)], a[NR]}'; }

ELECTIONS=()
# report_elections : one TIME line with this scenario's kill -9 -> new leader serving times
report_elections() {
  [ ${#ELECTIONS[@]} -gt 0 ] || return 0
  timing "leader election (kill -9 -> new leader serving): ${#ELECTIONS[@]} kills, min/median/max $(stats "${ELECTIONS[@]}"): ${ELECTIONS[*]} ms"
}

ROUND_NEW_LEADER=""
# kill_leader_round R : kill -9 the leader, time the new leader, restart the dead one, wait
# until it is back in its role.
kill_leader_round() {
  local r=$1 old new t0 t1 t2 t3 t4 jms want=follower
  ROUND_NEW_LEADER=""
  if ! old=$(leader_index); then
    fail_check "$S/round$r-leader-known" "not exactly one leader: $(ens_modes)"; return 1
  fi
  t0=$(now_ms)
  ens_kill "$old"
  if ! new=$(wait_new_leader "$old" 30); then
    fail_check "$S/round$r-new-leader" "no member leads 30 s after kill -9 of leader $old (${ENS_KIND[old]}): $(ens_modes)"
    return 1
  fi
  t1=$(now_ms)
  ROUND_NEW_LEADER=$new
  jms=$(java_election_ms "$new")
  ELECTIONS+=("$((t1 - t0))")
  printf '%s\t%s\t%s\t%s\n' "$S" "$((t1 - t0))" "${ENS_KIND[old]}" "${ENS_KIND[new]}" >> "$ENS_WORK/../elections.txt"
  pass_check "$S/round$r-new-leader" "member $new (${ENS_KIND[new]}) serves as leader $((t1 - t0)) ms after kill -9 of leader $old (${ENS_KIND[old]})${jms:+; Java logged election $jms ms}"
  if wait_ensemble 30; then
    t2=$(now_ms)
  else
    fail_check "$S/round$r-survivors-settled" "$(ens_modes)"; return 1
  fi
  t3=$(now_ms)
  ens_start "$old" || { fail_check "$S/round$r-restart" "member $old did not start"; return 1; }
  [ "${ENS_OBS[old]}" = 1 ] && want=observer
  if ens_wait_mode "$old" "$want" 90 && wait_ensemble 30; then
    t4=$(now_ms)
    pass_check "$S/round$r-rejoined" "member $old back as $want $((t4 - t3)) ms after its restart"
  else
    fail_check "$S/round$r-rejoined" "member $old not back as $want 90 s after its restart: $(ens_modes)"
    return 1
  fi
  timing "round $r: kill -9 leader $old (${ENS_KIND[old]}) -> member $new (${ENS_KIND[new]}) leading $((t1 - t0)) ms${jms:+ (Java: election $jms ms)}, all survivors serving $((t2 - t0)) ms; restart -> rejoined $((t4 - t3)) ms"
}

# ---------------------------------------------------------------------------------------------
# Scenarios (S = label, BASE = port block)

kinds_label() { tr -s ' ' ',' <<<"$(echo $1)"; }

# kill_rounds ROUNDS KINDS : form, load, ROUNDS leader kills, verify.
kill_rounds() {
  local rounds=$1 kinds=$2 r
  ens_init m "$BASE" "$kinds" || { fail_check "$S/setup" "bad ensemble definition '$kinds'"; return; }
  form || return
  start_load || return
  sleep 1
  for ((r = 1; r <= rounds; r++)); do
    kill_leader_round "$r" || break
    sleep 1
  done
  report_elections
  finish_load
  verify_all
}

scenario_java3() {
  S="java3"
  kill_rounds 1 "java java java"
}

scenario_leader_kill() {
  local rounds=${1:-2} kinds=${2:-fk fk fk}
  [[ $rounds =~ ^[0-9]+$ ]] && [ "$rounds" -ge 1 ] && [ "$rounds" -le 20 ] || {
    S="leader_kill"; fail_check "$S/arguments" "ROUNDS must be 1..20, got '$rounds'"; return; }
  S="leader_kill[$rounds,$(kinds_label "$kinds")]"
  kill_rounds "$rounds" "$kinds"
}

scenario_mixed() {
  local kinds=${1:-java fk java} leader r want seen
  S="mixed[$(kinds_label "$kinds")]"
  ens_init m "$BASE" "$kinds" || { fail_check "$S/setup" "bad ensemble definition '$kinds'"; return; }
  form || return
  leader=$(leader_index) || { fail_check "$S/leader" "$(ens_modes)"; return; }
  pass_check "$S/leader" "member $leader (${ENS_KIND[leader]}) leads: $(ens_modes)"
  start_load || return
  sleep 2
  want=$(for r in $(seq 1 "$ENS_N"); do echo "${ENS_KIND[r]}"; done | sort -u | tr '\n' ' ')
  seen=" ${ENS_KIND[leader]} "
  for ((r = 1; r <= ENS_N; r++)); do
    local all=1 k
    for k in $want; do [[ $seen == *" $k "* ]] || all=0; done
    [ "$all" = 1 ] && [ "$r" -gt 1 ] && break
    kill_leader_round "$r" || break
    seen="$seen${ENS_KIND[ROUND_NEW_LEADER]} "
    sleep 1
  done
  report_elections
  finish_load
  verify_all
  if [ "$(wc -w <<<"$want")" -gt 1 ]; then
    local missing="" k
    for k in $want; do [[ $seen == *" $k "* ]] || missing="$missing $k"; done
    if [ -z "$missing" ]; then
      pass_check "$S/every-kind-led" "leaders in turn:$(tr -s ' ' <<<"$seen" | sed 's/ $//')"
    else
      # Which member wins is up to the election (highest zxid, then id): a note, not a failure.
      echo "NOTE $S: no member of kind$missing led within $ENS_N leader kills (leaders:$seen)"
    fi
  fi
}

scenario_rolling() {
  local from=${1:-java} to=${2:-fk} i t0 t1 m
  S="rolling[$from->$to]"
  case "$from $to" in java\ java|java\ fk|fk\ java|fk\ fk) ;; *)
    fail_check "$S/arguments" "FROM and TO are java or fk"; return ;; esac
  ens_init m "$BASE" "$from $from $from" || { fail_check "$S/setup" "bad ensemble"; return; }
  form || return
  start_load || return
  sleep 1
  for i in 1 2 3; do
    m=$(ens_mode "$i")
    t0=$(now_ms)
    ens_stop "$i"
    ENS_KIND[i]=$to
    if ! ens_start "$i" "$to"; then fail_check "$S/member$i-replaced" "$to did not start"; break; fi
    if ens_wait_serving "$i" 90 && wait_ensemble 30; then
      t1=$(now_ms)
      pass_check "$S/member$i-replaced" "$from member $i (was $m) stopped, $to on its dataDir serves as $(ens_mode "$i") $((t1 - t0)) ms later: $(ens_modes)"
      timing "member $i ($m): stop $from -> $to serving as $(ens_mode "$i") $((t1 - t0)) ms"
    else
      fail_check "$S/member$i-replaced" "$to member $i not serving 90 s after replacing $from: $(ens_modes)"
      break
    fi
    sleep 1
  done
  finish_load
  verify_all
}

scenario_observer() {
  local kinds=${1:-java java java fk} n obs voters m
  n=$(wc -w <<<"$kinds")
  S="observer[$(kinds_label "$kinds")]"
  [ "$n" -ge 4 ] || { fail_check "$S/arguments" "need 3+ voters and the observer (4+ kinds)"; return; }
  ens_init m "$BASE" "$kinds" "$n" || { fail_check "$S/setup" "bad ensemble definition"; return; }
  form || return
  obs=$n
  voters=$(ens_hosts $(seq 1 $((n - 1))))
  m=$(ens_mode "$obs")
  if [ "$m" = observer ]; then
    pass_check "$S/observer-mode" "srvr on member $obs: Mode: observer"
  else
    fail_check "$S/observer-mode" "srvr on member $obs: Mode: ${m:-(none)}"
  fi
  py_check "$S/observer-forwards-writes" rw --via "$(ens_hosts "$obs")" --check "$voters" --tag obs
  py_check "$S/observer-serves-reads" rw --via "$(ens_hosts 1)" --check "$(ens_hosts "$obs")" --tag voter
  start_load || return
  sleep 1
  kill_leader_round 1
  if [ "$(ens_mode "$obs")" = observer ]; then
    pass_check "$S/observer-follows-new-leader" "member $obs is still Mode: observer"
  else
    fail_check "$S/observer-follows-new-leader" "$(ens_modes)"
  fi
  report_elections
  finish_load
  verify_all
}

# ---------------------------------------------------------------------------------------------
# One scenario in this process (--one): own work dir, cleanup trap.

run_one() {
  local name=$1; shift
  ENS_WORK="${ENSEMBLE_WORK:-}"
  if [ -z "$ENS_WORK" ]; then ENS_WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferrokeeper-ensemble.XXXXXX")/1; fi
  mkdir -p "$ENS_WORK"
  BASE=${ENSEMBLE_BASE:-24000}
  trap one_cleanup EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
  ens_py_setup || { S=$name; fail_check "$S/kazoo-setup"; exit 1; }
  fetch_java_zk || { S=$name; fail_check "$S/java-zk-setup"; exit 1; }
  if [ "$CURATOR" = 1 ]; then ens_curator_setup || { S=$name; fail_check "$S/curator-setup"; exit 1; }; fi
  "scenario_$name" "$@"
  [ "$NFAIL" = 0 ]
}

# The scenario label says when fk members are really Java (FK_AS_JAVA=1).
label_fk_as_java() {
  if [ "${FK_AS_JAVA:-0}" = 1 ] && [[ $S == *fk* ]]; then S="$S{FK_AS_JAVA}"; fi
}

one_cleanup() {
  local rc=$?
  kill_load
  if [ "$NFAIL" != 0 ] || [ "$rc" != 0 ]; then
    [ "$NFAIL" != 0 ] || fail_check "$S/aborted" "exit status $rc"
    echo "--- server logs of $S (modes now: $(ens_modes 2>/dev/null))"
    ens_show_logs 40
    if [ -f "${ENS_DIR:-/nonexistent}/load.err" ]; then
      echo "--- last lines of the load's stderr"; tail -15 "$ENS_DIR/load.err" | sed 's/^/  /'
    fi
    if [ -f "${ENS_DIR:-/nonexistent}/curator.err" ]; then
      echo "--- last lines of the Curator load's stderr (without connection-refused noise)"
      grep -v '^\s*at \|Connection refused\|ConnectException\|Session 0x0 for' "$ENS_DIR/curator.err" \
        | tail -15 | sed 's/^/  /'
    fi
  fi
  ens_stop_all
  echo "$S: $NPASS passed, $NFAIL failed" >> "$ENS_WORK/../results.txt"
  [ "$NFAIL" = 0 ] && exit "$rc"
  exit 1
}

if [ "${1:-}" = --one ]; then
  shift
  run_one "$@"
  exit $?
fi

# ---------------------------------------------------------------------------------------------
# Top level: a list of scenario invocations, each in its own bounded process.

invocations=()
if [ $# -eq 1 ] && [[ $1 =~ ^[0-9]+$ ]]; then
  # Called by compat-tests/run-all.sh with its standalone server's port (unused here).
  case "${ZK_FLAVOR:-java}" in
    ferrokeeper) invocations=("${FK_CI_SCENARIOS[@]}") ;;
    *) invocations=("${CI_SCENARIOS[@]}") ;;
  esac
  if [ ${#invocations[@]} -eq 0 ]; then
    echo "ensemble: no scenario listed for ZK_FLAVOR=${ZK_FLAVOR:-java} yet (FK_CI_SCENARIOS in compat-tests/ensemble/run.sh): skipped"
    exit 0
  fi
elif [ $# -eq 0 ]; then
  invocations=("${CI_SCENARIOS[@]}")
else
  cur=""
  for a in "$@"; do
    if [[ $SCENARIOS == *" $a "* ]]; then
      [ -n "$cur" ] && invocations+=("$cur")
      cur=$a
    elif [ -z "$cur" ]; then
      echo "unknown scenario '$a' (one of:$SCENARIOS)" >&2; exit 2
    else
      cur="$cur $(printf '%q' "$a")"
    fi
  done
  [ -n "$cur" ] && invocations+=("$cur")
fi
expanded=()
for inv in "${invocations[@]}"; do
  if [ "$inv" = selftest ]; then expanded+=("${SELFTEST[@]}"); else expanded+=("$inv"); fi
done

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/ferrokeeper-ensemble.XXXXXX")
top_cleanup() {
  local f pid
  # Anything a scenario process left behind (it was killed before its own cleanup ran).
  for f in "$ROOT"/*/pids; do
    [ -f "$f" ] || continue
    while read -r pid; do
      if grep -qF "$ROOT" "/proc/$pid/cmdline" 2>/dev/null; then kill -9 "$pid" 2>/dev/null; fi
    done < "$f"
  done
  if [ "${ENSEMBLE_KEEP_WORK:-}" = 1 ] || { [ "${ENSEMBLE_KEEP_WORK:-}" = fail ] &&
      grep -q FAIL "$ROOT/summary.txt" 2>/dev/null; }; then
    log "kept $ROOT (server logs and dataDirs in */m/s*/, acknowledged writes in */m/acked.tsv)"
  else
    rm -rf "$ROOT"
  fi
}
CHILD=""
on_signal() { # forward to the running scenario (its timeout passes it on), let it clean up
  if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null; wait "$CHILD" 2>/dev/null; fi
  exit "$1"
}
trap top_cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# Shared setup once, before the timed scenarios: Java ZooKeeper jars, Kazoo virtualenv.
ENS_WORK=$ROOT
if ! timeout 900 bash -c 'source "$1/lib.sh" && fetch_java_zk' _ "$HERE"; then
  echo "FAIL ensemble/setup (Java ZooKeeper $JAVA_ZK_VERSION jars from Maven)"; exit 1
fi
ens_py_setup || { echo "FAIL ensemble/setup (Kazoo virtualenv)"; exit 1; }
if [ "$CURATOR" = 1 ] && ! timeout 900 bash -c 'source "$1/lib.sh" && ens_curator_setup' _ "$HERE"; then
  echo "FAIL ensemble/setup (Curator load client, compat-tests/ensemble/curator-load, Maven)"; exit 1
fi
needs_fk() { # an invocation that starts ferrokeeper (explicitly, or by its default kinds)
  eval "set -- $1"
  case "$1" in
    leader_kill) [ $# -lt 3 ] && return 0 ;;
    mixed|observer) [ $# -lt 2 ] && return 0 ;;
    rolling) [ $# -lt 3 ] && return 0 ;;
  esac
  grep -qw fk <<<"$*"
}
if [ "${FK_AS_JAVA:-0}" != 1 ]; then
  for inv in "${expanded[@]}"; do
    if needs_fk "$inv"; then
      ens_fk_ready || { echo "FAIL ensemble/setup (cargo build --release)"; exit 1; }
      break
    fi
  done
fi

failed=()
k=0
for inv in "${expanded[@]}"; do
  k=$((k + 1))
  eval "set -- $inv"
  label=""
  for a in "$@"; do case "$a" in *" "*) label="$label \"$a\"" ;; *) label="$label $a" ;; esac; done
  inv=${label# }
  log "=== scenario $k: $inv"
  t0=$(now_ms)
  # In the background so that a signal to this script is handled at once (on_signal).
  ENSEMBLE_WORK="$ROOT/$k" ENSEMBLE_BASE=$((24000 + 100 * ((k - 1) % 9))) \
    timeout -k 15 "$SCENARIO_TIMEOUT" bash "$HERE/run.sh" --one "$@" &
  CHILD=$!
  wait "$CHILD"
  rc=$?
  CHILD=""
  secs=$(( ($(now_ms) - t0) / 1000 ))
  if [ "$rc" = 0 ]; then
    log "=== scenario $k: $inv: PASS (${secs}s)"
    echo "$inv: PASS (${secs}s)" >> "$ROOT/summary.txt"
  else
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && echo "FAIL $inv: timed out after ${SCENARIO_TIMEOUT}s"
    log "=== scenario $k: $inv: FAIL (exit $rc, ${secs}s)"
    echo "$inv: FAIL (exit $rc, ${secs}s)" >> "$ROOT/summary.txt"
    failed+=("$inv")
  fi
done
echo "=== ensemble timings"
[ -f "$ROOT/timings.txt" ] && sed 's/^/  /' "$ROOT/timings.txt"
if [ -f "$ROOT/elections.txt" ]; then
  echo "=== leader election after kill -9 of the leader (until the new leader answers srvr as leader; polled every 50 ms)"
  awk -F'\t' '{print $1}' "$ROOT/elections.txt" | awk '!seen[$0]++' | while read -r sc; do
    ms=($(awk -F'\t' -v s="$sc" '$1 == s {print $2}' "$ROOT/elections.txt"))
    printf '  %-40s %2d kills, min/median/max %s\n' "$sc" "${#ms[@]}" "$(stats "${ms[@]}")"
  done
  for k in fk java; do
    ms=($(awk -F'\t' -v k="$k" '$4 == k {print $2}' "$ROOT/elections.txt"))
    [ ${#ms[@]} -gt 0 ] && printf '  %-40s %2d kills, min/median/max %s\n' "new leader $k (all scenarios)" "${#ms[@]}" "$(stats "${ms[@]}")"
  done
fi
echo "=== ensemble scenarios"
sed 's/^/  /' "$ROOT/summary.txt"
echo "ensemble: $(( ${#expanded[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
