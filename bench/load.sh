#!/usr/bin/env bash
# make bench-load (and make bench): what the load generator (`load:`) costs
# and reaches on this machine, measured in one run against a baseline of the
# same rehearsal without load:
#
#   (a) the demo release without load, warm (snapshot cache hit)
#   (b) the same release under the demo's workload at BENCH_LOAD_RATE
#       statements/s from 8 clients, no long transaction
#   (c) the same at BENCH_LOAD_HIGH_RATE, to see where this machine stops
#       keeping up (rate reached against asked)
#
# Reported: the migrations' summed time under load against (a) (a ratio),
# the rate reached against the asked one, the generator thread's CPU share of
# one core. Rounds alternate (a) and (b) so drift on a shared machine hits both.
#
# Knobs: BENCH_LOAD_ROUNDS (default 3), BENCH_LOAD_RATE (default 200),
# BENCH_LOAD_HIGH_RATE (default 3000). Writes bench/LOAD.md.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
ROUNDS="${BENCH_LOAD_ROUNDS:-3}"
RATE="${BENCH_LOAD_RATE:-200}"
HIGH="${BENCH_LOAD_HIGH_RATE:-3000}"
WORK="$OUT/load"
rm -rf "$WORK" && mkdir -p "$WORK"

scenario() { # name load-section
  cat > "$WORK/$1.yaml" <<YAML
name: bench-load
dump: $ROOT/snapshots/demo.dump
postgres:
  backend: local
migrations:
  tool: sql
  dir: $ROOT/scenarios/demo/migrations
report:
  dir: $WORK/reports/$1
  formats: [json]
$2
YAML
  echo "$WORK/$1.yaml"
}
load() { printf 'load:\n  queries: %s\n  rate: %s/s\n  clients: 8\n  baseline: 1s\n' "$ROOT/scenarios/demo/queries.sql" "$1"; }
IDLE="$(scenario idle "")"
LOADED="$(scenario loaded "$(load "$RATE")")"
HIGHS="$(scenario high "$(load "$HIGH")")"

run() { # scenario round
  local name; name="$(basename "$1" .yaml)"
  "$REHEARSE" run "$1" >/dev/null 2>"$WORK/$name-$2.log" || true
  cp "$WORK/reports/$name/report.json" "$WORK/$name-$2.json"
}
"$REHEARSE" run "$IDLE" >/dev/null 2>&1 || true   # fills the snapshot cache
for i in $(seq 1 "$ROUNDS"); do
  echo "==> round $i of $ROUNDS" >&2
  run "$IDLE" "$i"
  run "$LOADED" "$i"
done
run "$HIGHS" 1

python3 - "$WORK" "$ROUNDS" "$RATE" "$HIGH" > "$ROOT/bench/LOAD.md" <<'PY'
import json, statistics, sys, platform, os
work, rounds, rate, high = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def read(name, i): return json.load(open(f"{work}/{name}-{i}.json"))
def migrations_ms(r): return sum(m["duration_ms"] for m in r["migrations"])
idle = [migrations_ms(read("idle", i)) for i in range(1, rounds + 1)]
loaded = [read("loaded", i) for i in range(1, rounds + 1)]
loaded_ms = [migrations_ms(r) for r in loaded]
hi = read("high", 1)
med = statistics.median
print("# Load generator: cost and reach (`make bench-load`)\n")
print(f"Machine: {os.cpu_count()} CPU(s); PostgreSQL {loaded[0]['postgres']['version']}; the demo dump "
      f"(`snapshots/demo.dump`) and the demo release's 8 pending migrations; workload "
      f"`scenarios/demo/queries.sql` from 8 clients, no long transaction; {rounds} rounds, alternating, medians.\n")
print("| | Migrations' time (sum) | Ratio to no load | Rate asked | Rate reached | Generator CPU (share of one core) |")
print("|---|--:|--:|--:|--:|--:|")
print(f"| No load | {med(idle):.0f} ms | 1.00 | - | - | - |")
l = loaded[0]["load"]
reached = med([r["load"]["rate_reached"] for r in loaded])
share = med([r["load"]["generator_cpu_share"] for r in loaded])
print(f"| Load at {rate}/s | {med(loaded_ms):.0f} ms | {med(loaded_ms) / med(idle):.2f} | {l['rate_asked']}/s | {reached}/s | {share * 100:.0f}% |")
h = hi["load"]
print(f"| Load at {high}/s (1 round) | {migrations_ms(hi):.0f} ms | {migrations_ms(hi) / med(idle):.2f} | {h['rate_asked']}/s | {h['rate_reached']}/s | {h['generator_cpu_share'] * 100:.0f}% |")
print(f"\nStatements not replayed (their parameters could not be filled): {len(l['not_replayed'])} of "
      f"{l['replayed'] + len(l['not_replayed'])}.")
print("\nThe generator shares the 2 cores with the server: the ratio is what the app's traffic (the server's work "
      "on it, and the generator's own) costs the migrations here; production has its own traffic on its own "
      "hardware. Where the rate reached falls short of the asked one, the report says so in bold and the figures "
      "are at the rate reached.")
print(f"\nCommand: `make bench-load` (BENCH_LOAD_ROUNDS={rounds} BENCH_LOAD_RATE={rate} BENCH_LOAD_HIGH_RATE={high}).")
PY
cat "$ROOT/bench/LOAD.md"
