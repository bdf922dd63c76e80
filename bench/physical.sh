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
# each rehearsing one migration that rewrites the bloated table. Overhead is
# a rehearsal's wall time less its migration's; the target is physical's
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
  local source_bytes
  source_bytes="$(psql_value "SELECT pg_total_relation_size('$table')")"
  "$BIN/pg_dump" -Fc -d app -f "$dir/bloated.dump"
  "$BIN/pg_basebackup" -D "$dir/backup" -Ft -X stream --checkpoint=fast
  chmod -R a+rX "$dir"

  # The runbook's restore of the same data (default settings, one job).
  t0=$(now)
  "$BIN/createdb" runbook
  "$BIN/pg_restore" -d runbook "$dir/bloated.dump"
  t1=$(now)
  local runbook
  runbook="$(python3 -c "print(round($t1 - $t0, 2))")"
  stop_staging

  # A rewrite of the bloated table: a volatile default rewrites every row (PostgreSQL 11+);
  # numbered after the demo history the dump has already applied.
  echo "ALTER TABLE $table ADD COLUMN bench_rewrite float8 NOT NULL DEFAULT random();" \
    > "$dir/migrations/9001_bench_rewrite.sql"
  local kind
  for kind in logical physical; do
    local source
    case "$kind" in
      logical) source="dump: $dir/bloated.dump" ;;
      physical) source="physical:
  basebackup: $dir/backup
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
  python3 - "$dir" "$scale" "$table" "$source_bytes" "$runbook" >> "$WORK/rows.jsonl" <<'PY'
import json, sys
d, scale, table, source_bytes, runbook = sys.argv[1:]
row = {"scale": float(scale), "table": table, "source_bytes": int(source_bytes), "runbook_restore_s": float(runbook)}
for kind in ("logical", "physical"):
    r = json.load(open(f"{d}/reports-{kind}/report.json"))
    wall = float(open(f"{d}/{kind}.seconds").read())
    migration = sum(m["duration_ms"] for m in r["migrations"]) / 1000
    tables = {t["name"]: t["bytes"] for t in r["dump"]["tables"]}
    row[kind] = {"wall_s": wall, "migration_s": migration, "overhead_s": round(wall - migration, 2),
                 "table_bytes": tables.get(table), "status": r["status"]}
print(json.dumps(row))
PY
}

rm -rf "$WORK" && mkdir -p "$WORK"
one_scale "$SMALL_SCALE"
one_scale "$SCALE"

python3 - "$WORK/rows.jsonl" "$("$BIN/postgres" --version | awk '{print $3}')" > "$ROOT/bench/PHYSICAL.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
mb = lambda b: f"{b / 1e6:.0f} MB" if b is not None else "?"
out = [f"# Physical source vs logical restore (`make bench-physical`, PostgreSQL {sys.argv[2]})", "",
       "Cold rehearsals (`--no-cache`) of one migration rewriting the bloated table, on a copy of the same",
       "database: restored from a `pg_dump` (logical) or recovered from `pg_basebackup -Ft -X stream` (physical).",
       "Overhead is a run's wall time less its migration's.", "",
       "| Scale | Runbook pg_restore | Logical overhead | Physical overhead | Physical / runbook |",
       "|--:|--:|--:|--:|--:|"]
for r in rows:
    ratio = r["physical"]["overhead_s"] / r["runbook_restore_s"]
    out.append(f"| {r['scale']:g} | {r['runbook_restore_s']:.1f} s | {r['logical']['overhead_s']:.1f} s | "
               f"{r['physical']['overhead_s']:.1f} s | {ratio:.2f}x |")
out += ["", "Fidelity: the bloated table (half its rows deleted, never `VACUUM FULL`ed), `pg_total_relation_size`",
        "on production and on each copy, and the rewrite's time on each:", "",
        "| Scale | Table | Production | Physical copy | Logical copy | Rewrite, physical | Rewrite, logical |",
        "|--:|---|--:|--:|--:|--:|--:|"]
for r in rows:
    out.append(f"| {r['scale']:g} | `{r['table']}` | {mb(r['source_bytes'])} | {mb(r['physical']['table_bytes'])} | "
               f"{mb(r['logical']['table_bytes'])} | {r['physical']['migration_s']:.2f} s | {r['logical']['migration_s']:.2f} s |")
print("\n".join(out))
PY
cat "$ROOT/bench/PHYSICAL.md"
