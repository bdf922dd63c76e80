//! The pipeline: provision → restore → prepare → discover → rehearse each →
//! report. Whatever happens after provisioning, the throwaway server is
//! cleaned up (or kept, with `--keep`) and a report is written.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::backend::Throwaway;
use crate::backup;
use crate::cache::{self, CacheKey, SnapshotCache};
use crate::catalog;
use crate::db;
use crate::deadline::Deadline;
use crate::destructive;
use crate::error::{exit, Error, Result};
use crate::events::{Event, EventSink, Stage};
use crate::hazards;
use crate::migrations::{Migration, MigrationSource, OfflineSql, Target};
use crate::observe::{self, Observers};
use crate::plan::Plan;
use crate::prepare;
use crate::recovery;
use crate::report::{self, MigrationReport, MigrationStatus, Report, RunStatus, Setting, StageTime, Wal};
use crate::restore;
use crate::signals::Supervisor;

/// What a run produced: the report, the files written, and the exit code.
pub struct Outcome {
    pub report: Report,
    pub exit_code: i32,
    /// The terminal table, when the `table` format was asked for.
    pub table: Option<String>,
    pub files: Vec<PathBuf>,
    /// How to reach the server left running by `--keep`.
    pub kept: Option<String>,
    /// Why the run stopped early, if it did.
    pub error: Option<Error>,
}

/// Runs a resolved plan. Never returns early without cleaning up.
pub async fn run(plan: &Plan, events: &dyn EventSink, sup: &Supervisor) -> Outcome {
    let started = Instant::now();
    let cancel = sup.token();
    let mut report = new_report(plan);
    let dump = plan.dump.clone();
    // The dump's size and sha256 for the report, read once: in the
    // background, unless the snapshot cache needs the checksum first.
    let hashing = tokio::task::spawn_blocking(move || restore::fingerprint(&dump));
    let (fingerprint, snapshot) = match &plan.cache {
        Some(cache) => {
            let fingerprint = hashing.await.ok().and_then(|r| r.ok());
            let snapshot = match &fingerprint {
                Some((_, sha)) => snapshot_plan(plan, cache, sha, cancel).await,
                None => None,
            };
            (Fingerprint::Done(fingerprint), snapshot)
        }
        None => (Fingerprint::Running(hashing), None),
    };

    let mut stopped: Option<(Stage, Error)> = None;
    let mut kept = None;
    match MigrationSource::from_plan(&plan.migrations, plan.observe) {
        Err(e) => stopped = Some((Stage::Discover, e)),
        Ok(source) => {
            let t = Instant::now();
            events.emit(Event::StageStarted { stage: Stage::Provision, detail: report.postgres.backend.clone() });
            let provisioned = match snapshot.as_ref().and_then(|s| s.hit.as_ref()) {
                Some(entry) => {
                    interruptible(cancel, Throwaway::provision_from_snapshot(&plan.backend, entry, cancel)).await
                }
                None => interruptible(cancel, Throwaway::provision(&plan.backend, cancel)).await,
            };
            match provisioned {
                Err(e) => stopped = Some((Stage::Provision, e)),
                Ok(mut server) => {
                    finish_stage(events, &mut report, Stage::Provision, t, String::new());
                    let rehearsal =
                        rehearse(&mut server, &source, plan, snapshot.as_ref(), events, cancel, &mut report);
                    if let Err(failure) = rehearsal.await {
                        stopped = Some(failure);
                    }
                    let mut reporting = Stage::Report;
                    if plan.report.measure_backup && report.dump.database_bytes.is_some() && !cancel.is_cancelled() {
                        let t = Instant::now();
                        reporting = Stage::Backup;
                        events.emit(Event::StageStarted { stage: Stage::Backup, detail: "pg_dump -Fc".into() });
                        report.backup = Some(backup::measure(&server, cancel).await);
                        finish_stage(events, &mut report, Stage::Backup, t, String::new());
                    }
                    // A signal after the migrations still ends the run as interrupted,
                    // with the report saying where.
                    if stopped.is_none() && cancel.is_cancelled() {
                        stopped = Some((reporting, Error::Interrupted));
                    }
                    if plan.keep {
                        kept = Some(server.keep());
                    } else {
                        let t = Instant::now();
                        events.emit(Event::StageStarted {
                            stage: Stage::Cleanup,
                            detail: "stopping the throwaway server".into(),
                        });
                        match server.cleanup().await {
                            Ok(()) => finish_stage(events, &mut report, Stage::Cleanup, t, String::new()),
                            Err(e) => events.emit(Event::Note(e.render())),
                        }
                    }
                }
            }
        }
    }

    if let Some((bytes, sha)) = fingerprint.finish().await {
        report.dump.bytes = bytes;
        report.dump.sha256 = Some(sha);
    }
    // The report stage: the model and every format rendered once to time
    // them, then written with that time in (JSON rendered again: milliseconds).
    let t = Instant::now();
    events.emit(Event::StageStarted { stage: Stage::Report, detail: report_detail(plan) });
    finish_report(plan, &mut report, stopped.as_ref(), started.elapsed());
    let _ = report::render_all(&report, &plan.report.formats);
    finish_stage(events, &mut report, Stage::Report, t, String::new());
    let exit_code = match &stopped {
        Some((_, e)) => e.exit_code(),
        None => match report.status {
            RunStatus::Passed => exit::OK,
            RunStatus::BudgetExceeded => exit::BUDGET_BREACHED,
            RunStatus::Failed => exit::MIGRATION_FAILED,
            RunStatus::Interrupted => exit::INTERRUPTED,
        },
    };

    let mut error = stopped.map(|(_, e)| e);
    let files = match report::write_files(&report, &plan.report.dir, &plan.report.formats) {
        Ok(files) => files,
        Err(e) => {
            error.get_or_insert(e);
            Vec::new()
        }
    };
    let table =
        plan.report.formats.contains(&crate::scenario::ReportFormat::Table).then(|| report::render_table(&report));
    Outcome { exit_code: error.as_ref().map(Error::exit_code).unwrap_or(exit_code), report, table, files, kept, error }
}

