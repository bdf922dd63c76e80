//! The queries `rehearse watch` sends to production while a release runs:
//! the migration tool's history rows, the database's client sessions with
//! what they wait on, the progress views of the migration's sessions, and
//! replication positions. Reads of statistics views and of the history
//! table only (ACCESS SHARE on it, none on catalogs beyond what a `SELECT`
//! of a view takes); PostgreSQL 12 and later, `pg_locks.waitstart` from 14.

use tokio_postgres::{Client, Error};

use crate::pg::{LockMode, PgVersion};
use crate::sys::db::quote_ident;

/// One client session of the watched database, from `pg_stat_activity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedSession {
    pub pid: i32,
    pub application_name: String,
    /// `active`, `idle in transaction`, `idle`, ...
    pub state: String,
    /// The running statement, or the last one when idle (as long as
    /// `track_activity_query_size` keeps it: 1024 bytes by default).
    pub query: String,
    /// How long the current (or last) statement has been running.
    pub query_ms: i64,
    /// The lock it waits for, when it waits for one.
    pub waiting: Option<LockWait>,
}

/// A lock a session asked for and has not been granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockWait {
    /// `schema.name` of the relation, or the lock type (`transactionid`, ...).
    pub object: String,
    /// Null for a lock that is not table-level.
    pub mode: Option<LockMode>,
    /// How long it has waited: from `pg_locks.waitstart` (PostgreSQL 14+),
    /// before 14 from the session's `state_change`.
    pub waited_ms: i64,
    /// `pg_blocking_pids`: the sessions holding a conflicting lock or ahead
    /// of it in the queue for one.
    pub blocked_by: Vec<i32>,
}

/// The client sessions of the connected database but this one.
/// `pg_blocking_pids` takes the lock manager's partition locks (not a
/// heavyweight lock), so it runs only for sessions waiting on a lock.
pub async fn watched_sessions(client: &Client, version: PgVersion) -> Result<Vec<WatchedSession>, Error> {
    // pg_locks.waitstart is new in PostgreSQL 14 (monitoring.sgml, "pg_locks").
    let since = if version.at_least(14) { "l.waitstart" } else { "a.state_change" };
    let sql = format!(
        "/*rehearse*/ SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
                coalesce(a.query, ''),
                coalesce((extract(epoch FROM clock_timestamp() - a.query_start) * 1000)::int8, 0),
                w.object, w.mode, w.waited,
                CASE WHEN w.object IS NULL THEN '{{}}'::int4[] ELSE pg_blocking_pids(a.pid) END
           FROM pg_stat_activity a
           LEFT JOIN LATERAL (
                SELECT CASE WHEN l.relation IS NULL THEN l.locktype
                            ELSE coalesce((SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                                             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = l.relation),
                                          'oid ' || l.relation) END AS object,
                       l.mode,
                       coalesce((extract(epoch FROM clock_timestamp() - {since}) * 1000)::int8, 0) AS waited
                  FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1) w ON a.wait_event_type = 'Lock'
          WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
          ORDER BY a.pid"
    );
    let rows = client.query(&sql, &[]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let object: Option<String> = r.get(5);
            let mode: Option<String> = r.get(6);
            WatchedSession {
                pid: r.get(0),
                application_name: r.get(1),
                state: r.get(2),
                query: r.get(3),
                query_ms: r.get(4),
                waiting: object.map(|object| LockWait {
                    object,
                    mode: mode.as_deref().and_then(LockMode::from_name),
                    waited_ms: r.get::<_, Option<i64>>(7).unwrap_or(0),
                    blocked_by: r.get(8),
                }),
            }
        })
        .collect())
}

/// What a progress view says a session is doing, with how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressNow {
    pub pid: i32,
    /// `CREATE INDEX`, `CLUSTER`, `VACUUM FULL`, `VACUUM`, `COPY FROM`, ...
    pub command: String,
    pub relation: String,
    pub phase: String,
    /// Blocks (bytes for COPY) done and in all, when the phase counts them.
    pub done: Option<i64>,
    pub total: Option<i64>,
}

