//! The url backend against a server started by the test (the local
//! backend's cluster, used as "a server the user owns"): the rehearsal works
//! in a database of its own, and afterwards the server has exactly the
//! databases and roles it had before.

use nix::sys::signal::Signal;
use rehearse::backend::local::{find_binaries, LocalCluster};
use rehearse::report::{MigrationStatus, RunStatus};
use rehearse::sys::db::ConnInfo;
use tokio_util::sync::CancellationToken;

use crate::support::{dumps, run_and_signal_with, tiny_demo_dump, Sandbox};

/// (databases, roles, rows of keep_me, (database, sha256 of its dump)).
type ServerState = (Vec<String>, Vec<String>, i64, Vec<(String, String)>);

/// A server of the test's own, with a table in its `postgres` database that must stay untouched.
struct OwnedServer {
    rt: tokio::runtime::Runtime,
    cluster: Option<LocalCluster>,
    conn: ConnInfo,
}

impl OwnedServer {
    fn start() -> OwnedServer {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cluster = rt.block_on(async {
            let cancel = CancellationToken::new();
            let cluster = LocalCluster::start(find_binaries(None, &cancel).await.unwrap(), &cancel).await.unwrap();
            let client = rehearse::sys::db::connect(cluster.conn(), "postgres", "test").await.unwrap();
            client.batch_execute("CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (1);").await.unwrap();
            cluster
        });
        let conn = cluster.conn().clone();
        OwnedServer { rt, cluster: Some(cluster), conn }
    }

    fn url(&self) -> String {
        format!("postgres://{}:{}@127.0.0.1:{}/postgres", self.conn.user, self.conn.password.expose(), self.conn.port)
    }

    /// Databases, roles, the untouched table's content, and the sha256 of a
    /// plain pg_dump of every database but the templates (byte for byte).
    fn state(&self) -> ServerState {
        let (dbs, roles, kept) = self.rt.block_on(async {
            let c = rehearse::sys::db::connect(&self.conn, "postgres", "test").await.unwrap();
            let list = |sql: &'static str| {
                let c = &c;
                async move { c.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect::<Vec<String>>() }
            };
            let dbs = list("SELECT datname::text FROM pg_database ORDER BY 1").await;
            let roles = list("SELECT rolname::text FROM pg_roles ORDER BY 1").await;
            let kept: i64 = c.query_one("SELECT count(*) FROM keep_me", &[]).await.unwrap().get(0);
            (dbs, roles, kept)
        });
        let bin = self.cluster.as_ref().unwrap().bin().dir.clone();
        let dumps = dbs
            .iter()
            .filter(|d| !d.starts_with("template"))
            .map(|d| {
                let out = std::process::Command::new(bin.join("pg_dump"))
                    .args(["-d", d])
                    .envs(self.conn.libpq_env(d, "test"))
                    .output()
                    .unwrap();
                assert!(out.status.success(), "pg_dump {d}: {}", String::from_utf8_lossy(&out.stderr));
                // pg_dump 15.14+ writes a random \restrict key each time: not content.
                let text: String = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
                    .collect::<Vec<_>>()
                    .join("\n");
                use sha2::Digest;
                (d.clone(), format!("{:x}", sha2::Sha256::digest(text.as_bytes())))
            })
            .collect();
        (dbs, roles, kept, dumps)
    }
}

impl Drop for OwnedServer {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            let _ = self.rt.block_on(cluster.stop());
        }
    }
}

#[test]
fn url_backend_rehearses_in_its_own_database_and_leaves_the_server_as_it_was() {
    let server = OwnedServer::start();
    let before = server.state();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_add.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n"),
        ("0002_index.sql", "CREATE INDEX orders_state_idx ON public.orders (state);\n"),
    ]);
    // The URL (and its password) comes from the environment, as in CI.
    let scenario = sandbox.scenario_on(
        "backend: url\n  url: ${REHEARSE_TEST_URL}\n  settings:\n    work_mem: 32MB\n    max_wal_size: 2GB",
        &dumps().path("custom"),
        "",
    );
    let mut cmd = sandbox.command(&["run", scenario.to_str().unwrap()]);
    cmd.env("REHEARSE_TEST_URL", server.url());
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let text = std::fs::read_to_string(sandbox.reports().join("report.json")).unwrap();
    let report: rehearse::report::Report = serde_json::from_str(&text).unwrap();
    assert_eq!(report.postgres.backend, "url");
    assert!(report.migrations.iter().all(|m| m.status == MigrationStatus::Applied));
    assert!(report.migrations[1].wal.bytes > 0);
    let setting = |name: &str| report.postgres.settings.iter().find(|s| s.name == name).map(|s| s.value.clone());
    assert_eq!(setting("work_mem").as_deref(), Some("32MB"), "a per-database setting is applied");
    let limitations = report.observation.limitations.join("\n");
    assert!(limitations.contains("max_wal_size = 2GB was not applied"), "{limitations}");
    assert!(limitations.contains("restored without owners and grants"), "{limitations}");
    let password = server.conn.password.expose();
    assert!(!text.contains(password) && !stderr.contains(password) && !stdout.contains(password), "password leaked");

    assert_eq!(server.state(), before, "the server has exactly the databases, roles and data it had");
    sandbox.assert_no_leaks();
}

/// A url rehearsal of a quick and a 60 s migration, signalled during the second.
fn signal_during_second_migration(server: &OwnedServer, signal: Signal) -> (Sandbox, crate::support::RunOutput) {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_quick.sql", "SELECT 1;"), ("0002_slow.sql", "SELECT pg_sleep(60);")]);
    let scenario = sandbox.scenario_on("backend: url", tiny_demo_dump(), "");
    let cmd = sandbox.command(&["run", scenario.to_str().unwrap(), "--url", &server.url()]);
    let out = run_and_signal_with(cmd, &sandbox, "migration 2/2", signal);
    (sandbox, out)
}

#[test]
fn sigint_during_a_url_migration_drops_the_database() {
    let server = OwnedServer::start();
    let before = server.state();
    let (sandbox, out) = signal_during_second_migration(&server, Signal::SIGINT);
    out.assert_code(130);
    assert_eq!(out.report().status, RunStatus::Interrupted);
    assert_eq!(server.state(), before, "the throwaway database was dropped");
    sandbox.assert_no_leaks();
}

#[test]
fn cleanup_with_url_drops_what_a_killed_run_left() {
    // `rehearse cleanup` looks at containers too: not while another test's one is about.
    let _docker = crate::support::docker_lock();
    let server = OwnedServer::start();
    let before = server.state();
    let (sandbox, out) = signal_during_second_migration(&server, Signal::SIGKILL);
    assert_eq!(out.code, -1, "killed by SIGKILL");
    let (dbs, _, _, _) = server.state();
    assert_eq!(dbs.len(), before.0.len() + 1, "SIGKILL leaves the throwaway database behind: {dbs:?}");

    let cleaned = sandbox.rehearse(&["cleanup", "--url", &server.url()]);
    cleaned.assert_code(0);
    assert!(cleaned.stdout.contains("removed database rehearse_"), "{}", cleaned.stdout);
    assert!(!cleaned.stdout.contains(server.conn.password.expose()), "password leaked: {}", cleaned.stdout);
    assert_eq!(server.state(), before);
}
