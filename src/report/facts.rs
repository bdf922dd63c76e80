//! The report's own vocabulary as types: stages, statuses, sources, keys.
//! Each serializes to the string `rehearse.report/v1` has always used.

use serde::{Deserialize, Serialize};

use crate::kinds::closed_set;

closed_set! {
    /// A stage of the pipeline, as the report and the progress lines name it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum Stage {
        Provision = "provision",
        Restore = "restore",
        /// A physical backup copied into the private data directory (`physical:`).
        Copy = "copy",
        /// WAL replayed on the copy to its target, then promoted (`physical:`).
        Recovery = "recovery",
        Analyze = "analyze",
        Snapshot = "snapshot",
        Prepare = "prepare",
        /// The fresh copy of the restored database the race runs on.
        RaceCopy = "race_copy",
        /// The fresh copies of the prepared database the aborts run on (`abort:`).
        AbortCopy = "abort_copy",
        Standby = "standby",
        Discover = "discover",
        Rehearse = "rehearse",
        Race = "race",
        /// The history built from empty and compared (`drift:`).
        Drift = "drift",
        /// Migrations cancelled part-way, and the recovery proved (`abort:`).
        Abort = "abort",
        Backup = "backup",
        /// The copy of the database before the release, which the rollback is compared with (`rollback:`).
        RollbackCopy = "rollback_copy",
        /// The release that undoes this one, applied after it (`rollback:`).
        Rollback = "rollback",
        Report = "report",
        Cleanup = "cleanup",
    }
}

closed_set! {
    /// What the snapshot cache did for this run's restore.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum CacheStatus {
        /// Started from a cached restore: nothing was restored.
        Hit = "hit",
        /// Restored, and saved for the next run.
        Saved = "saved",
        /// Restored; saving it failed (the run's notes say why).
        NotSaved = "not saved",
    }
}

closed_set! {
    /// How a lock was seen.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum LockSource {
        /// Read from pg_locks right after the statement, inside its transaction: exact.
        Statement = "statement",
        /// Read from pg_locks by a second session, in a tight loop, while a
        /// statement that cannot run in a transaction block ran.
        Watched = "watched",
        /// The pg_locks sampler, every `sample_interval`.
        Sampled = "sampled",
        /// Not seen: the mode the manual documents for the statement, reported
        /// because it ran too fast for any reading.
        Inferred = "inferred",
    }
}

closed_set! {
    /// What a migration does to a running app's schema that it may depend on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DestructiveKind {
        DropTable = "drop_table",
        DropView = "drop_view",
        DropMaterializedView = "drop_materialized_view",
        DropSchema = "drop_schema",
        DropColumn = "drop_column",
        RenameTable = "rename_table",
        RenameView = "rename_view",
        RenameMaterializedView = "rename_materialized_view",
        RenameSchema = "rename_schema",
        RenameColumn = "rename_column",
        SetSchema = "set_schema",
    }
}

closed_set! {
    /// A budget's key, as the scenario writes it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum BudgetKey {
        MaxRuntime = "max_runtime",
        MaxExclusiveLock = "max_exclusive_lock",
        MaxWriteBlock = "max_write_block",
        MaxWal = "max_wal",
        MaxProbeWait = "max_probe_wait",
        MaxStandbyLag = "max_standby_lag",
        MaxStandbyReadWait = "max_standby_read_wait",
        MaxAppP99 = "max_app_p99",
        MaxAppStall = "max_app_stall",
        MaxAppErrors = "max_app_errors",
        TotalMaxRuntime = "total.max_runtime",
        TotalMaxWal = "total.max_wal",
        FailOnRegression = "fail_on_regression",
        FailOnIncompatible = "fail_on_incompatible",
        FailOnRace = "fail_on_race",
        FailOnDrift = "fail_on_drift",
        /// A statement's production-scale mid reaches production's
        /// statement_timeout (`estimate:` with a recorded timeout): not a
        /// scenario key, production's own limit.
        StatementTimeout = "statement_timeout",
    }
}

closed_set! {
    /// The unit of a budget's figure and limit.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Unit {
        Ms = "ms",
        Bytes = "bytes",
        Regressions = "regressions",
        /// Queries of the running app.
        Queries = "queries",
        /// Reasons a race of replicas is unsafe or inconclusive; drift findings.
        Findings = "findings",
        /// Failed statements of the app's workload.
        Errors = "errors",
    }
}

