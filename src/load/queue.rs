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
    task: JoinHandle<Queue>,
}

/// What the sampler saw of the queue.
#[derive(Debug, Default, PartialEq)]
pub struct Queue {
    /// The most of the app's sessions queued at one sample.
    pub longest: u64,
    /// The table the queued sessions waited for in the most samples
    /// (schema-qualified): where the app stalled, whatever tables its
    /// statements name (an INSERT into a child waits for its parent's lock
    /// through the foreign key's check).
    pub table: Option<String>,
}

/// Sessions waiting on a lock, with their blockers and the table of the
/// lock they wait for (null for a lock that is not a table's).
const WAITING: &str = "/*rehearse*/ SELECT a.pid, pg_blocking_pids(a.pid),
      (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_locks l
         JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE l.pid = a.pid AND NOT l.granted AND l.locktype = 'relation' LIMIT 1)
    FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'";

impl QueueSampler {
    /// `app`: the generator's sessions; `not_migration`: every other session
    /// that is not the migration's (long transactions, rehearse's own).
    pub fn start(client: Arc<Client>, app: Vec<i32>, not_migration: Vec<i32>, interval: Duration) -> QueueSampler {
        let stop = CancellationToken::new();
        let mut pace = crate::observe::Pace::new(interval, stop.clone());
        let task = tokio::spawn(async move {
            let (mut longest, mut tables) = (0, HashMap::<String, u64>::new());
            while pace.tick().await {
                let Ok(rows) = client.query(WAITING, &[]).await else { continue };
                let waiting: HashMap<i32, Vec<i32>> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                let queued = queued(&waiting, &app, &not_migration);
                longest = longest.max(queued.len() as u64);
                for row in rows.iter().filter(|r| queued.contains(&r.get::<_, i32>(0))) {
                    if let Some(table) = row.get::<_, Option<String>>(2) {
                        *tables.entry(table).or_default() += 1;
                    }
                }
            }
            Queue { longest, table: most_waited(tables) }
        });
        QueueSampler { stop, task }
    }

    /// What it saw.
    pub async fn finish(self) -> Queue {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// The table waited for in the most samples (by name on a tie, so the
/// choice does not depend on the map's order).
fn most_waited(tables: HashMap<String, u64>) -> Option<String> {
    tables.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0))).map(|(table, _)| table)
}

/// The app's sessions that wait on a chain leading to the migration.
fn queued(waiting: &HashMap<i32, Vec<i32>>, app: &[i32], not_migration: &[i32]) -> Vec<i32> {
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
    app.iter().copied().filter(|pid| waiting.contains_key(pid) && leads_to_migration(*pid)).collect()
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
        assert_eq!(queued(&waiting, &[1, 2, 3], &[10]), [1, 2]);
        assert!(queued(&HashMap::new(), &[1], &[10]).is_empty());
    }

    #[test]
    fn the_table_waited_for_most_and_by_name_on_a_tie() {
        let counts = |pairs: &[(&str, u64)]| pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        assert_eq!(most_waited(counts(&[("public.b", 3), ("public.a", 9)])).as_deref(), Some("public.a"));
        assert_eq!(most_waited(counts(&[("public.b", 4), ("public.a", 4)])).as_deref(), Some("public.a"));
        assert_eq!(most_waited(HashMap::new()), None);
    }
}
