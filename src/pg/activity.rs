//! What a backend is doing: `pg_stat_activity.state`.

use serde::{Deserialize, Serialize};

use crate::kinds::closed_set;

closed_set! {
    /// `pg_stat_activity.state`, as the server spells it (pgstatfuncs.c;
    /// "pg_stat_activity" in the manual's chapter on monitoring). `Unknown`
    /// stands for NULL (a backend that reports no state) and for a state a
    /// later server adds: written `""`, as the report has always written NULL.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ActivityState {
        /// PostgreSQL 18 and later: still starting up (authenticating).
        Starting = "starting",
        /// Running a statement.
        Active = "active",
        /// Waiting for its client's next statement, outside a transaction.
        Idle = "idle",
        /// Waiting for its client inside a transaction (its locks held).
        IdleInTransaction = "idle in transaction",
        /// Waiting for its client inside a failed transaction (its locks held until ROLLBACK).
        IdleInTransactionAborted = "idle in transaction (aborted)",
        FastpathFunctionCall = "fastpath function call",
        /// `track_activities` is off for this backend.
        Disabled = "disabled",
        Unknown = "",
    }
}

impl ActivityState {
    /// Reads the column (NULL coalesced to `''`): a state not listed is `Unknown`.
    pub fn read(state: &str) -> ActivityState {
        ActivityState::from_name(state).unwrap_or(ActivityState::Unknown)
    }

    /// Waiting for its client's next statement, in a transaction or not.
    pub fn is_idle(self) -> bool {
        matches!(self, ActivityState::Idle | ActivityState::IdleInTransaction | ActivityState::IdleInTransactionAborted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_as_the_server_spells_them() {
        crate::kinds::assert_serde_spells_as_str(&ActivityState::ALL, ActivityState::as_str);
        assert_eq!(ActivityState::read("idle in transaction (aborted)"), ActivityState::IdleInTransactionAborted);
        assert_eq!(ActivityState::read(""), ActivityState::Unknown);
        assert_eq!(ActivityState::read("waiting for godot"), ActivityState::Unknown);
        let idle: Vec<ActivityState> = ActivityState::ALL.into_iter().filter(|s| s.is_idle()).collect();
        let named_idle: Vec<ActivityState> =
            ActivityState::ALL.into_iter().filter(|s| s.as_str().starts_with("idle")).collect();
        assert_eq!(idle, named_idle);
    }
}
