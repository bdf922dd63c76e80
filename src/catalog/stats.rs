//! Statistics views: WAL position and counters, checkpoints, pg_stat_statements.

use tokio_postgres::{Client, Error};

use crate::pg::PgVersion;

/// The WAL insert position as a byte offset (`pg_current_wal_insert_lsn()`,
/// 10+). Not `pg_current_wal_lsn()`: that is the write position, which lags
/// behind inserts still in WAL buffers, so differences of it drift.
pub async fn wal_position(client: &Client) -> Result<u64, Error> {
    let row = client.query_one("/*rehearse*/ SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8", &[]).await?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Cluster-wide WAL counters from `pg_stat_wal` (PostgreSQL 14+; 18 keeps
/// these three columns and moved the write and sync timings to pg_stat_io).
#[derive(Debug, Clone, Copy, Default)]
pub struct WalCounters {
    pub records: u64,
    /// Full-page images.
    pub fpi: u64,
    pub bytes: u64,
}

pub async fn wal_counters(client: &Client) -> Result<WalCounters, Error> {
    let row = client
        .query_one("/*rehearse*/ SELECT wal_records::int8, wal_fpi::int8, wal_bytes::int8 FROM pg_stat_wal", &[])
        .await?;
    Ok(WalCounters {
        records: row.get::<_, i64>(0) as u64,
        fpi: row.get::<_, i64>(1) as u64,
        bytes: row.get::<_, i64>(2) as u64,
    })
}

/// Checkpoints so far: `pg_stat_bgwriter` up to 16, `pg_stat_checkpointer`
/// from 17 (where the bgwriter columns were removed). 17's `num_timed` and
/// `num_requested` count skipped checkpoints too (the manual's
/// pg_stat_checkpointer entry); 18 adds `num_done`, the completed ones.
pub async fn checkpoints(client: &Client, version: PgVersion) -> Result<u64, Error> {
    let sql = match version.major() {
        18.. => "/*rehearse*/ SELECT num_done::int8 FROM pg_stat_checkpointer",
        17 => "/*rehearse*/ SELECT (num_timed + num_requested)::int8 FROM pg_stat_checkpointer",
        _ => "/*rehearse*/ SELECT (checkpoints_timed + checkpoints_req)::int8 FROM pg_stat_bgwriter",
    };
    Ok(client.query_one(sql, &[]).await?.get::<_, i64>(0) as u64)
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

/// One row of pg_stat_statements.
#[derive(Debug, Clone)]
pub struct StatementStats {
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    pub rows: i64,
    pub wal_bytes: i64,
}

/// What a migration's data change is run under to read its plan's memory
/// (`migrations::sql::explain`), followed by the statement.
pub const EXPLAIN_MEMORY: &str = "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY OFF, FORMAT JSON) ";

/// Statements run in database `db_oid` since the reset, by total time,
/// rehearse's own left out (`wal_bytes` and `total_exec_time` are 13+). A
/// statement rehearse ran under [`EXPLAIN_MEMORY`] is listed as itself: its
/// nested entry (`toplevel` false, 14+; rehearse tracks nested statements)
/// with the prefix cut, the EXPLAIN's own utility entry left out.
pub async fn top_statements(client: &Client, db_oid: i64, limit: i64) -> Result<Vec<StatementStats>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT CASE WHEN starts_with(query, $3) THEN substr(query, length($3) + 1) ELSE query END,
                    calls, total_exec_time, rows, wal_bytes::int8
               FROM pg_stat_statements
              WHERE dbid = $1::int8::oid AND query NOT LIKE '%/*rehearse*/%'
                AND NOT (toplevel AND starts_with(query, $3))
              ORDER BY total_exec_time DESC LIMIT $2",
            &[&db_oid, &limit, &EXPLAIN_MEMORY],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StatementStats {
            query: r.get(0),
            calls: r.get(1),
            total_ms: r.get(2),
            rows: r.get(3),
            wal_bytes: r.get(4),
        })
        .collect())
}

/// Forces the calling session's statistics (pg_stat_wal among them) to be
/// flushed when it next goes idle outside a transaction, which is before the
/// reply to this query when it runs outside one (`pg_stat_force_next_flush()`,
/// 15+; stats are otherwise flushed at most once a second). The Alembic
/// helper runs this very text (`REHEARSE_FLUSH_STATS_SQL`) after each of its
/// transactions, so a revision's WAL records are in pg_stat_wal when it ends
/// although its process lives on.
pub const FORCE_STATS_FLUSH: &str = "/*rehearse*/ SELECT pg_stat_force_next_flush()";

/// Runs [`FORCE_STATS_FLUSH`] on `client`.
pub async fn force_stats_flush(client: &Client) -> Result<(), Error> {
    client.batch_execute(FORCE_STATS_FLUSH).await
}
