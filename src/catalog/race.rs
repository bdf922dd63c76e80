//! The queries behind racing replicas: the schema and version rows the race
//! is judged by, and what the copies' sessions hold, wait for and run while
//! it lasts. PostgreSQL 12 and later (`pg_blocking_pids` is 9.6+,
//! `starts_with` 11+).

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Error};

use crate::kinds::closed_set;
use crate::pg::ActivityState;

closed_set! {
    /// What a schema object is, in the race's comparison.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum SchemaKind {
        Table = "table",
        Column = "column",
        Index = "index",
        Constraint = "constraint",
    }
}

/// One table, column, index or constraint, and its definition as
/// PostgreSQL prints it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaObject {
    pub kind: SchemaKind,
    /// `schema.table`, `schema.table.column`, `schema.index`, `schema.table.constraint`.
    pub name: String,
    /// Table: `table` or `partitioned table`; column: its type, `NOT NULL`
    /// and default; index: `pg_get_indexdef`, `(INVALID)` when not valid;
    /// constraint: `pg_get_constraintdef`.
    pub definition: String,
}

/// Every user table and partitioned table of the connected database with
/// its columns (type, NOT NULL, default), indexes (definition, validity)
/// and constraints (definition), sorted: what the race compares with the
/// sequential rehearsal. Left out: system schemas, other sessions'
/// temporary tables, tables an extension owns, and the tables named in
/// `except` (`schema.name`, as `format('%I.%I')` spells them: rehearse's own).
/// Reads the catalogs only: no lock on any table.
pub async fn schema_objects(client: &Client, except: &[&str]) -> Result<Vec<SchemaObject>, Error> {
    let except: Vec<String> = except.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(
            "/*rehearse*/ WITH rels AS (
               SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema'
                  AND NOT starts_with(n.nspname, 'pg_')
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                     AND d.objid = c.oid AND d.deptype = 'e')
                  AND format('%I.%I', n.nspname, c.relname) <> ALL ($1::text[]))
             SELECT 0, format('%I.%I', nspname, relname), CASE relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END
               FROM rels
             UNION ALL
             SELECT 1, format('%I.%I.%I', r.nspname, r.relname, a.attname),
                    format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                    || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
               FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             UNION ALL
             SELECT 2, format('%I.%I', r.nspname, ic.relname),
                    pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' (INVALID)' END
               FROM rels r JOIN pg_index i ON i.indrelid = r.oid JOIN pg_class ic ON ic.oid = i.indexrelid
             UNION ALL
             SELECT 3, format('%I.%I.%I', r.nspname, r.relname, con.conname), pg_get_constraintdef(con.oid)
               FROM rels r JOIN pg_constraint con ON con.conrelid = r.oid
             ORDER BY 1, 2",
            &[&except],
        )
        .await?;
    let kind = |n: i32| match n {
        0 => SchemaKind::Table,
        1 => SchemaKind::Column,
        2 => SchemaKind::Index,
        _ => SchemaKind::Constraint,
    };
    Ok(rows.iter().map(|r| SchemaObject { kind: kind(r.get(0)), name: r.get(1), definition: r.get(2) }).collect())
}

/// The migration history tables tools keep, with the column that holds the
/// version: Alembic, Flyway, golang-migrate (and Rails), sqlx, goose.
pub const HISTORY_TABLES: [(&str, &str); 5] = [
    ("alembic_version", "version_num"),
    ("flyway_schema_history", "version"),
    ("schema_migrations", "version"),
    ("_sqlx_migrations", "version"),
    ("goose_db_version", "version_id"),
];

