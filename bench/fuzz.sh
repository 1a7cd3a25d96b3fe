#!/bin/sh
# Fuzzing benchmark (docs/performance.md, "Fuzzing"): builds the cargo-fuzz targets of
# fuzz/ and runs each for SECONDS (default 600), one after another, then prints per
# target the executions, executions per second, inputs added to the corpus and crashes
# (0 expected), and a summary table; one JSON line each ({"bench": "fuzz", …}) too.
#
#   bench/fuzz.sh                 # every target, 10 minutes each
#   bench/fuzz.sh 60              # 60 s each
#   bench/fuzz.sh 60 twiml html   # some targets
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The toolchain is stable: cargo fuzz's
# nightly flags are allowed with RUSTC_BOOTSTRAP=1. The build goes to its own target
# directory (FUZZ_TARGET_DIR), never the shared one: coverage flags would invalidate it.
# SANITIZER is `none` by default (the workspace forbids unsafe code; what is looked for
# is panics, broken invariants, hangs and memory blow-ups); SANITIZER=address for ASan.
#
# Seeds are the committed fuzz/corpus/<target>/; what a run adds goes to a scratch corpus
# under the cache (reused by the next run, never committed). libFuzzer stops a target at
# its first crash; the input is kept under $CACHE/fuzz/artifacts/<target>/ and the log
# (with the panic message) under $CACHE/fuzz/logs/<target>.log.
set -eu
cd "$(dirname "$0")/.."

SECS="${1:-600}"
[ $# -gt 0 ] && shift
ALL="twilio_media realtime_event twilio_signature twiml twiml_roundtrip manifest chunk html"
TARGETS="${*:-$ALL}"
CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$CACHE/fuzz-target}"
SANITIZER="${SANITIZER:-none}"
WORK="$CACHE/fuzz"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 2
fi

# Release with debug assertions (so overflow checks); 16 codegen units keep the build of
# the whole dependency tree (k8s-openapi, the AWS SDK, sqlx…) affordable.
RUSTC_BOOTSTRAP=1 cargo fuzz build -O -a -s "$SANITIZER" --codegen-units 16 \
  --target-dir "$FUZZ_TARGET_DIR" >&2
HOST="$(rustc -vV | sed -n 's/^host: //p')"
BIN_DIR="$FUZZ_TARGET_DIR/$HOST/release"

mkdir -p "$WORK/logs"
SUMMARY=""
FAILED=0
for t in $TARGETS; do
  [ -d "fuzz/corpus/$t" ] || { echo "unknown target $t (fuzz/corpus/$t missing)" >&2; exit 2; }
  grown="$WORK/corpus/$t"
  artifacts="$WORK/artifacts/$t"
  log="$WORK/logs/$t.log"
  mkdir -p "$grown" "$artifacts"
  before="$(ls "$artifacts" | wc -l)"
  echo "==> $t: ${SECS}s (log $log)" >&2
  # New inputs go to the first directory (the scratch corpus); the seeds are read only.
  status=0
  "$BIN_DIR/$t" -max_total_time="$SECS" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$artifacts/" "$grown" "fuzz/corpus/$t" \
    >"$log" 2>&1 || status=$?
  after="$(ls "$artifacts" | wc -l)"
  crashes=$((after - before))
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  added="$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)"
  rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)"
  corpus="$(ls "$grown" | wc -l)"
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes="?"  # libFuzzer failed without leaving an input: see the log
  fi
  if [ "$crashes" != 0 ]; then
    FAILED=1
    echo "    crash: $(grep -m1 -E "panicked at|ERROR: libFuzzer" "$log" || true)" >&2
    grep -A2 -m1 "panicked at" "$log" >&2 || true
    ls -t "$artifacts" | head -n 1 | sed "s|^|    input: $artifacts/|" >&2
  fi
  echo "    executions ${execs:-?}, ${rate:-?} exec/s, +${added:-?} inputs (scratch corpus $corpus), peak RSS ${rss:-?} MB, crashes $crashes" >&2
  printf '{"bench":"fuzz","target":"%s","seconds":%s,"executions":%s,"exec_per_sec":%s,"new_inputs":%s,"crashes":"%s","sanitizer":"%s"}\n' \
    "$t" "$SECS" "${execs:-null}" "${rate:-null}" "${added:-null}" "$crashes" "$SANITIZER"
  SUMMARY="$SUMMARY$(printf '%-18s %8s %12s %10s %8s %8s' "$t" "$SECS" "${execs:-?}" "${rate:-?}" "+${added:-?}" "$crashes")
"
done

{
  echo
  printf '%-18s %8s %12s %10s %8s %8s\n' target seconds executions exec/s inputs crashes
  printf '%s' "$SUMMARY"
} >&2
exit "$FAILED"
