#!/usr/bin/env bash
# Helpers for real-process ZooKeeper ensembles on 127.0.0.1, any mix of Java ZooKeeper 3.9 and
# ferrokeeper members. Sourced by compat-tests/ensemble/run.sh (source it from bash only).
#
#   source compat-tests/ensemble/lib.sh
#   ENS_WORK=/tmp/dir                    # where member directories go (must exist)
#   ens_init NAME BASE "java fk java" [OBSERVER_IDS]
#                                        # N members (N = number of kinds); writes s<i>/zoo.cfg and
#                                        # s<i>/data/myid under $ENS_WORK/NAME; ports from BASE:
#                                        #   client BASE+i, quorum BASE+20+i, election BASE+40+i
#   ens_start I [KIND]                   # start member I (as its kind, or KIND: java|fk)
#   ens_start_all
#   ens_stop I                           # SIGTERM (SIGKILL after 5 s)
#   ens_kill I                           # SIGKILL (kill -9) and reap
#   ens_stop_all                         # every member still running (TERM, then KILL at 5 s)
#   mode_of PORT                         # leader|follower|observer|standalone, or "" (not serving)
#   ens_mode I                           # mode_of member I's client port
#   wait_ensemble [SECS]                 # until the running members are exactly one leader and
#                                        # followers/observers (observer ids as observers)
#   leader_index                         # the member that is leader (exactly one), else fails
#   ens_wait_mode I MODE [SECS]          # until member I reports MODE
#   ens_wait_serving I [SECS]            # until member I is leader, follower or observer
#   wait_new_leader OLD [SECS]           # polls the other running members every 50 ms until one
#                                        # leads; prints its index
#   ens_hosts [I...]                     # "127.0.0.1:C1,127.0.0.1:C2,..." (all members by default)
#   ens_show_logs [LINES]                # tails of every member's server.log
#   ens_py_setup                         # once: the Kazoo virtualenv of compat-tests/kazoo
#   ens_py ARGS...                       # check.py (see its --help) in that virtualenv
#   ens_curator_setup                    # once: the Curator load client (curator-load/, Maven)
#   ens_curator_load ARGS...             # java ferrokeeper.CuratorLoad ARGS (see its javadoc)
#
# Kinds: "java" = org.apache.zookeeper.server.quorum.QuorumPeerMain (Maven 3.9.5 jars, same
# classpath and -D flags as start_java_zk in lib/common.sh, heap $ENS_JAVA_HEAP, default 256m;
# logging INFO through ensemble/logback.xml, without Java's line per four-letter word);
# "fk" = $(ferrokeeper_bin) --config zoo.cfg (built with cargo build --release if missing).
# FK_AS_JAVA=1 starts Java wherever ferrokeeper was asked for (dry-runs the scripting).
# Environment: ENS_TICK (tickTime, default 500), ENS_EXTRA_CFG (extra zoo.cfg lines, one per
# line, for every member), ENS_LOG_LEVEL (Java log level, default INFO), RUST_LOG (ferrokeeper).
# Every pid started is appended to $ENS_WORK/pids so an outer cleanup can find it.

ENS_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/common.sh
source "$ENS_LIB_DIR/../lib/common.sh"

ENS_NAME=""
ENS_DIR=""
ENS_N=0
ENS_BASE=0
ENS_KIND=()     # [i] configured kind (java|fk), 1-based
ENS_RUNKIND=()  # [i] what actually runs (java|fk), set by ens_start
ENS_OBS=()      # [i] 1 when member i is an observer
ENS_PID=()      # [i] pid of the running member, "" when stopped

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------------------------
# Configuration

ens_client_port() { echo $((ENS_BASE + $1)); }
ens_quorum_port() { echo $((ENS_BASE + 20 + $1)); }
ens_election_port() { echo $((ENS_BASE + 40 + $1)); }
ens_member_dir() { echo "$ENS_DIR/s$1"; }

