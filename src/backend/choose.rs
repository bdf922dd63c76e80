//! Which backend a run uses: the scenario's `postgres.backend` and the
//! flags, checked against this machine before anything starts.
//!
//! `auto` (the default) takes the url backend when a URL is given, else the
//! local binaries when they are found (and match `postgres.version`), else
//! Docker when an engine answers, else fails with both remedies.
//!
//! A flag that names a backend's server selects that backend whatever the
//! scenario says (`--url`: url, `--image`: docker), and a scenario whose
//! keys name another backend's server than the one it chose is refused: a
//! server the user named is never silently left unused. The clone backend
//! is only ever chosen by name (`backend: clone`), and refuses both flags.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::clone::ClonePlan;
use super::docker::{self, DockerPlan};
use super::local;
use super::url::{self, UrlPlan};
use super::{BackendKind, BackendPlan};
use crate::error::{exit, Error, ErrorKind, Result};

/// The scenario's and the flags' say on the backend.
#[derive(Debug)]
pub struct BackendRequest<'a> {
    pub kind: BackendKind,
    pub version: Option<&'a str>,
    pub image: Option<&'a str>,
    pub url: Option<&'a str>,
    pub pg_bin: Option<&'a Path>,
    /// Which of `url`, `image` and `pg_bin` came from flags (`--url`, `--image`, `--pg-bin`).
    pub flags: NamedOnCommandLine,
    /// The dump (none on the clone backend).
    pub dump: Option<&'a Path>,
    pub settings: &'a [(String, String)],
    /// `postgres.clone`, resolved (without client binaries: `choose` looks them up).
    pub clone: Option<ClonePlan>,
    /// The scenario file, as messages name it.
    pub shown: &'a str,
}

/// Which servers the command line named.
#[derive(Debug, Default, Clone, Copy)]
pub struct NamedOnCommandLine {
    pub url: bool,
    pub image: bool,
    pub pg_bin: bool,
}

pub async fn choose(req: &BackendRequest<'_>, cancel: &CancellationToken) -> Result<BackendPlan> {
    match effective_kind(req)? {
        BackendKind::Local => local_plan(req, cancel).await,
        BackendKind::Docker => docker_plan(req, cancel).await,
        BackendKind::Url => url_plan(req, cancel).await,
        BackendKind::Clone => clone_plan(req, cancel).await,
        BackendKind::Auto if req.url.is_some() => url_plan(req, cancel).await,
        BackendKind::Auto => auto_plan(req, cancel).await,
    }
}

/// The backend the flags and the scenario ask for, or why they contradict each other.
fn effective_kind(req: &BackendRequest<'_>) -> Result<BackendKind> {
    let shown = req.shown;
    let refuse = |message: String| Err(ErrorKind::ArgumentsInvalid.error(format!("{shown}: {message}")));
    if req.kind == BackendKind::Clone && (req.flags.url || req.flags.image) {
        let flag = if req.flags.url { "--url" } else { "--image" };
        return refuse(format!(
            "{flag} names a server for another backend, but postgres.backend is clone (the server is the clone \
             postgres.clone.create makes): drop {flag}, or use a scenario with another backend"
        ));
    }
    match (req.flags.url, req.flags.image, req.flags.pg_bin) {
        (true, true, _) => {
            return refuse(
                "--url and --image name two different servers (an existing one, a container): pass one".into(),
            )
        }
        (false, true, true) => {
            return refuse(
                "--image runs the server in a container, so --pg-bin (local binaries) would be unused: pass one".into(),
            )
        }
        (true, _, _) => return Ok(BackendKind::Url),
        (_, true, _) => return Ok(BackendKind::Docker),
        _ => {}
    }
    let named = |key: &str, backend: &str| {
        refuse(format!(
            "postgres.{key} names a server for the {backend} backend, but postgres.backend is {}: \
             remove postgres.{key}, or set `backend: {backend}` (or `auto`)",
            req.kind
        ))
    };
    match req.kind {
        BackendKind::Local if req.url.is_some() => named("url", "url"),
        BackendKind::Local if req.image.is_some() => named("image", "docker"),
        BackendKind::Docker if req.url.is_some() => named("url", "url"),
        BackendKind::Url if req.image.is_some() => named("image", "docker"),
        BackendKind::Clone if req.url.is_some() => named("url", "url"),
        BackendKind::Clone if req.image.is_some() => named("image", "docker"),
        BackendKind::Docker if req.flags.pg_bin => refuse(
            "--pg-bin names local PostgreSQL binaries, but postgres.backend is docker (the server runs in a \
             container): drop --pg-bin, or set `backend: local`"
                .into(),
        ),
        kind => Ok(kind),
    }
}