/// The progress views' rows of the sessions `pids`: create_index
/// (`blocks_done`/`blocks_total`), cluster and vacuum (heap blocks scanned
/// of all), copy (bytes; PostgreSQL 14+). Per PostgreSQL 15's "Progress
/// Reporting" (unchanged in 18 for these columns).
pub async fn progress_of(client: &Client, version: PgVersion, pids: &[i32]) -> Result<Vec<ProgressNow>, Error> {
    let mut views = vec![
        "SELECT pid, relid, command, phase, blocks_done, blocks_total FROM pg_stat_progress_create_index",
        "SELECT pid, relid, command, phase, heap_blks_scanned, heap_blks_total FROM pg_stat_progress_cluster",
        "SELECT pid, relid, 'VACUUM', phase, heap_blks_scanned, heap_blks_total FROM pg_stat_progress_vacuum",
    ];
    if version.at_least(14) {
        views.push("SELECT pid, relid, command, 'copying', bytes_processed, bytes_total FROM pg_stat_progress_copy");
    }
    let sql = format!(
        "/*rehearse*/ SELECT p.pid, p.command, CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END, p.phase,
                NULLIF(p.done, 0)::int8, NULLIF(p.total, 0)::int8
           FROM ({}) AS p (pid, relid, command, phase, done, total)
           LEFT JOIN pg_class c ON c.oid = p.relid LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE p.pid = ANY($1::int4[])",
        views.join(" UNION ALL ")
    );
    let rows = client.query(&sql, &[&pids]).await?;
    Ok(rows
        .iter()
        .map(|r| ProgressNow {
            pid: r.get(0),
            command: r.get(1),
            relation: r.get(2),
            phase: r.get(3),
            done: r.get(4),
            total: r.get(5),
        })
        .collect())
}

/// A history table's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRows {
    /// (version, dirty): Alembic's `version_num` (its heads), or `version`,
    /// Flyway's and sqlx's failed runs (`success` false) left out.
    pub rows: Vec<(String, bool)>,
    /// golang-migrate's layout (a `dirty` column): one row, the current
    /// version, every one before it applied; a dirty one is being applied.
    pub current_only: bool,
}

/// The rows of a migration tool's history table `table` (`schema.name` or
/// `name`); None when the table does not exist (yet), or has neither
/// `version_num` nor `version`.
pub async fn history_versions(client: &Client, table: &str) -> Result<Option<HistoryRows>, Error> {
    let columns = super::table_columns(client, table).await?;
    let has = |c: &str| columns.iter().any(|x| x == c);
    let column = match (has("version_num"), has("version")) {
        (true, _) => "version_num",
        (_, true) => "version",
        _ => return Ok(None),
    };
    let quoted = table.split('.').map(quote_ident).collect::<Vec<_>>().join(".");
    let dirty = if has("dirty") { "coalesce(dirty, false)" } else { "false" };
    let success = if has("success") { " WHERE success" } else { "" };
    let sql = format!("/*rehearse*/ SELECT {column}::text, {dirty} FROM {quoted}{success}");
    let rows = client.query(&sql, &[]).await?;
    let rows = rows.iter().filter_map(|r| Some((r.get::<_, Option<String>>(0)?, r.get(1)))).collect();
    Ok(Some(HistoryRows { rows, current_only: has("dirty") }))
}

/// One streaming standby, as the primary's `pg_stat_replication` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaLag {
    /// `application_name` (the standby's `cluster_name` or walreceiver), and its address.
    pub name: String,
    /// Bytes of WAL between the primary's current write position and the
    /// standby's replay position: the runbook's
    /// `pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)`.
    pub bytes: u64,
    /// `replay_lag` (PostgreSQL 10+); null on an idle server.
    pub ms: Option<u64>,
}

/// Every standby streaming from the primary.
pub async fn replica_lags(client: &Client) -> Result<Vec<ReplicaLag>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT coalesce(NULLIF(application_name, ''), 'walreceiver') || ' at '
                        || coalesce(host(client_addr), 'a local socket'),
                    coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::int8,
                    (extract(epoch FROM replay_lag) * 1000)::int8
               FROM pg_stat_replication ORDER BY pid",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ReplicaLag {
            name: r.get(0),
            bytes: r.get::<_, i64>(1).max(0) as u64,
            ms: r.get::<_, Option<i64>>(2).map(|v| v.max(0) as u64),
        })
        .collect())
}
