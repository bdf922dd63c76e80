//! `rehearse watch` against real servers: a "production" primary with a
//! real streaming standby, the release rehearsed on a copy of it (a dump),
//! then applied to production with psql as golang-migrate would record it,
//! while two watches follow it with the rehearsal's report. Each figure the
//! watch reports is checked against the test's own reading: the session
//! waiting behind the migration (pg_blocking_pids), the standby's replay
//! position (paused by the test), the index build's progress; a watch
//! writes no WAL (pg_walinspect), and bad input is refused.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rehearse::sys::db::ConnInfo;
use serde_json::Value;
use tokio_postgres::Client;

use crate::support::{dumps, restored_cluster, venv_python, HotStandby, OwnedServer, Sandbox, REPO};

/// Production: users big enough for an index build to show in
/// pg_stat_progress_create_index, and golang-migrate's history table at version 1.
const PRODUCTION_SQL: &str = "
CREATE TABLE public.users (id int PRIMARY KEY, email text NOT NULL);
INSERT INTO public.users SELECT g, md5(g::text) || '@example.com' FROM generate_series(1, 300000) g;
CREATE TABLE public.schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO public.schema_migrations VALUES (1, false);
";

const RELEASE: [(&str, &str); 3] = [
    ("0002_add_users_note.sql", "ALTER TABLE public.users ADD COLUMN note text;\n"),
    ("0003_index_users_email.sql", "CREATE INDEX users_email_idx ON public.users (email);\n"),
    ("0004_add_users_flag.sql", "ALTER TABLE public.users ADD COLUMN flag boolean;\n"),
];

const SCENARIO: &str = "name: watched-release
dump: prod.dump
postgres:
  backend: local
migrations:
  tool: sql
  dir: migrations
  table: schema_migrations
budgets:
  migration:
    max_probe_wait: 1s
    max_exclusive_lock: 1s
estimate:
  production: prod-stats.json
  speed: 1.0
";

struct Production {
    server: OwnedServer,
    rt: tokio::runtime::Runtime,
    client: Client,
    app: ConnInfo,
}

impl Production {
    fn start() -> Production {
        let server = OwnedServer::start();
        server.sql("postgres", "CREATE DATABASE app");
        server.sql("app", PRODUCTION_SQL);
        server.sql("app", "VACUUM ANALYZE");
        let app = ConnInfo { dbname: "app".into(), ..server.conn.clone() };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(rehearse::sys::db::connect(&app, "app", "test")).unwrap();
        Production { server, rt, client, app }
    }

    fn url(&self) -> String {
        self.server.url().replace("/postgres", "/app")
    }

    fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.rt.block_on(self.client.query(sql, &[])).unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    fn lsn(&self) -> u64 {
        self.query("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8")[0].get::<_, i64>(0) as u64
    }

    /// psql on production's app database, as the release's runbook runs it.
    fn psql(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.server.bin_dir().join("psql"));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]).args(args).envs(self.app.libpq_env("app", "release"));
        cmd
    }

    /// Dumps the app database to the sandbox's prod.dump and records its statistics.
    fn dump_and_stats(&self, sandbox: &Sandbox) {
        let out = Command::new(self.server.bin_dir().join("pg_dump"))
            .args(["-Fc", "-f"])
            .arg(sandbox.path().join("prod.dump"))
            .envs(self.app.libpq_env("app", "test"))
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        sandbox.rehearse(&["stats", "--url", &self.url(), "--out", "prod-stats.json"]).assert_code(0);
    }

    /// Polls `sql` (one boolean) until it is true, for up to 30 s.
    fn wait_for(&self, what: &str, sql: &str) {
        wait_until(&self.rt, &self.client, what, sql);
    }
}

