//! `load:`: the app's traffic and a long transaction during each migration,
//! on real servers (15, and 18 from REHEARSE_PG18_BIN), each figure held
//! against what a client of the test's own saw on the same database.

use std::path::Path;

use nix::sys::signal::Signal;
use rehearse::report::{LoadVerdict, Report, RunStatus};

use crate::support::{dumps, run_and_signal, AppWatch, Felt, OwnedServer, Sandbox};

/// The app: reads and writes of orders, reads of customers, with their rates.
const WORKLOAD: &str = "\
-- The app's statements, with production's rates.
-- rate: 30/s
SELECT id, total FROM public.orders WHERE id = 1;
-- rate: 10/s
UPDATE public.orders SET total = total WHERE id = 2;
-- rate: 20/s
SELECT count(*) FROM public.customers WHERE id < 10;
";

/// A catalog-only change to orders: a few milliseconds on an idle copy.
const ADD_COLUMN: (&str, &str) = ("0001_add_gift_note.sql", "ALTER TABLE public.orders ADD COLUMN gift_note text;\n");

/// Rehearses `migration` on a server of the test's own (binaries in `bin`)
/// under the workload and a 5s long transaction on orders, with the test's
/// own client reading orders meanwhile. `migrations_extra` goes under
/// `migrations:` (`retry:`), `extra` at the top level.
fn under_load(bin: Option<&Path>, migration: (&str, &str), migrations_extra: &str) -> (Report, Felt, i32) {
    let server = OwnedServer::start_with(bin);
    let sandbox = Sandbox::new();
    sandbox.migrations(&[migration]);
    sandbox.write("workload.sql", WORKLOAD);
    let scenario = sandbox.scenario_on(
        &format!("backend: url\n  url: {}", server.url()),
        &dumps().path("custom"),
        &format!(
            "{migrations_extra}load:\n  queries: workload.sql\n  clients: 4\n  long_transactions:\n    - {{table: orders, duration: 5s}}\n\
             budgets:\n  migration: {{max_app_stall: 2s, max_app_p99: 1s}}\n"
        ),
    );
    let watch = AppWatch::start(&server.conn, "SELECT id FROM public.orders WHERE id = 3");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    let felt = watch.finish();
    (out.report(), felt, out.code)
}

/// The stall rehearse reports and the wait the test's own client felt are
/// the long transaction's duration (5s), within what a loaded 2-core box adds.
fn assert_stalled_for_the_long_transaction(report: &Report, felt: &Felt) {
    let m = &report.migrations[0];
    let load = m.load.as_ref().expect("migrations[].load");
    assert!(felt.reads > 20, "the test's own client read {} times", felt.reads);
    assert!((4000..=7000).contains(&felt.longest_read_ms), "the test's own client waited {}ms", felt.longest_read_ms);
    assert!((4000..=7000).contains(&load.stall_ms), "rehearse reports a {}ms stall", load.stall_ms);
    assert_eq!(load.stall_table.as_deref(), Some("public.orders"));
    let apart = (load.stall_ms as i64 - felt.longest_read_ms as i64).abs();
    assert!(apart <= 1500, "stall {}ms, the test's own wait {}ms", load.stall_ms, felt.longest_read_ms);
    assert!(load.latency_ms.p99 >= 4000.0 && load.baseline_ms.p99 < 1000.0, "{load:?}");
    // The queue: the load's sessions waiting behind the migration, as the
    // test's own count of them waiting on a lock saw (the same moments or close).
    assert!(load.max_queue >= 1 && felt.most_load_sessions_waiting >= 1, "{load:?} {felt:?}");
    assert!(load.max_queue as i64 <= felt.most_load_sessions_waiting + 1, "{load:?} {felt:?}");
    assert!(load.max_queue as i64 >= felt.most_load_sessions_waiting - 1, "{load:?} {felt:?}");
    assert_eq!(load.verdict, Some(LoadVerdict::Unsafe));
    // The migration itself took the long transaction's time: it waited for its lock.
    assert!(m.duration_ms >= 4500, "{}ms", m.duration_ms);
    // The load's own locks are not the migration's.
    assert!(m.locks.iter().all(|l| l.relation != "public.customers"), "{:?}", m.locks);
}

