//! The lock queue behind the migration: every interval, the app's sessions
//! waiting on a lock whose chain of blockers (`pg_blocking_pids`, which
//! counts both the holders of a conflicting lock and the requests queued
//! ahead, PostgreSQL 9.6+) leads to a session that is not the app's, nor a
//! long transaction's, nor rehearse's own: the migration's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// The sampler of one migration's queue.
pub struct QueueSampler {
    stop: CancellationToken,
    task: JoinHandle<u64>,
}

/// Sessions waiting on a lock, with their blockers.
const WAITING: &str = "/*rehearse*/ SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'";

impl QueueSampler {
    /// `app`: the generator's sessions; `not_migration`: every other session
    /// that is not the migration's (long transactions, rehearse's own).
    pub fn start(client: Arc<Client>, app: Vec<i32>, not_migration: Vec<i32>, interval: Duration) -> QueueSampler {
        let stop = CancellationToken::new();
        let mut pace = crate::observe::Pace::new(interval, stop.clone());
        let task = tokio::spawn(async move {
            let mut longest = 0;
            while pace.tick().await {
                let Ok(rows) = client.query(WAITING, &[]).await else { continue };
                let waiting: HashMap<i32, Vec<i32>> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                longest = longest.max(queued(&waiting, &app, &not_migration));
            }
            longest
        });
        QueueSampler { stop, task }
    }

    /// The longest queue seen.
    pub async fn finish(self) -> u64 {
        self.stop.cancel();
        self.task.await.unwrap_or(0)
    }
}

/// How many of the app's sessions wait on a chain leading to the migration.
fn queued(waiting: &HashMap<i32, Vec<i32>>, app: &[i32], not_migration: &[i32]) -> u64 {
    let leads_to_migration = |start: i32| {
        let (mut seen, mut next) = (HashSet::new(), vec![start]);
        while let Some(pid) = next.pop() {
            for &blocker in waiting.get(&pid).into_iter().flatten() {
                if !app.contains(&blocker) && !not_migration.contains(&blocker) {
                    return true;
                }
                if seen.insert(blocker) {
                    next.push(blocker);
                }
            }
        }
        false
    };
    app.iter().filter(|pid| waiting.contains_key(pid) && leads_to_migration(**pid)).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_sessions_queued_behind_the_migration_directly_or_through_another() {
        // 1 and 2: the app; 10: a long transaction; 50: the migration.
        let waiting = HashMap::from([
            (50, vec![10]), // the migration waits on the long transaction
            (1, vec![50]),  // the app behind the migration
            (2, vec![1]),   // behind an app session that waits on the migration
            (3, vec![10]),  // an app session behind the long transaction only
        ]);
        assert_eq!(queued(&waiting, &[1, 2, 3], &[10]), 2);
        assert_eq!(queued(&HashMap::new(), &[1], &[10]), 0);
    }
}
