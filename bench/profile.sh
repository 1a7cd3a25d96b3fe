#!/usr/bin/env bash
# Flat CPU profile of the gateway under `sim load` (gateway on RELAY_CPU, load on
# LOADGEN_CPU): perf samples the gateway over the steady window and the report's top
# symbols go to $OUT/top.txt. See docs/performance.md, "Relay per-frame CPU".
#
# Usage: bench/profile.sh GATEWAY_BIN SIM_BIN CALLS [DURATION] [NAME]
# PERF_ARGS="-F 199 --call-graph dwarf" for call graphs (callers of a hot symbol:
# perf report -i OUT/perf.data --no-children -S SYMBOL -G).
set -u
GW=$1; SIM=$2; N=$3; D=${4:-30}; NAME=${5:-profile-$N}
RELAY_CPU=${RELAY_CPU:-0}; LOADGEN_CPU=${LOADGEN_CPU:-1}
TENANT=${TENANT:-examples/tenants/demo.yaml}
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/$NAME}; mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
DATA=$(mktemp -d)
TWILIO_AUTH_TOKEN=bench-token OPENAI_API_KEY=sk-bench DEMO_API_KEY=bench-console-key-0123456789abcdef0123 \
  SWITCHBOARD_MAX_CONNECTIONS=20000 SWITCHBOARD_MAX_CONNECTIONS_PER_IP=20000 SWITCHBOARD_DRAIN_SECONDS=5 RUST_LOG=warn \
  taskset -c "$RELAY_CPU" "$GW" --tenant "$TENANT" --listen 127.0.0.1:18280 \
  --realtime-url ws://127.0.0.1:18281/v1/realtime --max-calls 5000 --data-dir "$DATA" >"$OUT/gateway.log" 2>&1 &
GPID=$!
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/18280) 2>/dev/null && break; sleep 0.1; done
ACC=$(sed -n 's/^[[:space:]]*accountSid:[[:space:]]*\([A-Za-z0-9]*\).*/\1/p' "$TENANT" | head -n1)
taskset -c "$LOADGEN_CPU" "$SIM" load --gateway http://127.0.0.1:18280 --to +15005550006 --account-sid "$ACC" \
  --auth-token bench-token --realtime-listen 127.0.0.1:18281 --calls "$N" --duration "$D" --pid "$GPID" \
  --label gateway >"$OUT/load.txt" 2>"$OUT/load.err" &
LPID=$!
RAMP=$((N / 50)); [ "$RAMP" -gt 10 ] && RAMP=10
sleep $((RAMP + 3))
perf record ${PERF_ARGS:--F 999} -p "$GPID" -o "$OUT/perf.data" -- sleep $((D - RAMP - 6)) 2>"$OUT/perf.err"
wait "$LPID"
kill "$GPID"; wait "$GPID" 2>/dev/null
rm -rf "$DATA"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -5
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 >"$OUT/top.txt"
tail -n1 "$OUT/load.txt" | jq -c '{calls, failed, cpu: .gateway.cpu_pct, loadgen: .loadgen_cpu_pct, other: .other_cpu_pct}'
