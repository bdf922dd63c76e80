//! Production's long transactions, held on the copy: before each
//! migration, each in a session of its own reads its table in a REPEATABLE
//! READ transaction (what `pg_dump` or a long report does: ACCESS SHARE on
//! the table, and a snapshot) and keeps it open for its duration, or until
//! the migration ended.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::sys::db::{self, ConnInfo};

/// A long transaction as the plan gives it: a canonical `schema.name` and how long it lasts.
#[derive(Debug, Clone, PartialEq)]
pub struct LongTransaction {
    pub table: String,
    pub duration: Duration,
}

/// The sessions, connected once for the whole rehearsal.
pub struct LongSessions {
    sessions: Vec<(std::sync::Arc<Client>, LongTransaction)>,
    pub pids: Vec<i32>,
}

/// Transactions open during one migration.
pub struct Holding {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LongSessions {
    pub async fn connect(
        conn: &ConnInfo,
        transactions: &[LongTransaction],
    ) -> Result<LongSessions, tokio_postgres::Error> {
        let mut sessions = Vec::new();
        let mut pids = Vec::new();
        for t in transactions {
            let client = db::connect(conn, &conn.dbname, "rehearse-long-transaction").await?;
            pids.push(crate::catalog::backend_pid(&client).await?);
            sessions.push((std::sync::Arc::new(client), t.clone()));
        }
        Ok(LongSessions { sessions, pids })
    }

    /// Opens every transaction and takes its lock; returns once all hold theirs.
    pub async fn begin(&self) -> Result<Holding, tokio_postgres::Error> {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        for (client, t) in &self.sessions {
            // As pg_dump and a report do: a snapshot for the whole transaction
            // (REPEATABLE READ, taken by the first query), which index builds
            // CONCURRENTLY wait for, and ACCESS SHARE on the table, which
            // ACCESS EXCLUSIVE waits for. The table is canonical
            // (`format('%I.%I')`), so already quoted.
            let open = format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ /*rehearse*/; SELECT 1 FROM {} LIMIT 0 /*rehearse*/",
                t.table
            );
            client.batch_execute(&open).await?;
            let (client, duration, stop) = (client.clone(), t.duration, stop.clone());
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(duration) => {}
                    _ = stop.cancelled() => {}
                }
                let _ = client.batch_execute("ROLLBACK /*rehearse*/").await;
            }));
        }
        Ok(Holding { stop, tasks })
    }
}

impl Holding {
    /// Ends the transactions still open.
    pub async fn end(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
