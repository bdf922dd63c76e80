//! The queries behind the standby's figures: a heartbeat the primary
//! writes and the standby reads, WAL positions on both sides, and the
//! standby's recovery conflicts. PostgreSQL 12 and later (pg_stat_replication's
//! `*_lag` columns go NULL on an idle server, so the lag is read from a
//! heartbeat and from WAL positions instead).

use tokio_postgres::{Client, Error};

/// The heartbeat table, in the primary's maintenance database (the run's own
/// database on the url backend): one row whose `beat` the primary sets to
/// its clock every reading interval. Its commits also flush the WAL, as
/// production's other commits do: on an idle server the record of a lock
/// sits in the WAL buffers until something flushes them, so without a
/// heartbeat a standby learns of a lock only at the migration's commit.
pub const HEARTBEAT_TABLE: &str = "public.rehearse_heartbeat";

/// Creates the heartbeat table and its row if they are not there.
pub async fn create_heartbeat(client: &Client) -> Result<(), Error> {
    client
        .batch_execute(&format!(
            "/*rehearse*/ CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} (id int PRIMARY KEY, beat timestamptz NOT NULL);
             /*rehearse*/ INSERT INTO {HEARTBEAT_TABLE} VALUES (1, clock_timestamp()) ON CONFLICT (id) DO NOTHING"
        ))
        .await
}

/// One heartbeat: its own transaction, committed (and so flushed) at once.
pub async fn beat(client: &Client) -> Result<(), Error> {
    client
        .batch_execute(&format!("/*rehearse*/ UPDATE {HEARTBEAT_TABLE} SET beat = clock_timestamp() WHERE id = 1"))
        .await
}

/// The primary's current WAL write position, in bytes from 0/0: what the
/// runbook's `pg_wal_lsn_diff(pg_current_wal_lsn(), ...)` subtracts from.
pub async fn primary_position(client: &Client) -> Result<u64, Error> {
    let row = client.query_one("/*rehearse*/ SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8", &[]).await?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Where the standby is: its replay position in bytes from 0/0 and how
/// old the newest heartbeat it has replayed is, in ms by its own clock.
pub async fn standby_position(client: &Client) -> Result<(u64, u64), Error> {
    let row = client
        .query_one(
            &format!(
                "/*rehearse*/ SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8,
                        (extract(epoch FROM clock_timestamp() - beat) * 1000)::int8
                   FROM {HEARTBEAT_TABLE} WHERE id = 1"
            ),
            &[],
        )
        .await?;
    Ok((
        row.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64,
        row.get::<_, Option<i64>>(1).unwrap_or(0).max(0) as u64,
    ))
}

/// The standby's replay position alone, in bytes from 0/0.
pub async fn replay_position(client: &Client) -> Result<u64, Error> {
    let row = client.query_one("/*rehearse*/ SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8", &[]).await?;
    Ok(row.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64)
}

/// Queries of database `dbname` the standby has cancelled for recovery
/// conflicts (all kinds), since its statistics were last reset.
pub async fn recovery_conflicts(client: &Client, dbname: &str) -> Result<u64, Error> {
    let row = client
        .query_one(
            "/*rehearse*/ SELECT coalesce(sum(confl_tablespace + confl_lock + confl_snapshot + confl_bufferpin
                                          + confl_deadlock), 0)::int8
               FROM pg_stat_database_conflicts WHERE datname = $1",
            &[&dbname],
        )
        .await?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}