#[test]
fn a_long_transaction_ahead_of_a_cheap_migration_stalls_the_app_for_its_duration() {
    let (report, felt, code) = under_load(None, ADD_COLUMN, "");
    assert_eq!(code, 1, "max_app_stall is breached");
    assert_eq!(report.status, RunStatus::BudgetExceeded);
    assert_stalled_for_the_long_transaction(&report, &felt);
    let load = report.load.as_ref().unwrap();
    assert_eq!((load.clients, load.replayed, load.rate_asked), (4, 3, 60.0));
    assert!(load.rate_reached >= 54.0, "the machine reached {}/s of 60", load.rate_reached);
    assert_eq!(load.long_transactions[0].table, "public.orders");
    let budgets: Vec<&str> = report.migrations[0].breaches.iter().map(|b| b.budget.as_str()).collect();
    assert_eq!(budgets, ["max_app_p99", "max_app_stall"]);
}

/// The same migration under `migrations.retry`: each try gives up after
/// 300ms, so the app queues at most that long per try, and the migration
/// gets its lock once the long transaction ends.
const RETRY: &str = "  retry: {lock_timeout: 300ms, attempts: 50, backoff: 300ms}\n";

fn assert_bounded_by_retries(report: &Report, felt: &Felt, code: i32) {
    let m = &report.migrations[0];
    let load = m.load.as_ref().unwrap();
    assert_eq!(code, 0, "{load:?} {:?}", m.attempts);
    assert!(m.attempts.len() >= 2, "{:?}", m.attempts);
    assert!(
        m.attempts[..m.attempts.len() - 1].iter().all(|a| a.sqlstate.as_deref() == Some("55P03")),
        "{:?}",
        m.attempts
    );
    assert!(felt.reads > 20, "the test's own client read {} times", felt.reads);
    assert!(felt.longest_read_ms < 1500, "the test's own client waited {}ms", felt.longest_read_ms);
    assert!(load.latency_ms.max < 1500.0, "rehearse saw a statement take {}ms", load.latency_ms.max);
    assert!(load.stall_ms < 1500, "rehearse reports a {}ms stall", load.stall_ms);
    assert_eq!(load.verdict, Some(LoadVerdict::NormalHours), "{load:?}");
    // The tries outlasted the long transaction: that is where the time went.
    assert!(m.duration_ms >= 4000, "{}ms", m.duration_ms);
}

#[test]
fn a_retry_policy_bounds_the_stall_to_its_lock_timeout() {
    let (report, felt, code) = under_load(None, ADD_COLUMN, RETRY);
    assert_bounded_by_retries(&report, &felt, code);
}

#[test]
fn on_postgresql_18_too() {
    let bin = crate::postgres18::pg18_bin();
    let (report, felt, _) = under_load(Some(Path::new(&bin)), ADD_COLUMN, "");
    assert!(report.postgres.version.as_deref().unwrap().starts_with("18."));
    assert_stalled_for_the_long_transaction(&report, &felt);
    let (report, felt, code) = under_load(Some(Path::new(&bin)), ADD_COLUMN, RETRY);
    assert!(report.postgres.version.as_deref().unwrap().starts_with("18."));
    assert_bounded_by_retries(&report, &felt, code);
}

#[test]
fn an_index_built_concurrently_waits_for_the_long_transaction_without_stalling_the_app() {
    let cic = ("0001_index.sql", "CREATE INDEX CONCURRENTLY orders_total_idx ON public.orders (total);\n");
    let (report, felt, code) = under_load(None, cic, "");
    let m = &report.migrations[0];
    let load = m.load.as_ref().unwrap();
    assert_eq!(code, 0, "{load:?}");
    // It waited for the long transaction's snapshot: the app did not.
    assert!(m.duration_ms >= 4500, "{}ms", m.duration_ms);
    assert!(felt.longest_read_ms < 1000, "the test's own client waited {}ms", felt.longest_read_ms);
    assert_eq!(load.stall_ms, 0, "{load:?}");
    assert_eq!(load.max_queue, 0, "{load:?}");
    assert_eq!(load.verdict, Some(LoadVerdict::NormalHours));
}

