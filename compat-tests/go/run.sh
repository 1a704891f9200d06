#!/usr/bin/env bash
# go-zookeeper (github.com/go-zookeeper/zk, pinned in go.mod) against 127.0.0.1:PORT.
set -euo pipefail
port=${1:?usage: run.sh PORT}
cd "$(dirname "$0")"
command -v go >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go; }
ZK_ADDR="127.0.0.1:$port" timeout 300 go test -count=1 -v -timeout 240s ./... 2>&1 | tee /tmp/compat-go-$port.log
passed=$(grep -c -- '^--- PASS' /tmp/compat-go-$port.log || true)
failed=$(grep -c -- '^--- FAIL' /tmp/compat-go-$port.log || true)
echo "go-zookeeper: $passed passed, $failed failed"
grep -q '^ok' /tmp/compat-go-$port.log && [ "$failed" -eq 0 ]
