#!/usr/bin/env bash
# make bench-physical: a cold rehearsal on production's physical backup
# (pg_basebackup -Ft -X stream) against the runbook's logical restore of the
# same data, at two sizes (4x apart), and the fidelity of each copy to a
# bloated production. Writes bench/PHYSICAL.md.
#
# At each scale: the demo database restored into a scratch "production";
# half the rows of its largest table deleted (every other tuple of each
# page, so no page empties) and never VACUUM FULLed; then
#   runbook   createdb + single-job pg_restore of a pg_dump of that database
#   logical   rehearse cold (--no-cache) on that pg_dump
#   physical  rehearse cold on a pg_basebackup -Ft -X stream of it
#   pgbackrest rehearse cold on a pgBackRest full backup of it (a local
#             repository), restored by `pgbackrest restore` and recovered
#             to the end of its archive by `archive-get`
# each rehearsing one migration that rewrites the bloated table, with an
# estimate at production's scale from `rehearse stats` of "production" (the
# estimate's basis says which sizes it scaled from). Overhead is a
# rehearsal's wall time less its migration's; the target is physical's
# overhead at most 0.25x the runbook's pg_restore.
#
# Knobs: BENCH_SCALE (default 6, ~1 GB), the smaller scale is a quarter of it.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
SCALE="${BENCH_SCALE:-6}"
SMALL_SCALE="$(python3 -c "print($SCALE / 4)")"
WORK="$OUT/physical"
now() { date +%s.%N; }
psql_value() { "$BIN/psql" -X -At -d app -c "$1"; }

one_scale() { # scale: appends one JSON line to $WORK/rows.jsonl
  local scale="$1" dump dir t0 t1 table
  dump="$(dump_for "$scale")"
  dir="$WORK/scale-$scale"
  rm -rf "$dir" && mkdir -p "$dir/migrations" && chmod -R 755 "$dir"
  start_staging
  "$BIN/createdb" app
  "$BIN/pg_restore" -d app "$dump"
  table="$(psql_value "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                       ORDER BY pg_relation_size(c.oid) DESC LIMIT 1")"
  echo "==> scale $scale: deleting every other tuple of $table" >&2
  psql_value "DELETE FROM $table WHERE (ctid::text::point)[1]::int % 2 = 0" >/dev/null
  psql_value "CHECKPOINT" >/dev/null
  local source_bytes database_bytes
  source_bytes="$(psql_value "SELECT pg_total_relation_size('$table')")"
  database_bytes="$(psql_value "SELECT pg_database_size('app')")"
  "$BIN/pg_dump" -Fc -d app -f "$dir/bloated.dump"
  "$BIN/pg_basebackup" -D "$dir/backup" -Ft -X stream --checkpoint=fast
  "$REHEARSE" stats --url "postgresql://postgres@/app?host=$PGHOST&port=$PGPORT" --out "$dir/prod-stats.json"
  chmod -R a+rX "$dir"

  # The runbook's restore of the same data (default settings, one job).
  t0=$(now)
  "$BIN/createdb" runbook
  "$BIN/pg_restore" -d runbook "$dir/bloated.dump"
  t1=$(now)
  local runbook
  runbook="$(python3 -c "print(round($t1 - $t0, 2))")"
  # After the runbook's restore (archiving would slow it), and without its database (it is not production's).
  "$BIN/dropdb" runbook
  pgbackrest_backup "$dir"
  stop_staging

  # A rewrite of the bloated table: a volatile default rewrites every row (PostgreSQL 11+);
  # numbered after the demo history the dump has already applied.
  echo "ALTER TABLE $table ADD COLUMN bench_rewrite float8 NOT NULL DEFAULT random();" \
    > "$dir/migrations/9001_bench_rewrite.sql"
  local kind
  for kind in logical physical pgbackrest; do
    local source
    case "$kind" in
      logical) source="dump: $dir/bloated.dump" ;;
      physical) source="physical:
  basebackup: $dir/backup
database: app" ;;
      pgbackrest) source="physical:
  restore: pgbackrest --config=$dir/pgbackrest/pgbackrest.conf --stanza=bench --pg1-path={datadir} restore
  restore_command: pgbackrest --config=$dir/pgbackrest/pgbackrest.conf --stanza=bench --pg1-path={datadir} archive-get %f \"%p\"
