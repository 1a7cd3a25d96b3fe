#!/usr/bin/env bash
# Heap profile of the gateway under `sim load`: heaptrack (Debian's `heaptrack` package)
# records every allocation; the allocation sites holding the most memory at the heap's
# peak go to $OUT/peaks.txt. heaptrack slows allocation down, so use fewer calls than
# bench/run.sh (200 keeps up on these machines). See docs/performance.md, "Recordings".
#
# Usage: bench/heap.sh GATEWAY_BIN SIM_BIN CALLS [DURATION] [NAME]
#   TENANT=examples/tenants/demo.yaml   e.g. bench/demo-recorded.yaml
set -u
GW=$1; SIM=$2; N=$3; D=${4:-20}; NAME=${5:-heap-$N}
RELAY_CPU=${RELAY_CPU:-0}; LOADGEN_CPU=${LOADGEN_CPU:-1}
TENANT=${TENANT:-examples/tenants/demo.yaml}
command -v heaptrack >/dev/null || { echo "heap.sh: needs heaptrack (apt-get install heaptrack)" >&2; exit 1; }
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/$NAME}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT
rm -f "$OUT"/gateway.zst
TWILIO_AUTH_TOKEN=bench-token OPENAI_API_KEY=sk-bench DEMO_API_KEY=bench-console-key-0123456789abcdef0123 \
  SWITCHBOARD_MAX_CONNECTIONS=20000 SWITCHBOARD_MAX_CONNECTIONS_PER_IP=20000 SWITCHBOARD_DRAIN_SECONDS=5 RUST_LOG=warn \
  taskset -c "$RELAY_CPU" heaptrack -o "$OUT/gateway" "$GW" --tenant "$TENANT" --listen 127.0.0.1:18380 \
  --realtime-url ws://127.0.0.1:18381/v1/realtime --max-calls 5000 --data-dir "$DATA" >"$OUT/gateway.log" 2>&1 &
HPID=$!
for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/18380) 2>/dev/null && break; sleep 0.1; done
# heaptrack runs the gateway as its child: signals go to the gateway itself.
GPID=$(pgrep -P "$HPID" -f "^$GW " | head -n1)
[ -n "$GPID" ] || { echo "heap.sh: gateway did not start (see $OUT/gateway.log)" >&2; kill "$HPID"; exit 1; }
ACC=$(sed -n 's/^[[:space:]]*accountSid:[[:space:]]*\([A-Za-z0-9]*\).*/\1/p' "$TENANT" | head -n1)
taskset -c "$LOADGEN_CPU" "$SIM" load --gateway http://127.0.0.1:18380 --to +15005550006 --account-sid "$ACC" \
  --auth-token bench-token --realtime-listen 127.0.0.1:18381 --calls "$N" --duration "$D" --pid "$GPID" \
  --label gateway >"$OUT/load.txt" 2>"$OUT/load.err"
kill -INT "$GPID"
wait "$HPID" 2>/dev/null
heaptrack_print -f "$OUT"/gateway.zst -p 1 -a 0 -T 0 -l 0 -n 30 -s 1 >"$OUT/peaks.txt" 2>/dev/null
grep -E '^peak heap memory consumption' "$OUT/peaks.txt"
grep -E 'peak memory consumed over' "$OUT/peaks.txt" | head -n 8
tail -n1 "$OUT/load.txt" | jq -c '{calls, failed, completed}'
