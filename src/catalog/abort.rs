//! What the abort rehearsal reads and does on its copy: the migration's
//! sessions, their locks, the cancel an operator sends, the app's read
//! that waits behind them, and a version table's rows. Any PostgreSQL
//! version rehearse supports (12 and later); `pg_cancel_backend` and
//! `pg_terminate_backend` as documented for 15 and 18 ("System
//! Administration Functions": a superuser, or a member of the role whose
//! backend it is, or of pg_signal_backend).

use std::time::Duration;

use tokio_postgres::{Client, Error};

/// Client backends on the calling session's database but the pids in
/// `exclude` (rehearse's own sessions there): the migration's sessions.
pub async fn database_sessions(client: &Client, exclude: &[i32]) -> Result<Vec<i32>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT pid FROM pg_stat_activity
              WHERE datname = current_database() AND backend_type = 'client backend'
                AND pid <> pg_backend_pid() AND pid <> ALL($1::int4[]) ORDER BY pid",
            &[&exclude],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// How many locks of any kind (relation, transaction id, virtual
/// transaction id, advisory, ...) the backends `pids` hold or wait for:
/// once none, nothing of the migration stands in anyone's way.
pub async fn locks_of(client: &Client, pids: &[i32]) -> Result<i64, Error> {
    let row =
        client.query_one("/*rehearse*/ SELECT count(*) FROM pg_locks WHERE pid = ANY($1::int4[])", &[&pids]).await?;
    Ok(row.get(0))
}

/// `pg_cancel_backend(pid)`: what an operator's Ctrl-C in psql sends (a
/// cancel request: SIGINT to that backend, which cancels its statement).
/// Whether the signal was sent.
pub async fn cancel_backend(client: &Client, pid: i32) -> Result<bool, Error> {
    Ok(client.query_one("/*rehearse*/ SELECT pg_cancel_backend($1)", &[&pid]).await?.get(0))
}

/// `pg_terminate_backend(pid)`: ends the backend, rolling back its transaction.
pub async fn terminate_backend(client: &Client, pid: i32) -> Result<bool, Error> {
    Ok(client.query_one("/*rehearse*/ SELECT pg_terminate_backend($1)", &[&pid]).await?.get(0))
}

/// A read of `table` (`format('%I.%I')` spelling) as the app would run it,
/// waiting at most `wait` for a lock: it queues behind the migration's
/// locks and is granted the moment they go. Ok(true) when it read,
/// Ok(false) when the wait ran out.
pub async fn probe_read(client: &Client, table: &str, wait: Duration) -> Result<bool, Error> {
    client.batch_execute(&format!("SET lock_timeout = {}", wait.as_millis().max(1))).await?;
    match client.batch_execute(&format!("/*rehearse*/ SELECT 1 FROM {table} LIMIT 1")).await {
        Ok(()) => Ok(true),
        // 55P03 lock_not_available: lock_timeout ran out.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The rows of `table` (`[schema.]name`), each as JSON text, sorted; None
/// when there is no such table.
pub async fn rows_as_json(client: &Client, table: &str) -> Result<Option<Vec<String>>, Error> {
    let Some(table) = super::regclass(client, table).await? else { return Ok(None) };
    let sql = format!("/*rehearse*/ SELECT to_jsonb(t)::text FROM {table} t ORDER BY 1");
    let rows = client.query(&sql, &[]).await?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}
