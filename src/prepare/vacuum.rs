//! `VACUUM ANALYZE` of the freshly restored database, on parallel sessions.

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::reconnect;
use crate::backend::Throwaway;
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};

/// `VACUUM ANALYZE` of every table, `jobs` sessions at a time, largest
/// first, as `vacuumdb --jobs` does: one database-wide VACUUM works through
/// the tables one by one on one core. Each partitioned table is named once,
/// at its root, which covers its partitions. A table we may not vacuum is
/// skipped with a warning by the server, as a database-wide VACUUM would.
pub async fn vacuum_analyze(server: &Throwaway, db: &Client, jobs: u32, cancel: &CancellationToken) -> Result<()> {
    let env = |e| ErrorKind::CatalogReadFailed.because("VACUUM ANALYZE of the restored database failed", e);
    let tables = catalog::tables_to_vacuum(db).await.map_err(env)?;
    let queue = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(tables)));
    // A JoinSet aborts its sessions when dropped, so an interrupted run stops them all.
    let mut sessions = tokio::task::JoinSet::new();
    let sessions_needed = (jobs.max(1) as usize).min(queue.lock().expect("not shared yet").len().max(1));
    let mut cancels = Vec::new();
    for _ in 0..sessions_needed {
        let client = reconnect(server, "rehearse-vacuum", cancel).await?;
        cancels.push(client.cancel_token());
        let queue = queue.clone();
        sessions.spawn(async move {
            loop {
                let next = queue.lock().expect("no session panics holding the queue").pop_front();
                let Some(table) = next else { return Ok(()) };
                client.batch_execute(&format!("VACUUM (ANALYZE) {table}")).await?;
            }
        });
    }
    loop {
        let done = tokio::select! {
            done = sessions.join_next() => done,
            _ = cancel.cancelled() => {
                // The server goes on with a VACUUM whose client went away: cancel them.
                for token in &cancels {
                    let _ = token.cancel_query(server.conn().tls.connector(None)).await;
                }
                return Err(Error::Interrupted);
            }
        };
        let Some(done) = done else { return Ok(()) };
        done.map_err(|e| Error::environment_because("a VACUUM session stopped", e))?.map_err(env)?;
    }
}
