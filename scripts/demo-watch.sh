#!/usr/bin/env bash
# make demo-watch: the demo release watched in "production" (docs/watch.md).
#
# The demo dump restored into a server of its own stands for production;
# the demo release is rehearsed on a copy as `make demo` does (its report in
# reports/demo-watch/rehearsal); then the release is applied to production
# with psql, file by file, each recorded in rehearse's tracking table as a
# runbook would, while `rehearse watch` follows it with the rehearsal's
# report. The summary lands in reports/demo-watch/watch.md. The server and
# its directory are removed on every exit. This "production" is the dump
# itself, while the demo's estimate is for a production 50 times larger: the
# times fall far under the estimates, and the ETAs say so.
set -euo pipefail

REHEARSE=${REHEARSE:-target/debug/rehearse}
BIN=${PG_BIN:-$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
OUT=reports/demo-watch
MIGRATIONS=scenarios/demo/migrations

work=$(mktemp -d /tmp/rehearse-demo-watch.XXXXXX)
chmod 755 "$work"
as_server=()
if [ "$(id -u)" = 0 ]; then
  # The server refuses to run as root.
  chown postgres "$work"
  as_server=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
  "${as_server[@]}" "$BIN/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== production: the demo dump restored on 127.0.0.1:$port"
"${as_server[@]}" "$BIN/initdb" -D "$work/data" -U postgres --auth=trust >/dev/null
"${as_server[@]}" "$BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
  -o "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work" start >/dev/null
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PSQLRC=/dev/null
# The roles the dump names (owner and grantee), as production has them.
psql -q -d postgres -c 'CREATE ROLE app NOLOGIN' -c 'CREATE ROLE readonly NOLOGIN' -c 'CREATE DATABASE app'
"$BIN/pg_restore" -d app snapshots/demo.dump

echo "== the rehearsal of the release on a copy (ends BUDGET EXCEEDED on purpose, as make demo)"
mkdir -p "$OUT"
"$REHEARSE" run scenarios/demo.yaml --out "$OUT/rehearsal" --format json --quiet || [ $? -eq 1 ]

echo "== the release applied to production with psql, while rehearse watch follows it"
"$REHEARSE" watch --url "postgres://postgres@127.0.0.1:$port/app" --report "$OUT/rehearsal/report.json" \
  --interval 200ms --events "$OUT/events.jsonl" --out "$OUT" --timeout 30m &
watch_pid=$!
sleep 1
jq -r '.migrations[] | select(.status == "applied") | "\(.version) \(.id)"' "$OUT/rehearsal/report.json" |
  while read -r version id; do
    psql -q -X -v ON_ERROR_STOP=1 -d app -f "$MIGRATIONS/$id.sql" >/dev/null
    psql -q -X -v ON_ERROR_STOP=1 -d app \
      -c "INSERT INTO public.rehearse_schema_migrations (version, name) VALUES ('$version', '$id')"
  done
wait "$watch_pid"
echo
cat "$OUT/watch.md"
