//! `migrations.retry`: lock_timeout with retries, as production would run
//! it. The rehearsal runs on a server of the test's own (url backend), so
//! the test's own sessions reach the copy: one holds ACCESS SHARE on
//! public.orders in an open transaction (a long report query of the app)
//! while the migration wants ACCESS EXCLUSIVE; a third, the app's reads,
//! times each SELECT. Without the policy the ALTER queues behind the
//! holder and every read queues behind the ALTER; with it the ALTER gives
//! up after its lock_timeout, the reads go through, and it comes back.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rehearse::report::{MigrationReport, MigrationStatus, Report};
use rehearse::sys::db::ConnInfo;

use crate::support::{pg_bin_dir, tiny_demo_dump, venv_python, OwnedServer, Sandbox, REPO};

/// The first migration: long enough for the test's session to take its lock before the second starts.
const WAIT: &str = "SELECT pg_sleep(1)";
/// How long the test's session holds its lock at least, from the first migration on.
const HOLD: Duration = Duration::from_secs(3);
/// ... and at most, whatever the tries.
const HOLD_CAP: Duration = Duration::from_secs(30);
/// The ALTER's waits the holder sees before it lets go: the tries that give up, and one more.
const TRIES_SEEN: usize = 3;
const ALTER: &str = "ALTER TABLE public.orders ADD COLUMN retry_note text";

/// What the app's reads saw while the lock was held.
struct Reads {
    longest: Duration,
    count: usize,
}

/// Waits (in a thread of its own) for the rehearsal's database on `server`
/// to run the first migration's `SELECT pg_sleep(1)`, then holds ACCESS
/// SHARE on public.orders in an open transaction while a third session
/// SELECTs from it in a loop, timing each, until a second after the
/// commit or the end of the rehearsal. The lock is held until the ALTER
/// has been seen waiting for it [`TRIES_SEEN`] times (each try is a new
/// wait: a new session, or a new statement start), at least [`HOLD`] and
/// at most [`HOLD_CAP`]: on a loaded machine a try may take seconds to
/// start (a new Alembic process), and a fixed hold would end before the
/// second try came.
fn hold_orders_during_the_release(conn: ConnInfo) -> JoinHandle<Reads> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let db = rehearsal_database(&conn).await;
            let holder = rehearse::sys::db::connect(&conn, &db, "test-holder").await.unwrap();
            holder.batch_execute("BEGIN; LOCK TABLE public.orders IN ACCESS SHARE MODE").await.unwrap();
            let app = rehearse::sys::db::connect(&conn, &db, "test-app").await.unwrap();
            // Not the holder's session: inside its transaction pg_stat_activity would stay as first read.
            let watcher = rehearse::sys::db::connect(&conn, "postgres", "test-watcher").await.unwrap();
            let start = Instant::now();
            let released = std::cell::Cell::new(None::<Instant>);
            let hold = async {
                let mut tries = std::collections::BTreeSet::new();
                while start.elapsed() < HOLD_CAP && (tries.len() < TRIES_SEEN || start.elapsed() < HOLD) {
                    let waiting = watcher
                        .query(
                            "SELECT pid, query_start::text FROM pg_stat_activity WHERE datname = $1 \
                             AND wait_event_type = 'Lock' AND query LIKE $2",
                            &[&db, &format!("%{ALTER}%")],
                        )
                        .await;
                    let Ok(waiting) = waiting else { break };
                    let gone = "SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = $1)";
                    if watcher.query_one(gone, &[&db]).await.is_ok_and(|r| r.get::<_, bool>(0)) {
                        break; // the rehearsal is over (the failing case)
                    }
                    tries.extend(waiting.iter().map(|r| (r.get::<_, i32>(0), r.get::<_, String>(1))));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                // The rehearsal may be over and its database dropped (the failing case).
                let _ = holder.batch_execute("COMMIT").await;
                released.set(Some(Instant::now()));
            };
            let reads = async {
                let mut reads = Reads { longest: Duration::ZERO, count: 0 };
                while released.get().is_none_or(|at| at.elapsed() < Duration::from_secs(1)) {
                    let t0 = Instant::now();
                    if app.query_one("SELECT count(*) FROM public.orders", &[]).await.is_err() {
                        break; // the rehearsal is over: its database was dropped
                    }
                    (reads.longest, reads.count) = (reads.longest.max(t0.elapsed()), reads.count + 1);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                reads
            };
            tokio::join!(hold, reads).1
        })
    })
}

