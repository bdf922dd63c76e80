//! What rehearse observes, checked against the server itself: lock modes
//! per statement, hold times, probe waits, WAL and rewrites.

use rehearse::kinds::Rule;
use rehearse::pg::{Blocked, LockMode, RelationKind};
use rehearse::report::{LockSource, MigrationReport, MigrationStatus};

use crate::support::{dumps, server_lock_truth, tiny_demo_dump, LockSet, Sandbox, REPO};

/// DDL and DML forms on the demo schema, applied in this order (numbered
/// from 1001, after the demo dump's own recorded migrations).
const FORMS: [(&str, &str); 16] = [
    ("add_column", "ALTER TABLE public.users ADD COLUMN nickname text"),
    ("add_column_volatile_default", "ALTER TABLE public.coupons ADD COLUMN token uuid DEFAULT gen_random_uuid()"),
    ("rename_column", "ALTER TABLE public.users RENAME COLUMN full_name TO display_name"),
    ("set_not_null", "ALTER TABLE public.order_items ALTER COLUMN sku SET NOT NULL"),
    ("type_change", "ALTER TABLE public.coupons ALTER COLUMN percent_off TYPE bigint"),
    ("create_index", "CREATE INDEX events_kind_occurred_idx ON public.events (kind, occurred_at)"),
    (
        "foreign_key",
        "ALTER TABLE public.events ADD CONSTRAINT events_user_fk FOREIGN KEY (user_id) REFERENCES public.users (id)",
    ),
    ("check_constraint", "ALTER TABLE public.order_items ADD CONSTRAINT order_items_price_check CHECK (unit_price_cents >= 0)"),
    ("unique_constraint", "ALTER TABLE public.coupons ADD CONSTRAINT coupons_code_key2 UNIQUE (code)"),
    ("drop_index", "DROP INDEX public.events_kind_idx"),
    ("analyze", "ANALYZE public.orders"),
    ("fillfactor", "ALTER TABLE public.orders SET (fillfactor = 90)"),
    (
        "create_trigger",
        "CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
         CREATE TRIGGER orders_touch BEFORE UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION public.touch()",
    ),
    ("update", "UPDATE public.coupons SET max_redemptions = 10 WHERE id % 2 = 0"),
    ("reindex", "REINDEX INDEX public.orders_status_idx"),
    ("drop_column", "ALTER TABLE public.coupons DROP COLUMN valid_until"),
];

fn reported(m: &MigrationReport) -> LockSet {
    m.locks.iter().map(|l| (l.relation.clone(), l.mode.as_str().to_string())).collect()
}

/// Rehearses every form as its own migration on `dump` and compares the
/// lock modes reported per migration with what the server showed.
fn lock_modes_match_the_server(dump: &std::path::Path, extra: &[(&str, &str)]) -> Vec<MigrationReport> {
    let forms: Vec<&str> = FORMS.iter().map(|(_, sql)| *sql).collect();
    let truth = server_lock_truth(dump, &forms);
    let sandbox = Sandbox::new();
    let mut files: Vec<(String, String)> = FORMS
        .iter()
        .enumerate()
        .map(|(i, (name, sql))| (format!("{}_{name}.sql", 1001 + i), format!("{sql};\n")))
        .collect();
    files
        .extend(extra.iter().enumerate().map(|(i, (name, sql))| (format!("{}_{name}.sql", 1100 + i), sql.to_string())));
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    sandbox.migrations(&refs);
    let scenario = sandbox.scenario(dump, "observe:\n  hot_tables: [users, orders]\n");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.migrations.len(), FORMS.len() + extra.len());
    let mut mismatches = Vec::new();
    for ((name, _), (m, expected)) in FORMS.iter().zip(report.migrations.iter().zip(truth)) {
        assert_eq!(m.status, MigrationStatus::Applied, "{name}");
        let got = reported(m);
        if got != expected {
            mismatches.push(format!(
                "{name}:\n  server:   {expected:?}\n  rehearse: {got:?}\n  missing: {:?}\n  extra: {:?}",
                expected.difference(&got).collect::<Vec<_>>(),
                got.difference(&expected).collect::<Vec<_>>()
            ));
        }
    }
    assert!(mismatches.is_empty(), "lock modes differ from the server's:\n{}", mismatches.join("\n"));
    sandbox.assert_no_leaks();
    report.migrations
}

#[test]
fn lock_modes_equal_the_servers_on_prod_shaped_data() {
    let demo = std::path::Path::new(REPO).join("snapshots/demo.dump");
    let migrations = lock_modes_match_the_server(
        &demo,
        &[(
            "create_index_concurrently",
            "CREATE INDEX CONCURRENTLY events_occurred_kind_idx ON public.events (occurred_at, kind);\n",
        )],
    );
    // CREATE INDEX CONCURRENTLY cannot run in a transaction, so only the
    // sampler sees it; on 400k rows it runs long enough to be seen. The
    // manual documents ShareUpdateExclusiveLock for it.
    let cic = migrations.last().unwrap();
    assert!(
        cic.locks.iter().any(|l| l.relation == "public.events" && l.mode == LockMode::ShareUpdateExclusiveLock),
        "{:?}",
        cic.locks
    );
    let create_index = &migrations[5];
    let share =
        create_index.locks.iter().find(|l| l.relation == "public.events" && l.mode == LockMode::ShareLock).unwrap();
    assert_eq!(share.blocks, [Blocked::Writes, Blocked::Ddl]);
    assert!(share.source.contains(&LockSource::Statement) && share.source.contains(&LockSource::Sampled));
    assert_eq!(create_index.longest_write_block.as_ref().unwrap().relation, "public.events");
    assert!(create_index.longest_read_block.is_none(), "CREATE INDEX does not block reads");
}

