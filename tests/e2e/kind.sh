#!/usr/bin/env bash
# The whole flow on a real cluster, wherever Docker and kind exist:
#
#   1. a kind cluster from kind-config.yaml (deleted again on exit);
#   2. the image built from the Dockerfile and loaded into the cluster's nodes;
#   3. PostgreSQL with pgvector (the pgvector/pgvector image) as the shared database;
#   4. `helm install` of charts/switchboard with the database admin Secret;
#   5. the Realtime simulator (`sim realtime`, same image) as a Service;
#   6. examples/tenants/*.yaml applied: the cluster tenant (acme) pointed at the simulator
#      must become Ready; the laptop tenant (demo, secrets from env) must be refused with
#      Degraded/InvalidSpec;
#   7. a simulated call (`sim call`, same image) through acme's Service;
#   8. acme deleted: children gone, its schema kept (deletionPolicy Retain);
#      `helm uninstall` keeps the CRDs.
#
#   tests/e2e/kind.sh
#
# Without docker (and a running engine) or kind it prints why, then SKIPPED, and exits 0.
# Helm and kubectl come from scripts/helm.sh. The cluster's kubeconfig is a temporary file:
# your own kubeconfig is never touched.
#
# Environment:
#   KIND_CLUSTER       cluster name (default switchboard-e2e)
#   KIND_NODE_IMAGE    node image for `kind create cluster --image` (default: kind's own)
#   KEEP_CLUSTER=1     keep the cluster (and print its kubeconfig) instead of deleting it
#   E2E_IMAGE          image to build and load (default ghcr.io/switchboard-dev/switchboard:e2e)
#   PG_IMAGE           Postgres with pgvector (default pgvector/pgvector:pg18)
#   E2E_TIMEOUT        timeout of each wait (default 300s)
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${KIND_CLUSTER:-switchboard-e2e}"
IMAGE="${E2E_IMAGE:-ghcr.io/switchboard-dev/switchboard:e2e}"
PG_IMAGE="${PG_IMAGE:-pgvector/pgvector:pg18}"
TIMEOUT="${E2E_TIMEOUT:-300s}"
OPERATOR_NS=switchboard
DB_NS=switchboard-db
SIM_NS=switchboard-e2e
PG_PASSWORD="e2e-$RANDOM$RANDOM"
AUTH_TOKEN="e2e-twilio-auth-token"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "kind.sh: FAILED: $*" >&2; exit 1; }
skip() {
    echo "kind.sh: $*"
    echo "SKIPPED"
    exit 0
}

command -v docker >/dev/null 2>&1 || skip "docker is not installed"
docker info >/dev/null 2>&1 || skip "docker is installed but no Docker engine answers (docker info failed)"
command -v kind >/dev/null 2>&1 || skip "kind is not installed"

bin="$(scripts/helm.sh)"
export PATH="$bin:$PATH"

