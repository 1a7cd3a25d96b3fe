#!/usr/bin/env bash
# Same-window CPU ratio of the gateway to the floor on a busy machine: both relays run at
# the same time on one core (RELAY_CPU), each driven by its own `sim load` on the other
# (LOADGEN_CPU), so whatever else runs on the machine weighs on both alike. Prints both
# relays' CPU (% of a core over each load generator's steady window) and their ratio.
# See docs/performance.md, "Relay per-frame CPU".
#
# B_TENANT=bench/demo-recorded.yaml: the second relay is the same gateway serving that
# tenant instead of the floor (with TENANT=bench/demo-unrecorded.yaml: the recorded ÷
# unrecorded ratio in one window; docs/performance.md, "Recordings").
#
# Usage: bench/pair.sh GATEWAY_BIN SIM_BIN CALLS [DURATION] [NAME]
set -u
GW=$1; SIM=$2; N=$3; D=${4:-20}; NAME=${5:-pair-$N}
RELAY_CPU=${RELAY_CPU:-0}; LOADGEN_CPU=${LOADGEN_CPU:-1}
TENANT=${TENANT:-examples/tenants/demo.yaml}
B_TENANT=${B_TENANT:-}
cd "$(dirname "$0")/.."
# The ports of a previous run must be free (a stopping gateway drains first).
for _ in $(seq 1 30); do ss -ltn | grep -qE ":18(38|39)[01] " || break; sleep 1; done
OUT=${OUT:-bench/results/$NAME}; mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
DATA=$(mktemp -d)
ACC=$(sed -n 's/^[[:space:]]*accountSid:[[:space:]]*\([A-Za-z0-9]*\).*/\1/p' "$TENANT" | head -n1)
gateway() { # tenant port data-dir log: a gateway on RELAY_CPU, its Realtime API on port + 1
  TWILIO_AUTH_TOKEN=bench-token OPENAI_API_KEY=sk-bench DEMO_API_KEY=bench-console-key-0123456789abcdef0123 \
    SWITCHBOARD_MAX_CONNECTIONS=20000 SWITCHBOARD_MAX_CONNECTIONS_PER_IP=20000 SWITCHBOARD_DRAIN_SECONDS=5 RUST_LOG=warn \
    taskset -c "$RELAY_CPU" "$GW" --tenant "$1" --listen "127.0.0.1:$2" \
    --realtime-url "ws://127.0.0.1:$(($2 + 1))/v1/realtime" --max-calls 5000 --data-dir "$3" >"$4" 2>&1 &
}
gateway "$TENANT" 18380 "$DATA" "$OUT/gateway.log"
GPID=$!
DATA_B=$(mktemp -d)
if [ -n "$B_TENANT" ]; then
  B=gateway-b
  gateway "$B_TENANT" 18390 "$DATA_B" "$OUT/$B.log"
else
  B=floor
  taskset -c "$RELAY_CPU" "$SIM" floor --listen 127.0.0.1:18390 --realtime-url ws://127.0.0.1:18391/v1/realtime >"$OUT/floor.log" 2>&1 &
fi
FPID=$!
for p in 18380 18390; do for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done; done
load() { # port pid label
  taskset -c "$LOADGEN_CPU" "$SIM" load --gateway "http://127.0.0.1:$1" --to +15005550006 --account-sid "$ACC" \
    --auth-token bench-token --realtime-listen "127.0.0.1:$(($1 + 1))" --calls "$N" --duration "$D" --pid "$2" \
    --label "$3" >"$OUT/$3.txt" 2>"$OUT/$3.err"
}
load 18380 "$GPID" gateway & L1=$!
load 18390 "$FPID" "$B" & L2=$!
wait "$L1" "$L2"
kill "$GPID" "$FPID"; wait "$GPID" "$FPID" 2>/dev/null
rm -rf "$DATA" "$DATA_B"
g=$(tail -n1 "$OUT/gateway.txt" | jq -r '.gateway.cpu_pct'); f=$(tail -n1 "$OUT/$B.txt" | jq -r '.gateway.cpu_pct')
row() { tail -n1 "$OUT/$1.txt" | jq -r '"late=\(.late_frames) failed=\(.failed) p99in=\(.inbound.p99_ms) other=\(.other_cpu_pct)"'; }
rss() { tail -n1 "$OUT/$1.txt" | jq -r '.gateway.rss_per_call_kib'; }
if [ "$B" = floor ]; then
  echo "$NAME gateway=$g floor=$f ratio=$(echo "scale=3; $g/$f" | bc) | gateway $(row gateway) | floor $(row floor) | load $(cut -d' ' -f1-3 /proc/loadavg)"
else
  echo "$NAME gateway=$g gateway-b=$f b/a=$(echo "scale=3; $f/$g" | bc) rss_kib_per_call=$(rss gateway)/$(rss "$B") | gateway $(row gateway) | gateway-b $(row "$B") | load $(cut -d' ' -f1-3 /proc/loadavg)"
fi
