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
    assert_eq!(ids(&report), ["h1_busy_hold", "h2_after"]);
    let (h1, h2) = (&report.migrations[0], &report.migrations[1]);
    let hold = h1
        .locks
        .iter()
        .find(|l| l.relation == "public.customers" && l.mode == LockMode::AccessExclusiveLock)
        .unwrap_or_else(|| panic!("the ALTER's lock: {:?}", h1.locks));
    // h1 keeps its transaction busy for 2.0 s after the ALTER, h2 for 1.0 s
    // more in the same transaction (their own clocks): the lock is held at
    // least that long; rehearse's pause between them is not in it.
    assert!(hold.held_ms >= 3000, "held {} ms, the transaction ran 3 s past the ALTER: {hold:?}", hold.held_ms);
    assert!(
        hold.held_ms <= h1.duration_ms + h2.duration_ms + 2,
        "held {} ms, longer than the two revisions ({} + {} ms): rehearse's pause is in it",
        hold.held_ms,
        h1.duration_ms,
        h2.duration_ms
    );
    let probe = h1.probes.iter().find(|p| p.relation == "public.customers").expect("a probe on customers");
    assert!(probe.writes.probes > 0, "{probe:?}");
    assert!(
        hold.held_ms as f64 >= probe.writes.max_ms,
        "held {} ms, a write waited {} ms",
        hold.held_ms,
        probe.writes.max_ms
    );
    assert!(h1.longest_write_block.as_ref().is_some_and(|b| b.held_ms == hold.held_ms), "{:?}", h1.longest_write_block);
    // Batched: the UPDATEs of one shape are one traced entry, not thousands.
    let updates = h1.statements.iter().filter(|s| s.query.starts_with("UPDATE customers")).collect::<Vec<_>>();
    assert!(updates.len() == 1 && updates[0].count > 10, "{:?}", h1.statements);
    // h2 took no lock on customers: the sampler saw h1's, which is not h2's.
    assert!(!h2.locks.iter().any(|l| l.relation == "public.customers"), "{:?}", h2.locks);
    sandbox.assert_no_leaks();
}

#[test]
fn a_signal_during_the_second_revision_of_one_process_ends_it_and_its_open_transaction() {
    use nix::sys::signal::Signal;
    let sandbox = Sandbox::new();
    // One transaction for both revisions: while the second runs, the first
    // one's is still open (and the process waited for rehearse in between).
    let path = scenario(&sandbox, "alembic_holds", "", "");
    let out = crate::support::run_and_signal(&sandbox, &["run", &path], "migration 2/2", Signal::SIGTERM);
    out.assert_code(130);
    let report = out.report();
    assert_eq!(report.migrations[0].status, MigrationStatus::Applied);
    assert_eq!(report.migrations[1].status, MigrationStatus::Interrupted, "{:?}", report.migrations[1].error);
    sandbox.assert_no_leaks();
}

#[test]
fn the_running_apps_queries_are_checked_once_the_releases_transaction_ends() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.path().join("queries.sql"), "SELECT id, name FROM customers WHERE id = $1;\n").unwrap();
    let compat = format!("compat:\n  queries: {}\n", sandbox.path().join("queries.sql").display());
    let started = std::time::Instant::now();
    let out = sandbox.rehearse(&["run", &scenario(&sandbox, "alembic_holds", "", &compat)]);
    out.assert_code(0);
    // The app sees the release at its commit, after h2: checked then, not
    // after h1, whose open transaction holds customers (the check would wait).
    let report = out.report();
    assert!(report.migrations[0].compat.is_none(), "{:?}", report.migrations[0].compat);
    assert_eq!(report.migrations[1].compat.as_ref().map(|c| c.checked), Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(50), "no check waited for a lock");
}
