#!/usr/bin/env bash
# Installs what rehearse needs to build and run on Debian/Ubuntu, when it is
# missing: PostgreSQL server binaries (initdb, pg_ctl, pg_restore, psql),
# libclang (the pg_query crate generates bindings with it) and a C compiler.
# Runs apt-get as root or through passwordless sudo; otherwise prints the
# command to run. Idempotent: does nothing when everything is there.
set -euo pipefail

missing=()
have_pg() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }
have_libclang() { ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/*/libclang*.so* >/dev/null 2>&1; }

if ! have_pg; then missing+=(pg); fi
if ! have_libclang; then missing+=(libclang-dev); fi
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v git >/dev/null 2>&1 || missing+=(git)
# The Alembic demo and tests run Alembic from PyPI in a venv.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if ! command -v cargo >/dev/null 2>&1; then
  echo "rehearse needs a Rust toolchain (cargo, Rust >= 1.85): install it with rustup (https://rustup.rs), then re-run." >&2
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

if [ ${#missing[@]} -eq 0 ]; then
  make_venv
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo)
else
  echo "Missing: ${missing[*]}. Install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y postgresql-15 libclang-dev build-essential pkg-config git python3-venv" >&2
  echo "(on Ubuntu without postgresql-15, use the 'postgresql' package)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
packages=()
for m in "${missing[@]}"; do
  if [ "$m" = pg ]; then
    # Debian's package would create and start a 'main' cluster on port 5432;
    # rehearse makes its own throwaway clusters, so turn that off first.
    "${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/rehearse.conf >/dev/null
    if apt-cache show postgresql-15 >/dev/null 2>&1; then packages+=(postgresql-15); else packages+=(postgresql); fi
  else
    packages+=("$m")
  fi
done
echo "Installing: ${packages[*]}" >&2
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
make_venv
