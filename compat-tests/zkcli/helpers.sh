#!/usr/bin/env bash
# Helpers for compat-tests/zkcli/run.sh (sourced, not executed).
#
#   ensure_clients                    install/fetch zkCli 3.9 (Maven) and 3.8 (Debian `zookeeper`)
#   zkcli_oneshot VER cmd args...     one non-interactive zkCli run; output in OUT, exit code in RC
#   session_open NAME VER             interactive zkCli fed through a FIFO (one ZooKeeper session)
#   session_run NAME "command"        send one command line, wait until it is answered; output in SEG
#   wait_event / event_count / event_zxid   look at the WatchedEvent lines a session printed
#   session_close NAME                `quit`, then wait for the JVM to exit
#   check_* LABEL ...                 one pass/fail line each; counters PASSED / FAILED
#
# Needs PORT, WORK (scratch directory) and lib/common.sh already sourced.

ONESHOT_TIMEOUT=${ONESHOT_TIMEOUT:-20}   # seconds for a whole one-shot zkCli JVM
SESSION_TIMEOUT=${SESSION_TIMEOUT:-150}  # seconds a FIFO-driven zkCli JVM may live
CMD_WAIT=${CMD_WAIT:-10}                 # seconds to wait for one interactive command's answer
EVENT_WAIT=${EVENT_WAIT:-10}             # seconds to wait for a watch event

DEBIAN_ZK_JAR=/usr/share/java/zookeeper.jar
DEBIAN_ZK_ENV=/usr/share/zookeeper/bin/zkEnv.sh

PASSED=0
FAILED=0
CHECK_PREFIX=""

# ---------------------------------------------------------------------------------------------
# Installation (idempotent; root + apt on a fresh Debian 12)

debian_pkg_installed() {
  local status
  status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
  [ "$status" = "install ok installed" ]
}

# apt_install PKG... : apt-get update once, then install, never starting any service.
apt_install() {
  [ "$(id -u)" = 0 ] || { log "need root to apt-get install $*"; return 1; }
  local guard=/usr/sbin/policy-rc.d made_guard=0
  if [ ! -e "$guard" ]; then
    # Debian's way to forbid maintainer scripts from starting daemons during installation.
    printf '#!/bin/sh\nexit 101\n' > "$guard"; chmod 755 "$guard"; made_guard=1
  fi
  local rc=0 aptlog="$WORK/apt.log"
  log "apt-get update && apt-get install -y $*"
  {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@"
  } > "$aptlog" 2>&1 || rc=$?
  if [ "$made_guard" = 1 ]; then rm -f "$guard"; fi
  if [ "$rc" != 0 ]; then log "apt-get failed ($rc):"; tail -30 "$aptlog" >&2; fi
  return "$rc"
}

# Debian packages zkCli 3.8 as `zookeeper` (jars in /usr/share/java, scripts in
# /usr/share/zookeeper/bin); the server daemon/service is the separate `zookeeperd` package.
ensure_clients() {
  local pkgs=()
  debian_pkg_installed zookeeper && [ -f "$DEBIAN_ZK_JAR" ] || pkgs+=(zookeeper)
  command -v java >/dev/null 2>&1 || pkgs+=(default-jre-headless)
  command -v mvn >/dev/null 2>&1 || [ -f "$JAVA_ZK_LIB/.complete" ] || pkgs+=(maven)
  if [ "${#pkgs[@]}" -gt 0 ]; then apt_install "${pkgs[@]}" || return 1; fi
  fetch_java_zk || return 1
  ZKCLI38_CP=$(debian_zkcli_classpath)
}

# The classpath Debian's zkCli.sh uses (zkEnv.sh sets CLASSPATH; zookeeper.jar's manifest
# Class-Path pulls in jute, netty, commons-cli, slf4j from /usr/share/java).
debian_zkcli_classpath() {
  local cp=""
  if [ -r "$DEBIAN_ZK_ENV" ]; then
    cp=$( (CLASSPATH=""; . "$DEBIAN_ZK_ENV" >/dev/null 2>&1; printf '%s' "$CLASSPATH") || true)
  fi
  case ":$cp:" in *":$DEBIAN_ZK_JAR:"*) ;; *) cp="${cp:+$cp:}$DEBIAN_ZK_JAR" ;; esac
  printf '%s' "$cp"
}