/// The rehearsal's database on `conn`'s server, once its first migration runs [`WAIT`].
async fn rehearsal_database(conn: &ConnInfo) -> String {
    let admin = rehearse::sys::db::connect(conn, "postgres", "test-watch").await.unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(180) {
        let row = admin
            .query_opt(
                "SELECT datname::text FROM pg_stat_activity WHERE datname LIKE 'rehearse%' AND state = 'active' \
                 AND query LIKE $1 AND pid <> pg_backend_pid()",
                &[&format!("%{WAIT}%")],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the rehearsal never ran its first migration ({WAIT})");
}

/// `retry:` under `migrations:`, with `attempts`.
fn retry(attempts: u32) -> String {
    format!("  retry:\n    lock_timeout: 300ms\n    attempts: {attempts}\n    backoff: 200ms\n")
}

/// The migration that wanted the lock: at least two tries that gave up on
/// their lock_timeout (55P03), and the reads never waited much longer than it.
fn assert_retried_past_the_holder(m: &MigrationReport, reads: &Reads) {
    assert!(reads.count > 20, "the app's session read {} times", reads.count);
    assert!(
        reads.longest < Duration::from_millis(1500),
        "a read waited {:?}: the ALTER queued the app behind it for longer than its lock_timeout",
        reads.longest
    );
    assert_eq!(m.status, MigrationStatus::Applied, "{:?}", m.error);
    assert!(!m.attempts.is_empty(), "no tries recorded under migrations.retry");
    let (failed, last) = m.attempts.split_at(m.attempts.len() - 1);
    assert!(failed.len() >= 2, "{:?}", m.attempts);
    assert!(failed.iter().all(|a| a.sqlstate.as_deref() == Some("55P03") && a.lock_timeout_ms == 300), "{failed:?}");
    assert_eq!(last[0].sqlstate, None);
    let lost = m.retry_lost_ms.unwrap();
    assert_eq!(lost, last[0].started_ms, "the time lost ends where the last try starts");
    assert!(lost >= 2 * 300 + 200, "{lost} ms: two tries of 300 ms and a pause");
    assert!(m.duration_ms >= lost, "the migration's time holds its tries: {} < {lost}", m.duration_ms);
}

/// The migration gave up after its tries: failed, with the message that says what to do.
fn assert_out_of_tries(report: &Report, index: usize) {
    let m = &report.migrations[index];
    assert_eq!(m.status, MigrationStatus::Failed);
    assert_eq!(m.attempts.len(), 2, "{:?}", m.attempts);
    let message = &m.error.as_ref().unwrap().message;
    assert!(message.starts_with("lock_timeout 300ms: 2 attempts failed to get the lock"), "{message}");
    assert!(message.contains("raise migrations.retry.attempts"), "{message}");
    assert!(message.contains("the last error:") && message.contains("lock timeout"), "{message}");
}

#[test]
fn an_sql_migration_behind_a_long_transaction_gives_up_and_comes_back_without_queueing_the_app() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("1_wait.sql", &format!("{WAIT};\n")), ("2_add.sql", &format!("{ALTER};\n"))]);
    let scenario = sandbox.scenario_on("backend: url", tiny_demo_dump(), &retry(20));
    let reads = hold_orders_during_the_release(server.conn.clone());
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--url", &server.url()]);
    let reads = reads.join().unwrap();
    out.assert_code(0);
    let report = out.report();
    assert_retried_past_the_holder(&report.migrations[1], &reads);
    assert_eq!(report.migrations[0].attempts.len(), 1, "a migration that passed at once has its one try");
    let statement = &report.migrations[1].statements[0];
    assert_eq!(statement.lock_timeout_ms, Some(300), "the statement ran under the lock_timeout");
    let tries = report.migrations[1].attempts.len();
    assert!(out.markdown().contains(&format!("{tries} attempts")), "{}", out.markdown());
    assert!(out.stdout.contains(&format!("{tries} tries")), "{}", out.stdout);

    let sandbox = Sandbox::new();
    sandbox.migrations(&[("1_wait.sql", &format!("{WAIT};\n")), ("2_add.sql", &format!("{ALTER};\n"))]);
    let scenario = sandbox.scenario_on("backend: url", tiny_demo_dump(), &retry(2));
    let reads = hold_orders_during_the_release(server.conn.clone());
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--url", &server.url()]);
    reads.join().unwrap();
    out.assert_code(2);
    assert_out_of_tries(&out.report(), 1);
}