/// Polls `sql` (one boolean) on `client` until it is true, for up to 30 s.
fn wait_until(rt: &tokio::runtime::Runtime, client: &Client, what: &str, sql: &str) {
    let started = Instant::now();
    while !rt.block_on(client.query_one(sql, &[])).unwrap_or_else(|e| panic!("{sql}: {e:?}")).get::<_, bool>(0) {
        assert!(started.elapsed() < Duration::from_secs(30), "waited 30s for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The watch's events file, read back.
fn events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

fn of<'a>(events: &'a [Value], kind: &str, migration: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind && e["migration"] == migration).collect()
}

fn finish(child: Child, within: Duration) -> (i32, String) {
    let started = Instant::now();
    let mut child = child;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code().unwrap_or(-1), stderr);
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("watch still running after {within:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_follows_a_psql_release_its_lock_queue_and_standby_and_exits_on_a_breach() {
    let production = Production::start();
    let standby = HotStandby::of(&production.server);
    let sandbox = Sandbox::new();
    let dir = sandbox.migrations(&RELEASE);
    production.dump_and_stats(&sandbox);
    let scenario = sandbox.write("scenario.yaml", SCENARIO);
    let rehearsal = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--format", "json"]);
    rehearsal.assert_code(0);
    let report = rehearsal.report();
    assert!(report.migrations.iter().all(|m| m.estimate.is_some()), "each migration is estimated");
    let report_path = sandbox.reports().join("report.json");
    let report_arg = report_path.to_str().unwrap();
    let url = production.url();
    let standby_url = standby.url(&production.server.conn, "app");
    let watch = |extra: &[&str]| {
        let mut args = vec!["watch", "--url", &url, "--report", report_arg, "--interval", "200ms"];
        args.extend_from_slice(extra);
        sandbox.spawn(&args)
    };

    // Nothing runs yet: a watch that times out writes no WAL on the primary.
    for sql in ["CREATE EXTENSION pg_walinspect", "VACUUM", "CHECKPOINT"] {
        production.server.sql("app", sql);
    }
    // A second standby goes away while it is watched: the watch says so and goes on.
    let doomed = HotStandby::of(&production.server);
    let doomed_url = doomed.url(&production.server.conn, "app");
    let before = production.query("SELECT pg_current_wal_insert_lsn()::text")[0].get::<_, String>(0);
    let first = sandbox.path().join("first.jsonl");
    let first_arg = first.to_str().unwrap();
    let args = ["--timeout", "3s", "--events", first_arg, "--standby-url", &standby_url, "--standby-url", &doomed_url];
    let timing_out = watch(&args);
    // Its first reading (a lag line per standby) is made: it is connected to both.
    let started = Instant::now();
    while !std::fs::read_to_string(&first).unwrap_or_default().contains(r#""event":"lag""#) {
        assert!(started.elapsed() < Duration::from_secs(30), "the watch never read the standbys");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(doomed);
    let (code, stderr) = finish(timing_out, Duration::from_secs(30));
    assert_eq!(code, 1, "a timeout is exit 1: {stderr}");
    assert!(stderr.contains("default_transaction_read_only=on"), "the session is read-only: {stderr}");
    assert!(stderr.contains("does not answer") && stderr.contains("watch ended: timeout"), "{stderr}");
    assert_no_session_wal(&production, &before);
    // SIGINT ends it: exit 130, its session gone.
    let interrupted = watch(&["--standby-url", &standby_url]);
    let watching =
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'rehearse watch' AND datname = 'app'";
    production.wait_for("the watch's session", watching);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(interrupted.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let (code, stderr) = finish(interrupted, Duration::from_secs(30));
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("watch ended: interrupted"), "{stderr}");

    let (all, breach) = (sandbox.path().join("all.jsonl"), sandbox.path().join("breach.jsonl"));
    let (all_arg, breach_arg) = (all.to_str().unwrap(), breach.to_str().unwrap());
    let following = watch(&["--events", all_arg, "--out", "watched", "--standby-url", &standby_url]);
    let on_breach = watch(&["--events", breach_arg, "--on-breach", "exit"]);
    production.wait_for(
        "both watches' sessions",
        "SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name = 'rehearse watch' AND datname = 'app'",
    );

    // A long report holds ACCESS SHARE on users: the release's ALTER waits
    // for it, and the app's read queues behind the ALTER.
    let blocker = production.rt.block_on(rehearse::sys::db::connect(&production.app, "app", "report")).unwrap();
    production.rt.block_on(blocker.batch_execute("BEGIN; SELECT count(*) FROM public.users")).unwrap();
    let release = {
        let (files, dir) = (RELEASE.map(|(f, _)| f.to_string()), dir.clone());
        let app = production.app.clone();
        let bin = production.server.bin_dir();
        std::thread::spawn(move || {
            let production = ProductionHandle { app, bin };
            for file in &files {
                production.apply(&dir, file);
            }
        })
    };
    production.wait_for(
        "the ALTER to wait",
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE%'",
    );
    let mut app_read = production.psql(&["-c", "SELECT count(*) FROM public.users"]);
    let app_spawned = Instant::now();
    let app_read = app_read.stdout(Stdio::null()).spawn().unwrap();
    production.wait_for(
        "the app's read to queue behind the ALTER",
        "SELECT count(*) = 1 FROM pg_stat_activity a, pg_stat_activity m
          WHERE a.query LIKE 'SELECT count(*) FROM public.users%' AND a.wait_event_type = 'Lock'
            AND m.query LIKE 'ALTER TABLE%' AND m.pid = ANY(pg_blocking_pids(a.pid))",
    );
    let alter_pid: i32 = production.query("SELECT pid FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE%'")[0].get(0);
    let queued_at = Instant::now();

    // Past the 1s budgets, the --on-breach exit watch exits 1 with the line and the abort plan.
    let (code, stderr) = finish(on_breach, Duration::from_secs(30));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("BREACH 0002_add_users_note"), "{stderr}");
    assert!(stderr.contains(&format!("SELECT pg_cancel_backend({alter_pid})")), "{stderr}");
    let breach_events = events(&breach);
    let breaches = of(&breach_events, "breach", "0002_add_users_note");
    assert!(!breaches.is_empty(), "{stderr}");
    assert!(breaches.iter().all(|b| b["figure"].as_u64() > b["limit"].as_u64()), "{breaches:?}");

    // The other watch reads the queue past the budget too before it is let go.
    std::thread::sleep(Duration::from_millis(700));

    // The standby stops replaying while the index is built (the test's own reading of its position).
    let standby_conn = standby.conn(&production.server.conn);
    let standby_client = production.rt.block_on(rehearse::sys::db::connect(&standby_conn, "app", "test")).unwrap();
    production.rt.block_on(standby_client.batch_execute("SELECT pg_wal_replay_pause()")).unwrap();
    let frozen: i64 = production
        .rt
        .block_on(standby_client.query_one("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8", &[]))
        .unwrap()
        .get(0);
    let (app_waited_at_most, queued_for) = (app_spawned.elapsed().as_millis() as u64, queued_at.elapsed());
    production.rt.block_on(blocker.batch_execute("COMMIT")).unwrap();
    production.wait_for("the index", "SELECT to_regclass('public.users_email_idx') IS NOT NULL");
    std::thread::sleep(Duration::from_millis(600));
    let index_bytes: i64 = production.query("SELECT pg_relation_size('public.users_email_idx')")[0].get(0);
    production.rt.block_on(standby_client.batch_execute("SELECT pg_wal_replay_resume()")).unwrap();
    release.join().unwrap();
    let (code, stderr) = finish(following, Duration::from_secs(60));
    assert_eq!(code, 0, "every migration applied: {stderr}");
    let _ = app_read.wait_with_output();
    let written = production.lsn() - frozen as u64;

    let seen = events(&all);
    assert_follows_each_migration(&seen);
    // The queue the test made: one session, behind the ALTER, which waited
    // as long as the test kept it queued (to a reading interval), no longer.
    let queue = of(&seen, "lock_queue", "0002_add_users_note");
    assert!(queue.iter().all(|e| e["queue"].as_u64() <= Some(1)), "{queue:?}");
    assert!(queue.iter().any(|e| e["queue"] == 1 && e["blocked_by"].as_array().is_some_and(|b| !b.is_empty())));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(sandbox.path().join("watched/watch.json")).unwrap()).unwrap();
    let alter = &summary["migrations"][0];
    assert_eq!((alter["id"].as_str(), alter["peak_queue"].as_u64()), (Some("0002_add_users_note"), Some(1)));
    let longest = alter["longest_wait_ms"].as_u64().unwrap();
    assert!(longest <= app_waited_at_most, "{longest} ms, the app waited at most {app_waited_at_most} ms");
    assert!(longest + 1000 >= queued_for.as_millis() as u64, "{longest} ms, queued for {queued_for:?}");
    assert!(longest >= 1000, "the app waited past the 1s budget: {alter}");
    assert!(summary["calibrated_speed"].as_f64().is_some_and(|s| s > 0.0), "{summary}");
    // The paused standby's lag, as its own replay position says, is at
    // least half the index it did not replay (its WAL leaves out each
    // page's free space) and at most all that was written since it paused.
    let standby_name = format!("host=127.0.0.1 port={} user={} dbname=app", standby_conn.port, standby_conn.user);
    let told: Vec<u64> = seen
        .iter()
        .filter(|e| e["event"] == "lag" && e["standby"] == standby_name.as_str())
        .filter_map(|e| e["lag_bytes"].as_u64())
        .collect();
    assert!(told.iter().any(|&b| b > 0), "the standby's own lag is told: {told:?}");
    let peak = summary["migrations"].as_array().unwrap()[1..].iter().filter_map(|m| m["peak_lag_bytes"].as_u64()).max();
    let peak = peak.unwrap_or(0);
    assert!(peak >= index_bytes as u64 / 2 && peak <= written, "lag {peak}: index {index_bytes}, written {written}");
    // The index build behaved as rehearsed: never slower than the estimate's high.
    let progress = of(&seen, "progress", "0003_index_users_email");
    assert!(progress.iter().all(|p| p["slower_than_expected"] == false), "{progress:?}");

    let summary = std::fs::read_to_string(sandbox.path().join("watched/watch.md")).unwrap();
    for (file, _) in RELEASE {
        assert!(summary.contains(&file[..file.len() - 4]), "{summary}");
    }
    assert!(summary.contains("Longest blocking: 0002_add_users_note"), "{summary}");

    // Run again, everything is applied: it says so and exits 0.
    let out = sandbox.rehearse(&["watch", "--url", &url, "--report", report_arg]);
    out.assert_code(0);
    assert!(out.stderr.contains("already recorded as applied"), "{}", out.stderr);
    drop(standby);
}

