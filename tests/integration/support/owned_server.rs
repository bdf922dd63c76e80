//! A PostgreSQL server of the test's own, standing for "a server the user
//! owns" in the url backend's tests: started by the local backend's cluster
//! code, stopped when dropped, and able to say exactly what it holds.

use std::path::Path;

use rehearse::backend::local::{find_binaries, LocalCluster};
use rehearse::sys::db::ConnInfo;
use tokio_util::sync::CancellationToken;

use super::{run_and_signal_with, tiny_demo_dump, RunOutput, Sandbox};

/// (databases, roles, rows of keep_me, (database, sha256 of its dump)).
pub type ServerState = (Vec<String>, Vec<String>, i64, Vec<(String, String)>);

/// The table in a user's server's `postgres` database that a rehearsal must leave untouched.
pub const KEEP_ME: &str = "CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (1);";

/// A server of the test's own, with a table in its `postgres` database that must stay untouched.
pub struct OwnedServer {
    rt: tokio::runtime::Runtime,
    cluster: Option<LocalCluster>,
    pub conn: ConnInfo,
}

impl OwnedServer {
    pub fn start() -> OwnedServer {
        OwnedServer::start_with(None)
    }

    /// One of the binaries in `bin` (PostgreSQL 18's, say); the machine's without.
    pub fn start_with(bin: Option<&Path>) -> OwnedServer {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cluster = rt.block_on(async {
            let cancel = CancellationToken::new();
            let cluster = LocalCluster::start(find_binaries(bin, &cancel).await.unwrap(), &cancel).await.unwrap();
            let client = rehearse::sys::db::connect(cluster.conn(), "postgres", "test").await.unwrap();
            client.batch_execute(KEEP_ME).await.unwrap();
            cluster
        });
        let conn = cluster.conn().clone();
        OwnedServer { rt, cluster: Some(cluster), conn }
    }

    /// A server as staging servers often are: pg_stat_statements not in
    /// `shared_preload_libraries` (ALTER SYSTEM outranks the cluster's own
    /// configuration file; the library is loaded only at start). Another
    /// library stands in: `= ''` would name a library "".
    pub fn start_without_pg_stat_statements() -> OwnedServer {
        let mut server = OwnedServer::start();
        server.rt.block_on(async {
            let client = rehearse::sys::db::connect(&server.conn, "postgres", "test").await.unwrap();
            client.batch_execute("ALTER SYSTEM SET shared_preload_libraries = 'auto_explain'").await.unwrap();
        });
        server.restart();
        let loaded: String = server.rt.block_on(async {
            let client = rehearse::sys::db::connect(&server.conn, "postgres", "test").await.unwrap();
            client.query_one("SHOW shared_preload_libraries", &[]).await.unwrap().get(0)
        });
        assert_eq!(loaded, "auto_explain", "the server must run without pg_stat_statements preloaded");
        server
    }

    /// Restarts the server, for settings that take effect at start (ALTER SYSTEM, then this).
    pub fn restart(&mut self) {
        let cluster = self.cluster.as_mut().unwrap();
        self.rt.block_on(cluster.restart(&CancellationToken::new())).unwrap();
    }

    /// A role a test created, logging in with `password` over TCP, as a user
    /// of a production server would (not through the superuser's socket).
    pub fn role(&self, user: &str, password: &str, dbname: &str) -> ConnInfo {
        ConnInfo {
            host: "127.0.0.1".into(),
            port: self.conn.port,
            user: user.into(),
            password: rehearse::sys::db::Secret::from_string(password.into()),
            dbname: dbname.into(),
            admin_dbname: dbname.into(),
            tls: Default::default(),
            password_command: None,
        }
    }

