#!/usr/bin/env bash
# Builds the app image the demo Job and the tests run migrations in, on a
# machine with no image registry: Debian's own Alembic (python3-alembic,
# with Debian's SQLAlchemy) and psycopg2 (python3-psycopg2), a non-root
# `app` user (uid 10001, as a Kubernetes securityContext would ask), and the
# app's migration trees baked in, as an app image carries them:
#
#   /app                          scenarios/alembic-demo (the demo's Alembic project)
#   /fixtures/alembic_dburl       tests/fixtures/alembic_dburl and alembic_versions
#   /fixtures/alembic_versions    (the tests' tree: a branch, a merge, a failing revision)
#   /fixtures/alembic_common      what the fixtures' env.py files share (fixture_env.py)
#   /fixtures/alembic_race        tests/fixtures/alembic_race (racing replicas)
#
# WORKDIR /app, ENTRYPOINT ["alembic"], CMD ["upgrade", "head"]. The Docker
# engine is scripts/docker-test-image.sh's (run it first; make does).
# Idempotent: an image whose trees match the repository's is left alone; one
# whose trees changed gets the new ones as a layer on top (seconds).
#
# Usage: scripts/docker-app-image.sh [IMAGE]   (default: $REHEARSE_APP_IMAGE or rehearse-app:demo)
set -euo pipefail

IMAGE="${1:-${REHEARSE_APP_IMAGE:-rehearse-app:demo}}"
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
REPO="$(cd "$(dirname "$0")/.." && pwd)"
LABEL=rehearse.app-trees

say() { echo "docker-app-image: $*" >&2; }

# shellcheck source=scripts/image-root.sh
source "$(dirname "$0")/image-root.sh"
if [ "${SUDO[0]:-}" = false ]; then
  say "building the app image needs root or passwordless sudo (debootstrap)"
  exit 1
fi

if ! docker info >/dev/null 2>&1; then
  say "no Docker engine answers: run scripts/docker-test-image.sh first (it installs and starts one)"
  exit 1
fi

# The trees, as a tar stream laid out as in the image, and its digest.
trees() {
  tar -C "$REPO" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    --exclude=__pycache__ \
    --transform 's,^scenarios/alembic-demo,app,' \
    --transform 's,^tests/fixtures/,fixtures/,' \
    -cf - scenarios/alembic-demo tests/fixtures/alembic_common tests/fixtures/alembic_dburl tests/fixtures/alembic_versions \
    tests/fixtures/alembic_race
}
DIGEST="$(trees | sha256sum | cut -c1-16)"

put_trees() { # container id
  local id="$1" dir
  dir="$(mktemp -d)"
  trees | tar -C "$dir" -xf -
  docker cp "$dir/." "$id:/"
  rm -rf "$dir"
}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  if [ "$(docker image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE")" = "$DIGEST" ]; then
    exit 0
  fi
  say "updating the migration trees in $IMAGE"
  # The old trees go first: a file the repository no longer has (a revision
  # removed) would otherwise stay in the image's tree and change its history.
  id="$(docker create --user 0 --entrypoint /bin/rm "$IMAGE" -rf /app /fixtures)"
  docker start --attach "$id" >/dev/null
  put_trees "$id"
  # The container's --user, --entrypoint and command would be committed as the image's: set them back.
  docker commit --change "LABEL $LABEL=$DIGEST" --change 'USER 10001' --change 'ENTRYPOINT ["alembic"]' \
    --change 'CMD ["upgrade", "head"]' "$id" "$IMAGE" >/dev/null
  docker rm "$id" >/dev/null
  exit 0
fi

command -v debootstrap >/dev/null 2>&1 || { say "installing debootstrap"; "${SUDO[@]}" apt-get install -y -qq debootstrap >/dev/null; }
say "building $IMAGE from Debian $SUITE's python3-alembic and python3-psycopg2 (about a minute)"
make_root rehearse-app-image
quietly "${SUDO[@]}" debootstrap --variant=minbase --include=python3-alembic,python3-psycopg2 "$SUITE" "$ROOT" "$MIRROR"
quietly "${SUDO[@]}" chroot "$ROOT" useradd --uid 10001 --user-group --no-create-home --home-dir /app app
quietly "${SUDO[@]}" chroot "$ROOT" apt-get clean
"${SUDO[@]}" rm -rf "$ROOT/var/lib/apt/lists/"* "$ROOT/usr/share/doc" "$ROOT/usr/share/man"
trees | "${SUDO[@]}" tar -C "$ROOT" -xf -

"${SUDO[@]}" tar -C "$ROOT" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'ENV PYTHONDONTWRITEBYTECODE=1' \
  -c 'WORKDIR /app' \
  -c 'USER 10001' \
  -c "LABEL $LABEL=$DIGEST" \
  -c 'ENTRYPOINT ["alembic"]' \
  -c 'CMD ["upgrade", "head"]' \
  -m "rehearse app image: Debian $SUITE's Alembic and psycopg2, the demo's migration trees" \
  - "$IMAGE" >/dev/null
say "built $IMAGE"
