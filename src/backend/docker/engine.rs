//! The Docker engine itself: its version, data root, rehearse's labelled containers and the images it has.

use super::*;

/// The Docker engine's version, or why it cannot be reached (for `auto` and `doctor`).
pub async fn engine_version(cancel: &CancellationToken) -> Result<String, String> {
    match docker(&["version", "--format", "{{.Server.Version}}"]).deadline(Duration::from_secs(20)).run(cancel).await {
        Ok(out) => Ok(out.stdout.trim().to_string()),
        Err(ChildError::Spawn { .. }) => Err("the docker CLI is not installed".into()),
        Err(ChildError::Failed { stderr, .. }) => {
            Err(stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("docker version failed").trim().to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Where the Docker engine keeps images and containers (`docker info`'s
/// DockerRootDir), when that directory is on this machine: a container's
/// data directory lives in its writable layer there.
pub async fn data_root(cancel: &CancellationToken) -> Option<PathBuf> {
    let out = docker(&["info", "--format", "{{.DockerRootDir}}"]).run(cancel).await.ok()?;
    let dir = PathBuf::from(out.stdout.trim());
    dir.is_dir().then_some(dir)
}

/// A container some rehearse run started, as `docker ps` lists it.
#[derive(Debug, Clone)]
pub struct LabelledContainer {
    pub id: String,
    pub pid: Option<u32>,
    pub host: String,
    pub status: String,
}

/// Every container carrying the `rehearse` label, running or not.
pub async fn labelled_containers(cancel: &CancellationToken) -> Result<Vec<LabelledContainer>> {
    let format =
        format!("{{{{.ID}}}}\t{{{{.Label \"{LABEL_PID}\"}}}}\t{{{{.Label \"{LABEL_HOST}\"}}}}\t{{{{.Status}}}}");
    let out = docker(&["ps", "--all", "--no-trunc", "--filter", &format!("label={LABEL_RUN}"), "--format", &format])
        .run(cancel)
        .await
        .map_err(|e| child_error("cannot list rehearse's containers", e))?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            Some(LabelledContainer {
                id: f.next()?.to_string(),
                pid: f.next()?.parse().ok(),
                host: f.next()?.to_string(),
                status: f.next().unwrap_or_default().to_string(),
            })
        })
        .collect())
}

/// Removes a container (and its anonymous volumes) by id.
pub async fn remove_container(id: &str, cancel: &CancellationToken) -> Result<()> {
    docker(&["rm", "--force", "--volumes", id])
        .run(cancel)
        .await
        .map(|_| ())
        .map_err(|e| child_error(&format!("cannot remove container {}", short(id)), e))
}

/// Image references present on this machine whose repository is `postgres`
/// or names a postgres image (e.g. `rehearse-postgres`).
pub async fn postgres_images(cancel: &CancellationToken) -> Result<Vec<String>> {
    let out = docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
        .run(cancel)
        .await
        .map_err(|e| child_error("cannot list images", e))?;
    Ok(out.stdout.lines().filter(|l| l.contains("postgres") && !l.ends_with(":<none>")).map(str::to_string).collect())
}

/// This machine's name, as recorded on containers (`rehearse.host`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}
