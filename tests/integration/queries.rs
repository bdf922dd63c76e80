//! `rehearse queries` against a real server that preloads
//! pg_stat_statements: the app's statements of the one database asked
//! for, normalized, most called first, utility statements (and the
//! constants PostgreSQL 15 keeps in them) left out; the file loads back as
//! a corpus, and checked on the server it names production's call counts
//! and sets aside the normalized text the server cannot parse. Without the
//! extension, without it preloaded, or with every statement hidden from
//! the role, exit 4 saying what to do; never the password.

use rehearse::compat::{Checker, Corpus, QUERIES_SCHEMA};
use rehearse::sys::db::ConnInfo;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::support::{OwnedServer, Sandbox};

const PASSWORD: &str = "queries-s3cret-pw";

/// The app's database `app` (pg_stat_statements created), a database
/// `other` and one without the extension (`noext`); the roles `app` (the
/// application), `exporter` (pg_read_all_stats) and `bare` (LOGIN only).
const SETUP: [(&str, &str); 3] = [
    (
        "postgres",
        "CREATE DATABASE app; CREATE DATABASE other; CREATE DATABASE noext;
         CREATE ROLE app LOGIN PASSWORD 'queries-s3cret-pw';
         CREATE ROLE exporter LOGIN PASSWORD 'queries-s3cret-pw' IN ROLE pg_read_all_stats;
         CREATE ROLE bare LOGIN PASSWORD 'queries-s3cret-pw'",
    ),
    (
        "app",
        "CREATE EXTENSION pg_stat_statements;
         CREATE TABLE public.users (id bigint PRIMARY KEY, email text NOT NULL, full_name text);
         GRANT ALL ON public.users TO app",
    ),
    ("other", "CREATE EXTENSION pg_stat_statements"),
];

const BY_ID: &str = "SELECT full_name FROM users WHERE id = $1";
const SIGN_UP: &str = "INSERT INTO users (id, email, full_name) VALUES ($1, $2, $3)";

struct Production {
    server: OwnedServer,
    rt: tokio::runtime::Runtime,
}

impl Production {
    fn start() -> Production {
        let production = Production {
            server: OwnedServer::start(),
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        };
        for (db, sql) in SETUP {
            let client = production.superuser(db);
            // One at a time: CREATE DATABASE cannot run in a transaction block.
            for statement in sql.split(';') {
                production.sql(&client, statement);
            }
        }
        // Forgets the set-up; called from `other`, so the call is not app's.
        production.sql(&production.superuser("other"), "SELECT pg_stat_statements_reset()");
        production
    }

    fn conn(&self, user: &str, dbname: &str) -> ConnInfo {
        self.server.role(user, PASSWORD, dbname)
    }

    fn superuser(&self, dbname: &str) -> Client {
        self.client(&self.server.conn, dbname)
    }

    fn client(&self, conn: &ConnInfo, dbname: &str) -> Client {
        self.rt.block_on(rehearse::sys::db::connect(conn, dbname, "app")).unwrap()
    }

    fn sql(&self, client: &Client, sql: &str) {
        self.rt.block_on(client.batch_execute(sql)).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// What the app does: three look-ups, a sign-up, a SET holding a
    /// tenant's name, and a date literal (pg_stat_statements keeps it as
    /// `date $1`); a query in another database.
    fn traffic(&self) {
        let app = self.client(&self.conn("app", "app"), "app");
        for sql in [
            "SELECT full_name FROM users WHERE id = 1",
            "SELECT full_name FROM users WHERE id = 2",
            "SELECT full_name FROM users WHERE id = 3",
            "INSERT INTO users (id, email, full_name) VALUES (7, 'ann@example.com', 'Ann')",
            "SET application_name = 'tenant-acme-secret'",
            "SELECT date '2026-01-01' AS launch",
        ] {
            self.sql(&app, sql);
        }
        self.sql(&self.superuser("other"), "SELECT 42 AS in_another_database");
    }
}

fn url(conn: &ConnInfo) -> String {
    format!("postgres://{}:{}@{}:{}/{}", conn.user, conn.password.expose(), conn.host, conn.port, conn.dbname)
}

#[test]
fn queries_export_the_apps_statements_and_load_back_as_a_corpus() {
    let production = Production::start();
    production.traffic();
    let sandbox = Sandbox::new();
    let file = sandbox.path().join("queries.json");
    let exporter = production.conn("exporter", "app");
    let out = sandbox.rehearse(&["queries", "--url", &url(&exporter), "--out", file.to_str().unwrap()]);
    out.assert_code(0);
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "with --out, nothing on stdout: {}", out.stdout);
    assert!(
        out.stderr.contains("of database app from host=127.0.0.1") && out.stderr.contains("utility"),
        "{}",
        out.stderr
    );

