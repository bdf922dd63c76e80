#!/usr/bin/env python3
"""Scale `rehearse stats` output up, to stand for a bigger production.

    snapshots/scale-stats.py IN.json OUT.json FACTOR [--min-rows N]

Multiplies rows, pages, bytes and total_bytes of every table with at least
N rows (default 1000: small reference tables such as coupons, and the
migration tools' history tables, stay as they are), and of its indexes,
TOAST table and TOAST index. The result says in `database` that it was scaled.

snapshots/demo-prod-stats.json was made with it from `rehearse stats` of a
server holding snapshots/demo.dump (restored, then VACUUM ANALYZE), scaled
50 times: a production 50x the demo's data, for scenarios/demo.yaml's
`estimate:` section. Its `role` (migrator: not a superuser, a member of
app, statement_timeout 60s and maintenance_work_mem 256MB at role level)
and `server_settings` were written in by hand, as a plausible production's,
for that scenario's `production:` section and the estimate's limits.
"""
import json
import sys


def main():
    args = sys.argv[1:]
    min_rows = 1000
    if "--min-rows" in args:
        i = args.index("--min-rows")
        min_rows = int(args[i + 1])
        del args[i : i + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    src, dst, factor = args[0], args[1], float(args[2])
    stats = json.load(open(src))
    big = {r["relation"] for r in stats["relations"] if r["kind"] == "table" and r["rows"] >= min_rows}
    # A TOAST index belongs to its TOAST table, which belongs to the table.
    big |= {r["relation"] for r in stats["relations"] if r.get("table") in big}
    for r in stats["relations"]:
        if r["relation"] in big or r.get("table") in big:
            for key in ("rows", "pages", "bytes", "total_bytes"):
                if r[key] > 0:
                    r[key] = int(round(r[key] * factor))
    stats["database"] = f"{stats['database']} (scaled {factor:g}x by snapshots/scale-stats.py)"
    with open(dst, "w") as out:
        json.dump(stats, out, indent=2)
        out.write("\n")


if __name__ == "__main__":
    main()
