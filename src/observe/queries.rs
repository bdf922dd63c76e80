//! All SQL the observers run, one documented function per query. Every
//! query carries the `/*rehearse*/` marker so pg_stat_statements output can
//! leave rehearse's own queries out. Versions: PostgreSQL 12+ unless noted.

use tokio_postgres::{Client, Error, Statement};

/// Marker in every query rehearse sends while a migration runs.
pub const MARK: &str = "/*rehearse*/";

// format('%I') raises on NULL, so names of relations not (yet) visible in
// pg_class -- created in another session's open transaction, or a rewrite's
// transient heap -- come back as '' and are named later or by oid.

/// One relation lock seen in pg_locks.
#[derive(Debug, Clone)]
pub struct LockRow {
    pub oid: i64,
    /// Empty when the relation is not visible to the observer (created in
    /// the migration's uncommitted transaction).
    pub name: String,
    pub kind: String,
    pub mode: String,
    pub granted: bool,
}

/// Relation locks of client backends in database `db_oid` other than
/// `exclude` (rehearse's own sessions), user relations only (oid >= 16384,
/// FirstNormalObjectId, so catalogs and their locks during DDL are left out;
/// TOAST tables too).
pub const RELATION_LOCKS: &str = "/*rehearse*/ SELECT l.relation::int8, CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END,
        coalesce(c.relkind::text, ''), l.mode, l.granted
   FROM pg_locks l
   JOIN pg_stat_activity a ON a.pid = l.pid
   LEFT JOIN pg_class c ON c.oid = l.relation
   LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE l.locktype = 'relation' AND l.database = $1::int8::oid
    AND l.relation::int8 >= 16384
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
    Ok(rows
        .iter()
        .map(|r| LockRow {
            oid: r.get(0),
            name: r.get(1),
            kind: kind_name(r.get(2)),
            mode: r.get(3),
            granted: r.get(4),
        })
        .collect())
}

/// What the calling session holds right now (run inside the migration's
/// transaction, right after a statement), the WAL insert position, and the
/// session's lock_timeout in ms. Returns (locks, wal position, lock_timeout).
pub async fn own_locks(client: &Client) -> Result<(Vec<LockRow>, u64, u64), Error> {
    let row = client
        .query_one(
            "/*rehearse*/ SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8,
                    (SELECT setting::int8 FROM pg_settings WHERE name = 'lock_timeout'),
                    (SELECT coalesce(json_agg(json_build_array(l.relation::int8,
                                 CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END, coalesce(c.relkind::text, ''), l.mode)), '[]')
                       FROM pg_locks l
                       LEFT JOIN pg_class c ON c.oid = l.relation
                       LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
                        AND l.relation::int8 >= 16384 AND coalesce(n.nspname, '') NOT LIKE 'pg_toast%')::text",
            &[],
        )
        .await?;
    let parsed: Vec<(i64, String, String, String)> = serde_json::from_str(row.get::<_, &str>(2)).unwrap_or_default();
    let locks = parsed
        .into_iter()
        .map(|(oid, name, kind, mode)| LockRow { oid, name, kind: kind_name(&kind), mode, granted: true })
        .collect();
    Ok((locks, row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
}

/// The WAL insert position as a byte offset (`pg_current_wal_insert_lsn()`,
/// 10+). Not `pg_current_wal_lsn()`: that is the write position, which lags
/// behind inserts still in WAL buffers, so differences of it drift.
pub async fn wal_position(client: &Client) -> Result<u64, Error> {
    let row = client.query_one("/*rehearse*/ SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8", &[]).await?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Cluster-wide WAL counters (records, full-page images, bytes) from
/// `pg_stat_wal` (PostgreSQL 14+).
pub async fn wal_counters(client: &Client) -> Result<(u64, u64, u64), Error> {
    let row = client
        .query_one("/*rehearse*/ SELECT wal_records::int8, wal_fpi::int8, wal_bytes::int8 FROM pg_stat_wal", &[])
        .await?;
    Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64, row.get::<_, i64>(2) as u64))
}

/// Checkpoints started so far: `pg_stat_bgwriter` up to 16,
/// `pg_stat_checkpointer` from 17 (where the bgwriter columns were removed).
pub async fn checkpoints(client: &Client, server_version_num: i32) -> Result<u64, Error> {
    let sql = if server_version_num >= 170000 {
        "/*rehearse*/ SELECT (num_timed + num_requested)::int8 FROM pg_stat_checkpointer"
    } else {
        "/*rehearse*/ SELECT (checkpoints_timed + checkpoints_req)::int8 FROM pg_stat_bgwriter"
    };
    Ok(client.query_one(sql, &[]).await?.get::<_, i64>(0) as u64)
}

/// `server_version_num`, e.g. 150018.
pub async fn server_version_num(client: &Client) -> Result<i32, Error> {
    let row = client.query_one("/*rehearse*/ SELECT current_setting('server_version_num')::int4", &[]).await?;
    Ok(row.get(0))
}

/// The current database's oid and this session's backend pid.
pub async fn database_oid_and_pid(client: &Client) -> Result<(i64, i32), Error> {
    let row = client
        .query_one(
            "/*rehearse*/ SELECT oid::int8, pg_backend_pid() FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// This session's backend pid.
pub async fn backend_pid(client: &Client) -> Result<i32, Error> {
    Ok(client.query_one("/*rehearse*/ SELECT pg_backend_pid()", &[]).await?.get(0))
}

/// One user table, index or materialized view: identity, storage and size.
#[derive(Debug, Clone)]
pub struct RelationRow {
    pub oid: i64,
    pub relfilenode: i64,
    pub name: String,
    pub kind: String,
    /// Table size with TOAST (`pg_table_size`) for tables, `pg_relation_size` for indexes.
    pub bytes: i64,
    pub rows: i64,
}

/// Every user table, materialized view and index (`pg_class`).
/// Partitioned parents have no storage (relfilenode 0) and are left out.
pub async fn relations(client: &Client) -> Result<Vec<RelationRow>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT c.oid::int8, c.relfilenode::int8, format('%I.%I', n.nspname, c.relname), c.relkind::text,
                    CASE WHEN c.relkind = 'i' THEN pg_relation_size(c.oid) ELSE pg_table_size(c.oid) END,
                    greatest(c.reltuples, 0)::int8
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'm', 'i') AND c.relfilenode <> 0
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RelationRow {
            oid: r.get(0),
            relfilenode: r.get(1),
            name: r.get(2),
            kind: kind_name(r.get(3)),
            bytes: r.get(4),
            rows: r.get(5),
        })
        .collect())
}

