//! What a run found out, as typed facts gathered stage by stage
//! ([`Rehearsal`]), and the one projection of them that is
//! `rehearse.report/v1` ([`build`]). Stages return their facts; none writes
//! into the report, which exists only once the facts are in.

use std::time::{Duration, SystemTime};

use super::checklist::{self, ChecklistSettings};
use super::load::{LoadInfo, LoadVerdict, MigrationLoad};
use super::model::*;
use crate::error::ErrorKind;
use crate::kinds::BackendKind;
use crate::pg::DumpFormat;

/// Everything a run established, in the order the stages established it.
#[derive(Debug, Clone)]
pub struct Rehearsal {
    /// What the plan says, before anything ran.
    pub planned: Planned,
    pub started_at: SystemTime,
    /// The stages that finished, in order, with their times.
    pub stages: Vec<StageTime>,
    /// Provision: where the clone backend's data came from.
    pub clone: Option<CloneSource>,
    /// Copy and recovery: the physical backup the data came from.
    pub physical: Option<super::PhysicalInfo>,
    /// Restore, or the snapshot cache it came from, and whether it was saved there.
    pub restore: RestoreInfo,
    /// Prepare: the server and the data restored into it.
    pub server: Option<ServerFacts>,
    /// The dump file's size and digest, once read (in the background).
    pub dump_file: Option<(u64, String)>,
    pub standby: Option<StandbyInfo>,
    /// Discover: where the migrations came from.
    pub sources: Vec<SourceReport>,
    /// Rehearse: what the observers watched, and what they could not.
    pub watched: Watched,
    /// The running app's queries before the first migration.
    pub compat: Option<CompatInfo>,
    /// Every pending migration, rehearsed or not (yet).
    pub migrations: Vec<MigrationFacts>,
    pub race: Option<super::RaceReport>,
    pub drift: Option<DriftReport>,
    pub backup: Option<BackupInfo>,
    /// Production's role and settings as reproduced (`production:`).
    pub production: Option<super::ProductionReport>,
    /// The managed platform's limits as applied (`postgres.platform`).
    pub platform: Option<super::PlatformReport>,
    pub isolation: Option<IsolationInfo>,
    /// The app's traffic replayed during each migration (`load:`).
    pub load: Option<LoadInfo>,
    /// The migrations cancelled part-way (`abort:`).
    pub abort: Vec<super::AbortReport>,
    /// The rollback release rehearsed after the release (`rollback:`).
    pub rollback: Option<super::RollbackFacts>,
    /// How the run ended; None while it runs.
    pub end: Option<End>,
    /// The gate's judgement of the whole run, once every fact is in.
    pub judgement: Judgement,
}

/// What the plan says, as the report shows it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub scenario: String,
    pub backend: BackendKind,
    /// The scenario's `postgres.settings`.
    pub scenario_settings: Vec<Setting>,
    pub dump_path: String,
    pub dump_format: Option<DumpFormat>,
    pub sample_interval_ms: u64,
    pub budgets: BudgetsInfo,
    pub hazard_ignores: Vec<HazardIgnoreEntry>,
    pub estimate: Option<EstimateInfo>,
    pub launch: Option<LaunchInfo>,
    pub checklist: ChecklistSettings,
    pub machine: MachineInfo,
}

/// The throwaway server and the data in it, after prepare.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// `server_version`, e.g. "15.18".
    pub version: String,
    /// Effective values of the settings the report shows.
    pub settings: Vec<Setting>,
    /// User tables, largest first.
    pub tables: Vec<TableInfo>,
    pub database_bytes: i64,
}

/// What the observers watched.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    pub hot_tables: Vec<String>,
    /// What could not be observed, and why.
    pub limitations: Vec<String>,
}

/// How the run ended.
#[derive(Debug, Clone)]
pub struct End {
    pub finished_at: SystemTime,
    /// Wall time of the whole run.
    pub run: Duration,
    /// The stage it stopped in, when it did not finish.
    pub stopped: Option<StoppedAt>,
}

