#!/usr/bin/env bash
# Relay benchmark: the gateway against the calibration floor (and optionally a Node.js
# bridge), each pinned to one core, driven by `sim load` pinned to another, all on
# 127.0.0.1. Results and a Markdown summary go to $OUT. See docs/performance.md.
#
# Usage: bench/run.sh [CALLS ...]            default: 50 200 500 1000
# Environment:
#   DURATION=20          seconds of media per call
#   LOAD_FLAGS=          more `sim load` flags for every row, e.g. "--lead-ms 2000" (the model
#                        runs 2 s ahead of playout, as the real API does)
#   RAMP=                calls start evenly over RAMP seconds (default: sim load's,
#                        min(calls / 50, 10) s)
#   RELAYS="floor gateway"  relays swept, in order; also: floor-defaults (the floor with the
#                        stack's socket defaults: Nagle on, 128 KiB WebSocket read buffers),
#                        node (bench/node-bridge; run `npm ci` there first), gateway-rec
#                        (the gateway serving REC_TENANT, e.g. the same tenant with
#                        recordings on, so both sides are compared with one floor row)
#   PRECONNECT=1         also compare gateway setup with and without --no-preconnect
#   PRECONNECT_CALLS=50  calls in that comparison
#   REALTIME_DELAY_MS=300 STREAM_DELAY_MS=300   handshake and Twilio delays it simulates
#   TENANT=examples/tenants/demo.yaml   tenant served by the gateway (the demo records
#                        calls: bench/demo-unrecorded.yaml is the same tenant without)
#   REC_TENANT=bench/demo-recorded.yaml tenant served by the gateway-rec relay
#   RELAY_CPU=0 LOADGEN_CPU=1           cores for the relay and for the load generator
#   QUIET_PCT=10 QUIET_WAIT=600         before each row, wait up to QUIET_WAIT s for other
#                        processes to use less than QUIET_PCT % of one core (a shared
#                        machine's builds would otherwise be measured too)
#   RETRIES=2 RETRY_OTHER_PCT=25        a row during which other processes used more than
#                        RETRY_OTHER_PCT % of a core is measured again (RETRIES times at
#                        most); the cleanest attempt is kept
#   OUT=bench/results/<timestamp>       where results go
#   SKIP_BUILD=1 GATEWAY_BIN=… SIM_BIN=… use prebuilt binaries instead of building
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-20}
LOAD_FLAGS=${LOAD_FLAGS:-}
read -ra LOAD_ARGS <<<"$LOAD_FLAGS"
RAMP=${RAMP:-}
RELAYS=${RELAYS:-floor gateway}
PRECONNECT=${PRECONNECT:-1}
PRECONNECT_CALLS=${PRECONNECT_CALLS:-50}
REALTIME_DELAY_MS=${REALTIME_DELAY_MS:-300}
STREAM_DELAY_MS=${STREAM_DELAY_MS:-300}
TENANT=${TENANT:-examples/tenants/demo.yaml}
REC_TENANT=${REC_TENANT:-bench/demo-recorded.yaml}
RELAY_CPU=${RELAY_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_WAIT=${QUIET_WAIT:-600}
RETRIES=${RETRIES:-2}
RETRY_OTHER_PCT=${RETRY_OTHER_PCT:-25}
OUT=${OUT:-bench/results/$(date +%Y%m%d-%H%M%S)}
if [ "$#" -gt 0 ]; then CALLS=("$@"); else CALLS=(50 200 500 1000); fi

GW_PORT=18080
RT_PORT=18081
FLOOR_PORT=18090
NODE_PORT=18095
TOKEN=bench-token
TO=+15005550006
DATA_DIR=/tmp/gw-bench

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd)

# Binaries are copied into $OUT so a concurrent build cannot swap them mid-run.
if [ -z "${SKIP_BUILD:-}" ]; then
  log "building release binaries"
  cargo build --release -p switchboard-gateway -p switchboard-sim >&2
  TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
  GATEWAY_BIN=$TARGET/release/gateway
  SIM_BIN=$TARGET/release/sim
fi
cp "${GATEWAY_BIN:?set GATEWAY_BIN or unset SKIP_BUILD}" "$OUT/bin/gateway"
cp "${SIM_BIN:?set SIM_BIN or unset SKIP_BUILD}" "$OUT/bin/sim"
GATEWAY=$OUT/bin/gateway
SIM=$OUT/bin/sim

