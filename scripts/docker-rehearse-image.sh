#!/usr/bin/env bash
# Builds rehearse's own image, rehearse:<version> (the Dockerfile's `prebuilt`
# target), on a machine with no image registry:
#
#   1. the base, rehearse-base:bookworm-pg15, when missing or made from
#      another package list: a debootstrap root of Debian bookworm with
#      postgresql-15, python3-alembic, python3-psycopg2, tini and
#      libnss-wrapper, imported with `docker import`, as the test and app
#      images are (scripts/docker-test-image.sh, scripts/docker-app-image.sh);
#   2. the image: `docker build --target prebuilt` FROM that base, with the
#      host's target/release/rehearse (`cargo build --release --locked`;
#      make image runs it first).
#
# Idempotent: the image carries a digest of what it is made of (the binary,
# the Dockerfile, .dockerignore, the two scripts it copies, the base's id,
# the version) in the label rehearse.image-inputs, and is left alone when
# that matches. The Docker engine is scripts/docker-test-image.sh's.
#
# Usage: scripts/docker-rehearse-image.sh [IMAGE]   (default: $REHEARSE_IMAGE or rehearse:<version in Cargo.toml>)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml" | head -n 1)"
IMAGE="${1:-${REHEARSE_IMAGE:-rehearse:$VERSION}}"
BASE="${REHEARSE_BASE_IMAGE:-rehearse-base:bookworm-pg15}"
PACKAGES=(postgresql-15 python3-alembic python3-psycopg2 tini libnss-wrapper)
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
BINARY="$REPO/target/release/rehearse"

say() { echo "docker-rehearse-image: $*" >&2; }

# shellcheck source=scripts/image-root.sh
source "$(dirname "$0")/image-root.sh"

if ! docker info >/dev/null 2>&1; then
  say "no Docker engine answers: run scripts/docker-test-image.sh first (it installs and starts one)"
  exit 1
fi
if [ ! -x "$BINARY" ]; then
  say "no $BINARY: build it with \`cargo build --release --locked\` (make image does)"
  exit 1
fi

# 1. The base.
BASE_LABEL=rehearse.base-packages
BASE_DIGEST="$(echo "$SUITE ${PACKAGES[*]}" | sha256sum | cut -c1-16)"
if [ "$(docker image inspect --format "{{index .Config.Labels \"$BASE_LABEL\"}}" "$BASE" 2>/dev/null)" != "$BASE_DIGEST" ]; then
  if [ "${SUDO[0]:-}" = false ]; then
    say "building the base image needs root or passwordless sudo (debootstrap)"
    exit 1
  fi
  command -v debootstrap >/dev/null 2>&1 || { say "installing debootstrap"; "${SUDO[@]}" apt-get install -y -qq debootstrap >/dev/null; }
  say "building $BASE from Debian $SUITE's ${PACKAGES[*]} (about two minutes)"
  debian_root rehearse-base-image "$SUITE" "$MIRROR" "${PACKAGES[@]}"
  "${SUDO[@]}" tar -C "$ROOT" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c "LABEL $BASE_LABEL=$BASE_DIGEST" \
    -c 'CMD ["/bin/bash"]' \
    -m "rehearse base image: Debian $SUITE with ${PACKAGES[*]}" \
    - "$BASE" >/dev/null
  "${SUDO[@]}" rm -rf "$ROOT" "$LOG"
  trap - EXIT
  say "built $BASE"
fi

# 2. The image.
LABEL=rehearse.image-inputs
DIGEST="$(
  {
    cd "$REPO"
    sha256sum target/release/rehearse Dockerfile .dockerignore scripts/rehearse-entrypoint.sh scripts/rehearse-nightly.sh
    docker image inspect --format '{{.Id}}' "$BASE"
    echo "$VERSION"
  } | sha256sum | cut -c1-16
)"
if [ "$(docker image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null)" = "$DIGEST" ]; then
  exit 0
fi
# Docker's CLI since 23.0 builds with BuildKit through the buildx plugin and
# refuses DOCKER_BUILDKIT=1 without it; the legacy builder needs no plugin.
if ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
fi
say "building $IMAGE (target prebuilt, FROM $BASE)"
OLD_ID="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
BUILD_LOG="$(mktemp)"
trap 'rm -f "$BUILD_LOG"' EXIT
if ! docker build --target prebuilt \
  --build-arg "BASE=$BASE" --build-arg "VERSION=$VERSION" \
  --label "$LABEL=$DIGEST" --tag "$IMAGE" "$REPO" >"$BUILD_LOG" 2>&1; then
  say "docker build failed; its output ends with:"
  tail -n 30 "$BUILD_LOG" >&2
  exit 1
fi
# The image this one replaces, now untagged: removed unless something still uses it.
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$(docker image inspect --format '{{.Id}}' "$IMAGE")" ]; then
  docker image rm "$OLD_ID" >/dev/null 2>&1 || true
fi
say "built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=si)B)"