work="$(mktemp -d)"
export KUBECONFIG="$work/kubeconfig"
cleanup() {
    local status=$?
    if [ "$status" != 0 ]; then
        echo "kind.sh: state at failure:" >&2
        kubectl get vt -A -o wide >&2 || true
        kubectl get pods -A >&2 || true
        kubectl -n "$OPERATOR_NS" logs deploy/switchboard --tail=100 >&2 || true
    fi
    if [ "${KEEP_CLUSTER:-}" = 1 ]; then
        echo "kind.sh: keeping cluster $CLUSTER; KUBECONFIG=$KUBECONFIG" >&2
    else
        kind delete cluster --name "$CLUSTER" >&2 || true
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT

log "kind cluster $CLUSTER"
create=(kind create cluster --name "$CLUSTER" --config kind-config.yaml --kubeconfig "$KUBECONFIG" --wait 120s)
if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    create+=(--image "$KIND_NODE_IMAGE")
fi
"${create[@]}"
minor="$(kubectl version -o json | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | tail -n1)"
[ "${minor:-0}" -ge 33 ] || die "the cluster runs Kubernetes 1.${minor:-?}; the operator needs 1.33+ (set KIND_NODE_IMAGE)"

log "image $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "PostgreSQL with pgvector ($PG_IMAGE)"
kubectl create namespace "$DB_NS"
kubectl -n "$DB_NS" create secret generic postgres --from-literal=password="$PG_PASSWORD"
kubectl -n "$DB_NS" apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: postgres
spec:
  replicas: 1
  selector:
    matchLabels: {app: postgres}
  template:
    metadata:
      labels: {app: postgres}
    spec:
      containers:
        - name: postgres
          image: $PG_IMAGE
          env:
            - name: POSTGRES_PASSWORD
              valueFrom:
                secretKeyRef: {name: postgres, key: password}
          ports:
            - {name: postgres, containerPort: 5432}
          readinessProbe:
            exec:
              command: ["pg_isready", "-U", "postgres"]
            periodSeconds: 2
          volumeMounts:
            - {name: data, mountPath: /var/lib/postgresql}
      volumes:
        - name: data
          emptyDir: {}
---
apiVersion: v1
kind: Service
metadata:
  name: postgres
spec:
  selector: {app: postgres}
  ports:
    - {name: postgres, port: 5432, targetPort: postgres}
EOF
kubectl -n "$DB_NS" rollout status deploy/postgres --timeout="$TIMEOUT"
psql() { kubectl -n "$DB_NS" exec deploy/postgres -- psql -U postgres -v ON_ERROR_STOP=1 -tA "$@"; }
# pgvector for the knowledge bases; the operator's admin role is the superuser here (on
# RDS it is a role with CREATEROLE and membership of the tenant roles: docs/operations.md).
psql -c "CREATE EXTENSION IF NOT EXISTS vector"

log "helm install"
kubectl create namespace "$OPERATOR_NS"
# The throw-away Postgres above has no TLS: the gateways' cluster default is
# sslmode=verify-full, so the admin URL says sslmode=disable explicitly (the operator passes
# it on into each tenant's URL, where it wins over the default).
kubectl -n "$OPERATOR_NS" create secret generic switchboard-db-admin \
    --from-literal=url="postgres://postgres:$PG_PASSWORD@postgres.$DB_NS.svc:5432/postgres?sslmode=disable"
helm install switchboard charts/switchboard --namespace "$OPERATOR_NS" \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
    --set image.pullPolicy=Never \
    --set database.adminSecret.name=switchboard-db-admin --set database.adminSecret.key=url \
    --set logFormat=text \
    `# The simulated call comes from switchboard-sim and the Realtime simulator listens` \
    `# on 8081: the gateways' NetworkPolicy (ingress-nginx in, 443 out) would refuse both.` \
    --set gateway.networkPolicy.enabled=false \
    `# The Realtime simulator speaks plain ws:// inside the cluster; the tenant policy` \
    `# refuses ws:// unless the host is listed as insecure (wss:// only everywhere else).` \
    --set "tenantPolicy.realtimeInsecureHosts={realtime-sim.$SIM_NS.svc}" \
    --wait --timeout "$TIMEOUT"
kubectl -n "$OPERATOR_NS" rollout status deploy/switchboard --timeout="$TIMEOUT"
holder=""
for _ in $(seq 1 60); do
    holder="$(kubectl -n "$OPERATOR_NS" get lease switchboard -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)"
    [ -n "$holder" ] && break
    sleep 2
done
[ -n "$holder" ] || die "no operator replica took the Lease"
echo "leader: $holder" >&2

log "Realtime simulator"
kubectl create namespace "$SIM_NS"
kubectl -n "$SIM_NS" apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: realtime-sim
spec:
  replicas: 1
  selector:
    matchLabels: {app: realtime-sim}
  template:
    metadata:
      labels: {app: realtime-sim}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532}
      containers:
        - name: sim
          image: $IMAGE
          imagePullPolicy: Never
          command: ["sim", "realtime", "--listen", "0.0.0.0:8081"]
          ports:
            - {name: ws, containerPort: 8081}
---
apiVersion: v1
kind: Service
metadata:
  name: realtime-sim
spec:
  selector: {app: realtime-sim}
  ports:
    - {name: ws, port: 8081, targetPort: ws}
EOF
kubectl -n "$SIM_NS" rollout status deploy/realtime-sim --timeout="$TIMEOUT"
REALTIME_URL="ws://realtime-sim.$SIM_NS.svc:8081/v1/realtime"

