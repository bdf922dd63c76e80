# Sourced by scripts/docker-test-image.sh, docker-app-image.sh and
# docker-rehearse-image.sh (after they define `say`): SUDO, how to run a
# command as root (nothing as root, sudo when it needs no password, else
# `false`); a fresh root for debootstrap, removed on exit; and `quietly`,
# which runs a step with its output in a log shown only when the step fails.

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo)
else
  SUDO=(false)
fi

# make_root PREFIX: sets ROOT (a new dir under /tmp) and LOG.
make_root() {
  ROOT="$(mktemp -d "/tmp/$1-XXXXXX")"
  LOG="$ROOT.log"
  trap '"${SUDO[@]}" rm -rf "$ROOT" "$LOG"' EXIT
  # mktemp makes the dir 0700; it becomes the image's /, which every user must traverse.
  chmod 755 "$ROOT"
}

quietly() {
  if ! "$@" >>"$LOG" 2>&1; then
    say "failed: $*; its output ends with:"
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}

# debian_root PREFIX SUITE MIRROR PACKAGE...: make_root, debootstrap SUITE
# into it, then install the packages with Debian's PostgreSQL kept from
# creating or starting a `main` cluster (the entrypoint makes the one the
# container needs, and nothing may start in the chroot); apt's lists, docs
# and man pages removed.
debian_root() {
  local prefix="$1" suite="$2" mirror="$3"
  shift 3
  make_root "$prefix"
  quietly "${SUDO[@]}" debootstrap --variant=minbase "$suite" "$ROOT" "$mirror"
  "${SUDO[@]}" mkdir -p "$ROOT/etc/postgresql-common/createcluster.d"
  echo "create_main_cluster = false" | "${SUDO[@]}" tee "$ROOT/etc/postgresql-common/createcluster.d/rehearse.conf" >/dev/null
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$ROOT/usr/sbin/policy-rc.d" >/dev/null
  "${SUDO[@]}" chmod 755 "$ROOT/usr/sbin/policy-rc.d"
  quietly "${SUDO[@]}" chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "$@"
  quietly "${SUDO[@]}" chroot "$ROOT" apt-get clean
  "${SUDO[@]}" rm -rf "$ROOT/var/lib/apt/lists/"* "$ROOT/usr/sbin/policy-rc.d" "$ROOT/usr/share/doc" "$ROOT/usr/share/man"
}
