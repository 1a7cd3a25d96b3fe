#!/bin/sh
# Knowledge benchmarks (docs/performance.md, "Knowledge"): the local embedder, ingestion of
# 10k chunks and lookups in the embedded store, lookups and HNSW recall at 100k chunks in
# pgvector. Release build; the benchmark process is pinned to one core (CORE, default 1)
# with RAYON_NUM_THREADS=1; Postgres runs unpinned. Figures go to stdout, one JSON line
# each ({"bench": …}) after the human-readable line.
#
#   bench/knowledge.sh                    # everything
#   bench/knowledge.sh embed              # one mode: embed | embedded | pgvector
#
# The pgvector corpus stays in schema kn_bench and its real vectors in
# ~/.cache/switchboard/bench, so reruns only measure (the first run embeds 10k chunks).
set -eu
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard/target}"
export SWITCHBOARD_MODEL_DIR="${SWITCHBOARD_MODEL_DIR:-$(scripts/model.sh)}"
export RAYON_NUM_THREADS=1
CORE="${CORE:-1}"
MODES="${*:-embed embedded pgvector}"

cargo build --release -p switchboard-knowledge --example bench
BIN="$CARGO_TARGET_DIR/release/examples/bench"
for mode in $MODES; do
  case "$mode" in
    embed) taskset -c "$CORE" "$BIN" embed ;;
    embedded) taskset -c "$CORE" "$BIN" embedded --chunks "${EMBEDDED_CHUNKS:-10000}" ;;
    pgvector)
      eval "$(scripts/postgres.sh start)"
      taskset -c "$CORE" "$BIN" pgvector --chunks "${PG_CHUNKS:-100000}" --real "${PG_REAL:-10000}"
      ;;
    *) echo "unknown mode $mode (embed, embedded, pgvector)" >&2; exit 2 ;;
  esac
done
