//! Racing replicas (`race:`): three copies of real `alembic upgrade head`
//! at once on a fresh copy of the restored database, against real
//! PostgreSQL, with tests/fixtures/alembic_race (a backfill that holds its
//! lock a second, then CREATE INDEX CONCURRENTLY in an autocommit block).
//! Its env.py takes no lock, waits in pg_advisory_lock, or polls
//! pg_try_advisory_lock, as RACE_LOCK says. What PostgreSQL 15 did in each
//! case, measured: docs/race.md.

use std::path::PathBuf;

use nix::sys::signal::Signal;
use rehearse::pg::ActivityState;
use rehearse::report::{
    AdvisoryLockKind, BarrierRelease, RaceBarrier, RaceFailure, RaceReport, RaceVerdict, RunStatus, Stage,
};

use crate::support::{
    docker_lock, dumps, processes_mentioning, run_and_signal, run_and_signal_with, venv_python, CpuHog, OwnedServer,
    RunOutput, Sandbox, REPO,
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

/// A `race.command` that runs the fixture's `alembic upgrade head` (its
/// env.py reads DATABASE_URL), copies other than copy 1 only after
/// sleeping `late` seconds.
fn staggered(late: u32) -> String {
    format!(
        "command: '[ \"$PGAPPNAME\" = rehearse-race-copy-1 ] || sleep {late}; exec {} -m alembic upgrade head'",
        venv_python()
    )
}

/// The race's barrier.
fn barrier(race: &RaceReport) -> &RaceBarrier {
    race.barrier.as_ref().unwrap_or_else(|| panic!("a barrier in the race: {race:#?}"))
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
    let holder =
        in_cycle.iter().find(|l| l.state == ActivityState::Idle).expect("the idle lock session of the builder's copy");
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
/// Alembic demo release, which takes no lock and whose first pending
/// revision adds a column. Held at the barrier until all three have
/// connected, the copies read the version together, as three started by
/// hand at once do: one applies everything, the two others find the column
/// there (measured in four runs, docs/race.md). Before the barrier, which
/// failure a copy met depended on when it started, and a late copy could
/// find the database at head.
#[test]
fn the_race_demo_ends_at_head_and_the_two_copies_behind_the_first_find_its_column() {
    let sandbox = Sandbox::new();
    let demo = format!("{REPO}/scenarios/alembic-race.yaml");
    let (out, race) = race(&sandbox, std::path::Path::new(&demo), 0);
    assert_eq!(barrier(&race).release, BarrierRelease::AllArrived, "{:#?}", race.barrier);
    assert_eq!(race.copies.iter().filter(|c| c.exit == Some(0)).count(), 1, "{:#?}", race.copies);
    let failed = failures(&race);
    assert_eq!(failed.len(), 2, "{:#?}", race.copies);
    for (copy, failure) in failed {
        let c = &race.copies[copy - 1];
        assert_eq!(failure, RaceFailure::AlreadyExists, "{c:#?}");
        assert!(c.error.as_deref().unwrap_or("").contains("column \"refund_reason\" of relation \"orders\""), "{c:#?}");
    }
    assert_eq!(race.verdict, RaceVerdict::Unsafe, "{:#?}", race.reasons);
    assert_eq!(race.versions.found, ["a8_orders_created_at_idx"]);
    assert!(race.hang.is_none() && race.schema_differences.is_empty());
    assert!(out.markdown().contains("## Racing replicas"));
    sandbox.assert_no_leaks();
}

/// The case: on a loaded machine, a copy's interpreter takes
/// seconds to start, and one copy finished every revision before the
/// others had connected (`safe`, all exit 0, no wait). Here four busy loops
/// load this machine's CPUs, each copy starts after a random delay up to
/// 3s (measured without the barrier: copy 1 was done before the two others
/// connected in 3 runs of 3), and the backfill is quick (RACE_HOLD 0).
#[test]
fn on_a_loaded_machine_the_barrier_makes_the_copies_meet_and_two_find_the_column_there() {
    let hog = CpuHog::start(4);
    the_copies_meet_and_two_find_the_column_there();
    drop(hog);
}

#[test]
fn on_an_idle_machine_the_barrier_makes_the_copies_meet_and_two_find_the_column_there() {
    the_copies_meet_and_two_find_the_column_there();
}

/// The barrier holds each copy at its first read of alembic_version until
/// all three wait there, so they meet as three replicas started by hand at
/// once do: one applies the backfill, the two others find its column there.
fn the_copies_meet_and_two_find_the_column_there() {
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "backend: local", "none, RACE_HOLD: 0", "replicas: 3, jitter: 3s", "");
    let (_, race) = race(&sandbox, &path, 0);
    let b = barrier(&race);
    assert_eq!(b.tables, ["public.alembic_version"]);
    assert_eq!((b.release, b.arrived.as_slice()), (BarrierRelease::AllArrived, &[1, 2, 3][..]), "{b:#?}");
    assert!(b.missing.is_empty() && b.failed_at_barrier.is_empty(), "{b:#?}");
    let released = b.released_ms.expect("released");
    for c in &race.copies {
        let (first, last) = (c.first_seen_ms.unwrap(), c.last_seen_ms.unwrap());
        assert!(first <= released && released <= last, "copy {} was at the database at the release: {c:#?}", c.copy);
    }
    assert!(race.met_ms.is_some_and(|m| m <= released), "{:?} {released}", race.met_ms);
    assert_eq!(race.verdict, RaceVerdict::Unsafe, "{:#?}", race.reasons);
    assert_eq!(race.copies.iter().filter(|c| c.exit == Some(0)).count(), 1, "{:#?}", race.copies);
    let failed = failures(&race);
    assert_eq!(failed.len(), 2, "{failed:?}");
    for (copy, failure) in &failed {
        let c = &race.copies[copy - 1];
        assert_eq!(*failure, RaceFailure::AlreadyExists, "{c:#?}");
        assert!(c.error.as_deref().unwrap_or("").contains("column \"channel\" of relation \"orders\" already exists"));
    }
    sandbox.assert_no_leaks();
}

/// Copies that never meet prove nothing: copies 2 and 3 start 19s late,
/// past the barrier's patience (half the 30s deadline), so copy 1 is let go
/// alone and finishes before they connect. Every copy exits 0 and the end
/// state is the sequential rehearsal's, as when the race said `safe`.
#[test]
fn copies_that_never_meet_make_an_inconclusive_race_never_a_safe_one() {
    let sandbox = Sandbox::new();
    let race_keys = format!("timeout: 30s, {}", staggered(19));
    let path = scenario(&sandbox, "backend: local", "none, RACE_HOLD: 0", &race_keys, "");
    let (out, race) = race(&sandbox, &path, 0);
    assert!(race.copies.iter().all(|c| c.exit == Some(0)), "{:#?}", race.copies);
    assert_eq!(race.versions.found, race.versions.expected);
    let b = barrier(&race);
    assert_eq!((b.release, b.missing.as_slice()), (BarrierRelease::Patience, &[2, 3][..]), "{b:#?}");
    assert!(b.released_ms.is_some_and(|ms| (15_000..16_000).contains(&ms)), "{b:#?}");
    // A late copy finds the database at head and may come and go between
    // two readings of the server (every 50ms): never seen is late too.
    let copy1_left = race.copies[0].last_seen_ms.unwrap();
    assert!(race.copies[1..].iter().all(|c| c.first_seen_ms.is_none_or(|f| f > copy1_left)), "{:#?}", race.copies);
    assert_eq!(race.met_ms, None);
    assert_eq!(race.verdict, RaceVerdict::Inconclusive, "{:#?}", race.reasons);
    assert_eq!(race.reasons.len(), 1, "{:#?}", race.reasons);
    let reason = &race.reasons[0];
    assert!(
        reason.starts_with("the copies never met: ")
            && reason.contains("; the barrier let the copies go at 15.")
            && reason.ends_with("without copies 2 and 3, still starting"),
        "{reason}"
    );
    let seen_late: Vec<usize> = race.copies[1..].iter().filter(|c| c.first_seen_ms.is_some()).map(|c| c.copy).collect();
    if !seen_late.is_empty() {
        assert!(reason.contains("copy 1 was done with the database (last seen at"), "{reason}");
    }
    assert!(out.stdout.contains("race of 3 replicas: inconclusive"), "{}", out.stdout);
    assert!(out.markdown().contains("Why inconclusive:"), "{}", out.markdown());
    let item =
        out.report().checklist.items.into_iter().find(|i| i.title.starts_with("Runs as a standalone job")).unwrap();
    assert!(!item.done && item.todo.as_deref().unwrap_or("").contains("inconclusive"), "{item:?}");
    sandbox.assert_no_leaks();
}

/// A release with nothing pending gives the copies nothing to race on: they
/// all exit 0 having done nothing. Inconclusive, and under fail_on_race the
/// gate fails closed on it (exit 1), as it does on an unsafe race.
#[test]
fn a_race_with_nothing_pending_is_inconclusive_and_fails_the_gate_under_fail_on_race() {
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "backend: local", "none", "replicas: 2", "budgets:\n  fail_on_race: true\n");
    let text =
        std::fs::read_to_string(&path).unwrap().replace("  python:", "  target: r2_orders_note_index\n  python:");
    std::fs::write(&path, text).unwrap();
    let (out, race) = race(&sandbox, &path, 1);
    assert!(out.report().migrations.is_empty());
    assert!(race.copies.iter().all(|c| c.exit == Some(0)), "{:#?}", race.copies);
    assert_eq!(race.verdict, RaceVerdict::Inconclusive, "{:#?}", race.reasons);
    assert!(race.reasons.iter().any(|r| r.starts_with("nothing was pending")), "{:#?}", race.reasons);
    let report = out.report();
    assert_eq!(report.status, RunStatus::BudgetExceeded);
    assert!(
        report
            .budget_breaches
            .iter()
            .any(|b| b.starts_with("fail_on_race: racing 2 replicas")
                && b.contains("was inconclusive: nothing was pending")),
        "{:?}",
        report.budget_breaches
    );
    assert!(out.junit().contains("type=\"race_inconclusive\""), "{}", out.junit());
    sandbox.assert_no_leaks();
}