async fn local_plan(req: &BackendRequest<'_>, cancel: &CancellationToken) -> Result<BackendPlan> {
    let bin = local::find_binaries(req.pg_bin, cancel).await?;
    if let Some(wanted) = req.version {
        let wanted_major = wanted.split('.').next().unwrap_or("");
        if wanted_major != bin.major.to_string() {
            return Err(ErrorKind::ServerBinariesMissing.error(format!(
                "{} asks for PostgreSQL {wanted} but the local server binaries in {} are {}: \
                 install postgresql-{wanted_major} and pass --pg-bin, use `backend: docker`, or change postgres.version",
                req.shown,
                bin.dir.display(),
                bin.version
            )));
        }
    }
    Ok(BackendPlan::Local { bin })
}

async fn docker_plan(req: &BackendRequest<'_>, cancel: &CancellationToken) -> Result<BackendPlan> {
    if let Err(why) = docker::engine_version(cancel).await {
        return Err(ErrorKind::DockerUnavailable.error(format!(
            "{}: the docker backend needs a running Docker engine, and here {why}: {}",
            req.shown,
            docker_remedy(&image(req))
        )));
    }
    Ok(BackendPlan::Docker(DockerPlan {
        image: image(req),
        dump: req.dump.map(Path::to_path_buf).unwrap_or_default(),
        settings: req.settings.to_vec(),
        standby: false,
    }))
}

async fn url_plan(req: &BackendRequest<'_>, cancel: &CancellationToken) -> Result<BackendPlan> {
    let Some(raw) = req.url else {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{}: `backend: url` needs the server's URL: set postgres.url (e.g. ${{STAGING_URL}}) or pass --url URL",
            req.shown
        )));
    };
    let server = url::parse(raw)?;
    let bin = local::find_client_binaries(req.pg_bin, cancel).await?;
    Ok(BackendPlan::Url(UrlPlan { server, bin }))
}

async fn clone_plan(req: &BackendRequest<'_>, cancel: &CancellationToken) -> Result<BackendPlan> {
    let Some(clone) = &req.clone else {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{}: `backend: clone` needs the commands that make and remove the clone: set postgres.clone.create \
             (prints the clone's connection URL) and postgres.clone.destroy (see docs/clones.md)",
            req.shown
        )));
    };
    // Only `report.measure_backup` (pg_dump) needs client tools on a clone: their absence is no reason to stop.
    let bin = match req.pg_bin {
        Some(_) => Some(local::find_client_binaries(req.pg_bin, cancel).await?),
        None => local::find_client_binaries(None, cancel).await.ok(),
    };
    Ok(BackendPlan::Clone(ClonePlan { bin, ..clone.clone() }))
}

async fn auto_plan(req: &BackendRequest<'_>, cancel: &CancellationToken) -> Result<BackendPlan> {
    let local_problem = match local_plan(req, cancel).await {
        Ok(plan) => return Ok(plan),
        // A wrong --pg-bin is the user's to fix, not a reason to switch backends.
        Err(e) if e.exit_code() == exit::BAD_INPUT => return Err(e),
        Err(e @ Error::Interrupted) => return Err(e),
        Err(e) => e.to_string(),
    };
    let docker_problem = match docker::engine_version(cancel).await {
        Ok(_) => return docker_plan(req, cancel).await,
        Err(why) => why,
    };
    Err(ErrorKind::BackendUnavailable.error(format!(
        "{}: no backend can run on this machine (backend: auto).\n  \
         local: {local_problem}\n  \
         docker: {docker_problem}\n\
         Either install PostgreSQL server binaries (`sudo apt-get install postgresql-15`, or `make deps`) or pass --pg-bin DIR; \
         or {}",
        req.shown,
        docker_remedy(&image(req))
    )))
}

fn image(req: &BackendRequest<'_>) -> String {
    match req.image {
        Some(image) => image.to_string(),
        None => format!("postgres:{}", req.version.unwrap_or(docker::DEFAULT_VERSION)),
    }
}

fn docker_remedy(image: &str) -> String {
    format!(
        "install Docker (`sudo apt-get install docker.io`) and start it (`sudo systemctl start docker`, \
         or `sudo dockerd &` where there is no systemd) so rehearse can run {image} in a container"
    )
}
