# Shared by bench/run.sh and bench/estimate.sh (sourced, not run): the
# PostgreSQL binaries, the demo dumps at a given scale (made once by
# snapshots/generate.sh and kept in bench/out/), and a scratch server.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/bench/out"
REHEARSE="$ROOT/target/debug/rehearse"
mkdir -p "$OUT"
chmod 755 "$OUT"

pg_bin() {
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1
}
BIN="$(pg_bin)"

# The demo database at scale $1 as a custom-format dump; prints its path.
dump_for() {
  local scale="$1" path="$OUT/demo-scale-$1.dump"
  if [ ! -s "$path" ]; then
    echo "==> generating the demo database at scale $scale" >&2
    "$ROOT/snapshots/generate.sh" --scale "$scale" --out "$path" >&2
  fi
  echo "$path"
}

# Starts a scratch server with default settings plus any `-c name=value`
# given, as the postgres user when we are root, with the roles the demo dump
# grants to; exports PGHOST/PGPORT/PGUSER for it. STAGING is its directory;
# stop_staging (also run on exit) stops and removes it.
start_staging() {
  STAGING="$(mktemp -d /tmp/rehearse-bench-staging.XXXXXX)"
  chmod 755 "$STAGING"
  AS=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$STAGING"; AS=(runuser -u postgres --); fi
  trap stop_staging EXIT INT TERM
  "${AS[@]}" "$BIN/initdb" -D "$STAGING/data" -U postgres --auth=trust >/dev/null
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${AS[@]}" "$BIN/pg_ctl" -D "$STAGING/data" -l "$STAGING/log" -w -o "-p $PORT -k $STAGING -c listen_addresses='' $*" start >/dev/null
  export PGHOST="$STAGING" PGPORT="$PORT" PGUSER=postgres
  "$BIN/psql" -X -q -d postgres -c "CREATE ROLE app NOLOGIN; CREATE ROLE readonly NOLOGIN;"
}

stop_staging() {
  if [ -n "${STAGING:-}" ]; then
    "${AS[@]}" "$BIN/pg_ctl" -D "$STAGING/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$STAGING"
    STAGING=""
  fi
  trap - EXIT INT TERM
  unset PGHOST PGPORT PGUSER
}