    let text = std::fs::read_to_string(&file).unwrap();
    for absent in ["tenant-acme-secret", "in_another_database", "/*rehearse*/", "ann@example.com"] {
        assert!(!text.contains(absent), "{absent} is in the file:\n{text}");
    }
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((json["schema"].as_str(), json["database"].as_str()), (Some(QUERIES_SCHEMA), Some("app")));
    let queries = json["queries"].as_array().unwrap();
    let listed: Vec<(&str, i64)> =
        queries.iter().map(|q| (q["query"].as_str().unwrap(), q["calls"].as_i64().unwrap())).collect();
    assert_eq!(listed, [(BY_ID, 3), (SIGN_UP, 1), ("SELECT date $1 AS launch", 1)], "most called first");
    assert!(queries.iter().all(|q| q["mean_ms"].as_f64().is_some_and(|ms| ms >= 0.0)));

    // An --out that cannot be written names what and --out (no report is involved).
    let blocked = sandbox.write("not-a-dir", "").join("q.json");
    let out = sandbox.rehearse(&["queries", "--url", &url(&exporter), "--out", blocked.to_str().unwrap()]);
    out.assert_code(4);
    let expected = format!("error: cannot write queries file {} (check --out)", blocked.display());
    assert_eq!(out.stderr.lines().find(|l| l.starts_with("error: ")), Some(expected.as_str()), "{}", out.stderr);

    // --top keeps the most called.
    let out = sandbox.rehearse(&["queries", "--url", &url(&exporter), "--top", "1"]);
    out.assert_code(0);
    let top: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(top["queries"].as_array().map(|q| q.len()), Some(1));
    assert_eq!(top["queries"][0]["query"].as_str(), Some(BY_ID));

    // Loaded back as a corpus and checked on this server: the date literal
    // pg_stat_statements normalized is set aside, a rename breaks the
    // look-up, which keeps production's call count.
    let cancel = CancellationToken::new();
    let corpus = Corpus::load(&file, &cancel).unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!((corpus.queries.len(), corpus.ignored_utility, corpus.ignored_unparsable), (3, 0, 0));
    let owner = production.server.conn.clone();
    let (before, after) = production.rt.block_on(async {
        let mut checker =
            Checker::connect(&ConnInfo { dbname: "app".into(), ..owner.clone() }, &corpus, &cancel).await.unwrap();
        let before = checker.before_first_migration().await.unwrap();
        let c = rehearse::sys::db::connect(&owner, "app", "migration").await.unwrap();
        c.batch_execute("ALTER TABLE users RENAME COLUMN full_name TO name").await.unwrap();
        (before, checker.after_migration().await.unwrap())
    });
    assert_eq!((before.checked, before.ignored_unparsable), (2, 1), "`date $1` is a syntax error to the server");
    assert!(before.already_broken.is_empty(), "{:?}", before.already_broken);
    let broken: Vec<(&str, &str, Option<i64>)> =
        after.broken.iter().map(|b| (b.query.as_str(), b.code.as_str(), b.calls)).collect();
    assert_eq!(broken, [(BY_ID, "42703", Some(3)), (SIGN_UP, "42703", Some(1))]);
}