ACCOUNT_SID=$(sed -n 's/^[[:space:]]*accountSid:[[:space:]]*\([A-Za-z0-9]*\).*/\1/p' "$TENANT" | head -n1)
[ -n "$ACCOUNT_SID" ] || { log "no accountSid in $TENANT"; exit 1; }

# Each call holds 2 sockets in the load generator and 2 in the relay.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

RELAY_PID=""
cleanup() {
  if [ -n "$RELAY_PID" ] && kill -0 "$RELAY_PID" 2>/dev/null; then
    kill "$RELAY_PID" 2>/dev/null || true
    sleep 1
    kill -9 "$RELAY_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port: waits up to 10 s for a listener
  local i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "nothing listening on port $1"
  return 1
}

busy_ticks() { # all cores' busy ticks so far (/proc/stat: all but idle and iowait)
  awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat
}

wait_quiet() { # waits (bounded) until the machine is idle enough to measure on
  local waited=0 a b pct hz
  hz=$(getconf CLK_TCK)
  while :; do
    a=$(busy_ticks)
    sleep 3
    b=$(busy_ticks)
    pct=$(((b - a) * 100 / (3 * hz)))
    if [ "$pct" -lt "$QUIET_PCT" ]; then return 0; fi
    if [ "$waited" -ge "$QUIET_WAIT" ]; then
      log "machine still busy (${pct}% of a core); measuring anyway (see 'other CPU')"
      return 0
    fi
    [ "$waited" = 0 ] && log "machine busy (${pct}% of a core): waiting for it to go quiet"
    waited=$((waited + 3))
  done
}

stop_relay() {
  local i
  [ -n "$RELAY_PID" ] || return 0
  kill "$RELAY_PID" 2>/dev/null || true
  for i in $(seq 1 150); do
    kill -0 "$RELAY_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$RELAY_PID" 2>/dev/null || true
  wait "$RELAY_PID" 2>/dev/null || true
  RELAY_PID=""
  sleep 1 # let the kernel finish closing the run's sockets
}

start_relay() { # kind name [extra gateway flags...]: sets RELAY_PID and RELAY_URL
  local kind=$1 name=$2
  shift 2
  case $kind in
    floor | floor-defaults)
      local defaults=()
      [ "$kind" = floor-defaults ] && defaults=(--stack-defaults)
      taskset -c "$RELAY_CPU" "$SIM" floor --listen "127.0.0.1:$FLOOR_PORT" \
        --realtime-url "ws://127.0.0.1:$RT_PORT/v1/realtime" "${defaults[@]}" \
        >"$OUT/$name.relay.log" 2>&1 &
      RELAY_PID=$!
      RELAY_URL=http://127.0.0.1:$FLOOR_PORT
      wait_port "$FLOOR_PORT"
      ;;
    gateway | gateway-rec)
      local tenant=$TENANT
      [ "$kind" = gateway-rec ] && tenant=$REC_TENANT
      rm -rf "$DATA_DIR"
      TWILIO_AUTH_TOKEN=$TOKEN OPENAI_API_KEY=sk-bench DEMO_API_KEY=bench-console-key-0123456789abcdef0123 \
        SWITCHBOARD_MAX_CONNECTIONS=20000 SWITCHBOARD_MAX_CONNECTIONS_PER_IP=20000 \
        SWITCHBOARD_DRAIN_SECONDS=5 RUST_LOG=warn \
        taskset -c "$RELAY_CPU" "$GATEWAY" --tenant "$tenant" --listen "127.0.0.1:$GW_PORT" \
        --realtime-url "ws://127.0.0.1:$RT_PORT/v1/realtime" --max-calls 5000 \
        --data-dir "$DATA_DIR" "$@" >"$OUT/$name.relay.log" 2>&1 &
      RELAY_PID=$!
      RELAY_URL=http://127.0.0.1:$GW_PORT
      wait_port "$GW_PORT"
      ;;
    node)
      taskset -c "$RELAY_CPU" node bench/node-bridge/bridge.js --port "$NODE_PORT" \
        --realtime-url "ws://127.0.0.1:$RT_PORT/v1/realtime" >"$OUT/$name.relay.log" 2>&1 &
      RELAY_PID=$!
      RELAY_URL=http://127.0.0.1:$NODE_PORT
      wait_port "$NODE_PORT"
      ;;
    *)
      log "unknown relay $kind"
      return 1
      ;;
  esac
}

cpu_ticks() { # pid: user + system CPU of the process so far, in clock ticks (empty: gone)
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || true
}

