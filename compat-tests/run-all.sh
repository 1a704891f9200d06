#!/usr/bin/env bash
# Runs every stock-client suite against the real Java ZooKeeper 3.9 server and against
# ferrokeeper, in the same run. A suite that fails only against ferrokeeper is our bug; one
# that fails against both is a test bug. Exits non-zero if anything failed.
#
#   compat-tests/run-all.sh [suite...]      # default: every suite directory with a run.sh
set -uo pipefail
cd "$(dirname "$0")"
source lib/common.sh

JAVA_PORT=${JAVA_PORT:-22281}
FK_PORT=${FK_PORT:-22282}
work=$(mktemp -d)
trap 'stop_pid "${JAVA_ZK_PID:-}"; stop_pid "${FK_PID:-}"; rm -rf "$work"' EXIT

suites=("$@")
if [ ${#suites[@]} -eq 0 ]; then
  for d in */run.sh; do
    # differential and durability drive their own servers; they run once, below.
    case "$d" in differential/run.sh|durability/run.sh) ;; *) suites+=("${d%/run.sh}") ;; esac
  done
fi

start_java_zk "$JAVA_PORT" "$work/java" || { log "Java ZooKeeper failed to start"; exit 1; }
start_ferrokeeper "$FK_PORT" "$work/fk" || { log "ferrokeeper failed to start"; exit 1; }

passed=0
failed=0
failures=()
for suite in "${suites[@]}"; do
  for target in java:"$JAVA_PORT" ferrokeeper:"$FK_PORT"; do
    name=${target%%:*}
    port=${target##*:}
    log "=== $suite against $name (127.0.0.1:$port)"
    start=$(date +%s)
    if ZK_FLAVOR=$name timeout 900 bash "$suite/run.sh" "$port"; then
      passed=$((passed + 1))
      log "=== $suite against $name: PASS ($(( $(date +%s) - start ))s)"
    else
      failed=$((failed + 1))
      failures+=("$suite@$name")
      log "=== $suite against $name: FAIL ($(( $(date +%s) - start ))s)"
    fi
  done
done
# run_once NAME DESCRIPTION COMMAND...: a suite that drives its own servers, run once.
run_once() {
  local name=$1 what=$2; shift 2
  log "=== $what"
  if timeout 900 "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}
if [ $# -eq 0 ]; then
  # Both servers must be fresh for the differential test: it compares zxids too.
  stop_pid "$JAVA_ZK_PID"; stop_pid "$FK_PID"
  run_once differential "differential test (Java 3.9 vs ferrokeeper)" \
    bash differential/run.sh "${DIFF_SEED:-$(date +%s)}" "${DIFF_OPS:-10000}"
  run_once partition "network partitions (one netns per server; ferrokeeper ensemble)" \
    bash ensemble/partition.sh
  run_once durability "dataDir migration (Java 3.9 / 3.8 <-> ferrokeeper)" bash durability/run.sh
fi
log "suite runs failed: ${failures[*]:-none}"
echo "compat: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
