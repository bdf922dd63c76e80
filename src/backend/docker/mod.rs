//! The docker backend: the throwaway server is a container of the official
//! `postgres:<version>` image, or of any image that honours its contract
//! (`postgres.image` / `--image`), driven through the Docker CLI.
//!
//! Why the CLI and not a Docker API client (testcontainers, bollard): the CLI
//! negotiates the Engine API version with whatever engine it finds, and
//! every call goes through the one spawn helper (`process::ChildCommand`)
//! with a deadline and the run's cancellation. testcontainers 0.28 (bollard
//! 0.21) does not negotiate: it works with Docker 20.10 (API 1.41, Debian
//! 12's docker.io, which CI runs) only because bollard 0.21 loses its
//! default version (1.53) when it builds a request's path, so the request
//! is unversioned and the engine serves it at its own version. A bollard
//! that sends the version would be refused by every older engine ("client
//! version 1.53 is too new. Maximum supported API version is 1.41"). The
//! tests use testcontainers, pinned, for containers of their own, and
//! tests/integration/test_containers.rs turns red the day it stops working
//! with API 1.41 (docs/development.md).
//!
//! The container publishes its port on 127.0.0.1 only, has a random
//! password, and carries labels (`rehearse` = run id, `rehearse.pid`,
//! `rehearse.host`) so `rehearse cleanup` can find a crashed run's container
//! and a half-created one can be removed by label. The dump is bind-mounted
//! read-only and restored by the container's own pg_restore / psql
//! (`docker exec`), so the client always matches the server. A container
//! belongs to the Docker daemon, not to our process group: killing our
//! children never removes it, so cleanup is an explicit `docker rm -f -v`
//! (`-v`: the official image declares a VOLUME for its data dir, which would
//! otherwise outlive the container), with `Drop` as a backstop.

mod engine;
mod snapshot;
mod standby;

pub use engine::*;
pub use snapshot::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::local::free_port;
use super::settings;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::db::{self, ConnInfo, Secret};
use crate::sys::process::{ChildCommand, ChildError};
use crate::sys::text::last_lines;

/// The image tag used when the scenario names neither an image nor a version.
pub const DEFAULT_VERSION: &str = "16";
/// Label keys on every container rehearse starts.
pub const LABEL_RUN: &str = "rehearse";
pub const LABEL_PID: &str = "rehearse.pid";
pub const LABEL_HOST: &str = "rehearse.host";
/// Label on a snapshot cache image: the cache key it holds.
pub const LABEL_SNAPSHOT: &str = "rehearse.snapshot";
/// Repository of snapshot cache images (tagged with the cache key).
const SNAPSHOT_REPOSITORY: &str = "rehearse-snapshot";
/// Where the dump appears inside the container.
const DUMP_MOUNT: &str = "/rehearse/dump";
/// The server's data directory inside the container (`PGDATA`): outside
/// every path the official image declares a VOLUME for (/var/lib/postgresql/data,
/// and /var/lib/postgresql from PostgreSQL 18 on), so the data lives in the
/// container's own filesystem and `docker commit` captures it for the
/// snapshot cache.
const DATA_DIR: &str = "/rehearse/data";
/// The standby's data directory and port, in its own container on the primary's network.
const STANDBY_DIR: &str = "/var/lib/postgresql/rehearse-standby";
const STANDBY_PORT: u16 = 5433;
const SUPERUSER: &str = "rehearse";
const DATABASE: &str = "rehearse";
/// A fresh official container runs initdb, a temporary server and a restart
/// before it serves: slow disks and a cold page cache need minutes.
const START_DEADLINE: Duration = Duration::from_secs(180);
const READY_LINE: &str = "database system is ready to accept connections";

/// What the plan decided for a docker run.
#[derive(Debug, Clone)]
pub struct DockerPlan {
    pub image: String,
    /// The dump file or directory, mounted read-only.
    pub dump: PathBuf,
    /// Prod-like settings, passed to the server as `-c name=value`.
    pub settings: Vec<(String, String)>,
    /// A standby will run in the container's network (`observe.standby`):
    /// publish its port too.
    pub standby: bool,
}

