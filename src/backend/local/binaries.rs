//! PostgreSQL's binaries: where they are, and which version they are.

use super::*;

/// A directory of PostgreSQL server binaries and the version they are.
#[derive(Debug, Clone)]
pub struct PgBin {
    pub dir: PathBuf,
    /// Full version, e.g. "15.18".
    pub version: String,
    pub major: u32,
}

impl PgBin {
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Set to `path` to look for binaries on PATH only (plus `--pg-bin`): no
/// `pg_config`, no `/usr/lib/postgresql`. Lets a test (or a user) hide an
/// installed PostgreSQL from `backend: auto` without uninstalling it.
pub const SEARCH_ENV: &str = "REHEARSE_PG_SEARCH";

/// Finds server binaries: `explicit` (`--pg-bin` / `postgres.pg_bin`), then
/// `pg_config --bindir`, then PATH, then the newest `/usr/lib/postgresql/*/bin`.
pub async fn find_binaries(explicit: Option<&Path>, cancel: &CancellationToken) -> Result<PgBin> {
    if let Some(dir) = explicit {
        if !dir.join("initdb").is_file() {
            return Err(ErrorKind::ArgumentsInvalid.error(format!(
                "--pg-bin {} holds no initdb: point it at a PostgreSQL bin directory such as /usr/lib/postgresql/15/bin",
                dir.display()
            )));
        }
        return describe_binaries(dir, cancel).await;
    }
    for dir in candidate_dirs(cancel).await {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return describe_binaries(&dir, cancel).await;
        }
    }
    Err(ErrorKind::ServerBinariesMissing.error(
        "no PostgreSQL server binaries found (looked for initdb via pg_config --bindir, PATH and /usr/lib/postgresql/*/bin): \
         install them with `sudo apt-get install postgresql-15` (or `make deps`), or pass --pg-bin DIR",
    ))
}

/// Finds the client tools alone (`pg_restore`, `psql`), for a server that is
/// not ours (url backend): same search order as `find_binaries`.
pub async fn find_client_binaries(explicit: Option<&Path>, cancel: &CancellationToken) -> Result<PgBin> {
    let has_clients = |dir: &Path| dir.join("pg_restore").is_file() && dir.join("psql").is_file();
    let dirs = match explicit {
        Some(dir) => vec![dir.to_path_buf()],
        None => candidate_dirs(cancel).await,
    };
    match dirs.into_iter().find(|d| has_clients(d)) {
        Some(dir) => describe_tool(&dir, "pg_restore", cancel).await,
        None => Err(ErrorKind::ServerBinariesMissing.error(
            "the url backend restores with the local pg_restore and psql, and none were found \
             (looked in --pg-bin, pg_config --bindir, PATH and /usr/lib/postgresql/*/bin): \
             install them with `sudo apt-get install postgresql-client-15`, or pass --pg-bin DIR",
        )),
    }
}

/// Every directory that holds server binaries, in search order (for `rehearse doctor`).
pub async fn all_binaries(cancel: &CancellationToken) -> Vec<PgBin> {
    // /usr/local/bin/initdb may be a link into /usr/lib/postgresql/15/bin: one install, listed once.
    let real = |dir: &Path| dir.join("initdb").canonicalize().ok();
    let mut found: Vec<PgBin> = Vec::new();
    for dir in candidate_dirs(cancel).await {
        if real(&dir).is_some() && !found.iter().any(|b| real(&b.dir) == real(&dir)) {
            if let Ok(bin) = describe_binaries(&dir, cancel).await {
                found.push(bin);
            }
        }
    }
    found
}

pub(super) async fn candidate_dirs(cancel: &CancellationToken) -> Vec<PathBuf> {
    let path_only = std::env::var(SEARCH_ENV).is_ok_and(|v| v == "path");
    let mut dirs = Vec::new();
    if path_only {
        dirs.extend(std::env::var_os("PATH").iter().flat_map(std::env::split_paths));
        return dirs;
    }
    if let Ok(out) = ChildCommand::new("pg_config").arg("--bindir").deadline(Duration::from_secs(10)).run(cancel).await
    {
        dirs.push(PathBuf::from(out.stdout.trim()));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    dirs.extend(versioned.into_iter().map(|(_, d)| d));
    dirs
}

pub(super) async fn describe_binaries(dir: &Path, cancel: &CancellationToken) -> Result<PgBin> {
    describe_tool(dir, "initdb", cancel).await
}

pub(super) async fn describe_tool(dir: &Path, tool: &str, cancel: &CancellationToken) -> Result<PgBin> {
    let out = ChildCommand::new(dir.join(tool))
        .arg("--version")
        .deadline(Duration::from_secs(10))
        .run(cancel)
        .await
        .map_err(|e| Error::environment_because(format!("cannot run {}/{tool} --version", dir.display()), e))?;
    // "initdb (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let version =
        out.stdout.split(") ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap_or("").to_string();
    let major = version.split('.').next().and_then(|m| m.parse().ok()).ok_or_else(|| {
        Error::environment(format!(
            "cannot tell the version of {}/{tool} from its output `{}`",
            dir.display(),
            out.stdout.trim()
        ))
    })?;
    Ok(PgBin { dir: dir.to_path_buf(), version, major })
}
