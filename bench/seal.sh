#!/bin/sh
# Encryption cost per call record (docs/performance.md, "Record encryption"): AES-256-GCM
# alone over a representative record, then the whole path against moto's KMS on loopback
# (GenerateDataKey on write, Decrypt on read). Release build, pinned to one core (CORE,
# default 1); moto runs unpinned. One JSON line per figure after the human-readable line.
#
#   bench/seal.sh            # RECORDS=2000 by default
set -eu
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard/target}"
CORE="${CORE:-1}"
eval "$(scripts/moto.sh start)"
cargo build --release -p switchboard-gateway --example seal
taskset -c "$CORE" "$CARGO_TARGET_DIR/release/examples/seal" --records "${RECORDS:-2000}" --kms-url "$SWITCHBOARD_TEST_S3_URL"