#[derive(Debug, Clone)]
pub struct StoppedAt {
    pub stage: Stage,
    /// Why; None: a signal interrupted it.
    pub error: Option<StopError>,
}

/// The error that stopped a run, as the report shows it.
#[derive(Debug, Clone)]
pub struct StopError {
    pub kind: ErrorKind,
    /// The message with its causes.
    pub message: String,
}

/// What the gate judged of the whole run: every budget once, the baseline,
/// and the release at production's scale.
#[derive(Debug, Clone, Default)]
pub struct Judgement {
    /// Run-wide breaches (and `fail_on_regression`).
    pub breaches: Vec<Breach>,
    /// Each migration's breaches, in the order of [`Rehearsal::migrations`].
    pub migrations: Vec<Vec<Breach>>,
    pub baseline: Option<BaselineComparison>,
    pub unused_overrides: Vec<String>,
    pub unused_ignores: Vec<UnusedHazardIgnore>,
    /// The sum of the migrations' estimates.
    pub estimate: Option<Estimate>,
    /// Each migration's verdict under `load:` (same order as `migrations`).
    pub load_verdicts: Vec<Option<LoadVerdict>>,
}

/// One pending migration: what discovery found, what applying it did, what
/// the observers saw, what the running app's queries made of it, and what
/// was judged of all that.
#[derive(Debug, Clone)]
pub struct MigrationFacts {
    pub planned: PlannedMigration,
    /// None: not reached (skipped).
    pub applied: Option<AppliedMigration>,
    pub observed: Option<Observation>,
    pub compat: Option<CompatReport>,
    pub findings: Findings,
    /// What the app's traffic felt while it ran (`load:`).
    pub load: Option<MigrationLoad>,
}

/// A pending migration as discovery found it.
#[derive(Debug, Clone)]
pub struct PlannedMigration {
    pub id: String,
    pub app: Option<String>,
    pub kind: MigrationKind,
    pub description: String,
    pub version: String,
    pub file: Option<String>,
    pub offline_sql: Option<String>,
    pub offline_sql_unavailable: Option<String>,
}

/// What applying a migration did, as its tool (or rehearse) reported it.
#[derive(Debug, Clone)]
pub struct AppliedMigration {
    pub status: MigrationStatus,
    pub duration_ms: u64,
    pub startup_ms: Option<u64>,
    /// What the tool did after the release's last migration (Django's post_migrate handlers).
    pub post_migrate_ms: Option<u64>,
    pub statements: Vec<StatementReport>,
    pub error: Option<MigrationError>,
    /// Each try under `migrations.retry`; empty without it.
    pub attempts: Vec<Attempt>,
    /// Under `migrations.retry`: the time in failed tries and their pauses.
    pub retry_lost_ms: Option<u64>,
}

/// What the observers saw while a migration ran.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub wal: Wal,
    pub locks: Vec<LockReport>,
    pub longest_read_block: Option<BlockReport>,
    pub longest_write_block: Option<BlockReport>,
    pub probes: Vec<ProbeReport>,
    pub rewrites: Vec<Rewrite>,
    pub size_changes: Vec<Rewrite>,
    pub progress: Vec<ProgressReport>,
    pub top_statements: Vec<TopStatement>,
    pub standby: Option<StandbyReport>,
}

/// What was judged of one migration from what it did and what was seen.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub hazards: Vec<Hazard>,
    pub ignored_hazards: Vec<Hazard>,
    pub destructive_changes: Vec<DestructiveChange>,
    /// What could not be evaluated for the migration's tool, with why.
    pub not_evaluated: Vec<String>,
    pub estimate: Option<Estimate>,
    pub recovery: Option<Recovery>,
}

impl Rehearsal {
    /// A run about to start: the plan's facts, nothing measured.
    pub fn new(planned: Planned) -> Rehearsal {
        Rehearsal {
            planned,
            started_at: SystemTime::now(),
            stages: Vec::new(),
            clone: None,
            physical: None,
            restore: RestoreInfo::default(),
            server: None,
            dump_file: None,
            standby: None,
            sources: Vec::new(),
            watched: Watched::default(),
            compat: None,
            migrations: Vec::new(),
            race: None,
            drift: None,
            backup: None,
            production: None,
            platform: None,
            isolation: None,
            load: None,
            abort: Vec::new(),
            rollback: None,
            end: None,
            judgement: Judgement::default(),
        }
    }

