#!/usr/bin/env bash
# Network-partition test: a 3-member ensemble, each member in its own Linux network namespace,
# cut off from the other members by taking its link to the quorum bridge down, then healed.
#
#   sudo compat-tests/ensemble/partition.sh              KINDS="fk fk fk" (the default)
#   KINDS="java java java" compat-tests/ensemble/partition.sh    the same test against Java 3.9.5
#   KINDS="java fk java" ...                                    any mix (server ids 1, 2, 3)
#
# Must run as root (namespaces, veths, bridges); installs iproute2 with apt-get if `ip` is
# missing. Needs Java 17+ and Maven for java members, cargo for ferrokeeper (built with
# cargo build --release if target/release/ferrokeeper is missing), and the Kazoo virtualenv of
# compat-tests/kazoo (compat-tests/.cache/kazoo-venv, built by compat-tests/kazoo/run.sh).
#
# Topology (nothing is added to the root namespace: no address, no route, no firewall rule):
#
#   fkpart-<pid>-hub   the "switch" namespace and the clients' namespace:
#                        bridge brq (quorum network 10.231.0.0/24, no address of its own)
#                        bridge brc (client network, 10.232.0.254/24: Kazoo, check.py and the
#                                    four-letter words run here, with `ip netns exec`)
#   fkpart-<pid>-N     member N (N = 1..3): eth0 10.231.0.N/24, veth to qN on brq;
#                                           eth1 10.232.0.N/24, veth to cN on brc
#
#   zoo.cfg: server.N=10.231.0.N:2888:3888, clientPort=2181 (all addresses of the namespace),
#   tickTime=500, initLimit=10, syncLimit=5, localSessionsEnabled=true and
#   localSessionsUpgradingEnabled=true (Java 3.9's read-only server only accepts NEW sessions
#   that are local, see write_cfg; ferrokeeper accepts and ignores both keys);
#   readonlymode.enabled=true (a -D property, for both kinds).
#
# A partition is `ip -n fkpart-<pid>-hub link set qN down`: member N loses every quorum and
# election connection (packets are dropped, no RST), while clients still reach it on the
# client network - like a client next to a server that lost its peers. Healing is `link set qN
# up`. The hub namespace has no firewall rules, so a host firewall (e.g. Docker's FORWARD DROP
# with bridge-nf-call-iptables) cannot interfere.
#
# Scenario and checks (PASS/FAIL lines; exit status 1 if any failed, 2 if it could not run):
#   formed        3 members start, one leader + two followers
#   cut the LEADER L:
#   a-new-leader  the two others elect a new leader within PART_MAX_FAILOVER_MS (default 10000)
#   a-write       a client connected to the two others (connected before the cut) gets a write
#                 acknowledged within PART_MAX_FAILOVER_MS of the cut (time printed)
#   b-not-acknowledged  a write sent to L right after the cut by a client connected to L alone
#                 is not acknowledged (ConnectionLoss, timeout, ...); d-same-data then checks
#                 that it exists on no member
#   b-stepdown    L's srvr stops reporting Mode: leader within (syncLimit+1) ticks + 1 s of the
#                 cut and never reports it again while cut off (polled every ~50 ms; and
#                 b-never-leader-again: still not leader just before healing)
#   partition-1   sanity: L cannot reach the others on the quorum network, they reach each
#                 other, clients reach L
#   c-isro        L answers isro with "ro" (and srvr Mode: read-only) within 15 s of the cut
#   c-ro-client   a read_only=True Kazoo client connected to L alone is CONNECTED_RO, reads the
#                 data written before the partition, gets NotReadOnlyCallError on writes
#   a-serving     the majority acknowledges 50 more writes during the partition
#   d-rejoin      after healing, L is a follower of the new leader (time printed)
#   d-same-data   each member alone, after sync(): same children, data and Stat under /part,
#                 every acknowledged write present (before, during the partition), the write
#                 sent to the isolated leader and the refused read-only write absent
#   cut a FOLLOWER F:
#   e-leader-kept the leader stays leader (sampled until (syncLimit+1) ticks + 2 s after the cut)
#   e-write       a client of the leader and the other follower gets a write acknowledged
#   partition-2   sanity, as partition-1
#   e-follower-out F stops reporting Mode: follower within (syncLimit+1) ticks + 1 s of the cut
#   e-isro        F answers isro with "ro" within 15 s of the cut
#   e-serving     50 more writes acknowledged during the partition
#   e-rejoin      after healing, F is a follower again
#   e-same-data   as d-same-data, with the writes made while F was cut off
#   load-1/load-2 check.py load for PART_LOAD_SECS (default 8) from 1 s before each cut: one
#                 Kazoo client per member, failing over to the others; no session may expire,
#                 no unexpected error, >= 50 acknowledged writes
#   load-N-verify check.py verify after healing: every acknowledged write of that load is on
#                 every member, same children of /load everywhere
#   same-tree     check.py same: the whole tree (data and all Stat fields) identical on all three
#
# Environment: KINDS, PART_TIMEOUT (whole-run watchdog, default 170 s), PART_MAX_FAILOVER_MS,
# PART_KEEP_WORK=1 (keep the work directory: configs, server logs), RUST_LOG (default info),
# PART_LOAD=0 (no background load), PART_LOAD_SECS, PART_LOCAL_SESSIONS=0 (no
# localSessionsEnabled lines: then a Java member's read-only server refuses c-ro-client; mixed
# ensembles with a ferrokeeper leader need it, as ferrokeeper does not know the local sessions
# of Java followers). Everything created (processes, namespaces, veths, bridges) is removed on
# exit, also on failure, interrupt or watchdog timeout; the whole run takes about 40 s.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/common.sh
source "$HERE/../lib/common.sh"

