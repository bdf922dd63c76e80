//! Where a migration tool's processes run: on this machine, or in a
//! container of the app's own image (`migrations.image`, or the image of
//! `migrations.job`), as production's pre-deploy Job runs them.
//!
//! In the image, each process is `docker run --rm` on the host's network
//! (so the throwaway server is reached at 127.0.0.1 on every backend: the
//! local cluster's TCP port, the docker backend's published port, the url
//! backend's host), with the image's own interpreter and code, the
//! environment passed by name (`--env NAME`: the CLI copies the value from
//! its own environment, so no password is on a command line), and the run's
//! labels, so `rehearse cleanup` finds a container a killed run left. The
//! image is never pulled here: `migrations.pull: true` pulls it while the
//! plan is checked. A container is removed (`docker rm -f`) when its
//! process ends, whatever ended it; Docker's CLI, like testcontainers,
//! would otherwise leave a container whose client was killed running.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::docker::{self, LABEL_HOST, LABEL_PID, LABEL_RUN};
use crate::error::{Error, ErrorKind, Result};
use crate::kinds::RunsIn;
use crate::report::{LaunchInfo, Setting};
use crate::sys::db::ConnInfo;
use crate::sys::process::{ChildCommand, ChildError};

/// How a migration tool is launched.
#[derive(Debug, Clone)]
pub enum Launch {
    /// On this machine, in the scenario's environment, on the network
    /// `migrations.network` says (`network.rs` decides what that gives).
    Here(Network),
    /// In the app's image, always on the host's network: the container
    /// reaches the throwaway server on the host's loopback.
    Image(Box<ImageLaunch>),
}

impl Default for Launch {
    fn default() -> Launch {
        Launch::Here(Network::default())
    }
}

/// `migrations.network`: the network a tool launched on this machine has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A network namespace of its own, where it reaches the copy only (where the machine allows one).
    #[default]
    Isolated,
    /// The host's network, on purpose: it can reach other servers.
    Host,
}

#[derive(Debug, Clone)]
pub struct ImageLaunch {
    pub image: String,
    /// The working directory inside the image (the Job's `workingDir`, or
    /// `migrations.dir`); None: the image's own.
    pub workdir: Option<String>,
    /// Pull the image before the run (`migrations.pull`).
    pub pull: bool,
    /// The Job it comes from (`migrations.job`), for the report.
    pub job: Option<super::job::JobSpec>,
}