    /// How long a finished stage took (its last run).
    pub fn stage_ms(&self, stage: Stage) -> Option<u64> {
        self.stages.iter().rev().find(|s| s.stage == stage).map(|s| s.duration_ms)
    }

    /// The migrations the rehearsal did not apply, as `id (status)`.
    pub fn unapplied(&self) -> Vec<String> {
        self.migrations
            .iter()
            .filter(|m| m.status() != MigrationStatus::Applied)
            .map(|m| format!("{} ({})", m.planned.id, m.status().as_str()))
            .collect()
    }
}

impl MigrationFacts {
    /// A pending migration not reached yet.
    pub fn pending(planned: PlannedMigration) -> MigrationFacts {
        MigrationFacts {
            planned,
            applied: None,
            observed: None,
            compat: None,
            findings: Findings::default(),
            load: None,
        }
    }

    pub fn status(&self) -> MigrationStatus {
        self.applied.as_ref().map_or(MigrationStatus::Skipped, |a| a.status)
    }

    /// The migration as the report shows it, with the breaches the gate found.
    pub fn record(&self, breaches: &[Breach]) -> MigrationReport {
        let p = &self.planned;
        let a = self.applied.clone();
        let post_migrate_ms = a.as_ref().and_then(|a| a.post_migrate_ms);
        let (duration_ms, startup_ms, statements, error, attempts, retry_lost_ms) = a
            .map_or((0, None, Vec::new(), None, Vec::new(), None), |a| {
                (a.duration_ms, a.startup_ms, a.statements, a.error, a.attempts, a.retry_lost_ms)
            });
        let o = self.observed.clone().unwrap_or_default();
        let f = self.findings.clone();
        MigrationReport {
            id: p.id.clone(),
            app: p.app.clone(),
            kind: p.kind,
            description: p.description.clone(),
            version: p.version.clone(),
            file: p.file.clone(),
            status: self.status(),
            duration_ms,
            wal: o.wal,
            statements,
            locks: o.locks,
            longest_read_block: o.longest_read_block,
            longest_write_block: o.longest_write_block,
            probes: o.probes,
            rewrites: o.rewrites,
            size_changes: o.size_changes,
            progress: o.progress,
            top_statements: o.top_statements,
            hazards: f.hazards,
            ignored_hazards: f.ignored_hazards,
            budget_breaches: breaches.iter().map(|b| b.message.clone()).collect(),
            error,
            startup_ms,
            post_migrate_ms,
            offline_sql: p.offline_sql.clone(),
            offline_sql_unavailable: p.offline_sql_unavailable.clone(),
            recovery: f.recovery,
            breaches: breaches.to_vec(),
            destructive_changes: f.destructive_changes,
            not_evaluated: f.not_evaluated,
            estimate: f.estimate,
            standby: o.standby,
            compat: self.compat.clone(),
            load: self.load.clone(),
            attempts,
            retry_lost_ms,
        }
    }
}

