//! `rehearse doctor`: what this machine can run. Local PostgreSQL binaries
//! and their versions, a reachable Docker engine and the Postgres images it
//! has, the client tools the url backend needs, Python and Alembic, whether
//! the migration tool can run in a network namespace of its own; each
//! missing piece with the command that fixes it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::{docker, local};
use crate::sys::process::ChildCommand;

/// One fact about this machine.
#[derive(Debug, Clone)]
pub struct Check {
    /// What it is about: "local", "docker", "url", "alembic".
    pub area: &'static str,
    pub ok: bool,
    pub finding: String,
    /// The command that fixes it, when it is missing.
    pub fix: Option<String>,
}

/// Everything `doctor` found, and which backend `auto` would take.
#[derive(Debug)]
pub struct Diagnosis {
    pub checks: Vec<Check>,
    pub auto_backend: Option<&'static str>,
}

fn check(area: &'static str, ok: bool, finding: impl Into<String>, fix: Option<String>) -> Check {
    Check { area, ok, finding: finding.into(), fix }
}

pub async fn diagnose(cancel: &CancellationToken) -> Diagnosis {
    let (mut checks, local_ok) = local_checks(cancel).await;
    let (docker, docker_ok) = docker_checks(cancel).await;
    checks.extend(docker);
    checks.push(client_tools_check(cancel).await);
    checks.extend(python_checks(cancel).await);
    checks.push(isolation_check());
    let auto_backend = match (local_ok, docker_ok) {
        (true, _) => Some("local"),
        (false, true) => Some("docker"),
        (false, false) => None,
    };
    Diagnosis { checks, auto_backend }
}

/// The local backend's checks: server binaries found, who the server would
/// run as, how binaries are looked for; and whether the backend can run.
async fn local_checks(cancel: &CancellationToken) -> (Vec<Check>, bool) {
    let mut checks = Vec::new();
    let bins = local::all_binaries(cancel).await;
    for bin in &bins {
        checks.push(check(
            "local",
            true,
            format!("PostgreSQL {} server binaries in {}", bin.version, bin.dir.display()),
            None,
        ));
    }
    if bins.is_empty() {
        checks.push(check(
            "local",
            false,
            "no PostgreSQL server binaries (initdb, pg_ctl) found",
            Some("sudo apt-get install postgresql-15   (or `make deps`)".into()),
        ));
    }
    let root_ok = match local::server_user() {
        Ok(Some(who)) => {
            Some(check("local", true, format!("running as root: the server will run as the {} user", who.name), None))
        }
        Ok(None) => None,
        Err(e) => Some(check("local", false, e.to_string(), Some("sudo useradd --system postgres".into()))),
    };
    checks.extend(root_ok.clone());
    let local_ok = !bins.is_empty() && root_ok.is_none_or(|c| c.ok);
    if std::env::var(local::SEARCH_ENV).is_ok_and(|v| v == "path") {
        checks.push(check(
            "local",
            true,
            format!("{}=path: binaries are looked for on PATH only", local::SEARCH_ENV),
            None,
        ));
    }
    (checks, local_ok)
}

/// The docker backend's checks: the engine, the PostgreSQL images it has,
/// the default image; and whether the engine answers.
async fn docker_checks(cancel: &CancellationToken) -> (Vec<Check>, bool) {
    let version = match docker::engine_version(cancel).await {
        Ok(version) => version,
        Err(why) => {
            let fix = "sudo apt-get install docker.io && sudo systemctl start docker   (no systemd: sudo dockerd &)";
            return (vec![check("docker", false, format!("Docker not usable: {why}"), Some(fix.into()))], false);
        }
    };
    let mut checks = vec![check("docker", true, format!("Docker engine {version} reachable"), None)];
    let images = docker::postgres_images(cancel).await.unwrap_or_default();
    let default = format!("postgres:{}", docker::DEFAULT_VERSION);
    checks.push(match images.is_empty() {
        true => check("docker", false, "no PostgreSQL images on this machine", Some(format!("docker pull {default}"))),
        false => check("docker", true, format!("images: {}", images.join(", ")), None),
    });
    if !images.contains(&default) {
        checks.push(check(
            "docker",
            false,
            format!("the default image {default} is not here (pulled on first use; needs a registry)"),
            Some(format!("docker pull {default}   (or name a present image with --image)")),
        ));
    }
    (checks, true)
}

/// The client tools the url backend runs (pg_restore, psql).
async fn client_tools_check(cancel: &CancellationToken) -> Check {
    match local::find_client_binaries(None, cancel).await {
        Ok(bin) => check(
            "url",
            true,
            format!("client tools pg_restore and psql {} in {}", bin.version, bin.dir.display()),
            None,
        ),
        Err(_) => check(
            "url",
            false,
            "no pg_restore and psql for the url backend",
            Some("sudo apt-get install postgresql-client-15".into()),
        ),
    }
}

/// Whether a migration tool can run in a network namespace of its own
/// here (`migrations.network: isolated`), or would fall back to the host's.
fn isolation_check() -> Check {
    match crate::sys::netns::available() {
        Ok(()) => check("tool", true, "network namespaces: the migration tool reaches the copy only", None),
        Err(why) => check(
            "tool",
            false,
            format!("no network namespace for the migration tool ({why}): it would run on the host's network"),
            Some(
                "run as root, or allow unprivileged user namespaces: sudo sysctl -w kernel.unprivileged_userns_clone=1 \
                 user.max_user_namespaces=15000   (in a container: --cap-add SYS_ADMIN, or a seccomp profile allowing \
                 unshare)"
                    .into(),
            ),
        ),
    }
}

async fn python_checks(cancel: &CancellationToken) -> Vec<Check> {
    let run = |args: &[&str]| ChildCommand::new("python3").args(args).deadline(Duration::from_secs(20)).run(cancel);
    let python = match run(&["--version"]).await {
        Ok(out) => format!("{}{}", out.stdout, out.stderr).trim().to_string(),
        Err(_) => {
            return vec![check(
                "alembic",
                false,
                "python3 not found (Alembic migrations need it)",
                Some("sudo apt-get install python3 python3-pip".into()),
            )]
        }
    };
    let mut checks = vec![check("alembic", true, format!("{python} found"), None)];
    checks.push(match run(&["-c", "import alembic; print(alembic.__version__)"]).await {
        Ok(out) => check("alembic", true, format!("Alembic {}", out.stdout.trim()), None),
        Err(_) => check(
            "alembic",
            false,
            "Alembic is not importable by python3",
            Some("python3 -m pip install alembic   (or: sudo apt-get install python3-alembic)".into()),
        ),
    });
    checks
}

impl Diagnosis {
    /// The report for the terminal: one line per check, fixes indented below.
    pub fn render(&self) -> String {
        let mut out = String::from("rehearse doctor: what this machine can run\n\n");
        for c in &self.checks {
            out.push_str(&format!("{:<8} {:<7} {}\n", c.area, if c.ok { "ok" } else { "MISSING" }, c.finding));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("{:<16} fix: {fix}\n", ""));
            }
        }
        out.push('\n');
        out.push_str(&match self.auto_backend {
            Some(b) => format!("backend: auto would use {b}\n"),
            None => "backend: auto has nothing to run on: install PostgreSQL or Docker (fixes above)\n".into(),
        });
        out
    }
}
