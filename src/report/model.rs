//! The report model (`rehearse.report/v1`): what a run found, independent of
//! how it is rendered. Keys are a public contract (docs/report.md): add
//! freely, never rename. Durations are milliseconds, sizes bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::load::{LoadInfo, MigrationLoad};

pub use super::facts::*;
use crate::error::ErrorKind;
use crate::kinds::{closed_set, BackendKind, MigrationTool, Rule, RunsIn};
use crate::pg::{Blocked, DriftKind, DumpFormat, LockMode, RelationKind};

pub const SCHEMA: &str = "rehearse.report/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub rehearse_version: String,
    pub scenario: String,
    pub status: RunStatus,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The stage the run stopped in, when it did not finish (failed or interrupted).
    pub stopped_at_stage: Option<Stage>,
    /// Why the run stopped, when it was not a migration failing.
    pub error: Option<String>,
    /// The kind of `error`, for a caller to tell failures apart without
    /// reading the message (docs/exit-codes.md lists each with its exit code).
    #[serde(default)]
    pub error_kind: Option<ErrorKind>,
    /// The comparison with the previous report (`--baseline`, `report.baseline`).
    #[serde(default)]
    pub baseline: Option<BaselineComparison>,
    pub postgres: PostgresInfo,
    pub machine: MachineInfo,
    pub dump: DumpInfo,
    pub restore: RestoreInfo,
    pub stages: Vec<StageTime>,
    pub migrations: Vec<MigrationReport>,
    pub totals: Totals,
    /// Breaches of the run-wide budgets (`budgets.total`), and of
    /// `fail_on_regression`: the messages of `breaches`.
    pub budget_breaches: Vec<String>,
    pub observation: ObservationInfo,
    /// The same run-wide breaches as data.
    #[serde(default)]
    pub breaches: Vec<Breach>,
    /// The budgets the run was judged by.
    #[serde(default)]
    pub budgets: BudgetsInfo,
    /// The hazards set aside (`hazards.ignore`), and its entries that named no pending migration.
    #[serde(default)]
    pub hazards: HazardsInfo,
    /// A measured `pg_dump -Fc` of the rehearsal database (`report.measure_backup`).
    #[serde(default)]
    pub backup: Option<BackupInfo>,
    /// Production's migration role and settings on the copy (`production:`); absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<super::ProductionReport>,
    /// The managed platform's limits on the copy (`postgres.platform`); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<super::PlatformReport>,
    /// The production checklist, filled where the run has evidence.
    #[serde(default)]
    pub checklist: Checklist,
    /// What the production-scale estimates rest on; null without `estimate:`.
    #[serde(default)]
    pub estimate: Option<EstimateInfo>,
    /// The streaming standby observed (`observe.standby`); null without one.
    #[serde(default)]
    pub standby: Option<StandbyInfo>,
    /// How the migration tool was launched (Alembic and command tools); null for SQL folders.
    #[serde(default)]
    pub launch: Option<LaunchInfo>,
    /// What the migration tool could reach: its network, and the variables
    /// naming a database it did not inherit; null when no tool ran (SQL
    /// files rehearse applies itself, without a race command).
    #[serde(default)]
    pub isolation: Option<IsolationInfo>,
    /// The running app's queries (`compat.queries`): how many were checked,
    /// and those that already failed before the first migration; null
    /// without a corpus.
    #[serde(default)]
    pub compat: Option<CompatInfo>,
    /// Replicas racing to run the full upgrade at start-up (`race:`); null
    /// without one, and when the sequential rehearsal did not apply everything.
    #[serde(default)]
    pub race: Option<super::RaceReport>,
    /// Where the migrations came from: one entry per source (one per app
    /// when `migrations:` lists several), with the files it did not apply and why.
    #[serde(default)]
    pub sources: Vec<SourceReport>,
    /// Production plus this release compared with the schema the migration
    /// history builds from empty (`drift:`); null without it.
    #[serde(default)]
    pub drift: Option<DriftReport>,
    /// The app's traffic replayed during each migration (`load:`); absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadInfo>,
    /// Migrations cancelled part-way on a fresh copy (`abort:`); absent without it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abort: Vec<super::AbortReport>,
    /// The release that undoes this one, rehearsed after it (`rollback:`); absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<super::RollbackReport>,
    /// Row values were taken out of every text of the report (`report.redact`,
    /// the default; docs/privacy.md); absent when they were not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

/// The drift check: the rehearsed database (production plus the pending
/// migrations) against a database built from empty by the whole history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// The database the history was built in, on the same server.
    pub database: String,
    /// The role the build ran as (production's migrations' role).
    pub role: Option<String>,
    /// How long building the history from empty took.
    pub build_ms: u64,
    /// How many objects of each kind were compared (`tables`, `columns`, ...).
    pub checked: BTreeMap<String, usize>,
    pub findings: Vec<DriftFinding>,
    /// The `drift.ignore` patterns, as given.
    #[serde(default)]
    pub ignored: Vec<String>,
    /// Extensions production has that were created before the build, because no migration creates them.
    #[serde(default)]
    pub extensions_created: Vec<String>,
    /// Why the history could not be built or compared; then `findings` is empty.
    pub error: Option<String>,
}