/// The report of a rehearsal: the one projection of its facts.
pub fn build(r: &Rehearsal) -> Report {
    let p = &r.planned;
    let none = Vec::new();
    let migrations: Vec<MigrationReport> = r
        .migrations
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut m = m.record(r.judgement.migrations.get(i).unwrap_or(&none));
            if let Some(load) = m.load.as_mut() {
                load.verdict = r.judgement.load_verdicts.get(i).copied().flatten();
            }
            m
        })
        .collect();
    let server = r.server.as_ref();
    let mut report = Report {
        schema: SCHEMA.into(),
        rehearse_version: env!("CARGO_PKG_VERSION").into(),
        scenario: p.scenario.clone(),
        status: RunStatus::Passed,
        started_at: rfc3339(r.started_at),
        finished_at: r.end.as_ref().map(|e| rfc3339(e.finished_at)),
        stopped_at_stage: None,
        error: None,
        error_kind: None,
        postgres: PostgresInfo {
            version: server.map(|s| s.version.clone()),
            backend: p.backend,
            settings: server.map(|s| s.settings.clone()).unwrap_or_default(),
            scenario_settings: p.scenario_settings.clone(),
        },
        machine: p.machine.clone(),
        dump: DumpInfo {
            path: p.dump_path.clone(),
            format: p.dump_format,
            bytes: r.dump_file.as_ref().map_or(0, |(bytes, _)| *bytes),
            sha256: r.dump_file.as_ref().map(|(_, sha)| sha.clone()),
            tables: server.map(|s| s.tables.clone()).unwrap_or_default(),
            database_bytes: server.map(|s| s.database_bytes),
            clone: r.clone.clone(),
            source: match (&r.clone, &r.physical) {
                (Some(_), _) => super::DumpSource::Clone,
                (None, Some(_)) => super::DumpSource::Physical,
                (None, None) => super::DumpSource::Logical,
            },
            physical: r.physical.clone(),
        },
        restore: r.restore.clone(),
        stages: r.stages.clone(),
        totals: totals(&migrations, r),
        migrations,
        budget_breaches: r.judgement.breaches.iter().map(|b| b.message.clone()).collect(),
        observation: ObservationInfo {
            sample_interval_ms: p.sample_interval_ms,
            hot_tables: r.watched.hot_tables.clone(),
            limitations: r.watched.limitations.clone(),
        },
        baseline: r.judgement.baseline.clone(),
        breaches: r.judgement.breaches.clone(),
        budgets: BudgetsInfo { unused_overrides: r.judgement.unused_overrides.clone(), ..p.budgets.clone() },
        hazards: HazardsInfo { ignore: p.hazard_ignores.clone(), unused_ignores: r.judgement.unused_ignores.clone() },
        backup: r.backup.clone(),
        production: r.production.clone(),
        platform: r.platform.clone(),
        checklist: Checklist::default(),
        estimate: p.estimate.clone(),
        standby: r.standby.clone(),
        launch: p.launch.clone(),
        isolation: r.isolation.clone(),
        compat: r.compat.clone(),
        race: r.race.clone(),
        sources: r.sources.clone(),
        drift: r.drift.clone(),
        load: r.load.clone(),
        abort: r.abort.clone(),
        rollback: r.rollback.as_ref().map(|b| b.report()),
        redacted: false,
    };
    let (status, stage, error) = status(&report, r.end.as_ref());
    (report.status, report.stopped_at_stage) = (status, stage);
    (report.error, report.error_kind) = (error.map(|e| e.message.clone()), error.map(|e| e.kind));
    report.checklist = checklist::fill(&report, &p.checklist);
    report
}

fn totals(ms: &[MigrationReport], r: &Rehearsal) -> Totals {
    let count = |status: MigrationStatus| ms.iter().filter(|m| m.status == status).count();
    Totals {
        duration_ms: ms.iter().map(|m| m.duration_ms).sum(),
        wal_bytes: ms.iter().map(|m| m.wal.bytes).sum(),
        applied: count(MigrationStatus::Applied),
        failed: count(MigrationStatus::Failed),
        skipped: count(MigrationStatus::Skipped),
        run_duration_ms: r.end.as_ref().map_or(0, |e| e.run.as_millis() as u64),
        timed_out: count(MigrationStatus::TimedOut),
        interrupted: count(MigrationStatus::Interrupted),
        estimate: r.judgement.estimate.clone(),
    }
}

