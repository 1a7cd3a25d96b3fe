#!/usr/bin/env bash
# Installs and runs a real Kubernetes API server (with its etcd) for tests.
#
#   scripts/kube-apiserver.sh install  # idempotent; the long part (minutes) of the CRD-only kind
#   scripts/kube-apiserver.sh start    # stdout: export lines (below)
#   scripts/kube-apiserver.sh stop
#   scripts/kube-apiserver.sh status   # exit 0 when running (prints the export lines too)
#
# Typical use: eval "$(scripts/kube-apiserver.sh start)"
#              KUBECONFIG=$SWITCHBOARD_TEST_KUBECONFIG $SWITCHBOARD_TEST_KUBECTL get vt -A
#
# Two kinds of server:
#   full      KUBEBUILDER_ASSETS is set (controller-runtime's envtest binaries: kube-apiserver,
#             etcd, kubectl): the whole Kubernetes API.
#   crd-only  otherwise: k8s.io/apiextensions-apiserver of Kubernetes 1.36 on its own
#             (scripts/kube-apiserver/main.go), built from Debian sid's Go packages because no
#             full kube-apiserver of a current release is packaged anywhere we can reach. It
#             serves CRDs and custom resources with the real schema and CEL validation,
#             server-side apply, status subresources, finalizers, watch and printer columns;
#             not the built-in APIs (Namespaces, Secrets, Deployments...).
#
# The crd-only build never touches the system's packages: a private apt configuration (own
# sources list, lists, cache and an empty dpkg status) downloads the .debs, `dpkg-deb -x`
# unpacks them into the cache, Go builds in GOPATH mode with the network off.
#
# Printed on start:
#   SWITCHBOARD_TEST_KUBECONFIG   kubeconfig for the server (token user; the context
#                                 `switchboard-cert` uses a client certificate)
#   SWITCHBOARD_TEST_KUBE_URL     https://127.0.0.1:PORT
#   SWITCHBOARD_TEST_KUBE_TOKEN   bearer token of a system:masters user
#   SWITCHBOARD_TEST_KUBE_KIND    full | crd-only
#   SWITCHBOARD_TEST_KUBECTL      a kubectl that matches the server
# (not KUBECONFIG itself: exported by scripts/test.sh it would point every other test and
# tool at this server.)
#
# Environment:
#   SWITCHBOARD_CACHE   cache root (default ~/.cache/switchboard); everything lives in
#                       kube-apiserver/: bin/ (the built server, etcd, kubectl), build/
#                       (during install only), run/ (certificates, etcd data, logs, pids)
#   KUBEBUILDER_ASSETS  folder with envtest's kube-apiserver, etcd and kubectl: full server
#   KAPI_PORT           loopback port (default: the first free from 56443)
#   KAPI_DEBIAN_SUITE   Debian suite with golang-k8s-apiextensions-apiserver-dev (default sid)
#   KAPI_GO_PACKAGE     Go toolchain package (default golang-1.26-go)
#   KAPI_DEBIAN_MIRROR  default http://deb.debian.org/debian
#   KAPI_KEEP_BUILD=1   keep the build tree (about 2 GB) after install
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
DIR="$CACHE/kube-apiserver"
BIN="$DIR/bin"
BUILD="$DIR/build"
RUN="$DIR/run"
SUITE="${KAPI_DEBIAN_SUITE:-sid}"
GO_PACKAGE="${KAPI_GO_PACKAGE:-golang-1.26-go}"
MIRROR="${KAPI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
MAIN_GO="$HERE/kube-apiserver/main.go"
SERVER_NAME="switchboard-crd-apiserver"