database: app" ;;
    esac
    cat > "$dir/$kind.yaml" <<YAML
name: bench-$kind
$source
postgres:
  backend: local
migrations:
  tool: sql
  dir: $dir/migrations
estimate:
  production: $dir/prod-stats.json
report:
  dir: $dir/reports-$kind
  formats: [json]
YAML
    echo "==> scale $scale: rehearse cold, $kind" >&2
    t0=$(now)
    "$REHEARSE" run "$dir/$kind.yaml" -q --no-cache >/dev/null
    t1=$(now)
    python3 -c "print(round($t1 - $t0, 2))" > "$dir/$kind.seconds"
  done
  python3 - "$dir" "$scale" "$table" "$source_bytes" "$runbook" "$database_bytes" >> "$WORK/rows.jsonl" <<'PY'
import json, sys
d, scale, table, source_bytes, runbook, database_bytes = sys.argv[1:]
row = {"scale": float(scale), "table": table, "source_bytes": int(source_bytes), "runbook_restore_s": float(runbook),
       "database_bytes": int(database_bytes), "pgbackrest_backup_s": float(open(f"{d}/pgbackrest.seconds").read())}
for kind in ("logical", "physical", "pgbackrest"):
    r = json.load(open(f"{d}/reports-{kind}/report.json"))
    wall = float(open(f"{d}/{kind}.seconds").read())
    migration = sum(m["duration_ms"] for m in r["migrations"]) / 1000
    tables = {t["name"]: t["bytes"] for t in r["dump"]["tables"]}
    basis = [b for m in r["migrations"] for b in ((m.get("estimate") or {}).get("basis") or [])
             if table.split(".")[-1] in b]
    p = r["dump"].get("physical") or {}
    row[kind] = {"wall_s": wall, "migration_s": migration, "overhead_s": round(wall - migration, 2),
                 "table_bytes": tables.get(table), "status": r["status"], "basis": basis[:1],
                 "copy_s": (p.get("copy_ms") or 0) / 1000, "recovery_s": (p.get("recovery_ms") or 0) / 1000,
                 "copied_bytes": p.get("copied_bytes"), "wal_replayed_bytes": p.get("wal_replayed_bytes")}
print(json.dumps(row))
PY
}

# A pgBackRest stanza for the staging server in DIR/pgbackrest: archiving
# turned on (a restart), the stanza created and a full backup taken; prints
# the backup's seconds into DIR/pgbackrest.seconds.
pgbackrest_backup() {
  local dir="$1" conf="$1/pgbackrest/pgbackrest.conf" t0 t1
  mkdir -p "$dir/pgbackrest/repo" "$dir/pgbackrest/log" "$dir/pgbackrest/lock"
  cat > "$conf" <<CONF
[global]
repo1-path=$dir/pgbackrest/repo
log-path=$dir/pgbackrest/log
lock-path=$dir/pgbackrest/lock
start-fast=y
compress-type=lz4
process-max=2
log-level-console=warn
[bench]
pg1-path=$STAGING/data
pg1-socket-path=$PGHOST
pg1-port=$PGPORT
pg1-user=postgres
CONF
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir/pgbackrest"; fi
  "$BIN/psql" -X -q -d postgres -c "ALTER SYSTEM SET archive_mode = on" \
    -c "ALTER SYSTEM SET archive_command = 'pgbackrest --config=$conf --stanza=bench archive-push %p'"
  "${AS[@]}" "$BIN/pg_ctl" -D "$STAGING/data" -w restart >/dev/null
  "${AS[@]}" pgbackrest --config="$conf" --stanza=bench stanza-create
  t0=$(now)
  "${AS[@]}" pgbackrest --config="$conf" --stanza=bench --type=full backup
  t1=$(now)
  python3 -c "print(round($t1 - $t0, 2))" > "$dir/pgbackrest.seconds"
}

rm -rf "$WORK" && mkdir -p "$WORK"
LOAD_BEFORE="$(cut -d' ' -f1 /proc/loadavg)"
one_scale "$SMALL_SCALE"
one_scale "$SCALE"
LOAD_AFTER="$(cut -d' ' -f1 /proc/loadavg)"