#[test]
fn a_signal_during_the_load_stops_its_clients_and_leaves_nothing_running() {
    let server = OwnedServer::start();
    let before = server.state();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_slow.sql", "SELECT pg_sleep(30);\n")]);
    sandbox.write("workload.sql", WORKLOAD);
    let scenario = sandbox.scenario_on(
        &format!("backend: url\n  url: {}", server.url()),
        &dumps().path("custom"),
        "load:\n  queries: workload.sql\n  clients: 4\n  baseline: 300ms\n  long_transactions:\n    - {table: orders, duration: 20s}\n",
    );
    let started = std::time::Instant::now();
    let out = run_and_signal(&sandbox, &["run", scenario.to_str().unwrap()], "migration 1/1", Signal::SIGINT);
    out.assert_code(130);
    assert!(started.elapsed().as_secs() < 20, "stopped in {:?}, not after the long transaction", started.elapsed());
    // No session of the run is left on the server (its database is gone with them).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let left: i64 = rt.block_on(async {
        let c = rehearse::sys::db::connect(&server.conn, "postgres", "test").await.unwrap();
        let row = c.query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'rehearse%'", &[]);
        row.await.unwrap().get(0)
    });
    assert_eq!(left, 0, "sessions of the run are still on the server");
    assert_eq!(server.state(), before, "the run left something on the server");
    sandbox.assert_no_leaks();
}

/// `make demo-load`: the demo dump under scenarios/demo/queries.sql at its
/// rates and a 5s long transaction on orders. The catalog-only column
/// stalls the app for the transaction's duration, on orders (the app's
/// inserts into order_items wait there too, through their foreign key),
/// and the index built concurrently does not; under migrations.retry the
/// same column costs the app at most about one lock_timeout per try.
#[test]
fn the_load_demo_shows_the_stall_and_the_same_migration_bounded_by_retries() {
    let sandbox = Sandbox::new();
    let scenario = |name: &str| format!("{}/scenarios/{name}", crate::support::REPO);
    let out = sandbox.rehearse(&["run", &scenario("demo-load.yaml")]);
    out.assert_code(1);
    let report = out.report();
    let column = report.migrations[0].load.as_ref().unwrap();
    assert_eq!(column.verdict, Some(LoadVerdict::Unsafe), "{column:?}");
    assert!((4000..=7000).contains(&column.stall_ms), "{column:?}");
    assert_eq!(column.stall_table.as_deref(), Some("public.orders"));
    assert!(column.max_queue >= 2, "{column:?}");
    let index = report.migrations[1].load.as_ref().unwrap();
    assert_eq!((index.verdict, index.stall_ms, index.max_queue), (Some(LoadVerdict::NormalHours), 0, 0), "{index:?}");
    let load = report.load.as_ref().unwrap();
    assert!(load.rate_reached >= 0.9 * load.rate_asked, "{load:?}");
    let md = out.markdown();
    assert!(md.contains("## Under the app's traffic"), "{md}");

    let out = sandbox.rehearse(&["run", &scenario("demo-load-retry.yaml")]);
    out.assert_code(0);
    let m = &out.report().migrations[0];
    let bounded = m.load.as_ref().unwrap();
    assert!(m.attempts.len() >= 2, "{:?}", m.attempts);
    assert_eq!(bounded.verdict, Some(LoadVerdict::NormalHours), "{bounded:?}");
    assert!(bounded.latency_ms.max < 1500.0 && bounded.stall_ms < 1500, "{bounded:?}");
}

