#!/usr/bin/env bash
# dataDir migration suite: one server writes a dataDir (txn logs + snapshots), is stopped with
# SIGTERM, and another server started on the SAME dataDir must serve exactly the same tree, report
# the same last zxid, keep the still-open session alive (with its ephemerals) and know which nodes
# are containers.
#
#   compat-tests/durability/run.sh          (no arguments; 127.0.0.1:22781 and :22782 only)
#   DURABILITY_KEEP_WORK=1 compat-tests/durability/run.sh   keep the dataDirs, dumps and logs
#
# Scenarios (each in its own dataDir, every server with snapCount=100 so Java rolls its log and
# snapshots every 50..100 txns; the builder writes ~500 txns):
#   java39-restart        Java 3.9 -> Java 3.9 (control: proves the checks can pass)
#   java39-to-fk          Java 3.9 (Maven jars) -> ferrokeeper
#   fk-to-java39          ferrokeeper -> Java 3.9
#   java38-to-fk          Java 3.8 (Debian 12 package `zookeeper`) -> ferrokeeper
#   java39-gz-to-fk       Java 3.9 -> ferrokeeper, both with snapshot.compression.method=gz
#   fk-snappy-to-java39   ferrokeeper -> Java 3.9, both with snapshot.compression.method=snappy
#   roundtrip             Java 3.9 -> ferrokeeper (+ more writes) -> Java 3.9
#   parity                (not a migration) the trees the builder made on fresh Java 3.9 and on
#                         fresh ferrokeeper agree but for times and session ids
# Checks are named SCENARIO/N-SERVER-what, N = which server of the scenario (1 built the tree):
#   builds-tree, wrote-snapshots-and-logs   the source server did its part
#   files-readable-by-java     every snapshot/log the server wrote passes Java 3.9's own readers
#                              (SnapshotFormatter, TxnLogToolkit: Adler-32 seals, CRCs, framing)
#   snapshot-node-types        its newest snapshot encodes TTL nodes, containers, ephemeral owners
#                              and the session list as Java does (clients cannot see these)
#   starts-on-migrated-dataDir, zxid-carried-over (srvr Zxid), tree-identical (every node's data,
#   11 Stat fields, ACL, children), session-X-resumed (same session id/password, ephemerals still
#   owned by it), container-X-reaped (emptied container gets deleted: it was loaded as one),
#   loads-without-warnings (Java 3.9 logged no WARN/ERROR while taking over the dataDir)
# Prints one `PASS name` / `FAIL name` line per check (details indented below a FAIL); exits
# non-zero if any check failed. Java's and ferrokeeper's server logs: DIR/N-SERVER.log.
set -uo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
source ../lib/common.sh

PORT_A=22781
PORT_B=22782
SNAP_CFG=snapCount=100
SCEN_CFG=()            # extra zoo.cfg lines for every server of the current scenario
PY_TIMEOUT=90          # seconds for one tree.py step
PYLIB="$CACHE_DIR/durability-pylib"
KAZOO_VERSION=2.11.0   # same pin as compat-tests/differential
DEBIAN_ZK_JAR=/usr/share/java/zookeeper.jar
DEBIAN_ZK_ENV=/usr/share/zookeeper/bin/zkEnv.sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferrokeeper-durability.XXXXXX")
STARTED_PIDS=()
SERVER_PID=""
SERVER_KIND=""

cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid"; done
  if [ -n "${DURABILITY_KEEP_WORK:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Results

NPASS=0
NFAIL=0
pass_check() { NPASS=$((NPASS + 1)); printf 'PASS %s\n' "$1"; }
fail_check() { # NAME [DETAIL]
  NFAIL=$((NFAIL + 1))
  printf 'FAIL %s\n' "$1"
  if [ -n "${2:-}" ]; then sed 's/^/    | /' <<<"$2"; fi
}
not_run() { # REASON NAME...
  local why=$1 n; shift
  for n in "$@"; do fail_check "$n" "not run: $why"; done
}
show_log() { # FILE : last 30 lines of a server log (ANSI colours stripped)
  [ -f "$1" ] || return 0
  printf -- '--- last 30 lines of %s\n' "${1#"$WORK"/}"
  tail -30 "$1" | sed 's/\x1b\[[0-9;]*m//g; s/^/  /'
}

# ---------------------------------------------------------------------------------------------
# Setup (every step bounded)

setup_pylib() {
  if [ ! -f "$PYLIB/.complete" ]; then
    timeout 300 python3 -m pip install -q --disable-pip-version-check --target "$PYLIB" \
        "kazoo==$KAZOO_VERSION" >&2 || return 1
    touch "$PYLIB/.complete"
  fi
}

setup_java39() {
  [ -f "$JAVA_ZK_LIB/.complete" ] && return 0
  timeout 600 bash -c 'source "$1/../lib/common.sh" && fetch_java_zk' _ "$HERE"
}

debian_zk_installed() {
  [ "$(dpkg-query -W -f='${Status}' zookeeper 2>/dev/null || true)" = "install ok installed" ] &&
    [ -f "$DEBIAN_ZK_JAR" ]
}

# Debian 12's `zookeeper` package is Java ZooKeeper 3.8 (no daemon; that is `zookeeperd`).
setup_java38() {
  debian_zk_installed && return 0
  [ "$(id -u)" = 0 ] || { echo "need root to apt-get install zookeeper"; return 1; }
  command -v apt-get >/dev/null 2>&1 || { echo "apt-get not available"; return 1; }
  local guard=/usr/sbin/policy-rc.d made_guard=0 rc=0
  if [ ! -e "$guard" ]; then
    # Forbid maintainer scripts from starting any daemon during the installation.
    printf '#!/bin/sh\nexit 101\n' > "$guard"; chmod 755 "$guard"; made_guard=1
  fi
  {
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get -o DPkg::Lock::Timeout=120 update -qq &&
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get -o DPkg::Lock::Timeout=120 install -y -qq zookeeper
  } > "$WORK/apt.log" 2>&1 || rc=$?
  if [ "$made_guard" = 1 ]; then rm -f "$guard"; fi
  if [ "$rc" != 0 ]; then echo "apt-get failed ($rc):"; tail -20 "$WORK/apt.log"; return 1; fi
  debian_zk_installed || { echo "zookeeper package still not installed"; return 1; }
}

# The classpath Debian's scripts use (zkEnv.sh; zookeeper.jar's manifest pulls in the rest), plus
# slf4j-simple when present so the 3.8 server's warnings reach server.log.
debian_zk_classpath() {
  local cp=""
  if [ -r "$DEBIAN_ZK_ENV" ]; then
    cp=$( (CLASSPATH=""; . "$DEBIAN_ZK_ENV" >/dev/null 2>&1; printf '%s' "$CLASSPATH") || true)
  fi
  case ":$cp:" in *":$DEBIAN_ZK_JAR:"*) ;; *) cp="${cp:+$cp:}$DEBIAN_ZK_JAR" ;; esac
  if [ -f /usr/share/java/slf4j-simple.jar ]; then cp="$cp:/usr/share/java/slf4j-simple.jar"; fi
  printf '%s' "$cp"
}

start_java38() { # PORT DIR [extra zoo.cfg lines]
  local port=$1 dir=$2; shift 2
  write_cfg "$port" "$dir" "$@"
  java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
      -Dzookeeper.extendedTypesEnabled=true -Dznode.container.checkIntervalMs=1000 \
      -cp "$(debian_zk_classpath)" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
      > "$dir/server.log" 2>&1 &
  JAVA38_PID=$!
  wait_port "$port" 60
}

# ---------------------------------------------------------------------------------------------
# Servers: one at a time, on the scenario's DIR (data in DIR/data, log in DIR/server.log)

kind_name() {
  case "$1" in java39) echo "Java 3.9" ;; java38) echo "Java 3.8 (Debian)" ;; fk) echo ferrokeeper ;; esac
}

