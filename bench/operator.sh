#!/usr/bin/env bash
# Operator benchmark: N VoiceTenants from nothing to Ready.
#
# Out of process, release builds: `sim kubeapi` (the simulated Kubernetes API server,
# simulating the deployment controller), the `operator` binary with a kubeconfig
# pointing at it and the real Postgres of scripts/postgres.sh as its database admin
# connection (each tenant gets a role, a schema and the gateway's migrations).
#
# Reports: wall time from the first create to all N tenants Ready, the operator's API
# writes per tenant (from the server's write log), the operator's peak RSS (VmHWM), then
# an idle window with the periodic requeue shortened so that it runs several times in the
# window (writes must be 0), then the time to delete everything (deletionPolicy Delete:
# roles and schemas dropped, which also leaves the shared Postgres clean).
#
#   eval "$(scripts/postgres.sh start)"
#   bench/operator.sh                 # N=500 IDLE=60 REQUEUE=10 by default
#   N=100 IDLE=20 bench/operator.sh
set -euo pipefail

N=${N:-500}
IDLE=${IDLE:-60}
REQUEUE=${REQUEUE:-10}
CONCURRENCY=${CONCURRENCY:-16}
API_PORT=${API_PORT:-16443}
OP_PORT=${OP_PORT:-18091}
NS=bench

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/switchboard/target}
ADMIN=${SWITCHBOARD_TEST_PG:?"start Postgres first: eval \"\$(scripts/postgres.sh start)\""}

cargo build --release -q -p switchboard-sim -p switchboard-operator --bin sim --bin operator
BIN=$CARGO_TARGET_DIR/release

WORK=$(mktemp -d)
SIM_PID=""
OP_PID=""
cleanup() {
    [ -n "$OP_PID" ] && kill "$OP_PID" 2>/dev/null || true
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

API=http://127.0.0.1:$API_PORT
now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l | xargs printf '%.2f'; }
stat_of() { curl -sf "$API/_sim/stats" | jq -r ".$1"; }
# Writes in the server's log not sent by this script (curl).
operator_writes() { curl -sf "$API/_sim/writes" | jq '[.[] | select(.fieldManager | startswith("curl") | not)] | length'; }

"$BIN/sim" kubeapi --listen "127.0.0.1:$API_PORT" --history 100000 >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 100); do curl -sf "$API/_sim/stats" >/dev/null && break; sleep 0.1; done

cat >"$WORK/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: sim, cluster: {server: "$API"}}]
users: [{name: sim, user: {}}]
contexts: [{name: sim, context: {cluster: sim, user: sim, namespace: default}}]
current-context: sim
EOF

KUBECONFIG=$WORK/kubeconfig RUST_LOG=${RUST_LOG:-warn} "$BIN/operator" run \
    --listen "127.0.0.1:$OP_PORT" --leader-election false \
    --database-admin-url "$ADMIN" --requeue-seconds "$REQUEUE" \
    --concurrency "$CONCURRENCY" --log-format json >"$WORK/operator.log" 2>&1 &
OP_PID=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$OP_PORT/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$OP_PORT/readyz" >/dev/null || { echo "operator not ready"; tail "$WORK/operator.log"; exit 1; }

post() { # path body
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' "$API$1" -d "$2"
}
post "/api/v1/namespaces/$NS/secrets" "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"tenant-secrets\",\"namespace\":\"$NS\"},\"stringData\":{\"twilio-auth-token\":\"t\",\"openai-api-key\":\"sk\"}}"

tenant() { # index
    printf '{"apiVersion":"voice.switchboard.dev/v1alpha1","kind":"VoiceTenant","metadata":{"name":"t%04d","namespace":"%s"},"spec":{"displayName":"Tenant %d","phoneNumbers":["+1500555%04d"],"deletionPolicy":"Delete","twilio":{"accountSid":"ACe5b9b91d74144c1eab5502f239bd8ed9","authToken":{"secretKeyRef":{"name":"tenant-secrets","key":"twilio-auth-token"}}},"openai":{"apiKey":{"secretKeyRef":{"name":"tenant-secrets","key":"openai-api-key"}}}}}' "$1" "$NS" "$1" "$1"
}
export -f tenant post
export API NS

ready_count() {
    curl -sf "$API/apis/voice.switchboard.dev/v1alpha1/namespaces/$NS/voicetenants" |
        jq '[.items[] | select(.status.observedGeneration == .metadata.generation) | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))] | length'
}

echo "creating $N VoiceTenants (deletionPolicy Delete) against $API, operator concurrency $CONCURRENCY"
T0=$(now)
seq 1 "$N" | xargs -P 8 -I{} bash -c 'post "/apis/voice.switchboard.dev/v1alpha1/namespaces/$NS/voicetenants" "$(tenant {})"'
T_CREATED=$(now)
while :; do
    R=$(ready_count)
    [ "$R" -ge "$N" ] && break
    sleep 0.2
done
T1=$(now)
WRITES=$(operator_writes)
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$OP_PID/status")
echo "all $N Ready in $(elapsed "$T0" "$T1") s (creates took $(elapsed "$T0" "$T_CREATED") s)"
echo "operator API writes: $WRITES ($(echo "$WRITES / $N" | bc -l | xargs printf '%.2f') per tenant)"
curl -sf "$API/_sim/writes" | jq -r '[.[] | select(.fieldManager | startswith("curl") | not) | (.verb + " " + .resource + (if .subresource then "/" + .subresource else "" end))] | group_by(.) | map("  \(length)\t\(.[0])") | .[]'
echo "operator peak RSS (VmHWM): $((HWM / 1024)) MiB"

curl -sf -X POST "$API/_sim/reset" >/dev/null
RECONCILES0=$(curl -sf "http://127.0.0.1:$OP_PORT/metrics" | awk '/^switchboard_operator_reconciliations_total/ {print $2}')
echo "idle window: ${IDLE} s with the periodic requeue every ${REQUEUE} s"
sleep "$IDLE"
IDLE_WRITES=$(stat_of writes)
RECONCILES1=$(curl -sf "http://127.0.0.1:$OP_PORT/metrics" | awk '/^switchboard_operator_reconciliations_total/ {print $2}')
echo "idle: $IDLE_WRITES API writes, $((RECONCILES1 - RECONCILES0)) reconciles"
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$OP_PID/status")
echo "operator peak RSS after idle: $((HWM / 1024)) MiB"

echo "deleting all tenants (roles and schemas dropped by the finalizer)"
T2=$(now)
curl -sf -o /dev/null -X DELETE "$API/apis/voice.switchboard.dev/v1alpha1/namespaces/$NS/voicetenants"
while :; do
    LEFT=$(curl -sf "$API/apis/voice.switchboard.dev/v1alpha1/namespaces/$NS/voicetenants" | jq '.items | length')
    [ "$LEFT" -eq 0 ] && break
    sleep 0.2
done
echo "all deleted in $(elapsed "$T2" "$(now)") s"
FAILS=$(curl -sf "http://127.0.0.1:$OP_PORT/metrics" | awk '/^switchboard_operator_reconcile_failures_total/ {s += $2} END {print s + 0}')
echo "reconcile failures over the run: $FAILS"
