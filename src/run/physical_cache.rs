//! The snapshot cache for a physical copy: the entry is the recovered and
//! promoted copy, keyed by what makes it what it is, read before anything
//! is copied: the backup's identity (its `backup_label`: label, start LSN,
//! checkpoint, start time and timeline; and `backup_manifest`'s checksum),
//! the recovery target and the archive it reads, and the exact version of
//! the binaries it is recovered with. A hit starts from the entry instead
//! of copying the backup and replaying its WAL again. `physical.restore`
//! and a `latest` target are never cached (`PhysicalPlan::uncached`).

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::snapshot::{self, SnapshotPlan};
use crate::backend::cache::{CacheKey, Entry, SnapshotCache};
use crate::backend::local::{all_binaries, LocalCluster};
use crate::backend::{BackendPlan, PgBin};
use crate::error::{Error, Result};
use crate::plan::physical::{BackupLayout, BaseBackup, PhysicalPlan, PhysicalSource};
use crate::plan::Plan;
use crate::report::{PhysicalInfo, RestoreInfo};
use crate::restore::physical as backup;

/// The cache key and entry for this backup; None when the source is not
/// cached or the backup's label cannot be read before the copy (the copy
/// then says what is wrong with it).
pub(super) async fn plan(
    plan: &Plan,
    physical: &PhysicalPlan,
    cache: &SnapshotCache,
    cancel: &CancellationToken,
) -> Option<SnapshotPlan> {
    let (PhysicalSource::BaseBackup(base), BackendPlan::Local { bin }) = (&physical.source, &plan.backend) else {
        return None;
    };
    let identity = identity(physical, base, cancel).await?;
    let (hit, binaries) = match lookup(cache, &identity, bin, physical.pg_bin_named, cancel).await {
        Some((entry, found)) => (Some(entry), Some(found)),
        None => (None, None),
    };
    let server_version = binaries.as_ref().unwrap_or(bin).version.clone();
    Some(SnapshotPlan {
        cache: cache.clone(),
        key: CacheKey::new(&identity, &server_version),
        dump_sha256: identity,
        dump_path: physical.shown(),
        server_version,
        hit,
        binaries,
    })
}

/// The plan keyed for the binaries the copy was really recovered with (the
/// backup's PG_VERSION picks them, once it is copied).
pub(super) fn recovered_on(s: &SnapshotPlan, bin: &PgBin) -> SnapshotPlan {
    SnapshotPlan { key: CacheKey::new(&s.dump_sha256, &bin.version), server_version: bin.version.clone(), ..s.clone() }
}

/// A sha256 of the backup's `backup_label` and manifest checksum, the
/// recovery target and the archive's `restore_command`: a new backup has a
/// new start LSN and time, another target or archive recovers another copy.
async fn identity(physical: &PhysicalPlan, base: &BaseBackup, cancel: &CancellationToken) -> Option<String> {
    let (label, manifest) = match &base.layout {
        BackupLayout::Plain => {
            (backup::label_text(&base.path, false, cancel).await?, base.path.join("backup_manifest"))
        }
        BackupLayout::Tar { base: tar, .. } => {
            let dir = tar.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
            (backup::label_text(tar, true, cancel).await?, dir.join("backup_manifest"))
        }
    };
    let checksum = backup::manifest_checksum(&manifest).unwrap_or_default();
    let target = physical.target.kind().to_string();
    let parts = [
        "physical",
        label.as_str(),
        checksum.as_str(),
        target.as_str(),
        physical.target.value().unwrap_or(""),
        physical.restore_command.as_deref().unwrap_or(""),
    ];
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
        h.update("\n");
    }
    Some(format!("{:x}", h.finalize()))
}

/// The entry for this backup recovered on the binaries the copy would pick
/// (`physical::matching_binaries`): the plan's, or, unless `--pg-bin` named
/// them, the first installed ones of each other major version. The
/// backup's major version is known only once it is copied (a tar's
/// PG_VERSION may sit anywhere in it), so each candidate's key is tried.
async fn lookup(
    cache: &SnapshotCache,
    identity: &str,
    bin: &PgBin,
    named: bool,
    cancel: &CancellationToken,
) -> Option<(Entry, PgBin)> {
    let found =
        |b: &PgBin| cache.lookup(&CacheKey::new(identity, &b.version)).filter(|e| e.manifest.physical.is_some());
    if let Some(entry) = found(bin) {
        return Some((entry, bin.clone()));
    }
    if named {
        return None;
    }
    let mut majors = vec![bin.major];
    for other in all_binaries(cancel).await {
        if majors.contains(&other.major) {
            continue;
        }
        majors.push(other.major);
        if let Some(entry) = found(&other) {
            return Some((entry, other));
        }
    }
    None
}

/// A copy and recovery the snapshot cache made unnecessary.
pub(super) struct PhysicalHit {
    pub restore: RestoreInfo,
    pub physical: PhysicalInfo,
}

impl crate::pipeline::Summary for PhysicalHit {
    fn summary(&self) -> String {
        "cache hit: nothing copied or replayed".into()
    }
}

/// The started entry as the rehearsal's copy: its database checked (the
/// scenario's `database:` is not part of the key), and the backup's facts
/// as they were when the entry was made.
pub(super) async fn restored_from(
    entry: &Entry,
    cluster: &mut LocalCluster,
    plan: &PhysicalPlan,
    cancel: &CancellationToken,
) -> Result<PhysicalHit> {
    let mut physical = entry.manifest.physical.clone().ok_or_else(|| {
        Error::environment(format!(
            "the snapshot cache entry {} holds no physical copy: run `rehearse cache prune` or --no-cache",
            entry.dir.display()
        ))
    })?;
    physical.databases = super::physical::use_databases(cluster, &plan.database, cancel).await?;
    physical.database = plan.database.clone();
    physical.source = plan.shown();
    Ok(PhysicalHit { restore: snapshot::restored_from(entry).0, physical })
}