/// The run's status, the stage it stopped in and why: a stage's error or a
/// signal first, then a migration that failed, then a breached budget.
fn status<'a>(report: &Report, end: Option<&'a End>) -> (RunStatus, Option<Stage>, Option<&'a StopError>) {
    let failed = report.migrations.iter().any(|m| m.status == MigrationStatus::Failed);
    let breached =
        !report.budget_breaches.is_empty() || report.migrations.iter().any(|m| !m.budget_breaches.is_empty());
    match end.and_then(|e| e.stopped.as_ref()) {
        Some(StoppedAt { stage, error: None }) => (RunStatus::Interrupted, Some(*stage), None),
        Some(StoppedAt { stage, error: Some(e) }) => (RunStatus::Failed, Some(*stage), Some(e)),
        None if failed => (RunStatus::Failed, Some(Stage::Rehearse), None),
        None if breached => (RunStatus::BudgetExceeded, None, None),
        None => (RunStatus::Passed, None, None),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
impl Planned {
    /// A plan's facts for tests: a local backend, no budgets, no dump read yet.
    pub fn example() -> Planned {
        Planned {
            scenario: "example".into(),
            backend: BackendKind::Local,
            scenario_settings: Vec::new(),
            dump_path: "prod.dump".into(),
            dump_format: None,
            sample_interval_ms: 50,
            budgets: BudgetsInfo::default(),
            hazard_ignores: Vec::new(),
            estimate: None,
            launch: None,
            checklist: ChecklistSettings::default(),
            machine: MachineInfo::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Report {
        serde_json::from_str(include_str!("../../tests/fixtures/report-v1-demo.json")).expect("the fixture is a report")
    }

    /// The demo report's facts, taken back from it: what `build` must turn into that report again.
    fn facts_of(r: &Report) -> Rehearsal {
        let planned = Planned {
            scenario: r.scenario.clone(),
            backend: r.postgres.backend,
            scenario_settings: r.postgres.scenario_settings.clone(),
            dump_path: r.dump.path.clone(),
            dump_format: r.dump.format,
            sample_interval_ms: r.observation.sample_interval_ms,
            budgets: r.budgets.clone(),
            hazard_ignores: r.hazards.ignore.clone(),
            estimate: r.estimate.clone(),
            launch: r.launch.clone(),
            checklist: ChecklistSettings::default(),
            machine: r.machine.clone(),
        };
        let time = |s: &str| humantime::parse_rfc3339(s).expect("RFC 3339");
        let migration = |m: &MigrationReport| MigrationFacts {
            planned: PlannedMigration {
                id: m.id.clone(),
                app: m.app.clone(),
                kind: m.kind,
                description: m.description.clone(),
                version: m.version.clone(),
                file: m.file.clone(),
                offline_sql: m.offline_sql.clone(),
                offline_sql_unavailable: m.offline_sql_unavailable.clone(),
            },
            applied: (m.status != MigrationStatus::Skipped).then(|| AppliedMigration {
                status: m.status,
                duration_ms: m.duration_ms,
                startup_ms: m.startup_ms,
                post_migrate_ms: m.post_migrate_ms,
                statements: m.statements.clone(),
                error: m.error.clone(),
                attempts: m.attempts.clone(),
                retry_lost_ms: m.retry_lost_ms,
            }),
            observed: Some(Observation {
                wal: m.wal.clone(),
                locks: m.locks.clone(),
                longest_read_block: m.longest_read_block.clone(),
                longest_write_block: m.longest_write_block.clone(),
                probes: m.probes.clone(),
                rewrites: m.rewrites.clone(),
                size_changes: m.size_changes.clone(),
                progress: m.progress.clone(),
                top_statements: m.top_statements.clone(),
                standby: m.standby.clone(),
            }),
            compat: m.compat.clone(),
            findings: Findings {
                hazards: m.hazards.clone(),
                ignored_hazards: m.ignored_hazards.clone(),
                destructive_changes: m.destructive_changes.clone(),
                not_evaluated: m.not_evaluated.clone(),
                estimate: m.estimate.clone(),
                recovery: m.recovery.clone(),
            },
            load: m.load.clone(),
        };
        Rehearsal {
            started_at: time(&r.started_at),
            stages: r.stages.clone(),
            clone: r.dump.clone.clone(),
            physical: r.dump.physical.clone(),
            restore: r.restore.clone(),
            server: Some(ServerFacts {
                version: r.postgres.version.clone().expect("the demo has a version"),
                settings: r.postgres.settings.clone(),
                tables: r.dump.tables.clone(),
                database_bytes: r.dump.database_bytes.expect("the demo has a size"),
            }),
            dump_file: r.dump.sha256.clone().map(|sha| (r.dump.bytes, sha)),
            standby: r.standby.clone(),
            sources: r.sources.clone(),
            watched: Watched {
                hot_tables: r.observation.hot_tables.clone(),
                limitations: r.observation.limitations.clone(),
            },
            compat: r.compat.clone(),
            migrations: r.migrations.iter().map(migration).collect(),
            race: r.race.clone(),
            drift: r.drift.clone(),
            backup: r.backup.clone(),
            production: r.production.clone(),
            platform: r.platform.clone(),
            isolation: r.isolation.clone(),
            load: r.load.clone(),
            abort: r.abort.clone(),
            rollback: None,
            end: Some(End {
                finished_at: time(r.finished_at.as_deref().expect("finished")),
                run: Duration::from_millis(r.totals.run_duration_ms),
                stopped: None,
            }),
            judgement: Judgement {
                breaches: r.breaches.clone(),
                migrations: r.migrations.iter().map(|m| m.breaches.clone()).collect(),
                baseline: r.baseline.clone(),
                unused_overrides: r.budgets.unused_overrides.clone(),
                unused_ignores: r.hazards.unused_ignores.clone(),
                estimate: r.totals.estimate.clone(),
                load_verdicts: r.migrations.iter().map(|m| m.load.as_ref().and_then(|l| l.verdict)).collect(),
            },
            planned,
        }
    }

    #[test]
    fn the_demo_reports_facts_project_to_the_same_report() {
        let mut demo = demo();
        let built = build(&facts_of(&demo));
        // The fixture's checklist is as an older version filled it: the
        // checklist is a projection of the rest, compared as today's.
        demo.checklist = checklist::fill(&demo, &ChecklistSettings::default());
        let (built, demo) = (serde_json::to_value(&built).unwrap(), serde_json::to_value(&demo).unwrap());
        for (key, value) in demo.as_object().expect("an object") {
            assert_eq!(&built[key], value, "{key}");
        }
    }

    #[test]
    fn a_stage_that_stopped_the_run_is_its_status_before_any_migration_or_budget() {
        let mut facts = facts_of(&demo());
        facts.judgement.breaches.push(Breach {
            budget: BudgetKey::MaxRuntime,
            figure: 2,
            limit: 1,
            unit: Unit::Ms,
            relation: None,
            overridden: false,
            message: "over".into(),
        });
        assert_eq!(build(&facts).status, RunStatus::BudgetExceeded);
        let end = facts.end.as_mut().expect("ended");
        let error = StopError { kind: ErrorKind::CatalogReadFailed, message: "the drift build failed".into() };
        end.stopped = Some(StoppedAt { stage: Stage::Drift, error: Some(error) });
        let r = build(&facts);
        assert_eq!(
            (r.status, r.stopped_at_stage, r.error.as_deref(), r.error_kind),
            (RunStatus::Failed, Some(Stage::Drift), Some("the drift build failed"), Some(ErrorKind::CatalogReadFailed))
        );
        facts.end.as_mut().expect("ended").stopped = Some(StoppedAt { stage: Stage::Rehearse, error: None });
        let r = build(&facts);
        assert_eq!((r.status, r.error, r.error_kind), (RunStatus::Interrupted, None, None));
    }

    #[test]
    fn a_migration_not_reached_is_skipped_with_nothing_measured() {
        let mut facts = facts_of(&demo());
        let m = &mut facts.migrations[0];
        (m.applied, m.observed, m.findings) = (None, None, Findings::default());
        let r = build(&facts);
        assert_eq!(r.migrations[0].status, MigrationStatus::Skipped);
        assert_eq!((r.migrations[0].duration_ms, r.migrations[0].wal.bytes), (0, 0));
        assert_eq!(r.totals.skipped, 1);
    }
}
