#!/usr/bin/env bash
# The Debian C client (libzookeeper-mt 3.8) against 127.0.0.1:PORT: a C program using the
# synchronous API, then a scripted cli_mt session.
set -euo pipefail
port=${1:?usage: run.sh PORT}
cd "$(dirname "$0")"
if ! dpkg -s libzookeeper-mt-dev zookeeper-bin >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzookeeper-mt-dev zookeeper-bin >/dev/null
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gcc -O1 -Wall -Werror -o "$out/compat" compat.c -lzookeeper_mt -lpthread
status=0
timeout 120 "$out/compat" "127.0.0.1:$port" || status=1

# cli_mt: create and read back a node in one scripted session.
node="/cli-mt-$$-$RANDOM"
cli_out=$( { echo "create $node climtdata"; sleep 1; echo "get $node"; sleep 1; echo "delete $node"; sleep 1; echo "quit"; } \
  | timeout 30 /usr/lib/zookeeper/bin/cli_mt "127.0.0.1:$port" 2>&1 || true)
if grep -q "climtdata" <<<"$cli_out" && grep -q "rc = 0" <<<"$cli_out"; then
  echo "ok   cli_mt create/get/delete"
else
  echo "FAIL cli_mt create/get/delete"; echo "$cli_out" | tail -20; status=1
fi
exit $status