    /// Replaces the TCP lines of pg_hba.conf with `lines` (the superuser's
    /// unix socket stays open to the test) and reloads, returning once a TCP
    /// connection as the superuser is refused (a reload is asynchronous).
    pub fn refuse_tcp(&self, lines: &str) {
        self.rt.block_on(async {
            let c = rehearse::sys::db::connect(&self.conn, "postgres", "test").await.unwrap();
            let file: String = c.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
            std::fs::write(&file, format!("local all all scram-sha-256\n{lines}\n")).unwrap();
            c.batch_execute("SELECT pg_reload_conf()").await.unwrap();
            let tcp = self.role(&self.conn.user, self.conn.password.expose(), "postgres");
            for _ in 0..100 {
                if rehearse::sys::db::connect(&tcp, "postgres", "test").await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("pg_hba.conf with {lines:?} still lets TCP connections in after 5s");
        })
    }

    /// Turns TLS on with `certs`' server certificate (and its CA for client
    /// certificates), replaces the TCP lines of pg_hba.conf with `hba`, and
    /// reloads (`ssl` takes effect at a reload, PostgreSQL 10+), returning
    /// once a TLS connection as the superuser gets in.
    pub fn enable_tls(&self, certs: &super::Certs, hba: &str) {
        self.rt.block_on(async {
            let c = rehearse::sys::db::connect(&self.conn, "postgres", "test").await.unwrap();
            let data: String = c.query_one("SHOW data_directory", &[]).await.unwrap().get(0);
            let owner = std::fs::metadata(&data).unwrap();
            use std::os::unix::fs::MetadataExt;
            for file in ["server.crt", "server.key", "ca.crt"] {
                let to = std::path::Path::new(&data).join(format!("test-{file}"));
                std::fs::copy(certs.path(file), &to).unwrap();
                std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).unwrap();
            }
            let hba_file: String = c.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
            let local = "local all all scram-sha-256\nlocal replication all scram-sha-256";
            std::fs::write(&hba_file, format!("{local}\n{hba}\n")).unwrap();
            // ALTER SYSTEM may not run in a transaction block: one statement at a time.
            for sql in [
                "ALTER SYSTEM SET ssl = on",
                "ALTER SYSTEM SET ssl_cert_file = 'test-server.crt'",
                "ALTER SYSTEM SET ssl_key_file = 'test-server.key'",
                "ALTER SYSTEM SET ssl_ca_file = 'test-ca.crt'",
                "SELECT pg_reload_conf()",
            ] {
                c.batch_execute(sql).await.unwrap();
            }
            let params = rehearse::sys::tls::TlsParams { sslmode: Some("require".into()), ..Default::default() };
            let tcp = ConnInfo {
                tls: rehearse::sys::tls::Tls::from_params(params).unwrap(),
                ..self.role(&self.conn.user, self.conn.password.expose(), "postgres")
            };
            for _ in 0..100 {
                if rehearse::sys::db::connect(&tcp, "postgres", "test").await.is_ok() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("no TLS connection 5s after turning ssl on");
        })
    }

    /// Runs `sql` as the superuser, through its unix socket.
    pub fn sql(&self, dbname: &str, sql: &str) {
        self.rt.block_on(async {
            let c = rehearse::sys::db::connect(&self.conn, dbname, "test").await.unwrap();
            c.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        })
    }

    /// The directory of the server's binaries (psql, for a test's own commands).
    pub fn bin_dir(&self) -> std::path::PathBuf {
        self.cluster.as_ref().unwrap().bin().dir.clone()
    }

    pub fn url(&self) -> String {
        format!("postgres://{}:{}@127.0.0.1:{}/postgres", self.conn.user, self.conn.password.expose(), self.conn.port)
    }

    /// What the server holds: see `server_state`.
    pub fn state(&self) -> ServerState {
        server_state(&self.rt, &self.conn, &self.cluster.as_ref().unwrap().bin().dir)
    }
}

/// Databases, roles, the untouched table's content, and the sha256 of a
/// plain pg_dump (the one in `bin`) of every database but the templates
/// (byte for byte), of the server `conn` reaches as its superuser.
pub fn server_state(rt: &tokio::runtime::Runtime, conn: &ConnInfo, bin: &Path) -> ServerState {
    let (dbs, roles, kept) = rt.block_on(async {
        let c = rehearse::sys::db::connect(conn, "postgres", "test").await.unwrap();
        let list = |sql: &'static str| {
            let c = &c;
            async move { c.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect::<Vec<String>>() }
        };
        let dbs = list("SELECT datname::text FROM pg_database ORDER BY 1").await;
        let roles = list("SELECT rolname::text FROM pg_roles ORDER BY 1").await;
        let kept: i64 = c.query_one("SELECT count(*) FROM keep_me", &[]).await.unwrap().get(0);
        (dbs, roles, kept)
    });
    let dumps = dbs
        .iter()
        .filter(|d| !d.starts_with("template"))
        .map(|d| {
            let out = std::process::Command::new(bin.join("pg_dump"))
                .args(["-d", d])
                .envs(conn.libpq_env(d, "test"))
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

/// A url-backend run on `server` whose second migration (a 60 s sleep)
/// gets `signal` as it starts: the sandbox it ran in and what it left.
pub fn url_run_signalled_in_its_second_migration(
    server: &OwnedServer,
    signal: nix::sys::signal::Signal,
) -> (Sandbox, RunOutput) {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_quick.sql", "SELECT 1;"), ("0002_slow.sql", "SELECT pg_sleep(60);")]);
    let scenario = sandbox.scenario_on("backend: url", tiny_demo_dump(), "");
    let cmd = sandbox.command(&["run", scenario.to_str().unwrap(), "--url", &server.url()]);
    let out = run_and_signal_with(cmd, &sandbox, "migration 2/2", signal);
    (sandbox, out)
}

impl Drop for OwnedServer {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            let _ = self.rt.block_on(cluster.stop());
        }
    }
}
