//! Alembic projects and any-command migrations, with real Alembic from PyPI
//! (the venv `make deps` makes) against real Postgres.

use rehearse::error::ErrorKind;
use rehearse::kinds::Rule;
use rehearse::pg::LockMode;
use rehearse::report::{LockSource, MigrationStatus, RunStatus};

use crate::support::{dumps, venv_python, Sandbox, REPO};

fn alembic_scenario(sandbox: &Sandbox, project: &str, target: &str) -> std::path::PathBuf {
    let path = sandbox.path().join("alembic.yaml");
    std::fs::write(
        &path,
        format!(
            "name: alembic-test\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: alembic\n  dir: {REPO}/tests/fixtures/{project}\n  target: {target}\n  python: {}\n",
            dumps().path("custom").display(),
            venv_python()
        ),
    )
    .unwrap();
    path
}

#[test]
fn pending_revisions_in_upgrade_order_then_a_failure_with_recovery_steps() {
    let sandbox = Sandbox::new();
    let scenario = alembic_scenario(&sandbox, "alembic_dburl", "head");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(2);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Failed);
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    let pos = |id: &str| ids.iter().position(|x| *x == id).unwrap_or_else(|| panic!("{id} not pending: {ids:?}"));
    assert_eq!(ids.len(), 6, "exactly the revisions after r2: {ids:?}");
    assert!(pos("r3a_orders_state") < pos("r4_merge") && pos("r3b_customers_tier") < pos("r4_merge"));
    assert_eq!(&ids[3..], ["r5_backfill_state", "r6_index_state", "r7_unique_customer"]);

    for m in &report.migrations[..5] {
        assert_eq!(m.status, MigrationStatus::Applied, "{}: {:?}", m.id, m.error);
    }
    // One process for the release, as production runs it: its start-up is
    // measured once, apart, with the first revision.
    assert!(report.migrations[0].startup_ms.unwrap() > 0, "interpreter start-up is measured apart");
    assert!(report.migrations[1..].iter().all(|m| m.startup_ms.is_none()), "and only once");
    let backfill = &report.migrations[3];
    let update = backfill.statements.iter().find(|s| s.query.starts_with("UPDATE orders")).expect("traced UPDATE");
    assert_eq!(update.rows as i64, dumps().orders);
    assert!(update.locks.iter().any(|l| l.relation == "public.orders" && l.mode == LockMode::RowExclusiveLock));
    assert!(backfill.wal.bytes > 100_000);
    let add_column = report.migrations.iter().find(|m| m.id == "r3a_orders_state").unwrap();
    assert!(
        add_column.locks.iter().any(|l| l.relation == "public.orders"
            && l.mode == LockMode::AccessExclusiveLock
            && l.source.contains(&LockSource::Statement)),
        "exact per-statement capture inside Alembic: {:?}",
        add_column.locks
    );
    assert!(add_column.hazards.iter().any(|h| h.rule == Rule::NoLockTimeout));
    assert!(add_column.offline_sql.as_deref().unwrap_or("").contains("ALTER TABLE orders ADD COLUMN state TEXT"));
    let merge = report.migrations.iter().find(|m| m.id == "r4_merge").unwrap();
    assert!(merge.offline_sql_unavailable.is_some());

    let failed = &report.migrations[5];
    assert_eq!(failed.status, MigrationStatus::Failed);
    let error = failed.error.as_ref().unwrap();
    assert!(error.message.contains("could not create unique index"), "{}", error.message);
    assert!(error.message.contains("Traceback"), "the end of the traceback is kept");
    assert_eq!(error.sqlstate.as_deref(), Some("23505"));
    let recovery = failed.recovery.as_ref().expect("recovery steps");
    assert_eq!(recovery.alembic_version.as_deref(), Some(&["r6_index_state".to_string()][..]));
    assert_eq!(recovery.invalid_indexes, ["public.orders_customer_uniq"]);
    assert!(recovery.steps.iter().any(|s| s.contains("DROP INDEX CONCURRENTLY IF EXISTS public.orders_customer_uniq")));
    assert!(recovery.steps.iter().any(|s| s.contains("alembic stamp r7_unique_customer")));
    let md = out.markdown();
    assert!(md.contains("alembic stamp r7_unique_customer") && md.contains("<details>"), "{md}");
    sandbox.assert_no_leaks();
}

#[test]
fn env_py_reading_sqlalchemy_url_works_to_an_explicit_target() {
    let sandbox = Sandbox::new();
    let scenario = alembic_scenario(&sandbox, "alembic_url", "r5_backfill_state");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.migrations.len(), 4);
    assert!(report.migrations.iter().all(|m| m.status == MigrationStatus::Applied));
    assert_eq!(report.migrations.last().unwrap().id, "r5_backfill_state");
    let password_like = out.stderr.contains("postgresql://rehearse:") || out.stdout.contains("postgresql://rehearse:");
    assert!(!password_like, "no connection string with a password in the output");
}

