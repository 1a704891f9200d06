# Shared by bench/run.sh and bench/cpu_split.sh, sourced after compat-tests/lib/common.sh.
# start_server and measured use $work (made by prepare_bench), $JAVA_HEAP, $PORT_JAVA, $PORT_FK.

# start_server java|fk DIR: a fresh server on an empty DIR, pinned to CPU 0; sets PID and PORT.
# The server is started on CPU 0 (this shell is pinned while it forks it), as `taskset -c 0`
# would start it, so it sizes itself for the one core it has: the JVM's ergonomics (GC and
# its threads) and ZooKeeper's NIO threads for Java, the runtime's worker threads for
# ferrokeeper. Pinning a running server instead leaves threads sized for two cores
# time-slicing on one, which put 5 ms of scheduler wait into ferrokeeper's p99 at 128 sessions.
start_server() {
  local kind=$1 dir=$2
  rm -rf "$dir"; mkdir -p "$dir"
  local mask; mask=$(taskset -p "$BASHPID" | awk '{print $NF}')
  taskset -p -c 0 "$BASHPID" >/dev/null
  local ok=0
  if [ "$kind" = java ]; then
    JAVA_ZK_JVMFLAGS="-Xmx$JAVA_HEAP" start_java_zk "$PORT_JAVA" "$dir" >/dev/null || ok=$?
    PID=${JAVA_ZK_PID:-}; PORT=$PORT_JAVA
  else
    RUST_LOG=warn start_ferrokeeper "$PORT_FK" "$dir" >/dev/null || ok=$?
    PID=${FK_PID:-}; PORT=$PORT_FK
  fi
  taskset -p "$mask" "$BASHPID" >/dev/null
  [ "$ok" = 0 ] || return "$ok"
  taskset -a -p -c 0 "$PID" >/dev/null
}

# measured SERVER_PID COMMAND...: run a generator command (given `--ready-file $work/ready`
# by the caller) with its output in $work/line, and set USER_TICKS / SYS_TICKS to the server's
# user and kernel CPU ticks from the ready file (end of set-up and warm-up) to the exit: the
# measured seconds only.
measured() {
  local pid=$1; shift
  rm -f "$work/ready"
  "$@" > "$work/line" &
  # Command substitutions only: bash 5.2's `wait PID` was seen to hang for good after a
  # process substitution (`< <(...)`) ran in this loop.
  local gpid=$! t0="" t1
  while kill -0 "$gpid" 2>/dev/null; do
    if [ -z "$t0" ] && [ -e "$work/ready" ]; then t0=$(awk '{print $14, $15}' "/proc/$pid/stat"); fi
    sleep 0.01
  done
  wait "$gpid"
  t1=$(awk '{print $14, $15}' "/proc/$pid/stat")
  [ -n "$t0" ] || t0=$t1
  USER_TICKS=$(( ${t1% *} - ${t0% *} )); SYS_TICKS=$(( ${t1#* } - ${t0#* } ))
}

# generator_flags: LEAN, the generator's flag for the measured loop chosen by GENERATOR:
# `lean` (default; raw frames, one thread, one epoll: bench/src/lean.rs) keeps the generator's
# core below the server's; `zookeeper-client` is the crate's async client.
generator_flags() {
  case "${GENERATOR:-lean}" in
    lean) LEAN=(--lean) ;;
    zookeeper-client) LEAN=() ;;
    *) echo "GENERATOR must be lean or zookeeper-client" >&2; exit 2 ;;
  esac
}

# prepare_bench RAW_NAME: build the server and the generator ($gen), fetch Java ZooKeeper, make
# $work (removed on exit, with any server still running) and an empty $raw=$work/RAW_NAME.
prepare_bench() {
  cargo build --release --quiet
  cargo build --release --quiet -p ferrokeeper-bench
  fetch_java_zk
  gen=target/release/ferrokeeper-bench
  work=$(mktemp -d)
  trap 'stop_pid "${JAVA_ZK_PID:-}"; stop_pid "${FK_PID:-}"; rm -rf "$work"' EXIT
  raw="$work/$1"
  : > "$raw"
}