ens_hosts() {
  local i out="" ids=("$@")
  if [ ${#ids[@]} -eq 0 ]; then ids=($(seq 1 "$ENS_N")); fi
  for i in "${ids[@]}"; do out="${out:+$out,}127.0.0.1:$(ens_client_port "$i")"; done
  printf '%s' "$out"
}

# port_in_use PORT : something accepts connections on 127.0.0.1:PORT
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ens_init NAME BASE "KIND KIND ..." [OBSERVER_IDS]
ens_init() {
  local name=$1 base=$2 kinds=$3 obs=${4:-} i j k p line dir
  ENS_NAME=$name
  ENS_DIR="$ENS_WORK/$name"
  ENS_BASE=$base
  ENS_KIND=("")
  ENS_RUNKIND=("")
  ENS_OBS=("")
  ENS_PID=("")
  for k in $kinds; do
    case "$k" in java|fk) ;; *) log "ens_init: unknown kind '$k' (java|fk)"; return 1 ;; esac
    ENS_KIND+=("$k"); ENS_RUNKIND+=(""); ENS_OBS+=(0); ENS_PID+=("")
  done
  ENS_N=$(( ${#ENS_KIND[@]} - 1 ))
  if [ "$ENS_N" -lt 1 ] || [ "$ENS_N" -gt 19 ]; then log "ens_init: 1..19 members, got $ENS_N"; return 1; fi
  for j in $obs; do ENS_OBS[j]=1; done
  if [ "$base" -lt 24000 ] || [ $((base + 40 + ENS_N)) -gt 24999 ]; then
    log "ens_init: ports must stay in 24000-24999 (base $base)"; return 1
  fi
  for i in $(seq 1 "$ENS_N"); do
    for p in "$(ens_client_port "$i")" "$(ens_quorum_port "$i")" "$(ens_election_port "$i")"; do
      if port_in_use "$p"; then log "ens_init: 127.0.0.1:$p is already in use"; return 1; fi
    done
  done
  for i in $(seq 1 "$ENS_N"); do
    dir=$(ens_member_dir "$i")
    mkdir -p "$dir/data"
    echo "$i" > "$dir/data/myid"
    {
      echo "tickTime=${ENS_TICK:-500}"
      echo "initLimit=10"
      echo "syncLimit=5"
      echo "dataDir=$dir/data"
      echo "4lw.commands.whitelist=*"
      echo "admin.enableServer=false"
      echo "maxClientCnxns=0"
      if [ "${ENS_OBS[i]}" = 1 ]; then echo "peerType=observer"; fi
      for j in $(seq 1 "$ENS_N"); do
        line="server.$j=127.0.0.1:$(ens_quorum_port "$j"):$(ens_election_port "$j")"
        if [ "${ENS_OBS[j]}" = 1 ]; then line="$line:observer"; fi
        echo "$line;127.0.0.1:$(ens_client_port "$j")"
      done
      if [ -n "${ENS_EXTRA_CFG:-}" ]; then printf '%s\n' "$ENS_EXTRA_CFG"; fi
    } > "$dir/zoo.cfg"
  done
}

ens_describe() { # one line: "1=java(leader) 2=fk ..." with ports
  local i out=""
  for i in $(seq 1 "$ENS_N"); do
    out="$out $i=${ENS_KIND[i]}$([ "${ENS_OBS[i]}" = 1 ] && echo '/observer')@$(ens_client_port "$i")"
  done
  printf '%s' "${out# }"
}

# ---------------------------------------------------------------------------------------------
# Processes

ens_fk_ready() {
  [ -x "$(ferrokeeper_bin)" ] && return 0
  log "building ferrokeeper (cargo build --release)"
  (cd "$REPO_DIR" && timeout 1200 cargo build --release --quiet) >&2
}

ens_record_pid() { echo "$1" >> "$ENS_WORK/pids"; }

# ens_start I [KIND] : background start; does not wait (a lone member cannot serve).
ens_start() {
  local i=$1 kind=${2:-${ENS_KIND[$1]}} dir cfg run
  dir=$(ens_member_dir "$i")
  cfg="$dir/zoo.cfg"
  if [ -n "${ENS_PID[i]}" ] && kill -0 "${ENS_PID[i]}" 2>/dev/null; then
    log "ens_start: member $i already runs (pid ${ENS_PID[i]})"; return 1
  fi
  run=$kind
  if [ "$kind" = fk ] && [ "${FK_AS_JAVA:-0}" = 1 ]; then run=java; fi
  echo ">>> $(date '+%H:%M:%S.%3N') starting member $i as $kind$([ "$run" != "$kind" ] && echo " (FK_AS_JAVA: java)")" >> "$dir/server.log"
  case "$run" in
    java)
      fetch_java_zk || return 1
      # Same flags and classpath as start_java_zk (lib/common.sh), quorum main class.
      java -Xmx"${ENS_JAVA_HEAP:-256m}" ${JAVA_ZK_JVMFLAGS:-} \
          -Dzk.log.level="${ENS_LOG_LEVEL:-INFO}" \
          -Dlogback.configurationFile="$ENS_LIB_DIR/logback.xml" \
          -Dzookeeper.extendedTypesEnabled=true -Dznode.container.checkIntervalMs=1000 \
          -cp "$(java_zk_cp)" org.apache.zookeeper.server.quorum.QuorumPeerMain "$cfg" \
          >> "$dir/server.log" 2>&1 &
      ;;
    fk)
      ens_fk_ready || return 1
      RUST_LOG=${RUST_LOG:-info} "$(ferrokeeper_bin)" --config "$cfg" \
          -D zookeeper.extendedTypesEnabled=true -D znode.container.checkIntervalMs=1000 \
          >> "$dir/server.log" 2>&1 &
      ;;
    *) log "ens_start: unknown kind $run"; return 1 ;;
  esac
  ENS_PID[i]=$!
  disown "${ENS_PID[i]}"  # no "Killed" job notices; ens_running polls the pid
  ENS_RUNKIND[i]=$run
  ens_record_pid "${ENS_PID[i]}"
}

