//! The physical source's stages, instead of restore and analyze: copy (the
//! backup into the private data directory, checked to be a base backup of
//! a version this machine has binaries for) and recovery (WAL replayed to
//! the target, the copy promoted, the rehearsed database found). No
//! ANALYZE: the statistics are production's own, in the backup.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::backend::local::{all_binaries, LocalCluster, RecoverySettings};
use crate::backend::Throwaway;
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{Pipeline, Stopped, Summary};
use crate::plan::physical::{BackupLayout, PhysicalPlan, PhysicalSource, RecoveryTarget};
use crate::report::{PhysicalInfo, PhysicalKind, RestoreInfo, Stage};
use crate::restore::physical::{self as backup, BackupLabel, Replayed};
use crate::sys::process::{ChildCommand, ChildError};

use super::physical_cache;
use super::snapshot::{self, SnapshotPlan};

/// The copy and the recovery, each a stage, then saved into the snapshot
/// cache when there is one; or, on a cache hit, the cached copy. Their facts
/// go into the report's `dump.physical`.
pub(super) async fn stages(
    p: &mut Pipeline<'_>,
    server: &mut Throwaway,
    plan: &PhysicalPlan,
    snapshot: Option<&SnapshotPlan>,
) -> Result<(), Stopped> {
    let c = &p.cancel().clone();
    if let Some(entry) = snapshot.and_then(|s| s.hit.as_ref()) {
        let detail = format!("from the snapshot cache ({})", entry.dir.display());
        let hit = p
            .stage(Stage::Restore, detail, async || {
                physical_cache::restored_from(entry, cluster(server)?, plan, c).await
            })
            .await?;
        (p.facts.restore, p.facts.physical) = (hit.restore, Some(hit.physical));
        return Ok(());
    }
    let detail = format!("{} into the private data directory", plan.shown());
    let copied = p.stage(Stage::Copy, detail, async || copy(plan, cluster(server)?, c).await).await?;
    let detail = match plan.target.value() {
        Some(value) => format!("WAL replayed to {} {value}, then promoted", plan.target.kind()),
        None => format!("WAL replayed to the {} point, then promoted", plan.target.kind()),
    };
    let recovered =
        p.stage(Stage::Recovery, detail, async || recover(plan, cluster(server)?, &copied, c).await).await?;
    let info = recovered.0;
    p.facts.restore = RestoreInfo {
        duration_ms: info.copy_ms + info.recovery_ms,
        restored_at: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
        ..RestoreInfo::default()
    };
    p.facts.physical = Some(info.clone());
    if let Some(s) = snapshot {
        save(p, server, s, &info).await?;
    }
    Ok(())
}

/// The recovered copy, saved into the snapshot cache under the key of the
/// binaries it was recovered with.
async fn save(
    p: &mut Pipeline<'_>,
    server: &mut Throwaway,
    s: &SnapshotPlan,
    info: &PhysicalInfo,
) -> Result<(), Stopped> {
    let (events, restore, c) = (p.events(), p.facts.restore.clone(), &p.cancel().clone());
    let detail = format!("saving to {}", s.cache.root().display());
    let saved = p
        .stage(Stage::Snapshot, detail, async || {
            let s = physical_cache::recovered_on(s, cluster(server)?.bin());
            let status = snapshot::save(server, &s, (&restore, Some(info)), events, c).await?;
            Ok(super::Fact((status, s.key.hex)))
        })
        .await?;
    let (status, key) = saved.0;
    (p.facts.restore.cache_key, p.facts.restore.cache) = (Some(key), Some(status));
    Ok(())
}

fn cluster(server: &mut Throwaway) -> Result<&mut LocalCluster> {
    server.local_cluster_mut().ok_or_else(|| Error::environment("a physical backup is recovered by the local backend"))
}

/// The backup, copied and checked.
struct Copied {
    kind: PhysicalKind,
    label: Option<BackupLabel>,
    end_lsn: Option<String>,
    pg_version: u32,
    bytes: u64,
    took: Duration,
}

impl Summary for Copied {
    fn summary(&self) -> String {
        format!("{}, PostgreSQL {}", crate::report::format_bytes(self.bytes), self.pg_version)
    }
}