KINDS=${KINDS:-"fk fk fk"}
TICK=500
SYNC_LIMIT=5
INIT_LIMIT=10
PART_TIMEOUT=${PART_TIMEOUT:-170}
MAX_FAILOVER_MS=${PART_MAX_FAILOVER_MS:-10000}
# syncLimit ticks without an ack, plus one tick (the leader checks every half tick, the last ack
# may be up to a tick old at the cut), plus 1 s of slack for the srvr polling on a busy machine.
MAX_STEPDOWN_MS=$(( (SYNC_LIMIT + 1) * TICK + 1000 ))
MAX_RO_MS=15000
MAX_REJOIN_MS=45000
LOAD=${PART_LOAD:-1}
LOAD_SECS=${PART_LOAD_SECS:-8}
LOCAL_SESSIONS=${PART_LOCAL_SESSIONS:-1}

TAG="fkpart-$$"
HUB="$TAG-hub"
QNET=10.231.0
CNET=10.232.0
CPORT=2181
N=3

now_ms() { date +%s%3N; }
plog() { printf '[partition %s] %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }

T_START=$(date +%s%3N)
NPASS=0
NFAIL=0
TIMINGS=()
pass_check() { NPASS=$((NPASS + 1)); printf 'PASS %s%s\n' "$1" "${2:+ ($2)}"; }
fail_check() {
  NFAIL=$((NFAIL + 1))
  printf 'FAIL %s\n' "$1"
  if [ -n "${2:-}" ]; then sed 's/^/    | /' <<<"$2"; fi
}
check() { # check NAME OK(0/1) DETAILS
  if [ "$2" = 0 ]; then pass_check "$1" "$3"; else fail_check "$1" "$3"; fi
}
timing() { TIMINGS+=("$1"); printf 'TIME %s\n' "$1"; }

if [ "$(id -u)" != 0 ]; then
  echo "partition.sh: must run as root (network namespaces)" >&2
  exit 2
fi

read -r -a KIND <<<"$KINDS"
if [ ${#KIND[@]} != $N ]; then echo "partition.sh: KINDS needs $N words, got '$KINDS'" >&2; exit 2; fi
for k in "${KIND[@]}"; do
  case "$k" in java|fk) ;; *) echo "partition.sh: unknown kind '$k' (java|fk)" >&2; exit 2 ;; esac
done
KIND=("" "${KIND[@]}")  # 1-based

ns_of() { echo "$TAG-$1"; }
hub() { ip netns exec "$HUB" "$@"; }

# ---------------------------------------------------------------------------------------------
# Cleanup: every process started (by pid), then our namespaces (their veths go with them).

WORK=""
PIDS=()        # every background pid started (servers, clients)
SPID=("" "" "" "")
WATCHDOG=""
CLEANED=0

cleanup() {
  local rc=$? p ns n left
  [ "$CLEANED" = 1 ] && return
  CLEANED=1
  trap '' INT TERM
  [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for ((n = 0; n < 50; n++)); do
    left=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$TAG-"); do
    # Anything still inside one of OUR namespaces was started by this run.
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null || plog "could not delete namespace $ns"
  done
  if ip netns list 2>/dev/null | grep -q "^$TAG-"; then
    plog "WARNING: namespaces left: $(ip netns list | grep "^$TAG-" | tr '\n' ' ')"
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${PART_KEEP_WORK:-0}" = 1 ]; then plog "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'plog "interrupted"; exit 130' INT
on_term() {
  trap '' TERM
  fail_check watchdog "terminated after $(( ($(now_ms) - T_START) / 1000 )) s (PART_TIMEOUT=${PART_TIMEOUT}s, or a TERM from outside)"
  [ -n "$WORK" ] && [ -d "$WORK/s1" ] && show_logs
  exit 143
}
trap on_term TERM

# Stale namespaces of earlier runs whose script is gone and that hold no process.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^fkpart-[0-9]+-'); do
  p=${ns#fkpart-}; p=${p%%-*}
  if ! kill -0 "$p" 2>/dev/null && [ -z "$(ip netns pids "$ns" 2>/dev/null)" ]; then
    plog "removing stale namespace $ns"
    ip netns del "$ns" 2>/dev/null
  fi
done

# ---------------------------------------------------------------------------------------------
# Prerequisites

if ! command -v ip >/dev/null 2>&1; then
  plog "installing iproute2"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; } >&2 \
    || { echo "partition.sh: cannot install iproute2" >&2; exit 2; }
fi
WORK=$(mktemp -d /tmp/fkpart.XXXXXX)

case " $KINDS " in *" java "*) fetch_java_zk || { echo "partition.sh: no Java ZooKeeper jars" >&2; exit 2; } ;; esac
case " $KINDS " in
  *" fk "*)
    if [ ! -x "$(ferrokeeper_bin)" ]; then
      plog "building ferrokeeper (cargo build --release)"
      (cd "$REPO_DIR" && timeout 1200 cargo build --release --quiet) >&2 \
        || { echo "partition.sh: cargo build failed" >&2; exit 2; }
    fi ;;
esac

# The Kazoo virtualenv, made by compat-tests/kazoo/run.sh's own setup (`run.sh 0 --version`
# only runs `pytest --version` afterwards), as compat-tests/ensemble/lib.sh does.
timeout 600 bash "$COMPAT_DIR/kazoo/run.sh" 0 --version >/dev/null 2>"$WORK/kazoo-setup.log" || {
  echo "partition.sh: Kazoo virtualenv setup failed:" >&2; tail -20 "$WORK/kazoo-setup.log" >&2; exit 2; }
VENV="$CACHE_DIR/kazoo-venv"
if [ -x "$VENV/bin/python" ]; then
  PY=("$VENV/bin/python")
else
  PY=(env "PYTHONPATH=$VENV/site${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}")
fi
# part ARGS: partition.py in the hub namespace, bounded.
part() { hub timeout 90 "${PY[@]}" "$HERE/partition.py" "$@"; }
chk() { hub timeout 120 "${PY[@]}" "$HERE/check.py" "$@"; }

# The watchdog: the whole run is bounded (the TERM trap runs the cleanup).
# A foreground client (in the hub namespace) would delay the trap until it ends: the watchdog
# also stops the processes running in the hub namespace (only this run's clients are there).
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM  # the cleanup stops the watchdog and its sleep
  sleep "$PART_TIMEOUT" & sp=$!; wait "$sp"
  kill -TERM $$ 2>/dev/null
  sleep 2 & sp=$!; wait "$sp"
  for p in $(ip netns pids "$HUB" 2>/dev/null); do kill -TERM "$p" 2>/dev/null; done
) &
WATCHDOG=$!