# start_server KIND PORT DIR : sets SERVER_PID; 0 when the server answers srvr.
start_server() {
  local kind=$1 port=$2 dir=$3 rc=0
  SERVER_KIND=$kind
  case "$kind" in
    java39)
      JAVA_ZK_PID=""
      start_java_zk "$port" "$dir" "$SNAP_CFG" "${SCEN_CFG[@]}" 2>>"$dir/start.err" || rc=1
      SERVER_PID=$JAVA_ZK_PID ;;
    java38)
      JAVA38_PID=""
      start_java38 "$port" "$dir" "$SNAP_CFG" "${SCEN_CFG[@]}" || rc=1
      SERVER_PID=$JAVA38_PID ;;
    fk)
      FK_PID=""
      start_ferrokeeper "$port" "$dir" "$SNAP_CFG" "${SCEN_CFG[@]}" 2>>"$dir/start.err" || rc=1
      SERVER_PID=$FK_PID ;;
  esac
  if [ -n "$SERVER_PID" ]; then STARTED_PIDS+=("$SERVER_PID"); fi
  return "$rc"
}

# stop_server DIR TAG : SIGTERM (stop_pid: SIGKILL after 5 s), keep its log as DIR/TAG.log.
stop_server() {
  local p keep=()
  stop_pid "$SERVER_PID"
  for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$SERVER_PID" ] || keep+=("$p"); done
  STARTED_PIDS=("${keep[@]}")
  SERVER_PID=""
  if [ -f "$1/server.log" ]; then mv "$1/server.log" "$1/$2.log"; fi
}

srvr_zxid() { # PORT -> "0x..." or empty
  (four_letter "$1" srvr) 2>/dev/null | sed -n 's/^Zxid: *//p' | tr -d '\r' | sed -n 1p
}

same_zxid() { # A B : numerically equal hex zxids
  [[ $1 =~ ^0x[0-9a-fA-F]+$ && $2 =~ ^0x[0-9a-fA-F]+$ ]] && [ "$((16#${1#0x}))" = "$((16#${2#0x}))" ]
}

tree() { # tree.py args... ; output (stdout+stderr) in TREE_OUT
  local rc=0
  TREE_OUT=$(timeout "$PY_TIMEOUT" python3 "$HERE/tree.py" "$@" 2>&1) || rc=$?
  [ "$rc" = 124 ] && TREE_OUT="$TREE_OUT
(tree.py $1 timed out after ${PY_TIMEOUT}s)"
  return "$rc"
}

version2_listing() {
  if [ -n "$(ls -A "$1/data/version-2" 2>/dev/null)" ]; then
    ls -l "$1/data/version-2" | sed 1d
  else
    echo "(dataDir/version-2 is missing or empty; dataDir holds: $(ls -A "$1/data" 2>/dev/null | tr '\n' ' '))"
  fi
}

count_files() { # DIR PATTERN
  find "$1/data/version-2" -maxdepth 1 -name "$2" 2>/dev/null | wc -l
}

# ---------------------------------------------------------------------------------------------
# Steps of a scenario. Each sets OK=0 when something later cannot run.

# source_phase S KIND DIR PREFIX TAG : start KIND on DIR (port A), build the tree, dump it,
# remember srvr's zxid, stop it; check the dataDir it left.
source_phase() {
  local s=$1 kind=$2 dir=$3 prefix=$4 tag=$5
  OK=1
  touch "$dir/.start-$tag"
  if ! start_server "$kind" "$PORT_A" "$dir"; then
    fail_check "$s/$tag-starts" "$(kind_name "$kind") did not start on 127.0.0.1:$PORT_A
$(cat "$dir/start.err" 2>/dev/null | tail -5)
$(show_log "$dir/server.log")"
    stop_server "$dir" "$tag"
    OK=0; return
  fi
  if tree build "$PORT_A" "$dir/state-$prefix.json" "$prefix"; then
    pass_check "$s/$tag-builds-tree"
  else
    fail_check "$s/$tag-builds-tree" "$TREE_OUT
$(show_log "$dir/server.log")"
    stop_server "$dir" "$tag"
    OK=0; return
  fi
  if ! tree dump "$PORT_A" "$dir/$tag.json"; then
    fail_check "$s/$tag-dump" "$TREE_OUT"
    stop_server "$dir" "$tag"
    OK=0; return
  fi
  ZXID_BEFORE=$(srvr_zxid "$PORT_A")
  stop_server "$dir" "$tag"
  DUMP_BEFORE="$dir/$tag.json"
}

