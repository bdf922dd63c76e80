//! What the app's traffic felt while each migration ran (`load:` in the
//! scenario), as the report shows it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kinds::closed_set;

/// Latencies of the app's statements (ms, nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

closed_set! {
    /// Whether a migration can run while the app runs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum LoadVerdict {
        /// Within the app's budgets at production's rate.
        NormalHours = "normal_hours",
        /// Within them only at the low-traffic window's rate (`load.window_rate`).
        Window = "window",
        /// Stalls or errors past the budgets even then.
        Unsafe = "unsafe",
    }
}

/// What the app felt while one migration ran (`migrations[].load`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationLoad {
    /// Statements issued while the migration ran.
    pub statements: u64,
    /// Of those, how many completed (the others failed or were cut).
    pub completed: u64,
    /// Still running when observation ended (their wait is counted as far as it went).
    pub cut: u64,
    /// Due while every client was busy (the pool exhausted, typically all
    /// waiting behind the migration): not issued.
    pub not_issued: u64,
    /// Failed statements by SQLSTATE (`connection`: the session failed).
    pub errors: BTreeMap<String, u64>,
    pub latency_ms: Latency,
    /// The same workload right before the migration, without it.
    pub baseline_ms: Latency,
    pub baseline_statements: u64,
    /// The longest stretch during which the app's statements on one table
    /// waited longer than `load.stall_threshold`.
    pub stall_ms: u64,
    /// The table the app queued on behind the migration (its lock in
    /// `pg_locks`), else the one of the stretch's statements.
    pub stall_table: Option<String>,
    /// The most app sessions seen queued behind the migration's locks at once.
    pub max_queue: u64,
    /// How long the load was measured during the migration.
    pub duration_ms: u64,
    /// The gate's verdict against the `max_app_*` budgets; null without any.
    pub verdict: Option<LoadVerdict>,
}

impl MigrationLoad {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A long transaction held during each migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongTransactionInfo {
    pub table: String,
    pub duration_ms: u64,
}

/// A statement of the workload that is not replayed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotReplayedInfo {
    pub line: usize,
    pub sql: String,
    pub reason: String,
}

/// The load as a whole (top-level `load`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadInfo {
    /// The workload file.
    pub queries: String,
    /// `production`, `2x` or `50/s`, as the scenario says.
    pub rate: String,
    /// Statements per second asked.
    pub rate_asked: f64,
    /// Statements per second issued during the baselines (the migrations
    /// aside, which may stall the app): what this machine reached.
    pub rate_reached: f64,
    /// Statements due while every client was busy: not issued.
    pub dropped: u64,
    /// Statements per second of the low-traffic window, when given.
    pub window_rate: Option<f64>,
    pub clients: u32,
    pub baseline_ms: u64,
    pub stall_threshold_ms: u64,
    pub long_transactions: Vec<LongTransactionInfo>,
    pub replayed: usize,
    pub not_replayed: Vec<NotReplayedInfo>,
    /// The generator's own CPU time, and its share of one core while it ran.
    pub generator_cpu_ms: u64,
    pub generator_cpu_share: f64,
}

impl LoadInfo {
    /// Whether the machine fell short of the asked rate (by more than a tenth).
    pub fn below_asked(&self) -> bool {
        self.rate_reached < self.rate_asked * 0.9
    }

    /// The terminal's note when this machine did not reach the rate asked.
    pub fn below_asked_line(&self) -> Option<String> {
        self.below_asked().then(|| {
            format!(
                "the load reached {:.1} statements/s of the {:.1} asked on this machine (the generator used {:.0}% \
                 of a core): the app's figures are at the rate reached; raise load.clients when its statements were \
                 dropped with every client busy, else rehearse on a bigger machine",
                self.rate_reached,
                self.rate_asked,
                self.generator_cpu_share * 100.0
            )
        })
    }
}