# ---------------------------------------------------------------------------------------------
# Network

net_setup() {
  local i ns
  ip netns add "$HUB" || return 1
  hub ip link set lo up
  ip -n "$HUB" link add brq type bridge || return 1
  ip -n "$HUB" link add brc type bridge || return 1
  ip -n "$HUB" addr add "$CNET.254/24" dev brc
  ip -n "$HUB" link set brq up
  ip -n "$HUB" link set brc up
  for i in $(seq 1 $N); do
    ns=$(ns_of "$i")
    ip netns add "$ns" || return 1
    ip -n "$ns" link set lo up
    ip -n "$HUB" link add "q$i" type veth peer name eth0 netns "$ns" || return 1
    ip -n "$HUB" link add "c$i" type veth peer name eth1 netns "$ns" || return 1
    ip -n "$HUB" link set "q$i" master brq up
    ip -n "$HUB" link set "c$i" master brc up
    ip -n "$ns" addr add "$QNET.$i/24" dev eth0
    ip -n "$ns" addr add "$CNET.$i/24" dev eth1
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set eth1 up
  done
}

cut() { ip -n "$HUB" link set "q$1" down; }
heal() { ip -n "$HUB" link set "q$1" up; }

# tcp_ok FROM_NS ADDR PORT : a TCP connection from namespace FROM_NS to ADDR:PORT is
# established (then sends ruok, so the server sees a well-formed four-letter word)
tcp_ok() {
  ip netns exec "$1" timeout 2 bash -c \
    'exec 3<>"/dev/tcp/$0/$1" || exit 1; printf ruok >&3; timeout 1 cat <&3 >/dev/null; exit 0' \
    "$2" "$3" 2>/dev/null
}

