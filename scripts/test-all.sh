#!/usr/bin/env bash
# The one test command: installs what the tests need (Debian packages, Maven artifacts, PyPI
# packages, Go modules; each suite installs its own), then runs lint, the Rust unit and
# integration tests, and every stock-client compatibility suite against Java ZooKeeper 3.9
# and ferrokeeper.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v java >/dev/null || need_apt+=(default-jdk-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

echo "--- rustfmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "--- Rust unit and integration tests"
cargo test --quiet 2>&1 | tee /tmp/ferrokeeper-cargo-test.log

echo "--- deterministic simulation of the ensemble (release build, thousands of seeds)"
# FLE alone (fle_sim) and the real core's Zab under crashes, partitions and message faults
# (server::core::sim). A failing seed prints the one-line command that replays it.
FK_FLE_SEEDS=${FK_FLE_SEEDS:-20000} FK_ZAB_SEEDS=${FK_ZAB_SEEDS:-2000} \
  cargo test --release --quiet --lib -- quorum::fle server::core::sim

echo "--- release build"
cargo build --release --quiet

echo "--- stock-client compatibility (Java ZooKeeper 3.9 and ferrokeeper)"
compat-tests/run-all.sh
