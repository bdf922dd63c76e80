//! A streaming hot standby in the rehearsal (`observe.standby`): started by
//! the local backend with pg_basebackup, or the user's own on the url
//! backend; how far it trails each migration, what reads on it wait, the
//! budgets on both; nothing left of it after a run or a signal.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rehearse::kinds::BackendKind;
use rehearse::report::{BudgetKey, MigrationReport, StandbyReport};

use crate::support::{
    assert_no_containers, docker_backend, docker_lock, dumps, tiny_demo_dump, HotStandby, OwnedServer, RunOutput,
    Sandbox,
};

fn standby_of(m: &MigrationReport) -> &StandbyReport {
    m.standby.as_ref().unwrap_or_else(|| panic!("{} has no standby figures", m.id))
}

fn read_wait(s: &StandbyReport, table: &str) -> f64 {
    s.read_waits.iter().find(|w| w.relation == table).map_or(0.0, |w| w.max_ms)
}

/// On the local backend, with replay held back 300ms (so the standby trails
/// by a known time): a rewrite leaves the standby its WAL behind, a catalog
/// change next to nothing; a lock held on the primary blocks reads on the
/// standby once it is replayed, which breaches `max_standby_read_wait`.
#[test]
fn a_standby_trails_a_rewrite_not_a_catalog_change_and_its_readers_wait_for_a_replayed_lock() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_catalog_only.sql", "ALTER TABLE public.orders ADD COLUMN flagged boolean;\n"),
        ("0002_rewrite.sql", "ALTER TABLE public.orders ALTER COLUMN total TYPE float8;\n"),
        ("0003_lock.sql", "LOCK TABLE public.customers IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(1.5);\n"),
    ]);
    let scenario = sandbox.scenario(
        &dumps().path("custom"),
        "observe:\n  hot_tables: [public.customers, public.orders]\n  standby: true\n  standby_lag_threshold: 200ms\n  \
         standby_settings:\n    recovery_min_apply_delay: 300ms\nbudgets:\n  migration:\n    max_standby_read_wait: 500ms\n",
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(1);
    let report = out.report();
    let info = report.standby.as_ref().expect("the report describes the standby");
    assert_eq!(info.source, BackendKind::Local);
    assert!(info.settings.iter().any(|s| s.name == "recovery_min_apply_delay" && s.value == "300ms"), "{info:?}");
    assert!(report.stages.iter().any(|s| s.stage.as_str() == "standby"), "{:?}", report.stages);

    let (catalog, rewrite, lock) = (&report.migrations[0], &report.migrations[1], &report.migrations[2]);
    let (c, r, l) = (standby_of(catalog), standby_of(rewrite), standby_of(lock));
    assert!(c.max_lag_bytes < 64 * 1024, "a catalog change leaves the standby almost nothing behind: {c:?}");
    assert!(
        r.max_lag_bytes >= rewrite.wal.bytes / 2,
        "replay held back 300ms: the rewrite's {} bytes of WAL are behind at a reading: {r:?}",
        rewrite.wal.bytes
    );
    for s in [c, r, l] {
        assert!(s.max_lag_ms >= 250, "replay is held back 300ms: {s:?}");
        let caught_up = s.catch_up_ms.expect("the standby caught up");
        assert!((150..10_000).contains(&caught_up), "catching up waits for the 300ms delay: {s:?}");
    }
    assert!(l.over_threshold_ms >= 1000, "1.5s of a standby 300ms behind, over a 200ms threshold: {l:?}");
    // The lock's WAL record reaches the standby when the heartbeat's next
    // commit flushes it, and is replayed at once (the delay holds back commits only).
    assert!(read_wait(l, "public.customers") >= 1000.0, "{l:?}");
    assert!(read_wait(r, "public.customers") < 500.0, "{r:?}");
    let breach = lock.breaches.iter().find(|b| b.budget == BudgetKey::MaxStandbyReadWait).expect("a breach");
    assert_eq!(breach.relation.as_deref(), Some("public.customers"));
    assert!(out.stdout.contains("Standby lag"), "{}", out.stdout);
    let md = out.markdown();
    assert!(md.contains("## Streaming standby") && md.contains("- Standby: up to"), "{md}");
    assert!(md.contains("Measured on a streaming hot standby (local backend"), "the checklist says it measured: {md}");
    sandbox.assert_no_leaks();
}

