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
# Knobs: BENCH_SCALE (default 6, ~1 GB restored), BENCH_ROUNDS (default 2: with
# 3 the run exceeds 15 minutes on 2 cores).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/bench/out"
SCALE="${BENCH_SCALE:-6}"
SMALL_SCALE="$(python3 -c "print($SCALE / 4)")"
ROUNDS="${BENCH_ROUNDS:-2}"
REHEARSE="$ROOT/target/debug/rehearse"
MIGRATIONS="$ROOT/scenarios/demo/migrations"
mkdir -p "$OUT"
chmod 755 "$OUT"

pg_bin() {
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1
}
BIN="$(pg_bin)"
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# ---------------------------------------------------------------- dumps
dump_for() {
  local scale="$1" path="$OUT/demo-scale-$1.dump"
  if [ ! -s "$path" ]; then
    echo "==> generating the demo database at scale $scale" >&2
    "$ROOT/snapshots/generate.sh" --scale "$scale" --out "$path" >&2
  fi
  echo "$path"
}
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

# ---------------------------------------------------------------- (a) runbook
# A staging server with default settings, started once and not timed (the
# runbook assumes one exists), as the postgres user when we are root.
STAGING="$(mktemp -d /tmp/rehearse-bench-staging.XXXXXX)"
chmod 755 "$STAGING"
AS=()
if [ "$(id -u)" = 0 ]; then chown postgres "$STAGING"; AS=(runuser -u postgres --); fi
cleanup() { "${AS[@]}" "$BIN/pg_ctl" -D "$STAGING/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$STAGING"; }
trap cleanup EXIT INT TERM
"${AS[@]}" "$BIN/initdb" -D "$STAGING/data" -U postgres --auth=trust >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${AS[@]}" "$BIN/pg_ctl" -D "$STAGING/data" -l "$STAGING/log" -w -o "-p $PORT -k $STAGING -c listen_addresses=''" start >/dev/null
export PGHOST="$STAGING" PGPORT="$PORT" PGUSER=postgres
"$BIN/psql" -X -q -d postgres -c "CREATE ROLE app NOLOGIN; CREATE ROLE readonly NOLOGIN;"

runbook_round() {
  local db="runbook_$1" t0 t1
  t0=$(now)
  "$BIN/createdb" "$db"
  "$BIN/pg_restore" -d "$db" "$DUMP"
  for f in "$MIGRATIONS"/00{03,04,05,06,07,08,09,10}_*.sql; do
    "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$f" >/dev/null
  done
  t1=$(now)
  "$BIN/dropdb" "$db"
  python3 -c "print(round($t1 - $t0, 1))"
}

# ---------------------------------------------------------------- (b)-(e) rehearse
rehearse_round() { # label scenario extra-args...
  local label="$1" scen="$2"; shift 2
  local t0 t1
  t0=$(now)
  /usr/bin/time -f "%M" -o "$OUT/rss-$label" "$REHEARSE" run "$scen" -q "$@" >/dev/null
  t1=$(now)
  python3 -c "print(round($t1 - $t0, 1))"
}
migrations_ms() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals']['duration_ms'])" "$1"; }

export REHEARSE_CACHE_DIR="$OUT/cache"
rm -rf "$REHEARSE_CACHE_DIR"
declare -a A B C ON OFF
for i in $(seq 1 "$ROUNDS"); do
  echo "==> round $i/$ROUNDS" >&2
  A+=("$(runbook_round "$i")")
  B+=("$(rehearse_round cold "$BIG" --no-cache)")
  cp "$OUT/rss-cold" "$OUT/rss-big"
done
echo "==> priming the snapshot cache" >&2
rehearse_round prime "$BIG" >/dev/null
for i in $(seq 1 "$ROUNDS"); do
  C+=("$(rehearse_round warm "$BIG")")
  ON+=("$(migrations_ms "$OUT/reports/big/report.json")")
  rehearse_round off "$BIG" --no-observe >/dev/null
  OFF+=("$(migrations_ms "$OUT/reports/big/report.json")")
done
rehearse_round small "$SMALL" --no-cache >/dev/null

a=$(printf '%s\n' "${A[@]}" | median); b=$(printf '%s\n' "${B[@]}" | median); c=$(printf '%s\n' "${C[@]}" | median)
on=$(printf '%s\n' "${ON[@]}" | median); off=$(printf '%s\n' "${OFF[@]}" | median)
rss_big=$(cat "$OUT/rss-big"); rss_small=$(cat "$OUT/rss-small")
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
verdict() { python3 -c "print('met' if $1 <= $2 else 'missed')"; }

restored=$(python3 -c "import json; r=json.load(open('$OUT/reports/big/report.json')); print(round(r['dump']['database_bytes']/2**20))")
cat > "$ROOT/bench/RESULTS.md" <<MD
# Benchmark results

Made by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%d), $ROUNDS rounds each, medians.
Load average when it finished: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may have been shared).

Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, disk $(df -h "$OUT" | awk 'NR==2 {print $2}') ($(df -h "$OUT" | awk 'NR==2 {print $1}')),
PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'), rehearse debug build.
Dump: snapshots/generate.sh --scale $SCALE, $(du -h "$DUMP" | cut -f1) custom format, ${restored} MB restored;
migrations: the demo release (scenarios/demo/migrations 0003-0010).

| Measure | Median | Ratio | Target | |
|---|--:|--:|--:|---|
| (a) runbook: createdb + pg_restore (1 job, default settings) + psql migrations | ${a}s | 1.00 | | baseline |
| (b) rehearse cold (--no-cache), full observation | ${b}s | $(ratio "$b" "$a") | ≤ 0.75 | $(verdict "$(ratio "$b" "$a")" 0.75) |
| (c) rehearse warm (snapshot cache hit) | ${c}s | $(ratio "$c" "$a") | ≤ 0.20 | $(verdict "$(ratio "$c" "$a")" 0.20) |
| (d) migrations, observation on vs off (warm runs) | ${on} ms vs ${off} ms | $(ratio "$on" "$off") | ≤ 1.05 | $(verdict "$(ratio "$on" "$off")" 1.05) |
| (e) rehearse peak RSS, scale $SCALE vs $SMALL_SCALE | $((rss_big / 1024)) MB vs $((rss_small / 1024)) MB | $(ratio "$rss_big" "$rss_small") | < 64 MB, flat | $(verdict "$rss_big" 65536) |

Rounds: runbook ${A[*]} s; cold ${B[*]} s; warm ${C[*]} s; migrations with observation ${ON[*]} ms, without ${OFF[*]} ms.

Commands (bench/run.sh): the runbook is \`createdb; pg_restore -d DB DUMP; psql -v ON_ERROR_STOP=1 -f\` each migration,
against a server started once with default settings (not timed). rehearse runs are
\`/usr/bin/time -f %M target/debug/rehearse run SCENARIO -q [--no-cache | --no-observe]\`, timed whole
(provisioning, restore, VACUUM ANALYZE, migrations, report, cleanup). Re-run with \`make bench\`
(BENCH_SCALE, BENCH_ROUNDS to change the size and rounds).

MD
cat "$ROOT/bench/NOTES.md" >> "$ROOT/bench/RESULTS.md"
cat "$ROOT/bench/RESULTS.md"