#[test]
fn a_database_at_a_revision_the_tree_lacks_is_refused() {
    let sandbox = Sandbox::new();
    let scenario = alembic_scenario(&sandbox, "alembic_other", "head");
    let out = sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], &["r2_orders_note_index"]);
    out.assert_stopped_by(ErrorKind::MigrationsInvalid);
}

#[test]
fn a_missing_python_is_an_environment_error_before_anything_starts() {
    let sandbox = Sandbox::new();
    let path = sandbox.write(
        "bad.yaml",
        &format!(
            "dump: {}\nmigrations:\n  tool: alembic\n  dir: {REPO}/tests/fixtures/alembic_dburl\n  python: /nonexistent/python3\n",
            dumps().path("custom").display()
        ),
    );
    let out = sandbox.rehearse(&["run", path.to_str().unwrap()]);
    out.assert_code(4);
    assert!(out.stderr.contains("/nonexistent/python3") && out.stderr.contains("migrations.python"), "{}", out.stderr);
}

#[test]
fn a_command_runner_is_rehearsed_with_rev_and_url() {
    let sandbox = Sandbox::new();
    let path = sandbox.write(
        "command.yaml",
        &format!(
            "dump: {}\nmigrations:\n  tool: command\n  dir: {REPO}/tests/fixtures\n  list: ./runner.sh list\n  apply: ./runner.sh apply {{rev}} '{{url}}'\n",
            dumps().path("custom").display()
        ),
    );
    let out = sandbox.rehearse(&["run", path.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m1_shipped_at", "m2_total_index"]);
    let index = &report.migrations[1];
    let share = index.locks.iter().find(|l| l.relation == "public.orders" && l.mode == LockMode::ShareLock);
    let share = share.unwrap_or_else(|| panic!("the sampler sees an external tool's locks: {:?}", index.locks));
    assert!(share.held_ms >= 150 && share.held_ms <= index.duration_ms, "{share:?} in {} ms", index.duration_ms);
    // The command's start-up (sh, the runner, psql's connect) until its first session: apart. The index
    // build's session lasts long enough to be seen; m1's may start and end between two polls, and then
    // its start-up is unknown (None), never guessed.
    assert!(index.startup_ms.is_some(), "{index:?}");
    assert!(report.migrations.iter().all(|m| m.startup_ms.is_none_or(|s| s > 0)), "{:?}", report.migrations[0]);
    sandbox.assert_no_leaks();
}

/// A command's statements are not traced, but pg_stat_statements recorded
/// them: its DROP COLUMN is a destructive change, and the checklist says so;
/// the hazards that read statements are "not evaluated", not "-".
#[test]
fn a_commands_dropped_column_is_found_in_what_pg_stat_statements_recorded() {
    let sandbox = Sandbox::new();
    let path = sandbox.write(
        "drop.yaml",
        &format!(
            "dump: {}\nmigrations:\n  tool: command\n  revisions: [x1_drop_note]\n  \
             apply: \"{}/psql -Xq -c 'ALTER TABLE orders DROP COLUMN note'\"\n",
            dumps().path("custom").display(),
            crate::support::pg_bin_dir()
        ),
    );
    let out = sandbox.rehearse(&["run", path.to_str().unwrap()]);
    let report = out.report();
    let changes = &report.migrations[0].destructive_changes;
    assert!(changes.iter().any(|c| c.object == "public.orders.note" || c.object == "orders.note"), "{changes:?}");
    assert!(out.markdown().contains("Destructive changes: drop_column"), "{}", out.markdown());
    // Its statement hazards were not looked for: said so, never "-".
    assert!(report.migrations[0].hazards.is_empty() && !report.migrations[0].not_evaluated.is_empty());
    assert!(out.stdout.contains("not evaluated"), "{}", out.stdout);
    assert!(out.markdown().contains("**Not evaluated** for x1_drop_note"), "{}", out.markdown());
    sandbox.assert_no_leaks();
}

#[test]
fn a_python_without_alembic_is_an_environment_error_naming_the_fix() {
    let sandbox = Sandbox::new();
    // A fresh venv: a real interpreter that cannot import Alembic.
    let venv = sandbox.path().join("bare-venv");
    let made = std::process::Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(&venv).status().unwrap();
    assert!(made.success());
    let path = sandbox.write(
        "bare.yaml",
        &format!(
            "dump: {}\nmigrations:\n  tool: alembic\n  dir: {REPO}/tests/fixtures/alembic_dburl\n  python: {}\n",
            dumps().path("custom").display(),
            venv.join("bin/python").display()
        ),
    );
    let out = sandbox.rehearse(&["run", path.to_str().unwrap()]);
    out.assert_code(4);
    assert!(
        out.stderr.contains("cannot import Alembic") && out.stderr.contains("pip install alembic"),
        "{}",
        out.stderr
    );
    sandbox.assert_no_leaks();
}