python3 - "$WORK/rows.jsonl" "$("$BIN/postgres" --version | awk '{print $3}')" "$LOAD_BEFORE" "$LOAD_AFTER" "$(nproc)" \
  > "$ROOT/bench/PHYSICAL.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
load = f"Load average {sys.argv[3]} at the start and {sys.argv[4]} at the end, on {sys.argv[5]} cores: above the core count, other work shared the machine and the figures are noisier."
mb = lambda b: f"{b / 1e6:.0f} MB" if b is not None else "?"
out = [f"# Physical source vs logical restore (`make bench-physical`, PostgreSQL {sys.argv[2]})", "",
       "Cold rehearsals (`--no-cache`) of one migration rewriting the bloated table, on a copy of the same",
       "database: restored from a `pg_dump` (logical) or recovered from `pg_basebackup -Ft -X stream` (physical).",
       "Overhead is a run's wall time less its migration's.", "", load, "",
       "The pgBackRest column restores a full backup from a local repository (`pgbackrest restore`; the",
       "repository lz4-compressed, `process-max=2`) and recovers to the end of its archive (`archive-get`).", "",
       "| Scale | Production | Runbook pg_restore | Logical overhead | Physical overhead | Physical / runbook "
       "| pgBackRest overhead | pgBackRest / runbook |",
       "|--:|--:|--:|--:|--:|--:|--:|--:|"]
for r in rows:
    ratio = r["physical"]["overhead_s"] / r["runbook_restore_s"]
    rest = r["pgbackrest"]["overhead_s"] / r["runbook_restore_s"]
    out.append(f"| {r['scale']:g} | {mb(r['database_bytes'])} | {r['runbook_restore_s']:.1f} s | "
               f"{r['logical']['overhead_s']:.1f} s | {r['physical']['overhead_s']:.1f} s | {ratio:.2f}x | "
               f"{r['pgbackrest']['overhead_s']:.1f} s | {rest:.2f}x |")
if len(rows) == 2:
    small, big = rows
    grow = lambda k: big[k]["overhead_s"] / small[k]["overhead_s"]
    out += ["", f"Growth from the small scale to the large ({big['database_bytes'] / small['database_bytes']:.1f}x "
            f"the bytes): logical overhead {grow('logical'):.2f}x, physical {grow('physical'):.2f}x, "
            f"pgBackRest {grow('pgbackrest'):.2f}x."]
out += ["", "Where the physical overheads go (the report's `dump.physical`), and pgBackRest's backup itself:", "",
        "| Scale | Kind | Copied | Copy | WAL replayed | Recovery | pgBackRest backup |", "|--:|---|--:|--:|--:|--:|--:|"]
for r in rows:
    for k in ("physical", "pgbackrest"):
        x = r[k]
        backup = f"{r['pgbackrest_backup_s']:.1f} s" if k == "pgbackrest" else ""
        out.append(f"| {r['scale']:g} | {k} | {mb(x['copied_bytes'])} | {x['copy_s']:.1f} s | "
                   f"{mb(x['wal_replayed_bytes'])} | {x['recovery_s']:.1f} s | {backup} |")
out += ["", "Fidelity: the bloated table (half its rows deleted, never `VACUUM FULL`ed), `pg_total_relation_size`",
        "on production and on each copy, and the rewrite's time on each:", "",
        "| Scale | Table | Production | Physical copy | Logical copy | Rewrite, physical | Rewrite, logical |",
        "|--:|---|--:|--:|--:|--:|--:|"]
for r in rows:
    out.append(f"| {r['scale']:g} | `{r['table']}` | {mb(r['source_bytes'])} | {mb(r['physical']['table_bytes'])} | "
               f"{mb(r['logical']['table_bytes'])} | {r['physical']['migration_s']:.2f} s | {r['logical']['migration_s']:.2f} s |")
out += ["", "The estimate at production's scale (`estimate.production`: `rehearse stats` of production) scales",
        "from the copy's own sizes: its basis for the bloated table on each copy:", "",
        "| Scale | Physical copy | Logical copy |", "|--:|---|---|"]
for r in rows:
    cell = lambda k: "; ".join(r[k]["basis"]) or "(none)"
    out.append(f"| {r['scale']:g} | {cell('physical')} | {cell('logical')} |")
print("\n".join(out))
PY
cat "$ROOT/bench/PHYSICAL.md"