/// One difference between production (plus the release) and the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftFinding {
    /// `public.orders_note_idx`, `public.orders.total`, `public.orders: orders_total_check`.
    pub object: String,
    /// `table`, `column`, `index`, `constraint`, `constraint name`, `sequence`, `view`,
    /// `materialized view`, `function`, `trigger`, `enum`, `domain`, `extension`, `schema`,
    /// `owner`, `privileges`.
    pub kind: DriftKind,
    /// Its definition in production (plus the release); null: production lacks it.
    pub production: Option<String>,
    /// Its definition as the history builds it; null: the history lacks it.
    pub history: Option<String>,
    pub cause: DriftCause,
    /// What most likely made the difference, in words.
    pub likely: String,
    /// The revision (or SQL file) whose upgrade created or last altered the
    /// object in the history build, when the per-revision build tells it.
    pub revision: Option<String>,
}

closed_set! {
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum DriftCause {
        /// Present only in production: an out-of-band change (an index added by hand).
        #[default]
        OnlyInProduction = "only_in_production",
        /// Present only in the history: a migration stamped but never run, or an out-of-band drop.
        OnlyInHistory = "only_in_history",
        /// Both have it, defined differently: an applied migration edited after it ran, or a manual fix.
        Different = "different",
    }
}

impl DriftCause {
    /// The cause in words, for readers: `only in the history`.
    pub fn in_words(self) -> &'static str {
        match self {
            DriftCause::OnlyInProduction => "only in production",
            DriftCause::OnlyInHistory => "only in the history",
            DriftCause::Different => "different",
        }
    }
}

/// One migration source of the run: an app's tree, folder or command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// The app's name (`migrations[].name`); null for a scenario with one source.
    pub app: Option<String>,
    /// `sql`, `alembic` or `command`.
    pub tool: MigrationTool,
    /// The folder the migrations live in (as the tool sees it).
    pub dir: String,
    /// The table the source records applied migrations in, when known.
    pub history: Option<String>,
    /// How many migrations of this source were pending.
    pub pending: usize,
    /// Files in the folder that were not applied, each with the reason.
    #[serde(default)]
    pub skipped: Vec<SkippedFile>,
}

/// A file of a migration folder that the rehearsal did not apply, and why
/// (an unchanged repeatable, a down or undo script, a callback Flyway would
/// not run here, a file that is not SQL): never skipped in silence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// The file, relative to the source's folder.
    pub file: String,
    pub reason: String,
}

closed_set! {
    /// What kind of migration an entry is, in Flyway's words: a versioned
    /// migration (every Alembic revision and command id too), a repeatable
    /// (`R__*.sql`, applied again when its checksum changes) or a callback
    /// (`beforeMigrate.sql`, `afterMigrate.sql`, ... run at a Flyway event).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub enum MigrationKind {
        #[default]
        Versioned = "versioned",
        Repeatable = "repeatable",
        Callback = "callback",
    }
}

/// How the migration tool was launched: on this machine, or in a container
/// of the app's image as a Kubernetes Job would run it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchInfo {
    /// `this machine` or `image`.
    pub runs_in: RunsIn,
    /// `migrations.image`, or the Job's container's image.
    pub image: Option<String>,
    /// The image's id (`docker image inspect`).
    pub image_id: Option<String>,
    /// `migrations.job`: the Job's name and container.
    pub job: Option<String>,
    pub container: Option<String>,
    /// The Job container's command and args, as the manifest has them.
    #[serde(default)]
    pub command: Vec<String>,
    /// The working directory inside the image.
    pub workdir: Option<String>,
    /// Python and the modules the tool ran with (Alembic, SQLAlchemy,
    /// psycopg2, psycopg), as that interpreter imports them.
    #[serde(default)]
    pub tool_versions: Vec<Setting>,
    /// The Job's `valueFrom` variables and `envFrom` sources that a cluster
    /// fills in and the scenario's `migrations.env` does not give: not rehearsed.
    #[serde(default)]
    pub from_cluster: Vec<String>,
}

/// What the migration tool could reach (`migrations.network`, docs/migrations.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationInfo {
    pub network: ToolNetworkKind,
    /// Why the tool ran on the host's network; null in a namespace.
    pub why: Option<String>,
    /// The tool reached the server through rehearse's relay (a unix socket
    /// in a private directory), not the server's own socket.
    pub forwarded: bool,
    /// Variables of rehearse's environment that name a database, not
    /// passed to the tool (names only, never values).
    pub cleared_env: Vec<String>,
}

closed_set! {
    /// The network a migration tool ran on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ToolNetworkKind {
        /// A network namespace of its own: no TCP to anything, the copy through a unix socket.
        Namespace = "namespace",
        /// The host's network: it could reach other servers.
        Host = "host",
    }
}