async fn copy(plan: &PhysicalPlan, cluster: &mut LocalCluster, cancel: &CancellationToken) -> Result<Copied> {
    let started = Instant::now();
    let data = cluster.data_path();
    let shown = plan.shown();
    let (kind, manifest) = match &plan.source {
        PhysicalSource::BaseBackup(b) => match &b.layout {
            BackupLayout::Plain => {
                crate::backend::local::copy_tree(&b.path, &data, cancel).await?;
                (PhysicalKind::BasebackupPlain, data.join("backup_manifest"))
            }
            BackupLayout::Tar { base, wal, tablespaces } => {
                backup::extract(base, &data, cancel).await?;
                if let Some(wal) = wal {
                    backup::extract(wal, &data.join("pg_wal"), cancel).await?;
                }
                if !tablespaces.is_empty() {
                    backup::extract_tablespaces(tablespaces, &data, &cluster.tablespaces_path(), cancel).await?;
                }
                let dir = base.parent().map(Path::to_path_buf).unwrap_or_default();
                (PhysicalKind::BasebackupTar, dir.join("backup_manifest"))
            }
        },
        PhysicalSource::Restore(command) => {
            restore_command(command, cluster, cancel).await?;
            (PhysicalKind::RestoreCommand, data.join("backup_manifest"))
        }
    };
    backup::relocate_tablespace_links(&data, &cluster.tablespaces_path(), cancel).await?;
    cluster.claim_data_dir(cancel).await?;
    let pg_version = backup::check_base_backup(&data, &shown)?;
    if plan.restore_command.is_none() && !backup::has_wal(&data) {
        return Err(ErrorKind::BackupInvalid.error(format!(
            "{shown} holds no WAL (taken with -X none?), so the copy cannot reach a consistent point: take the \
             backup with `pg_basebackup -X stream` (or fetch), or give physical.restore_command to read the \
             WAL archive"
        )));
    }
    matching_binaries(plan, cluster, pg_version, cancel).await?;
    Ok(Copied {
        kind,
        label: BackupLabel::read(&data),
        end_lsn: backup::manifest_end_lsn(&manifest),
        pg_version,
        bytes: backup::tree_bytes(&data) + backup::tree_bytes(&cluster.tablespaces_path()),
        took: started.elapsed(),
    })
}

/// A backup tool's restore into the (empty, private) data directory, as the server's user.
async fn restore_command(command: &str, cluster: &LocalCluster, cancel: &CancellationToken) -> Result<()> {
    let data = cluster.data_path();
    std::fs::create_dir(&data)
        .map_err(|e| Error::environment_because(format!("cannot create {}", data.display()), e))?;
    cluster.claim_data_dir(cancel).await?;
    let program = command.split_whitespace().next().unwrap_or("").to_string();
    let command = command.replace("{datadir}", &data.display().to_string());
    ChildCommand::new("sh")
        .args(["-c", &command])
        .label(program.clone())
        .run_as(cluster.runs_as())
        .cwd(cluster.root())
        .deadline(Duration::from_secs(24 * 3600))
        .run(cancel)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            ChildError::Cancelled { .. } => Error::Interrupted,
            other => ErrorKind::BackupInvalid.because(
                format!("physical.restore (`{program} ...`) failed: run it by hand with an empty directory to see why"),
                other,
            ),
        })?;
    if std::fs::read_dir(&data).map(|mut d| d.next().is_none()).unwrap_or(true) {
        return Err(ErrorKind::BackupInvalid.error(format!(
            "physical.restore (`{program} ...`) exited 0 but wrote nothing into {{datadir}}: check that it \
             passes {{datadir}} where the tool takes the target directory (pgBackRest: --pg1-path={{datadir}})"
        )));
    }
    Ok(())
}

/// The binaries of the backup's major version: the plan's, or another
/// installed version when `--pg-bin` named none; otherwise exit 4.
async fn matching_binaries(
    plan: &PhysicalPlan,
    cluster: &mut LocalCluster,
    major: u32,
    cancel: &CancellationToken,
) -> Result<()> {
    let have = cluster.bin().clone();
    if have.major == major {
        return Ok(());
    }
    if !plan.pg_bin_named {
        if let Some(bin) = all_binaries(cancel).await.into_iter().find(|b| b.major == major) {
            return cluster.use_binaries(bin);
        }
    }
    let named = match plan.pg_bin_named {
        true => "the binaries --pg-bin (or postgres.pg_bin) names",
        false => "the only server binaries found",
    };
    Err(ErrorKind::ServerBinariesMissing.error(format!(
        "the backup {} is PostgreSQL {major} (its PG_VERSION), and {named} ({}) are PostgreSQL {}: a data \
         directory runs only on its own major version. Install PostgreSQL {major}'s server (`sudo apt-get install \
         postgresql-{major}`, from apt.postgresql.org) and pass --pg-bin /usr/lib/postgresql/{major}/bin",
        plan.shown(),
        have.dir.display(),
        have.version,
    )))
}

/// The recovered copy's facts.
struct Recovered(PhysicalInfo);

