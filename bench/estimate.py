#!/usr/bin/env python3
"""Compares rehearse's production-scale estimates with the measurements at
that scale and writes bench/ESTIMATE.md (see bench/estimate.sh)."""
import argparse
import glob
import json
import os
import statistics
import subprocess

TARGET_MS = 500
MID_TOLERANCE = 0.25


def load(pattern):
    return [json.load(open(p)) for p in sorted(glob.glob(pattern))]


def by_id(reports):
    out = {}
    for r in reports:
        for m in r["migrations"]:
            out.setdefault(m["id"], []).append(m)
    return out


def block(m):
    return max((b["held_ms"] for b in (m.get("longest_read_block"), m.get("longest_write_block")) if b), default=0)


def est_block(e):
    r, w = e["longest_read_block_ms"], e["longest_write_block_ms"]
    return r if r["mid"] >= w["mid"] else w


def median_range(ranges):
    return {k: statistics.median(r[k] for r in ranges) for k in ("low", "mid", "high")}


def fmt_ms(ms):
    ms = int(round(ms))
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60000:
        return f"{ms / 1000:.1f}s"
    return f"{ms // 60000}m {ms // 1000 % 60:02d}s"


def judge(actual, rng):
    """(within [low, high], mid's error in percent)."""
    inside = rng["low"] <= actual <= rng["high"]
    err = (rng["mid"] - actual) / actual * 100 if actual else 0.0
    return inside, err


