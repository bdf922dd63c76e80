//! The migration tool reaches the throwaway copy and nothing else: run in a
//! network namespace of its own, it cannot connect over TCP to another
//! server its configuration names, and variables of rehearse's environment
//! that name a database are not passed to it. On a server shared with other
//! databases (url backend), the relay it reaches the copy through refuses
//! every other database. "Another database" is a real second PostgreSQL
//! server, reached over TCP, whose content is compared before and after.

use std::path::{Path, PathBuf};

use rehearse::report::{MigrationStatus, ToolNetworkKind};
use rehearse::sys::db::ConnInfo;
use rehearse::sys::forward::{Relay, Upstream};

use crate::support::{pg_bin_dir, tiny_demo_dump, venv_python, OwnedServer, RunOutput, Sandbox, REPO};

/// The database the tests' other server holds, at the revision production is at.
const OTHER_DB: &str = "other_app";

/// A second server, reached over TCP, holding `other_app` at Alembic
/// revision r1_widgets (tests/fixtures/alembic_appenv), and production's
/// dump: that same database, so both stand at the same revision.
struct OtherDatabase {
    server: OwnedServer,
    rt: tokio::runtime::Runtime,
    dump: PathBuf,
}

/// What the other database holds: its Alembic revisions, the columns of
/// `widgets`, its tables.
type Holdings = (Vec<String>, Vec<String>, Vec<String>);

impl OtherDatabase {
    fn start(sandbox: &Sandbox) -> OtherDatabase {
        let server = OwnedServer::start();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let admin = rehearse::sys::db::connect(&server.conn, "postgres", "test").await.unwrap();
            admin.batch_execute(&format!("CREATE DATABASE {OTHER_DB}")).await.unwrap();
            let db = rehearse::sys::db::connect(&server.conn, OTHER_DB, "test").await.unwrap();
            db.batch_execute(
                "CREATE TABLE widgets (id int PRIMARY KEY); \
                 CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); \
                 INSERT INTO alembic_version VALUES ('r1_widgets');",
            )
            .await
            .unwrap();
        });
        let dump = sandbox.path().join("production.dump");
        let out = std::process::Command::new(Path::new(&pg_bin_dir()).join("pg_dump"))
            .args(["-Fc", "-f"])
            .arg(&dump)
            .envs(server.conn.libpq_env(OTHER_DB, "test"))
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        OtherDatabase { server, rt, dump }
    }

    /// `postgresql://...@127.0.0.1:<port>/other_app`: over TCP, with the password.
    fn url(&self) -> String {
        let c = &self.server.conn;
        format!("postgresql://{}:{}@127.0.0.1:{}/{OTHER_DB}", c.user, c.password.expose(), c.port)
    }

    fn holdings(&self) -> Holdings {
        self.rt.block_on(async {
            let db = rehearse::sys::db::connect(&self.server.conn, OTHER_DB, "test").await.unwrap();
            let list = |sql: &'static str| {
                let db = &db;
                async move { db.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect::<Vec<String>>() }
            };
            (
                list("SELECT version_num::text FROM alembic_version ORDER BY 1").await,
                list(
                    "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'widgets' ORDER BY 1",
                )
                .await,
                list("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").await,
            )
        })
    }
}

/// A scenario rehearsing tests/fixtures/alembic_appenv on `dump`, plus `extra` lines under `migrations:`.
fn alembic_scenario(sandbox: &Sandbox, dump: &Path, extra: &str) -> PathBuf {
    sandbox.write(
        "appenv.yaml",
        &format!(
            "name: appenv\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: alembic\n  dir: \
             {REPO}/tests/fixtures/alembic_appenv\n  python: {}\n{extra}",
            dump.display(),
            venv_python()
        ),
    )
}