/// The rows of every history table in [`HISTORY_TABLES`] that the
/// connected database has (on the search path), as `table: version`, with
/// ` (failed)` for Flyway's and sqlx's unsuccessful rows and ` (dirty)` for
/// golang-migrate's; sorted. For a migration tool rehearse only knows by
/// its command line.
pub async fn history_rows(client: &Client) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for (table, column) in HISTORY_TABLES {
        let columns = super::table_columns(client, table).await?;
        if !columns.iter().any(|c| c == column) {
            continue;
        }
        let flag = match (columns.iter().any(|c| c == "success"), columns.iter().any(|c| c == "dirty")) {
            (true, _) => "CASE WHEN success THEN '' ELSE ' (failed)' END",
            (_, true) => "CASE WHEN dirty THEN ' (dirty)' ELSE '' END",
            _ => "''",
        };
        let sql = format!("/*rehearse*/ SELECT '{table}: ' || coalesce({column}::text, '') || {flag} FROM {table}");
        out.extend(client.query(&sql, &[]).await?.iter().map(|r| r.get::<_, String>(0)));
    }
    out.sort();
    Ok(out)
}

/// One session of a racing copy, from `pg_stat_activity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaceSession {
    pub pid: i32,
    pub application_name: String,
    pub state: ActivityState,
    pub wait_event_type: Option<String>,
    pub wait_event: Option<String>,
    /// The running query, or the last one when idle (first 1000 characters).
    pub query: String,
    /// How long the current (or last) query has been running.
    pub running_ms: i64,
    /// `pg_blocking_pids(pid)`, read only for a session waiting on a lock:
    /// the function takes the lock manager's locks, so it is not run for
    /// every session at every reading.
    pub blocked_by: Vec<i32>,
}

/// The client sessions of database `datname` whose application_name starts
/// with `prefix`.
pub async fn race_sessions(client: &Client, datname: &str, prefix: &str) -> Result<Vec<RaceSession>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT pid, application_name, coalesce(state, ''), wait_event_type, wait_event,
                    left(coalesce(query, ''), 1000),
                    coalesce((extract(epoch FROM clock_timestamp() - query_start) * 1000)::int8, 0),
                    CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) ELSE '{}'::int4[] END
               FROM pg_stat_activity
              WHERE datname = $1 AND starts_with(application_name, $2) AND pid <> pg_backend_pid()
              ORDER BY pid",
            &[&datname, &prefix],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RaceSession {
            pid: r.get(0),
            application_name: r.get(1),
            state: ActivityState::read(r.get(2)),
            wait_event_type: r.get(3),
            wait_event: r.get(4),
            query: r.get(5),
            running_ms: r.get(6),
            blocked_by: r.get(7),
        })
        .collect())
}

/// An advisory lock held or awaited, from `pg_locks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryLockRow {
    pub pid: i32,
    /// The key as the app wrote it: `pg_advisory_lock(bigint)` keeps its high
    /// half in `classid`, its low half in `objid` and 1 in `objsubid`;
    /// `pg_advisory_lock(int, int)` keeps the two in `classid` and `objid`,
    /// and 2 in `objsubid`.
    pub key: String,
    pub granted: bool,
}

/// The advisory locks of database `datname` (held and awaited, by live
/// backends; prepared transactions' locks have no pid and are left out).
pub async fn advisory_locks(client: &Client, datname: &str) -> Result<Vec<AdvisoryLockRow>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT l.pid,
                    CASE l.objsubid WHEN 1 THEN ((l.classid::int8 << 32) | l.objid::int8)::text
                         ELSE l.classid::int4::text || ',' || l.objid::int4::text END,
                    l.granted
               FROM pg_locks l JOIN pg_database d ON d.oid = l.database
              WHERE l.locktype = 'advisory' AND d.datname = $1 AND l.pid IS NOT NULL
              ORDER BY l.pid",
            &[&datname],
        )
        .await?;
    Ok(rows.iter().map(|r| AdvisoryLockRow { pid: r.get(0), key: r.get(1), granted: r.get(2) }).collect())
}

/// `pg_terminate_backend` for every client session of database `datname`
/// whose application_name starts with `prefix`; how many were signalled.
/// Needs the sessions' role, or pg_signal_backend.
pub async fn terminate_sessions(client: &Client, datname: &str, prefix: &str) -> Result<i64, Error> {
    let row = client
        .query_one(
            "/*rehearse*/ SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = $1 AND starts_with(application_name, $2) AND pid <> pg_backend_pid()",
            &[&datname, &prefix],
        )
        .await?;
    Ok(row.get(0))
}