# check_files S KIND DIR : the stopped server left several snapshots and txn logs.
check_files() { # S LABEL DIR
  local s=$1 kind=$2 dir=$3 snaps logs
  snaps=$(count_files "$dir" 'snapshot.*')
  logs=$(count_files "$dir" 'log.*')
  if [ "$snaps" -ge 2 ] && [ "$logs" -ge 2 ]; then
    pass_check "$s/$kind-wrote-snapshots-and-logs"
  else
    fail_check "$s/$kind-wrote-snapshots-and-logs" "want >= 2 snapshot.* and >= 2 log.* in dataDir/version-2 (snapCount=100, ~500 txns); got $snaps snapshots, $logs logs:
$(version2_listing "$dir")"
  fi
}

# target_phase S KIND DIR PORT TAG : start KIND on the migrated DIR; zxid and tree must match.
target_phase() {
  local s=$1 kind=$2 dir=$3 port=$4 tag=$5 z out
  OK=1
  touch "$dir/.start-$tag"
  if ! start_server "$kind" "$port" "$dir"; then
    fail_check "$s/$tag-starts-on-migrated-dataDir" "$(kind_name "$kind") did not start on 127.0.0.1:$port
$(cat "$dir/start.err" 2>/dev/null | tail -5)
$(show_log "$dir/server.log")"
    stop_server "$dir" "$tag"
    OK=0; return
  fi
  pass_check "$s/$tag-starts-on-migrated-dataDir"
  z=$(srvr_zxid "$port")
  if same_zxid "$z" "$ZXID_BEFORE"; then
    pass_check "$s/$tag-zxid-carried-over"
  else
    fail_check "$s/$tag-zxid-carried-over" "srvr Zxid before the stop: ${ZXID_BEFORE:-?}; after the start: ${z:-?}
$(show_log "$dir/server.log")"
  fi
  if ! tree dump "$port" "$dir/$tag.json"; then
    fail_check "$s/$tag-tree-identical" "dump failed: $TREE_OUT
$(show_log "$dir/server.log")"
  elif out=$(timeout 60 python3 "$HERE/tree.py" compare "$DUMP_BEFORE" "$dir/$tag.json" before after); then
    pass_check "$s/$tag-tree-identical"
  else
    fail_check "$s/$tag-tree-identical" "$out
$(show_log "$dir/server.log")"
  fi
}

check_resume() { # S LABEL DIR PORT PREFIX
  local s=$1 kind=$2 dir=$3 port=$4 prefix=$5
  if tree resume "$port" "$dir/state-$prefix.json"; then
    pass_check "$s/$kind-session-$prefix-resumed"
  else
    fail_check "$s/$kind-session-$prefix-resumed" "$TREE_OUT
$(show_log "$dir/server.log")"
    return 1
  fi
}

check_container() { # S LABEL DIR PORT PREFIX
  local s=$1 kind=$2 dir=$3 port=$4 prefix=$5
  if tree container "$port" "$dir/state-$prefix.json"; then
    pass_check "$s/$kind-container-$prefix-reaped"
  else
    fail_check "$s/$kind-container-$prefix-reaped" "$TREE_OUT
$(show_log "$dir/server.log")"
  fi
}