ens_start_all() {
  local i
  for i in $(seq 1 "$ENS_N"); do ens_start "$i" || return 1; done
}

ens_running() { [ -n "${ENS_PID[$1]}" ] && kill -0 "${ENS_PID[$1]}" 2>/dev/null; }

ens_running_ids() {
  local i
  for i in $(seq 1 "$ENS_N"); do if ens_running "$i"; then printf '%s ' "$i"; fi; done
}

ens_stop() {
  local i=$1
  [ -n "${ENS_PID[i]}" ] || return 0
  echo ">>> $(date '+%H:%M:%S.%3N') SIGTERM to member $i" >> "$(ens_member_dir "$i")/server.log"
  stop_pid "${ENS_PID[i]}"
  wait "${ENS_PID[i]}" 2>/dev/null
  ENS_PID[i]=""
}

ens_kill() {
  local i=$1 pid=${ENS_PID[$1]} n
  [ -n "$pid" ] || return 0
  kill -9 "$pid" 2>/dev/null
  for ((n = 0; n < 100; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  wait "$pid" 2>/dev/null
  echo ">>> $(date '+%H:%M:%S.%3N') killed member $i with SIGKILL" >> "$(ens_member_dir "$i")/server.log"
  ENS_PID[i]=""
}

ens_stop_all() {
  local i n pids=()
  for i in $(seq 1 "$ENS_N"); do
    if ens_running "$i"; then kill "${ENS_PID[i]}" 2>/dev/null; pids+=("${ENS_PID[i]}"); fi
  done
  for ((n = 0; n < 50; n++)); do
    local alive=0 p
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for i in $(seq 1 "$ENS_N"); do ENS_PID[i]=""; done
}

# ---------------------------------------------------------------------------------------------
# State (via the `srvr` four-letter word, like wait_port in lib/common.sh)

mode_of() {
  (four_letter "$1" srvr) 2>/dev/null | tr -d '\r' | sed -n 's/^Mode: *//p' | sed -n 1p
}

ens_mode() { mode_of "$(ens_client_port "$1")"; }

ens_modes() { # "1=leader 2=follower 3=- ..." for every member (- = not serving, x = not running)
  local i m out=""
  for i in $(seq 1 "$ENS_N"); do
    if ens_running "$i"; then m=$(ens_mode "$i"); else m=x; fi
    out="$out $i=${m:--}"
  done
  printf '%s' "${out# }"
}

# ens_settled : the running members are exactly one leader plus followers (voters) and
# observers (observer ids), and the running voters are a majority of all voters.
ens_settled() {
  local i m leaders=0 voters=0 running_voters=0
  for i in $(seq 1 "$ENS_N"); do
    if [ "${ENS_OBS[i]}" != 1 ]; then voters=$((voters + 1)); fi
    ens_running "$i" || continue
    m=$(ens_mode "$i")
    if [ "${ENS_OBS[i]}" = 1 ]; then
      [ "$m" = observer ] || return 1
    else
      running_voters=$((running_voters + 1))
      case "$m" in
        leader) leaders=$((leaders + 1)) ;;
        follower) ;;
        *) return 1 ;;
      esac
    fi
  done
  [ "$leaders" = 1 ] && [ $((running_voters * 2)) -gt "$voters" ]
}

wait_ensemble() {
  local secs=${1:-60} deadline n
  deadline=$(( $(now_ms) + secs * 1000 ))
  for ((n = 0; n < secs * 20; n++)); do
    if ens_settled; then return 0; fi
    [ "$(now_ms)" -lt "$deadline" ] || break
    sleep 0.05
  done
  log "wait_ensemble: not settled after ${secs}s: $(ens_modes)"
  return 1
}

leader_index() {
  local i found=""
  for i in $(seq 1 "$ENS_N"); do
    ens_running "$i" || continue
    if [ "$(ens_mode "$i")" = leader ]; then
      [ -z "$found" ] || return 1
      found=$i
    fi
  done
  [ -n "$found" ] && echo "$found"
}

ens_wait_mode() {
  local i=$1 want=$2 secs=${3:-60} deadline n
  deadline=$(( $(now_ms) + secs * 1000 ))
  for ((n = 0; n < secs * 20; n++)); do
    [ "$(ens_mode "$i")" = "$want" ] && return 0
    ens_running "$i" || { log "ens_wait_mode: member $i is not running"; return 1; }
    [ "$(now_ms)" -lt "$deadline" ] || break
    sleep 0.05
  done
  return 1
}

