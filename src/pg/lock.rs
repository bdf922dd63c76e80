//! Table-level lock modes and the PostgreSQL lock conflict matrix
//! ("Conflicting Lock Modes", table 13.3 of the manual, section 13.3.1
//! "Table-Level Locks"; unchanged from 9.x through 18), and what each mode
//! held by a migration blocks for the app.

use serde::{Deserialize, Serialize};

use crate::kinds::closed_set;

closed_set! {
    /// A table-level lock mode, spelled in JSON as `pg_locks.mode` spells it.
    /// Ordered weakest first, as the manual lists them. `from_name` reads
    /// `pg_locks.mode`: None for modes that are not table-level (`SIReadLock`
    /// of serializable transactions).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum LockMode {
        AccessShareLock = "AccessShareLock",
        RowShareLock = "RowShareLock",
        RowExclusiveLock = "RowExclusiveLock",
        ShareUpdateExclusiveLock = "ShareUpdateExclusiveLock",
        ShareLock = "ShareLock",
        ShareRowExclusiveLock = "ShareRowExclusiveLock",
        ExclusiveLock = "ExclusiveLock",
        AccessExclusiveLock = "AccessExclusiveLock",
    }
}

impl LockMode {
    /// Whether holding `self` makes a request for `requested` wait.
    pub fn conflicts_with(self, requested: LockMode) -> bool {
        CONFLICTS[self as usize][requested as usize]
    }

    /// Plain reads (SELECT takes AccessShareLock) wait for this mode.
    pub fn blocks_reads(self) -> bool {
        self.conflicts_with(LockMode::AccessShareLock)
    }

    /// Writes (INSERT, UPDATE, DELETE take RowExclusiveLock) wait for this mode.
    pub fn blocks_writes(self) -> bool {
        self.conflicts_with(LockMode::RowExclusiveLock)
    }

    /// What the app would wait on while this mode is held. Every mode
    /// conflicts with AccessExclusiveLock, so every mode blocks some DDL.
    pub fn blocks(self) -> Vec<Blocked> {
        let mut out = Vec::new();
        if self.blocks_reads() {
            out.push(Blocked::Reads);
        }
        if self.blocks_writes() {
            out.push(Blocked::Writes);
        }
        out.push(Blocked::Ddl);
        out
    }
}

closed_set! {
    /// What a held lock makes the app wait for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum Blocked {
        /// SELECT (AccessShareLock).
        Reads = "reads",
        /// INSERT, UPDATE, DELETE (RowExclusiveLock).
        Writes = "writes",
        /// Schema changes (AccessExclusiveLock, and others).
        Ddl = "ddl",
    }
}

/// CONFLICTS[i][j]: mode i conflicts with mode j (the manual's "X" marks),
/// indexed in `LockMode` order.
const CONFLICTS: [[bool; 8]; 8] = {
    const F: bool = false;
    const T: bool = true;
    [
        // AS RS RE SUE S  SRE E  AE
        [F, F, F, F, F, F, F, T], // AccessShare
        [F, F, F, F, F, F, T, T], // RowShare
        [F, F, F, F, T, T, T, T], // RowExclusive
        [F, F, F, T, T, T, T, T], // ShareUpdateExclusive
        [F, F, T, T, F, T, T, T], // Share
        [F, F, T, T, T, T, T, T], // ShareRowExclusive
        [F, T, T, T, T, T, T, T], // Exclusive
        [T, T, T, T, T, T, T, T], // AccessExclusive
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_is_symmetric_and_in_enum_order() {
        for a in LockMode::ALL {
            assert_eq!(LockMode::from_name(a.as_str()), Some(a));
            for b in LockMode::ALL {
                assert_eq!(a.conflicts_with(b), b.conflicts_with(a), "{a} vs {b}");
            }
        }
        assert_eq!(LockMode::from_name("SIReadLock"), None);
    }

    #[test]
    fn what_each_mode_blocks() {
        use Blocked::*;
        assert_eq!(LockMode::AccessExclusiveLock.blocks(), [Reads, Writes, Ddl]);
        assert_eq!(LockMode::ShareLock.blocks(), [Writes, Ddl]);
        assert_eq!(LockMode::ShareRowExclusiveLock.blocks(), [Writes, Ddl]);
        assert_eq!(LockMode::ShareUpdateExclusiveLock.blocks(), [Ddl]);
        assert_eq!(LockMode::RowExclusiveLock.blocks(), [Ddl]);
        assert_eq!(LockMode::AccessShareLock.blocks(), [Ddl]);
        assert!(LockMode::ShareLock.conflicts_with(LockMode::ShareUpdateExclusiveLock));
        assert!(!LockMode::ShareLock.conflicts_with(LockMode::ShareLock));
    }

    #[test]
    fn json_spells_modes_as_pg_locks_does() {
        assert_eq!(serde_json::to_string(&LockMode::ShareRowExclusiveLock).unwrap(), "\"ShareRowExclusiveLock\"");
        assert_eq!(serde_json::to_string(&Blocked::Ddl).unwrap(), "\"ddl\"");
        crate::kinds::assert_serde_spells_as_str(&LockMode::ALL, LockMode::as_str);
        crate::kinds::assert_serde_spells_as_str(&Blocked::ALL, Blocked::as_str);
    }
}