# A Debian ZooKeeper server would be QuorumPeerMain with /etc/zookeeper config (zookeeperd).
debian_zk_server_pids() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    if tr '\0' ' ' < "$f" 2>/dev/null | grep -E 'QuorumPeerMain.*/etc/zookeeper' >/dev/null; then
      printf '%s\n' "$pid"
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# Running zkCli

# zkcli_argv VER : sets ZKCLI_ARGV to the java command line of zkCli VER (39 or 38), sans -server.
zkcli_argv() {
  case "$1" in
    39) ZKCLI_ARGV=(java -Dlogback.configurationFile="$COMPAT_DIR/java-zk/logback.xml"
                    -cp "$(java_zk_cp)" org.apache.zookeeper.ZooKeeperMain) ;;
    38) ZKCLI_ARGV=(java -cp "$ZKCLI38_CP" org.apache.zookeeper.ZooKeeperMain) ;;
    *) log "unknown zkCli version $1"; return 1 ;;
  esac
}

# Debian's 3.8 jar has no slf4j binding: drop the four-line SLF4J banner.
strip_noise() { grep -v -e '^SLF4J:' || true; }

# zkcli_oneshot VER cmd args... : `zkCli.sh -server 127.0.0.1:PORT cmd args` in its own JVM.
zkcli_oneshot() {
  local ver=$1; shift
  zkcli_argv "$ver" || return 1
  RC=0
  OUT=$(timeout "$ONESHOT_TIMEOUT" "${ZKCLI_ARGV[@]}" -server "127.0.0.1:$PORT" "$@" 2>&1) || RC=$?
  OUT=$(strip_noise <<<"$OUT")
}

declare -A SESS_PID=() SESS_FD=() SESS_OUT=() SESS_BROKEN=()
MARK_SEQ=0

# session_open NAME VER : start an interactive zkCli whose stdin is a FIFO we keep open.
session_open() {
  local name=$1 ver=$2 fifo="$WORK/$1.in" out="$WORK/$1.out" fd f
  zkcli_argv "$ver" || return 1
  rm -f "$fifo"; mkfifo "$fifo"; : > "$out"
  (
    # Do not inherit the write ends of other sessions' FIFOs (they would never see EOF).
    for f in "${SESS_FD[@]}"; do eval "exec $f>&-"; done
    exec timeout "$SESSION_TIMEOUT" "${ZKCLI_ARGV[@]}" -server "127.0.0.1:$PORT" < "$fifo" > "$out" 2>&1
  ) &
  SESS_PID[$name]=$!
  exec {fd}>"$fifo"
  SESS_FD[$name]=$fd
  SESS_OUT[$name]=$out
  SESS_BROKEN[$name]=0
  if ! wait_text "$out" 0 "WatchedEvent state:SyncConnected type:None path:null" 20 "${SESS_PID[$name]}"; then
    SESS_BROKEN[$name]=1
    return 1
  fi
}

session_send() { # NAME LINE...
  local name=$1 fd=${SESS_FD[$1]}; shift
  kill -0 "${SESS_PID[$name]}" 2>/dev/null || return 1
  ( trap '' PIPE; printf '%s\n' "$@" >&"$fd" ) 2>/dev/null
}

# wait_text FILE OFFSET TEXT SECS [PID] : until TEXT appears in FILE after byte OFFSET.
wait_text() {
  local file=$1 offset=$2 text=$3 secs=$4 pid=${5:-} i
  for ((i = 0; i < secs * 20; i++)); do
    if tail -c "+$((offset + 1))" "$file" | grep -F -- "$text" >/dev/null; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -c "+$((offset + 1))" "$file" | grep -F -- "$text" >/dev/null
      return
    fi
    sleep 0.05
  done
  return 1
}