/// A copy whose own lock_timeout (set in env.py) is shorter than the wait
/// for a late copy fails at the barrier: rehearse's doing, not the race's,
/// so it makes the race inconclusive, not unsafe.
#[test]
fn a_copy_failing_at_the_barrier_on_its_own_lock_timeout_is_not_called_unsafe() {
    let sandbox = Sandbox::new();
    let race_keys = format!("replicas: 2, {}", staggered(6));
    let path = scenario(&sandbox, "backend: local", "none, RACE_LOCK_TIMEOUT: 1s", &race_keys, "");
    let (_, race) = race(&sandbox, &path, 0);
    let first = &race.copies[0];
    assert_eq!(first.exit, Some(1), "{first:#?}");
    assert!(first.error.as_deref().unwrap_or("").contains("lock timeout"), "{first:#?}");
    let b = barrier(&race);
    assert_eq!((b.release, b.failed_at_barrier.as_slice()), (BarrierRelease::AllArrived, &[1][..]), "{b:#?}");
    assert!(first.finished_ms.unwrap() < b.released_ms.unwrap(), "{first:#?} {b:#?}");
    assert_eq!(race.copies[1].exit, Some(0), "the late copy applied everything: {:#?}", race.copies);
    assert_eq!(race.versions.found, race.versions.expected);
    assert_eq!(race.verdict, RaceVerdict::Inconclusive, "{:#?}", race.reasons);
    assert!(race.reasons.iter().any(|r| r.starts_with("copy 1 failed while rehearse held it at the barrier")));
    sandbox.assert_no_leaks();
}
