//! Ctrl-C and SIGTERM: exit 130, a partial report, nothing left behind.

use nix::sys::signal::Signal;
use rehearse::report::{MigrationStatus, RunStatus};

use crate::support::{dumps, run_and_signal, Sandbox};

fn interrupted_during_a_migration(signal: Signal) {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_quick.sql", "CREATE TABLE public.quick (id int);"),
        ("0002_slow.sql", "SELECT pg_sleep(60);"),
        ("0003_never.sql", "SELECT 1;"),
    ]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let started = std::time::Instant::now();
    let out = run_and_signal(&sandbox, &["run", scenario.to_str().unwrap()], "migration 2/3", signal);
    assert!(started.elapsed().as_secs() < 40, "the 60s statement was cancelled");
    out.assert_code(130);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Interrupted);
    assert_eq!(report.stopped_at_stage.map(|s| s.as_str()), Some("rehearse"));
    let statuses: Vec<_> = report.migrations.iter().map(|m| m.status).collect();
    assert_eq!(statuses, [MigrationStatus::Applied, MigrationStatus::Interrupted, MigrationStatus::Skipped]);
    sandbox.assert_no_leaks();
}

#[test]
fn sigint_during_a_migration_cleans_up() {
    interrupted_during_a_migration(Signal::SIGINT);
}

#[test]
fn sigterm_during_a_migration_cleans_up() {
    interrupted_during_a_migration(Signal::SIGTERM);
}

#[test]
fn sigint_during_restore_cleans_up() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let demo = std::path::Path::new(crate::support::REPO).join("snapshots/demo.dump");
    let scenario = sandbox.scenario(&demo, "");
    let out = run_and_signal(&sandbox, &["run", scenario.to_str().unwrap()], "restore:", Signal::SIGINT);
    out.assert_code(130);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Interrupted);
    assert_eq!(report.stopped_at_stage.map(|s| s.as_str()), Some("restore"));
    sandbox.assert_no_leaks();
}