closed_set! {
    /// A figure compared with the baseline.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Metric {
        DurationMs = "duration_ms",
        WalBytes = "wal_bytes",
        LongestBlockMs = "longest_block_ms",
    }
}

closed_set! {
    /// An item of the production checklist.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ChecklistId {
        ProdShapedData = "prod_shaped_data",
        RuntimeEstimate = "runtime_estimate",
        Backup = "backup",
        ReplicaLag = "replica_lag",
        OpsComm = "ops_comm",
        TrafficWindow = "traffic_window",
        StandaloneJob = "standalone_job",
        Rollback = "rollback",
        /// Have an abort plan: what a cancel leaves, and the recovery (`abort:`).
        AbortPlan = "abort_plan",
        AppCompatibility = "app_compatibility",
        Monitoring = "monitoring",
    }
}

closed_set! {
    /// What a migration running past `max_runtime` gets.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
    pub enum OnExceed {
        /// Cancel the migration at `max_runtime`, skip the rest, clean up, report.
        #[default]
        Cancel = "cancel",
        /// Let it finish; the overrun is a breach like any other.
        Continue = "continue",
    }
}

closed_set! {
    /// What the per-migration budgets judge (`budgets.apply_to`).
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
    pub enum BudgetsApplyTo {
        /// The figures measured on the rehearsal copy.
        #[default]
        Measured = "measured",
        /// The production-scale estimate's `mid` (needs `estimate:`).
        Estimate = "estimate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::assert_serde_spells_as_str;

    #[test]
    fn json_strings_are_the_v1_ones() {
        assert_eq!(CacheStatus::NotSaved.as_str(), "not saved");
        assert_eq!(BudgetKey::TotalMaxWal.as_str(), "total.max_wal");
        assert_eq!(Metric::LongestBlockMs.as_str(), "longest_block_ms");
        assert_eq!(ChecklistId::ProdShapedData.as_str(), "prod_shaped_data");
        assert_eq!(DestructiveKind::SetSchema.as_str(), "set_schema");
        assert_eq!(Stage::RaceCopy.as_str(), "race_copy");
        assert_serde_spells_as_str(&Stage::ALL, Stage::as_str);
        assert_serde_spells_as_str(&CacheStatus::ALL, CacheStatus::as_str);
        assert_serde_spells_as_str(&LockSource::ALL, LockSource::as_str);
        assert_serde_spells_as_str(&DestructiveKind::ALL, DestructiveKind::as_str);
        assert_serde_spells_as_str(&BudgetKey::ALL, BudgetKey::as_str);
        assert_serde_spells_as_str(&Unit::ALL, Unit::as_str);
        assert_serde_spells_as_str(&Metric::ALL, Metric::as_str);
        assert_serde_spells_as_str(&ChecklistId::ALL, ChecklistId::as_str);
        assert_serde_spells_as_str(&OnExceed::ALL, OnExceed::as_str);
        assert_serde_spells_as_str(&BudgetsApplyTo::ALL, BudgetsApplyTo::as_str);
    }

    /// The model's and the race section's sets; `DriftCause` and
    /// `RaceFailure` have words for readers apart from their JSON strings.
    #[test]
    fn the_model_s_sets_spell_as_v1_does() {
        use crate::report::*;
        assert_serde_spells_as_str(&DriftCause::ALL, DriftCause::as_str);
        assert_serde_spells_as_str(&MigrationKind::ALL, MigrationKind::as_str);
        assert_serde_spells_as_str(&ToolNetworkKind::ALL, ToolNetworkKind::as_str);
        assert_serde_spells_as_str(&RunStatus::ALL, RunStatus::as_str);
        assert_serde_spells_as_str(&MigrationStatus::ALL, MigrationStatus::as_str);
        assert_serde_spells_as_str(&RaceVerdict::ALL, RaceVerdict::as_str);
        assert_serde_spells_as_str(&BarrierRelease::ALL, BarrierRelease::as_str);
        assert_serde_spells_as_str(&RaceFailure::ALL, RaceFailure::as_str);
        assert_serde_spells_as_str(&AdvisoryLockKind::ALL, AdvisoryLockKind::as_str);
        assert_serde_spells_as_str(&ReportFormat::ALL, ReportFormat::as_str);
        assert_eq!(
            (DriftCause::OnlyInHistory.as_str(), DriftCause::OnlyInHistory.in_words()),
            ("only_in_history", "only in the history")
        );
        assert_eq!(
            (RaceFailure::VersionTable.as_str(), RaceFailure::VersionTable.in_words()),
            ("version_table", "version table moved on")
        );
    }
}