fn report_detail(plan: &Plan) -> String {
    let formats: Vec<String> = plan.report.formats.iter().map(|f| format!("{f:?}").to_lowercase()).collect();
    formats.join(", ")
}

/// The dump's size and sha256, being read or read.
enum Fingerprint {
    Running(tokio::task::JoinHandle<std::io::Result<(u64, String)>>),
    Done(Option<(u64, String)>),
}

impl Fingerprint {
    async fn finish(self) -> Option<(u64, String)> {
        match self {
            Fingerprint::Running(task) => task.await.ok().and_then(|r| r.ok()),
            Fingerprint::Done(done) => done,
        }
    }
}

/// The snapshot cache for this run: its key, and the entry when there is one.
struct SnapshotPlan {
    cache: SnapshotCache,
    key: CacheKey,
    dump_sha256: String,
    server_version: String,
    hit: Option<cache::Entry>,
}

/// The cache key and entry for this run; None when the server's identity
/// cannot be read (the run goes on without the cache).
async fn snapshot_plan(
    plan: &Plan,
    cache: &SnapshotCache,
    sha: &str,
    cancel: &CancellationToken,
) -> Option<SnapshotPlan> {
    let server_version = match &plan.backend {
        crate::plan::BackendPlan::Docker(p) => crate::backend::docker::image_identity(&p.image, cancel).await.ok()?,
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
    Some(SnapshotPlan { cache: cache.clone(), key, dump_sha256: sha.to_string(), server_version, hit })
}

/// Restore, prepare, discover and rehearse on a provisioned server.
async fn rehearse(
    server: &mut Throwaway,
    source: &MigrationSource,
    plan: &Plan,
    snapshot: Option<&SnapshotPlan>,
    events: &dyn EventSink,
    cancel: &CancellationToken,
    report: &mut Report,
) -> Result<(), (Stage, Error)> {
    let conn = server.conn().clone();
    let ready = Duration::from_secs(30);

    let t = Instant::now();
    let stage = Stage::Restore;
    if let Some(entry) = snapshot.and_then(|s| s.hit.as_ref()) {
        events
            .emit(Event::StageStarted { stage, detail: format!("from the snapshot cache ({})", entry.dir.display()) });
        report.restore.cache = Some("hit".into());
        report.restore.cache_key = Some(entry.manifest.key.clone());
        report.restore.jobs = entry.manifest.jobs;
        report.restore.roles_created = entry.manifest.roles_created.clone();
        report.restore.cached_restore_ms = Some(entry.manifest.restore_ms);
        let made = std::time::UNIX_EPOCH + Duration::from_secs(entry.manifest.created);
        report.restore.restored_at = Some(humantime::format_rfc3339_seconds(made).to_string());
        finish_stage(events, report, stage, t, "cache hit".into());
    } else {
        events.emit(Event::StageStarted {
            stage,
            detail: format!("{} ({:?}, {} job(s))", plan.dump.display(), plan.dump_format, plan.restore_jobs),
        });
        let admin = interruptible(cancel, prepare::fast_restore_settings(server, "rehearse-admin", cancel))
            .await
            .map_err(|e| (stage, e))?;
        let restored = interruptible(
            cancel,
            restore::restore(server, &admin, &plan.dump, plan.dump_format, plan.restore_jobs, cancel),
        )
        .await
        .map_err(|e| (stage, e))?;
        report.restore.duration_ms = millis(restored.duration);
        report.restore.jobs = restored.jobs;
        report.restore.roles_created = restored.roles_created;
        report.restore.restored_at = Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string());
        finish_stage(events, report, stage, t, String::new());

        let t = Instant::now();
        let stage = Stage::Analyze;
        events.emit(Event::StageStarted { stage, detail: "VACUUM ANALYZE, CHECKPOINT".into() });
        interruptible(cancel, prepare::settle(server, &admin, plan.restore_jobs)).await.map_err(|e| (stage, e))?;
        drop(admin);
        finish_stage(events, report, stage, t, String::new());

        if let Some(s) = snapshot {
            let t = Instant::now();
            let stage = Stage::Snapshot;
            events.emit(Event::StageStarted { stage, detail: format!("saving to {}", s.cache.root().display()) });
            report.restore.cache_key = Some(s.key.hex.clone());
            report.restore.cache = Some(match save_snapshot(server, s, report, cancel).await {
                Ok(()) => "saved".into(),
                Err(Error::Interrupted) => return Err((stage, Error::Interrupted)),
                Err(e) => {
                    events.emit(Event::Note(format!("the snapshot cache was not updated: {}", e.render())));
                    "not saved".into()
                }
            });
            finish_stage(events, report, stage, t, String::new());
        }
    }

    let t = Instant::now();
    let stage = Stage::Prepare;
    events.emit(Event::StageStarted { stage, detail: "prod-like settings".into() });
    let admin = db::connect_when_ready(&conn, &conn.dbname, "rehearse-admin", ready).await.map_err(|e| (stage, e))?;
    interruptible(cancel, prepare::apply_settings(server, &admin, &plan.settings, cancel))
        .await
        .map_err(|e| (stage, e))?;
    drop(admin);
    let observer = prepare::reconnect(server, "rehearse-observer").await.map_err(|e| (stage, e))?;
    let env = |e| (stage, Error::environment_because("cannot read the restored database's catalog", e));
    report.postgres.version = Some(catalog::server_version(&observer).await.map_err(env)?);
    report.postgres.settings = catalog::settings(&observer, &prepare::REPORTED[1..])
        .await
        .map_err(env)?
        .into_iter()
        .map(|(name, value)| Setting { name, value })
        .collect();
    report.dump.tables = catalog::table_sizes(&observer)
        .await
        .map_err(env)?
        .into_iter()
        .map(|t| report::TableInfo { name: t.name, rows: t.rows, bytes: t.bytes })
        .collect();
    report.dump.database_bytes = Some(catalog::database_size(&observer).await.map_err(env)?);
    finish_stage(events, report, stage, t, String::new());

    let t = Instant::now();
    let stage = Stage::Discover;
    events.emit(Event::StageStarted { stage, detail: format!("pending {} migrations", source.tool()) });
    let runner =
        db::connect_when_ready(&conn, &conn.dbname, "rehearse-migration", ready).await.map_err(|e| (stage, e))?;
    let target = Target { client: &runner, conn: &conn, cancel };
    let pending = source.pending(&target).await.map_err(|e| (stage, e))?;
    report.migrations = pending.iter().map(new_migration_report).collect();
    finish_stage(events, report, stage, t, format!("{} pending", pending.len()));
    if pending.is_empty() {
        events.emit(Event::Note("no pending migrations: the restored database already has every migration".into()));
    }

    let t = Instant::now();
    let stage = Stage::Rehearse;
    let largest: Vec<String> = report.dump.tables.iter().map(|t| t.name.clone()).collect();
    let observers = Observers::connect(&conn, plan.sample_interval, &plan.hot_tables, &largest, plan.observe)
        .await
        .map_err(|e| (stage, e))?;
    report.observation.hot_tables = observers.hot_tables.clone();
    report.observation.limitations = server.limitations().to_vec();
    report.observation.limitations.extend(observers.limitations.iter().cloned());
    let own_session = source.runs_in_own_session().then_some(&runner);
    let total = pending.len();
    for (i, migration) in pending.iter().enumerate() {
        events.emit(Event::MigrationStarted { index: i + 1, total, id: migration.id.clone() });
        let observing = observers.begin().await.map_err(|e| (stage, e))?;
        let deadline = Deadline::start(cancel, plan.budgets.deadline(&migration.id));
        let mut applied = source.apply(migration, &Target { cancel: deadline.token(), ..target }).await;
        let timed_out = applied.interrupted && deadline.expired() && !cancel.is_cancelled();
        if timed_out {
            deadline.explain(&mut applied.error);
        }
        let observed =
            observers.finish(observing, own_session, &mut applied.statements).await.map_err(|e| (stage, e))?;
        // A migration's session settings (SET lock_timeout, search_path, ...)
        // must not leak into the next one.
        let _ = runner.batch_execute("RESET ALL /*rehearse*/").await;
        let m = &mut report.migrations[i];
        m.duration_ms = millis(applied.duration);
        m.startup_ms = applied.startup.map(millis);
        m.statements = applied.statements;
        let (before, after) = observe::fill(m, observed);
        m.status = match (&applied.error, applied.interrupted) {
            (_, true) if timed_out => MigrationStatus::TimedOut,
            (_, true) => MigrationStatus::Interrupted,
            (Some(_), false) => MigrationStatus::Failed,
            (None, false) => MigrationStatus::Applied,
        };
        m.error = applied.error;
        m.hazards = hazards::check(m, &before);
        m.destructive_changes = destructive::detect(m);
        plan.budgets.judge_migration(m);
        if matches!(m.status, MigrationStatus::Failed | MigrationStatus::TimedOut) {
            m.recovery = Some(recovery::assess(observers.observer(), &before, &after, m, source.tool()).await);
        }
        events.emit(Event::MigrationFinished {
            index: i + 1,
            total,
            id: migration.id.clone(),
            status: m.status,
            elapsed: applied.duration,
        });
        if applied.interrupted && !timed_out {
            return Err((stage, Error::Interrupted));
        }
        if matches!(m.status, MigrationStatus::Failed | MigrationStatus::TimedOut) {
            break;
        }
    }
    finish_stage(events, report, stage, t, String::new());
    Ok(())
}

