//! What `destroy` needs, on disk while the clone may exist, and the secrets it redacts.

use super::*;

/// What `destroy` needs, on disk while the clone may exist.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    /// The run that made the clone: `rehearse cleanup` leaves a live run's clone alone.
    pub pid: u32,
    pub host: String,
    /// REHEARSE_CLONE_NAME, given to `create`; the id when it prints none.
    pub name: String,
    /// The scenario's folder, where `destroy` runs.
    pub dir: PathBuf,
    pub destroy: String,
    pub timeout_ms: u64,
    /// What `create` printed: the URL (with its password) and the id; empty until it printed them.
    pub url: String,
    pub id: Option<String>,
    /// Databases rehearse made on the clone's server (race, drift), dropped before `destroy`.
    pub copies: Vec<String>,
    /// `postgres.clone.password_command`: the password for `url` when it has
    /// none, run again by `rehearse cleanup` to drop the copies. The command,
    /// never a password it printed.
    #[serde(default)]
    pub password_command: Option<String>,
}

impl Marker {
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }

    /// Whether `create` printed anything that says it made a clone.
    pub fn made(&self) -> bool {
        !self.url.is_empty() || self.id.is_some()
    }

    /// The marker at `path`, if it is one.
    pub fn read(path: &Path) -> Option<Marker> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    /// Writes the marker, readable by this user only (it holds the URL's password).
    pub(super) fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a marker serializes");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| {
                Error::environment_because(
                    format!("cannot write the clone's marker {}: check that TMPDIR is writable", path.display()),
                    e,
                )
            })
    }

    /// `text` without the URL's password.
    pub fn redact(&self, text: &str) -> String {
        secrets(&self.url).iter().fold(text.to_string(), |t, s| t.replace(s.as_str(), "********"))
    }
}

/// Marker files in `temp_dir`, for `rehearse cleanup`.
pub fn markers(temp_dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(temp_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(MARKER_PREFIX) && n.ends_with(".json")
                })
        })
        .collect();
    found.sort();
    found
}

/// The password of `url`, as parsed and as written in it (percent-encoded).
pub(super) fn secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    found.extend(url::password_of(url).map(|p| p.expose().to_string()));
    let written = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(auth, _)| auth.split_once(':').map(|(_, password)| password.to_string()));
    found.extend(written);
    found.retain(|s| !s.is_empty());
    found
}