/// The race's barrier, as [`hold_barrier`] took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarrierHold {
    /// The holding session's pid: the copies' waits at the barrier name it in `pg_blocking_pids`.
    pub pid: i32,
    /// The tables held, `schema.name`.
    pub tables: Vec<String>,
    /// The shortest of `lock_timeout`, `statement_timeout` and (PostgreSQL
    /// 17+) `transaction_timeout` in force for this role in this database
    /// before the barrier turned its own off: the copies, connecting as the
    /// same role to the same database, wait at the barrier under it. None
    /// when all are 0 (off).
    pub timeout_ms: Option<i64>,
}

/// Holds the race's barrier on the connected database: ACCESS EXCLUSIVE
/// on each of `tables` that is there (names as the copies' tools write
/// them, resolved on this session's search path), in a transaction left
/// open until [`release_barrier`]. Any statement of another session that
/// touches one of them waits until then, its `wait_event_type` `Lock`
/// (the manual's table-level lock conflicts: ACCESS EXCLUSIVE conflicts
/// with every mode, ACCESS SHARE of a plain SELECT included); catalog
/// queries about them (`pg_class`, `to_regclass`) take no lock on them and
/// pass. This session's own timeouts are turned off first, so the barrier
/// is never ended by them. None, and no transaction left open, when none
/// of `tables` is there. Privileges (the manual's LOCK page): UPDATE,
/// DELETE or TRUNCATE on a table permit any lock mode on it; the copies
/// connect as the same role and must UPDATE the version table to record a
/// revision, so a role that can migrate can hold the barrier; a table it
/// cannot lock (another tool's, owned by another role) is left out.
pub async fn hold_barrier(client: &Client, tables: &[String]) -> Result<Option<BarrierHold>, Error> {
    let row = client
        .query_one(
            "/*rehearse*/ SELECT pg_backend_pid(),
                    ARRAY(SELECT DISTINCT format('%I.%I', n.nspname, c.relname)
                            FROM unnest($1::text[]) t JOIN pg_class c ON c.oid = to_regclass(t)
                            JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE has_table_privilege(c.oid, 'UPDATE, DELETE, TRUNCATE') ORDER BY 1),
                    (SELECT min(setting::int8) FROM pg_settings
                      WHERE name IN ('lock_timeout', 'statement_timeout', 'transaction_timeout') AND setting <> '0')",
            &[&tables],
        )
        .await?;
    let found: Vec<String> = row.get(1);
    if found.is_empty() {
        return Ok(None);
    }
    client
        .query(
            "/*rehearse*/ SELECT set_config(name, '0', false) FROM pg_settings
              WHERE name IN ('lock_timeout', 'statement_timeout', 'transaction_timeout',
                             'idle_in_transaction_session_timeout')",
            &[],
        )
        .await?;
    // format('%I.%I') quoted each name: safe to splice.
    client.batch_execute(&format!("BEGIN; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", found.join(", "))).await?;
    Ok(Some(BarrierHold { pid: row.get(0), tables: found, timeout_ms: row.get(2) }))
}

/// Releases the barrier: every copy waiting at it goes on at once.
pub async fn release_barrier(client: &Client) -> Result<(), Error> {
    client.batch_execute("ROLLBACK").await
}

/// The settings `ALTER DATABASE datname SET` gave the database for every
/// role (`pg_db_role_setting`), as `name=value` strings.
pub async fn database_settings(client: &Client, datname: &str) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
              WHERE d.datname = $1 AND s.setrole = 0",
            &[&datname],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_kinds_spell_as_the_differences_name_them() {
        crate::kinds::assert_serde_spells_as_str(&SchemaKind::ALL, SchemaKind::as_str);
    }
}