/// The streaming hot standby a run observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StandbyInfo {
    /// `local` or `docker`: started by this run from the primary with
    /// pg_basebackup; `url`: the user's own (`observe.standby_url`).
    pub source: BackendKind,
    /// Host, port, user and database (never the password).
    pub server: String,
    /// How often its lag was read (`observe.standby_interval`).
    pub interval_ms: u64,
    /// `observe.standby_lag_threshold`.
    pub lag_threshold_ms: u64,
    /// The settings that decide what its readers feel, as the standby
    /// reports them (`SHOW`): max_standby_streaming_delay,
    /// hot_standby_feedback, recovery_min_apply_delay.
    pub settings: Vec<Setting>,
}

/// What one migration did to the standby.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StandbyReport {
    /// Most bytes of WAL the standby's replay was behind the primary's
    /// current position, at one reading.
    pub max_lag_bytes: u64,
    /// Longest time it was behind: the standby's clock less the newest
    /// heartbeat it had replayed (the primary writes one every reading interval).
    pub max_lag_ms: u64,
    /// How long it was more than `lag_threshold_ms` behind.
    pub over_threshold_ms: u64,
    /// After the migration ended, how long the standby took to replay up to
    /// where the primary was at that moment; null when it had not within
    /// 10 minutes (`observe::standby::CATCH_UP_LIMIT`).
    pub catch_up_ms: Option<u64>,
    /// The longest wait of a probe read on each hot table, on the standby.
    pub read_waits: Vec<StandbyReadWait>,
    /// Queries on the standby cancelled by recovery conflicts while the
    /// migration ran (pg_stat_database_conflicts, the run's database).
    pub conflicts: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StandbyReadWait {
    pub relation: String,
    pub max_ms: f64,
    pub probes: u64,
}

/// One budget a migration or the run went over: a finding, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// The budget's key: `max_runtime`, `max_exclusive_lock`, `max_write_block`,
    /// `max_wal`, `max_probe_wait`, `total.max_runtime`, `total.max_wal`, `fail_on_regression`,
    /// `fail_on_incompatible`, `fail_on_race`.
    pub budget: BudgetKey,
    /// What was measured, in `unit`.
    pub figure: u64,
    /// The budget, in `unit`.
    pub limit: u64,
    /// `ms`, `bytes`, `regressions`, `queries` or `findings` (why a race is unsafe).
    pub unit: Unit,
    /// The table the figure is about (lock and probe budgets).
    pub relation: Option<String>,
    /// The limit came from `budgets.overrides` for this migration.
    pub overridden: bool,
    /// One line naming the figure and the budget, as in `budget_breaches`.
    pub message: String,
}

/// Budgets in force, in milliseconds and bytes; `null` is no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetsInfo {
    pub migration: MigrationLimits,
    /// Per migration id, the limits after applying `budgets.overrides`.
    pub overrides: BTreeMap<String, MigrationLimits>,
    pub total: TotalLimits,
    pub fail_on_regression: bool,
    /// Override ids that named no rehearsed migration (a typo, or applied since).
    pub unused_overrides: Vec<String>,
    /// What the per-migration budgets judge: `measured` or `estimate`.
    #[serde(default)]
    pub apply_to: BudgetsApplyTo,
    /// A migration that breaks a query of the running app is a breach.
    #[serde(default)]
    pub fail_on_incompatible: bool,
    /// A race of replicas that is unsafe or inconclusive is a breach.
    #[serde(default)]
    pub fail_on_race: bool,
    /// A drift finding is a breach.
    #[serde(default)]
    pub fail_on_drift: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationLimits {
    pub max_runtime_ms: Option<u64>,
    /// `cancel` or `continue`: what happens at `max_runtime`.
    pub on_exceed: OnExceed,
    pub max_exclusive_lock_ms: Option<u64>,
    pub max_write_block_ms: Option<u64>,
    pub max_wal_bytes: Option<u64>,
    pub max_probe_wait_ms: Option<u64>,
    #[serde(default)]
    pub max_standby_lag_ms: Option<u64>,
    #[serde(default)]
    pub max_standby_read_wait_ms: Option<u64>,
    /// The app's p99 latency under `load:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_app_p99_ms: Option<u64>,
    /// The app's longest stall under `load:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_app_stall_ms: Option<u64>,
    /// The app's failed statements under `load:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_app_errors: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TotalLimits {
    pub max_runtime_ms: Option<u64>,
    pub max_wal_bytes: Option<u64>,
}