impl Summary for Recovered {
    fn summary(&self) -> String {
        match (&self.0.recovered_to, self.0.wal_replayed_bytes) {
            (Some(to), Some(bytes)) => format!("{} of WAL replayed, to {to}", crate::report::format_bytes(bytes)),
            (None, Some(bytes)) => format!("{} of WAL replayed", crate::report::format_bytes(bytes)),
            _ => String::new(),
        }
    }
}

async fn recover(
    plan: &PhysicalPlan,
    cluster: &mut LocalCluster,
    copied: &Copied,
    cancel: &CancellationToken,
) -> Result<Recovered> {
    let settings = RecoverySettings {
        target: match &plan.target {
            RecoveryTarget::Time(t) => Some(("recovery_target_time", t.clone())),
            RecoveryTarget::Lsn(l) => Some(("recovery_target_lsn", l.clone())),
            _ => None,
        },
        // `{datadir}` too: pgBackRest's archive-get checks its --pg1-path is the server's directory.
        restore_command: plan
            .restore_command
            .as_ref()
            .map(|c| c.replace("{datadir}", &cluster.data_path().display().to_string())),
        // Crash recovery replays the backup's own pg_wal to its end; the archive or a target needs archive recovery.
        archive_recovery: plan.restore_command.is_some() || plan.target.value().is_some(),
    };
    let started = Instant::now();
    let recovered = cluster.recover(&settings, cancel).await;
    let log = std::fs::read_to_string(cluster.log_path()).unwrap_or_default();
    if let Err(e) = recovered {
        let target = plan.target.value().unwrap_or("the end of the WAL");
        return Err(match e {
            Error::Interrupted => Error::Interrupted,
            e => match backup::refused_target(&log, target) {
                // The log's tail says what the server (and its restore_command) tried.
                Some(refused) => {
                    refused.context_after(format!("; server log:\n{}", crate::sys::text::last_lines(&log, 10)))
                }
                None => as_recovery_failure(e),
            },
        });
    }
    let databases = use_databases(cluster, &plan.database, cancel).await?;
    let replayed = Replayed::read(&log);
    let start_lsn = copied.label.as_ref().and_then(|l| l.start_lsn.clone());
    let wal_replayed_bytes = match (&start_lsn, &replayed.redo_end_lsn) {
        (Some(from), Some(to)) => {
            Some(backup::lsn_value(to).zip(backup::lsn_value(from)).map_or(0, |(t, f)| t.saturating_sub(f)))
        }
        _ => None,
    };
    Ok(Recovered(PhysicalInfo {
        kind: copied.kind,
        source: plan.shown(),
        pg_version: Some(copied.pg_version.to_string()),
        label: copied.label.as_ref().and_then(|l| l.label.clone()),
        started_at: copied.label.as_ref().and_then(|l| l.started_at.clone()),
        start_lsn,
        end_lsn: copied.end_lsn.clone(),
        target: plan.target.kind(),
        target_value: plan.target.value().map(str::to_string),
        recovered_to: replayed.last_transaction,
        redo_end_lsn: replayed.redo_end_lsn,
        wal_replayed_bytes,
        copied_bytes: copied.bytes,
        copy_ms: copied.took.as_millis() as u64,
        recovery_ms: started.elapsed().as_millis() as u64,
        databases,
        database: plan.database.clone(),
    }))
}

/// The server stopped during replay: the server log's tail is in the message already.
fn as_recovery_failure(e: Error) -> Error {
    match e {
        Error::Failed { kind: ErrorKind::ServerStartFailed, message, source } => {
            Error::Failed { kind: ErrorKind::RecoveryFailed, message, source }
        }
        other => other,
    }
}

/// Points the copy's sessions at its databases: the rehearsal at
/// `wanted`, rehearse's own at `postgres` when production kept it (else
/// template1). Returns the copy's databases (but the templates); exit 3
/// when `database:` is not one of them.
pub(super) async fn use_databases(
    cluster: &mut LocalCluster,
    wanted: &str,
    cancel: &CancellationToken,
) -> Result<Vec<String>> {
    cluster.rehearse_database(wanted);
    let conn = cluster.conn();
    let admin =
        crate::sys::db::connect_when_ready(conn, "template1", "rehearse-admin", Duration::from_secs(30), cancel)
            .await?;
    let names = crate::catalog::database_names(&admin)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot list the copy's databases", e))?;
    if !names.iter().any(|n| n == wanted) {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "`database: {wanted}` is not in the backup, which holds {}: name one of them",
            names.join(", ")
        )));
    }
    if names.iter().any(|n| n == "postgres") {
        cluster.use_admin_database("postgres");
    }
    Ok(names)
}