# fourlw I WORD : four-letter word to member I's client port (client network, from the hub)
fourlw() {
  hub timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1; printf %s "$2" >&3; timeout 2 cat <&3' \
    "$CNET.$1" "$CPORT" "$2" 2>/dev/null
}
mode() { fourlw "$1" srvr | tr -d '\r' | sed -n 's/^Mode: *//p' | sed -n 1p; }
modes() { local i out=""; for i in $(seq 1 $N); do m=$(mode "$i"); out="$out $i=${m:--}"; done; echo "${out# }"; }
host() { echo "$CNET.$1:$CPORT"; }
hosts() { local i out=""; for i in "$@"; do out="${out:+$out,}$(host "$i")"; done; echo "$out"; }

# ---------------------------------------------------------------------------------------------
# Servers

write_cfg() {
  local i=$1 dir=$WORK/s$1 j
  mkdir -p "$dir/data"
  echo "$i" > "$dir/data/myid"
  {
    echo "tickTime=$TICK"
    echo "initLimit=$INIT_LIMIT"
    echo "syncLimit=$SYNC_LIMIT"
    echo "dataDir=$dir/data"
    echo "clientPort=$CPORT"
    echo "4lw.commands.whitelist=*"
    echo "admin.enableServer=false"
    echo "maxClientCnxns=0"
    # Java 3.9's read-only server refuses NEW sessions unless they are local sessions (its
    # ReadOnlyRequestProcessor answers createSession of a global session with NOTREADONLY;
    # apache/zookeeper PR #1922 documents the need), so c-ro-client needs this on Java members.
    if [ "$LOCAL_SESSIONS" = 1 ]; then
      echo "localSessionsEnabled=true"
      echo "localSessionsUpgradingEnabled=true"  # sessions that create ephemerals (check.py load)
    fi
    for j in $(seq 1 $N); do echo "server.$j=$QNET.$j:2888:3888"; done
  } > "$dir/zoo.cfg"
}

start_server() {
  local i=$1 dir=$WORK/s$1 ns logback
  ns=$(ns_of "$i")
  echo ">>> $(date '+%H:%M:%S.%3N') starting member $i (${KIND[i]}) in $ns" >> "$dir/server.log"
  case "${KIND[i]}" in
    java)
      logback="$HERE/logback.xml"
      [ -f "$logback" ] || logback="$COMPAT_DIR/java-zk/logback.xml"
      ip netns exec "$ns" java -Xmx256m ${JAVA_ZK_JVMFLAGS:-} -Dzk.log.level=INFO \
          -Dlogback.configurationFile="$logback" -Dreadonlymode.enabled=true \
          -Dzookeeper.extendedTypesEnabled=true \
          -cp "$(java_zk_cp)" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
          >> "$dir/server.log" 2>&1 &
      ;;
    fk)
      RUST_LOG=${RUST_LOG:-info} ip netns exec "$ns" "$(ferrokeeper_bin)" --config "$dir/zoo.cfg" \
          -D readonlymode.enabled=true -D zookeeper.extendedTypesEnabled=true \
          >> "$dir/server.log" 2>&1 &
      ;;
  esac
  SPID[i]=$!
  PIDS+=("${SPID[i]}")
}

server_alive() { kill -0 "${SPID[$1]}" 2>/dev/null; }

note() { # a marker in every server log, to find the test's steps in them
  local i
  for i in $(seq 1 $N); do echo ">>> $(date '+%H:%M:%S.%3N') TEST: $*" >> "$WORK/s$i/server.log"; done
  plog "$*"
}

# settled: exactly one leader and N-1 followers; prints the leader
settled() {
  local i m l="" f=0
  for i in $(seq 1 $N); do
    m=$(mode "$i")
    case "$m" in
      leader) [ -z "$l" ] || return 1; l=$i ;;
      follower) f=$((f + 1)) ;;
      *) return 1 ;;
    esac
  done
  [ -n "$l" ] && [ "$f" = $((N - 1)) ] && echo "$l"
}

wait_settled() { # SECS : prints the leader
  local secs=$1 end l
  end=$(( $(now_ms) + secs * 1000 ))
  while [ "$(now_ms)" -lt "$end" ]; do
    if l=$(settled); then echo "$l"; return 0; fi
    sleep 0.1
  done
  return 1
}

