//! The PostgreSQL lock conflict matrix ("Conflicting Lock Modes", table 13.3
//! of the manual, section 13.3.1 "Table-Level Locks"; unchanged from 9.x
//! through 17) and what each mode held by a migration blocks for the app.

/// Table-level lock modes, weakest first, spelled as `pg_locks.mode` spells them.
pub const MODES: [&str; 8] = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

/// CONFLICTS[i][j]: mode i conflicts with mode j (the manual's "X" marks).
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

fn index(mode: &str) -> Option<usize> {
    MODES.iter().position(|m| *m == mode)
}

/// Whether holding `held` makes a request for `requested` wait.
pub fn conflicts(held: &str, requested: &str) -> bool {
    match (index(held), index(requested)) {
        (Some(h), Some(r)) => CONFLICTS[h][r],
        _ => false,
    }
}

/// Plain reads (SELECT takes AccessShareLock) wait for this mode.
pub fn blocks_reads(mode: &str) -> bool {
    conflicts(mode, "AccessShareLock")
}

/// Writes (INSERT, UPDATE, DELETE take RowExclusiveLock) wait for this mode.
pub fn blocks_writes(mode: &str) -> bool {
    conflicts(mode, "RowExclusiveLock")
}

/// `reads`, `writes`, `ddl`: what the app would wait on while `mode` is held.
/// Every mode conflicts with AccessExclusiveLock, so every mode blocks some DDL.
pub fn blocks(mode: &str) -> Vec<String> {
    let mut out = Vec::new();
    if blocks_reads(mode) {
        out.push("reads".to_string());
    }
    if blocks_writes(mode) {
        out.push("writes".to_string());
    }
    if index(mode).is_some() {
        out.push("ddl".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_is_symmetric() {
        for i in 0..8 {
            for j in 0..8 {
                assert_eq!(CONFLICTS[i][j], CONFLICTS[j][i], "{} vs {}", MODES[i], MODES[j]);
            }
        }
    }

    #[test]
    fn what_each_mode_blocks() {
        assert_eq!(blocks("AccessExclusiveLock"), ["reads", "writes", "ddl"]);
        assert_eq!(blocks("ShareLock"), ["writes", "ddl"]);
        assert_eq!(blocks("ShareRowExclusiveLock"), ["writes", "ddl"]);
        assert_eq!(blocks("ShareUpdateExclusiveLock"), ["ddl"]);
        assert_eq!(blocks("RowExclusiveLock"), ["ddl"]);
        assert_eq!(blocks("AccessShareLock"), ["ddl"]);
        assert!(conflicts("ShareLock", "ShareUpdateExclusiveLock"));
        assert!(!conflicts("ShareLock", "ShareLock"));
    }
}
