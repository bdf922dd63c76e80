//! Relation locks in `pg_locks`: every migration backend's (the sampler),
//! one session's own (exact per-statement capture, in Rust and in the
//! Alembic helper, which receives [`OWN_LOCKS`] from here), and one backend's
//! while a statement that cannot run in a transaction block runs (the watcher).
//!
//! Only table-level modes are read: `SIReadLock` (predicate locks of
//! serializable transactions) has locktype `relation` too but blocks nobody.
//! User relations only (oid >= 16384, FirstNormalObjectId), so catalogs and
//! their locks during DDL are left out; TOAST tables too.

use tokio_postgres::{Client, Error, Row, Statement};

use crate::pg::{LockMode, RelationKind};

/// One relation lock seen in pg_locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    pub oid: i64,
    /// Empty when the relation is not visible to the observer (created in
    /// the migration's uncommitted transaction, or already dropped).
    pub name: String,
    pub kind: RelationKind,
    pub mode: LockMode,
    pub granted: bool,
}

impl LockRow {
    /// From a row of (oid, name, relkind, mode, granted); None for a mode
    /// that is not a table-level lock mode.
    fn from_row(r: &Row) -> Option<LockRow> {
        Some(LockRow {
            oid: r.get(0),
            name: r.get(1),
            kind: RelationKind::from_relkind(r.get(2)),
            mode: LockMode::from_name(r.get(3))?,
            granted: r.get(4),
        })
    }
}

/// Relation locks of client backends in database `$1` other than the pids
/// in `$2` (rehearse's own sessions).
pub const RELATION_LOCKS: &str = "/*rehearse*/ SELECT l.relation::int8, CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END,
        coalesce(c.relkind::text, ''), l.mode, l.granted
   FROM pg_locks l
   JOIN pg_stat_activity a ON a.pid = l.pid
   LEFT JOIN pg_class c ON c.oid = l.relation
   LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE l.locktype = 'relation' AND l.database = $1::int8::oid
    AND l.relation::int8 >= 16384 AND l.mode <> 'SIReadLock'
    AND a.backend_type = 'client backend'
    AND l.pid <> ALL($2::int4[])
    AND coalesce(n.nspname, '') NOT LIKE 'pg_toast%'";

/// Runs [`RELATION_LOCKS`], prepared once by the caller: the sampler runs it
/// every few milliseconds, and parsing and planning this four-way join each
/// time cost six times more than running it (pgbench on PostgreSQL 15: 0.84 ms a
/// query unprepared, 0.11 ms prepared), CPU taken from the migration.
pub async fn relation_locks(
    client: &Client,
    prepared: &Statement,
    db_oid: i64,
    exclude: &[i32],
) -> Result<Vec<LockRow>, Error> {
    let rows = client.query(prepared, &[&db_oid, &exclude]).await?;
    Ok(rows.iter().filter_map(LockRow::from_row).collect())
}

/// The relation locks backend `$1` holds or waits for. The watcher runs it
/// in a tight loop, prepared, while a statement that cannot run in a
/// transaction block runs: such a statement releases its locks as it ends,
/// before any query of its own session could read them.
pub const BACKEND_LOCKS: &str = "/*rehearse*/ SELECT l.relation::int8, CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END,
        coalesce(c.relkind::text, ''), l.mode, l.granted
   FROM pg_locks l
   LEFT JOIN pg_class c ON c.oid = l.relation
   LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE l.pid = $1 AND l.locktype = 'relation'
    AND l.relation::int8 >= 16384 AND l.mode <> 'SIReadLock'
    AND coalesce(n.nspname, '') NOT LIKE 'pg_toast%'";

/// Runs [`BACKEND_LOCKS`] for `pid`, prepared once by the caller.
pub async fn backend_locks(client: &Client, prepared: &Statement, pid: i32) -> Result<Vec<LockRow>, Error> {
    let rows = client.query(prepared, &[&pid]).await?;
    Ok(rows.iter().filter_map(LockRow::from_row).collect())
}

/// What the calling session holds right now (run inside a migration's
/// transaction, right after a statement): the WAL insert position, the
/// session's lock_timeout in ms, and its relation locks as a JSON array of
/// `[oid, name, relkind, mode]`. The Alembic helper runs this very text
/// (rehearse passes it in `REHEARSE_OWN_LOCKS_SQL`) after each batch of
/// statements. lock_timeout is read with current_setting (its text, `0`,
/// `250ms`, `5s`, `1min`, is valid interval input), not from pg_settings,
/// which builds every setting's row each time (half a millisecond, a
/// tracer's cost on a revision of thousands of statements). Any PostgreSQL version.
pub const OWN_LOCKS: &str = "/*rehearse*/ SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8,
  (extract(epoch FROM current_setting('lock_timeout')::interval) * 1000)::int8,
  (SELECT coalesce(json_agg(json_build_array(l.relation::int8,
       CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END,
       coalesce(c.relkind::text, ''), l.mode)), '[]')
     FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
     LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
      AND l.relation::int8 >= 16384 AND l.mode <> 'SIReadLock'
      AND coalesce(n.nspname, '') NOT LIKE 'pg_toast%')::text";

/// One entry of [`OWN_LOCKS`]' JSON array, as the Alembic helper passes it on.
pub type OwnLockEntry = (i64, String, String, String);

/// Reads [`OWN_LOCKS`]' array entries (granted locks).
pub fn own_lock_rows(entries: Vec<OwnLockEntry>) -> Vec<LockRow> {
    entries
        .into_iter()
        .filter_map(|(oid, name, relkind, mode)| {
            Some(LockRow {
                oid,
                name,
                kind: RelationKind::from_relkind(&relkind),
                mode: LockMode::from_name(&mode)?,
                granted: true,
            })
        })
        .collect()
}

/// What the session holds now (see [`OWN_LOCKS`]).
#[derive(Debug, Clone, Default)]
pub struct OwnLocks {
    pub locks: Vec<LockRow>,
    /// WAL insert position, as a byte offset.
    pub wal: u64,
    /// `lock_timeout` in ms (0: none).
    pub lock_timeout_ms: u64,
}

/// Runs [`OWN_LOCKS`] on the migration's own session.
pub async fn own_locks(client: &Client) -> Result<OwnLocks, Error> {
    let row = client.query_one(OWN_LOCKS, &[]).await?;
    // The server built this JSON itself from the query above: it always parses.
    let entries: Vec<OwnLockEntry> = serde_json::from_str(row.get::<_, &str>(2)).unwrap_or_default();
    Ok(OwnLocks {
        locks: own_lock_rows(entries),
        wal: row.get::<_, i64>(0) as u64,
        lock_timeout_ms: row.get::<_, i64>(1) as u64,
    })
}