/// This run against the previous one, migration by migration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BaselineComparison {
    /// The baseline report file.
    pub path: String,
    /// The baseline's scenario and start time.
    pub scenario: String,
    pub started_at: Option<String>,
    pub thresholds: RegressionThresholds,
    /// Migrations applied in both runs, with their changes.
    pub migrations: Vec<MigrationDelta>,
    /// Changes beyond the thresholds.
    pub regressions: Vec<Regression>,
    /// Ids rehearsed now that the baseline does not have.
    pub new: Vec<String>,
    /// Ids in the baseline that were not rehearsed now (applied in production since, or renamed).
    pub vanished: Vec<String>,
    /// Ids in both that did not apply in one of the runs, so were not compared.
    pub not_compared: Vec<String>,
}

/// A change is a regression when it grows by more than `percent` and by at
/// least the floor of its kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegressionThresholds {
    pub percent: f64,
    /// Floor for time and lock holds.
    pub min_time_ms: u64,
    /// Floor for WAL.
    pub min_wal_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationDelta {
    pub id: String,
    pub duration_ms: Change,
    pub wal_bytes: Change,
    /// The longest hold of a lock that blocks reads or writes of an existing table.
    pub longest_block_ms: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub baseline: u64,
    pub current: u64,
    /// `null` when the baseline is 0.
    pub change_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Regression {
    pub id: String,
    /// `duration_ms`, `wal_bytes` or `longest_block_ms`.
    pub metric: Metric,
    pub baseline: u64,
    pub current: u64,
    pub change_percent: Option<f64>,
    /// "time 1.5s → 3.1s (+107%)".
    pub message: String,
}

/// A `pg_dump -Fc` of the rehearsal database, timed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupInfo {
    /// The command, without connection details: `pg_dump -Fc`.
    pub command: String,
    pub duration_ms: Option<u64>,
    /// Size of the archive written.
    pub bytes: Option<u64>,
    /// `pg_database_size` when the backup started (after the migrations).
    pub database_bytes: Option<i64>,
    /// Why it could not be measured.
    pub error: Option<String>,
}

/// The production checklist (DESIGN.md), item by item.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checklist {
    /// `report.ops_threshold`.
    pub ops_threshold_ms: u64,
    /// `report.deploy_window`.
    pub deploy_window_ms: u64,
    /// `report.replica_apply_rate`: the replay rate the lag estimate assumes.
    pub replica_apply_rate_bytes_per_second: u64,
    pub items: Vec<ChecklistItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// Stable id: `prod_shaped_data`, `runtime_estimate`, `backup`, `replica_lag`,
    /// `ops_comm`, `standalone_job`, `rollback`, `app_compatibility`, `monitoring`.
    pub id: ChecklistId,
    pub title: String,
    /// Done on this run's evidence; open items say what a human must do.
    pub done: bool,
    pub evidence: Vec<String>,
    pub todo: Option<String>,
}

/// A change the running application version may still depend on: a
/// dropped or renamed table, view, schema or column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestructiveChange {
    /// `drop_table`, `drop_view`, `drop_schema`, `drop_column`, `rename_table`,
    /// `rename_view`, `rename_column`, `set_schema`, ...
    pub kind: DestructiveKind,
    /// `public.users`, or `public.users.full_name` for a column.
    pub object: String,
    /// The new name, for renames.
    pub new_name: Option<String>,
    pub line: Option<usize>,
    pub statement: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObservationInfo {
    /// How often the lock sampler reads pg_locks; a hold shorter than this can be
    /// missed by sampling (SQL migrations' locks are also captured exactly per statement).
    pub sample_interval_ms: u64,
    /// Tables the probe sessions timed reads and writes on.
    pub hot_tables: Vec<String>,
    /// What could not be observed on this server, and why.
    pub limitations: Vec<String>,
}

