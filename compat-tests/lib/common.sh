#!/usr/bin/env bash
# Shared helpers for the stock-client compatibility suites.
#
#   source compat-tests/lib/common.sh
#   fetch_java_zk                       # Java ZooKeeper 3.9 jars from Maven Central (cached)
#   start_java_zk PORT DIR              # standalone Java 3.9 on 127.0.0.1:PORT, data in DIR; sets JAVA_ZK_PID
#   start_ferrokeeper PORT DIR          # ferrokeeper (cargo build --release) on 127.0.0.1:PORT; sets FK_PID
#   zkcli PORT cmd args...              # Java 3.9 zkCli.sh (ZooKeeperMain) against 127.0.0.1:PORT
#   wait_port PORT [SECONDS]            # until the server on PORT answers `srvr` with a Mode line (serving)
#   stop_pid PID
# Everything binds to 127.0.0.1 only.

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$COMPAT_DIR/.." && pwd)"
CACHE_DIR="$COMPAT_DIR/.cache"
JAVA_ZK_VERSION=3.9.5
JAVA_ZK_LIB="$CACHE_DIR/zk-$JAVA_ZK_VERSION/lib"

log() { printf '[compat %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

fetch_java_zk() {
  if [ -f "$JAVA_ZK_LIB/.complete" ]; then return 0; fi
  mkdir -p "$JAVA_ZK_LIB"
  log "fetching Java ZooKeeper $JAVA_ZK_VERSION from Maven"
  mvn -q -B -f "$COMPAT_DIR/java-zk/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$JAVA_ZK_LIB" -DincludeScope=runtime >&2 || return 1
  touch "$JAVA_ZK_LIB/.complete"
}

# write_cfg PORT DIR [extra lines...]: the zoo.cfg both servers get in the tests.
write_cfg() {
  local port=$1 dir=$2; shift 2
  mkdir -p "$dir/data"
  {
    echo "tickTime=2000"
    echo "dataDir=$dir/data"
    echo "clientPort=$port"
    echo "clientPortAddress=127.0.0.1"
    echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=*"
    echo "maxClientCnxns=0"
    for l in "$@"; do echo "$l"; done
  } > "$dir/zoo.cfg"
}

java_zk_cp() { printf '%s/*:%s' "$JAVA_ZK_LIB" "$COMPAT_DIR/java-zk"; }

# start_java_zk PORT DIR [extra zoo.cfg lines...]
start_java_zk() {
  local port=$1 dir=$2; shift 2
  fetch_java_zk || return 1
  write_cfg "$port" "$dir" "$@"
  java ${JAVA_ZK_JVMFLAGS:-} -Dlogback.configurationFile="$COMPAT_DIR/java-zk/logback.xml" \
      -Dzookeeper.extendedTypesEnabled=true -Dznode.container.checkIntervalMs=1000 \
      -cp "$(java_zk_cp)" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
      > "$dir/server.log" 2>&1 &
  JAVA_ZK_PID=$!
  wait_port "$port" 60 || { log "Java ZooKeeper did not start; log:"; tail -50 "$dir/server.log" >&2; return 1; }
}

ferrokeeper_bin() { printf '%s' "${FERROKEEPER_BIN:-$REPO_DIR/target/release/ferrokeeper}"; }

# start_ferrokeeper PORT DIR [extra zoo.cfg lines...]
start_ferrokeeper() {
  local port=$1 dir=$2; shift 2
  write_cfg "$port" "$dir" "$@"
  if [ ! -x "$(ferrokeeper_bin)" ]; then
    (cd "$REPO_DIR" && cargo build --release --quiet) || return 1
  fi
  RUST_LOG=${RUST_LOG:-info} "$(ferrokeeper_bin)" --config "$dir/zoo.cfg" \
      -D zookeeper.extendedTypesEnabled=true -D znode.container.checkIntervalMs=1000 \
      > "$dir/server.log" 2>&1 &
  FK_PID=$!
  wait_port "$port" 30 || { log "ferrokeeper did not start; log:"; tail -50 "$dir/server.log" >&2; return 1; }
}

# zkcli PORT args... : one zkCli.sh command (Java 3.9 client), output on stdout.
zkcli() {
  local port=$1; shift
  java -Dlogback.configurationFile="$COMPAT_DIR/java-zk/logback.xml" \
      -cp "$(java_zk_cp)" org.apache.zookeeper.ZooKeeperMain -server "127.0.0.1:$port" "$@"
}

four_letter() { # four_letter PORT WORD
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf '%s' "$2" >&3
  timeout 5 cat <&3
  exec 3<&- 3>&-
}

wait_port() {
  local port=$1 secs=${2:-30} i
  for ((i = 0; i < secs * 10; i++)); do
    if (four_letter "$port" srvr) 2>/dev/null | grep -q '^Mode:'; then return 0; fi
    sleep 0.1
  done
  return 1
}

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