#[test]
fn a_command_gets_the_lock_timeout_through_pgoptions_and_its_failure_is_retried() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("1_wait.sql", &format!("{WAIT};\n")), ("2_add.sql", &format!("{ALTER};\n"))]);
    let scenario = |attempts: u32| {
        sandbox.write(
            "command.yaml",
            &format!(
                "name: command\ndump: {}\npostgres:\n  backend: url\nmigrations:\n  tool: command\n  revisions: \
                 [1_wait, 2_add]\n  apply: {}/psql -X -q -v ON_ERROR_STOP=1 -f migrations/{{rev}}.sql\n{}",
                tiny_demo_dump().display(),
                pg_bin_dir(),
                retry(attempts)
            ),
        )
    };
    let reads = hold_orders_during_the_release(server.conn.clone());
    // The shell's own PGOPTIONS is not the tool's (cleared as every PG* is), and not listed as cleared: rehearse's replaces it.
    let (path, url) = (scenario(20), server.url());
    let args = ["run", path.to_str().unwrap(), "--url", &url];
    let out = sandbox.rehearse_env(&args, &[("PGOPTIONS", "-c lock_timeout=0")]);
    let reads = reads.join().unwrap();
    out.assert_code(0);
    let report = out.report();
    assert_retried_past_the_holder(&report.migrations[1], &reads);
    let cleared = report.isolation.as_ref().map(|i| i.cleared_env.clone()).unwrap_or_default();
    assert!(!cleared.iter().any(|c| c == "PGOPTIONS"), "rehearse's own PGOPTIONS is not cleared: {cleared:?}");

    let reads = hold_orders_during_the_release(server.conn.clone());
    let out = sandbox.rehearse(&["run", scenario(2).to_str().unwrap(), "--url", &server.url()]);
    reads.join().unwrap();
    out.assert_code(2);
    assert_out_of_tries(&out.report(), 1);
}

/// The Alembic project `tests/fixtures/alembic_retry` (r1 waits, r2 alters
/// orders) with `migrations` keys added.
fn alembic_scenario(sandbox: &Sandbox, migrations: &str) -> String {
    sandbox
        .write(
            "alembic.yaml",
            &format!(
                "name: alembic\ndump: {}\npostgres:\n  backend: url\nmigrations:\n  tool: alembic\n  dir: \
                 {REPO}/tests/fixtures/alembic_retry\n  python: {}\n{migrations}",
                tiny_demo_dump().display(),
                venv_python()
            ),
        )
        .display()
        .to_string()
}

#[test]
fn an_alembic_revision_is_retried_by_a_new_process_when_each_revision_commits_on_its_own() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    let per_migration = format!("  env:\n    FIXTURE_TRANSACTION_PER_MIGRATION: \"1\"\n{}", retry(20));
    let reads = hold_orders_during_the_release(server.conn.clone());
    let out = sandbox.rehearse(&["run", &alembic_scenario(&sandbox, &per_migration), "--url", &server.url()]);
    let reads = reads.join().unwrap();
    out.assert_code(0);
    let report = out.report();
    assert_retried_past_the_holder(&report.migrations[1], &reads);
    let statement = report.migrations[1].statements.iter().find(|s| s.query.starts_with("ALTER")).unwrap();
    assert_eq!(statement.lock_timeout_ms, Some(300), "PGOPTIONS reached Alembic's session");

    // env.py's default, one transaction for the release: r2's failure
    // rolled r1 back with it, and r2 cannot be tried alone.
    let sandbox = Sandbox::new();
    let reads = hold_orders_during_the_release(server.conn.clone());
    let out = sandbox.rehearse(&["run", &alembic_scenario(&sandbox, &retry(20)), "--url", &server.url()]);
    reads.join().unwrap();
    out.assert_code(2);
    let report = out.report();
    let m = &report.migrations[1];
    assert_eq!((m.status, m.attempts.len()), (MigrationStatus::Failed, 1), "{:?}", m.attempts);
    let message = &m.error.as_ref().unwrap().message;
    assert!(message.contains("cannot be tried again alone"), "{message}");
    assert!(message.contains("transaction_per_migration=True"), "{message}");
}

/// `max_runtime` covers every try and pause: the deadline ends a pause,
/// and the migration is timed out then, not after the pause.
#[test]
fn the_migrations_max_runtime_covers_its_tries_and_ends_a_pause() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("1_wait.sql", &format!("{WAIT};\n")), ("2_add.sql", &format!("{ALTER};\n"))]);
    let extra = "  retry:\n    lock_timeout: 300ms\n    attempts: 20\n    backoff: 3s\n\
                 budgets:\n  migration:\n    max_runtime: 1500ms\n";
    let scenario = sandbox.scenario_on("backend: url", tiny_demo_dump(), extra);
    let reads = hold_orders_during_the_release(server.conn.clone());
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--url", &server.url()]);
    reads.join().unwrap();
    out.assert_code(1);
    let report = out.report();
    let m = &report.migrations[1];
    assert_eq!(m.status, MigrationStatus::TimedOut, "{:?}", m.error);
    assert_eq!(m.attempts.len(), 1, "the deadline came in the first pause: {:?}", m.attempts);
    assert_eq!(m.attempts[0].sqlstate.as_deref(), Some("55P03"));
    assert!((1500..2500).contains(&m.duration_ms), "timed out {} ms in, not after the 3 s pause", m.duration_ms);
    let message = &m.error.as_ref().unwrap().message;
    assert!(message.contains("ran past its max_runtime budget of 1.5s"), "{message}");
}