log() { echo "kube-apiserver.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

kind() {
    if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then echo full; else echo crd-only; fi
}

# A change to main.go must rebuild: the stamp names the source's hash.
stamp() {
    echo "$BIN/.complete-$(sha256sum "$MAIN_GO" | cut -c1-16)"
}

installed() {
    [ -f "$(stamp)" ] && [ -x "$BIN/$SERVER_NAME" ] && [ -x "$BIN/etcd" ] && [ -x "$BIN/kubectl" ]
}

# apt-get on a private state: never reads or writes the system's package lists or status.
apt_private() {
    local a="$BUILD/apt"
    apt-get -o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
        -o Dir::Etc::Preferences=/nonexistent -o Dir::Etc::PreferencesParts=/nonexistent \
        -o Dir::State="$a/state" -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" \
        -o Dir::State::status="$a/status" -o Debug::NoLocking=1 \
        -o APT::Sandbox::User="$(id -un)" -o Acquire::Languages=none "$@"
}

# `apt-get install -s` on an empty status lists the whole closure as `Inst name (version ...)`.
resolve() {
    apt_private install -s --no-install-recommends "$@" 2>/dev/null \
        | awk '$1 == "Inst" { v = $3; gsub(/[()]/, "", v); print $2 "=" v }'
}

check_assets() {
    local f
    for f in kube-apiserver etcd kubectl; do
        [ -x "$KUBEBUILDER_ASSETS/$f" ] || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $f"
    done
}

cmd_install() {
    if [ "$(kind)" = full ]; then
        check_assets
        log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS: full API server, nothing to build"
        return 0
    fi
    if installed; then
        log "installed in $BIN: $(cat "$(stamp)")"
        return 0
    fi
    local t0=$SECONDS
    rm -rf "$BUILD"
    mkdir -p "$BUILD/apt/state" "$BUILD/apt/lists/partial" "$BUILD/apt/cache/archives/partial" \
        "$BUILD/debs" "$BUILD/root" "$BUILD/src" "$BIN"
    : >"$BUILD/apt/status"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" \
        >"$BUILD/apt/sources.list"
    log "apt-get update (Debian $SUITE, private lists in $BUILD/apt)"
    apt_private update -qq >&2 || die "apt-get update of $SUITE failed"

    # Only the Go sources (-dev), one toolchain, etcd and kubectl: the closure also names
    # libc and friends, which the static build and the Go binaries do not need.
    log "resolving golang-k8s-apiextensions-apiserver-dev and its Go dependencies"
    {
        resolve golang-k8s-apiextensions-apiserver-dev etcd-server kubectl \
            | grep -E '^(golang-.*-dev|etcd-server|kubectl)='
        resolve "$GO_PACKAGE" | grep -E '^golang-1\.[0-9]+-(go|src)='
    } | sort -u >"$BUILD/packages.txt" || true
    [ "$(grep -c . "$BUILD/packages.txt")" -gt 50 ] \
        || { cat "$BUILD/packages.txt" >&2; die "dependency resolution failed"; }
    grep -q '^golang-k8s-apiextensions-apiserver-dev=' "$BUILD/packages.txt" \
        || die "golang-k8s-apiextensions-apiserver-dev not found in $SUITE"

    log "downloading $(wc -l <"$BUILD/packages.txt") packages"
    # shellcheck disable=SC2046
    (cd "$BUILD/debs" && apt_private download $(cat "$BUILD/packages.txt") >/dev/null 2>"$BUILD/download.log") \
        || { cat "$BUILD/download.log" >&2; die "apt-get download failed"; }
    log "unpacking into $BUILD/root"
    local deb
    for deb in "$BUILD"/debs/*.deb; do
        dpkg-deb -x "$deb" "$BUILD/root"
    done

    local goroot upstream minor version
    goroot=$(ls -d "$BUILD"/root/usr/lib/go-1.* | sort -V | tail -n1)
    # The package is k8s.io/apiextensions-apiserver v0.36.x = Kubernetes v1.36.x. The server
    # refuses to start stamped v0.36 ("emulation version 0.36 is not between [1.31, ...]").
    upstream=$(sed -n 's/^golang-k8s-apiextensions-apiserver-dev=\([0-9][0-9.]*\).*/\1/p' "$BUILD/packages.txt")
    minor=$(echo "$upstream" | cut -d. -f2)
    version="v1.${upstream#*.}"
    cp "$MAIN_GO" "$BUILD/src/main.go"
    log "building $SERVER_NAME $version with $("$goroot/bin/go" version | cut -d' ' -f3) (a few minutes)"
    (
        cd "$BUILD/src"
        export GOROOT="$goroot" PATH="$goroot/bin:$PATH" GOPATH="$BUILD/root/usr/share/gocode" \
            GOCACHE="$BUILD/gocache" GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0
        go build -trimpath -o "$BIN/$SERVER_NAME" -ldflags "-s -w \
            -X k8s.io/component-base/version.gitVersion=$version \
            -X k8s.io/component-base/version.gitMajor=1 \
            -X k8s.io/component-base/version.gitMinor=$minor \
            -X k8s.io/client-go/pkg/version.gitVersion=$version" main.go >&2
    ) || die "go build failed"
    cp "$BUILD/root/usr/bin/etcd" "$BUILD/root/usr/bin/kubectl" "$BIN/"
    cp "$BUILD/packages.txt" "$BIN/packages.txt"
    rm -f "$BIN"/.complete-*
    echo "$SERVER_NAME $version, $("$BIN/etcd" --version | head -n1), kubectl $(sed -n 's/^kubectl=//p' "$BUILD/packages.txt")" \
        >"$(stamp)"
    [ "${KAPI_KEEP_BUILD:-0}" = 1 ] || rm -rf "$BUILD"
    log "installed in $((SECONDS - t0)) s into $BIN: $(cat "$(stamp)") ($(du -h "$BIN/$SERVER_NAME" | cut -f1))"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    local p=$1
    for _ in $(seq 1 200); do
        port_in_use "$p" || { echo "$p"; return 0; }
        p=$((p + 1))
    done
    die "no free port from $1"
}

# A pid file outlives a reboot: never trust (or kill) a pid that is not our binary.
alive() {
    local pid
    pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q "$2" "/proc/$pid/cmdline" 2>/dev/null
}

running() {
    alive apiserver apiserver && [ -f "$RUN/env" ]
}

certificates() {
    local pki="$RUN/pki"
    mkdir -p "$pki"
    (
        cd "$pki"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
            -subj "/CN=switchboard-test-ca" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout serving.key -out serving.csr -subj "/CN=localhost" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >serving.ext
        openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out serving.crt \
            -days 3650 -extfile serving.ext 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
            -subj "/O=system:masters/CN=switchboard-admin" 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' >admin.ext
        openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt \
            -days 3650 -extfile admin.ext 2>/dev/null
        # The full server signs service-account tokens.
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    ) || die "openssl failed"
}

kubeconfig() {
    cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: switchboard-test
  cluster:
    server: "$1"
    certificate-authority: "$RUN/pki/ca.crt"
users:
- name: admin
  user:
    token: "$2"
- name: admin-cert
  user:
    client-certificate: "$RUN/pki/admin.crt"
    client-key: "$RUN/pki/admin.key"
contexts:
- name: switchboard-test
  context: {cluster: switchboard-test, user: admin}
- name: switchboard-cert
  context: {cluster: switchboard-test, user: admin-cert}
current-context: switchboard-test
EOF
}

cmd_start() {
    if running; then
        log "already running ($(sed -n 's/^export SWITCHBOARD_TEST_KUBE_URL=//p' "$RUN/env"))"
        cat "$RUN/env"
        return 0
    fi
    cmd_install
    stop_processes
    local server etcd kubectl
    if [ "$(kind)" = full ]; then
        server="$KUBEBUILDER_ASSETS/kube-apiserver" etcd="$KUBEBUILDER_ASSETS/etcd" kubectl="$KUBEBUILDER_ASSETS/kubectl"
    else
        server="$BIN/$SERVER_NAME" etcd="$BIN/etcd" kubectl="$BIN/kubectl"
    fi
    rm -rf "$RUN"
    mkdir -p "$RUN/etcd"
    chmod 700 "$RUN"
    certificates
    local port etcd_port peer_port token url t0=$SECONDS
    port=$(free_port "${KAPI_PORT:-56443}")
    etcd_port=$(free_port 52379)
    peer_port=$(free_port $((etcd_port + 1)))
    token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    echo "$token,switchboard-admin,switchboard-admin,\"system:masters\"" >"$RUN/tokens.csv"
    url="https://127.0.0.1:$port"

    # setsid: the servers outlive this script and the shell that ran it.
    setsid "$etcd" --name=switchboard-test --data-dir="$RUN/etcd" \
        --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
        --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
        --initial-cluster="switchboard-test=http://127.0.0.1:$peer_port" \
        --unsafe-no-fsync --log-level=warn >"$RUN/etcd.log" 2>&1 </dev/null &
    echo $! >"$RUN/etcd.pid"

    local common=(--etcd-servers="http://127.0.0.1:$etcd_port" --bind-address=127.0.0.1 --secure-port="$port"
        --cert-dir="$RUN/certs" --tls-cert-file="$RUN/pki/serving.crt" --tls-private-key-file="$RUN/pki/serving.key"
        --client-ca-file="$RUN/pki/ca.crt" --token-auth-file="$RUN/tokens.csv")
    if [ "$(kind)" = full ]; then
        # The flags controller-runtime's envtest passes.
        setsid "$server" "${common[@]}" --advertise-address=127.0.0.1 --service-cluster-ip-range=10.0.0.0/24 \
            --allow-privileged=true --authorization-mode=RBAC --disable-admission-plugins=ServiceAccount \
            --service-account-issuer="$url" --service-account-key-file="$RUN/pki/sa.pub" \
            --service-account-signing-key-file="$RUN/pki/sa.key" >"$RUN/apiserver.log" 2>&1 </dev/null &
    else
        setsid "$server" "${common[@]}" >"$RUN/apiserver.log" 2>&1 </dev/null &
    fi
    echo $! >"$RUN/apiserver.pid"

    local ready=""
    for _ in $(seq 1 240); do
        if curl -fsS --cacert "$RUN/pki/ca.crt" -H "Authorization: Bearer $token" "$url/readyz" >/dev/null 2>&1; then
            ready=1
            break
        fi
        alive apiserver "$(basename "$server")" || { tail -n 20 "$RUN/apiserver.log" >&2 || true; die "the API server exited"; }
        sleep 0.25
    done
    [ -n "$ready" ] || { tail -n 20 "$RUN/apiserver.log" >&2 || true; die "the API server is not ready after 60 s"; }

    kubeconfig "$url" "$token" >"$RUN/kubeconfig"
    chmod 600 "$RUN/kubeconfig"
    {
        echo "export SWITCHBOARD_TEST_KUBECONFIG=$RUN/kubeconfig"
        echo "export SWITCHBOARD_TEST_KUBE_URL=$url"
        echo "export SWITCHBOARD_TEST_KUBE_TOKEN=$token"
        echo "export SWITCHBOARD_TEST_KUBE_KIND=$(kind)"
        echo "export SWITCHBOARD_TEST_KUBECTL=$kubectl"
    } >"$RUN/env"
    log "ready in $((SECONDS - t0)) s: $(kind) API server at $url (etcd 127.0.0.1:$etcd_port, logs in $RUN)"
    cat "$RUN/env"
}

stop_processes() {
    local name pid
    for name in apiserver etcd; do
        if alive "$name" "$name"; then
            pid=$(cat "$RUN/$name.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$RUN/$name.pid"
    done
}

cmd_stop() {
    if running; then log "stopping"; else log "not running"; fi
    stop_processes
    # The etcd data and certificates belong to one run: the next start makes new ones.
    rm -rf "$RUN"
}

cmd_status() {
    if running; then
        log "running (pid $(cat "$RUN/apiserver.pid"))"
        cat "$RUN/env"
    else
        log "not running"
        return 3
    fi
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 install|start|stop|status" >&2
    exit 2
    ;;
esac
