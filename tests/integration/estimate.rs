//! Production-scale estimates against real servers: production's
//! statistics read by `rehearse stats` from a copy of the rehearsed data,
//! then made bigger by editing them.

use rehearse::report::{MigrationReport, MigrationStatus};

use crate::support::{dumps, scale_stats, stats_of_dump, Sandbox};

/// A rewrite of public.orders, a catalog-only change to it and an update of
/// public.customers joined with it, rehearsed
/// with production's statistics in `stats.json` (relative to the scenario).
fn rehearse_with_stats(sandbox: &Sandbox, stats: &std::path::Path) -> Vec<MigrationReport> {
    sandbox.migrations(&[
        ("0001_rewrite_orders.sql", "ALTER TABLE public.orders ALTER COLUMN total TYPE float8;\n"),
        ("0002_catalog_only.sql", "ALTER TABLE public.orders ADD COLUMN flagged boolean;\n"),
        (
            "0003_join.sql",
            "UPDATE public.customers c SET name = name || '' FROM public.orders o WHERE o.customer_id = c.id;\n",
        ),
    ]);
    let scenario = sandbox.scenario(
        &dumps().path("custom"),
        &format!("estimate:\n  production: {}\n", stats.file_name().unwrap().to_str().unwrap()),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    assert!(report.estimate.is_some(), "the report says what the estimates rest on");
    assert!(report.totals.estimate.is_some(), "and estimates the release");
    assert!(out.markdown().contains("## At production scale"));
    assert!(out.stdout.contains("At prod scale"), "{}", out.stdout);
    for m in &report.migrations {
        assert_eq!(m.status, MigrationStatus::Applied, "{}", m.id);
        let e = m.estimate.as_ref().unwrap_or_else(|| panic!("{} has no estimate", m.id));
        assert!(e.duration_ms.low <= e.duration_ms.mid && e.duration_ms.mid <= e.duration_ms.high, "{e:?}");
        assert!(!e.basis.is_empty(), "{}: every estimate says what it rests on", m.id);
    }
    sandbox.assert_no_leaks();
    report.migrations
}

#[test]
fn with_production_the_same_as_the_copy_the_estimate_is_the_measurement() {
    let sandbox = Sandbox::new();
    let stats = stats_of_dump(&dumps().path("custom"), &sandbox.path().join("stats.json"));
    for m in rehearse_with_stats(&sandbox, &stats) {
        let e = m.estimate.unwrap();
        let mid = e.duration_ms.mid as i64;
        assert!(
            (mid - m.duration_ms as i64).abs() <= 1,
            "{}: mid {mid} ms, measured {} ms: {e:?}",
            m.id,
            m.duration_ms
        );
        let wal = e.wal_bytes.mid as i64;
        assert!((wal - m.wal.bytes as i64).abs() <= 8, "{}: WAL {wal}, measured {}", m.id, m.wal.bytes);
    }
}

#[test]
fn a_ten_times_larger_table_takes_ten_times_longer_to_rewrite_but_not_to_alter_its_catalog() {
    let sandbox = Sandbox::new();
    let stats = stats_of_dump(&dumps().path("custom"), &sandbox.path().join("stats.json"));
    scale_stats(&stats, &["public.orders"], 10);
    let migrations = rehearse_with_stats(&sandbox, &stats);
    let (rewrite, catalog, join) = (&migrations[0], &migrations[1], &migrations[2]);
    let e = rewrite.estimate.as_ref().unwrap();
    // The statement scales; the rest of the migration's time (BEGIN, COMMIT,
    // recording it) does not, and on a small table it is a fair share.
    let statement = rewrite.statements[0].duration_ms.max(1);
    let rest = rewrite.duration_ms - rewrite.statements[0].duration_ms;
    let factor = (e.duration_ms.mid - rest) as f64 / statement as f64;
    assert!((9.0..=12.5).contains(&factor), "a 10× rewrite estimated ×{factor:.1}: {e:?} ({statement} ms here)");
    assert!(e.basis.iter().any(|b| b.starts_with("rewrite of public.orders ×10")), "{:?}", e.basis);
    let held = rewrite.longest_read_block.as_ref().unwrap().held_ms;
    let grown = e.longest_read_block_ms.mid.saturating_sub(held.saturating_sub(statement)) as f64 / statement as f64;
    assert!((9.0..=12.5).contains(&grown), "the rewrite's lock grows with it: ×{grown:.1} {e:?}");
    let c = catalog.estimate.as_ref().unwrap();
    assert!(
        (c.duration_ms.mid as i64 - catalog.duration_ms as i64).abs() <= 1,
        "catalog-only: {c:?} vs {} ms",
        catalog.duration_ms
    );

    // The join hashes the ten times larger orders (n·log n), and writes the
    // rows of customers, whose size production shares with the copy.
    let j = join.estimate.as_ref().unwrap();
    assert!(
        j.basis.iter().any(|b| b.contains("row changes of public.customers ×1.0")
            && b.contains("joined or aggregated with reading of public.orders ×10.0")),
        "{:?}",
        j.basis
    );
    let statement = join.statements[0].duration_ms.max(1);
    let factor = (j.duration_ms.mid - (join.duration_ms - join.statements[0].duration_ms)) as f64 / statement as f64;
    assert!((9.0..=16.0).contains(&factor), "a join with a 10× table estimated ×{factor:.1}: {j:?}");
    assert!(
        (j.wal_bytes.mid as i64 - join.wal.bytes as i64).abs() <= 8,
        "WAL of unchanged rows: {j:?} vs {}",
        join.wal.bytes
    );
}

/// A DO block that builds an index takes the lock a row change would, but
/// PostgreSQL's progress views show the build: the estimate scales that
/// time as an index build (n·log n) and says where it saw it.
#[test]
fn an_index_build_inside_a_do_block_is_seen_in_the_progress_views_and_scaled_as_one() {
    let sandbox = Sandbox::new();
    let stats = stats_of_dump(&dumps().path("custom"), &sandbox.path().join("stats.json"));
    scale_stats(&stats, &["public.orders"], 10);
    // 12,000 orders × 0.1 ms of pg_sleep in the index expression: a build of
    // about 1.5 s, read by the progress sampler many times.
    sandbox.migrations(&[(
        "0001_index_in_do.sql",
        "CREATE FUNCTION public.slow_key(bigint) RETURNS bigint IMMUTABLE LANGUAGE sql \
           AS $$ SELECT $1 FROM pg_sleep(0.0001) $$;\n\
         DO $$ BEGIN EXECUTE 'CREATE INDEX orders_slow_key_idx ON public.orders (public.slow_key(id))'; END $$;\n",
    )]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "estimate:\n  production: stats.json\n");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let m = out.report().migrations.remove(0);

    let seen = m.progress.iter().find(|p| p.command == "CREATE INDEX").unwrap_or_else(|| panic!("{:?}", m.progress));
    assert_eq!(seen.relation, "public.orders");
    assert!(seen.phases.iter().any(|p| p.starts_with("building index")), "{:?}", seen.phases);
    let do_block = m.statements.iter().find(|s| s.query.starts_with("DO")).unwrap();
    let window = do_block.started_ms..=do_block.started_ms + do_block.duration_ms;
    assert!(window.contains(&seen.first_ms) && seen.last_ms - seen.first_ms >= 500, "{seen:?} in {window:?}");

    let e = m.estimate.unwrap();
    assert!(
        e.basis.iter().any(|b| b.starts_with("index build of public.orders ×10.0, n·log n")
            && b.contains("seen in the progress views as CREATE INDEX")),
        "{:?}",
        e.basis
    );
    // n·log n of 12,000 rows against 120,000: ×12.5; the build is most of the statement.
    let factor = e.duration_ms.mid as f64 / m.duration_ms as f64;
    assert!((9.0..=13.0).contains(&factor), "estimated ×{factor:.1}: {e:?} ({} ms here)", m.duration_ms);
    sandbox.assert_no_leaks();
}

/// A table production's statistics do not list is estimated at its size
/// here, and the basis names it: never silently.
#[test]
fn a_table_missing_from_production_statistics_is_estimated_at_its_size_here_and_named() {
    let sandbox = Sandbox::new();
    let stats = stats_of_dump(&dumps().path("custom"), &sandbox.path().join("stats.json"));
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    json["relations"].as_array_mut().unwrap().retain(|r| r["relation"] != "public.orders");
    std::fs::write(&stats, json.to_string()).unwrap();
    let rewrite = rehearse_with_stats(&sandbox, &stats).remove(0);
    let e = rewrite.estimate.unwrap();
    assert!(
        e.basis
            .iter()
            .any(|b| b.starts_with("no production statistics for public.orders: estimated at its size here (")),
        "{:?}",
        e.basis
    );
    assert!((e.duration_ms.mid as i64 - rewrite.duration_ms as i64).abs() <= 1, "{e:?} vs {} ms", rewrite.duration_ms);
}
