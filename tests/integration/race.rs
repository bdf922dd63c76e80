//! Racing replicas (`race:`): three copies of real `alembic upgrade head`
//! at once on a fresh copy of the restored database, against real
//! PostgreSQL, with tests/fixtures/alembic_race (a backfill that holds its
//! lock a second, then CREATE INDEX CONCURRENTLY in an autocommit block).
//! Its env.py takes no lock, waits in pg_advisory_lock, or polls
//! pg_try_advisory_lock, as RACE_LOCK says. What PostgreSQL 15 did in each
//! case, measured: docs/race.md.

use std::path::PathBuf;

use nix::sys::signal::Signal;
use rehearse::report::{AdvisoryLockKind, RaceFailure, RaceReport, RaceVerdict, RunStatus, Stage};

use crate::support::{
    docker_lock, dumps, processes_mentioning, run_and_signal, run_and_signal_with, venv_python, OwnedServer, RunOutput,
    Sandbox, REPO,
};

/// A scenario racing the fixture's env.py in mode `lock` (with more
/// `migrations.env` after it, e.g. `, RACE_HOLD: 3`) with `race`'s keys, plus `extra` YAML.
fn scenario(sandbox: &Sandbox, postgres: &str, lock: &str, race: &str, extra: &str) -> PathBuf {
    sandbox.write(
        "race.yaml",
        &format!(
            "name: race-test\ndump: {}\npostgres:\n  {postgres}\nmigrations:\n  tool: alembic\n  dir: {REPO}/tests/fixtures/alembic_race\n  python: {}\n  env: {{ RACE_LOCK: {lock} }}\nrace: {{ {race} }}\nreport:\n  formats: [table, markdown, json, junit]\n{extra}",
            dumps().path("custom").display(),
            venv_python()
        ),
    )
}

/// Runs `scenario`, expecting `code`; the run and its race.
fn race(sandbox: &Sandbox, scenario: &std::path::Path, code: i32) -> (RunOutput, RaceReport) {
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(code);
    let race = out.report().race.unwrap_or_else(|| panic!("a race in the report; stderr:\n{}", out.stderr));
    (out, race)
}

/// The copies that failed, and how.
fn failures(race: &RaceReport) -> Vec<(usize, RaceFailure)> {
    race.copies.iter().filter_map(|c| c.failure.map(|f| (c.copy, f))).collect()
}

#[test]
fn plain_upgrade_at_start_up_is_unsafe_the_copies_behind_the_first_fail_and_fail_on_race_exits_1() {
    let sandbox = Sandbox::new();
    // The backfill holds its lock 3s: long enough for every copy to have
    // read the version by then, even on a loaded machine.
    let extra = "budgets:\n  fail_on_race: true\n";
    let path = scenario(&sandbox, "backend: local", "none, RACE_HOLD: 3", "replicas: 3", extra);
    let (out, race) = race(&sandbox, &path, 1);
    assert_eq!(race.verdict, RaceVerdict::Unsafe);
    // Measured: the first copy holds the backfill's ACCESS EXCLUSIVE lock for
    // a second; the others read the version before it commits, wait behind
    // it in ALTER TABLE, then find the column there.
    assert_eq!(race.copies.iter().filter(|c| c.exit == Some(0)).count(), 1, "{:#?}", race.copies);
    let failed = failures(&race);
    assert_eq!(failed.len(), 2, "{failed:?}");
    for (copy, failure) in &failed {
        assert_eq!(*failure, RaceFailure::AlreadyExists, "copy {copy}: {:#?}", race.copies);
        let c = &race.copies[copy - 1];
        assert!(c.error.as_deref().unwrap_or("").contains("column \"channel\" of relation \"orders\" already exists"));
        assert_eq!(c.exit, Some(1));
        assert!(c.waited_ms > 0, "it waited behind the first copy's lock: {c:?}");
    }
    assert!(race.lock.is_none() && race.hang.is_none());
    assert_eq!(race.versions.found, race.versions.expected, "the first copy applied everything");
    let report = out.report();
    assert_eq!(report.status, RunStatus::BudgetExceeded);
    assert!(
        report.budget_breaches.iter().any(|b| b.starts_with("fail_on_race: racing 3 replicas")),
        "{:?}",
        report.budget_breaches
    );
    let md = out.markdown();
    assert!(md.contains("## Racing replicas") && md.contains("failed (already exists)"), "{md}");
    let item = report.checklist.items.iter().find(|i| i.title.starts_with("Runs as a standalone job")).unwrap();
    assert!(!item.done && item.todo.as_deref().unwrap_or("").contains("single Job"), "{item:?}");
    assert!(out.junit().contains("type=\"race_unsafe\""), "{}", out.junit());
    assert!(out.stdout.contains("race of 3 replicas: unsafe"), "{}", out.stdout);
    sandbox.assert_no_leaks();
}