/// A running container this run owns. Call `remove` (or `keep`); `Drop` is only a backstop.
#[derive(Debug)]
pub struct DockerContainer {
    /// None until `docker create` has answered.
    id: Option<String>,
    run: String,
    conn: ConnInfo,
    /// The container's POSTGRES_PASSWORD: the superuser's password, once a
    /// container of a snapshot image has replaced the cached one.
    env_password: Secret,
    /// The image it was created from.
    image: String,
    /// The port a standby in this container's network is published on.
    standby_port: Option<u16>,
    /// Its server's data directory, inside it.
    data_dir: &'static str,
    done: bool,
}

fn docker(args: &[&str]) -> ChildCommand {
    ChildCommand::new("docker").args(args).deadline(Duration::from_secs(60))
}

impl DockerContainer {
    pub async fn start(plan: &DockerPlan, cancel: &CancellationToken) -> Result<DockerContainer> {
        ensure_image(&plan.image, cancel).await?;
        DockerContainer::start_image(plan, &plan.image, None, cancel).await
    }

    /// Creates and starts a container of `image`. `cached_password`: the
    /// image's data dir exists already with this password for the superuser.
    async fn start_image(
        plan: &DockerPlan,
        image: &str,
        cached_password: Option<Secret>,
        cancel: &CancellationToken,
    ) -> Result<DockerContainer> {
        let mut last_error = None;
        // A free port can be taken between our probe and Docker's bind: retry.
        for _ in 0..3 {
            let fresh = Secret::generate();
            let mut container = DockerContainer {
                id: None,
                run: random_id(),
                conn: ConnInfo {
                    host: "127.0.0.1".into(),
                    port: free_port()?,
                    user: SUPERUSER.into(),
                    password: cached_password.clone().unwrap_or_else(|| fresh.clone()),
                    dbname: DATABASE.into(),
                    admin_dbname: "postgres".into(),
                    tls: Default::default(),
                    password_command: None,
                },
                env_password: fresh,
                image: image.to_string(),
                standby_port: if plan.standby { Some(free_port()?) } else { None },
                data_dir: DATA_DIR,
                done: false,
            };
            // From here on, an error or a cancellation drops `container`,
            // whose Drop removes it by id, or by run label if `create` never answered.
            container.create(plan, image, cancel).await?;
            match docker(&["start", container.id()]).run(cancel).await {
                Ok(_) => {
                    container.wait_ready(cancel).await?;
                    return Ok(container);
                }
                Err(e) if is_port_taken(&e) => {
                    container.remove().await?;
                    last_error = Some(e);
                }
                Err(e) => return Err(container.failure(&format!("cannot start a container of {image}"), e).await),
            }
        }
        Err(ErrorKind::ServerStartFailed.because(
            "no free port on 127.0.0.1 for the container after three attempts",
            last_error.expect("three attempts were made"),
        ))
    }

    async fn create(&mut self, plan: &DockerPlan, image: &str, cancel: &CancellationToken) -> Result<()> {
        let mut args: Vec<String> = vec!["create".into()];
        args.extend(self.labels());
        args.extend([
            // No value: the CLI copies it from its own environment, so the
            // password never appears on a command line.
            "--env".into(),
            "POSTGRES_PASSWORD".into(),
            "--env".into(),
            format!("POSTGRES_USER={SUPERUSER}"),
            "--env".into(),
            format!("POSTGRES_DB={DATABASE}"),
            "--env".into(),
            format!("PGDATA={DATA_DIR}"),
            // Prod data: reachable from this machine's loopback only.
            "--publish".into(),
            format!("127.0.0.1:{}:5432", self.conn.port),
            "--mount".into(),
            format!("type=bind,\"source={}\",target={DUMP_MOUNT},readonly", plan.dump.display()),
            // Docker's default /dev/shm is 64MB; parallel queries and
            // index builds use dynamic shared memory from it.
            "--shm-size".into(),
            "1g".into(),
        ]);
        if let Some(port) = self.standby_port {
            args.extend(["--publish".into(), format!("127.0.0.1:{port}:{STANDBY_PORT}")]);
        }
        args.push(image.to_string());
        args.extend(server_args(&plan.settings));
        let out = ChildCommand::new("docker")
            .args(&args)
            .env("POSTGRES_PASSWORD", self.env_password.expose())
            .deadline(Duration::from_secs(60))
            .run(cancel)
            .await
            .map_err(|e| child_error(&format!("cannot create a container of {image}"), e))?;
        self.id = Some(out.stdout.trim().to_string());
        Ok(())
    }

