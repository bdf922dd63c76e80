# rehearse as a container image: rehearse, PostgreSQL 15's server and client
# binaries (the local backend runs the throwaway server inside the
# container, on a unix socket and loopback only), and Python 3 with Alembic
# and psycopg2 for Alembic projects. docs/kubernetes.md says how to run it.
#
#   docker run --rm --user "$(id -u):$(id -g)" \
#     -v "$PWD/snapshots:/dump:ro" -v "$PWD/scenarios:/scenario:ro" -v "$PWD/reports/image-demo:/reports" \
#     rehearse:0.1.0 run /scenario/image-demo.yaml
#
# Two targets, two ways to get the binary in:
#
#   source     The default (the last stage): compiles rehearse in a Rust image
#              with `cargo build --release --locked`, for a machine that can
#              pull rust:1-bookworm and debian:bookworm-slim:
#                docker build --build-arg VERSION=0.1.0 -t rehearse:0.1.0 .
#              It needs BuildKit (Docker's default builder since 23.0, or
#              DOCKER_BUILDKIT=1): the legacy builder builds every stage up
#              to the target, `prebuilt` too, whose binary is not there.
#   prebuilt   Copies target/release/rehearse, built on the host by
#              `cargo build --release --locked`. `make image` builds this one
#              (scripts/docker-rehearse-image.sh), because the machines this
#              project builds on have no image registry: no Rust image can be
#              pulled and no toolchain fetched inside a build, so the binary
#              comes from the host's toolchain and BASE is a local image made
#              from Debian's packages with debootstrap. The binary links
#              glibc dynamically; it runs here because the host is Debian 12
#              (bookworm) like the base: build it on bookworm, or a system
#              with an older glibc.
#
# The runtime stage installs its packages only when BASE lacks them, so the
# same lines serve debian:bookworm-slim (apt-get, online) and the local base
# (everything already there, nothing fetched). Both builders handle this file:
# `make image` uses BuildKit when `docker buildx` is there, else the legacy
# builder of Docker 20.10, which has ARG before FROM and multi-stage builds.

ARG BASE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1-bookworm

FROM ${BASE} AS runtime
ARG BASE
ARG PG_MAJOR=15
ARG VERSION=dev
# Debian's postgresql package would create and start a `main` cluster:
# rehearse makes its own throwaway one. tini is PID 1 (see ENTRYPOINT);
# libnss-wrapper gives an arbitrary `--user` uid a passwd entry, which initdb
# and the server insist on (rehearse-entrypoint.sh).
RUN set -eu; \
    mkdir -p /etc/postgresql-common/createcluster.d; \
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/rehearse.conf; \
    missing=""; \
    for p in postgresql-$PG_MAJOR python3-alembic python3-psycopg2 tini libnss-wrapper; do \
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed$' || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --uid 10001 --user-group --create-home --home-dir /home/rehearse rehearse; \
    mkdir -p /dump /scenario /reports /cache; \
    chown 10001:10001 /reports /cache
COPY scripts/rehearse-entrypoint.sh /usr/local/bin/rehearse-entrypoint
COPY scripts/rehearse-nightly.sh /usr/local/bin/rehearse-nightly
# The volumes, by convention (not VOLUME: a declared volume is an anonymous
# volume left behind by every run without --rm, and no derived image can
# undo it): /dump the dump (read-only), /scenario the scenario and its
# migrations (read-only), /reports the report files, /cache the snapshot
# cache. The cache is a directory rehearse makes inside /cache, because it
# makes its cache private (0700) and only a directory's owner may: a
# Kubernetes volume's root belongs to root, with the pod's fsGroup.
# WORKDIR / makes a scenario without report.dir write to /reports/<name>
# (its default is reports/<name> under the current directory).
ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    REHEARSE_CACHE_DIR=/cache/snapshots \
    REHEARSE_REPORTS=/reports
WORKDIR /
LABEL org.opencontainers.image.title="rehearse" \
      org.opencontainers.image.description="Rehearses PostgreSQL schema migrations on a throwaway copy of production and reports their runtime, locks and WAL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE}"
# A numeric user, so that Kubernetes' runAsNonRoot can check it. initdb
# refuses root anyway; run as root (`--user 0`), rehearse runs the server as
# the `postgres` user the package made.
USER 10001:10001
# tini is PID 1: it forwards `docker stop`'s SIGTERM to rehearse (whose
# supervisor cancels the migration, stops the throwaway server and removes
# it, then exits 130, which tini exits with), and it reaps what pg_ctl
# leaves to PID 1 (the server's postmaster, once pg_ctl has detached it).
# -s: still a subreaper when something else is PID 1 (`docker run --init`,
# a pod sharing its process namespace).
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "/usr/local/bin/rehearse-entrypoint"]
CMD ["--help"]

# `make image`: the host's binary.
FROM runtime AS prebuilt
COPY target/release/rehearse /usr/local/bin/rehearse

# The binary built from source, for machines that can pull a Rust image.
FROM ${RUST_IMAGE} AS build
# pg_query generates its bindings with libclang.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM runtime AS source
COPY --from=build /src/target/release/rehearse /usr/local/bin/rehearse