#[test]
fn waiting_in_pg_advisory_lock_hangs_the_index_build_in_a_cycle_postgres_cannot_see() {
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "backend: local", "blocking", "timeout: 8s", "");
    let started = std::time::Instant::now();
    let (out, race) = race(&sandbox, &path, 0);
    assert_eq!(race.verdict, RaceVerdict::Unsafe);
    assert!(failures(&race).iter().all(|(_, f)| *f == RaceFailure::Hung), "{:#?}", race.copies);
    assert_eq!(failures(&race).len(), 3);
    let hang = race.hang.as_ref().expect("a hang");
    assert!(hang.after_ms >= 8000 && hang.after_ms < 9000, "{}", hang.after_ms);
    assert!(hang.invisible_to_postgres, "{hang:#?}");
    let link = |pid: &i32| hang.chain.iter().find(|l| l.pid == *pid).unwrap();
    let in_cycle: Vec<_> = hang.cycle.iter().map(link).collect();
    let build = in_cycle.iter().find(|l| l.query.starts_with("CREATE INDEX CONCURRENTLY")).expect("the index build");
    assert_eq!(build.wait_event.as_deref(), Some("virtualxid"), "{hang:#?}");
    let waiter = link(&build.blocked_by[0]);
    assert_eq!(waiter.wait_event.as_deref(), Some("advisory"));
    assert!(waiter.query.contains("pg_advisory_lock") && waiter.copy != build.copy, "{hang:#?}");
    let holder = in_cycle.iter().find(|l| l.state == "idle").expect("the idle lock session of the builder's copy");
    assert_eq!(holder.copy, build.copy);
    assert!(waiter.blocked_by.contains(&holder.pid));
    let lock = race.lock.as_ref().unwrap();
    assert_eq!(
        (lock.kind, lock.key.as_str(), lock.holders.len(), lock.waiters.len()),
        (AdvisoryLockKind::Session, "72707", 1, 2)
    );
    assert!(race.reasons.iter().any(|r| r.contains("cannot see")), "{:?}", race.reasons);
    assert!(out.markdown().contains("↻ marks the cycle"));
    assert!(started.elapsed().as_secs() < 60, "the deadline ends the race: {:?}", started.elapsed());
    sandbox.assert_no_leaks();
}

#[test]
fn the_lock_on_the_migrations_own_session_makes_a_cycle_postgres_breaks_with_deadlock_detected() {
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "backend: local", "same", "timeout: 20s", "");
    let (_, race) = race(&sandbox, &path, 0);
    assert_eq!(race.verdict, RaceVerdict::Unsafe);
    // Measured: the index build waits for the snapshots of the copies
    // waiting in pg_advisory_lock, which wait for the builder's own session:
    // a cycle of PostgreSQL's locks, so its deadlock detector ends it, and
    // which session it cancels varies (a waiter, or the build, which leaves
    // an INVALID index the next copy trips on).
    assert!(race.hang.is_none(), "{:#?}", race.hang);
    let failed = failures(&race);
    assert!(failed.iter().any(|(_, f)| *f == RaceFailure::DeadlockDetected), "{failed:?}");
    let lock = race.lock.as_ref().unwrap();
    assert_eq!((lock.kind, lock.key.as_str()), (AdvisoryLockKind::Session, "72707"));
    sandbox.assert_no_leaks();
}

#[test]
fn polling_pg_try_advisory_lock_is_safe() {
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "backend: local", "polling", "", "");
    let (out, race) = race(&sandbox, &path, 0);
    assert_eq!(race.verdict, RaceVerdict::Safe, "{:#?}", race.reasons);
    assert!(race.copies.iter().all(|c| c.exit == Some(0) && c.error.is_none()), "{:#?}", race.copies);
    assert_eq!(race.copies.len(), 3);
    assert!(race.hang.is_none() && race.schema_differences.is_empty() && race.reasons.is_empty());
    assert_eq!(race.versions.found, ["r4_orders_total_idx"]);
    let lock = race.lock.as_ref().expect("the lock they took turns on");
    assert_eq!((lock.kind, lock.key.as_str()), (AdvisoryLockKind::Session, "72707"));
    assert!(lock.waiters.is_empty(), "pollers never wait inside PostgreSQL: {lock:?}");
    let report = out.report();
    let item = report.checklist.items.iter().find(|i| i.title.starts_with("Runs as a standalone job")).unwrap();
    assert!(item.evidence.iter().any(|e| e.contains("held for 3 replicas")), "{item:?}");
    assert!(out.junit().contains("<testcase name=\"race\"") && !out.junit().contains("race_unsafe"));
    assert!(report.stages.iter().any(|s| s.stage == Stage::RaceCopy));
    sandbox.assert_no_leaks();
}

