#!/usr/bin/env bash
# Curator 5.9 recipes (ZooKeeper 3.9.5 Java client) against 127.0.0.1:PORT, as JUnit tests.
set -euo pipefail
port=${1:?usage: run.sh PORT}
cd "$(dirname "$0")"
command -v mvn >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven; }
ZK_CONNECT="127.0.0.1:$port" timeout 600 mvn -B -ntp test