# session_run NAME COMMAND [SECS] : run one command in the session; its output (stdout+stderr,
# possibly with asynchronous WATCHER lines mixed in) lands in SEG. The end of the answer is found
# by following the command with `get` of a path that does not exist and waiting for its error.
session_run() {
  local name=$1 cmd=$2 secs=${3:-$CMD_WAIT} out=${SESS_OUT[$1]} start mark
  SEG=""
  if [ "${SESS_BROKEN[$name]}" = 1 ]; then SEG="(session $name is broken)"; return 1; fi
  MARK_SEQ=$((MARK_SEQ + 1))
  mark="/zkcli-marker-$$-$MARK_SEQ"
  start=$(stat -c %s "$out")
  if session_send "$name" "$cmd" "get $mark" &&
     wait_text "$out" "$start" "Node does not exist: $mark" "$secs" "${SESS_PID[$name]}"; then
    SEG=$(tail -c "+$((start + 1))" "$out" | sed "\\#Node does not exist: $mark#,\$d")
    return 0
  fi
  SESS_BROKEN[$name]=1
  SEG="(no answer to '$cmd' within ${secs}s) $(tail -c "+$((start + 1))" "$out")"
  return 1
}

session_close() {
  local name=$1 pid=${SESS_PID[$1]:-}
  [ -n "$pid" ] || return 0
  session_send "$name" "quit" || true
  eval "exec ${SESS_FD[$name]}>&-"
  wait "$pid" 2>/dev/null || true
  unset "SESS_PID[$name]" "SESS_FD[$name]"
}

session_kill_all() {
  local name
  for name in "${!SESS_PID[@]}"; do
    kill "${SESS_PID[$name]}" 2>/dev/null || true
    eval "exec ${SESS_FD[$name]}>&-" 2>/dev/null || true
    wait "${SESS_PID[$name]}" 2>/dev/null || true
    unset "SESS_PID[$name]" "SESS_FD[$name]"
  done
}

# ---------------------------------------------------------------------------------------------
# Watch events as printed by zkCli's default watcher:
#   3.8: WatchedEvent state:SyncConnected type:NodeDataChanged path:/p
#   3.9: WatchedEvent state:SyncConnected type:NodeDataChanged path:/p zxid: 123

event_regex() { # TYPE PATH
  printf 'WatchedEvent state:SyncConnected type:%s path:%s( zxid: -?[0-9]+)?$' "$1" "$2"
}

event_count() { # NAME TYPE PATH
  grep -cE -- "$(event_regex "$2" "$3")" "${SESS_OUT[$1]}" || true
}

# wait_event NAME TYPE PATH [COUNT] [SECS] : until at least COUNT such events were printed.
wait_event() {
  local name=$1 type=$2 path=$3 want=${4:-1} secs=${5:-$EVENT_WAIT} i
  for ((i = 0; i < secs * 20; i++)); do
    [ "$(event_count "$name" "$type" "$path")" -ge "$want" ] && return 0
    sleep 0.05
  done
  return 1
}

event_zxid() { # NAME TYPE PATH : decimal zxid of the first such event (3.9 clients print it)
  { grep -E -- "$(event_regex "$2" "$3")" "${SESS_OUT[$1]}" || true; } |
    sed -n 's/.* zxid: \(-\{0,1\}[0-9]*\)$/\1/p' | sed -n 1p
}

# ---------------------------------------------------------------------------------------------
# Output parsing

stat_field() { # TEXT FIELD : value of "FIELD = value" in zkCli stat output
  sed -n "s/^$2 = //p" <<<"$1" | sed -n 1p
}

