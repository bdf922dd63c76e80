#!/usr/bin/env bash
# Installs what rehearse needs to build and run on Debian/Ubuntu, when it is
# missing: PostgreSQL server binaries (initdb, pg_ctl, pg_restore, psql,
# pg_dump, pg_basebackup and the pg_stat_statements module), libclang and clang's builtin
# headers (the pg_query crate generates bindings with bindgen), a C
# compiler, pkg-config, git, and Python's venv (Alembic runs from a venv).
# Runs apt-get as root or through passwordless sudo; otherwise prints the
# command to run. Idempotent: does nothing when everything is there.
#
#   scripts/deps.sh                   install what is missing, then make .venv
#   scripts/deps.sh --print-missing   print the Debian packages that would be
#                                     installed, one per line, and change nothing
#
# Each probe looks for what is used later, not for something that merely
# looks like it: a probe once matched libclang-cpp.so.14 (a different
# library, which libclang-cpp14 installs on its own), skipped libclang-dev,
# and the build then failed with "Unable to find libclang".
# REHEARSE_DEPS_ROOT (default: /) is where the file probes look, so the
# probes themselves can be tested against a made-up tree (tests/install_probes.rs).
set -euo pipefail

ROOT="${REHEARSE_DEPS_ROOT:-}"
ROOT="${ROOT%/}"

# Is any of these globs (under ROOT) an existing file?
any_file() {
  local pattern f
  for pattern in "$@"; do
    for f in $ROOT$pattern; do
      [ -e "$f" ] && return 0
    done
  done
  return 1
}

# The server tools rehearse runs and the observation module it preloads, in
# one Debian-style install (/usr/lib/postgresql/N), or the tools on PATH.
have_pg() {
  local dir ok tool
  for dir in $ROOT/usr/lib/postgresql/*; do
    ok=yes
    for tool in initdb pg_ctl pg_restore psql pg_dump pg_basebackup; do
      [ -x "$dir/bin/$tool" ] || ok=no
    done
    [ -e "$dir/lib/pg_stat_statements.so" ] || ok=no
    [ "$ok" = yes ] && return 0
  done
  [ -n "$ROOT" ] && return 1
  for tool in initdb pg_ctl pg_restore psql pg_dump pg_basebackup; do
    command -v "$tool" >/dev/null 2>&1 || return 1
  done
}

# What bindgen (through clang-sys) loads: libclang.so, libclang-N.so,
# libclang.so.N or libclang-N.so.N in the directories clang-sys searches
# (never libclang-cpp.so.N: another library), and clang's builtin headers
# (stddef.h and friends, from libclang-common-N-dev), without which the
# bindings cannot be generated even when the library loads.
have_libclang() {
  local dirs=(/usr/lib /usr/lib/* /usr/lib/*/* /usr/lib64 /usr/lib64/* /usr/local/lib /usr/local/lib/* /usr/lib/llvm-*/lib)
  local dir f found=no
  for dir in "${dirs[@]}"; do
    for f in $ROOT$dir/libclang.so $ROOT$dir/libclang.so.* $ROOT$dir/libclang-*.so $ROOT$dir/libclang-*.so.*; do
      [ -e "$f" ] || continue
      case "${f##*/}" in libclang-cpp*) continue ;; esac
      found=yes
      break 2
    done
  done
  [ "$found" = yes ] || return 1
  any_file '/usr/lib/llvm-*/lib/clang/*/include/stddef.h' '/usr/lib/clang/*/include/stddef.h' \
    '/usr/local/lib/clang/*/include/stddef.h'
}

# `python3 -m venv` needs ensurepip, which Debian ships in python3-venv.
have_venv() { python3 -c 'import venv, ensurepip' >/dev/null 2>&1; }

missing=()
have_pg || missing+=(pg)
have_libclang || missing+=(libclang-dev)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v git >/dev/null 2>&1 || missing+=(git)
have_venv || missing+=(python3-venv)
# pgBackRest, for physical.restore's tests (a local repository): Debian's
# package puts the one binary in /usr/bin.
any_file /usr/bin/pgbackrest || missing+=(pgbackrest)

# Debian's name for PostgreSQL 15's server, or Ubuntu's default one.
pg_package() {
  if apt-cache show postgresql-15 >/dev/null 2>&1; then echo postgresql-15; else echo postgresql; fi
}

package_names() {
  packages=()
  for m in ${missing[@]+"${missing[@]}"}; do
    if [ "$m" = pg ]; then packages+=("$(pg_package)"); else packages+=("$m"); fi
  done
}
package_names

if [ "${1:-}" = --print-missing ]; then
  for p in ${packages[@]+"${packages[@]}"}; do echo "$p"; done
  exit 0
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "rehearse needs a Rust toolchain (cargo, Rust >= 1.85; >= 1.88 for make test, whose testcontainers needs it): install it with rustup (https://rustup.rs), then re-run." >&2
  exit 1
fi

make_venv() {
  # .venv with Alembic and both PostgreSQL drivers, rebuilt when the
  # requirements change (the stamp records which version it was made from).
  local root req stamp
  root="$(cd "$(dirname "$0")/.." && pwd)"
  req="$root/requirements-alembic.txt"
  stamp="$root/.venv/.requirements"
  if [ -x "$root/.venv/bin/python" ] && cmp -s "$req" "$stamp"; then
    return 0
  fi
  echo "Creating .venv with Alembic (requirements-alembic.txt)" >&2
  python3 -m venv "$root/.venv"
  "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
}

if [ ${#packages[@]} -eq 0 ]; then
  make_venv
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo)
else
  echo "Missing: ${packages[*]}. Install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${packages[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
package_names
if [[ " ${missing[*]} " == *" pg "* ]]; then
  # Debian's package would create and start a 'main' cluster on port 5432;
  # rehearse makes its own throwaway clusters, so turn that off first.
  "${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/rehearse.conf >/dev/null
fi
echo "Installing: ${packages[*]}" >&2
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
for m in "${missing[@]}"; do
  if [ "$m" = libclang-dev ] && ! have_libclang; then
    echo "libclang-dev was installed but libclang or clang's stddef.h is still not where bindgen looks; set LIBCLANG_PATH to the directory holding libclang.so" >&2
    exit 1
  fi
done
make_venv
