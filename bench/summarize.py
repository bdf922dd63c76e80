#!/usr/bin/env python3
"""Turns the runs bench/run.sh kept in bench/out/rounds into bench/RESULTS.md.

Each rehearse run left LABEL.seconds (wall time), LABEL.rss (peak RSS in KB,
from /usr/bin/time -f %M) and LABEL.json (its report, with per-stage and
per-migration times); each runbook round left runbook-N.seconds ("total
restore migrations") and runbook-N.migrations ("name ms" per file).
Every figure is a median over rounds, every ratio against the runbook
measured in the same run.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import time

TARGETS = {"cold": 0.75, "warm": 0.20, "observe": 1.05, "rss_kb": 64 * 1024}


def read(path):
    with open(path) as f:
        return f.read().strip()


def runs(rounds, prefix):
    """The reports of runs LABEL-N, in round order, with their wall time and RSS."""
    found = []
    for path in sorted(glob.glob(os.path.join(rounds, f"{prefix}-*.json"))):
        label = path[: -len(".json")]
        report = json.load(open(path))
        report["_seconds"] = float(read(label + ".seconds"))
        report["_rss_kb"] = int(read(label + ".rss"))
        found.append(report)
    if not found:
        raise SystemExit(f"summarize: no {prefix}-N runs in {rounds}: did bench/run.sh stop early?")
    return found


def stage_seconds(report):
    """Seconds per stage (a stage that ran twice, like prepare, summed), plus what no stage covers."""
    stages = {}
    for s in report["stages"]:
        stages[s["stage"]] = stages.get(s["stage"], 0) + s["duration_ms"] / 1000
    stages["outside stages (start-up, dump checksum, writing files)"] = report["_seconds"] - sum(stages.values())
    return stages


def median_of(dicts):
    keys = [k for d in dicts for k in d]
    return {k: statistics.median(d.get(k, 0) for d in dicts) for k in dict.fromkeys(keys)}


def ratio(x, y):
    return x / y if y else float("nan")


def verdict(value, target):
    return "met" if value <= target else "missed"


def machine(out_dir, dump):
    mem_kb = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal:")))
    df = subprocess.run(["df", "-h", out_dir], capture_output=True, text=True).stdout.splitlines()[1].split()
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20),
        "disk": f"{df[1]} ({df[0]})",
        "load": " ".join(read("/proc/loadavg").split()[:3]),
        "dump_size": subprocess.run(["du", "-h", dump], capture_output=True, text=True).stdout.split()[0],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--scale", required=True)
    p.add_argument("--small-scale", required=True)
    p.add_argument("--dump", required=True)
    p.add_argument("--pg-version", required=True)
    p.add_argument("--notes", required=True)
    a = p.parse_args()
    rounds = a.rounds_dir

    runbook = [list(map(float, read(f).split())) for f in sorted(glob.glob(f"{rounds}/runbook-*.seconds"))]
    if not runbook:
        raise SystemExit(f"summarize: no runbook rounds in {rounds}")
    rb_total = statistics.median(r[0] for r in runbook)
    rb_restore = statistics.median(r[1] for r in runbook)
    rb_migrations = statistics.median(r[2] for r in runbook)
    rb_per_migration = {}
    for f in sorted(glob.glob(f"{rounds}/runbook-*.migrations")):
        for line in open(f):
            name, ms = line.split()
            rb_per_migration.setdefault(name, []).append(int(ms))

    cold, warm, off = runs(rounds, "cold"), runs(rounds, "warm"), runs(rounds, "off")
    small = json.load(open(f"{rounds}/small.json"))
    small["_rss_kb"] = int(read(f"{rounds}/small.rss"))

    b = statistics.median(r["_seconds"] for r in cold)
    c = statistics.median(r["_seconds"] for r in warm)
    on_ms = statistics.median(r["totals"]["duration_ms"] for r in warm)
    off_ms = statistics.median(r["totals"]["duration_ms"] for r in off)
    rss_big = max(r["_rss_kb"] for r in cold + warm + off)
    rss_small = small["_rss_kb"]
    m = machine(os.path.dirname(rounds), a.dump)
    restored_mb = round(cold[0]["dump"]["database_bytes"] / 2**20)
    jobs = cold[0]["restore"]["jobs"]

    fmt = lambda s: f"{s:.1f}s"
    r_cold, r_warm, r_obs = ratio(b, rb_total), ratio(c, rb_total), ratio(on_ms, off_ms)
    lines = [
        "# Benchmark results",
        "",
        f"Made by `make bench` (bench/run.sh, bench/summarize.py) on {time.strftime('%Y-%m-%d', time.gmtime())}: "
        f"{len(runbook)} runbook and cold rounds, {len(warm)} warm rounds with observation on and off; medians.",
        f"Load average when it finished: {m['load']} (the machine may have been shared).",
        "",
        f"Machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, disk {m['disk']}, PostgreSQL {a.pg_version}, "
        "rehearse debug build.",
        f"Dump: `snapshots/generate.sh --scale {a.scale}`, {m['dump_size']} custom format, {restored_mb} MB restored; "
        "migrations: the demo release (scenarios/demo/migrations 0003-0010).",
        "",
        "| Measure | Median | Ratio | Target | |",
        "|---|--:|--:|--:|---|",
        f"| (a) runbook: createdb + pg_restore (1 job, default settings) + psql migrations | {fmt(rb_total)} | 1.00 | | baseline |",
        f"| (b) rehearse cold (--no-cache), full observation | {fmt(b)} | {r_cold:.2f} | ≤ {TARGETS['cold']:.2f} | {verdict(r_cold, TARGETS['cold'])} |",
        f"| (c) rehearse warm (snapshot cache hit), full observation | {fmt(c)} | {r_warm:.2f} | ≤ {TARGETS['warm']:.2f} | {verdict(r_warm, TARGETS['warm'])} |",
        f"| (d) migrations, observation on vs off (warm runs) | {on_ms / 1000:.2f}s vs {off_ms / 1000:.2f}s | {r_obs:.3f} | ≤ {TARGETS['observe']:.2f} | {verdict(r_obs, TARGETS['observe'])} |",
        f"| (e) rehearse peak RSS, scale {a.scale} vs {a.small_scale} | {rss_big // 1024} MB vs {rss_small // 1024} MB | {ratio(rss_big, rss_small):.2f} | < 64 MB, flat | {verdict(rss_big, TARGETS['rss_kb'])} |",
        "",
        "Rounds (s): runbook " + " ".join(f"{r[0]:.1f}" for r in runbook)
        + "; cold " + " ".join(f"{r['_seconds']:.1f}" for r in cold)
        + "; warm " + " ".join(f"{r['_seconds']:.1f}" for r in warm)
        + "; migrations observed " + " ".join(f"{r['totals']['duration_ms'] / 1000:.2f}" for r in warm)
        + ", unobserved " + " ".join(f"{r['totals']['duration_ms'] / 1000:.2f}" for r in off) + ".",
        "",
        "## Where the time goes",
        "",
        "Medians in seconds. rehearse's stages come from each run's report.json (`stages`); the runbook's split "
        "is timed around its pg_restore and its psql calls.",
        "",
        "| Stage | runbook | rehearse cold | rehearse warm |",
        "|---|--:|--:|--:|",
    ]
    cold_st, warm_st = median_of([stage_seconds(r) for r in cold]), median_of([stage_seconds(r) for r in warm])
    runbook_st = {"restore": rb_restore, "rehearse": rb_migrations}
    labels = {
        "provision": "provision (initdb or copy of the cached cluster, start)",
        "restore": f"restore (rehearse: pg_restore --jobs={jobs}, fast settings)",
        "analyze": "analyze (VACUUM ANALYZE on parallel sessions, CHECKPOINT)",
        "snapshot": "snapshot (saving the cache entry)",
        "prepare": "prepare (prod-like settings, restart for wal_level)",
        "report": "report (build and render)",
        "rehearse": "migrations (rehearse: observed)",
    }
    for stage in dict.fromkeys(list(cold_st) + list(warm_st)):
        cell = lambda d: f"{d[stage]:.2f}" if stage in d else "-"
        lines.append(f"| {labels.get(stage, stage)} | {cell(runbook_st)} | {cell(cold_st)} | {cell(warm_st)} |")
    lines.append(f"| **total** | {rb_total:.2f} | {b:.2f} | {c:.2f} |")
    lines += [
        "",
        f"The migrations alone take {rb_migrations:.1f}s in the runbook, {rb_migrations / rb_total:.2f} of its total: "
        f"no harness can finish a rehearsal in less. rehearse's share beyond its migrations: cold "
        f"{b - cold_st.get('rehearse', 0):.1f}s against the runbook's {rb_total - rb_migrations:.1f}s "
        f"({ratio(b - cold_st.get('rehearse', 0), rb_total - rb_migrations):.2f}), warm "
        f"{c - warm_st.get('rehearse', 0):.1f}s ({ratio(c - warm_st.get('rehearse', 0), rb_total - rb_migrations):.2f}).",
        "",
        "Per migration (median ms): the runbook's psql, rehearse observed (warm runs), rehearse unobserved.",
        "",
        "| Migration | runbook psql | observed | unobserved | observed / unobserved |",
        "|---|--:|--:|--:|--:|",
    ]
    per = lambda reps: {
        mig["id"]: statistics.median(r_mig["duration_ms"] for r in reps for r_mig in r["migrations"] if r_mig["id"] == mig["id"])
        for mig in reps[0]["migrations"]
    }
    on_per, off_per = per(warm), per(off)
    for mid in on_per:
        rb = rb_per_migration.get(mid)
        rb_cell = f"{statistics.median(rb):.0f}" if rb else "-"
        lines.append(
            f"| {mid} | {rb_cell} | {on_per[mid]:.0f} | {off_per.get(mid, 0):.0f} | {ratio(on_per[mid], off_per.get(mid, 0)):.2f} |"
        )
    lines += [
        "",
        "Commands: the runbook is `createdb; pg_restore -d DB DUMP; psql -X -q -v ON_ERROR_STOP=1 -f` each migration, "
        "against a server started once with default settings (not timed). rehearse runs are "
        "`/usr/bin/time -f %M target/debug/rehearse run SCENARIO -q [--no-cache | --no-observe]`, timed whole "
        "(provisioning, restore, VACUUM ANALYZE, migrations, report, cleanup). Re-run with `make bench` "
        "(BENCH_SCALE, BENCH_ROUNDS, BENCH_OBSERVE_ROUNDS change the size and rounds); each run's report stays in "
        "bench/out/rounds.",
        "",
    ]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
        f.write(open(a.notes).read())


if __name__ == "__main__":
    main()