/// A command tool's locks are read from every session of the copy but
/// rehearse's own: the load's sessions are rehearse's own too, so the
/// customers they read and the orders they read and write are not locks
/// of the migration (only its ALTER's ACCESS EXCLUSIVE on orders is).
#[test]
fn a_command_tool_is_not_charged_with_the_load_s_locks() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    // Held a second, so that the sampler sees it (a command's locks are sampled).
    let held = "BEGIN;\nALTER TABLE public.orders ADD COLUMN gift_note text;\nSELECT pg_sleep(1);\nCOMMIT;\n";
    sandbox.migrations(&[(ADD_COLUMN.0, held)]);
    sandbox.write("workload.sql", WORKLOAD);
    let scenario = sandbox.write(
        "command.yaml",
        &format!(
            "name: command\ndump: {}\npostgres:\n  backend: url\n  url: {}\nmigrations:\n  tool: command\n  \
             revisions: [0001_add_gift_note]\n  apply: {}/psql -X -q -v ON_ERROR_STOP=1 -f migrations/{{rev}}.sql\n\
             load:\n  queries: workload.sql\n  clients: 4\n  baseline: 500ms\n",
            dumps().path("custom").display(),
            server.url(),
            crate::support::pg_bin_dir(),
        ),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let m = &out.report().migrations[0];
    assert!(m.load.as_ref().unwrap().statements > 0, "the load ran during the migration");
    let locks: Vec<(&str, String)> = m.locks.iter().map(|l| (l.relation.as_str(), format!("{:?}", l.mode))).collect();
    assert!(locks.iter().all(|(relation, _)| *relation != "public.customers"), "{locks:?}");
    let orders: Vec<&String> = locks.iter().filter(|(r, _)| *r == "public.orders").map(|(_, mode)| mode).collect();
    assert!(!orders.is_empty() && orders.iter().all(|mode| mode.contains("AccessExclusive")), "{locks:?}");
}

/// An app that only updates orders' foreign key stalls on customers: each
/// update's check takes a lock on customers, which queues behind the
/// migration's. The stall is named after the table the app queued on (read
/// from pg_locks), not the one its statements name.
#[test]
fn a_stall_through_a_foreign_key_is_named_after_the_table_locked() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_add_vip.sql", "ALTER TABLE public.customers ADD COLUMN vip boolean;\n")]);
    sandbox.write(
        "workload.sql",
        "-- rate: 20/s\nUPDATE public.orders SET customer_id = CASE WHEN customer_id = 1 THEN 2 ELSE 1 END WHERE id = 2;\n",
    );
    let scenario = sandbox.scenario_on(
        &format!("backend: url\n  url: {}", server.url()),
        &dumps().path("custom"),
        "load:\n  queries: workload.sql\n  clients: 2\n  baseline: 500ms\n  long_transactions:\n    - {table: customers, duration: 3s}\n",
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let load = out.report().migrations[0].load.clone().unwrap();
    assert!((2000..=5000).contains(&load.stall_ms), "{load:?}");
    assert_eq!(load.stall_table.as_deref(), Some("public.customers"), "{load:?}");
    assert!(load.max_queue >= 1, "{load:?}");
}

/// A rate this machine cannot reach is not run lower silently: the report
/// says the rate reached, within what two clients of 50ms statements can
/// issue at most, and the terminal and report.md say so.
#[test]
fn a_rate_out_of_reach_is_reported_as_the_rate_reached() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[ADD_COLUMN]);
    sandbox.write("workload.sql", "SELECT pg_sleep(0.05);\n");
    let scenario = sandbox.scenario_on(
        &format!("backend: url\n  url: {}", server.url()),
        &dumps().path("custom"),
        "load:\n  queries: workload.sql\n  rate: 200/s\n  clients: 2\n  baseline: 1s\n",
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let load = out.report().load.unwrap();
    // Two clients of 50ms statements issue at most 40/s.
    assert_eq!(load.rate_asked, 200.0);
    assert!(load.rate_reached > 20.0 && load.rate_reached <= 42.0, "{load:?}");
    assert!(load.dropped > 0, "{load:?}");
    let note = format!("the load reached {:.1} statements/s of the 200.0 asked", load.rate_reached);
    assert!(out.stdout.contains(&note), "{}", out.stdout);
    assert!(out.markdown().contains(&format!("This machine reached {:.1} statements/s", load.rate_reached)));
}
