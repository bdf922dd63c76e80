//! The statement watcher: a session of its own that reads one backend's
//! locks from pg_locks in a tight loop while a statement that cannot run in
//! a transaction block runs (CREATE INDEX CONCURRENTLY, VACUUM, REINDEX
//! CONCURRENTLY, ...). Such a statement commits its own transactions and
//! releases its locks as it ends, before any query of its own session could
//! read them, and a fast one (a concurrent index on a small table takes
//! ~10 ms) falls between two samples of the every-10ms sampler.
//!
//! The loop has no pause for the statement's first [`TIGHT`], so even a
//! millisecond-long statement is read several times; then it pauses a
//! millisecond, and after [`BRISK`] it reads at the sampler's interval, so a
//! concurrent index build of an hour does not cost a core for an hour.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::{Client, Statement};
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, LockRow};
use crate::pg::{LockMode, RelationKind};
use crate::sys::db::{self, ConnInfo};

/// Read without pause for this long after the statement starts.
const TIGHT: Duration = Duration::from_millis(50);
/// Then with a millisecond's pause, up to this long.
const BRISK: Duration = Duration::from_millis(500);

/// The watcher's session, connected once per run.
pub struct StatementWatcher {
    client: Arc<Client>,
    prepared: Statement,
    /// The session whose statements are watched (rehearse's migration session).
    target_pid: i32,
    /// The pause once the statement ran past [`BRISK`].
    interval: Duration,
    pub pid: i32,
}

/// One lock the watcher saw: when first and last, and whether granted.
#[derive(Debug, Clone)]
pub struct WatchedLock {
    pub oid: i64,
    pub name: String,
    pub kind: RelationKind,
    pub mode: LockMode,
    pub granted: bool,
    /// From the first reading that saw it to the last, plus the gap to the
    /// reading after (the lock may have been held until then).
    pub held: Duration,
}

/// A statement being watched; dropping it stops the watcher's loop.
pub struct Watching {
    stop: CancellationToken,
    _stop_on_drop: tokio_util::sync::DropGuard,
    task: JoinHandle<Vec<WatchedLock>>,
}

impl StatementWatcher {
    pub async fn connect(
        conn: &ConnInfo,
        target_pid: i32,
        interval: Duration,
    ) -> Result<StatementWatcher, tokio_postgres::Error> {
        let client = db::connect(conn, &conn.dbname, "rehearse-watcher").await?;
        let pid = catalog::backend_pid(&client).await?;
        let prepared = client.prepare(catalog::BACKEND_LOCKS).await?;
        Ok(StatementWatcher { client: Arc::new(client), prepared, target_pid, interval, pid })
    }

    /// Starts reading the target session's locks; call just before the statement.
    pub fn watch(&self) -> Watching {
        let stop = CancellationToken::new();
        let (client, prepared, pid, interval) =
            (self.client.clone(), self.prepared.clone(), self.target_pid, self.interval);
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            // (oid, mode) → (lock, first seen, last seen)
            let mut seen: BTreeMap<(i64, LockMode), (LockRow, Instant, Instant)> = BTreeMap::new();
            let mut gap = Duration::ZERO;
            loop {
                let before = Instant::now();
                let Ok(rows) = catalog::backend_locks(&client, &prepared, pid).await else { break };
                let now = Instant::now();
                gap = gap.max(now - before);
                for row in rows {
                    let entry = seen.entry((row.oid, row.mode)).or_insert_with(|| (row.clone(), now, now));
                    entry.2 = now;
                    if row.granted || !entry.0.granted {
                        entry.0 = row;
                    }
                }
                if token.is_cancelled() {
                    break;
                }
                let pause = match started.elapsed() {
                    e if e < TIGHT => Duration::ZERO,
                    e if e < BRISK => Duration::from_millis(1),
                    _ => interval,
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause), if !pause.is_zero() => {}
                    _ = tokio::task::yield_now(), if pause.is_zero() => {}
                    _ = token.cancelled() => break,
                }
            }
            seen.into_values()
                .map(|(row, first, last)| WatchedLock {
                    oid: row.oid,
                    name: row.name,
                    kind: row.kind,
                    mode: row.mode,
                    granted: row.granted,
                    held: last - first + gap,
                })
                .collect()
        });
        Watching { _stop_on_drop: stop.clone().drop_guard(), stop, task }
    }
}

impl Watching {
    /// Stops watching (the statement ended) and returns every lock seen.
    pub async fn finish(self) -> Vec<WatchedLock> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}