/// A tool container being run: removed when dropped.
pub struct Container {
    name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        // Gone already after a normal exit (--rm); this is for a killed client.
        let _ = std::process::Command::new("docker")
            .args(["rm", "--force", &self.name])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Launch {
    pub fn image(&self) -> Option<&ImageLaunch> {
        match self {
            Launch::Here(_) => None,
            Launch::Image(i) => Some(i),
        }
    }

    /// The server as the tool reaches it: over TCP on the loopback from a
    /// container (a unix socket directory is not there), as given otherwise.
    pub fn reachable(&self, conn: &ConnInfo) -> ConnInfo {
        match self {
            Launch::Image(_) if conn.host.starts_with('/') => ConnInfo { host: "127.0.0.1".into(), ..conn.clone() },
            _ => conn.clone(),
        }
    }

    /// `program args` with `env`, in `dir` (a directory of this machine
    /// here, of the image there); the container to remove, in the image.
    pub fn command(
        &self,
        program: &str,
        args: &[String],
        env: &[(String, String)],
        dir: &Path,
    ) -> (ChildCommand, Option<Container>) {
        match self {
            Launch::Here(_) => (ChildCommand::new(program).args(args).envs(env.to_vec()).cwd(dir), None),
            Launch::Image(i) => {
                let name = format!("rehearse-tool-{}", random_suffix());
                // --interactive: the Alembic helper reads rehearse's "go" on stdin
                // (a child with stdin from /dev/null just reads its end).
                let mut run: Vec<String> =
                    vec!["run".into(), "--rm".into(), "--interactive".into(), "--name".into(), name.clone()];
                for (key, value) in [
                    (LABEL_RUN, name.clone()),
                    (LABEL_PID, std::process::id().to_string()),
                    (LABEL_HOST, docker::hostname()),
                ] {
                    run.extend(["--label".into(), format!("{key}={value}")]);
                }
                run.extend(["--network".into(), "host".into(), "--pull".into(), "never".into()]);
                run.extend(["--workdir".into(), dir.display().to_string(), "--entrypoint".into(), program.into()]);
                for (key, _) in env {
                    run.extend(["--env".into(), key.clone()]);
                }
                run.push(i.image.clone());
                run.extend(args.iter().cloned());
                let cmd = ChildCommand::new("docker").label(program).args(&run).envs(env.to_vec());
                (cmd, Some(Container { name }))
            }
        }
    }

    /// Checks, before anything is provisioned, that the image can run the
    /// tool (a Docker engine, the image here or pulled), and reads what it
    /// runs with: the image's id, Python and the versions of Alembic,
    /// SQLAlchemy and the PostgreSQL drivers `python` imports (inside the
    /// image, or here).
    /// `tool`: the interpreter, and the folder and environment it runs the
    /// migrations in (the versions are read there, as the run reads them).
    pub async fn describe(&self, tool: Option<PythonTool<'_>>, cancel: &CancellationToken) -> Result<LaunchInfo> {
        let mut info = LaunchInfo { runs_in: RunsIn::ThisMachine, ..LaunchInfo::default() };
        if let Launch::Image(i) = self {
            i.ensure_image(cancel).await?;
            info.runs_in = RunsIn::Image;
            info.image = Some(i.image.clone());
            info.image_id = image_id(&i.image, cancel).await;
            if let Some(job) = &i.job {
                info.job = Some(job.name.clone());
                info.container = Some(job.container.clone());
                info.command = job.command.iter().chain(&job.args).cloned().collect();
                info.from_cluster = job.from_cluster.clone();
            }
            info.workdir = i.workdir.clone();
        }
        if let Some(tool) = tool {
            info.tool_versions = self.tool_versions(tool, cancel).await?;
        }
        Ok(info)
    }

    async fn tool_versions(&self, tool: PythonTool<'_>, cancel: &CancellationToken) -> Result<Vec<Setting>> {
        let (python, dir, env) = tool;
        // The same prelude as the helper's, in the same folder: what this
        // reads is what the migrations will import.
        let args = ["-c".to_string(), format!("{}{VERSIONS}", super::alembic::PRELUDE)];
        let (cmd, _container) = self.command(python, &args, env, dir);
        let out = cmd.deadline(Duration::from_secs(120)).keep_all_stdout().run(cancel).await;
        let where_ = match self {
            Launch::Here(_) => python.to_string(),
            Launch::Image(i) => format!("{python} in image {}", i.image),
        };
        let out = match out {
            Ok(out) => out,
            Err(ChildError::Cancelled { .. }) => return Err(Error::Interrupted),
            Err(e) => {
                return Err(ErrorKind::MigrationToolMissing.because(
                    format!(
                        "{where_} cannot import Alembic and SQLAlchemy: install them in it, or set migrations.python \
                         to the interpreter that has them"
                    ),
                    e,
                ))
            }
        };
        let versions: Versions = serde_json::from_str(out.stdout.trim().lines().last().unwrap_or(""))
            .map_err(|e| Error::environment_because(format!("{where_} printed versions rehearse cannot read"), e))?;
        Ok(versions.into_iter().filter_map(|(name, value)| value.map(|value| Setting { name, value })).collect())
    }
}

/// An interpreter, the folder it runs the migration tool in, and its environment.
pub type PythonTool<'a> = (&'a str, &'a Path, &'a [(String, String)]);

/// `name → version` (null: not importable), in the order printed.
type Versions = Vec<(String, Option<String>)>;

/// Prints [[name, version or null], ...] for Python and the modules a migration tool runs with.
const VERSIONS: &str = r#"
import json, platform, importlib
out = [["python", platform.python_version()]]
for name in ["alembic", "sqlalchemy", "psycopg2", "psycopg"]:
    try:
        module = importlib.import_module(name)
        out.append([name, str(getattr(module, "__version__", "?")).split(" ")[0]])
    except ImportError:
        if name in ("alembic", "sqlalchemy"):
            raise
        out.append([name, None])
print(json.dumps(out))
"#;

impl ImageLaunch {
    /// The image is on this machine (pulled first with `pull`), and Docker answers.
    async fn ensure_image(&self, cancel: &CancellationToken) -> Result<()> {
        if let Err(why) = docker::engine_version(cancel).await {
            return Err(ErrorKind::DockerUnavailable.error(format!(
                "migrations.image {} runs the migrations in a container, and the Docker engine {why}: start Docker \
                 (`sudo systemctl start docker`, or `scripts/docker-test-image.sh` starts dockerd here), or remove \
                 migrations.image / migrations.job to run the tool on this machine",
                self.image
            )));
        }
        if self.pull {
            ChildCommand::new("docker")
                .args(["pull", &self.image])
                .deadline(Duration::from_secs(1800))
                .run(cancel)
                .await
                .map_err(|e| match e {
                    ChildError::Cancelled { .. } => Error::Interrupted,
                    e => {
                        ErrorKind::ImageUnavailable.because(format!("cannot pull {} (migrations.pull)", self.image), e)
                    }
                })?;
        }
        if image_id(&self.image, cancel).await.is_none() {
            return Err(ErrorKind::ImageUnavailable.error(format!(
                "the app image {} is not on this machine, and rehearse does not pull it unless asked: \
                 `docker pull {}` (or build it), or set migrations.pull: true",
                self.image, self.image
            )));
        }
        Ok(())
    }
}

/// The image's id, when this machine has it (never pulled here).
async fn image_id(image: &str, cancel: &CancellationToken) -> Option<String> {
    let out = ChildCommand::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .deadline(Duration::from_secs(60))
        .run(cancel)
        .await
        .ok()?;
    Some(out.stdout.trim().to_string())
}

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff)
}