# show_logs: per member, the role changes and the test's markers, then the last lines
show_logs() {
  local i f
  for i in $(seq 1 $N); do
    f="$WORK/s$i/server.log"
    printf -- '--- member %s (%s) %s: role changes and test steps\n' "$i" "${KIND[i]}" "$f"
    sed 's/\x1b\[[0-9;]*m//g' "$f" | grep -E '>>>|role ended|election decided|LEADING|FOLLOWING|leaving the role|sufficient|read-only|ReadOnly|TRUNC|syncing learner|sync by|Sending (DIFF|SNAP|TRUNC)|ERROR|panick' \
      | grep -v 'read-only session' | tail -n 60 | cut -c1-300 | sed 's/^/  /'
    printf -- '--- member %s: last 30 lines\n' "$i"
    tail -n 30 "$f" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-300 | sed 's/^/  /'
  done
  [ "${PART_KEEP_WORK:-0}" = 1 ] || echo "(PART_KEEP_WORK=1 keeps $WORK with the whole logs)"
}

# ---------------------------------------------------------------------------------------------
# Client helpers

REC="$WORK/written.tsv"   # every acknowledged write under /part (path TAB data)
: > "$REC"

# start_writer NAME HOSTS PATH [--retry ...] : a writer connected now, writing at the go signal
start_writer() {
  local name=$1 hs=$2 path=$3; shift 3
  rm -f "$WORK/$name.ready" "$WORK/$name.json"
  # Not through part(): $! must be the process itself (ip netns exec execs timeout, which
  # passes a TERM on to python).
  ip netns exec "$HUB" timeout 90 "${PY[@]}" "$HERE/partition.py" writer --hosts "$hs" \
      --path "$path" --ready "$WORK/$name.ready" --go "$WORK/$name.go" \
      --out "$WORK/$name.json" "$@" > "$WORK/$name.out" 2>&1 &
  PIDS+=("$!")
  eval "WPID_$name=$!"
}
wait_ready() { # NAME...
  local n name
  for name in "$@"; do
    for ((n = 0; n < 300; n++)); do [ -f "$WORK/$name.ready" ] && break; sleep 0.1; done
    [ -f "$WORK/$name.ready" ] || { plog "writer $name not ready: $(cat "$WORK/$name.out")"; return 1; }
  done
}
go() { local name; for name in "${@:2}"; do echo "$1" > "$WORK/$name.go.tmp"; mv "$WORK/$name.go.tmp" "$WORK/$name.go"; done; }
wait_writer() { # NAME SECS : waits for the writer's process; its JSON on stdout
  local name=$1 secs=$2 pidvar n pid
  pidvar="WPID_$name"; pid=${!pidvar}
  for ((n = 0; n < secs * 10; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  cat "$WORK/$name.json" 2>/dev/null || echo '{}'
}
jget() { "${PY[@]}" -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }

LOAD_PID=""
LOAD_NAME=""
# start_load NAME : check.py load (one client per member, each failing over to the others) for
# LOAD_SECS seconds, started just before a cut so that writes are in flight when it happens.
start_load() {
  [ "$LOAD" = 1 ] || return 0
  LOAD_NAME=$1
  ip netns exec "$HUB" timeout 120 "${PY[@]}" "$HERE/check.py" load --hosts "$(hosts 1 2 3)" \
      --seconds "$LOAD_SECS" --out "$WORK/$1.tsv" --min-acks 50 \
      > "$WORK/$1.txt" 2> "$WORK/$1.err" &
  LOAD_PID=$!
  PIDS+=("$LOAD_PID")
  sleep 1
}
# finish_load : waits for the load (it stops by itself after LOAD_SECS) and judges it
finish_load() {
  [ -n "$LOAD_PID" ] || return 0
  local n rc
  for ((n = 0; n < 600; n++)); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$LOAD_PID" 2>/dev/null
  wait "$LOAD_PID"; rc=$?
  LOAD_PID=""
  check "$LOAD_NAME" "$([ $rc = 0 ] && echo 0 || echo 1)" \
    "$(grep -v '^  w[0-9]* session' "$WORK/$LOAD_NAME.txt"; grep -v '^\[check.py' "$WORK/$LOAD_NAME.err" | tail -5)"
}
# verify_load NAME : check.py verify of that load's acknowledged writes on every member
verify_load() {
  [ "$LOAD" = 1 ] && [ -f "$WORK/$1.tsv" ] || return 0
  local out rc
  out=$(chk verify --hosts "$(hosts 1 2 3)" --acked "$WORK/$1.tsv" 2>&1); rc=$?
  check "$1-verify" "$([ $rc = 0 ] && echo 0 || echo 1)" "$out"
}

isro() { fourlw "$1" isro | tr -d '\r\n'; }

verify_part() { # NAME : partition.py verify on all three members
  local out rc
  out=$(part verify --hosts "$(hosts 1 2 3)" --record "$REC" --absent "/part/iso-write,/part/ro-write" 2>&1); rc=$?
  check "$1" "$([ $rc = 0 ] && echo 0 || echo 1)" "$out"
}

partition_effective() { # NAME CUT OTHER1 OTHER2
  local name=$1 c=$2 o1=$3 o2=$4 bad=""
  tcp_ok "$(ns_of "$c")" "$QNET.$o1" "$CPORT" && bad="$bad $c->$o1 still connects;"
  tcp_ok "$(ns_of "$o1")" "$QNET.$c" "$CPORT" && bad="$bad $o1->$c still connects;"
  tcp_ok "$(ns_of "$o1")" "$QNET.$o2" "$CPORT" || bad="$bad $o1->$o2 does not connect;"
  tcp_ok "$HUB" "$CNET.$c" "$CPORT" || bad="$bad clients->$c do not connect;"
  check "$name" "$([ -z "$bad" ] && echo 0 || echo 1)" \
    "${bad:-member $c unreachable on the quorum network, $o1<->$o2 connected, clients reach $c}"
}

# ---------------------------------------------------------------------------------------------
# The run

T_START=$(now_ms)
plog "KINDS=\"$KINDS\" work=$WORK namespaces $TAG-{hub,1..$N}"
net_setup || { fail_check net-setup "could not create the namespaces/veths/bridges"; exit 2; }
for i in 1 2 3; do write_cfg "$i"; done
for i in 1 2 3; do start_server "$i"; done
t0=$(now_ms)
if ! L=$(wait_settled 60); then
  fail_check formed "no leader + 2 followers after 60 s: $(modes)"; show_logs; exit 1
fi
pass_check formed "$(( $(now_ms) - t0 )) ms: $(modes)"
timing "start -> ensemble serving: $(( $(now_ms) - t0 )) ms"

out=$(part seed --hosts "$(hosts 1 2 3)" --prefix /part/pre --count 20 --record "$REC" 2>&1) \
  || { fail_check seed "$out"; show_logs; exit 1; }
plog "$out"

# ------------------------------------------------------------------- cut the leader
O=(); for i in 1 2 3; do [ "$i" != "$L" ] && O+=("$i"); done
note "phase 1: preparing to cut off the LEADER $L (${KIND[L]}); majority ${O[*]}"
start_writer iso "$(host "$L")" /part/iso-write --seconds 20
start_writer maj1 "$(hosts "${O[@]}")" /part/maj-write-1 --retry --seconds 30 --record "$REC"
wait_ready iso maj1 || { fail_check writers-ready; show_logs; exit 1; }
start_load load-1

cut "$L"; T0=$(now_ms); go "$T0" iso maj1
note "phase 1: CUT member $L off the quorum network"
# Until a new leader leads and the old one stopped saying it leads (bounded).
NEWL=""; NEWL_MS=""; DOWN_MS=""; DOWN_MODE=""
while [ $(( $(now_ms) - T0 )) -lt 30000 ]; do
  if [ -z "$NEWL" ]; then
    for j in "${O[@]}"; do
      if [ "$(mode "$j")" = leader ]; then NEWL=$j; NEWL_MS=$(( $(now_ms) - T0 )); break; fi
    done
  fi
  if [ -z "$DOWN_MS" ]; then
    m=$(mode "$L")
    if [ "$m" != leader ]; then DOWN_MS=$(( $(now_ms) - T0 )); DOWN_MODE=${m:-not serving}; fi
  fi
  [ -n "$NEWL" ] && [ -n "$DOWN_MS" ] && break
  sleep 0.05
done
note "phase 1: new leader ${NEWL:-none} after ${NEWL_MS:-?} ms; old leader $L left leader mode after ${DOWN_MS:-?} ms"
# Then: the old leader must never say leader again (until MAX_STEPDOWN_MS + 1 s at least), and
# should turn read-only (first isro=ro, bounded by MAX_RO_MS).
LEADER_SEEN=0; RO_MS=""; END=$(( T0 + MAX_STEPDOWN_MS + 1000 ))
while :; do
  t=$(now_ms)
  if [ "$t" -ge "$END" ] && { [ -n "$RO_MS" ] || [ $((t - T0)) -ge "$MAX_RO_MS" ]; }; then break; fi
  [ "$(mode "$L")" = leader ] && LEADER_SEEN=$((LEADER_SEEN + 1))
  if [ -z "$RO_MS" ] && [ "$(isro "$L")" = ro ]; then RO_MS=$(( $(now_ms) - T0 )); fi
  sleep 0.05
done

if [ -n "$NEWL" ] && [ "$NEWL_MS" -le "$MAX_FAILOVER_MS" ]; then
  pass_check a-new-leader "member $NEWL (${KIND[NEWL]}) leads $NEWL_MS ms after the cut"
else
  fail_check a-new-leader "new leader ${NEWL:-none} after ${NEWL_MS:-more than 30000} ms (limit $MAX_FAILOVER_MS): $(modes)"
fi
timing "leader cut -> new leader (srvr): ${NEWL_MS:-none} ms"

j=$(wait_writer maj1 35)
if [ "$(jget "$j" ok)" = True ] && [ "$(jget "$j" ms)" -le "$MAX_FAILOVER_MS" ]; then
  pass_check a-write "write through ${O[*]} acknowledged $(jget "$j" ms) ms after the cut ($(jget "$j" attempts) attempts)"
else
  fail_check a-write "writer through ${O[*]}: $j"
fi
timing "leader cut -> first write acknowledged by the majority: $(jget "$j" ms) ms"

j=$(wait_writer iso 25)
if [ "$(jget "$j" ok)" = False ] && [ -n "$(jget "$j" ms)" ]; then
  pass_check b-not-acknowledged "write to the isolated leader $L: $(jget "$j" error) after $(jget "$j" ms) ms"
else
  fail_check b-not-acknowledged "write to the isolated leader $L: $j"
fi

if [ -n "$DOWN_MS" ] && [ "$DOWN_MS" -le "$MAX_STEPDOWN_MS" ] && [ "$LEADER_SEEN" = 0 ]; then
  pass_check b-stepdown "srvr on $L: '$DOWN_MODE' $DOWN_MS ms after the cut (limit $MAX_STEPDOWN_MS), never leader again"
else
  fail_check b-stepdown "srvr on $L left leader mode after ${DOWN_MS:-never (30 s)} ms (limit $MAX_STEPDOWN_MS); reported leader $LEADER_SEEN more times after that; now: $(mode "$L")"
fi
timing "leader cut -> isolated leader stops reporting leader: ${DOWN_MS:-never} ms"

partition_effective partition-1 "$L" "${O[0]}" "${O[1]}"

if [ -n "$RO_MS" ]; then
  pass_check c-isro "isro on $L: ro $RO_MS ms after the cut; srvr Mode: $(mode "$L")"
  timing "leader cut -> isolated member read-only: $RO_MS ms"
  out=$(part ro --host "$(host "$L")" --record "$REC" --prefix /part/pre 2>&1); rc=$?
  check c-ro-client "$rc" "$out"
else
  fail_check c-isro "isro on $L: '$(isro "$L")' after $MAX_RO_MS ms; srvr Mode: '$(mode "$L")'"
  fail_check c-ro-client "not tried: $L is not read-only"
fi

out=$(part seed --hosts "$(hosts "${O[@]}")" --prefix /part/during1 --count 50 --record "$REC" 2>&1); rc=$?
check a-serving "$rc" "$out"
finish_load
m=$(mode "$L")
[ "$m" != leader ] || fail_check b-never-leader-again "isolated $L reports Mode: leader again just before healing"

note "phase 1: healing $L"
heal "$L"; TH=$(now_ms)
REJ_MS=""
while [ $(( $(now_ms) - TH )) -lt "$MAX_REJOIN_MS" ]; do
  if l=$(settled); then REJ_MS=$(( $(now_ms) - TH )); break; fi
  sleep 0.1
done
if [ -n "$REJ_MS" ] && [ "$l" != "$L" ]; then
  pass_check d-rejoin "$L follows leader $l $REJ_MS ms after healing: $(modes)"
else
  fail_check d-rejoin "after ${MAX_REJOIN_MS} ms: $(modes) (old leader $L, new leader ${NEWL:-none})"
fi
timing "heal -> old leader following: ${REJ_MS:-never} ms"
verify_part d-same-data
verify_load load-1

# ------------------------------------------------------------------- cut a follower
L2=$(settled) || L2=""
if [ -z "$L2" ]; then
  fail_check e-start "no settled ensemble to cut a follower from: $(modes)"
else
  # The follower that was never cut (not the old leader L), when there is one.
  F=""; for i in 1 2 3; do [ "$i" != "$L2" ] && [ "$i" != "$L" ] && F=$i; done
  [ -n "$F" ] || for i in 1 2 3; do [ "$i" != "$L2" ] && F=$i; done
  R=""; for i in 1 2 3; do [ "$i" != "$L2" ] && [ "$i" != "$F" ] && R=$i; done
  note "phase 2: preparing to cut off the FOLLOWER $F (${KIND[F]}); leader $L2, follower $R"
  start_writer maj2 "$(hosts "$L2" "$R")" /part/maj-write-2 --retry --seconds 30 --record "$REC"
  wait_ready maj2 || fail_check writers-ready
  start_load load-2
  cut "$F"; T0=$(now_ms); go "$T0" maj2
  note "phase 2: CUT member $F off the quorum network"
  # The leader must stay leader (sampled until END); F must stop following and turn read-only.
  LOST=""; FOUT_MS=""; FOUT_MODE=""; RO_MS=""; END=$(( T0 + MAX_STEPDOWN_MS + 2000 ))
  while :; do
    t=$(now_ms)
    if [ "$t" -ge "$END" ] && { [ -n "$RO_MS" ] || [ $((t - T0)) -ge "$MAX_RO_MS" ]; }; then break; fi
    if [ "$t" -lt "$END" ]; then
      m=$(mode "$L2"); [ "$m" = leader ] || LOST="${LOST:+$LOST, }'${m:-not serving}' at $(( $(now_ms) - T0 )) ms"
    fi
    if [ -z "$FOUT_MS" ]; then
      m=$(mode "$F"); [ "$m" = follower ] || { FOUT_MS=$(( $(now_ms) - T0 )); FOUT_MODE=${m:-not serving}; }
    fi
    if [ -z "$RO_MS" ] && [ "$(isro "$F")" = ro ]; then RO_MS=$(( $(now_ms) - T0 )); fi
    sleep 0.05
  done
  note "phase 2: follower $F stopped following after ${FOUT_MS:-?} ms, read-only after ${RO_MS:-?} ms"
  check e-leader-kept "$([ -z "$LOST" ] && echo 0 || echo 1)" \
    "${LOST:+leader $L2 reported }${LOST:-$L2 stayed leader through $((END - T0)) ms after the cut: $(modes)}"
  j=$(wait_writer maj2 35)
  if [ "$(jget "$j" ok)" = True ] && [ "$(jget "$j" ms)" -le "$MAX_FAILOVER_MS" ]; then
    pass_check e-write "write through $L2,$R acknowledged $(jget "$j" ms) ms after the cut"
  else
    fail_check e-write "writer through $L2,$R: $j"
  fi
  timing "follower cut -> write acknowledged: $(jget "$j" ms) ms"
  partition_effective partition-2 "$F" "$L2" "$R"
  if [ -n "$FOUT_MS" ] && [ "$FOUT_MS" -le "$MAX_STEPDOWN_MS" ]; then
    pass_check e-follower-out "srvr on $F: '$FOUT_MODE' $FOUT_MS ms after the cut (limit $MAX_STEPDOWN_MS)"
  else
    fail_check e-follower-out "$F stopped reporting follower after ${FOUT_MS:-never} ms (limit $MAX_STEPDOWN_MS)"
  fi
  timing "follower cut -> it stops following: ${FOUT_MS:-never} ms"
  if [ -n "$RO_MS" ]; then
    pass_check e-isro "isro on $F: ro $RO_MS ms after the cut; srvr Mode: $(mode "$F")"
    timing "follower cut -> it is read-only: $RO_MS ms"
  else
    fail_check e-isro "isro on $F: '$(isro "$F")' after $MAX_RO_MS ms; srvr Mode: '$(mode "$F")'"
  fi
  out=$(part seed --hosts "$(hosts "$L2" "$R")" --prefix /part/during2 --count 50 --record "$REC" 2>&1); rc=$?
  check e-serving "$rc" "$out"
  finish_load
  note "phase 2: healing $F"
  heal "$F"; TH=$(now_ms)
  REJ_MS=""
  while [ $(( $(now_ms) - TH )) -lt "$MAX_REJOIN_MS" ]; do
    if l=$(settled); then REJ_MS=$(( $(now_ms) - TH )); break; fi
    sleep 0.1
  done
  if [ -n "$REJ_MS" ]; then
    pass_check e-rejoin "$F follows again $REJ_MS ms after healing: $(modes)"
  else
    fail_check e-rejoin "after ${MAX_REJOIN_MS} ms: $(modes)"
  fi
  timing "heal -> follower following again: ${REJ_MS:-never} ms"
  verify_part e-same-data
  verify_load load-2
fi

out=$(chk same --hosts "$(hosts 1 2 3)" 2>&1); rc=$?
check same-tree "$([ $rc = 0 ] && echo 0 || echo 1)" "$out"

for i in 1 2 3; do
  server_alive "$i" || fail_check "member-$i-alive" "member $i (${KIND[i]}) exited: $(tail -5 "$WORK/s$i/server.log")"
done

echo "=== partition test, KINDS=\"$KINDS\": $NPASS passed, $NFAIL failed, $(( ($(now_ms) - T_START) / 1000 )) s"
for t in "${TIMINGS[@]}"; do echo "  $t"; done
if [ "$NFAIL" -gt 0 ]; then show_logs; exit 1; fi
exit 0
