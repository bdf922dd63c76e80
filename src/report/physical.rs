//! A physical source in the report (`dump.source: physical`, `dump.physical`):
//! which backup, recovered how far, and what the copy and the recovery took.

use serde::{Deserialize, Serialize};

use crate::kinds::closed_set;

closed_set! {
    /// Where the rehearsed data came from (`dump.source`).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DumpSource {
        /// A `pg_dump`, restored.
        #[default]
        Logical = "logical",
        /// A physical backup, copied and recovered (`physical:`).
        Physical = "physical",
        /// A clone another engine made (`backend: clone`).
        Clone = "clone",
    }
}

closed_set! {
    /// How far a physical copy was recovered before it was promoted.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RecoveryTargetKind {
        /// The end of the WAL the backup holds: its consistent point.
        Consistent = "consistent",
        /// The end of the archive `restore_command` reads.
        Latest = "latest",
        /// `recovery_target_time`.
        Time = "time",
        /// `recovery_target_lsn`.
        Lsn = "lsn",
    }
}

closed_set! {
    /// The kind of physical backup.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum PhysicalKind {
        /// `pg_basebackup -Fp`: a data directory.
        BasebackupPlain = "basebackup_plain",
        /// `pg_basebackup -Ft`: tars, maybe compressed.
        BasebackupTar = "basebackup_tar",
        /// A backup tool's restore command (pgBackRest, WAL-G).
        RestoreCommand = "restore_command",
    }
}

/// A physical source as recovered (`dump.physical`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalInfo {
    pub kind: PhysicalKind,
    /// The backup's path, or the restore command's program (never its arguments).
    pub source: String,
    /// The backup's PostgreSQL major version (its PG_VERSION).
    pub pg_version: Option<String>,
    /// `LABEL:` of the backup's backup_label.
    pub label: Option<String>,
    /// `START TIME:` of backup_label.
    pub started_at: Option<String>,
    /// `START WAL LOCATION:` of backup_label.
    pub start_lsn: Option<String>,
    /// The end of the backup's WAL range (backup_manifest's `WAL-Ranges`).
    pub end_lsn: Option<String>,
    pub target: RecoveryTargetKind,
    /// The target's time or LSN, as the scenario gives it.
    pub target_value: Option<String>,
    /// The last transaction replayed (the server's "last completed transaction was at log time").
    pub recovered_to: Option<String>,
    /// Where replay ended (the server's "redo done at").
    pub redo_end_lsn: Option<String>,
    /// WAL replayed: from the backup's start LSN to where replay ended.
    pub wal_replayed_bytes: Option<u64>,
    /// The bytes copied into the private data directory.
    pub copied_bytes: u64,
    pub copy_ms: u64,
    pub recovery_ms: u64,
    /// The copy's databases; the rehearsal runs on `database`, the others stay as they were.
    pub databases: Vec<String>,
    pub database: String,
}
