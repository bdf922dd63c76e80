#!/usr/bin/env bash
# make bench-corpus: how long reading a `compat.queries` corpus takes, at
# sizes 10x apart, measured in the same run: each size's seconds per MB
# against the smallest's shows whether the read grows linearly (a ratio
# near 1.0; quadratic growth made it 10 at 10x, 100 at 100x).
#
# The corpora are generated (an ORM's SELECT, INSERT, UPDATE and DELETE
# statements with $n parameters, comments, multi-line statements and `;`
# in strings), kept in bench/out/corpus/. The read is timed through the
# CLI: a scenario whose plan is refused right after its corpus is read
# (race.replicas: 1, exit 3), so the run is the read and a few
# milliseconds of start-up; nothing else starts.
#
# Knobs: BENCH_CORPUS_SIZES (MB, default "5 50"; the first is the
# baseline), REHEARSE_BIN (the binary; default target/debug/rehearse, use
# target/release/rehearse for a user's build).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
SIZES="${BENCH_CORPUS_SIZES:-5 50}"
REHEARSE="${REHEARSE_BIN:-$REHEARSE}"
WORK="$OUT/corpus"
mkdir -p "$WORK/migrations"
echo "SELECT 1;" > "$WORK/migrations/0001_noop.sql"

corpus() { # size in MB; prints the corpus's path
  local path="$WORK/corpus-$1mb.sql"
  [ -s "$path" ] || python3 - "$1" > "$path" <<'PY'
import random, sys
size, rnd, written, i = float(sys.argv[1]) * 1_000_000, random.Random(21), 0, 0
tables = ["users", "orders", "order_items", "payments", "products", "sessions", "audit_log"]
cols = ["id", "user_id", "state", "total", "created_at", "email", "sku", "qty", "note"]
while written < size:
    t, c = rnd.choice(tables), rnd.sample(cols, 3)
    s = [
        f"SELECT {c[0]}, {c[1]}, {c[2]} FROM public.{t} WHERE {c[0]} = $1 AND {c[1]} > $2 ORDER BY {c[2]} LIMIT $3;\n",
        f"-- query {i}\nINSERT INTO public.{t} ({c[0]}, {c[1]}, {c[2]})\n  VALUES ($1, $2, $3)\n  RETURNING id;\n",
        f"UPDATE public.{t} SET {c[0]} = $1, {c[1]} = 'x;y' WHERE id = $2;\n",
        f"/* batch {i} */ DELETE FROM public.{t} WHERE {c[0]} = ANY($1);\n",
        f"SELECT t.{c[0]}, count(*) FROM public.{t} t JOIN public.users u ON u.id = t.user_id\n"
        f" WHERE t.{c[1]} BETWEEN $1 AND $2 GROUP BY 1 HAVING count(*) > $3;\n",
    ][i % 5]
    sys.stdout.write(s)
    written, i = written + len(s), i + 1
PY
  echo "$path"
}

read_seconds() { # corpus path; prints the run's wall seconds
  local scenario="$WORK/scenario.yaml" t0 t1 code=0
  cat > "$scenario" <<YAML
name: corpus-read
dump: $ROOT/snapshots/demo.dump
postgres:
  backend: local
migrations:
  tool: sql
  dir: migrations
compat:
  queries: $1
race: { replicas: 1, command: ./up.sh }
YAML
  t0=$(date +%s.%N)
  "$REHEARSE" run "$scenario" -q >/dev/null 2>"$WORK/stderr" || code=$?
  t1=$(date +%s.%N)
  if [ "$code" != 3 ] || ! grep -q "race.replicas is 1" "$WORK/stderr"; then
    echo "corpus-read: the run did not stop after the read (exit $code):" >&2
    cat "$WORK/stderr" >&2
    exit 1
  fi
  python3 -c "print(round($t1 - $t0, 2))"
}

echo "| corpus | statements | read | per MB | ratio per MB |"
echo "|--:|--:|--:|--:|--:|"
baseline=""
for mb in $SIZES; do
  path="$(corpus "$mb")"
  statements="$(grep -c ';$' "$path")"
  seconds="$(read_seconds "$path")"
  per_mb="$(python3 -c "print(round($seconds / $mb, 3))")"
  baseline="${baseline:-$per_mb}"
  echo "| $mb MB | $statements | ${seconds}s | ${per_mb}s | $(python3 -c "print(round($per_mb / $baseline, 2))") |"
done
echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg); binary: $REHEARSE"
