//! The snapshot cache: a restored and settled cluster (after restore,
//! VACUUM ANALYZE and CHECKPOINT, before the scenario's settings), kept so
//! re-running a release against the same dump starts in seconds instead of
//! restoring again. The local backend keeps a copy of the stopped data
//! directory in the entry; the docker backend a committed image of the
//! stopped container, which the entry names (`image`).
//!
//! An entry is keyed by the dump's sha256, the server's identity (the local
//! binaries' exact version, or the docker image's id) and the cache layout
//! version; anything else the scenario changes (settings, migrations) is
//! applied after the entry is used. A physical copy's entry (recovered, not
//! restored) is keyed the same way, with the backup's identity and recovery
//! target in the dump's place (`run::physical_cache`). An entry is complete only when its
//! `COMPLETE` file exists (written last), and its manifest records the data
//! dir's file count and bytes, so a half-written or truncated entry is
//! detected and rebuilt, never used (an image entry is checked against the
//! image instead: see `backend::docker::snapshot_image_holds`). Entries hold
//! production data and the cluster's password: private all the way down
//! (directories 0700, the files written here 0600; a data dir keeps
//! PostgreSQL's own 0700 and 0600).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::local::write_private;
use crate::error::{Error, Result};

/// Bump when the entry layout or what a cached cluster contains changes.
const LAYOUT: &str = "rehearse-snapshot-v1";
const COMPLETE: &str = "COMPLETE";
const MANIFEST: &str = "manifest.json";

/// What identifies a restored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub hex: String,
}

impl CacheKey {
    pub fn new(dump_sha256: &str, server_version: &str) -> CacheKey {
        let mut h = Sha256::new();
        h.update(format!("{LAYOUT}\n{dump_sha256}\n{server_version}\n"));
        CacheKey { hex: format!("{:x}", h.finalize())[..32].to_string() }
    }
}

/// What a cache entry records about the restore it saves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub key: String,
    pub dump_path: String,
    pub dump_sha256: String,
    pub server_version: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub files: u64,
    pub bytes: u64,
    /// The cached cluster's superuser password (replaced on every use).
    pub password: String,
    pub roles_created: Vec<String>,
    pub restore_ms: u64,
    pub jobs: u32,
    /// The docker backend's snapshot image id; None for a local data dir copy.
    #[serde(default)]
    pub image: Option<String>,
    /// A physical copy's backup and recovery, as its report said when the entry was made.
    #[serde(default)]
    pub physical: Option<crate::report::PhysicalInfo>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Entry {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

#[derive(Debug, Clone)]
pub struct SnapshotCache {
    root: PathBuf,
}

impl SnapshotCache {
    /// `$REHEARSE_CACHE_DIR`, else `$XDG_CACHE_HOME/rehearse/snapshots`, else
    /// `~/.cache/rehearse/snapshots` (the XDG base directory convention).
    pub fn locate() -> SnapshotCache {
        let root = std::env::var_os("REHEARSE_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("rehearse/snapshots")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/rehearse/snapshots")))
            .unwrap_or_else(|| std::env::temp_dir().join("rehearse-cache"));
        SnapshotCache { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ensure_root(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .and_then(|_| std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| {
                Error::environment_because(format!("cannot use the snapshot cache {}", self.root.display()), e)
            })
    }

    /// A complete, intact entry for `key`; a damaged one is removed.
    pub fn lookup(&self, key: &CacheKey) -> Option<Entry> {
        let dir = self.root.join(&key.hex);
        let entry = read_entry(&dir)?;
        let intact = match entry.manifest.image {
            Some(_) => true,
            None => measure(&entry.data_dir()).ok() == Some((entry.manifest.files, entry.manifest.bytes)),
        };
        if entry.manifest.key != key.hex || !intact {
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        }
        Some(entry)
    }

    /// Where a new entry's data goes before it is complete: private (0700)
    /// like the root, whatever the umask, since it holds production's data
    /// (the data dir copied in keeps PostgreSQL's own 0700 and 0600).
    pub fn staging_dir(&self, key: &CacheKey) -> Result<PathBuf> {
        self.ensure_root()?;
        let dir = self.root.join(format!("{}.partial-{}", key.hex, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::environment_because(format!("cannot write the snapshot cache {}", dir.display()), e))?;
        Ok(dir)
    }

    /// Seals a staged entry whose `data/` was copied in (or whose manifest
    /// names its image, with the image's size): manifest, rename, COMPLETE.
    pub fn seal(&self, staged: &Path, mut manifest: Manifest) -> Result<Entry> {
        let fail = |e: std::io::Error| Error::environment_because("cannot finish the snapshot cache entry", e);
        if manifest.image.is_none() {
            (manifest.files, manifest.bytes) = measure(&staged.join("data")).map_err(fail)?;
        }
        let text = serde_json::to_string_pretty(&manifest).expect("a manifest serializes");
        // The manifest holds the cached cluster's password: 0600, as COMPLETE.
        write_private(&staged.join(MANIFEST), &text)?;
        let dir = self.root.join(&manifest.key);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(staged, &dir).map_err(fail)?;
        write_private(&dir.join(COMPLETE), "")?;
        Ok(Entry { dir, manifest })
    }

    /// Removes an entry (one found unusable after `lookup`).
    pub fn remove(&self, entry: &Entry) {
        let _ = crate::sys::tree::remove_tree(&entry.dir);
    }

    /// Complete entries, newest first.
    pub fn list(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| read_entry(&e.path()))
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.manifest.created));
        entries
    }

    /// Removes entries older than `older_than`, then the oldest until the
    /// total is at most `max_bytes`, and any half-written leftovers.
    /// Returns what it removed.
    pub fn prune(&self, older_than: Option<Duration>, max_bytes: Option<u64>) -> Vec<Entry> {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut removed = Vec::new();
        let mut kept = Vec::new();
        for e in self.list() {
            let age = Duration::from_secs(now.saturating_sub(e.manifest.created));
            if older_than.is_some_and(|limit| age > limit) {
                removed.push(e);
            } else {
                kept.push(e);
            }
        }
        if let Some(max) = max_bytes {
            // Newest first: keep while under the limit.
            let mut total = 0u64;
            let mut still = Vec::new();
            for e in kept {
                if total + e.manifest.bytes <= max {
                    total += e.manifest.bytes;
                    still.push(e);
                } else {
                    removed.push(e);
                }
            }
            kept = still;
        }
        let _ = kept;
        for e in &removed {
            self.remove(e);
        }
        for leftover in std::fs::read_dir(&self.root).into_iter().flatten().flatten() {
            let name = leftover.file_name().to_string_lossy().into_owned();
            if name.contains(".partial-") {
                let _ = crate::sys::tree::remove_tree(&leftover.path());
            }
        }
        removed
    }
}

fn read_entry(dir: &Path) -> Option<Entry> {
    if !dir.join(COMPLETE).is_file() {
        return None;
    }
    let manifest: Manifest = serde_json::from_str(&std::fs::read_to_string(dir.join(MANIFEST)).ok()?).ok()?;
    Some(Entry { dir: dir.to_path_buf(), manifest })
}

/// Number of files and their total bytes under `dir`.
fn measure(dir: &Path) -> std::io::Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    Ok((files, bytes))
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_dump_and_version() {
        let a = CacheKey::new("abc", "15.18");
        assert_eq!(a, CacheKey::new("abc", "15.18"));
        assert_ne!(a, CacheKey::new("abd", "15.18"));
        assert_ne!(a, CacheKey::new("abc", "15.19"));
    }
}
