//! Server settings rehearse applies to servers it owns, known to every
//! backend: the docker backend must keep them off the server's command line
//! (a command-line value outranks ALTER SYSTEM), the url backend sets the
//! ones a database may set for itself. `prepare` explains and applies them.

/// Settings for the restore only: no durability, no autovacuum, big memory for index builds.
pub const FAST_RESTORE: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("synchronous_commit", "off"),
    ("autovacuum", "off"),
    ("maintenance_work_mem", "1GB"),
    ("max_wal_size", "16GB"),
    ("checkpoint_timeout", "1h"),
];

/// Restore settings that only take effect at server start (context
/// `postmaster`): `wal_level = minimal` requires `max_wal_senders = 0`.
pub const FAST_RESTORE_AT_START: &[(&str, &str)] = &[("wal_level", "minimal"), ("max_wal_senders", "0")];

/// Every setting the restore changes, reset once it is done.
pub fn fast_restore_names() -> impl Iterator<Item = &'static str> {
    FAST_RESTORE.iter().chain(FAST_RESTORE_AT_START).map(|(name, _)| *name)
}

/// Settings every rehearsal server starts with: statement observation needs
/// pg_stat_statements preloaded, and I/O timing for its figures.
pub const OBSERVATION: &[(&str, &str)] = &[
    ("shared_preload_libraries", "pg_stat_statements"),
    ("pg_stat_statements.track", "all"),
    ("track_io_timing", "on"),
];
