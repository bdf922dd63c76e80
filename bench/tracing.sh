#!/usr/bin/env bash
# make bench-tracing: what tracing an Alembic revision's statements costs, on
# a revision of 10,000 small statements (bench/tracing/: runs of 100 INSERTs
# and 100 UPDATEs, alternating, in one transaction). Writes bench/TRACING.md.
#
# Four columns, measured in the same run, each round running all four in turn
# (so a slow spell of a shared machine hits them all):
#   by hand    `alembic upgrade head` on a scratch server: the revision's own
#              time, as the revision measures it (and the command's wall time)
#   untraced   rehearse --no-observe --no-trace: the revision's duration_ms
#   traced     rehearse --no-observe: statements traced, nothing else watching
#   observed   rehearse as a user runs it: traced, and the lock sampler
#              (10 ms), probes and statistics watching
# traced / untraced is tracing's own cost (the target: within 1.10);
# observed / traced is what observation adds on top, reported apart.
#
# Knobs: BENCH_TRACING_ROUNDS (default 9), REHEARSE_BIN (default
# target/debug/rehearse).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
ROUNDS="${BENCH_TRACING_ROUNDS:-9}"
REHEARSE="${REHEARSE_BIN:-$REHEARSE}"
PROJECT="$ROOT/bench/tracing"
PYTHON="$ROOT/.venv/bin/python"
WORK="$OUT/tracing"
rm -rf "$WORK"
mkdir -p "$WORK/rounds"
chmod 755 "$WORK"
[ -x "$PYTHON" ] || { echo "no $PYTHON: run make deps" >&2; exit 4; }

start_staging
# The copy rehearse restores: an empty database (the revision makes its table).
"$BIN/createdb" tracing_base
"$BIN/pg_dump" -Fc -f "$WORK/empty.dump" tracing_base
chmod 644 "$WORK/empty.dump"
cat > "$WORK/tracing.yaml" <<YAML
name: bench-tracing
dump: $WORK/empty.dump
postgres:
  backend: local
migrations:
  tool: alembic
  dir: $PROJECT
  python: $PYTHON
report:
  dir: $WORK/reports
  formats: [json]
YAML

by_hand() { # round
  local db="hand_$1" t0 t1
  "$BIN/createdb" "$db"
  t0=$(date +%s.%N)
  BENCH_URL="postgresql://postgres@/$db?host=$PGHOST&port=$PGPORT" \
    "$PYTHON" -m alembic -c "$PROJECT/alembic.ini" upgrade head 2> "$WORK/rounds/hand-$1.stderr"
  t1=$(date +%s.%N)
  "$BIN/dropdb" "$db"
  local revision
  revision=$(sed -n 's/^bench-revision-seconds //p' "$WORK/rounds/hand-$1.stderr")
  python3 -c "print(round($revision * 1000), round(($t1 - $t0) * 1000))" > "$WORK/rounds/hand-$1.ms"
}

rehearsed() { # label round args...
  local label="$1" round="$2"
  shift 2
  "$REHEARSE" run "$WORK/tracing.yaml" -q "$@" > /dev/null
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['migrations'][0]['duration_ms'])" \
    "$WORK/reports/report.json" > "$WORK/rounds/$label-$round.ms"
}

for i in $(seq 1 "$ROUNDS"); do
  echo "==> round $i/$ROUNDS: by hand, untraced, traced, observed" >&2
  by_hand "$i"
  rehearsed untraced "$i" --no-observe --no-trace
  rehearsed traced "$i" --no-observe
  rehearsed observed "$i"
done
PG_VERSION="$("$BIN/postgres" --version | awk '{print $3}')"
stop_staging

python3 - "$WORK/rounds" "$ROUNDS" "$PG_VERSION" > "$ROOT/bench/TRACING.md" <<'PY'
import os, platform, statistics, subprocess, sys
rounds_dir, rounds, pg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
read = lambda name: open(os.path.join(rounds_dir, name)).read().split()
hand = [list(map(int, read(f"hand-{i}.ms"))) for i in range(1, rounds + 1)]
col = {k: [int(read(f"{k}-{i}.ms")[0]) for i in range(1, rounds + 1)] for k in ("untraced", "traced", "observed")}
med = lambda xs: statistics.median(xs)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print("# Tracing's cost on a revision of 10,000 statements\n")
print("Produced by `make bench-tracing` (`bench/tracing.sh`, BENCH_TRACING_ROUNDS=%d) on %s, %d CPUs (%s), "
      "PostgreSQL %s, Python %s. The revision (`bench/tracing/versions/t1_many_statements.py`) sends 10,002 "
      "statements in one transaction: a CREATE TABLE, runs of 100 INSERTs and 100 UPDATEs alternating, and a "
      "CREATE INDEX. Times in ms; each round runs the four columns in turn.\n"
      % (rounds, platform.node() or "?", os.cpu_count(), cpu, pg, platform.python_version()))
print("| round | by hand: revision (whole command) | rehearse untraced | rehearse traced | rehearse traced + observed |")
print("|---|---|---|---|---|")
for i in range(rounds):
    print(f"| {i + 1} | {hand[i][0]} ({hand[i][1]}) | {col['untraced'][i]} | {col['traced'][i]} | {col['observed'][i]} |")
m_hand, m_whole = med([h[0] for h in hand]), med([h[1] for h in hand])
m = {k: med(v) for k, v in col.items()}
print(f"| **median** | **{m_hand:.0f}** ({m_whole:.0f}) | **{m['untraced']:.0f}** | **{m['traced']:.0f}** | **{m['observed']:.0f}** |\n")
paired = sorted(t / u for t, u in zip(col["traced"], col["untraced"]))
print(f"- **Tracing's own cost: traced / untraced = {m['traced'] / m['untraced']:.2f}** (medians; the median of "
      f"the rounds' own ratios is {med(paired):.2f}, from {paired[0]:.2f} to {paired[-1]:.2f}). Observation is off "
      "in both (`--no-observe`, and `--no-trace` for untraced); the target is within 1.10.")
print(f"- Observation on top of tracing (lock sampler every 10 ms, probes, statistics): observed / traced = "
      f"{m['observed'] / m['traced']:.2f}.")
print(f"- rehearse untraced / by hand = {m['untraced'] / m_hand:.2f}: rehearse's pacing and the helper's "
      "transaction hooks, without tracing.")
print("\nOn a machine shared with other work, one run of the same revision varies by a quarter or more "
      "(the statements' round trips to the server, not the tracer), so single rounds say little; the medians over "
      "the rounds are the figures. What the tracer adds is a few microseconds a statement (timing it and computing "
      "its shape) and one lock probe a batch (here 102 batches: the runs of 100 statements of one shape).")
print("\nBy hand is the revision's own time (it prints it); rehearse's columns are the revision's `duration_ms`, "
      "which also holds the version table's update and the commit. The whole command (in brackets) adds Python's "
      "start-up and imports, which rehearse reports apart as `startup_ms`.")
PY
cat "$ROOT/bench/TRACING.md"
