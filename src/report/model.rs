//! The report model (`rehearse.report/v1`): what a run found, independent of
//! how it is rendered. Keys are a public contract (docs/report.md): add
//! freely, never rename. Durations are milliseconds, sizes bytes.

use serde::{Deserialize, Serialize};

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
    pub stopped_at_stage: Option<String>,
    /// Why the run stopped, when it was not a migration failing.
    pub error: Option<String>,
    pub postgres: PostgresInfo,
    pub machine: MachineInfo,
    pub dump: DumpInfo,
    pub restore: RestoreInfo,
    pub stages: Vec<StageTime>,
    pub migrations: Vec<MigrationReport>,
    pub totals: Totals,
    /// Breaches of the run-wide budgets (`budgets.total`).
    pub budget_breaches: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Passed,
    BudgetExceeded,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Passed => "passed",
            RunStatus::BudgetExceeded => "budget_exceeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PostgresInfo {
    /// `server_version` of the throwaway server, e.g. "15.18".
    pub version: Option<String>,
    pub backend: String,
    /// Effective values of key settings during the rehearsal.
    pub settings: Vec<Setting>,
    /// The scenario's `postgres.settings`, as applied.
    pub scenario_settings: Vec<Setting>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub format: Option<crate::restore::DumpFormat>,
    pub bytes: u64,
    pub sha256: Option<String>,
    /// Restored user tables, largest first; `rows` from pg_class.reltuples
    /// right after VACUUM ANALYZE (exact for a fresh restore).
    pub tables: Vec<TableInfo>,
    pub database_bytes: Option<i64>,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageTime {
    pub stage: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationReport {
    pub id: String,
    pub description: String,
    pub version: String,
    pub file: Option<String>,
    pub status: MigrationStatus,
    pub duration_ms: u64,
    pub wal: Wal,
    pub statements: Vec<StatementReport>,
    pub budget_breaches: Vec<String>,
    pub error: Option<MigrationError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationStatus {
    Applied,
    Failed,
    TimedOut,
    Skipped,
    Interrupted,
}

impl MigrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::Applied => "applied",
            MigrationStatus::Failed => "failed",
            MigrationStatus::TimedOut => "timed_out",
            MigrationStatus::Skipped => "skipped",
            MigrationStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Wal {
    /// `pg_current_wal_lsn()` after minus before.
    pub bytes: u64,
    /// Not measured yet by this version (null).
    pub records: Option<u64>,
    pub fpi: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatementReport {
    pub query: String,
    /// Line in the migration file where the statement starts.
    pub line: Option<usize>,
    pub duration_ms: u64,
    /// Rows the statement reported (CommandComplete), 0 for DDL.
    pub rows: u64,
    pub wal_bytes: Option<u64>,
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
        MigrationError {
            message: message.into(),
            statement: None,
            file: None,
            line: None,
            sqlstate: None,
        }
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
}