newest_snapshot() { # FILE... : the one with the highest zxid suffix
  local f best="" bz=-1 z
  for f in "$@"; do
    case "${f##*/}" in snapshot.*) ;; *) continue ;; esac
    z=${f##*/snapshot.}; z=${z%%.*}
    [[ $z =~ ^[0-9a-fA-F]+$ ]] || continue
    if [ "$((16#$z))" -gt "$bz" ]; then bz=$((16#$z)); best=$f; fi
  done
  printf '%s' "$best"
}

# check_written S KIND DIR TAG [REQUIRE_SNAPSHOT] : the files the (now stopped) server wrote or
# changed since its start must be readable by Java 3.9's own readers (SnapshotFormatter,
# TxnLogToolkit); the newest snapshot it wrote must carry the right node types (TTL, container,
# ephemeral owners, session list). Every phase makes write txns (at least the dump's session), so
# writing nothing at all is a failure.
check_written() {
  local s=$1 kind=$2 dir=$3 tag=$4 require_snap=${5:-0} out rc=0 files=() f bad="" snap states=()
  local v2="$dir/data/version-2" tools="$dir/tools-$4"
  if [ -d "$v2" ]; then
    while IFS= read -r f; do files+=("$f"); done < <(find "$v2" -maxdepth 1 -type f \
        \( -name 'snapshot.*' -o -name 'log.*' \) -newer "$dir/.start-$tag" | sort)
  fi
  if [ "${#files[@]}" = 0 ]; then
    fail_check "$s/$tag-files-readable-by-java" "$(kind_name "$kind") wrote no snapshot or log file although it served write txns:
$(version2_listing "$dir")"
    if [ "$require_snap" = 1 ]; then not_run "no snapshot written" "$s/$tag-snapshot-node-types"; fi
    return
  fi
  mkdir -p "$tools"
  out=$(timeout 120 java -cp "$(java_zk_cp)" "$HERE/JavaTools.java" "$tools" "${files[@]}" 2>&1) || rc=$?
  for f in "${files[@]}"; do
    case "${f##*/}" in
      log.*)
        grep -q '^EOF reached after' "$tools/${f##*/}.txt" 2>/dev/null || bad="$bad ${f##*/}(no clean EOF)"
        if grep -q 'CRC ERROR' "$tools/${f##*/}.txt" 2>/dev/null; then bad="$bad ${f##*/}(CRC ERROR)"; fi ;;
      snapshot.*)
        grep -q '^Last zxid:' "$tools/${f##*/}.txt" 2>/dev/null || bad="$bad ${f##*/}(incomplete)" ;;
    esac
  done
  if [ "$rc" = 0 ] && [ -z "$bad" ]; then
    pass_check "$s/$tag-files-readable-by-java"
  else
    fail_check "$s/$tag-files-readable-by-java" "Java 3.9's readers on the ${#files[@]} files $(kind_name "$kind") wrote (rc=$rc):${bad}
$(grep -v '^OK ' <<<"$out" | head -20)
$(for f in "${files[@]}"; do
    if grep -q 'CRC ERROR\|Exception' "$tools/${f##*/}.txt" 2>/dev/null; then
      echo "--- ${f##*/}:"; grep -m5 -B1 -A3 'CRC ERROR\|Exception' "$tools/${f##*/}.txt"
    fi
  done)
$(version2_listing "$dir")"
  fi
  snap=$(newest_snapshot "${files[@]}")
  if [ -z "$snap" ]; then
    if [ "$require_snap" = 1 ]; then not_run "$(kind_name "$kind") wrote no snapshot" "$s/$tag-snapshot-node-types"; fi
    return
  fi
  for f in "$dir"/state-*.json; do [ -f "$f" ] && states+=("$f"); done
  if [ ! -f "$tools/${snap##*/}.txt" ] || ! grep -q '^Last zxid:' "$tools/${snap##*/}.txt"; then
    fail_check "$s/$tag-snapshot-node-types" "Java's SnapshotFormatter could not read ${snap##*/}"
  elif out=$(timeout 60 python3 "$HERE/tree.py" snapcheck "$tools/${snap##*/}.txt" "${states[@]}" 2>&1); then
    pass_check "$s/$tag-snapshot-node-types"
  else
    fail_check "$s/$tag-snapshot-node-types" "in ${snap##*/} (newest snapshot written by $(kind_name "$kind")):
$out"
  fi
}

# check_java_log S LABEL LOGFILE : a Java 3.9 server that loaded a migrated dataDir logged no
# warning or error beyond the one every test server logs (maxCnxns) - e.g. none of the
# "likely due to reading an older snapshot" ones a snapshot without digest causes.
check_java_log() {
  local s=$1 kind=$2 logf=$3 bad
  bad=$(grep -E '^[0-9:.]+ (WARN|ERROR) ' "$logf" 2>/dev/null | grep -v 'maxCnxns is not configured' || true)
  if [ -z "$bad" ]; then
    pass_check "$s/$kind-loads-without-warnings"
  else
    fail_check "$s/$kind-loads-without-warnings" "$(head -10 <<<"$bad")"
  fi
}

