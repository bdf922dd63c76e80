//! The abort rehearsal's part of the report (`abort:`): per cancelled
//! migration, when the cancel came, how long its locks and the app's reads
//! took to come back, what it left behind, and the recovery that was run
//! and proved.

use serde::{Deserialize, Serialize};

use super::{count, format_ms};
use crate::pg::DriftKind;

/// One migration cancelled part-way on a fresh copy of the prepared database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AbortReport {
    /// The migration's id, as `migrations[].id` names it.
    pub migration: String,
    /// `abort.at` as the scenario wrote it.
    pub at: String,
    /// When the cancel came, from the migration's start; null when it finished first.
    pub cancelled_at_ms: Option<u64>,
    /// From the cancel until none of the migration's sessions held a lock (pg_locks, polled every 10ms).
    pub locks_released_ms: Option<u64>,
    /// From the cancel until a read of the table the migration locked hardest succeeded; null when it locked none.
    pub app_resumed_ms: Option<u64>,
    /// The table that read probed.
    #[serde(default)]
    pub probed_table: Option<String>,
    /// What differs from the schema before the migration once it was cancelled.
    pub leftovers: Vec<AbortLeftover>,
    /// The migration tool's version table, before and after the cancel.
    pub version_table: Option<VersionTableState>,
    /// The commands that bring the copy back, verbatim; the SQL ones were run.
    pub recovery: Vec<String>,
    /// After the recovery, the schema equals the one before the migration.
    pub recovered: bool,
    /// The migration, run again after the recovery, applied.
    pub rerun_ok: bool,
    /// Why the abort rehearsal itself could not run (or finish); null when it did.
    pub error: Option<String>,
}

/// An object the cancelled migration left different from before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortLeftover {
    /// As the catalog names it: `public.orders_created_at_idx`, `public.orders.total`.
    pub object: String,
    pub kind: DriftKind,
    /// An index left INVALID (`pg_index.indisvalid = false`), as a cancelled
    /// `CREATE INDEX CONCURRENTLY` leaves it.
    #[serde(default)]
    pub invalid: bool,
}

/// The version table around the cancel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionTableState {
    /// `schema.table`.
    pub table: String,
    /// `unchanged` or `moved`.
    pub state: VersionTableMove,
    /// Its rows before the migration, each as JSON text.
    pub before: Vec<String>,
    /// Its rows after the cancel.
    pub after: Vec<String>,
}

crate::kinds::closed_set! {
    /// Whether the version table moved.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum VersionTableMove {
        Unchanged = "unchanged",
        Moved = "moved",
    }
}

impl AbortReport {
    /// The abort ran, and the recovery was proved on the copy.
    pub fn proved(&self) -> bool {
        self.error.is_none() && self.recovered && self.rerun_ok
    }

    /// Leftover indexes the cancel left INVALID.
    pub fn invalid_indexes(&self) -> impl Iterator<Item = &AbortLeftover> {
        self.leftovers.iter().filter(|l| l.invalid)
    }
}

impl AbortReport {
    /// The abort in a sentence: when the cancel came, how long the locks
    /// and the app's reads took, what was left, whether the recovery held.
    /// `code`: ids in backticks (Markdown).
    pub fn line(&self, code: bool) -> String {
        let id = if code { format!("`{}`", self.migration) } else { self.migration.clone() };
        let Some(at) = self.cancelled_at_ms else {
            return format!("abort of {id} at {}: {}", self.at, self.error.as_deref().unwrap_or("not cancelled"));
        };
        let ms = |v: Option<u64>| v.map(format_ms).unwrap_or_else(|| "never".into());
        let reads = match (&self.probed_table, self.app_resumed_ms) {
            (None, _) => "no table locked against reads".to_string(),
            (Some(_), v) => format!("the app's reads back {} after it", ms(v)),
        };
        let left = match (self.leftovers.len(), self.invalid_indexes().count()) {
            (0, _) => "nothing left behind".to_string(),
            (n, 0) => format!("{} left behind", count(n, "object", "objects")),
            (n, i) => format!("{} left behind ({i} INVALID index)", count(n, "object", "objects")),
        };
        let recovery = match self.recovery.iter().filter(|c| !c.starts_with("--")).count() {
            0 => "no recovery needed".to_string(),
            n => format!("{} to recover", count(n, "command", "commands")),
        };
        let proved = match (self.recovered, self.rerun_ok) {
            (true, true) => "recovered, and it runs again",
            (true, false) => "recovered, but it does not run again",
            (false, _) => "NOT recovered",
        };
        format!(
            "abort of {id} at {}: cancelled after {}, locks gone {} after the cancel, {reads}; {left}; {recovery}; {proved}",
            self.at,
            format_ms(at),
            ms(self.locks_released_ms)
        )
    }
}
