//! Alembic as production runs it: one process for the release (or one a
//! revision, `migrations.process: per_revision`), its start-up measured
//! apart, and lock holds as long as the transactions that held them.

use rehearse::pg::LockMode;
use rehearse::report::{MigrationStatus, Report};

use crate::support::{dumps, venv_python, CpuHog, Sandbox, REPO};

/// A scenario for the Alembic project `tests/fixtures/<project>`, with
/// `migrations` keys and top-level sections added.
fn scenario(sandbox: &Sandbox, project: &str, migrations: &str, extra: &str) -> String {
    let path = sandbox.path().join(format!("{project}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: {project}\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: alembic\n  dir: {REPO}/tests/fixtures/{project}\n  python: {}\n{migrations}{extra}",
            dumps().path("custom").display(),
            venv_python()
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn ids(report: &Report) -> Vec<&str> {
    report.migrations.iter().map(|m| m.id.as_str()).collect()
}

#[test]
fn an_enum_an_earlier_revision_created_is_reused_in_one_process_and_fails_per_revision() {
    let sandbox = Sandbox::new();
    // Optuna 5.0.0's history from empty: v2.4.0.a creates a table with the
    // enum v0.9.0.a created; `alembic upgrade head` passes.
    let one = sandbox.rehearse(&["run", &scenario(&sandbox, "alembic_enum", "", "")]);
    one.assert_code(0);
    let report = one.report();
    assert_eq!(ids(&report), ["e1_studies", "e2_study_directions"]);
    assert!(report.migrations.iter().all(|m| m.status == MigrationStatus::Applied), "{:?}", report.migrations);
    let created = report.migrations[1].statements.iter().map(|s| s.query.as_str()).collect::<Vec<_>>();
    assert!(!created.iter().any(|q| q.starts_with("CREATE TYPE")), "the process remembers the enum: {created:?}");

    // One process a revision forgets it: e2 creates the type again.
    let per = sandbox.rehearse(&["run", &scenario(&sandbox, "alembic_enum", "  process: per_revision\n", "")]);
    per.assert_code(2);
    let report = per.report();
    assert_eq!(report.migrations[0].status, MigrationStatus::Applied);
    let failed = &report.migrations[1];
    assert_eq!(failed.status, MigrationStatus::Failed);
    let message = &failed.error.as_ref().unwrap().message;
    assert!(message.contains("type \"studydirection\" already exists"), "{message}");
    sandbox.assert_no_leaks();
}

#[test]
fn start_up_is_measured_apart_and_never_in_a_revisions_time() {
    let sandbox = Sandbox::new();
    // env.py takes 1.5 s to import; each revision takes milliseconds.
    let per = sandbox.rehearse(&["run", &scenario(&sandbox, "alembic_slow_env", "  process: per_revision\n", "")]);
    per.assert_code(0);
    for m in &per.report().migrations {
        assert_eq!(m.status, MigrationStatus::Applied, "{}: {:?}", m.id, m.error);
        assert!(m.startup_ms.unwrap() >= 1500, "{}: env.py's import is start-up: {:?}", m.id, m.startup_ms);
        assert!(m.duration_ms < 1000, "{}: not in the revision's {} ms", m.id, m.duration_ms);
    }
    let one = sandbox.rehearse(&["run", &scenario(&sandbox, "alembic_slow_env", "", "")]);
    one.assert_code(0);
    let report = one.report();
    assert!(report.migrations[0].startup_ms.unwrap() >= 1500);
    assert_eq!(report.migrations[1].startup_ms, None, "one process: start-up once, with the first revision");
    assert!(report.migrations.iter().all(|m| m.duration_ms < 1000), "{:?}", report.migrations);
    assert!(report.totals.duration_ms < 1500, "the release's time has no start-up: {}", report.totals.duration_ms);
}

#[test]
fn a_hold_lasts_until_its_transaction_ends_on_a_machine_whose_cpus_are_busy() {
    let sandbox = Sandbox::new();
    let observe = "observe:\n  hot_tables: [customers]\n";
    let path = scenario(&sandbox, "alembic_holds", "", observe);
    // Both cores busy: the lock sampler is starved and samples late.
    let hog = CpuHog::start(2);
    let out = sandbox.rehearse(&["run", &path]);
    drop(hog);
    out.assert_code(0);
    let report = out.report();
    let m = &report.migrations[0];
    let hold = m
        .locks
        .iter()
        .find(|l| l.relation == "public.customers" && l.mode == LockMode::AccessExclusiveLock)
        .unwrap_or_else(|| panic!("the ALTER's lock: {:?}", m.locks));
    // The revision keeps its transaction busy for 2.0 s after the ALTER
    // (its own clock): the lock is held at least that long.
    assert!(hold.held_ms >= 2000, "held {} ms, the transaction ran 2 s past the ALTER: {hold:?}", hold.held_ms);
    let probe = m.probes.iter().find(|p| p.relation == "public.customers").expect("a probe on customers");
    assert!(probe.writes.probes > 0, "{probe:?}");
    assert!(hold.held_ms as f64 >= probe.writes.max_ms, "held {} ms, a write waited {} ms", hold.held_ms, probe.writes.max_ms);
    assert!(m.longest_write_block.as_ref().is_some_and(|b| b.held_ms == hold.held_ms), "{:?}", m.longest_write_block);
    // Batched: the UPDATEs of one shape are one traced entry, not thousands.
    let updates = m.statements.iter().filter(|s| s.query.starts_with("UPDATE customers")).collect::<Vec<_>>();
    assert!(updates.len() == 1 && updates[0].count > 10, "{:?}", m.statements);
    sandbox.assert_no_leaks();
}
