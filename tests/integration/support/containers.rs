//! PostgreSQL servers in containers the tests start for themselves, through
//! testcontainers (pinned in Cargo.toml; rehearse's own docker backend drives
//! the docker CLI, see src/backend/docker.rs): "production" reached over TCP
//! from another network namespace, as a user's server is.
//!
//! Each container has a unique name and a random port on 127.0.0.1, so tests
//! run side by side; dropping it removes it (with its volumes), also when its
//! test panics. It is not labelled `rehearse`, so the checks that no
//! container of rehearse's is left never count it; it carries the test
//! process's pid and host instead, and the first container a test binary
//! starts first removes those of test binaries on this host that were
//! killed before their Drop ran.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rehearse::backend::docker::hostname;
use rehearse::sys::db::{ConnInfo, Secret};
use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::{Healthcheck, IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use super::{docker_out, pg_bin_dir, server_state, test_image, ServerState, KEEP_ME};

/// Labels: the pid and the host of the test binary that started a container.
pub const LABEL_TEST_PID: &str = "rehearse.test.pid";
pub const LABEL_TEST_HOST: &str = "rehearse.test.host";
const PORT: u16 = 5432;
const SUPERUSER: &str = "prod_admin";
/// initdb, the entrypoint's temporary server and the final one, on a loaded
/// two-core machine (about 5 s when idle).
const STARTUP: Duration = Duration::from_secs(120);

/// A PostgreSQL server in a container of the test image, with the keep_me
/// table, running with `rehearse::backend::settings::OBSERVATION` (as
/// `OwnedServer` does, so a test moved onto a container keeps its server).
pub struct ServerContainer {
    rt: tokio::runtime::Runtime,
    container: Container<GenericImage>,
    /// The container's name: `docker` commands can find it.
    pub name: String,
    /// The superuser, over TCP on 127.0.0.1.
    pub conn: ConnInfo,
}

impl ServerContainer {
    pub fn start() -> ServerContainer {
        remove_killed_runs_containers();
        let name = unique_name();
        let password = Secret::generate();
        let container = postgres_request(&name, password.expose())
            .start()
            .unwrap_or_else(|e| panic!("testcontainers could not start {name} from {}: {e}", test_image()));
        let port = container.get_host_port_ipv4(PORT.tcp()).expect("the server's port is published");
        let conn = ConnInfo {
            host: "127.0.0.1".into(),
            port,
            user: SUPERUSER.into(),
            password,
            dbname: "postgres".into(),
            admin_dbname: "postgres".into(),
            tls: Default::default(),
            password_command: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let client = rehearse::sys::db::connect(&conn, "postgres", "test").await.unwrap();
            client.batch_execute(KEEP_ME).await.unwrap();
        });
        ServerContainer { rt, container, name, conn }
    }

    /// The container's id on the Docker engine.
    pub fn id(&self) -> &str {
        self.container.id()
    }

    pub fn url(&self) -> String {
        format!("postgres://{}:{}@127.0.0.1:{}/postgres", self.conn.user, self.conn.password.expose(), self.conn.port)
    }

    /// What the server holds (see `server_state`), dumped by this machine's pg_dump over TCP.
    pub fn state(&self) -> ServerState {
        server_state(&self.rt, &self.conn, std::path::Path::new(&pg_bin_dir()))
    }

    /// `sql`'s first column of its first row, as text, run as the superuser in `postgres`.
    pub fn query_text(&self, sql: &str) -> String {
        self.rt.block_on(async {
            let client = rehearse::sys::db::connect(&self.conn, "postgres", "test").await.unwrap();
            client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
        })
    }
}

/// The container: the test image, the official image's environment, the
/// server's settings on its command line, its port on loopback only, and
/// ready when a TCP connection to it is accepted.
fn postgres_request(name: &str, password: &str) -> testcontainers::ContainerRequest<GenericImage> {
    let image = test_image();
    let (repository, tag) = split_image(&image);
    let mut command = vec!["postgres".to_string()];
    for (setting, value) in rehearse::backend::settings::OBSERVATION {
        command.extend(["-c".to_string(), format!("{setting}={value}")]);
    }
    // pg_isready over TCP: the entrypoint's temporary server listens on its
    // socket only, so this answers once the final server accepts connections
    // (a log line would be printed twice, once by each).
    let ready = Healthcheck::cmd(["pg_isready", "--quiet", "--host=127.0.0.1", "--port=5432"])
        .with_interval(Duration::from_millis(250))
        .with_timeout(Duration::from_secs(5))
        .with_retries(u32::try_from(STARTUP.as_millis() / 250).unwrap());
    GenericImage::new(repository, tag)
        .with_exposed_port(PORT.tcp())
        .with_wait_for(WaitFor::healthcheck())
        .with_container_name(name)
        .with_label(LABEL_TEST_PID, std::process::id().to_string())
        .with_label(LABEL_TEST_HOST, hostname())
        .with_env_var("POSTGRES_USER", SUPERUSER)
        .with_env_var("POSTGRES_PASSWORD", password)
        .with_env_var("POSTGRES_DB", "postgres")
        // A throwaway data dir: initdb need not wait for the disk (about 0.7 s of 3.5).
        .with_env_var("POSTGRES_INITDB_ARGS", "--no-sync")
        .with_cmd(command)
        .with_health_check(ready)
        .with_startup_timeout(STARTUP)
        .with_host_config_modifier(loopback_only)
}

/// Publishes the server's port on 127.0.0.1 at a port the engine picks
/// (testcontainers publishes every exposed port on all interfaces): the
/// server's password is in the test's environment, not a secret.
fn loopback_only(host: &mut HostConfig) {
    host.publish_all_ports = Some(false);
    let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) };
    host.port_bindings = Some([(format!("{PORT}/tcp"), Some(vec![binding]))].into_iter().collect());
}

/// `repository[:tag]` → (repository, tag), `latest` when there is none (a
/// registry's port is not a tag).
fn split_image(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository.into(), tag.into()),
        _ => (image.into(), "latest".into()),
    }
}

/// Unique on this engine: other tests of this binary, other test binaries
/// (other checkouts) and what a killed run left all have other names.
fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let random = Secret::generate().expose()[..8].to_lowercase();
    format!("rehearse-test-{}-{}-{random}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Removes, once per test binary, the containers of test binaries on this
/// host that are no longer running (killed before their containers' Drop
/// ran); those of running ones, here or in other checkouts, are theirs, and
/// another host's pids (a CI job in another container on the same engine)
/// cannot be judged from here.
fn remove_killed_runs_containers() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        let here = hostname();
        let format = format!("{{{{.ID}}}} {{{{.Label \"{LABEL_TEST_PID}\"}}}} {{{{.Label \"{LABEL_TEST_HOST}\"}}}}");
        let listed = docker_out(&["ps", "--all", "--filter", &format!("label={LABEL_TEST_PID}"), "--format", &format]);
        for line in listed.lines() {
            let [id, pid, host] = line.splitn(3, ' ').collect::<Vec<_>>()[..] else { continue };
            if host == here && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("removing test container {id}, left by test process {pid}, which is gone");
                let _ = Command::new("docker").args(["rm", "--force", "--volumes", id]).output();
            }
        }
    });
}