ens_wait_serving() { # I [SECS] : until member I is leader, follower or observer
  local i=$1 secs=${2:-60} deadline n
  deadline=$(( $(now_ms) + secs * 1000 ))
  for ((n = 0; n < secs * 20; n++)); do
    case "$(ens_mode "$i")" in leader|follower|observer) return 0 ;; esac
    ens_running "$i" || { log "ens_wait_serving: member $i is not running"; return 1; }
    [ "$(now_ms)" -lt "$deadline" ] || break
    sleep 0.05
  done
  return 1
}

wait_new_leader() {
  local old=$1 secs=${2:-30} deadline n i
  deadline=$(( $(now_ms) + secs * 1000 ))
  for ((n = 0; n < secs * 20; n++)); do
    for i in $(seq 1 "$ENS_N"); do
      [ "$i" = "$old" ] && continue
      ens_running "$i" || continue
      if [ "$(ens_mode "$i")" = leader ]; then echo "$i"; return 0; fi
    done
    [ "$(now_ms)" -lt "$deadline" ] || break
    sleep 0.05
  done
  return 1
}

ens_show_logs() {
  local lines=${1:-40} i f
  for i in $(seq 1 "$ENS_N"); do
    f="$(ens_member_dir "$i")/server.log"
    [ -f "$f" ] || continue
    printf -- '--- last %s lines of member %s (%s) %s\n' "$lines" "$i" "${ENS_KIND[i]}" "$f"
    tail -n "$lines" "$f" | sed 's/\x1b\[[0-9;]*m//g; s/^/  /'
  done
}

# ---------------------------------------------------------------------------------------------
# Kazoo: the virtualenv compat-tests/kazoo/run.sh builds (compat-tests/.cache/kazoo-venv, pinned
# by compat-tests/kazoo/requirements.txt). Its own setup code makes it: `run.sh PORT --version`
# only runs `pytest --version` after the setup.

ENS_PY=()
ens_py_setup() {
  [ ${#ENS_PY[@]} -gt 0 ] && return 0
  local venv="$CACHE_DIR/kazoo-venv"
  timeout 600 bash "$COMPAT_DIR/kazoo/run.sh" 0 --version >/dev/null 2>"$ENS_WORK/kazoo-setup.log" || {
    log "Kazoo virtualenv setup failed:"; tail -20 "$ENS_WORK/kazoo-setup.log" >&2; return 1; }
  if [ -x "$venv/bin/python" ]; then
    ENS_PY=("$venv/bin/python")
  else
    ENS_PY=(env "PYTHONPATH=$venv/site${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}")
  fi
}

ens_py() { "${ENS_PY[@]}" "$ENS_LIB_DIR/check.py" "$@"; }

# ---------------------------------------------------------------------------------------------
# Curator load client: the Maven project curator-load/ (Curator 5.9 + the ZooKeeper 3.9.5 Java
# client from Maven Central), compiled into compat-tests/.cache/curator-load/target/classes with
# its runtime jars copied to compat-tests/.cache/curator-load/lib. Rebuilt when the sha256 of its
# pom and sources changes (stamp file .complete holds it).

ENS_CURATOR_DIR="$CACHE_DIR/curator-load"

ens_curator_stamp() {
  (cd "$ENS_LIB_DIR/curator-load" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum) \
    | sha256sum | cut -d' ' -f1
}

ens_curator_setup() {
  local stamp
  stamp=$(ens_curator_stamp)
  if [ "$(cat "$ENS_CURATOR_DIR/.complete" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  command -v mvn >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven; } >&2
  log "building the Curator load client (compat-tests/ensemble/curator-load, Maven)"
  rm -rf "$ENS_CURATOR_DIR"
  mkdir -p "$ENS_CURATOR_DIR"
  mvn -q -B -ntp -Dstyle.color=never -f "$ENS_LIB_DIR/curator-load/pom.xml" -Dfk.out="$ENS_CURATOR_DIR/target" \
      compile dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$ENS_CURATOR_DIR/lib" >&2 || return 1
  echo "$stamp" > "$ENS_CURATOR_DIR/.complete"
}

ens_curator_cp() { printf '%s:%s/*' "$ENS_CURATOR_DIR/target/classes" "$ENS_CURATOR_DIR/lib"; }

ens_curator_load() { # (run.sh starts java itself, to own its pid)
  java -Xmx"${ENS_CURATOR_HEAP:-256m}" -XX:+UseSerialGC -cp "$(ens_curator_cp)" ferrokeeper.CuratorLoad "$@"
}