/// Names of relations by oid, for locks seen before the relation was visible.
pub async fn relation_names(client: &Client, oids: &[i64]) -> Result<Vec<(i64, String, String)>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT c.oid::int8, format('%I.%I', n.nspname, c.relname), c.relkind::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid::int8 = ANY($1) AND n.nspname NOT LIKE 'pg_toast%'",
            &[&oids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), kind_name(r.get(2)))).collect())
}

/// Makes `pg_stat_statements` queryable in the connected database (it
/// records statements of every database once preloaded).
pub async fn ensure_pg_stat_statements(client: &Client) -> Result<(), Error> {
    client.batch_execute("/*rehearse*/ CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await
}

/// Forgets the statement statistics of database `db_oid` only
/// (`pg_stat_statements_reset(userid, dbid, queryid)`, 12+): on a shared
/// server (url backend) other databases' statistics are not ours to reset.
pub async fn reset_statements(client: &Client, db_oid: i64) -> Result<(), Error> {
    client.execute("/*rehearse*/ SELECT pg_stat_statements_reset(0, $1::int8::oid, 0)", &[&db_oid]).await.map(|_| ())
}

/// Statements run in database `db_oid` since the reset, by total time,
/// rehearse's own left out (`wal_bytes` is 13+; `total_exec_time` 13+).
pub async fn top_statements(
    client: &Client,
    db_oid: i64,
    limit: i64,
) -> Result<Vec<(String, i64, f64, i64, i64)>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT query, calls, total_exec_time, rows, wal_bytes::int8
               FROM pg_stat_statements
              WHERE dbid = $1::int8::oid AND query NOT LIKE '%/*rehearse*/%'
              ORDER BY total_exec_time DESC LIMIT $2",
            &[&db_oid, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect())
}

/// Forces this session's statistics (pg_stat_wal among them) to be flushed
/// when it next goes idle, which is before the reply to this query
/// (`pg_stat_force_next_flush()`, 15+; stats are otherwise flushed at most once a second).
pub async fn force_stats_flush(client: &Client) -> Result<(), Error> {
    client.batch_execute("/*rehearse*/ SELECT pg_stat_force_next_flush()").await
}

/// `pg_class.relkind` in words.
pub fn kind_name(relkind: &str) -> String {
    match relkind {
        "r" => "table",
        "i" => "index",
        "S" => "sequence",
        "v" => "view",
        "m" => "materialized view",
        "p" => "partitioned table",
        "I" => "partitioned index",
        "f" => "foreign table",
        "t" => "toast table",
        "c" => "composite type",
        _ => "relation",
    }
    .to_string()
}

/// Indexes left invalid, e.g. by a failed CREATE INDEX CONCURRENTLY (`pg_index.indisvalid`).
pub async fn invalid_indexes(client: &Client) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE NOT i.indisvalid ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The revisions in `alembic_version`, if the table exists.
pub async fn alembic_version(client: &Client) -> Result<Option<Vec<String>>, Error> {
    let exists: bool =
        client.query_one("/*rehearse*/ SELECT to_regclass('alembic_version') IS NOT NULL", &[]).await?.get(0);
    if !exists {
        return Ok(None);
    }
    let rows = client.query("/*rehearse*/ SELECT version_num::text FROM alembic_version ORDER BY 1", &[]).await?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}
