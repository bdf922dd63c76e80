//! The report's own vocabulary as types: stages, statuses, sources, keys.
//! Each serializes to the string `rehearse.report/v1` has always used.

use serde::{Deserialize, Serialize};

/// A stage of the pipeline, as the report and the progress lines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Provision,
    Restore,
    Analyze,
    Snapshot,
    Prepare,
    /// The fresh copy of the restored database the race runs on.
    #[serde(rename = "race_copy")]
    RaceCopy,
    Standby,
    Discover,
    Rehearse,
    Race,
    /// The history built from empty and compared (`drift:`).
    Drift,
    Backup,
    Report,
    Cleanup,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Provision => "provision",
            Stage::Restore => "restore",
            Stage::Analyze => "analyze",
            Stage::Snapshot => "snapshot",
            Stage::Prepare => "prepare",
            Stage::RaceCopy => "race_copy",
            Stage::Standby => "standby",
            Stage::Discover => "discover",
            Stage::Rehearse => "rehearse",
            Stage::Race => "race",
            Stage::Drift => "drift",
            Stage::Backup => "backup",
            Stage::Report => "report",
            Stage::Cleanup => "cleanup",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the snapshot cache did for this run's restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheStatus {
    /// Started from a cached restore: nothing was restored.
    #[serde(rename = "hit")]
    Hit,
    /// Restored, and saved for the next run.
    #[serde(rename = "saved")]
    Saved,
    /// Restored; saving it failed (the run's notes say why).
    #[serde(rename = "not saved")]
    NotSaved,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Saved => "saved",
            CacheStatus::NotSaved => "not saved",
        }
    }
}

/// How a lock was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockSource {
    /// Read from pg_locks right after the statement, inside its transaction: exact.
    Statement,
    /// Read from pg_locks by a second session, in a tight loop, while a
    /// statement that cannot run in a transaction block ran.
    Watched,
    /// The pg_locks sampler, every `sample_interval`.
    Sampled,
    /// Not seen: the mode the manual documents for the statement, reported
    /// because it ran too fast for any reading.
    Inferred,
}

impl LockSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LockSource::Statement => "statement",
            LockSource::Watched => "watched",
            LockSource::Sampled => "sampled",
            LockSource::Inferred => "inferred",
        }
    }
}

/// What a migration does to a running app's schema that it may depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestructiveKind {
    DropTable,
    DropView,
    DropMaterializedView,
    DropSchema,
    DropColumn,
    RenameTable,
    RenameView,
    RenameMaterializedView,
    RenameSchema,
    RenameColumn,
    SetSchema,
}

impl DestructiveKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DestructiveKind::DropTable => "drop_table",
            DestructiveKind::DropView => "drop_view",
            DestructiveKind::DropMaterializedView => "drop_materialized_view",
            DestructiveKind::DropSchema => "drop_schema",
            DestructiveKind::DropColumn => "drop_column",
            DestructiveKind::RenameTable => "rename_table",
            DestructiveKind::RenameView => "rename_view",
            DestructiveKind::RenameMaterializedView => "rename_materialized_view",
            DestructiveKind::RenameSchema => "rename_schema",
            DestructiveKind::RenameColumn => "rename_column",
            DestructiveKind::SetSchema => "set_schema",
        }
    }
}

impl std::fmt::Display for DestructiveKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A budget's key, as the scenario writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BudgetKey {
    #[serde(rename = "max_runtime")]
    MaxRuntime,
    #[serde(rename = "max_exclusive_lock")]
    MaxExclusiveLock,
    #[serde(rename = "max_write_block")]
    MaxWriteBlock,
    #[serde(rename = "max_wal")]
    MaxWal,
    #[serde(rename = "max_probe_wait")]
    MaxProbeWait,
    #[serde(rename = "max_standby_lag")]
    MaxStandbyLag,
    #[serde(rename = "max_standby_read_wait")]
    MaxStandbyReadWait,
    #[serde(rename = "total.max_runtime")]
    TotalMaxRuntime,
    #[serde(rename = "total.max_wal")]
    TotalMaxWal,
    #[serde(rename = "fail_on_regression")]
    FailOnRegression,
    #[serde(rename = "fail_on_incompatible")]
    FailOnIncompatible,
    #[serde(rename = "fail_on_race")]
    FailOnRace,
    #[serde(rename = "fail_on_drift")]
    FailOnDrift,
}

