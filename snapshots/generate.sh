#!/usr/bin/env bash
# Build the prod-shaped `demo` database in a throwaway PostgreSQL cluster and dump it.
# Run `snapshots/generate.sh --help` for usage; snapshots/README.md describes the data.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: snapshots/generate.sh [--scale N] [--out PATH] [--format FORMAT] [--out-of-band FILE]

Builds the prod-shaped `demo` database in a throwaway PostgreSQL cluster (private
temp dir, unix socket only, removed on exit) and dumps it with pg_dump.

The cluster gets the roles `app` (owns the tables) and `readonly` (SELECT grants),
the "already in production" migrations scenarios/demo/migrations/0001_*.sql and
0002_*.sql recorded in public.rehearse_schema_migrations (and as Alembic revision
a2_events of scenarios/alembic-demo in public.alembic_version), and reproducible data
from snapshots/demo-data.sql. Migrations 0003 and later are NOT applied: they are
the pending release that `rehearse` rehearses.

Options:
  --scale N        data volume multiplier (default 1; decimals such as 0.1 allowed).
                   Scale 1 = 20k users, 200k orders, 500k order_items, 400k events.
  --out PATH       where to write the dump (default: snapshots/demo.dump)
  --format FORMAT  custom (pg_dump -Fc, default) | directory (-Fd) | tar (-Ft) |
                   plain (-Fp) | plain-gz (plain SQL piped through gzip)
  --out-of-band FILE
                   run FILE's SQL (as the superuser) after loading the data: changes
                   made by hand in production, outside any migration, for `rehearse
                   drift` to find (snapshots/demo-out-of-band.sql; make demo-drift)
  -h, --help       show this help

