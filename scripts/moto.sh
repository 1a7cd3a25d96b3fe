#!/usr/bin/env bash
# Installs and runs moto's server (the S3 API, from PyPI) for tests.
#
#   scripts/moto.sh start    # stdout: export SWITCHBOARD_TEST_S3_URL=http://127.0.0.1:PORT
#   scripts/moto.sh stop
#   scripts/moto.sh status   # exit 0 when running (prints the export line too)
#
# Typical use: eval "$(scripts/moto.sh start)"
#
# Idempotent: `start` on a running server only prints its URL. Progress goes to stderr.
#
# Environment:
#   SWITCHBOARD_CACHE   cache root (default ~/.cache/switchboard); moto lives in moto/
#                       (venv/ or, without venv, lib/ via pip --target), with its pid, port
#                       and log
#   MOTO_PORT           loopback port (default: the last one used, else the first free
#                       from 55900)
#   MOTO_VERSION        moto version (default 5.2.5)
set -euo pipefail

CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
DIR="$CACHE/moto"
VERSION="${MOTO_VERSION:-5.2.5}"
VENV="$DIR/venv"
TARGET="$DIR/lib"
PID_FILE="$DIR/moto.pid"
PORT_FILE="$DIR/port"
LOG="$DIR/moto.log"

log() { echo "moto.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

url() { echo "http://127.0.0.1:$1"; }

# How to run moto_server: the venv's entry point, or the module from the --target tree.
server_cmd() {
    if [ -x "$VENV/bin/moto_server" ] && [ -f "$VENV/.complete-$VERSION" ]; then
        echo "$VENV/bin/moto_server"
    elif [ -f "$TARGET/.complete-$VERSION" ]; then
        echo "env PYTHONPATH=$TARGET python3 -m moto.server"
    fi
}

ensure_install() {
    if [ -n "$(server_cmd)" ]; then
        return 0
    fi
    mkdir -p "$DIR"
    rm -rf "$VENV"
    if python3 -m venv "$VENV" >/dev/null 2>&1; then
        log "installing moto[server]==$VERSION into $VENV"
        "$VENV/bin/python" -m pip install --disable-pip-version-check -q "moto[server]==$VERSION" >&2 \
            || { rm -rf "$VENV"; die "pip install moto[server] failed"; }
        touch "$VENV/.complete-$VERSION"
    else
        rm -rf "$VENV"
        log "python3 -m venv unavailable; installing moto[server]==$VERSION into $TARGET"
        rm -rf "$TARGET"
        python3 -m pip install --disable-pip-version-check -q --target "$TARGET" "moto[server]==$VERSION" >&2 \
            || die "pip install --target failed (needs pip: apt-get install python3-pip, or python3-venv for the venv route)"
        touch "$TARGET/.complete-$VERSION"
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running() {
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # After a reboot the pid may belong to another process: never trust (or kill) it
    # unless it is moto's server.
    if ! grep -q moto "/proc/$pid/cmdline" 2>/dev/null; then
        rm -f "$PID_FILE"
        return 1
    fi
}

# moto answers GET / on its S3 port with a ListBuckets document.
answers() {
    python3 - "$(url "$1")" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/", timeout=2) as r:
    sys.exit(0 if b"ListAllMyBucketsResult" in r.read() else 1)
PY
}

choose_port() {
    if [ -n "${MOTO_PORT:-}" ]; then
        port_in_use "$MOTO_PORT" && die "MOTO_PORT=$MOTO_PORT is already in use"
        echo "$MOTO_PORT"
        return 0
    fi
    local p
    p=$(cat "$PORT_FILE" 2>/dev/null || echo 55900)
    for _ in $(seq 1 100); do
        if ! port_in_use "$p"; then
            echo "$p"
            return 0
        fi
        p=$((p + 1))
    done
    die "no free port from 55900"
}

cmd_start() {
    local port
    if running; then
        port=$(cat "$PORT_FILE")
        if [ -n "${MOTO_PORT:-}" ] && [ "$MOTO_PORT" != "$port" ]; then
            die "already running on port $port (MOTO_PORT=$MOTO_PORT); run 'stop' first"
        fi
        log "already running on port $port"
    else
        ensure_install
        port=$(choose_port)
        log "starting moto_server on 127.0.0.1:$port"
        # setsid: the server outlives this script and the shell that ran it.
        # shellcheck disable=SC2046
        setsid $(server_cmd) -H 127.0.0.1 -p "$port" >"$LOG" 2>&1 </dev/null &
        echo $! >"$PID_FILE"
        echo "$port" >"$PORT_FILE"
        for _ in $(seq 1 150); do
            answers "$port" && break
            running || { tail -n 20 "$LOG" >&2 || true; die "moto_server exited"; }
            sleep 0.2
        done
    fi
    answers "$port" || { tail -n 20 "$LOG" >&2 || true; die "moto_server does not answer on $port"; }
    log "ready: $(url "$port")"
    echo "export SWITCHBOARD_TEST_S3_URL=$(url "$port")"
}

cmd_stop() {
    if running; then
        log "stopping"
        local pid
        pid=$(cat "$PID_FILE")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    else
        log "not running"
    fi
    rm -f "$PID_FILE"
}

cmd_status() {
    if running; then
        local port
        port=$(cat "$PORT_FILE")
        log "running on 127.0.0.1:$port (pid $(cat "$PID_FILE"))"
        echo "export SWITCHBOARD_TEST_S3_URL=$(url "$port")"
    else
        log "not running"
        return 3
    fi
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