closed_set! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RunStatus {
        Passed = "passed",
        BudgetExceeded = "budget_exceeded",
        Failed = "failed",
        Interrupted = "interrupted",
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PostgresInfo {
    /// `server_version` of the throwaway server, e.g. "15.18".
    pub version: Option<String>,
    /// `local`, `docker`, `url` or `clone`.
    pub backend: BackendKind,
    /// Effective values of key settings during the rehearsal.
    pub settings: Vec<Setting>,
    /// The scenario's `postgres.settings`, as applied.
    pub scenario_settings: Vec<Setting>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MachineInfo {
    pub cpus: usize,
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DumpInfo {
    pub path: String,
    pub format: Option<DumpFormat>,
    pub bytes: u64,
    pub sha256: Option<String>,
    /// Restored user tables, largest first; `rows` from pg_class.reltuples
    /// right after VACUUM ANALYZE (exact for a fresh restore).
    pub tables: Vec<TableInfo>,
    pub database_bytes: Option<i64>,
    /// The clone backend: the data is a clone `postgres.clone.create` made,
    /// not a restore of `path` (then empty); null on the other backends.
    #[serde(default)]
    pub clone: Option<CloneSource>,
    /// Where the data came from: `logical` (a dump), `physical` (a backup), `clone`.
    #[serde(default)]
    pub source: super::DumpSource,
    /// The physical backup and its recovery (`physical:`); null otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<super::PhysicalInfo>,
}

/// Where the clone backend's data came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneSource {
    /// The program of `postgres.clone.create` (its first word: never its arguments, which may hold secrets).
    pub create: String,
    /// The id `create` printed (`id=...`), if it printed one.
    pub id: Option<String>,
    /// `postgres.clone.lazy_load`: the clone's volumes load lazily from a snapshot.
    pub lazy_load: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableInfo {
    pub name: String,
    pub rows: i64,
    pub bytes: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreInfo {
    pub duration_ms: u64,
    pub jobs: u32,
    /// Roles the dump names as owners or grantees, created NOLOGIN before restoring.
    pub roles_created: Vec<String>,
    /// Snapshot cache: `hit` (started from a cached restore, nothing restored),
    /// `saved` (restored and saved for the next run), `not saved`; null when off.
    pub cache: Option<CacheStatus>,
    pub cache_key: Option<String>,
    /// On a hit: how long the cached restore took when it was made.
    pub cached_restore_ms: Option<u64>,
    /// When the restore finished (RFC 3339, UTC).
    #[serde(default)]
    pub restored_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageTime {
    pub stage: Stage,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationReport {
    /// `app/revision` when the scenario lists several apps; the revision,
    /// file stem or command id otherwise.
    pub id: String,
    /// The app the migration belongs to; null with one source.
    #[serde(default)]
    pub app: Option<String>,
    /// Versioned, repeatable or callback (Flyway folders).
    #[serde(default)]
    pub kind: MigrationKind,
    pub description: String,
    pub version: String,
    pub file: Option<String>,
    pub status: MigrationStatus,
    pub duration_ms: u64,
    pub wal: Wal,
    /// Statements as the migration ran them, in order (SQL migrations).
    pub statements: Vec<StatementReport>,
    /// Every relation lock the migration's backends held or waited for,
    /// merged per (relation, mode).
    pub locks: Vec<LockReport>,
    /// The longest hold of a lock that blocks reads (conflicts with AccessShareLock).
    pub longest_read_block: Option<BlockReport>,
    /// The longest hold of a lock that blocks writes (conflicts with RowExclusiveLock).
    pub longest_write_block: Option<BlockReport>,
    /// What probe sessions on hot tables waited while the migration ran.
    pub probes: Vec<ProbeReport>,
    /// Tables and indexes whose relfilenode changed: rewritten.
    pub rewrites: Vec<Rewrite>,
    /// Tables and indexes that grew or shrank by more than 10% (rewrites aside).
    pub size_changes: Vec<Rewrite>,
    /// What PostgreSQL's progress views showed the migration's sessions
    /// doing (index builds, CLUSTER, VACUUM, COPY), sampled while it ran.
    #[serde(default)]
    pub progress: Vec<ProgressReport>,
    /// From pg_stat_statements, reset before the migration; by total time.
    pub top_statements: Vec<TopStatement>,
    pub hazards: Vec<Hazard>,
    /// Findings of a rule `hazards.ignore` sets aside for this migration:
    /// kept for the record, counted nowhere `hazards` is.
    #[serde(default)]
    pub ignored_hazards: Vec<Hazard>,
    /// The messages of `breaches`.
    pub budget_breaches: Vec<String>,
    pub error: Option<MigrationError>,
    /// The migration tool's own start-up (interpreter and imports), not
    /// included in `duration_ms`; null when rehearse runs the migration itself.
    pub startup_ms: Option<u64>,
    /// Django: what `manage.py migrate` did after the release's last migration
    /// (re-rendering the models, the post_migrate handlers), reported with
    /// that migration and not included in its `duration_ms`; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_migrate_ms: Option<u64>,
    /// Alembic: what `alembic upgrade <parent>:<rev> --sql` prints; Django: `manage.py sqlmigrate`.
    pub offline_sql: Option<String>,
    /// Alembic: why offline SQL is not available for this revision.
    pub offline_sql_unavailable: Option<String>,
    /// After a failure: the state it left and how to recover, as a runbook would.
    pub recovery: Option<Recovery>,
    /// This migration's budget breaches as data.
    #[serde(default)]
    pub breaches: Vec<Breach>,
    /// Dropped or renamed tables and columns, from the executed statements.
    #[serde(default)]
    pub destructive_changes: Vec<DestructiveChange>,
    /// What rehearse could not evaluate for this migration's tool, each
    /// with why (a command's statement hazards: its statements are not
    /// traced); the table shows "not evaluated" rather than "-". Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_evaluated: Vec<String>,
    /// At production's scale (`estimate:` in the scenario); null without it.
    #[serde(default)]
    pub estimate: Option<Estimate>,
    /// What it did to the streaming standby; null without one.
    #[serde(default)]
    pub standby: Option<StandbyReport>,
    /// The running app's queries checked once this migration applied; null
    /// without `compat.queries`, and when it did not apply.
    #[serde(default)]
    pub compat: Option<CompatReport>,
    /// What the app's traffic felt while it ran (`load:`); absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<MigrationLoad>,
    /// Each try, with `migrations.retry` (absent without it): a try that
    /// gave up on its lock_timeout, then the one that ended the migration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// With `migrations.retry`: the time in failed tries and the pauses
    /// after them (in `duration_ms`, before the last try started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_lost_ms: Option<u64>,
}

/// One try of a migration under `migrations.retry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it started, ms after the migration's first try started.
    pub started_ms: u64,
    pub duration_ms: u64,
    /// Why it failed (`55P03`: it gave up on its lock_timeout); null for
    /// the try that succeeded, and for a failure without one.
    pub sqlstate: Option<String>,
    /// The lock_timeout it ran under (ms).
    pub lock_timeout_ms: u64,
}

impl MigrationReport {
    /// The tries that gave up on their lock_timeout: `(tries, ms lost, lock_timeout ms)`
    /// when the migration took more than one.
    pub fn retried(&self) -> Option<(usize, u64, u64)> {
        let last = self.attempts.last().filter(|_| self.attempts.len() > 1)?;
        Some((self.attempts.len(), self.retry_lost_ms.unwrap_or(0), last.lock_timeout_ms))
    }

    /// The longest hold of a lock that blocks reads or writes of an existing
    /// table (0 when none did): what the app felt most.
    pub fn longest_block(&self) -> u64 {
        [&self.longest_read_block, &self.longest_write_block]
            .into_iter()
            .flatten()
            .map(|b| b.held_ms)
            .max()
            .unwrap_or(0)
    }

    /// Whether it ran (applied, failed, timed out or interrupted), as opposed to skipped.
    pub fn ran(&self) -> bool {
        self.status != MigrationStatus::Skipped
    }

    /// Whether the scenario's `key` names this migration: its id, or with
    /// several apps its bare revision, which names it in every app that has it.
    pub fn answers_to(&self, key: &str) -> bool {
        self.id == key || self.id.split_once('/').is_some_and(|(_, rev)| rev == key)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recovery {
    /// Alembic: the database's `alembic_version` rows after the failure.
    pub alembic_version: Option<Vec<String>>,
    /// Relations the failed migration created and left behind.
    pub leftovers: Vec<String>,
    /// Indexes left invalid (a failed CREATE INDEX CONCURRENTLY).
    pub invalid_indexes: Vec<String>,
    /// What to do, in order.
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockReport {
    /// Schema-qualified name, or `oid 12345` for a relation dropped before it could be named.
    pub relation: String,
    /// `table`, `index`, `sequence`, `view`, `materialized view`, `partitioned table`, ...
    pub kind: RelationKind,
    /// As `pg_locks.mode` spells it: `AccessExclusiveLock`, ...
    pub mode: LockMode,
    /// Longest continuous hold (ms).
    pub held_ms: u64,
    /// Longest time the lock was requested and not yet granted (ms).
    pub waited_ms: u64,
    /// What this mode blocks, by the conflict matrix: `reads`, `writes`, `ddl`.
    pub blocks: Vec<Blocked>,
    /// How it was seen: `statement` (read from pg_locks right after the statement, in its
    /// transaction), `watched` (read from pg_locks by a second session in a tight loop while a
    /// statement that cannot run in a transaction block ran), `sampled` (the pg_locks sampler),
    /// or `inferred` (not seen: the mode the manual documents for the statement, when it ran
    /// too fast for any reading).
    pub source: Vec<LockSource>,
    /// The statement that took it, when captured exactly.
    pub statement: Option<String>,
    pub line: Option<usize>,
    /// The relation was created by this migration, so no application was using it.
    pub created: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockReport {
    pub relation: String,
    pub mode: LockMode,
    pub held_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    pub relation: String,
    pub reads: WaitStats,
    pub writes: WaitStats,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WaitStats {
    /// How many probes ran during the migration.
    pub probes: u64,
    pub max_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rewrite {
    pub relation: String,
    pub kind: RelationKind,
    pub bytes_before: i64,
    pub bytes_after: i64,
}

/// One command a progress view showed (pg_stat_progress_create_index,
/// _cluster, _vacuum, _copy), on one table, from its first to its last sighting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressReport {
    /// As the view names it: `CREATE INDEX`, `CREATE INDEX CONCURRENTLY`,
    /// `REINDEX`, `CLUSTER`, `VACUUM FULL`, `VACUUM`, `COPY FROM`, ...
    pub command: String,
    /// The table worked on, `schema.name`.
    pub relation: String,
    /// The phases seen, in the order first seen.
    pub phases: Vec<String>,
    /// First and last sighting, in ms after the migration started; the
    /// command ran at least this long, and at most one sampling interval
    /// (`observe.sample_interval` × 5) more at each end.
    pub first_ms: u64,
    pub last_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopStatement {
    pub query: String,
    pub calls: i64,
    pub duration_ms: f64,
    pub rows: i64,
    pub wal_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hazard {
    /// Stable id, documented in docs/hazards.md (e.g. `create-index-non-concurrent`).
    pub rule: Rule,
    /// The consequence, with the measured figures.
    pub message: String,
    /// What was observed: lock, mode, table size, hold time, rewrite.
    pub evidence: String,
    /// The safe alternative, as an imperative.
    pub fix: String,
    /// `docs/hazards.md#<rule>`.
    pub docs: String,
}

/// `hazards.ignore` as the run applied it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HazardsInfo {
    /// The entries, in the scenario's order.
    pub ignore: Vec<HazardIgnoreEntry>,
    /// (rule, migration) pairs of `ignore` whose migration is not pending: a typo, or applied since.
    pub unused_ignores: Vec<UnusedHazardIgnore>,
}

/// One rule set aside, for every migration or for those listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HazardIgnoreEntry {
    pub rule: Rule,
    /// The migrations it is ignored for; null: every migration.
    pub migrations: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnusedHazardIgnore {
    pub rule: Rule,
    pub migration: String,
}

closed_set! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum MigrationStatus {
        Applied = "applied",
        Failed = "failed",
        TimedOut = "timed_out",
        Skipped = "skipped",
        Interrupted = "interrupted",
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Wal {
    /// `pg_current_wal_insert_lsn()` after minus before.
    pub bytes: u64,
    /// WAL records (`pg_stat_wal`, PostgreSQL 14+; null before).
    pub records: Option<u64>,
    /// Full-page images (`pg_stat_wal.wal_fpi`, 14+).
    pub fpi: Option<u64>,
    /// WAL bytes as `pg_stat_wal` counts them (14+).
    pub stat_bytes: Option<u64>,
    /// Checkpoints that started during the migration.
    pub checkpoints: Option<u64>,
    /// bytes / duration.
    pub bytes_per_second: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatementReport {
    pub query: String,
    /// Line in the migration file where the statement starts.
    pub line: Option<usize>,
    pub duration_ms: u64,
    /// Rows the statement reported (CommandComplete), 0 for DDL.
    pub rows: u64,
    /// How many statements this entry stands for: Alembic's tracer reports
    /// consecutive data statements of one shape (literals aside) as one
    /// entry, `query` being the first, times and rows summed. 1 otherwise.
    #[serde(default = "one")]
    pub count: u64,
    /// `pg_current_wal_insert_lsn()` difference around the statement.
    pub wal_bytes: Option<u64>,
    /// Relation locks the statement took, read from pg_locks right after it,
    /// inside its transaction: exact, however short the statement.
    #[serde(default)]
    pub locks: Vec<StatementLock>,
    /// `lock_timeout` in force when the statement ran (ms; 0 = none).
    pub lock_timeout_ms: Option<u64>,
    /// When the statement started, ms after the migration started.
    #[serde(default)]
    pub started_ms: u64,
    /// The memory its sorts and hashes needed here (EXPLAIN ANALYZE of a
    /// data change, SQL sources with `estimate:`); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory: Vec<NodeMemory>,
}

closed_set! {
    /// A plan node that holds its input in memory up to a limit, then spills to disk.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum MemoryNode {
        Sort = "sort",
        Hash = "hash",
        HashAggregate = "hash_aggregate",
        /// An index build's sort (CREATE INDEX, REINDEX, an inline UNIQUE or PRIMARY KEY).
        IndexBuild = "index_build",
    }
}

/// One sort or hash of a statement's plan, as EXPLAIN ANALYZE showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMemory {
    pub node: MemoryNode,
    /// What it held in memory, plus what it wrote to disk when it spilled.
    pub need_bytes: u64,
    /// It spilled here already.
    pub spilled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLock {
    /// Schema-qualified name.
    pub relation: String,
    /// The relation's oid, to name relations the statement dropped.
    #[serde(skip)]
    pub oid: i64,
    pub kind: RelationKind,
    pub mode: LockMode,
    /// From the start of the statement that took it to the end of its
    /// transaction (locks are released at commit or rollback).
    pub held_ms: u64,
    /// How it was seen (`statement`, `watched`, `inferred`); the merged
    /// lock list reports it.
    #[serde(skip, default = "statement_source")]
    pub source: LockSource,
    /// `held_ms` was timed exactly (from the statement to its transaction's
    /// end), so it wins over the sampler's reading.
    #[serde(skip)]
    pub exact_hold: bool,
}

fn one() -> u64 {
    1
}

fn statement_source() -> LockSource {
    LockSource::Statement
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationError {
    /// Postgres's message, with DETAIL and HINT lines when it gave them.
    pub message: String,
    pub statement: Option<String>,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub sqlstate: Option<String>,
}

impl MigrationError {
    pub fn new(message: impl Into<String>) -> Self {
        MigrationError { message: message.into(), statement: None, file: None, line: None, sqlstate: None }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of the migrations' durations.
    pub duration_ms: u64,
    pub wal_bytes: u64,
    pub applied: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Wall time of the whole run, restore included.
    pub run_duration_ms: u64,
    /// Migrations cancelled at their `max_runtime` (`on_exceed: cancel`).
    #[serde(default)]
    pub timed_out: usize,
    /// Migrations stopped by a signal while they ran.
    #[serde(default)]
    pub interrupted: usize,
    /// The release at production's scale: the sum of the migrations' estimates
    /// (null without `estimate:`).
    #[serde(default)]
    pub estimate: Option<Estimate>,
}

/// A figure at production's scale, as a range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub low: u64,
    pub mid: u64,
    pub high: u64,
}

impl Range {
    /// The same figure, unscaled.
    pub fn exactly(v: u64) -> Range {
        Range { low: v, mid: v, high: v }
    }
}

impl std::ops::Add for Range {
    type Output = Range;
    fn add(self, o: Range) -> Range {
        Range { low: self.low + o.low, mid: self.mid + o.mid, high: self.high + o.high }
    }
}

/// A migration (or the release) at production's scale, and what it is based on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub duration_ms: Range,
    /// The longest hold of a lock that blocks reads of an existing table.
    pub longest_read_block_ms: Range,
    /// The longest hold of a lock that blocks writes of an existing table.
    pub longest_write_block_ms: Range,
    pub wal_bytes: Range,
    /// What was scaled and by how much ("rewrite of public.orders ×40.2"),
    /// and what was not (a relation production's statistics lack).
    pub basis: Vec<String>,
    /// Sorts and hashes whose input at production's size outgrows
    /// production's memory setting: they spill to disk there.
    #[serde(default)]
    pub spills: Vec<Spill>,
    /// Statements whose production-scale time reaches production's
    /// statement_timeout (the recorded role's, or the server's).
    #[serde(default)]
    pub over_statement_timeout: Vec<OverTimeout>,
}

/// A sort or hash that spills to disk at production's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spill {
    /// The statement, as the migration has it.
    pub statement: String,
    pub node: MemoryNode,
    /// Its memory need at production's size.
    pub need_bytes: u64,
    /// `work_mem`, `work_mem × hash_mem_multiplier` or `maintenance_work_mem`.
    pub limit_setting: String,
    pub limit_bytes: u64,
}

/// A statement whose estimate reaches production's statement_timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverTimeout {
    pub statement: String,
    /// Line in the migration's file.
    pub line: Option<usize>,
    /// Its estimated time at production's scale.
    pub estimate_ms: Range,
    pub timeout_ms: u64,
    /// Where the timeout comes from: "role migrator", "the server", "the migration's SET".
    pub timeout_from: String,
    /// The mid is over it: production cancels the statement (SQLSTATE
    /// 57014) and the migration fails; otherwise only the high end is.
    pub fails: bool,
    /// What to do, for this kind of statement.
    #[serde(default)]
    pub fix: String,
}

/// What the run's estimates rest on: production's statistics and the speed ratio.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EstimateInfo {
    /// The statistics file (`estimate.production`).
    pub production: String,
    /// When production's statistics were read.
    pub taken_at: String,
    pub server_version: String,
    pub database: String,
    /// How much faster production's server is than this one (`estimate.speed`).
    pub speed: f64,
    /// What the estimates apply to: `measured` or `estimate` (`budgets.apply_to`).
    pub budgets_apply_to: BudgetsApplyTo,
    /// How the ranges are made.
    pub method: String,
}

/// The running app's queries after one migration (`compat.queries`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompatReport {
    /// How many queries were checked.
    pub checked: usize,
    /// Queries that passed the check before this migration and fail it after:
    /// this migration broke them.
    pub broken: Vec<BrokenQuery>,
}

/// A query of the running app that fails against the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokenQuery {
    /// As the corpus has it.
    pub query: String,
    /// PostgreSQL's SQLSTATE, e.g. `42703` (undefined column); `23502`
    /// (not-null violation) for rehearse's INSERT check.
    pub code: String,
    /// PostgreSQL's message, e.g. `column "full_name" does not exist`.
    pub message: String,
    /// How often production ran it (from `rehearse queries`); null for a `.sql` corpus.
    #[serde(default)]
    pub calls: Option<i64>,
}

/// The corpus of the running app's queries and what it found before the first migration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompatInfo {
    /// The corpus file (`compat.queries`).
    pub queries: String,
    /// How many queries each check prepares.
    pub checked: usize,
    /// Statements of the corpus that are not queries (SET, BEGIN, CREATE, ...), not checked.
    pub ignored_utility: usize,
    /// Statements of a `rehearse queries` file whose normalized text is not
    /// SQL PostgreSQL accepts (pg_stat_statements writes `date '2026-01-01'`
    /// as `date $1`, a syntax error before the first migration), not checked.
    pub ignored_unparsable: usize,
    /// Queries that failed before the first migration: broken already, not by this release.
    pub already_broken: Vec<BrokenQuery>,
}
