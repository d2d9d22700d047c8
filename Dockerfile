# syntax=docker/dockerfile:1
#
# flexgate container image.
#
#   docker build -t flexgate:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# Stage 1 compiles the dependencies alone, so that layer is reused until Cargo.toml or
# Cargo.lock change. Stage 2 compiles flexgate itself with the same release command CI
# runs (`cargo build --release --locked`; tests/deploy/check.sh keeps the two equal).
# Stage 3 is distroless: glibc, libgcc and CA certificates, no shell, no curl. The
# HEALTHCHECK therefore calls the binary itself (`flexgate healthcheck` probes /readyz).

ARG RUST_IMAGE=rust:1-slim-bookworm
# cc-debian12 carries glibc and libgcc_s, which the Rust binary links dynamically.
# Builder and runtime are both Debian 12, so the glibc versions match.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS builder
WORKDIR /build

# --- dependency layer -------------------------------------------------------------
# Only the manifest and the lockfile: the stub script gives the crate empty sources and
# drops explicitly declared bench/test/example targets, whose files are not here yet.
COPY Cargo.toml Cargo.lock ./
COPY deploy/docker/cargo-deps-stub.sh /usr/local/bin/cargo-deps-stub
RUN cargo-deps-stub \
    && cargo build --release --locked \
    && rm -rf src

# --- flexgate itself ----------------------------------------------------------------
# .dockerignore keeps target/, .git/, docs and deployment files out of this copy.
COPY . .
# COPY keeps the context's modification times, which can be older than the stub build;
# touching the crate roots makes cargo rebuild flexgate instead of reusing the stub.
RUN find src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked \
    && install -D -m 0755 target/release/flexgate /out/flexgate \
    && install -d -m 0750 /out/data

# --- runtime ------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="flexgate" \
      org.opencontainers.image.description="OpenAI-compatible gateway that routes latency-tolerant calls to the flex tier, absorbs 429s and exports Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/flexgate/flexgate" \
      org.opencontainers.image.documentation="https://github.com/flexgate/flexgate/blob/main/docs/deployment.md" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=builder /out/flexgate /usr/local/bin/flexgate
# The shipped default config. Kubernetes mounts its ConfigMap over /etc/flexgate and
# compose mounts deploy/compose/flexgate.toml over this file.
COPY config/flexgate.toml /etc/flexgate/flexgate.toml
ENV FLEXGATE_CONFIG=/etc/flexgate/flexgate.toml

# The embedded store (store.dir): the Files and Batches API's SQLite database and file
# contents. A volume, so batches outlive the container; created here owned by the
# non-root user, since distroless has no shell to make it at start-up.
COPY --from=builder --chown=65532:65532 /out/data /var/lib/flexgate
ENV FLEXGATE_DATA_DIR=/var/lib/flexgate
VOLUME ["/var/lib/flexgate"]

# 65532 is distroless's "nonroot" user. It is given as a number so that Kubernetes'
# runAsNonRoot can verify it without a runAsUser in the pod spec.
USER 65532:65532

# 8080: gateway (/v1, /flex/v1, and /healthz, /readyz, /metrics unless admin_listen is
# set); 9090: server.admin_listen when configured (the Kubernetes examples use it).
EXPOSE 8080 9090

# Probes http://127.0.0.1:8080/readyz and exits 0 on 200, 1 otherwise (503 while
# draining). With a different listen port, override: `flexgate healthcheck --url ...`.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/flexgate", "healthcheck"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/flexgate"]
CMD ["serve", "--config", "/etc/flexgate/flexgate.toml"]