impl BudgetKey {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKey::MaxRuntime => "max_runtime",
            BudgetKey::MaxExclusiveLock => "max_exclusive_lock",
            BudgetKey::MaxWriteBlock => "max_write_block",
            BudgetKey::MaxWal => "max_wal",
            BudgetKey::MaxProbeWait => "max_probe_wait",
            BudgetKey::MaxStandbyLag => "max_standby_lag",
            BudgetKey::MaxStandbyReadWait => "max_standby_read_wait",
            BudgetKey::TotalMaxRuntime => "total.max_runtime",
            BudgetKey::TotalMaxWal => "total.max_wal",
            BudgetKey::FailOnRegression => "fail_on_regression",
            BudgetKey::FailOnIncompatible => "fail_on_incompatible",
            BudgetKey::FailOnRace => "fail_on_race",
            BudgetKey::FailOnDrift => "fail_on_drift",
        }
    }
}

impl std::fmt::Display for BudgetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unit of a budget's figure and limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Ms,
    Bytes,
    Regressions,
    /// Queries of the running app.
    Queries,
    /// Reasons a race of replicas is unsafe or inconclusive; drift findings.
    Findings,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Bytes => "bytes",
            Unit::Regressions => "regressions",
            Unit::Queries => "queries",
            Unit::Findings => "findings",
        }
    }
}

/// A figure compared with the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    DurationMs,
    WalBytes,
    LongestBlockMs,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::DurationMs => "duration_ms",
            Metric::WalBytes => "wal_bytes",
            Metric::LongestBlockMs => "longest_block_ms",
        }
    }
}

/// An item of the production checklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecklistId {
    ProdShapedData,
    RuntimeEstimate,
    Backup,
    ReplicaLag,
    OpsComm,
    StandaloneJob,
    Rollback,
    AppCompatibility,
    Monitoring,
}

/// What a migration running past `max_runtime` gets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExceed {
    /// Cancel the migration at `max_runtime`, skip the rest, clean up, report.
    #[default]
    Cancel,
    /// Let it finish; the overrun is a breach like any other.
    Continue,
}

/// What the per-migration budgets judge (`budgets.apply_to`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetsApplyTo {
    /// The figures measured on the rehearsal copy.
    #[default]
    Measured,
    /// The production-scale estimate's `mid` (needs `estimate:`).
    Estimate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_the_v1_ones() {
        let s = |v: serde_json::Value| v.as_str().unwrap().to_string();
        assert_eq!(s(serde_json::to_value(CacheStatus::NotSaved).unwrap()), "not saved");
        assert_eq!(s(serde_json::to_value(BudgetKey::TotalMaxWal).unwrap()), "total.max_wal");
        assert_eq!(s(serde_json::to_value(Metric::LongestBlockMs).unwrap()), "longest_block_ms");
        assert_eq!(s(serde_json::to_value(ChecklistId::ProdShapedData).unwrap()), "prod_shaped_data");
        assert_eq!(s(serde_json::to_value(DestructiveKind::SetSchema).unwrap()), "set_schema");
        assert_eq!(s(serde_json::to_value(Stage::Analyze).unwrap()), "analyze");
        assert_eq!(s(serde_json::to_value(Stage::RaceCopy).unwrap()), Stage::RaceCopy.as_str());
        for l in [LockSource::Statement, LockSource::Watched, LockSource::Sampled, LockSource::Inferred] {
            assert_eq!(s(serde_json::to_value(l).unwrap()), l.as_str());
        }
        for c in [CacheStatus::Hit, CacheStatus::Saved, CacheStatus::NotSaved] {
            assert_eq!(s(serde_json::to_value(c).unwrap()), c.as_str());
        }
        for m in [Metric::DurationMs, Metric::WalBytes, Metric::LongestBlockMs] {
            assert_eq!(s(serde_json::to_value(m).unwrap()), m.as_str());
        }
        for u in [Unit::Ms, Unit::Bytes, Unit::Regressions, Unit::Queries, Unit::Findings] {
            assert_eq!(s(serde_json::to_value(u).unwrap()), u.as_str());
        }
        for k in [
            BudgetKey::MaxRuntime,
            BudgetKey::TotalMaxRuntime,
            BudgetKey::FailOnRegression,
            BudgetKey::FailOnIncompatible,
            BudgetKey::FailOnRace,
            BudgetKey::FailOnDrift,
        ] {
            assert_eq!(s(serde_json::to_value(k).unwrap()), k.as_str());
        }
        for k in [DestructiveKind::DropMaterializedView, DestructiveKind::RenameSchema] {
            assert_eq!(s(serde_json::to_value(k).unwrap()), k.as_str());
        }
    }
}