hex_to_dec() { # 0x1f -> 31; anything that is not hex -> empty
  local h=${1#0x}
  if [[ $h =~ ^[0-9a-fA-F]+$ ]]; then printf '%d' "$((16#$h))"; fi
  return 0
}

# zk_digest USER:PASSWORD : base64(sha1(USER:PASSWORD)), the digest ACL id scheme.
zk_digest() {
  local hex
  hex=$(printf '%s' "$1" | sha1sum | cut -c1-40)
  # shellcheck disable=SC2059
  printf "$(sed 's/../\\x&/g' <<<"$hex")" | base64
}

# ---------------------------------------------------------------------------------------------
# Checks

pass() { PASSED=$((PASSED + 1)); printf 'ok   %s%s\n' "$CHECK_PREFIX" "$1"; }

fail() { # LABEL [DETAIL TEXT]
  FAILED=$((FAILED + 1))
  printf 'FAIL %s%s\n' "$CHECK_PREFIX" "$1"
  if [ -n "${2:-}" ]; then
    sed -n '1,25s/^/       | /p' <<<"$2"
  fi
}

check_true() { # LABEL DETAIL command...
  local label=$1 detail=$2; shift 2
  if "$@"; then pass "$label"; else fail "$label" "$detail"; fi
}

check_line() { # LABEL TEXT LINE : TEXT has a line exactly equal to LINE
  if grep -qxF -- "$3" <<<"$2"; then pass "$1"; else fail "$1" "expected line: $3
--- got:
$2"; fi
}

check_contains() { # LABEL TEXT SUBSTRING
  if grep -qF -- "$3" <<<"$2"; then pass "$1"; else fail "$1" "expected to contain: $3
--- got:
$2"; fi
}

check_not_contains() { # LABEL TEXT SUBSTRING
  if ! grep -qF -- "$3" <<<"$2"; then pass "$1"; else fail "$1" "expected NOT to contain: $3
--- got:
$2"; fi
}

check_regex() { # LABEL TEXT ERE : some line of TEXT matches ERE
  if grep -qE -- "$3" <<<"$2"; then pass "$1"; else fail "$1" "expected a line matching: $3
--- got:
$2"; fi
}

check_eq() { # LABEL GOT WANT
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected: '$3'
got:      '$2'"; fi
}

check_event() { # NAME LABEL TYPE PATH [COUNT]
  if wait_event "$1" "$3" "$4" "${5:-1}"; then pass "$2"; else
    fail "$2" "expected ${5:-1}x $(event_regex "$3" "$4") in session $1; its events:
$(grep -F 'WatchedEvent' "${SESS_OUT[$1]}" | tail -20)"
  fi
}

check_event_count() { # NAME LABEL TYPE PATH COUNT : exactly COUNT such events so far
  local n
  n=$(event_count "$1" "$3" "$4")
  if [ "$n" = "$5" ]; then pass "$2"; else
    fail "$2" "expected exactly $5x $(event_regex "$3" "$4"), saw $n; events:
$(grep -F 'WatchedEvent' "${SESS_OUT[$1]}" | tail -20)"
  fi
}

# SEG without the asynchronous watcher lines zkCli prints ("WATCHER::", blank, "WatchedEvent ...").
seg_without_events() {
  grep -v -e '^WATCHER::$' -e '^WatchedEvent ' -e '^$' <<<"$SEG" || true
}

# step NAME COMMAND : run COMMAND in session NAME; passes when the answer holds nothing but
# "Created <path>" lines (zkCli prints nothing else for a successful create/set/delete/...).
step() {
  local label="$1> $2" rest
  if ! session_run "$1" "$2"; then fail "$label" "$SEG"; return 0; fi
  rest=$(seg_without_events | grep -v -e '^Created /' || true)
  if [ -z "$rest" ]; then pass "$label"; else fail "$label" "unexpected output:
$SEG"; fi
}

# ask NAME COMMAND : run COMMAND in session NAME for the checks that follow (they look at SEG).
ask() {
  session_run "$1" "$2" || true
}

# list_items TEXT : "[a, b, c]" (zkCli's rendering of a Java list) -> one item a line
list_items() {
  sed -n 's/^\[\(.*\)\]$/\1/p' <<<"$1" | sed -n 1p | sed 's/, /\n/g' | sed '/^$/d'
}