/// Stops the server, copies its data dir into the cache, starts it again.
async fn save_snapshot(
    server: &mut Throwaway,
    s: &SnapshotPlan,
    report: &Report,
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
        dump_path: report.dump.path.clone(),
        dump_sha256: s.dump_sha256.clone(),
        server_version: s.server_version.clone(),
        created: cache::now_secs(),
        files: 0,
        bytes: image.as_ref().map_or(0, |(_, bytes)| *bytes),
        password: server.password().expose().to_string(),
        roles_created: report.restore.roles_created.clone(),
        restore_ms: report.restore.duration_ms,
        jobs: report.restore.jobs,
        image: image.map(|(id, _)| id),
    };
    s.cache.seal(&staging, manifest).map(|_| ())
}

/// A migration's report before it runs: skipped until it is applied.
fn new_migration_report(m: &Migration) -> MigrationReport {
    let (offline_sql, offline_sql_unavailable) = match &m.offline_sql {
        Some(OfflineSql::Sql(sql)) => (Some(sql.clone()), None),
        Some(OfflineSql::Unavailable(why)) => (None, Some(why.clone())),
        None => (None, None),
    };
    MigrationReport {
        id: m.id.clone(),
        description: m.description.clone(),
        version: m.version.clone(),
        file: m.file.as_ref().map(|f| f.display().to_string()),
        status: MigrationStatus::Skipped,
        duration_ms: 0,
        wal: Wal::default(),
        statements: Vec::new(),
        locks: Vec::new(),
        longest_read_block: None,
        longest_write_block: None,
        probes: Vec::new(),
        rewrites: Vec::new(),
        size_changes: Vec::new(),
        top_statements: Vec::new(),
        hazards: Vec::new(),
        budget_breaches: Vec::new(),
        error: None,
        startup_ms: None,
        offline_sql,
        offline_sql_unavailable,
        recovery: None,
        breaches: Vec::new(),
        destructive_changes: Vec::new(),
    }
}

