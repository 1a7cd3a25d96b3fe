#!/usr/bin/env bash
# Admin API at scale (issue 15 §5; docs/performance.md, "Admin API at 1,000,000 calls"):
# fills a fresh Postgres database with N call records (default 1,000,000: bench/api-generate.sql),
# starts the gateway on it with the demo tenant, and times the API's requests over
# loopback: the list with each filter (first page and pages further down by cursor), one
# call with its transcript and tool calls, and a month of daily aggregates. Prints p50/p95/
# max per case (ms, curl's time_total: connect to last byte) and one JSON line per case.
#
#   bench/api.sh                  # 1,000,000 calls, 200 requests per case
#   bench/api.sh 100000 50        # smaller
#   KEEP=1 bench/api.sh           # reuse the database of the previous run (same N)
#   KEEP=1 CASES='one call' bench/api.sh   # only the cases whose name matches (bash regex)
#
# The last case, "console call page", drives headless Chromium (scripts/chromium.sh) through
# the console's browser test, built with the debug profile by cargo.
#
# Builds the gateway with the release profile unless GATEWAY_BIN is set. Postgres comes
# from scripts/postgres.sh (started if needed; never stopped here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

N=${1:-1000000}
REQUESTS=${2:-200}
PORT=${PORT:-18180}
DB=sb_bench_api
KEY=bench-console-key-0123456789abcdef0123456789
NOW_MS=1796083200000 # 2026-12-01T00:00:00Z: the newest generated call
DATA_DIR=$(mktemp -d /tmp/sb-bench-api.XXXXXX)