#[test]
fn kill_one_with_a_session_lock_finishes_with_a_fresh_copy() {
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "backend: local", "polling", "kill_one: true", "");
    let (_, race) = race(&sandbox, &path, 0);
    let kill = race.kill.as_ref().expect("a copy was killed");
    let killed = &race.copies[kill.copy - 1];
    assert!(killed.killed && killed.failure == Some(RaceFailure::Killed) && killed.exit.is_none(), "{killed:?}");
    assert!(kill.doing.contains("holding advisory lock 72707") || kill.doing.contains("running"), "{kill:?}");
    let fresh = race.copies.last().unwrap();
    assert!(fresh.fresh && fresh.copy == 4 && fresh.exit == Some(0), "{fresh:?}");
    assert!(fresh.started_ms >= race.copies[..3].iter().filter_map(|c| c.finished_ms).max().unwrap());
    assert_eq!(race.verdict, RaceVerdict::Safe, "{:#?}", race.reasons);
    sandbox.assert_no_leaks();
}

#[test]
fn sigint_during_the_race_leaves_nothing_running() {
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "backend: local", "blocking", "timeout: 60s", "");
    let out = run_and_signal(&sandbox, &["run", path.to_str().unwrap()], "race:", Signal::SIGINT);
    out.assert_code(130);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Interrupted);
    assert_eq!(report.stopped_at_stage, Some(Stage::Race), "{}", out.stderr);
    sandbox.assert_no_leaks();
}

#[test]
fn on_a_url_server_the_race_copy_is_dropped_with_the_throwaway_database() {
    let server = OwnedServer::start();
    let before = server.state();
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "backend: url", "polling", "replicas: 2", "");
    let out = sandbox.rehearse(&["run", path.to_str().unwrap(), "--url", &server.url()]);
    out.assert_code(0);
    let race = out.report().race.unwrap();
    assert!(race.database.starts_with("rehearse_") && race.database.ends_with("_race"), "{}", race.database);
    assert_eq!(race.verdict, RaceVerdict::Safe, "{:#?}", race.reasons);
    assert!(!out.json_text().contains(server.conn.password.expose()), "password leaked");
    assert_eq!(server.state(), before, "both databases are gone");
    sandbox.assert_no_leaks();
}

#[test]
fn a_copy_left_by_a_killed_url_run_is_found_and_dropped_by_cleanup() {
    // `rehearse cleanup` looks at containers too: not while another test's one is about.
    let _docker = docker_lock();
    let server = OwnedServer::start();
    let before = server.state();
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "backend: url", "blocking", "timeout: 60s", "");
    let cmd = sandbox.command(&["run", path.to_str().unwrap(), "--url", &server.url()]);
    let out = run_and_signal_with(cmd, &sandbox, "race:", Signal::SIGKILL);
    assert_eq!(out.code, -1, "killed by SIGKILL");
    let (dbs, _, _, _) = server.state();
    let left: Vec<&String> = dbs.iter().filter(|d| !before.0.contains(d)).collect();
    assert_eq!(left.len(), 2, "SIGKILL leaves the throwaway database and its race copy: {dbs:?}");
    assert!(left.iter().any(|d| d.ends_with("_race")), "{left:?}");

    let cleaned = sandbox.rehearse(&["cleanup", "--url", &server.url()]);
    cleaned.assert_code(0);
    assert_eq!(cleaned.stdout.matches("removed database rehearse_").count(), 2, "{}", cleaned.stdout);
    assert_eq!(server.state(), before);
    // The copies outlived the run (SIGKILL cleans up nothing); dropping
    // their database ended their sessions, and so them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_mentioning(sandbox.path()).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(processes_mentioning(sandbox.path()).is_empty(), "{:?}", processes_mentioning(sandbox.path()));
}

/// `make demo-race`: three replicas of `alembic upgrade head` over the
/// Alembic demo release, which takes no lock. Measured (docs/race.md): one
/// copy applies everything and the two others fail, behind it or beside it
/// (Alembic's "expected to match one row" on the version table, or a unique
/// violation on pg_class when two copies create the same index at once).
/// The demo's revisions are fast, so on a loaded machine a late copy may
/// find the database at head and exit 0: this holds the demo to what every
/// run shows, whichever way it went.
#[test]
fn the_race_demo_ends_at_head_and_each_failure_is_one_a_race_makes() {
    let sandbox = Sandbox::new();
    let demo = format!("{REPO}/scenarios/alembic-race.yaml");
    let (out, race) = race(&sandbox, std::path::Path::new(&demo), 0);
    assert!(race.copies.iter().any(|c| c.exit == Some(0)), "{:#?}", race.copies);
    for (copy, failure) in failures(&race) {
        assert!(
            matches!(failure, RaceFailure::VersionTable | RaceFailure::AlreadyExists | RaceFailure::DeadlockDetected),
            "copy {copy}: {:#?}",
            race.copies
        );
    }
    let expected = if failures(&race).is_empty() { RaceVerdict::Safe } else { RaceVerdict::Unsafe };
    assert_eq!(race.verdict, expected, "{:#?}", race.reasons);
    assert_eq!(race.versions.found, ["a8_orders_created_at_idx"]);
    assert!(race.hang.is_none() && race.schema_differences.is_empty());
    assert!(out.markdown().contains("## Racing replicas"));
    sandbox.assert_no_leaks();
}
