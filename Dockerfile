# Image of the velro-origin server.
#
#   docker build -t velro-origin .
#   docker run -p 8000:8000 -e DATABASE_URL=postgres://... -e JWT_SECRET=... velro-origin
#
# The dependencies are compiled in a layer of their own with cargo-chef: the
# planner stage reduces the workspace to a recipe (the manifests and Cargo.lock),
# and the builder compiles the dependencies from that recipe before it copies the
# source. A change to our code alone reuses the cached dependency layer.
#
# No Docker engine runs on the build machines, so tests/tests/deploy_files.rs
# checks this file by parsing it and starting the binary with its CMD.

# The locked dependencies need Rust 1.89 or newer (uuid 1.29 declares 1.89).
FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json -p velro-origin
COPY . .
RUN cargo build --release --locked -p velro-origin

# Same Debian release as the build image, so the binary runs against the glibc it was linked with.
# sqlx embeds the migrations in the binary, so nothing else is copied from the source.
FROM debian:bookworm-slim AS runtime

# curl runs the HEALTHCHECK below, because slim Debian ships no HTTP client.
# ca-certificates is the system trust store. Today's binary does not read it
# (reqwest bundles webpki-roots, and sqlx is built without TLS), but a TLS
# client for a managed Postgres or Redis that loads the system roots would.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid and gid, so volume ownership and "run as non-root" policies can name them.
# /app/data is DATA_DIR, the home of the SQLite fallback and the development JWT secret.
RUN groupadd --gid 10001 velro \
    && useradd --uid 10001 --gid velro --home-dir /app --no-create-home --shell /usr/sbin/nologin velro \
    && mkdir -p /app/data \
    && chown velro:velro /app/data
WORKDIR /app

COPY --from=builder /app/target/release/velro-origin /usr/local/bin/velro-origin

# Numeric, so a runtime that refuses root can verify the user without reading /etc/passwd.
USER 10001:10001

# The origin listens on 127.0.0.1 by default. In a container it must accept
# connections from outside, and Railway sets PORT for the deployment.
ENV HOST=0.0.0.0 PORT=8000 DATA_DIR=/app/data
EXPOSE 8000

# Liveness, not readiness: /health returns 200 whenever the process serves HTTP.
# Readiness (/health/ready) is what Railway checks before it sends traffic to a
# new deployment. A running container that is not ready, for example because a
# dependency is down, is not broken, and a restart would not help it.
# The shell form lets /bin/sh expand PORT when the check runs.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT}/health" || exit 1

CMD ["velro-origin", "serve"]