after_call_ticks() { # pid: CPU ticks of the recording's after-call threads (WAVs, queue)
  # Thread names are the gateway's (recording/files.rs), cut to 15 characters by the
  # kernel: `recording-queue-0` reads `recording-queue`.
  cat /proc/"$1"/task/*/stat 2>/dev/null \
    | awk '$2 ~ /^\(recording-(wav-|queue)/ {t += $14 + $15} END {print t + 0}'
}

run_load() { # kind name calls jsonl [extra sim load flags...]
  local kind=$1 name=$2 calls=$3 jsonl=$4
  shift 4
  wait_quiet
  log "$name: $calls calls x ${DURATION}s"
  [ -n "$RAMP" ] && set -- --ramp "$RAMP" "$@"
  local cpu0 after0
  cpu0=$(cpu_ticks "$RELAY_PID")
  after0=$(after_call_ticks "$RELAY_PID")
  taskset -c "$LOADGEN_CPU" "$SIM" load --gateway "$RELAY_URL" --to "$TO" \
    --account-sid "$ACCOUNT_SID" --auth-token "$TOKEN" --realtime-listen "127.0.0.1:$RT_PORT" \
    --calls "$calls" --duration "$DURATION" --pid "$RELAY_PID" --label "$kind" \
    ${LOAD_ARGS[@]+"${LOAD_ARGS[@]}"} "$@" \
    >"$OUT/$name.txt" 2>"$OUT/$name.err" || true
  sed '$d' "$OUT/$name.txt" >&2
  local json
  json=$(grep '^{' "$OUT/$name.txt" | tail -n1 || true)
  if [ -z "$json" ]; then
    log "$name: no result line (see $OUT/$name.err)"
    return 0
  fi
  if [ "$kind" = gateway ] || [ "$kind" = gateway-rec ]; then
    curl -s "$RELAY_URL/metrics" >"$OUT/$name.metrics" || true
  fi
  # CPU over the whole row, the ramp, the end of the calls and what follows them (the
  # recorded gateway's WAVs) included: the relay has done all its work once it is idle.
  # Unlike the steady window's CPU %, this does not stop at a full core (a relay that
  # falls behind does the same work later), so rows can be compared when a core is full.
  local cpu1 prev cpu_s=null after_s=null
  cpu1=$(cpu_ticks "$RELAY_PID")
  for _ in $(seq 1 40); do
    [ -n "$cpu1" ] || break
    sleep 0.5
    prev=$cpu1
    cpu1=$(cpu_ticks "$RELAY_PID")
    [ -n "$cpu1" ] && [ $((cpu1 - prev)) -le 1 ] && break
  done
  # A relay that exited during the row has no figure.
  if [ -n "$cpu0" ] && [ -n "$cpu1" ]; then
    cpu_s=$(awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')
    # Of which the recorded gateway's work after each call (its WAV, fsynced, and the
    # queue's delivery): reported apart, since the relay target is about the calls.
    after_s=$(awk -v t=$(($(after_call_ticks "$RELAY_PID") - after0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')
  fi
  printf '%s\n' "$json" | jq -c --arg name "$name" --argjson cpu_s "$cpu_s" --argjson after_s "$after_s" \
    '. + {run: $name, relay_cpu_s: $cpu_s, after_call_cpu_s: $after_s}' >"$OUT/$name.json"
}

measure() { # kind name calls jsonl relay-flags -- load-flags: one row, retried while noisy
  local kind=$1 name=$2 calls=$3 jsonl=$4 attempt other best="" best_other=""
  shift 4
  local relay_flags=() load_flags=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do relay_flags+=("$1"); shift; done
  [ "$#" -gt 0 ] && shift
  load_flags=("$@")
  for attempt in $(seq 0 "$RETRIES"); do
    rm -f "$OUT/$name.json"
    start_relay "$kind" "$name" "${relay_flags[@]}"
    run_load "$kind" "$name" "$calls" "$jsonl" "${load_flags[@]}"
    stop_relay
    [ -s "$OUT/$name.json" ] || continue
    if [ "$kind" = gateway ] || [ "$kind" = gateway-rec ]; then
      # What the calls left on the data disk once the gateway drained and stopped
      # (recordings, the SQLite store): bytes and WAV files.
      local bytes wavs
      bytes=$(du -sb "$DATA_DIR" | cut -f1)
      wavs=$(find "$DATA_DIR" -name '*.wav' | wc -l)
      jq -c --argjson b "$bytes" --argjson w "$wavs" '. + {data_dir_bytes: $b, wav_files: $w}' \
        "$OUT/$name.json" >"$OUT/$name.json.tmp" && mv "$OUT/$name.json.tmp" "$OUT/$name.json"
    fi
    other=$(jq -r '.other_cpu_pct // 0 | floor' "$OUT/$name.json")
    if [ -z "$best" ] || [ "$other" -lt "$best_other" ]; then
      best=$(cat "$OUT/$name.json")
      best_other=$other
    fi
    [ "$other" -le "$RETRY_OTHER_PCT" ] && break
    [ "$attempt" -lt "$RETRIES" ] && log "$name: other processes used ${other}% of a core; measuring again"
  done
  [ -n "$best" ] && printf '%s\n' "$best" >>"$OUT/$jsonl"
  return 0
}

: >"$OUT/sweep.jsonl"
for n in "${CALLS[@]}"; do
  for kind in $RELAYS; do
    measure "$kind" "$kind-$n" "$n" sweep.jsonl
  done
done

if [ "$PRECONNECT" = 1 ]; then
  : >"$OUT/preconnect.jsonl"
  for delay in 0 "$REALTIME_DELAY_MS"; do
    sdelay=0
    [ "$delay" = 0 ] || sdelay=$STREAM_DELAY_MS
    for mode in preconnect no-preconnect; do
      flags=()
      [ "$mode" = no-preconnect ] && flags=(--no-preconnect)
      name=setup-$mode-$delay
      measure gateway "$name" "$PRECONNECT_CALLS" preconnect.jsonl "${flags[@]}" -- \
        --realtime-delay-ms "$delay" --stream-delay-ms "$sdelay"
    done
  done
fi

# ---- summary ----
{
  echo "## Sweep (${DURATION} s per call; relay on core $RELAY_CPU, load generator on core $LOADGEN_CPU)"
  echo
  echo "| calls | relay | failed | in p50 / p99 ms | out p50 / p99 ms | setup p50 ms | late frames | relay CPU % | CPU vs floor | relay CPU s (row) | of which after calls s | CPU s vs floor | RSS KiB/call | RSS vs floor | loadgen CPU % | other CPU % |"
  echo "|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  jq -rs '
    def n(x): if x == null then "-" else ((x * 100 | round) / 100 | tostring) end;
    def ratio(a; b): if a == null or b == null or b == 0 then "-" else n(a / b) + "x" end;
    (map(select(.label == "floor")) | map({key: (.calls | tostring), value: .}) | from_entries) as $floor
    | sort_by(.calls)[]
    | . as $r
    | ($floor[$r.calls | tostring]) as $f
    | "| \(.calls) | \(.label) | \(.failed) | \(n(.inbound.p50_ms)) / \(n(.inbound.p99_ms)) | \(n(.outbound.p50_ms)) / \(n(.outbound.p99_ms)) | \(n(.setup_ms.p50)) | \(.late_frames) | \(n(.gateway.cpu_pct)) | \(if .label == "floor" then "1x" else ratio(.gateway.cpu_pct; $f.gateway.cpu_pct) end) | \(n(.relay_cpu_s)) | \(n(.after_call_cpu_s)) | \(if .label == "floor" then "1x" else ratio(.relay_cpu_s; $f.relay_cpu_s) end) | \(n(.gateway.rss_per_call_kib)) | \(if .label == "floor" then "1x" else ratio(.gateway.rss_per_call_kib; $f.gateway.rss_per_call_kib) end) | \(n(.loadgen_cpu_pct)) | \(n(.other_cpu_pct)) |"
  ' "$OUT/sweep.jsonl"
  if [ -s "$OUT/preconnect.jsonl" ]; then
    echo
    echo "## Pre-connect (${PRECONNECT_CALLS} calls)"
    echo
    echo "| run | realtime handshake delay ms | Twilio stream delay ms | setup p50 ms | setup p99 ms | failed |"
    echo "|---|---:|---:|---:|---:|---:|"
    jq -rs --arg sd "$STREAM_DELAY_MS" '
      def n(x): if x == null then "-" else ((x * 100 | round) / 100 | tostring) end;
      .[] | (.run | capture("setup-(?<mode>.*)-(?<delay>[0-9]+)$")) as $m
      | "| \($m.mode) | \($m.delay) | \(if $m.delay == "0" then "0" else $sd end) | \(n(.setup_ms.p50)) | \(n(.setup_ms.p99)) | \(.failed) |"
    ' "$OUT/preconnect.jsonl"
  fi
} | tee "$OUT/summary.md"
log "results in $OUT"
