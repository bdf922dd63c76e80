//! The snapshot cache in a run: the dump's identity (size and sha256, read
//! once, in the background unless the cache needs it first), the entry for
//! this dump and server, and saving a fresh restore into the cache.

use std::path::Path;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::cache::{self, CacheKey, SnapshotCache};
use crate::backend::{BackendPlan, PgBin, Throwaway};
use crate::error::{Error, Result};
use crate::pipeline::events::{Event, EventSink};
use crate::plan::Plan;
use crate::report::{CacheStatus, PhysicalInfo, RestoreInfo};
use crate::restore;

/// Reading the dump's size and sha256 on a blocking thread.
type Hashing = JoinHandle<std::io::Result<(u64, String)>>;

/// The dump's size and sha256, being read or read.
pub struct DumpIdentity {
    task: tokio::sync::Mutex<Option<Hashing>>,
    done: tokio::sync::OnceCell<Option<(u64, String)>>,
}

impl DumpIdentity {
    /// Starts reading the dump on a blocking thread (none on the clone
    /// backend: nothing to read); a signal stops the reading, and the
    /// identity is then unknown.
    pub fn start(dump: Option<&Path>, cancel: &CancellationToken) -> DumpIdentity {
        let task = dump.map(|dump| {
            let (dump, cancel) = (dump.to_path_buf(), cancel.clone());
            tokio::task::spawn_blocking(move || restore::fingerprint(&dump, &cancel))
        });
        DumpIdentity { task: tokio::sync::Mutex::new(task), done: tokio::sync::OnceCell::new() }
    }

    /// The size and sha256, once read; None when the dump could not be read.
    pub async fn get(&self) -> Option<&(u64, String)> {
        self.done
            .get_or_init(|| async {
                match self.task.lock().await.take() {
                    Some(task) => task.await.ok().and_then(|r| r.ok()),
                    None => None,
                }
            })
            .await
            .as_ref()
    }
}

/// The snapshot cache for this run: its key, and the entry when there is one.
#[derive(Clone)]
pub struct SnapshotPlan {
    pub cache: SnapshotCache,
    pub key: CacheKey,
    pub dump_sha256: String,
    /// The dump as the report names it, for the entry's manifest.
    pub dump_path: String,
    pub server_version: String,
    pub hit: Option<cache::Entry>,
    /// A physical copy's hit: the installed binaries it was recovered with.
    pub binaries: Option<PgBin>,
}

/// The cache key and entry for this run; None when the dump or the server's
/// identity cannot be read (the run goes on without the cache).
pub async fn plan(
    plan: &Plan,
    cache: &SnapshotCache,
    dump: &DumpIdentity,
    cancel: &CancellationToken,
) -> Option<SnapshotPlan> {
    let (_, sha) = dump.get().await?;
    let server_version = match &plan.backend {
        BackendPlan::Docker(p) => crate::backend::docker::image_identity(&p.image, cancel).await.ok()?,
        _ => plan.server_version.clone(),
    };
    let key = CacheKey::new(sha, &server_version);
    let mut hit = cache.lookup(&key);
    if let Some(image) = hit.as_ref().and_then(|e| e.manifest.image.clone()) {
        if !crate::backend::docker::snapshot_image_holds(&image, &key.hex, cancel).await {
            // The image was removed or replaced behind the cache's back: restore again.
            cache.remove(hit.as_ref().expect("checked above"));
            hit = None;
        }
    }
    let dump_path = plan.dump.as_ref().map(|d| d.path.display().to_string()).unwrap_or_default();
    Some(SnapshotPlan {
        cache: cache.clone(),
        key,
        dump_sha256: sha.clone(),
        dump_path,
        server_version,
        hit,
        binaries: None,
    })
}

/// A restore the snapshot cache made unnecessary.
pub struct CacheHit(pub RestoreInfo);

impl crate::pipeline::Summary for CacheHit {
    fn summary(&self) -> String {
        "cache hit".into()
    }
}

/// The restore's facts for a run started from the cache.
pub fn restored_from(entry: &cache::Entry) -> CacheHit {
    let made = std::time::UNIX_EPOCH + Duration::from_secs(entry.manifest.created);
    CacheHit(RestoreInfo {
        cache: Some(CacheStatus::Hit),
        cache_key: Some(entry.manifest.key.clone()),
        jobs: entry.manifest.jobs,
        roles_created: entry.manifest.roles_created.clone(),
        cached_restore_ms: Some(entry.manifest.restore_ms),
        restored_at: Some(humantime::format_rfc3339_seconds(made).to_string()),
        ..RestoreInfo::default()
    })
}

/// Saves the fresh restore (or recovered physical copy) into the cache. A
/// failure to save is a note, not the run's failure: the rehearsal goes on
/// with the server as it is.
pub async fn save(
    server: &mut Throwaway,
    s: &SnapshotPlan,
    (restored, physical): (&RestoreInfo, Option<&PhysicalInfo>),
    events: &dyn EventSink,
    cancel: &CancellationToken,
) -> Result<CacheStatus> {
    Ok(match seal(server, s, (restored, physical), cancel).await {
        Ok(()) => CacheStatus::Saved,
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(e) => {
            events.emit(Event::Note(format!("the snapshot cache was not updated: {}", e.render())));
            CacheStatus::NotSaved
        }
    })
}

/// Stops the server, copies its data dir (or commits its container) into
/// the cache, starts it again, and seals the entry.
async fn seal(
    server: &mut Throwaway,
    s: &SnapshotPlan,
    (r, physical): (&RestoreInfo, Option<&PhysicalInfo>),
    cancel: &CancellationToken,
) -> Result<()> {
    let staging = s.cache.staging_dir(&s.key)?;
    let image = match server.save_snapshot(&staging, &s.key.hex, cancel).await {
        Ok(image) => image,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let manifest = cache::Manifest {
        key: s.key.hex.clone(),
        dump_path: s.dump_path.clone(),
        dump_sha256: s.dump_sha256.clone(),
        server_version: s.server_version.clone(),
        created: cache::now_secs(),
        files: 0,
        bytes: image.as_ref().map_or(0, |(_, bytes)| *bytes),
        password: server.password().expose().to_string(),
        roles_created: r.roles_created.clone(),
        restore_ms: r.duration_ms,
        jobs: r.jobs,
        image: image.map(|(id, _)| id),
        physical: physical.cloned(),
    };
    s.cache.seal(&staging, manifest).map(|_| ())
}
