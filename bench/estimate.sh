#!/usr/bin/env bash
# make bench-estimate: how good rehearse's production-scale estimate is.
# The demo database is built at scale S and at 4×S (snapshots/generate.sh,
# cached in bench/out/ and shared with make bench); `rehearse stats` reads
# the 4×S database; the release (the demo's migrations: a table rewrite,
# index builds, a foreign-key validation, catalog-only changes, a
# backfill; and bench/estimate-release/: a column with a default, a SET NOT
# NULL, a batched backfill in a DO block) is rehearsed on the S
# dump with `estimate.production` pointing at those statistics, and
# rehearsed again on the 4×S dump; bench/estimate.py compares and writes
# bench/ESTIMATE.md.
#
# Knobs: BENCH_ESTIMATE_SCALE (S, default 1.5), BENCH_ESTIMATE_ROUNDS
# (rehearsals of each, default 3; the medians count).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
SMALL="${BENCH_ESTIMATE_SCALE:-1.5}"
BIG="$(python3 -c "print($SMALL * 4)")"
ROUNDS="${BENCH_ESTIMATE_ROUNDS:-3}"
WORK="$OUT/estimate"
mkdir -p "$WORK"
chmod 755 "$WORK"

SMALL_DUMP="$(dump_for "$SMALL")"
BIG_DUMP="$(dump_for "$BIG")"

# ------------------------------------------------ production: the 4×S database
echo "==> rehearse stats of the scale-$BIG database" >&2
start_staging -c maintenance_work_mem=256MB
"$BIN/psql" -X -q -d postgres -c "CREATE DATABASE shop"
"$BIN/pg_restore" -d shop -j 4 "$BIG_DUMP"
"$BIN/psql" -X -q -d shop -c "VACUUM ANALYZE"
STATS="$WORK/prod-stats-scale-$BIG.json"
"$REHEARSE" stats --url "host=$STAGING port=$PORT user=postgres dbname=shop" --out "$STATS" >&2
stop_staging

# ------------------------------------------------ the rehearsals
RELEASE="$WORK/release"
rm -rf "$RELEASE"
mkdir -p "$RELEASE"
cp "$ROOT"/scenarios/demo/migrations/*.sql "$ROOT"/bench/estimate-release/*.sql "$RELEASE"/
scenario() { # name dump [estimate]
  cat > "$WORK/$1.yaml" <<YAML
name: $1
dump: $2
postgres:
  backend: local
migrations:
  tool: sql
  dir: $RELEASE
report:
  dir: $WORK/reports/$1
  formats: [json]
YAML
  if [ -n "${3:-}" ]; then printf 'estimate:\n  production: %s\n' "$3" >> "$WORK/$1.yaml"; fi
  echo "$WORK/$1.yaml"
}
ESTIMATED="$(scenario estimated "$SMALL_DUMP" "$STATS")"
ACTUAL="$(scenario actual "$BIG_DUMP")"
rm -rf "$WORK/rounds"
mkdir -p "$WORK/rounds"
for i in $(seq 1 "$ROUNDS"); do
  echo "==> round $i/$ROUNDS: the release at scale $SMALL with the estimate, and at scale $BIG" >&2
  "$REHEARSE" run "$ESTIMATED" -q --no-cache >/dev/null
  cp "$WORK/reports/estimated/report.json" "$WORK/rounds/estimated-$i.json"
  "$REHEARSE" run "$ACTUAL" -q --no-cache >/dev/null
  cp "$WORK/reports/actual/report.json" "$WORK/rounds/actual-$i.json"
done

python3 "$ROOT/bench/estimate.py" --rounds-dir "$WORK/rounds" --out "$ROOT/bench/ESTIMATE.md" \
  --small "$SMALL" --big "$BIG" --stats "$STATS" \
  --command "make bench-estimate (BENCH_ESTIMATE_SCALE=$SMALL BENCH_ESTIMATE_ROUNDS=$ROUNDS)"
cat "$ROOT/bench/ESTIMATE.md"