/// (stats_reset, now()) as epoch seconds, read by the test itself from
/// pg_stat_statements_info (PostgreSQL 14+).
fn reset_and_now(production: &Production) -> (f64, f64) {
    let client = production.superuser("app");
    let row = production
        .rt
        .block_on(client.query_one(
            "SELECT extract(epoch FROM stats_reset)::float8, extract(epoch FROM now())::float8 \
               FROM pg_stat_statements_info",
            &[],
        ))
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn queries_carry_calls_per_second_over_the_statistics_window() {
    let production = Production::start();
    // A window long enough that its bounds below are tight.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let app = production.client(&production.conn("app", "app"), "app");
    for i in 0..30 {
        production.sql(&app, &format!("SELECT full_name FROM users WHERE id = {i}"));
    }
    let (reset, before) = reset_and_now(&production);
    let sandbox = Sandbox::new();
    let out = sandbox.rehearse(&["queries", "--url", &url(&production.conn("exporter", "app"))]);
    out.assert_code(0);
    let (reset_after, after) = reset_and_now(&production);
    assert_eq!(reset, reset_after, "nothing reset the statistics meanwhile");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();

    // The window is from the reset to the export's own now(), between the test's two readings.
    let window = json["window_seconds"].as_f64().unwrap();
    assert!(window >= before - reset - 0.001 && window <= after - reset + 0.001, "{window} in {before}..{after}");
    let start = humantime::parse_rfc3339(json["window_start"].as_str().unwrap()).unwrap();
    let start = start.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((start - reset.floor()).abs() < 1.0, "window_start {start} vs stats_reset {reset}");

    let by_id = json["queries"].as_array().unwrap().iter().find(|q| q["query"] == BY_ID).unwrap();
    assert_eq!(by_id["calls"].as_i64(), Some(30));
    let rate = by_id["calls_per_second"].as_f64().unwrap();
    let (low, high) = (30.0 / (after - reset), 30.0 / (before - reset));
    assert!(rate >= low - 0.001 && rate <= high + 0.001, "{rate} calls/s, expected {low}..{high}");
    assert!(high < 30.0, "the window is over a second long: {high}");
    assert!(by_id["mean_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    // And the file loads back as a corpus.
    let file = sandbox.write("q.json", &out.stdout);
    Corpus::load(&file, &CancellationToken::new()).unwrap_or_else(|e| panic!("{}", e.render()));
}

#[test]
fn queries_without_pg_stat_statements_or_its_texts_exit_4_saying_what_to_do() {
    let mut production = Production::start();
    production.traffic();
    let sandbox = Sandbox::new();
    let failed = |conn: &ConnInfo, expected: &[&str]| {
        let out = sandbox.rehearse(&["queries", "--url", &url(conn), "--out", "q.json"]);
        out.assert_code(4);
        for e in expected {
            assert!(out.stderr.contains(e), "expected {e:?} in:\n{}", out.stderr);
        }
        assert!(!out.stderr.contains(PASSWORD) && out.stdout.is_empty(), "{}", out.stderr);
        assert!(!sandbox.path().join("q.json").exists(), "nothing written");
    };
    failed(
        &production.conn("exporter", "noext"),
        &[
            "pg_stat_statements is not created in database noext",
            "CREATE EXTENSION pg_stat_statements",
            "shared_preload_libraries",
        ],
    );
    // Other roles' statements are hidden without pg_read_all_stats.
    failed(&production.conn("bare", "app"), &["hidden from bare", "GRANT pg_read_all_stats TO \"bare\""]);

    // Another library preloaded instead: `= ''` would name a library "".
    production.sql(&production.superuser("postgres"), "ALTER SYSTEM SET shared_preload_libraries = 'auto_explain'");
    production.server.restart();
    failed(
        &production.conn("exporter", "app"),
        &["pg_stat_statements is created in", "but not loaded", "add pg_stat_statements to shared_preload_libraries"],
    );
}

#[test]
fn queries_bad_arguments_are_exit_3() {
    let sandbox = Sandbox::new();
    sandbox.rehearse_bad_input(&["queries"], &["--url"]);
    sandbox.rehearse_bad_input(&["queries", "--url", "postgres://x@db/app", "--top", "0"], &["--top"]);
    sandbox.rehearse_bad_input(
        &["queries", "--url", "postgres://app:pw@db:notaport/app"],
        &["not a PostgreSQL connection string"],
    );
}