Environment:
  PG_BIN           directory with the PostgreSQL server binaries (initdb, pg_ctl,
                   postgres, psql, pg_dump). Default: `pg_config --bindir` if it holds
                   initdb, else the newest /usr/lib/postgresql/*/bin.

When run as root, the server runs as the `postgres` OS user (initdb refuses root).
EOF
}

die() { echo "generate.sh: $*" >&2; exit 1; }

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
migrations_dir="$repo_root/scenarios/demo/migrations"
data_sql="$script_dir/demo-data.sql"

scale=1
out="$script_dir/demo.dump"
format=custom
out_of_band=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale)    [[ $# -ge 2 ]] || die "--scale needs a value"; scale="$2"; shift 2 ;;
        --scale=*)  scale="${1#*=}"; shift ;;
        --out)      [[ $# -ge 2 ]] || die "--out needs a value"; out="$2"; shift 2 ;;
        --out=*)    out="${1#*=}"; shift ;;
        --format)   [[ $# -ge 2 ]] || die "--format needs a value"; format="$2"; shift 2 ;;
        --format=*) format="${1#*=}"; shift ;;
        --out-of-band)   [[ $# -ge 2 ]] || die "--out-of-band needs a file"; out_of_band="$2"; shift 2 ;;
        --out-of-band=*) out_of_band="${1#*=}"; shift ;;
        -h|--help)  usage; exit 0 ;;
        *)          usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ "$scale" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--scale must be a positive number, got '$scale'"
[[ "$scale" =~ [1-9] ]] || die "--scale must be greater than 0"
case "$format" in
    custom)    dump_flag=-Fc ;;
    directory) dump_flag=-Fd ;;
    tar)       dump_flag=-Ft ;;
    plain)     dump_flag=-Fp ;;
    plain-gz)  dump_flag=-Fp ;;
    *) die "--format must be custom, directory, tar, plain or plain-gz, got '$format'" ;;
esac
[[ -f "$data_sql" ]] || die "missing $data_sql"

# ---------------------------------------------------------------- binaries
find_pg_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then
        echo "$PG_BIN"; return
    fi
    if command -v pg_config >/dev/null 2>&1; then
        local d
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return; fi
    fi
    local newest
    newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n | tail -n1 || true)"
    [[ -n "$newest" ]] && echo "$newest"
}
pg_bin="$(find_pg_bin)"
[[ -n "$pg_bin" ]] || die "no PostgreSQL server binaries found: set PG_BIN, or install them (Debian/Ubuntu: apt-get install postgresql)"
for tool in initdb pg_ctl postgres psql pg_dump; do
    [[ -x "$pg_bin/$tool" ]] || die "$pg_bin/$tool not found or not executable (set PG_BIN to the PostgreSQL bin directory)"
done

# Client settings must come from us only.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep -E '^PG[A-Z]' || true)

now_ms() {
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        local t="${EPOCHREALTIME/[.,]/}"; echo $((t / 1000))
    else
        echo $(($(date +%s%N) / 1000000))
    fi
}
t_start="$(now_ms)"

# ---------------------------------------------------------------- who runs the server
if [[ "$(id -u)" -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user to run the server as"
    if command -v runuser >/dev/null 2>&1; then
        as_pg() { (cd "$tmp" && runuser -u postgres -- "$@"); }
    elif command -v setpriv >/dev/null 2>&1; then
        as_pg() { (cd "$tmp" && setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"); }
    else
        die "running as root needs runuser or setpriv to start the server as 'postgres'"
    fi
else
    as_pg() { (cd "$tmp" && "$@"); }
fi

# ---------------------------------------------------------------- throwaway cluster
tmp=""
partial_out=""
child=""
# Long steps run in the background and are waited for, so that Ctrl-C / SIGTERM
# reach the traps at once instead of after the step finishes.
run() {
    "$@" <&0 &
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=""
    return "$rc"
}
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [[ -n "$child" ]] && kill -TERM "$child" 2>/dev/null
    if [[ -n "$tmp" && -f "$tmp/data/postmaster.pid" ]]; then
        as_pg "$pg_bin/pg_ctl" -D "$tmp/data" stop -m fast -w -t 60 >/dev/null 2>&1 ||
            as_pg "$pg_bin/pg_ctl" -D "$tmp/data" stop -m immediate -w -t 30 >/dev/null 2>&1
    fi
    if [[ $rc -ne 0 && $rc -ne 130 && $rc -ne 143 && -n "$tmp" && -f "$tmp/server.log" ]]; then
        echo "--- last lines of the server log:" >&2
        tail -n 20 "$tmp/server.log" >&2
    fi
    [[ -n "$child" ]] && wait "$child" 2>/dev/null
    [[ -n "$tmp" ]] && rm -rf "$tmp"
    [[ -n "$partial_out" ]] && rm -rf "$partial_out"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "generate.sh: interrupted, cleaning up" >&2; exit 130' INT
trap 'echo "generate.sh: terminated, cleaning up" >&2; exit 143' TERM

tmp="$(mktemp -d -t rehearse-demo.XXXXXXXX)"
chmod 700 "$tmp"
if [[ "$(id -u)" -eq 0 ]]; then
    chown postgres: "$tmp"
    as_pg test -w "$tmp" || die "user 'postgres' cannot write to $tmp (set TMPDIR to a directory it can reach, e.g. /tmp)"
fi
# The socket path must fit in sun_path (~107 bytes).
(( ${#tmp} < 80 )) || die "temp dir path too long for a unix socket: $tmp (set TMPDIR=/tmp)"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=""
for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! port_in_use "$p"; then port="$p"; break; fi
done
[[ -n "$port" ]] || die "could not find a free port"

echo "==> PostgreSQL binaries: $pg_bin ($("$pg_bin/postgres" --version))"
echo "==> initdb in $tmp"
as_pg "$pg_bin/initdb" -D "$tmp/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync \
    >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; die "initdb failed"; }

cat >>"$tmp/data/postgresql.conf" <<EOF

# --- generate.sh: throwaway build cluster, socket only, no durability needed
listen_addresses = ''
unix_socket_directories = '$tmp'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
autovacuum = off
max_wal_size = '4GB'
maintenance_work_mem = '256MB'
EOF

as_pg "$pg_bin/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start >/dev/null ||
    die "the server did not start"

export PGHOST="$tmp" PGPORT="$port" PGUSER=postgres PGCONNECT_TIMEOUT=10
psql_() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# ---------------------------------------------------------------- roles, database, schema
echo "==> roles app, readonly; database demo"
psql_ -d postgres <<'SQL'
CREATE ROLE app NOLOGIN;
CREATE ROLE readonly NOLOGIN;
CREATE DATABASE demo;
SQL

migration_file() {
    local matches=("$migrations_dir/$1"_*.sql)
    [[ ${#matches[@]} -eq 1 && -f "${matches[0]}" ]] ||
        die "expected exactly one $migrations_dir/$1_*.sql"
    echo "${matches[0]}"
}

declare -a applied_rows=()
for prefix in 0001 0002; do
    file="$(migration_file "$prefix")"
    name="$(basename "$file")"
    version="$((10#${name%%_*}))"
    echo "==> migration $name"
    t0="$(now_ms)"
    run psql_ -d demo -f "$file"
    t1="$(now_ms)"
    applied_rows+=("('$version', '$name', $((t1 - t0)))")
done

echo "==> tracking table public.rehearse_schema_migrations"
psql_ -d demo <<SQL
CREATE TABLE public.rehearse_schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms bigint
);
ALTER TABLE public.rehearse_schema_migrations OWNER TO app;
GRANT SELECT ON public.rehearse_schema_migrations TO readonly;
INSERT INTO public.rehearse_schema_migrations (version, name, duration_ms)
VALUES $(IFS=,; echo "${applied_rows[*]}");
SQL

# The same schema, as an Alembic project sees it: production is at revision
# a2 of scenarios/alembic-demo (whose a1 and a2 describe 0001 and 0002).
echo "==> Alembic version table public.alembic_version (at a2_events)"
psql_ -d demo <<SQL
CREATE TABLE public.alembic_version (
    version_num varchar(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
ALTER TABLE public.alembic_version OWNER TO app;
INSERT INTO public.alembic_version VALUES ('a2_events');
SQL

# ---------------------------------------------------------------- data
echo "==> loading data (scale $scale)"
t0="$(now_ms)"
run psql_ -d demo -v scale="$scale" -f "$data_sql"
dt=$(( $(now_ms) - t0 ))
echo "    loaded in $((dt / 1000)).$((dt % 1000 / 100))s"
if [[ -n "$out_of_band" ]]; then
    [[ -f "$out_of_band" ]] || die "--out-of-band $out_of_band is not a file"
    echo "==> out-of-band changes from $out_of_band"
    run psql_ -d demo -f "$out_of_band"
fi
echo "==> VACUUM ANALYZE"
run psql_ -d demo -c 'VACUUM ANALYZE'

# ---------------------------------------------------------------- dump
out_dir="$(dirname "$out")"
mkdir -p "$out_dir"
out="$(cd "$out_dir" && pwd)/$(basename "$out")"
if [[ -d "$out" ]]; then
    [[ "$format" == directory && -f "$out/toc.dat" ]] ||
        die "$out is a directory; refusing to replace it (only a previous directory-format dump is replaced)"
fi
partial_out="$out.partial.$$"
echo "==> pg_dump --format $format -> $out"
dump_plain_gz() { "$pg_bin/pg_dump" -Fp -d demo | gzip -n -6 >"$partial_out"; }
if [[ "$format" == plain-gz ]]; then
    run dump_plain_gz
else
    run "$pg_bin/pg_dump" "$dump_flag" -d demo -f "$partial_out"
fi
rm -rf "$out"
mv "$partial_out" "$out"
partial_out=""

dump_bytes="$(du -sb "$out" | cut -f1)"
echo
echo "dump:    $out ($format, $(numfmt --to=iec --suffix=B "$dump_bytes" 2>/dev/null || echo "$dump_bytes bytes"), $dump_bytes bytes)"
echo "rows:"
"$pg_bin/psql" -X -q -A -t -F $'\t' -d demo <<'SQL' | while IFS=$'\t' read -r t n; do printf '  %-28s %10s\n' "$t" "$n"; done
SELECT t, n FROM (
          SELECT 1 AS o, 'users' AS t, count(*) AS n FROM public.users
UNION ALL SELECT 2, 'orders', count(*) FROM public.orders
UNION ALL SELECT 3, 'order_items', count(*) FROM public.order_items
UNION ALL SELECT 4, 'events', count(*) FROM public.events
UNION ALL SELECT 5, 'coupons', count(*) FROM public.coupons
UNION ALL SELECT 6, 'rehearse_schema_migrations', count(*) FROM public.rehearse_schema_migrations
) AS c ORDER BY o;
SQL
elapsed=$(( $(now_ms) - t_start ))
echo "done in $((elapsed / 1000)).$((elapsed % 1000 / 100))s"
