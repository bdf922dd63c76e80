#!/usr/bin/env bash
# make bench: rehearse against the runbook procedure it replaces, measured
# side by side in one run, on a prod-shaped database of about 1 GB made by
# snapshots/generate.sh. Writes bench/RESULTS.md.
#
#   (a) runbook: createdb + single-job pg_restore with default settings +
#       the demo release's migrations with psql, timed as a whole
#   (b) rehearse cold (--no-cache), full observation
#   (c) rehearse warm (snapshot cache hit)
#   (d) migrations with observation off vs on (warm runs)
#   (e) rehearse's peak RSS at two dump scales (4x apart)
#
# Knobs: BENCH_SCALE (default 6, ~1 GB restored), BENCH_ROUNDS (runbook and
# cold rounds, default 2: with 3 the run exceeds 15 minutes on 2 cores),
# BENCH_OBSERVE_ROUNDS (warm runs with observation on and off, default 3).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
SCALE="${BENCH_SCALE:-6}"
SMALL_SCALE="$(python3 -c "print($SCALE / 4)")"
ROUNDS="${BENCH_ROUNDS:-2}"
OBSERVE_ROUNDS="${BENCH_OBSERVE_ROUNDS:-3}"
MIGRATIONS="$ROOT/scenarios/demo/migrations"
now() { date +%s.%N; }

# ---------------------------------------------------------------- dumps
DUMP="$(dump_for "$SCALE")"
SMALL_DUMP="$(dump_for "$SMALL_SCALE")"

scenario() { # name dump
  cat > "$OUT/$1.yaml" <<YAML
name: bench
dump: $2
postgres:
  backend: local
migrations:
  tool: sql
  dir: $MIGRATIONS
report:
  dir: $OUT/reports/$1
  formats: [json]
YAML
  echo "$OUT/$1.yaml"
}
BIG="$(scenario big "$DUMP")"
SMALL="$(scenario small "$SMALL_DUMP")"

# Each run's wall time, peak RSS and report.json (its per-stage times) are
# kept here; bench/summarize.py turns them into RESULTS.md.
ROUNDS_DIR="$OUT/rounds"
rm -rf "$ROUNDS_DIR"
mkdir -p "$ROUNDS_DIR"

# ---------------------------------------------------------------- (a) runbook
# A staging server with default settings, started once and not timed (the
# runbook assumes one exists), as the postgres user when we are root.
start_staging

runbook_round() { # prints "total restore migrations" in seconds
  local db="runbook_$1" t0 t1 t2
  t0=$(now)
  "$BIN/createdb" "$db"
  "$BIN/pg_restore" -d "$db" "$DUMP"
  t1=$(now)
  for f in "$MIGRATIONS"/00{03,04,05,06,07,08,09,10}_*.sql; do
    local m0 m1
    m0=$(date +%s%N)
    "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$f" >/dev/null
    m1=$(date +%s%N)
    echo "$(basename "$f" .sql) $(((m1 - m0) / 1000000))" >> "$ROUNDS_DIR/runbook-$1.migrations"
  done
  t2=$(now)
  "$BIN/dropdb" "$db"
  python3 -c "print(round($t2 - $t0, 2), round($t1 - $t0, 2), round($t2 - $t1, 2))"
}

# ---------------------------------------------------------------- (b)-(e) rehearse
rehearse_round() { # label scenario extra-args...
  local label="$1" scen="$2"; shift 2
  local t0 t1
  t0=$(now)
  /usr/bin/time -f "%M" -o "$ROUNDS_DIR/$label.rss" "$REHEARSE" run "$scen" -q "$@" >/dev/null
  t1=$(now)
  python3 -c "print(round($t1 - $t0, 2))" > "$ROUNDS_DIR/$label.seconds"
  cp "$OUT/reports/$(basename "$scen" .yaml)/report.json" "$ROUNDS_DIR/$label.json"
}

export REHEARSE_CACHE_DIR="$OUT/cache"
rm -rf "$REHEARSE_CACHE_DIR"
for i in $(seq 1 "$ROUNDS"); do
  echo "==> round $i/$ROUNDS: runbook, rehearse cold" >&2
  runbook_round "$i" > "$ROUNDS_DIR/runbook-$i.seconds"
  rehearse_round "cold-$i" "$BIG" --no-cache
done
echo "==> priming the snapshot cache" >&2
rehearse_round prime "$BIG"
# Observation on and off alternate, so a slow spell of a shared machine hits both.
for i in $(seq 1 "$OBSERVE_ROUNDS"); do
  echo "==> round $i/$OBSERVE_ROUNDS: rehearse warm, observation on and off" >&2
  rehearse_round "warm-$i" "$BIG"
  rehearse_round "off-$i" "$BIG" --no-observe
done
echo "==> RSS at scale $SMALL_SCALE" >&2
rehearse_round small "$SMALL" --no-cache

python3 "$ROOT/bench/summarize.py" --rounds-dir "$ROUNDS_DIR" --out "$ROOT/bench/RESULTS.md" \
  --scale "$SCALE" --small-scale "$SMALL_SCALE" --dump "$DUMP" --pg-version "$("$BIN/postgres" --version | awk '{print $3}')" \
  --notes "$ROOT/bench/NOTES.md"
cat "$ROOT/bench/RESULTS.md"