/// Runs `work` unless the run is cancelled first; dropping `work` then
/// drops its children (kill_on_drop) and any half-made server (Drop backstop).
async fn interruptible<T>(cancel: &CancellationToken, work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        r = work => r,
        _ = cancel.cancelled() => Err(Error::Interrupted),
    }
}

fn finish_stage(events: &dyn EventSink, report: &mut Report, stage: Stage, started: Instant, detail: String) {
    let elapsed = started.elapsed();
    report.stages.push(StageTime { stage: stage.as_str().into(), duration_ms: millis(elapsed) });
    events.emit(Event::StageFinished { stage, elapsed, detail });
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn new_report(plan: &Plan) -> Report {
    Report {
        schema: report::SCHEMA.into(),
        rehearse_version: env!("CARGO_PKG_VERSION").into(),
        scenario: plan.name.clone(),
        status: RunStatus::Passed,
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        finished_at: None,
        stopped_at_stage: None,
        error: None,
        postgres: report::PostgresInfo {
            version: None,
            backend: plan.backend.name().into(),
            settings: Vec::new(),
            scenario_settings: plan
                .settings
                .iter()
                .map(|(n, v)| Setting { name: n.clone(), value: v.clone() })
                .collect(),
        },
        machine: report::MachineInfo {
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_bytes: memory_bytes(),
        },
        dump: report::DumpInfo {
            path: plan.dump.display().to_string(),
            format: Some(plan.dump_format),
            ..Default::default()
        },
        restore: Default::default(),
        stages: Vec::new(),
        migrations: Vec::new(),
        totals: Default::default(),
        budget_breaches: Vec::new(),
        observation: report::ObservationInfo {
            sample_interval_ms: millis(plan.sample_interval),
            hot_tables: Vec::new(),
            limitations: Vec::new(),
        },
        baseline: None,
        breaches: Vec::new(),
        budgets: plan.budgets.0.clone(),
        backup: None,
        checklist: Default::default(),
    }
}

fn finish_report(plan: &Plan, report: &mut Report, stopped: Option<&(Stage, Error)>, elapsed: Duration) {
    report.finished_at = Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string());
    let ms = &report.migrations;
    report.totals = report::Totals {
        duration_ms: ms.iter().map(|m| m.duration_ms).sum(),
        wal_bytes: ms.iter().map(|m| m.wal.bytes).sum(),
        applied: ms.iter().filter(|m| m.status == MigrationStatus::Applied).count(),
        failed: ms.iter().filter(|m| m.status == MigrationStatus::Failed).count(),
        skipped: ms.iter().filter(|m| m.status == MigrationStatus::Skipped).count(),
        run_duration_ms: millis(elapsed),
        timed_out: ms.iter().filter(|m| m.status == MigrationStatus::TimedOut).count(),
    };
    crate::gate::judge(plan, report);
    let migration_failed = report.migrations.iter().any(|m| m.status == MigrationStatus::Failed);
    let breached =
        !report.budget_breaches.is_empty() || report.migrations.iter().any(|m| !m.budget_breaches.is_empty());
    report.status = match stopped {
        Some((stage, e)) => {
            report.stopped_at_stage = Some(stage.as_str().into());
            if matches!(e, Error::Interrupted) {
                RunStatus::Interrupted
            } else {
                report.error = Some(e.to_string());
                RunStatus::Failed
            }
        }
        None if migration_failed => {
            report.stopped_at_stage = Some(Stage::Rehearse.as_str().into());
            RunStatus::Failed
        }
        None if breached => RunStatus::BudgetExceeded,
        None => RunStatus::Passed,
    };
    report.checklist = report::checklist::fill(report, &plan.report.checklist);
}

fn memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