/// Each migration started, then finished, in the release's order.
fn assert_follows_each_migration(seen: &[Value]) {
    let order: Vec<(String, String)> = seen
        .iter()
        .filter(|e| e["event"] == "migration_started" || e["event"] == "migration_finished")
        .map(|e| (e["event"].as_str().unwrap().to_string(), e["migration"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(String, String)> = RELEASE
        .iter()
        .flat_map(|(f, _)| {
            let id = f.trim_end_matches(".sql").to_string();
            [("migration_started".to_string(), id.clone()), ("migration_finished".to_string(), id)]
        })
        .collect();
    assert_eq!(order, expected, "{seen:#?}");
    // The ALTER was seen running (by its statement), so its time in production is known.
    let finished = of(seen, "migration_finished", "0002_add_users_note");
    assert!(finished[0]["duration_ms"].as_u64().is_some_and(|ms| ms >= 1000), "{finished:?}");
}

/// No WAL record a session writes between `before` and now (pg_walinspect).
fn assert_no_session_wal(production: &Production, before: &str) {
    production.server.sql("app", "CHECKPOINT");
    let rows = production.rt.block_on(production.client.query(
        "SELECT resource_manager || ' ' || record_type
           FROM pg_get_wal_records_info($1::text::pg_lsn, pg_current_wal_flush_lsn())",
        &[&before],
    ));
    let background = ["Standby RUNNING_XACTS", "XLOG CHECKPOINT_ONLINE"];
    let written: Vec<String> =
        rows.unwrap().iter().map(|r| r.get::<_, String>(0)).filter(|r| !background.contains(&r.as_str())).collect();
    assert!(written.is_empty(), "rehearse watch wrote WAL after {before}: {written:?}");
}

/// What the release thread needs of production.
struct ProductionHandle {
    app: ConnInfo,
    bin: std::path::PathBuf,
}

impl ProductionHandle {
    fn apply(&self, dir: &Path, file: &str) {
        let version: u32 = file[..4].parse().unwrap();
        let mark = |dirty| format!("UPDATE public.schema_migrations SET version = {version}, dirty = {dirty}");
        let file_arg = dir.join(file).display().to_string();
        for args in [["-c", &mark(true)], ["-f", &file_arg], ["-c", &mark(false)]] {
            let out = Command::new(self.bin.join("psql"))
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
                .args(args)
                .envs(self.app.libpq_env("app", "release"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

#[test]
fn watch_refuses_bad_input_without_the_password() {
    let sandbox = Sandbox::new();
    sandbox.write("other.json", r#"{"schema": "rehearse.report/v0", "migrations": []}"#);
    let url = "postgres://watch:hunter2-secret@127.0.0.1:1/app";
    sandbox.rehearse_bad_input(
        &["watch", "--url", url, "--report", "other.json"],
        &["--report other.json is not a report this rehearse reads", "\"rehearse.report/v0\""],
    );
    sandbox.rehearse_bad_input(&["watch", "--url", url, "--report", "x.json", "--interval", "0s"], &["between 200ms"]);
    let fixture = format!("{REPO}/tests/fixtures/report-v1-demo.json");
    let out = sandbox.rehearse(&["watch", "--url", url, "--report", &fixture]);
    out.assert_code(4);
    assert!(out.stderr.contains("cannot connect to --url"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
}

#[test]
fn watch_follows_an_alembic_release_by_its_statements_and_its_version_row() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let production = rt.block_on(restored_cluster(&dumps().path("custom"), "production"));
    let conn = production.conn().clone();
    let sandbox = Sandbox::new();
    let (fixtures, python) = (format!("{REPO}/tests/fixtures"), venv_python());
    let scenario = sandbox.write(
        "alembic.yaml",
        &format!(
            "name: alembic-release\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: alembic\n  \
             dir: {fixtures}/alembic_url\n  target: r6_index_state\n  python: {python}\n",
            dumps().path("custom").display()
        ),
    );
    sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--format", "json"]).assert_code(0);
    let report = sandbox.reports().join("report.json");
    let ids: Vec<String> = rehearse_ids(&sandbox);
    assert_eq!(ids.len(), 5, "r3a, r3b, r4, r5, r6: {ids:?}");

    // Production's release: `alembic upgrade` with production's URL, one
    // transaction for the release (Alembic's default), while a report holds
    // customers: r3b's ALTER waits, in sight, until the test lets it go.
    let (user, password, port, db) = (&conn.user, conn.password.expose(), conn.port, &conn.dbname);
    sandbox.write(
        "production.ini",
        &format!(
            "[alembic]\nscript_location = {fixtures}/alembic_url\nversion_locations = {fixtures}/alembic_versions\n\
             sqlalchemy.url = postgresql://{user}:{password}@127.0.0.1:{port}/{db}\n"
        ),
    );
    let url = format!("postgres://{user}:{password}@127.0.0.1:{port}/{db}");
    let events_path = sandbox.path().join("events.jsonl");
    let watch = sandbox.spawn(&[
        "watch",
        "--url",
        &url,
        "--report",
        report.to_str().unwrap(),
        "--interval",
        "200ms",
        "--events",
        events_path.to_str().unwrap(),
    ]);
    let client = rt.block_on(rehearse::sys::db::connect(&conn, db, "test")).unwrap();
    let holds = |sql: &str| rt.block_on(client.query_one(sql, &[])).unwrap().get::<_, bool>(0);
    let started = Instant::now();
    while !holds("SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'rehearse watch'") {
        assert!(started.elapsed() < Duration::from_secs(30), "the watch never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its own session: in a transaction, pg_stat_activity keeps the snapshot of its first read.
    let report_session = rt.block_on(rehearse::sys::db::connect(&conn, db, "report")).unwrap();
    rt.block_on(report_session.batch_execute("BEGIN; SELECT count(*) FROM customers")).unwrap();
    let mut alembic = Command::new(&python);
    alembic.args(["-m", "alembic", "-c", "production.ini", "upgrade", "r6_index_state"]).current_dir(sandbox.path());
    let mut alembic = alembic.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    while !holds("SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'ALTER TABLE customers%'") {
        assert!(started.elapsed() < Duration::from_secs(60), "r3b's ALTER never waited");
        if alembic.try_wait().unwrap().is_some() {
            let out = alembic.wait_with_output().unwrap();
            panic!("alembic ended before r3b waited: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(600));
    rt.block_on(report_session.batch_execute("COMMIT")).unwrap();
    let out = alembic.wait_with_output().unwrap();
    assert!(out.status.success(), "alembic: {}", String::from_utf8_lossy(&out.stderr));
    let (code, stderr) = finish(watch, Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");

    let seen = events(&events_path);
    // r3b was seen by its statement, in the session that ran it; every
    // revision finished when the release's transaction committed its version row, in order.
    let r3b = of(&seen, "migration_started", "r3b_customers_tier");
    assert!(r3b.len() == 1 && r3b[0]["pid"].as_i64().is_some(), "{seen:#?}");
    let finished: Vec<&str> =
        seen.iter().filter(|e| e["event"] == "migration_finished").map(|e| e["migration"].as_str().unwrap()).collect();
    assert_eq!(finished, ids, "{seen:#?}");
    let queue = of(&seen, "lock_queue", "r3b_customers_tier");
    assert!(queue.iter().any(|e| e["waiting_for"] == "AccessExclusiveLock on public.customers"), "{queue:?}");
    rt.block_on(production.stop()).unwrap();
}

/// The ids of the migrations the sandbox's rehearsal applied.
fn rehearse_ids(sandbox: &Sandbox) -> Vec<String> {
    let text = std::fs::read_to_string(sandbox.reports().join("report.json")).unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    let migrations = report["migrations"].as_array().unwrap();
    migrations.iter().filter(|m| m["status"] == "applied").map(|m| m["id"].as_str().unwrap().to_string()).collect()
}