log() { printf '[api-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

eval "$(scripts/postgres.sh start)"
ADMIN_URL=$SWITCHBOARD_TEST_PG
URL=${ADMIN_URL%/*}/$DB
PSQL=(psql -X -q -v ON_ERROR_STOP=1)

if [ -z "${GATEWAY_BIN:-}" ]; then
  log "building the gateway (release)"
  cargo build --release -q -p switchboard-gateway >&2
  GATEWAY_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/gateway
fi

GW_PID=""
cleanup() {
  if [ -n "$GW_PID" ]; then kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT

start_gateway() {
  TWILIO_AUTH_TOKEN=bench-token OPENAI_API_KEY=sk-bench DEMO_API_KEY=$KEY \
    "$GATEWAY_BIN" --tenant examples/tenants/demo.yaml --listen "127.0.0.1:$PORT" \
    --data-dir "$DATA_DIR" --database-url "$URL" --no-preconnect \
    --api-requests-per-second 100000 --api-burst 100000 \
    >"$DATA_DIR/gateway.log" 2>&1 &
  GW_PID=$!
  local i
  for i in $(seq 1 1500); do # migrations on a full table build indexes first
    if curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "gateway did not become ready:"; tail -20 "$DATA_DIR/gateway.log" >&2; exit 1
}

have=$("${PSQL[@]}" -At "$ADMIN_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")
count=""
if [ -n "${KEEP:-}" ] && [ "$have" = 1 ]; then
  count=$("${PSQL[@]}" -At "$URL" -c "SELECT count(*) FROM calls" 2>/dev/null || true)
fi
if [ "$count" != "$N" ]; then
  log "creating database $DB"
  "${PSQL[@]}" "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
  start_gateway # runs the store's migrations: the benchmark measures the shipped schema
  log "generating $N calls"
  t0=$(date +%s)
  "${PSQL[@]}" "$URL" -v n="$N" -v tenant=demo -v now_ms="$NOW_MS" -f bench/api-generate.sql
  log "generated in $(( $(date +%s) - t0 )) s; $("${PSQL[@]}" -At "$URL" -c "SELECT pg_size_pretty(pg_database_size('$DB'))")"
else
  log "reusing $N calls in $DB"
  start_gateway # applies migrations newer than the database's
fi
# Statistics as autovacuum's ANALYZE leaves them in a running system (a migration that
# adds indexes or extended statistics to a full table is only fully used after one).
"${PSQL[@]}" "$URL" -c "ANALYZE calls"

API="http://127.0.0.1:$PORT/api/v1"
AUTH="Authorization: Bearer $KEY"

# Whether a case is measured (CASES: a bash regex on the case names; all when unset).
case_on() { [[ -z "${CASES:-}" || "$1" =~ $CASES ]]; }

# Times REQUESTS GETs of the URLs given on stdin (one per line, cycled); prints ms.
times() {
  mapfile -t urls
  local i
  for ((i = 0; i < REQUESTS; i++)); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "$AUTH" "${urls[i % ${#urls[@]}]}"
  done
}

report() { # name: reads "code seconds" lines; prints the summary and a JSON line
  sort -k2 -g | awk -v name="$1" '
    { code[NR] = $1; t[NR] = $2 * 1000; if ($1 != 200) bad++ }
    END {
      p50 = t[int((NR + 1) * 0.50)]; p95 = t[int(NR * 0.95 + 0.5)]; max = t[NR]
      printf "%-34s n=%-4d p50 %7.2f ms  p95 %7.2f ms  max %7.2f ms  non-200: %d\n", name, NR, p50, p95, max, bad
      printf "{\"bench\":\"api\",\"case\":\"%s\",\"n\":%d,\"p50_ms\":%.2f,\"p95_ms\":%.2f,\"max_ms\":%.2f,\"errors\":%d}\n", name, NR, p50, p95, max, bad + 0 > "/dev/stderr"
    }'
}

month_from=2026-11-01T00:00:00Z
month_until=2026-12-01T00:00:00Z
caller=$("${PSQL[@]}" -At "$URL" -c "SELECT from_number FROM calls WHERE tenant = 'demo' ORDER BY started_at_ms DESC LIMIT 1 OFFSET 5000")
rare_caller=+15550049999 # i*i mod 50000 never equals 49999: a number that never called
sids=$("${PSQL[@]}" -At "$URL" -c "SELECT call_sid FROM calls WHERE tenant = 'demo' ORDER BY md5(call_sid) LIMIT 200")

# Warm-up: one request of each kind (connection pool, statement cache).
curl -sf -o /dev/null -H "$AUTH" "$API/calls" && curl -sf -o /dev/null -H "$AUTH" "$API/stats/daily?since=2026-11-01&until=2026-11-30"

log "load average: $(cut -d' ' -f1-3 /proc/loadavg); $REQUESTS requests per case"
case_on "list, no filter" && echo "$API/calls" | times | report "list, no filter"
case_on "list, month + outcome" && echo "$API/calls?since=$month_from&until=$month_until&outcome=transferred" | times | report "list, month + outcome"
case_on "list, from (a caller's number)" && echo "$API/calls?from=${caller/+/%2B}" | times | report "list, from (a caller's number)"
case_on "list, from (never called: empty)" && echo "$API/calls?from=${rare_caller/+/%2B}" | times | report "list, from (never called: empty)"
case_on "list, to + min duration" && echo "$API/calls?to=%2B15005550007&min_duration_s=300" | times | report "list, to + min duration"
case_on "list, sentiment + success" && echo "$API/calls?sentiment=negative&success=false" | times | report "list, sentiment + success"
case_on "list, transferred, 100 a page" && echo "$API/calls?transferred=true&limit=100" | times | report "list, transferred, 100 a page"

# Pages further down: follow the cursor 20 pages, then time requests of the 20th page.
cursor=""
case_on "list, page 21 by cursor" && for _ in $(seq 1 20); do
  cursor=$(curl -sf -H "$AUTH" "$API/calls?limit=100${cursor:+&cursor=$cursor}" | jq -r '.next_cursor')
done
case_on "list, page 21 by cursor" && echo "$API/calls?limit=100&cursor=$cursor" | times | report "list, page 21 by cursor"

case_on "one call" && echo "$sids" | sed "s|^|$API/calls/|" | times | report "one call"
case_on "daily aggregates, a month" && echo "$API/stats/daily?since=2026-11-01&until=2026-11-30" | times | report "daily aggregates, a month"
case_on "daily aggregates, a year" && echo "$API/stats/daily?since=2025-12-01&until=2026-11-30" | times | report "daily aggregates, a year"

# The console's call page in headless Chromium (tests/tests/console_browser.rs,
# bench_console_call_page): 20 calls not read above, each page loaded once, navigation
# start to the page's `call-interactive` mark.
if case_on "console call page"; then
  export SWITCHBOARD_CHROMEDRIVER=${SWITCHBOARD_CHROMEDRIVER:-$(scripts/chromium.sh)}
  console_sids=$("${PSQL[@]}" -At "$URL" -c "SELECT call_sid FROM calls WHERE tenant = 'demo' ORDER BY md5(call_sid) DESC LIMIT 20" | paste -sd,)
  if SWITCHBOARD_BENCH_BASE="http://127.0.0.1:$PORT" SWITCHBOARD_BENCH_KEY=$KEY SWITCHBOARD_BENCH_SIDS=$console_sids \
    cargo test -q -p switchboard-tests --test console_browser bench_console_call_page -- --ignored --nocapture \
    >"$DATA_DIR/console.log" 2>&1; then
    grep 'console call page' "$DATA_DIR/console.log"
  else
    log "the console bench failed:"; grep -v "^ *[0-9]*: \\|^ *at " "$DATA_DIR/console.log" | tail -30 >&2; exit 1
  fi
fi
log "done"