    /// `--label` arguments for this run's containers: what `rehearse cleanup`
    /// and the run-label backstop look for.
    fn labels(&self) -> Vec<String> {
        [(LABEL_RUN, self.run.clone()), (LABEL_PID, std::process::id().to_string()), (LABEL_HOST, hostname())]
            .into_iter()
            .flat_map(|(key, value)| ["--label".to_string(), format!("{key}={value}")])
            .collect()
    }

    /// Waits for the server's readiness line, then for a connection over the
    /// published port. The official image starts a temporary server on a
    /// fresh data dir (socket only, to create POSTGRES_DB), which logs the
    /// same line before it is stopped: the log check counts lines, and the
    /// connection retry is what settles it, since only the final server
    /// listens on TCP.
    async fn wait_ready(&self, cancel: &CancellationToken) -> Result<()> {
        let started = Instant::now();
        loop {
            let logs = self.logs(cancel).await?;
            if server_ready(&logs) {
                break;
            }
            let state = docker(&["inspect", "--format", "{{.State.Status}}", self.id()])
                .run(cancel)
                .await
                .map_err(|e| child_error("cannot inspect the container", e))?;
            if state.stdout.trim() != "running" {
                return Err(ErrorKind::ServerStartFailed.error(format!(
                    "the container {} stopped during start-up ({}); its log ends with:\n{}",
                    short(self.id()),
                    state.stdout.trim(),
                    last_lines(&logs, 15)
                )));
            }
            if started.elapsed() > START_DEADLINE {
                return Err(ErrorKind::ServerStartFailed.error(format!(
                    "the server in container {} did not log \"{READY_LINE}\" within {}; its log ends with:\n{}",
                    short(self.id()),
                    humantime::format_duration(START_DEADLINE),
                    last_lines(&logs, 15)
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = cancel.cancelled() => return Err(Error::Interrupted),
            }
        }
        db::connect_when_ready(&self.conn, "postgres", "rehearse", Duration::from_secs(60), cancel).await.map(|_| ())
    }

    async fn logs(&self, cancel: &CancellationToken) -> Result<String> {
        let out = docker(&["logs", self.id()])
            .keep_all_stdout()
            .run(cancel)
            .await
            .map_err(|e| child_error("cannot read the container's log", e))?;
        Ok(format!("{}{}", out.stdout, out.stderr))
    }

    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    /// `tool` run inside the container by `docker exec`, connected to
    /// `dbname` on the container's own loopback (port 5432, whatever was
    /// published outside). The libpq variables are named with `--env` and
    /// no value, so the CLI passes them from its environment and the
    /// password stays off the command line.
    pub fn client_command(&self, tool: &str, dbname: &str, application_name: &str) -> ChildCommand {
        let inside = ConnInfo { host: "127.0.0.1".into(), port: 5432, ..self.conn.clone() };
        let env = inside.libpq_env(dbname, application_name);
        let mut cmd = ChildCommand::new("docker").label(tool).args(["exec", "--interactive"]);
        for (name, _) in &env {
            cmd = cmd.arg("--env").arg(name);
        }
        cmd.arg(self.id()).arg(tool).envs(env)
    }

    /// Where the container sees the dump.
    pub fn dump_path(&self) -> &Path {
        Path::new(DUMP_MOUNT)
    }

    /// Restarts the container; the published port stays, so connection
    /// details taken before the restart remain valid.
    pub async fn restart(&mut self, cancel: &CancellationToken) -> Result<()> {
        self.stop_fast(cancel).await?;
        self.start_again(cancel).await
    }

    /// Stops the server with a fast shutdown (SIGINT to the postmaster, PID
    /// 1: open sessions are ended, a shutdown checkpoint is written) and
    /// waits for the container to exit. Not `docker stop` or `docker
    /// restart`: they send the image's STOPSIGNAL, SIGTERM unless the image
    /// sets one, and SIGTERM is PostgreSQL's smart shutdown, which waits for
    /// every session to end and is SIGKILLed at the timeout, so the next
    /// start would run crash recovery.
    async fn stop_fast(&self, cancel: &CancellationToken) -> Result<()> {
        docker(&["kill", "--signal", "SIGINT", self.id()])
            .run(cancel)
            .await
            .map_err(|e| child_error("cannot signal the container's server to stop", e))?;
        docker(&["wait", self.id()])
            .deadline(Duration::from_secs(120))
            .run(cancel)
            .await
            .map(|_| ())
            .map_err(|e| child_error("the container's server did not stop within 2 minutes of a fast shutdown", e))
    }

    /// Removes the container and its anonymous volumes.
    pub async fn remove(mut self) -> Result<()> {
        self.done = true;
        let Some(id) = self.id.clone() else {
            remove_by_run_label(&self.run);
            return Ok(());
        };
        // Cleanup must not be cancelled by a second Ctrl-C: use a token nobody cancels.
        let never = CancellationToken::new();
        self.empty_data_dir(&id, &never).await;
        docker(&["rm", "--force", "--volumes", &id]).run(&never).await.map(|_| ()).map_err(|e| {
            ErrorKind::CleanupFailed.because(
                format!(
                    "could not remove the throwaway container {}: remove it with `docker rm -f -v {id}`",
                    short(&id)
                ),
                e,
            )
        })
    }

    /// Unlinks the data directory's files from 16 processes inside the
    /// container, before `docker rm` removes what is left: the daemon
    /// removes a container's files one at a time, which on a filesystem
    /// that discards freed blocks at each commit took 35 s for a database
    /// of 2,000 tables, and 3.9 s this way (why: `sys::tree`). The server
    /// still runs, and is about to be killed: nothing reads these files
    /// again. Best effort: an image without `find` or `xargs -P` leaves it
    /// all to `docker rm`.
    async fn empty_data_dir(&self, id: &str, never: &CancellationToken) {
        let script = format!("find {} -type f -print0 | xargs -0 -r -P 16 -n 64 rm -f", self.data_dir);
        let _ = docker(&["exec", id, "sh", "-c", &script]).deadline(Duration::from_secs(600)).run(never).await;
    }

    /// Leaves the container running and returns how to reach and remove it.
    pub fn keep(mut self) -> String {
        self.done = true;
        let id = short(self.id()).to_string();
        format!(
            "The throwaway container is still running (--keep). Connect with:\n  \
             docker exec -it {id} psql -U {SUPERUSER} {DATABASE}\n\
             (or from this machine: {conn}; the password is the container's POSTGRES_PASSWORD). Remove it with:\n  \
             docker rm -f -v {id}",
            conn = self.conn.masked(DATABASE),
        )
    }

    async fn failure(&self, what: &str, e: ChildError) -> Error {
        if matches!(e, ChildError::Cancelled { .. }) {
            return Error::Interrupted;
        }
        let logs = self.logs(&CancellationToken::new()).await.unwrap_or_default();
        match logs.trim().is_empty() {
            true => child_error(what, e),
            false => ErrorKind::ServerStartFailed
                .because(format!("{what}; its log ends with:\n{}", last_lines(&logs, 10)), e),
        }
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Backstop for a panic, an early return or a cancelled provisioning:
        // synchronous, so it finishes before the process exits.
        match &self.id {
            Some(id) => {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "--force", "--volumes", id])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
            None => remove_by_run_label(&self.run),
        }
    }
}

/// Removes whatever container carries this run's label: `docker create` may
/// have been cut off after the daemon made the container but before we heard its id.
fn remove_by_run_label(run: &str) {
    let listed = std::process::Command::new("docker")
        .args(["ps", "--all", "--quiet", "--filter", &format!("label={LABEL_RUN}={run}")])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    if let Ok(out) = listed {
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "--force", "--volumes", id])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Makes sure `image` is on this machine, pulling it when it is not.
async fn ensure_image(image: &str, cancel: &CancellationToken) -> Result<()> {
    if docker(&["image", "inspect", "--format", "{{.Id}}", image]).run(cancel).await.is_ok() {
        return Ok(());
    }
    docker(&["pull", "--quiet", image]).deadline(Duration::from_secs(1800)).run(cancel).await.map(|_| ()).map_err(|e| {
        match e {
            ChildError::Cancelled { .. } => Error::Interrupted,
            e => ErrorKind::ImageUnavailable.because(
                format!(
                    "docker image {image} is not on this machine and could not be pulled: pull it where a registry \
                     is reachable (`docker pull {image}`, or `docker save` there and `docker load` here), or name \
                     an image this machine has with postgres.image or --image (see `rehearse doctor`)"
                ),
                e,
            ),
        }
    })
}

/// `-c name=value` arguments for the server: what statement observation
/// needs, plus the scenario's settings. Fast-restore settings are left to
/// ALTER SYSTEM, because a command-line value outranks the configuration
/// files and would pin them during the restore.
fn server_args(settings: &[(String, String)]) -> Vec<String> {
    let fixed = settings::OBSERVATION;
    let fast: Vec<&str> = settings::fast_restore_names().collect();
    fixed
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .chain(
            settings.iter().filter(|(n, _)| !fast.contains(&n.as_str()) && !fixed.iter().any(|(f, _)| f == n)).cloned(),
        )
        .flat_map(|(n, v)| ["-c".to_string(), format!("{n}={v}")])
        .collect()
}

/// Whether the log shows the final server ready: on a fresh data dir (the
/// initdb output is there) the temporary server's line comes first, so two
/// are needed.
fn server_ready(log: &str) -> bool {
    let fresh = log.contains("init process complete") || log.contains("The files belonging to this database system");
    log.matches(READY_LINE).count() >= if fresh { 2 } else { 1 }
}

fn is_port_taken(e: &ChildError) -> bool {
    e.stderr().is_some_and(|s| s.contains("port is already allocated") || s.contains("address already in use"))
}

fn child_error(what: &str, e: ChildError) -> Error {
    match e {
        ChildError::Cancelled { .. } => Error::Interrupted,
        ChildError::Spawn { .. } => ErrorKind::DockerUnavailable.because(
            format!("{what}: the docker CLI is not installed (install Docker, e.g. `sudo apt-get install docker.io`)"),
            e,
        ),
        e => Error::environment_because(what.to_string(), e),
    }
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

fn random_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 12).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_waits_for_the_final_server_on_a_fresh_data_dir() {
        let initdb = "The files belonging to this database system will be owned by user \"postgres\".\n";
        let temp = format!("{initdb}LOG:  {READY_LINE}\n");
        assert!(!server_ready(&temp), "the temporary server's line alone is not enough");
        let done = format!("{temp}LOG:  received fast shutdown request\nPostgreSQL init process complete; ready for start up.\nLOG:  {READY_LINE}\n");
        assert!(server_ready(&done));
        let existing = format!("PostgreSQL Database directory appears to contain a database; Skipping initialization\nLOG:  {READY_LINE}\n");
        assert!(server_ready(&existing));
    }

    #[test]
    fn fast_restore_settings_stay_off_the_command_line() {
        let args = server_args(&[("fsync".into(), "on".into()), ("work_mem".into(), "64MB".into())]);
        assert!(args.contains(&"shared_preload_libraries=pg_stat_statements".to_string()));
        assert!(args.contains(&"work_mem=64MB".to_string()));
        assert!(!args.iter().any(|a| a.starts_with("fsync")), "{args:?}");
    }
}