/// The run ended without success, and its report says why in its own words.
fn assert_not_passed(out: &RunOutput) {
    assert_ne!(out.code, 0, "a run whose tool could not reach the copy must not pass:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn an_env_py_reading_its_own_variable_does_not_reach_the_database_it_names() {
    let sandbox = Sandbox::new();
    let other = OtherDatabase::start(&sandbox);
    let before = other.holdings();
    assert_eq!(before.0, ["r1_widgets"], "the other database stands where production does");
    let scenario = alembic_scenario(&sandbox, &other.dump, "");
    let out = sandbox.rehearse_env(&["run", scenario.to_str().unwrap()], &[("APP_DATABASE_URL", &other.url())]);

    assert_not_passed(&out);
    assert_eq!(other.holdings(), before, "the other database's version table and schema are untouched");
    let isolation = out.report().isolation.expect("the report says what the tool could reach");
    assert_eq!(isolation.network, ToolNetworkKind::Namespace);
    assert_eq!(isolation.why, None);
    assert!(isolation.cleared_env.contains(&"APP_DATABASE_URL".to_string()), "{:?}", isolation.cleared_env);
    let json = out.json_text();
    assert!(!json.contains(other.server.conn.password.expose()), "a cleared variable's value is never recorded");
    let md = out.markdown();
    let line = md.lines().find(|l| l.contains("Migration tool's network")).unwrap_or_else(|| panic!("{md}"));
    assert!(line.contains("namespace") && line.contains("`APP_DATABASE_URL`"), "{line}");
    sandbox.assert_no_leaks();
}

/// `migrations.env` naming the variable passes it on, as the user asked:
/// the namespace still keeps the tool from the server it names.
#[test]
fn named_in_migrations_env_the_variable_is_passed_on_and_its_server_is_still_out_of_reach() {
    let sandbox = Sandbox::new();
    let other = OtherDatabase::start(&sandbox);
    let before = other.holdings();
    let scenario = alembic_scenario(&sandbox, &other.dump, "  env:\n    APP_DATABASE_URL: ${APP_DATABASE_URL}\n");
    let out = sandbox.rehearse_env(&["run", scenario.to_str().unwrap()], &[("APP_DATABASE_URL", &other.url())]);

    out.assert_code(4);
    for said in ["Network is unreachable", "its network namespace stopped it", "migrations.network: host"] {
        assert!(
            out.stderr.contains(said),
            "the tool tried, the namespace stopped it, and what to do: {said}\n{}",
            out.stderr
        );
    }
    assert_eq!(other.holdings(), before, "the other database's version table and schema are untouched");
    let isolation = out.report().isolation.unwrap();
    assert!(!isolation.cleared_env.contains(&"APP_DATABASE_URL".to_string()), "{:?}", isolation.cleared_env);
    sandbox.assert_no_leaks();
}

/// A scenario whose command tool applies one migration, `reach`, with
/// `apply`, plus `extra` lines under `migrations:`.
fn command_scenario(sandbox: &Sandbox, apply: &str, extra: &str) -> PathBuf {
    sandbox.write(
        "command.yaml",
        &format!(
            "name: command\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: command\n  revisions: \
             [reach]\n  apply: {apply}\n{extra}",
            tiny_demo_dump().display()
        ),
    )
}

#[test]
fn a_command_cannot_reach_another_server_over_tcp_unless_the_scenario_says_network_host() {
    let other = OwnedServer::start();
    let before = other.state();
    let psql = Path::new(&pg_bin_dir()).join("psql");
    // It writes to the other server, then (as a tool's own bookkeeping would) to the copy.
    let apply = format!(
        "'{psql} -X -v ON_ERROR_STOP=1 \"$${{OTHER_URL:?is not set}}\" -c \"CREATE TABLE reached (id int)\" && \
         {psql} -X -c \"SELECT 1\"'",
        psql = psql.display()
    );
    let env = [("OTHER_URL", other.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Exported only: not passed on.
    let sandbox = Sandbox::new();
    let out = sandbox.rehearse_env(&["run", command_scenario(&sandbox, &apply, "").to_str().unwrap()], &env);
    out.assert_code(2);
    let report = out.report();
    assert!(report.migrations[0].error.as_ref().unwrap().message.contains("OTHER_URL: is not set"));
    assert_eq!(report.isolation.unwrap().cleared_env, ["OTHER_URL"]);
    assert_eq!(other.state(), before);
    sandbox.assert_no_leaks();

    // Named in migrations.env: passed on, and out of reach in the namespace.
    let sandbox = Sandbox::new();
    let named = "  env:\n    OTHER_URL: ${OTHER_URL}\n";
    let out = sandbox.rehearse_env(&["run", command_scenario(&sandbox, &apply, named).to_str().unwrap()], &env);
    out.assert_code(2);
    let report = out.report();
    let error = &report.migrations[0].error.as_ref().unwrap().message;
    assert!(error.contains("Network is unreachable") && error.contains("migrations.network: host"), "{error}");
    assert!(!error.contains(other.conn.password.expose()), "{error}");
    let isolation = report.isolation.unwrap();
    assert_eq!((isolation.network, isolation.forwarded), (ToolNetworkKind::Namespace, false), "the local socket");
    assert!(isolation.cleared_env.is_empty(), "{:?}", isolation.cleared_env);
    assert_eq!(other.state(), before);
    sandbox.assert_no_leaks();

    // network: host, on purpose: it reaches the other server, and the report says what that means.
    let sandbox = Sandbox::new();
    let host = format!("{named}  network: host\n");
    let out = sandbox.rehearse_env(&["run", command_scenario(&sandbox, &apply, &host).to_str().unwrap()], &env);
    out.assert_code(0);
    assert_ne!(other.state(), before, "network: host lets the tool reach other servers");
    let report = out.report();
    let isolation = report.isolation.unwrap();
    assert_eq!(isolation.network, ToolNetworkKind::Host);
    assert_eq!(isolation.why.as_deref(), Some("migrations.network: host"));
    let limitations = report.observation.limitations.join("\n");
    assert!(limitations.contains("could have reached servers other than the copy"), "{limitations}");
    assert!(out.markdown().contains("could have reached servers other than the copy"));
    sandbox.assert_no_leaks();
}

/// On the url backend the server holds other databases: the tool reaches
/// the rehearsal's through a relay that refuses any other.
#[test]
fn on_a_shared_server_the_tool_reaches_the_rehearsals_database_only() {
    let server = OwnedServer::start();
    let before = server.state();
    let sandbox = Sandbox::new();
    let psql = Path::new(&pg_bin_dir()).join("psql");
    let psql = psql.display();
    let apply = format!(
        "'case {{rev}} in own) {psql} -X -v ON_ERROR_STOP=1 -c \"CREATE TABLE via_relay (id int)\";; \
         *) {psql} -X -d postgres -c \"SELECT 1\";; esac'"
    );
    let scenario = sandbox.write(
        "shared.yaml",
        &format!(
            "name: shared\ndump: {}\npostgres:\n  backend: url\nmigrations:\n  tool: command\n  revisions: [own, \
             postgres]\n  apply: {apply}\n",
            tiny_demo_dump().display()
        ),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--url", &server.url()]);
    out.assert_code(2);
    let report = out.report();
    assert_eq!(report.migrations[0].status, MigrationStatus::Applied, "{:?}", report.migrations[0].error);
    let refused = &report.migrations[1].error.as_ref().unwrap().message;
    assert!(
        refused.contains("rehearse lets the migration tool reach only the rehearsal's database rehearse_")
            && refused.contains("it asked for postgres"),
        "{refused}"
    );
    let isolation = report.isolation.unwrap();
    assert_eq!((isolation.network, isolation.forwarded), (ToolNetworkKind::Namespace, true));
    assert_eq!(server.state(), before, "the server is as it was");
    sandbox.assert_no_leaks();
}

/// The relay itself, in front of a real server: another database is
/// refused with SQLSTATE 28000 before the server hears of it; the one it
/// lets through works.
#[test]
fn the_relay_refuses_another_database_with_28000() {
    let server = OwnedServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let admin = rehearse::sys::db::connect(&server.conn, "postgres", "test").await.unwrap();
        admin.batch_execute("CREATE DATABASE only_this").await.unwrap();
        let upstream = Upstream::Tcp { host: "127.0.0.1".into(), port: server.conn.port };
        let relay =
            Relay::start(upstream, server.conn.port, Some("only_this".into()), server.conn.tls.clone()).unwrap();
        let mode = std::fs::metadata(relay.dir()).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o700, "a private directory");
        let through = ConnInfo { host: relay.dir().display().to_string(), port: relay.port(), ..server.conn.clone() };
        let Err(err) = rehearse::sys::db::connect(&through, "postgres", "test").await else {
            panic!("another database than only_this got through")
        };
        let db_error = err.as_db_error().expect("an ErrorResponse");
        assert_eq!(db_error.code().code(), "28000");
        assert!(db_error.message().contains("it asked for postgres"), "{}", db_error.message());
        let client = rehearse::sys::db::connect(&through, "only_this", "test").await.unwrap();
        let db: String = client.query_one("SELECT current_database()::text", &[]).await.unwrap().get(0);
        assert_eq!(db, "only_this");
        let dir = relay.dir().to_path_buf();
        drop(relay);
        assert!(!dir.exists(), "the relay's directory goes with it");
    });
}

/// Where the tool reaches a server over TCP, a relay stands in front of it;
/// one in front of a shared server lets through the rehearsal's database
/// only, one in front of a server of the run's own (docker backend) any.
#[test]
fn a_server_reached_over_tcp_is_reached_through_a_relay_that_filters_only_a_shared_one() {
    use rehearse::migrations::launch::{Launch, Network};
    use rehearse::migrations::network::ToolNetwork;

    let server = OwnedServer::start();
    let tcp = ConnInfo { host: "127.0.0.1".into(), dbname: "postgres".into(), ..server.conn.clone() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let admin = rehearse::sys::db::connect(&server.conn, "postgres", "test").await.unwrap();
        admin.batch_execute("CREATE DATABASE rehearsal").await.unwrap();
        let rehearsal = ConnInfo { dbname: "rehearsal".into(), ..tcp.clone() };
        for shared in [false, true] {
            let network = ToolNetwork::new(shared);
            let isolated = Launch::Here(Network::Isolated);
            let through = network.reachable(&isolated, &rehearsal).unwrap();
            assert!(through.host.starts_with('/') && through.host != server.conn.host, "{through:?}");
            let again = network.reachable(&isolated, &rehearsal).unwrap();
            assert_eq!(again.host, through.host, "one relay per server and database");
            assert!(rehearse::sys::db::connect(&through, "rehearsal", "test").await.is_ok());
            let other = rehearse::sys::db::connect(&through, "postgres", "test").await;
            assert_eq!(other.is_err(), shared, "shared: {shared}");
            let on_host = network.reachable(&Launch::Here(Network::Host), &rehearsal).unwrap();
            assert_eq!(on_host.host, "127.0.0.1", "network: host reaches the server as rehearse does");
            let facts = network.facts(&[&isolated]).unwrap();
            assert!(facts.forwarded);
            network.close();
            assert!(!Path::new(&through.host).exists(), "closed: the relay's directory is gone");
        }
    });
}

#[test]
fn the_network_setting_is_checked_before_anything_starts() {
    let sandbox = Sandbox::new();
    let scenario = alembic_scenario(&sandbox, tiny_demo_dump(), "  network: none\n");
    sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], &["network", "isolated", "host"]);
    let image = sandbox.write(
        "image.yaml",
        &format!(
            "name: image\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: alembic\n  image: app:1\n  dir: \
             /app\n  network: isolated\n",
            tiny_demo_dump().display()
        ),
    );
    sandbox.rehearse_bad_input(
        &["run", image.to_str().unwrap()],
        &["migrations.network: isolated cannot be given to the app image app:1", "host's network"],
    );
}

#[test]
fn doctor_says_whether_the_tool_gets_a_network_namespace_here() {
    let sandbox = Sandbox::new();
    let out = sandbox.rehearse(&["doctor"]);
    let line = out.stdout.lines().find(|l| l.starts_with("tool")).unwrap_or_else(|| panic!("{}", out.stdout));
    match rehearse::sys::netns::available() {
        Ok(()) => assert!(line.contains("ok") && line.contains("network namespaces"), "{line}"),
        Err(_) => assert!(line.contains("MISSING") && line.contains("host's network"), "{line}"),
    }
}