# migrate S SRC DST [ZOO.CFG LINE...] : SRC builds, SIGTERM, DST on the same dataDir; both
# servers get the extra zoo.cfg lines.
migrate() {
  local s=$1 src=$2 dst=$3 dir="$WORK/$1"
  SCEN_CFG=("${@:4}")
  mkdir -p "$dir"
  log "=== $s: $(kind_name "$src") -> $(kind_name "$dst") ${SCEN_CFG[*]}"
  source_phase "$s" "$src" "$dir" a 1-"$src"
  if [ "$OK" = 0 ]; then
    not_run "the $src phase failed" "$s/1-$src-wrote-snapshots-and-logs" \
      "$s/2-$dst-starts-on-migrated-dataDir" "$s/2-$dst-zxid-carried-over" "$s/2-$dst-tree-identical" \
      "$s/2-$dst-session-a-resumed" "$s/2-$dst-container-a-reaped"
    return
  fi
  check_files "$s" 1-"$src" "$dir"
  check_written "$s" "$src" "$dir" 1-"$src" 1
  target_phase "$s" "$dst" "$dir" "$PORT_B" 2-"$dst"
  if [ "$OK" = 0 ]; then
    not_run "$dst did not start" "$s/2-$dst-zxid-carried-over" "$s/2-$dst-tree-identical" \
      "$s/2-$dst-session-a-resumed" "$s/2-$dst-container-a-reaped"
    return
  fi
  # The snapshot Java writes right after loading, before any client: proves what it loaded.
  if [ "$dst" != fk ]; then check_written "$s" "$dst" "$dir" 2-"$dst"; fi
  check_resume "$s" 2-"$dst" "$dir" "$PORT_B" a
  check_container "$s" 2-"$dst" "$dir" "$PORT_B" a
  stop_server "$dir" 2-"$dst"
  if [ "$dst" = fk ]; then check_written "$s" "$dst" "$dir" 2-"$dst"; fi
  if [ "$dst" = java39 ]; then check_java_log "$s" 2-"$dst" "$dir/2-$dst.log"; fi
}

# roundtrip S : Java 3.9 builds; ferrokeeper takes over, resumes the session, reaps a container
# and builds more (prefix b); Java 3.9 takes the result back.
roundtrip() {
  local s=$1 dir="$WORK/$1"
  SCEN_CFG=()
  mkdir -p "$dir"
  log "=== $s: Java 3.9 -> ferrokeeper (+ writes) -> Java 3.9"
  source_phase "$s" java39 "$dir" a 1-java39
  if [ "$OK" = 0 ]; then
    not_run "the first Java 3.9 phase failed" "$s/2-fk-starts-on-migrated-dataDir" "$s/3-java39-tree-identical"
    return
  fi
  target_phase "$s" fk "$dir" "$PORT_B" 2-fk
  if [ "$OK" = 0 ]; then
    not_run "ferrokeeper did not start" "$s/3-java39-tree-identical"
    return
  fi
  local a_alive=1
  check_resume "$s" 2-fk "$dir" "$PORT_B" a || a_alive=0
  check_container "$s" 2-fk "$dir" "$PORT_B" a
  if tree build "$PORT_B" "$dir/state-b.json" b; then
    pass_check "$s/2-fk-builds-more"
  else
    fail_check "$s/2-fk-builds-more" "$TREE_OUT
$(show_log "$dir/server.log")"
  fi
  if ! tree dump "$PORT_B" "$dir/2-fk-final.json"; then
    fail_check "$s/2-fk-dump" "$TREE_OUT"
    stop_server "$dir" 2-fk
    not_run "the ferrokeeper dump failed" "$s/3-java39-tree-identical"
    return
  fi
  ZXID_BEFORE=$(srvr_zxid "$PORT_B")
  stop_server "$dir" 2-fk
  check_written "$s" fk "$dir" 2-fk
  DUMP_BEFORE="$dir/2-fk-final.json"
  target_phase "$s" java39 "$dir" "$PORT_A" 3-java39
  if [ "$OK" = 0 ]; then return; fi
  check_written "$s" java39 "$dir" 3-java39
  if [ -f "$dir/state-b.json" ]; then
    check_resume "$s" 3-java39 "$dir" "$PORT_A" b
    check_container "$s" 3-java39 "$dir" "$PORT_A" b
  fi
  # Session a went Java -> ferrokeeper -> Java; only meaningful if ferrokeeper had it.
  if [ "$a_alive" = 1 ]; then
    check_resume "$s" 3-java39 "$dir" "$PORT_A" a
  else
    not_run "session a was not resumed on ferrokeeper" "$s/3-java39-session-a-resumed"
  fi
  stop_server "$dir" 3-java39
  check_java_log "$s" 3-java39 "$dir/3-java39.log"
}

