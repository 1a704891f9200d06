#!/usr/bin/env bash
# Kazoo (Python ZooKeeper client) compatibility suite.
#
#   compat-tests/kazoo/run.sh PORT [pytest args...]
#
# Runs the pytest suite in compat-tests/kazoo/tests against a server that is
# already listening on 127.0.0.1:PORT (ZK_HOSTS is exported for the tests).
# The virtualenv lives in compat-tests/.cache/kazoo-venv and is reused while
# requirements.txt is unchanged.  Exit status is pytest's.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 PORT [pytest args...]" >&2
  exit 2
fi
PORT=$1; shift

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$(cd "$HERE/.." && pwd)/.cache"
VENV="$CACHE/kazoo-venv"
REQ="$HERE/requirements.txt"
PY=${PYTHON:-python3}

log() { printf '[kazoo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "$CACHE"

# A usable interpreter with the requirements installed, in one of two layouts:
#   venv:   $VENV/bin/python (python3 -m venv)
#   target: $VENV/site (pip install --target), run with the system python
setup_env() {
  local stamp="$VENV/.requirements"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$REQ"; then return 0; fi
  rm -rf "$VENV"
  if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    # Fresh Debian: venv/ensurepip live in the python3-venv package.
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      log "python3 -m venv failed; installing python3-venv"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; } >&2 || true
    fi
    "$PY" -m venv "$VENV" >/dev/null 2>&1 || rm -rf "$VENV"
  fi
  if [ -x "$VENV/bin/python" ]; then
    log "installing $(grep -v '^#' "$REQ" | tr '\n' ' ')into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >&2
  else
    log "no venv available; falling back to pip install --target $VENV/site"
    if ! "$PY" -m pip --version >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ]; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip; } >&2 || true
    fi
    mkdir -p "$VENV/site"
    local pipargs=(install -q --disable-pip-version-check --target "$VENV/site" -r "$REQ")
    "$PY" -m pip "${pipargs[@]}" >&2 \
      || "$PY" -m pip "${pipargs[@]}" --break-system-packages >&2
  fi
  cp "$REQ" "$stamp"
}

setup_env
if [ -x "$VENV/bin/python" ]; then
  RUN_PY=("$VENV/bin/python")
else
  export PYTHONPATH="$VENV/site${PYTHONPATH:+:$PYTHONPATH}"
  RUN_PY=("$PY")
fi

export ZK_HOSTS="127.0.0.1:$PORT"
log "running Kazoo suite against $ZK_HOSTS"
cd "$HERE"
# -p no:cacheprovider: keep .pytest_cache out of the source tree.
exec "${RUN_PY[@]}" -m pytest -p no:cacheprovider "$@"
