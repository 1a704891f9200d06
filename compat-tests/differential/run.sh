#!/usr/bin/env bash
# Differential test: fresh Java ZooKeeper 3.9 and fresh ferrokeeper, same seeded operations.
#   run.sh [SEED] [OPS]
set -euo pipefail
cd "$(dirname "$0")"
source ../lib/common.sh
seed=${1:-$(date +%s)}
ops=${2:-10000}
lib="$CACHE_DIR/differential-pylib"
if [ ! -f "$lib/.complete" ]; then
  python3 -m pip install -q --disable-pip-version-check --target "$lib" kazoo==2.11.0 >&2
  touch "$lib/.complete"
fi
export PYTHONPATH="$lib"
py=python3
work=$(mktemp -d)
trap 'stop_pid "${JAVA_ZK_PID:-}"; stop_pid "${FK_PID:-}"; rm -rf "$work"' EXIT
start_java_zk 22681 "$work/java"
start_ferrokeeper 22682 "$work/fk"
timeout 600 "$py" differential.py 127.0.0.1:22681 127.0.0.1:22682 --seed "$seed" --ops "$ops"