def main():
    p = argparse.ArgumentParser()
    for a in ("--rounds-dir", "--out", "--small", "--big", "--stats", "--command"):
        p.add_argument(a, required=True)
    a = p.parse_args()
    est = by_id(load(os.path.join(a.rounds_dir, "estimated-*.json")))
    act = by_id(load(os.path.join(a.rounds_dir, "actual-*.json")))
    version = load(os.path.join(a.rounds_dir, "actual-*.json"))[0]["postgres"]["version"]
    rows, misses, checked = [], [], 0
    for mid in est:
        if mid not in act:
            continue
        small_ms = statistics.median(m["duration_ms"] for m in est[mid])
        big_ms = statistics.median(m["duration_ms"] for m in act[mid])
        e_time = median_range([m["estimate"]["duration_ms"] for m in est[mid]])
        e_block = median_range([est_block(m["estimate"]) for m in est[mid]])
        big_block = statistics.median(block(m) for m in act[mid])
        basis = est[mid][0]["estimate"]["basis"]
        checks = []
        for what, actual, rng in (("time", big_ms, e_time), ("longest block", big_block, e_block)):
            if actual < TARGET_MS:
                checks.append("-")
                continue
            checked += 1
            inside, err = judge(actual, rng)
            ok = inside and abs(err) <= MID_TOLERANCE * 100
            checks.append(f"{err:+.0f}%{'' if ok else ' **missed**'}")
            if not ok:
                misses.append(f"`{mid}` {what}: measured {fmt_ms(actual)}, estimated {fmt_ms(rng['mid'])} "
                              f"({fmt_ms(rng['low'])}–{fmt_ms(rng['high'])}); basis: {'; '.join(basis)}")
        rows.append(
            f"| `{mid}` | {fmt_ms(small_ms)} | {fmt_ms(e_time['mid'])} ({fmt_ms(e_time['low'])}–{fmt_ms(e_time['high'])}) "
            f"| {fmt_ms(big_ms)} | {checks[0]} | {fmt_ms(e_block['mid'])} ({fmt_ms(e_block['low'])}–{fmt_ms(e_block['high'])}) "
            f"| {fmt_ms(big_block)} | {checks[1]} |"
        )
    # The release as a whole: judged like a migration.
    est_runs = load(os.path.join(a.rounds_dir, "estimated-*.json"))
    act_runs = load(os.path.join(a.rounds_dir, "actual-*.json"))
    total = median_range([r["totals"]["estimate"]["duration_ms"] for r in est_runs])
    total_actual = statistics.median(r["totals"]["duration_ms"] for r in act_runs)
    inside, err = judge(total_actual, total)
    checked += 1
    ok = inside and abs(err) <= MID_TOLERANCE * 100
    if not ok:
        misses.append(f"the release's total: measured {fmt_ms(total_actual)}, estimated {fmt_ms(total['mid'])}")
    rows.append(
        f"| **the release** | {fmt_ms(statistics.median(r['totals']['duration_ms'] for r in est_runs))} "
        f"| {fmt_ms(total['mid'])} ({fmt_ms(total['low'])}–{fmt_ms(total['high'])}) | {fmt_ms(total_actual)} "
        f"| {err:+.0f}%{'' if ok else ' **missed**'} | | | |"
    )
    wal = median_range([r["totals"]["estimate"]["wal_bytes"] for r in est_runs])
    wal_actual = statistics.median(r["totals"]["wal_bytes"] for r in act_runs)
    mb = lambda b: f"{b / 1048576:.0f} MB"
    wal_line = (f"WAL of the release: estimated {mb(wal['mid'])} ({mb(wal['low'])}–{mb(wal['high'])}), measured "
                f"{mb(wal_actual)} ({(wal['mid'] - wal_actual) / wal_actual * 100:+.0f}%).")
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with open(a.out, "w") as out:
        w = lambda s="": out.write(s + "\n")
        w("# Production-scale estimates: accuracy")
        w()
        w(f"Written by `{a.command}` at commit {rev}, PostgreSQL {version}, on this repository's CI machine kind "
          "(2 cores, 24 GiB). The demo database (snapshots/generate.sh) at scale "
          f"{a.small} is rehearsed with `estimate.production` pointing at `rehearse stats` of the same database at "
          f"scale {a.big} (4×), then rehearsed at scale {a.big}; figures are medians of the rounds. The release is "
          "the demo's migrations (scenarios/demo/migrations/) and bench/estimate-release/.")
        w()
        w(f"Targets: for every migration that takes ≥ {TARGET_MS} ms at scale {a.big}, the measured time lies within "
          f"[low, high] and mid is within ±{int(MID_TOLERANCE * 100)}% of it; the same for the longest blocking lock. "
          "`-`: under the threshold, not judged. Error = (mid − measured) / measured.")
        w()
        w(f"| Migration | Measured at {a.small} | Estimate for {a.big}: mid (low–high) | Measured at {a.big} | Time error "
          f"| Block estimate | Block at {a.big} | Block error |")
        w("|---|--:|--:|--:|--:|--:|--:|--:|")
        for r in rows:
            w(r)
        w()
        w(wal_line)
        w()
        w(f"{checked} figure(s) judged, {len(misses)} missed.")
        if misses:
            w()
            w("Missed:")
            w()
            for m in misses:
                w(f"- {m}")
        w()
        stats = json.load(open(a.stats))
        limits = ", ".join(f"{k} {stats.get('settings', {}).get(k, '?')}"
                           for k in ("work_mem", "hash_mem_multiplier", "maintenance_work_mem"))
        w(f"Sorts and hashes flagged as spilling at scale {a.big} (production's limits from the stats file: {limits}; "
          "the memory is EXPLAIN ANALYZE's on the copy × the rows ratio; a flagged statement's time is widened, mid "
          "×1.3 and high ×1.8):")
        w()
        flagged = [(m["id"], s) for m in est_runs[0]["migrations"] for s in (m.get("estimate") or {}).get("spills", [])]
        for mid, sp in flagged:
            w(f"- `{mid}`: {sp['node']} needs {sp['need_bytes'] / 1048576:.1f} MB, over {sp['limit_setting']} "
              f"({sp['limit_bytes'] / 1048576:.1f} MB)")
        if not flagged:
            w("- none")
        w()
        w("Why a figure can miss: the estimate scales what was measured by size ratios. A plan can change with the "
          "statistics (0009's hash join turns into a nested loop at 6.0), and a spill's cost is modelled from one "
          "measurement; tables that outgrow shared_buffers turn cached reads into disk reads. All are slower (or "
          "faster) than any ratio says.")
        w()
        w("Commands:")
        w()
        w("```")
        w("make bench-estimate        # runs bench/estimate.sh, then bench/estimate.py")
        w(f"rehearse stats --url 'host=... dbname=shop' --out {os.path.relpath(a.stats)}")
        w("rehearse run bench/out/estimate/estimated.yaml --no-cache   # scale %s, estimate.production: the stats" % a.small)
        w("rehearse run bench/out/estimate/actual.yaml --no-cache      # scale %s" % a.big)
        w("```")


if __name__ == "__main__":
    main()
