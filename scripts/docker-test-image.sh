#!/usr/bin/env bash
# Makes the docker backend testable on a machine with no Docker engine
# running and no image registry (CI): installs Docker from Debian
# (docker.io) when the CLI or daemon is missing, starts dockerd in the
# background when `docker info` fails, and builds a local PostgreSQL image,
# rehearse-postgres:15 by default, from Debian's own packages when it is not
# there yet. Idempotent: each step is skipped when its result exists.
#
# The image honours the official postgres image's contract, so rehearse
# treats it exactly like postgres:15: POSTGRES_PASSWORD, POSTGRES_USER and
# POSTGRES_DB; extra arguments (`-c name=value`) passed through to the
# server; initdb on first start as the postgres user, with a temporary
# socket-only server to create POSTGRES_DB (so, like the official image, it
# logs "database system is ready to accept connections" twice on a fresh
# data dir); the final server listens on all addresses inside the container.
#
# Usage: scripts/docker-test-image.sh [IMAGE]   (default: $REHEARSE_TEST_IMAGE or rehearse-postgres:15)
set -euo pipefail

IMAGE="${1:-${REHEARSE_TEST_IMAGE:-rehearse-postgres:15}}"
PG_MAJOR=15
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/rehearse-dockerd.log}"

say() { echo "docker-test-image: $*" >&2; }

# shellcheck source=scripts/image-root.sh
source "$(dirname "$0")/image-root.sh"

apt_install() {
  if [ "${SUDO[0]:-}" = false ]; then
    say "missing $*; install them with: sudo apt-get install -y $*"
    exit 1
  fi
  say "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. The Docker CLI and engine.
if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
  if ! docker info >/dev/null 2>&1; then
    apt_install docker.io
  fi
fi

# 2. A running engine. A machine without systemd (a CI container) never
# starts the docker.io service, so start dockerd ourselves, detached in its
# own session so it outlives this script and `make`.
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (log: $DOCKERD_LOG)"
  "${SUDO[@]}" mkdir -p "$(dirname "$DOCKERD_LOG")"
  "${SUDO[@]}" setsid sh -c "exec dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null" &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    say "dockerd did not come up within 60s; its log ends with:"
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    exit 1
  fi
fi

# 3. The image. One built from an older entrypoint gets the current one as
# a layer on top (a container, docker cp, docker commit: seconds, not a rebuild).
ENTRYPOINT_SRC="$(dirname "$0")/docker-entrypoint.sh"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  if docker run --rm --entrypoint cat "$IMAGE" /usr/local/bin/docker-entrypoint.sh | cmp -s - "$ENTRYPOINT_SRC"; then
    exit 0
  fi
  say "updating the entrypoint of $IMAGE"
  chmod 755 "$ENTRYPOINT_SRC"
  id="$(docker create "$IMAGE")"
  docker cp "$ENTRYPOINT_SRC" "$id:/usr/local/bin/docker-entrypoint.sh"
  docker commit "$id" "$IMAGE" >/dev/null
  docker rm "$id" >/dev/null
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
say "building $IMAGE from Debian $SUITE's postgresql-$PG_MAJOR (about a minute)"
debian_root rehearse-image "$SUITE" "$MIRROR" "postgresql-$PG_MAJOR"

"${SUDO[@]}" install -m 755 "$ENTRYPOINT_SRC" "$ROOT/usr/local/bin/docker-entrypoint.sh"

PATH_IN_IMAGE="/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"${SUDO[@]}" tar -C "$ROOT" -c . | docker import \
  -c "ENV PATH=$PATH_IN_IMAGE" \
  -c 'ENV PGDATA=/var/lib/postgresql/data' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'EXPOSE 5432' \
  -c 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
  -c 'CMD ["postgres"]' \
  -m "rehearse test image: Debian $SUITE postgresql-$PG_MAJOR with the official image's entrypoint contract" \
  - "$IMAGE" >/dev/null
say "built $IMAGE"