#[test]
fn lock_modes_equal_the_servers_on_a_table_of_five_rows() {
    let migrations = lock_modes_match_the_server(tiny_demo_dump(), &[]);
    assert!(migrations.iter().all(|m| m.duration_ms < 1000));
    // Millisecond statements: the exact per-statement capture still saw every lock.
    let add_column = &migrations[0];
    assert_eq!(add_column.longest_read_block.as_ref().unwrap().mode, LockMode::AccessExclusiveLock);
}

#[test]
fn hold_time_and_probe_wait_match_the_truth() {
    let sandbox = Sandbox::new();
    // The file manages its own transaction, so the hold is known only from
    // sampling: truth is from the LOCK statement's start to COMMIT's end.
    sandbox.migrations(&[(
        "0001_hold.sql",
        "BEGIN;\nLOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(1.5);\nCOMMIT;\n",
    )]);
    let interval = 25;
    let scenario = sandbox.scenario(
        &dumps().path("custom"),
        &format!("observe:\n  sample_interval: {interval}ms\n  hot_tables: [public.orders, public.customers]\n"),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.observation.sample_interval_ms, interval);
    let m = &report.migrations[0];
    let lock_stmt = &m.statements[1];
    let commit = &m.statements[3];
    let truth = (commit.started_ms + commit.duration_ms - lock_stmt.started_ms) as i64;
    let lock =
        m.locks.iter().find(|l| l.relation == "public.orders" && l.mode == LockMode::AccessExclusiveLock).unwrap();
    assert_eq!(lock.source, [LockSource::Statement, LockSource::Sampled]);
    assert!(
        (lock.held_ms as i64 - truth).abs() <= 2 * interval as i64,
        "held {}ms, truth {truth}ms, interval {interval}ms",
        lock.held_ms
    );
    assert!(truth >= 1500);
    let probe = m.probes.iter().find(|p| p.relation == "public.orders").unwrap();
    assert!(
        probe.reads.max_ms >= 1350.0 && probe.reads.max_ms <= truth as f64 + 100.0,
        "a reader waited {}ms for a {truth}ms lock",
        probe.reads.max_ms
    );
    assert!(probe.writes.max_ms >= 1350.0, "a writer waited {}ms", probe.writes.max_ms);
    // Probes run only while something holds or awaits a conflicting lock on their table.
    let idle = m.probes.iter().find(|p| p.relation == "public.customers").unwrap();
    assert_eq!((idle.reads.probes, idle.writes.probes), (0, 0), "nothing locked customers: {idle:?}");
    assert_eq!(m.longest_read_block.as_ref().unwrap().relation, "public.orders");
    sandbox.assert_no_leaks();
}

#[test]
fn wal_of_a_full_table_update_matches_an_independent_measure_and_rewrites_are_reported() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_update.sql", "UPDATE public.orders SET total = total + 1;\n"),
        ("0002_retype.sql", "ALTER TABLE public.orders ALTER COLUMN total TYPE float8;\n"),
    ]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    let update = &report.migrations[0];
    let stmt = &update.statements[0];
    assert_eq!(stmt.rows as i64, dumps().orders);
    // LSN around the migration (observer session) and around the statement
    // (the migration's own session), measured independently.
    let around_statement = stmt.wal_bytes.unwrap() as f64;
    let around_migration = update.wal.bytes as f64;
    let pgss = update.top_statements.iter().find(|t| t.query.starts_with("UPDATE public.orders")).unwrap();
    let pgss = pgss.wal_bytes.unwrap() as f64;
    assert!(around_statement > 500_000.0, "a full-table update writes WAL: {around_statement}");
    assert!(
        (around_migration - around_statement).abs() / around_statement < 0.01,
        "{around_migration} vs {around_statement}"
    );
    // pg_stat_statements and pg_stat_wal count record bytes only (an LSN
    // difference also covers page headers and alignment padding), and
    // pg_stat_wal is cluster-wide (background processes write too): a looser bound.
    let stat_bytes = update.wal.stat_bytes.unwrap() as f64;
    assert!((pgss - stat_bytes).abs() / stat_bytes < 0.05, "pg_stat_statements {pgss} vs pg_stat_wal {stat_bytes}");
    assert!(
        (stat_bytes - around_migration).abs() / around_migration < 0.05,
        "pg_stat_wal {stat_bytes} vs LSN {around_migration}"
    );
    assert!(update.wal.records.unwrap() > dumps().orders as u64, "one record per row at least");
    assert!(update.rewrites.is_empty(), "an UPDATE does not rewrite");

    let retype = &report.migrations[1];
    let rewrite = retype.rewrites.iter().find(|r| r.relation == "public.orders").expect("type change rewrites");
    assert_eq!(rewrite.kind, RelationKind::Table);
    assert!(rewrite.bytes_before > 0 && rewrite.bytes_after > 0);
    assert!(retype.hazards.iter().any(|h| h.rule == Rule::ColumnTypeRewrite));
}

#[test]
fn lock_budgets_breach_with_figures_and_exit_1() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_slow.sql", "LOCK TABLE public.orders IN SHARE MODE;\nSELECT pg_sleep(0.4);\n")]);
    let scenario = sandbox.scenario(
        &dumps().path("custom"),
        "budgets:\n  migration:\n    max_write_block: 100ms\n    max_exclusive_lock: 100ms\n",
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(1);
    let m = &out.report().migrations[0];
    assert_eq!(m.budget_breaches.len(), 1, "ShareLock blocks writes, not reads: {:?}", m.budget_breaches);
    assert!(m.budget_breaches[0].starts_with("max_write_block: ShareLock on public.orders blocked writes for"));
    assert!(out.markdown().contains("Over budget"));
}
