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