# parity : not a migration check. The same builder ran against a fresh Java 3.9 (java39-to-fk)
# and a fresh ferrokeeper (fk-to-java39); their trees must agree but for times and session ids.
# A difference here is a live-behaviour difference that the migration checks would inherit.
parity() {
  local a="$WORK/java39-to-fk/1-java39.json" b="$WORK/fk-to-java39/1-fk.json" out
  if [ ! -f "$a" ] || [ ! -f "$b" ]; then
    not_run "a builder dump is missing" "parity/fk-builds-same-tree-as-java39"
  elif out=$(timeout 60 python3 "$HERE/tree.py" compare --loose "$a" "$b" java39 fk); then
    pass_check "parity/fk-builds-same-tree-as-java39"
  else
    fail_check "parity/fk-builds-same-tree-as-java39" "$out"
  fi
}

# ---------------------------------------------------------------------------------------------

main() {
  local p t0=$SECONDS
  for p in "$PORT_A" "$PORT_B"; do
    if (four_letter "$p" srvr) 2>/dev/null | grep -q '^Zookeeper version'; then
      fail_check "setup/ports-free" "something already serves 127.0.0.1:$p (a leftover server?)"
      exit 1
    fi
  done
  if ! out=$(setup_pylib 2>&1); then
    fail_check "setup/kazoo" "$out"; exit 1
  fi
  export PYTHONPATH="$PYLIB${PYTHONPATH:+:$PYTHONPATH}"
  if ! out=$(setup_java39 2>&1); then
    fail_check "setup/java-zookeeper-3.9" "$out"; exit 1
  fi
  # Test the current source (a no-op when target/release is up to date), unless FERROKEEPER_BIN
  # points at a binary to test instead.
  if [ -z "${FERROKEEPER_BIN:-}" ]; then
    if ! out=$(cd "$REPO_DIR" && timeout 900 cargo build --release --quiet 2>&1); then
      fail_check "setup/cargo-build-release" "$(tail -20 <<<"$out")
(the ferrokeeper checks below use whatever $(ferrokeeper_bin) is there)"
    fi
  fi

  migrate java39-restart java39 java39
  migrate java39-to-fk java39 fk
  migrate fk-to-java39 fk java39
  parity
  # Compressed snapshots (snapshot.<zxid>.gz / .snappy, Java's SnapStream).
  migrate java39-gz-to-fk java39 fk snapshot.compression.method=gz
  migrate fk-snappy-to-java39 fk java39 snapshot.compression.method=snappy
  if out=$(setup_java38 2>&1); then
    migrate java38-to-fk java38 fk
  else
    fail_check "java38-to-fk/apt-install-zookeeper" "$out"
    not_run "Debian's zookeeper (3.8) could not be installed" "java38-to-fk/1-java38-builds-tree"
  fi
  roundtrip roundtrip

  log "durability: $NPASS passed, $NFAIL failed ($((SECONDS - t0))s)"
  printf '%d passed, %d failed\n' "$NPASS" "$NFAIL"
  [ "$NFAIL" = 0 ]
}

main