log "tenants from examples/tenants"
# Every example is either a cluster tenant (secrets in Kubernetes Secrets: must become
# Ready) or a laptop tenant (secrets from env: the operator must refuse it, saying why).
for file in examples/tenants/*.yaml; do
    case "$(basename "$file")" in
        acme-cluster.yaml | demo.yaml) ;;
        *) die "$file is new: say here whether it is a cluster or a laptop tenant" ;;
    esac
done
# acme's manifest names these Secrets (the Twilio token, the OpenAI key); its database role
# is the operator's to provision (the admin URL stays in the operator's namespace).
kubectl create namespace acme
kubectl -n acme create secret generic acme-twilio --from-literal=auth-token="$AUTH_TOKEN"
kubectl -n acme create secret generic acme-openai --from-literal=api-key=sk-e2e-simulator
kubectl -n acme label secret acme-twilio acme-openai voice.switchboard.dev/usable=true
# The same manifest, with the Realtime simulator instead of OpenAI.
kubectl patch --local -f examples/tenants/acme-cluster.yaml --type merge -o yaml \
    -p "{\"spec\":{\"openai\":{\"realtimeUrl\":\"$REALTIME_URL\"}}}" | kubectl apply -f -
kubectl apply -n default -f examples/tenants/demo.yaml

kubectl -n acme wait vt/acme --for=condition=Ready --timeout="$TIMEOUT"
kubectl -n default wait vt/demo --for=condition=Degraded --timeout="$TIMEOUT"
reason="$(kubectl -n default get vt demo -o jsonpath='{.status.conditions[?(@.type=="Degraded")].reason}')"
[ "$reason" = InvalidSpec ] || die "demo is Degraded with reason '$reason', expected InvalidSpec"
kubectl get vt -A -o wide

log "a simulated call through acme's Service"
webhook="$(kubectl -n acme get vt acme -o jsonpath='{.status.webhookUrl}')"
account="$(kubectl -n acme get vt acme -o jsonpath='{.spec.twilio.accountSid}')"
number="$(kubectl -n acme get vt acme -o jsonpath='{.spec.phoneNumbers[0]}')"
[ -n "$webhook" ] || die "acme's status has no webhookUrl"
echo "webhook URL: $webhook" >&2
# The caller runs inside the cluster rather than through a port-forward: the gateway
# checks Twilio's signature against its public URL (the in-cluster Service URL, without a
# publicDomain), and the TwiML it answers points the media stream at that same host.
kubectl -n "$SIM_NS" run sim-call --image="$IMAGE" --image-pull-policy=Never \
    --restart=Never --rm -i --quiet \
    --env=TWILIO_AUTH_TOKEN="$AUTH_TOKEN" \
    --overrides='{"spec":{"securityContext":{"runAsNonRoot":true,"runAsUser":65532}}}' \
    --command -- sim call --gateway "${webhook%/twilio/voice}" --to "$number" \
    --account-sid "$account" --barge-in --dtmf 5 | tee "$work/call.txt"
grep -q "transcript" "$work/call.txt" || die "the call report has no transcript"

log "metrics through the API server's service proxy"
kubectl get --raw "/api/v1/namespaces/$OPERATOR_NS/services/switchboard-metrics:metrics/proxy/metrics" \
    | grep -E '^switchboard_operator_(reconciliations_total|leader)' || true
kubectl get --raw "/api/v1/namespaces/acme/services/acme-gateway:metrics/proxy/metrics" \
    | grep -E '^switchboard_calls_total' || die "acme's gateway counted no finished call"

log "delete acme (deletionPolicy Retain)"
left=""
schema="$(kubectl -n acme get vt acme -o jsonpath='{.status.database.schema}')"
kubectl -n acme delete vt acme --wait --timeout="$TIMEOUT"
for _ in $(seq 1 60); do
    left="$(kubectl -n acme get deploy,svc,configmap,serviceaccount,hpa,pdb \
        -l app.kubernetes.io/instance=acme -o name 2>/dev/null || true)"
    [ -z "$left" ] && break
    sleep 2
done
[ -z "$left" ] || die "acme's children outlived it: $left"
if [ -n "$schema" ]; then
    kept="$(psql -c "SELECT count(*) FROM information_schema.schemata WHERE schema_name = '$schema'")"
    [ "$kept" = 1 ] || die "schema $schema is gone although acme's deletionPolicy is Retain"
fi
kubectl -n default delete vt demo --wait --timeout="$TIMEOUT"

log "helm uninstall keeps the CRDs"
helm uninstall switchboard --namespace "$OPERATOR_NS" --wait --timeout "$TIMEOUT"
kubectl get crd voicetenants.voice.switchboard.dev knowledgebases.voice.switchboard.dev

echo "kind.sh: PASSED"