/// The url backend observes the standby the user names; its bytes behind
/// agree with the same difference read at the same time by this test, from
/// the primary's `pg_current_wal_lsn()` and the standby's own
/// `pg_last_wal_replay_lsn()`, within what the primary writes between two
/// readings; the user's standby is left running. Replay waits a second at
/// each commit (the heartbeat's, every reading), so the standby trails by
/// about a second of WAL: far more than the tolerance.
#[test]
fn the_url_backend_observes_a_named_standby_and_its_lag_agrees_with_an_independent_reading() {
    let primary = OwnedServer::start();
    // Replay held back a second: the standby trails by the last second's WAL.
    let standby = HotStandby::with(&primary, "-c recovery_min_apply_delay=1s");
    let sandbox = Sandbox::new();
    sandbox.migrations(&[(
        "0001_bulk.sql",
        "CREATE TABLE public.filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 1500000) g;\n",
    )]);
    let postgres = format!("backend: url\n  url: {}", primary.url());
    let extra =
        format!("observe:\n  standby_url: {}\n  standby_interval: 50ms\n", standby.url(&primary.conn, "postgres"));
    let scenario = sandbox.scenario_on(&postgres, &dumps().path("custom"), &extra);

    // The test's own reading, every 20ms while the run lasts.
    let running = Arc::new(AtomicBool::new(true));
    let (primary_conn, standby_conn) = (primary.conn.clone(), standby.conn(&primary.conn));
    let flag = running.clone();
    let sampler = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let p = rehearse::sys::db::connect(&primary_conn, "postgres", "test-lag").await.unwrap();
            let s = rehearse::sys::db::connect(&standby_conn, "postgres", "test-lag").await.unwrap();
            let mut most = 0i64;
            while flag.load(Ordering::Relaxed) {
                let (written, replayed) = tokio::join!(
                    p.query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8", &[]),
                    s.query_one("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8", &[])
                );
                most = most.max(written.unwrap().get::<_, i64>(0) - replayed.unwrap().get::<_, i64>(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            most
        })
    });
    let child =
        sandbox.command(&["run", scenario.to_str().unwrap()]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let output = child.unwrap().wait_with_output().unwrap();
    running.store(false, Ordering::Relaxed);
    let independent = sampler.join().unwrap() as u64;
    let out = RunOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        reports: sandbox.reports(),
    };
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.standby.as_ref().map(|s| s.source), Some(BackendKind::Url));
    let m = &report.migrations[0];
    let s = standby_of(m);
    // Two samplers of one lag: their peaks differ by at most what the
    // primary writes between two readings (50ms at the migration's rate), and a little.
    let rate = m.wal.bytes_per_second.unwrap_or(0.0) as u64;
    let tolerance = rate / 20 + 1024 * 1024;
    assert!(independent > 4 * tolerance, "the standby trails by far more than the tolerance: {independent}");
    assert!(s.max_lag_ms >= 900, "replay held back a second: {s:?}");
    assert!(
        s.max_lag_bytes.abs_diff(independent) <= tolerance,
        "rehearse saw {} bytes behind at most, this test {independent} (tolerance {tolerance}, {rate} B/s): {s:?}",
        s.max_lag_bytes
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let still = rt.block_on(rehearse::sys::db::connect(&standby.conn(&primary.conn), "postgres", "test"));
    assert!(still.is_ok(), "the user's standby is left running");
}

/// The docker backend runs its standby in a container of its own, on the
/// primary's network: the same figures, and no container left afterwards.
#[test]
fn the_docker_backend_runs_its_standby_in_a_container_of_its_own_and_removes_it() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    sandbox
        .migrations(&[("9001_lock.sql", "LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(1.2);\n")]);
    let scenario = sandbox.scenario_on(
        &docker_backend(),
        tiny_demo_dump(),
        "observe:\n  hot_tables: [public.users]\n  standby: true\n  standby_settings:\n    hot_standby_feedback: on\n",
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    let info = report.standby.as_ref().expect("a standby");
    assert_eq!(info.source, BackendKind::Docker);
    assert!(info.settings.iter().any(|s| s.name == "hot_standby_feedback" && s.value == "on"), "{info:?}");
    let s = standby_of(&report.migrations[0]);
    assert!(read_wait(s, "public.users") >= 800.0, "reads on the standby waited for the replayed lock: {s:?}");
    assert!(s.catch_up_ms.is_some(), "{s:?}");
    assert_no_containers();
    sandbox.assert_no_leaks();
}

/// `make demo-standby`: the demo release with a standby and the app's
/// queries. The rewrites' locks are replayed on the standby and block its
/// reads; 0007 breaks one query of the running app; report.md shows both.
#[test]
fn the_standby_demo_measures_standby_reads_and_names_the_broken_query() {
    let sandbox = Sandbox::new();
    let demo = format!("{}/scenarios/demo-standby.yaml", crate::support::REPO);
    let out = sandbox.rehearse(&["run", &demo]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.standby.as_ref().map(|s| s.source), Some(BackendKind::Local));
    let widen = report.migrations.iter().find(|m| m.id == "0007_widen_order_items_quantity").unwrap();
    let s = standby_of(widen);
    assert!(s.max_lag_bytes > 0, "a 70 MB rewrite leaves the standby behind at some reading: {s:?}");
    assert!(read_wait(s, "public.order_items") >= 300.0, "its ACCESS EXCLUSIVE lock is replayed there: {s:?}");
    let broken = &widen.compat.as_ref().expect("the app's queries were checked").broken;
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0].code, "42883");
    let md = out.markdown();
    assert!(md.contains("## Streaming standby") && md.contains("## Compatibility with the running app"), "{md}");
    sandbox.assert_no_leaks();
}
