//! The progress sampler: reads PostgreSQL's progress views
//! (`catalog::progress`) while a migration runs, and keeps each command it
//! sees on each table with its phases and its first and last sighting.
//! What the lock sampler cannot tell: that a `DO` block or a tool is
//! building an index on a table, or running VACUUM FULL, and for how long;
//! the estimate scales that time as the work it is.
//!
//! It reads every [`EVERY`] lock-sampler intervals (50 ms by default): the
//! views are cheap, but a command shorter than that is not worth scaling
//! separately, and is still timed by its statement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, ProgressRow};
use crate::pg::PgVersion;

/// Read the views every this many lock-sampler intervals.
pub const EVERY: u32 = 5;

/// One command on one table, as the views showed it.
#[derive(Debug, Clone)]
pub struct SeenCommand {
    pub pid: i32,
    pub oid: i64,
    pub name: String,
    pub command: String,
    pub phases: Vec<String>,
    pub first: Instant,
    pub last: Instant,
}

type ProgressResult = (Vec<SeenCommand>, Option<tokio_postgres::Error>);

pub struct ProgressSampler {
    stop: CancellationToken,
    task: JoinHandle<ProgressResult>,
}

impl ProgressSampler {
    /// Starts reading the views of `version`'s server for database
    /// `db_oid`, leaving out rehearse's own sessions (`exclude`).
    pub fn start(
        client: Arc<Client>,
        version: PgVersion,
        db_oid: i64,
        exclude: Vec<i32>,
        interval: Duration,
    ) -> ProgressSampler {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen: Vec<SeenCommand> = Vec::new();
            let prepared = match client.prepare(&catalog::progress_query(version)).await {
                Ok(statement) => statement,
                Err(e) => return (seen, Some(e)),
            };
            let mut pace = super::Pace::new(interval * EVERY, token);
            while pace.tick().await {
                match catalog::progress(&client, &prepared, db_oid, &exclude).await {
                    Ok(rows) => see(&mut seen, rows, Instant::now()),
                    Err(e) => return (seen, Some(e)),
                }
            }
            (seen, None)
        });
        ProgressSampler { stop, task }
    }

    /// Stops reading; every command seen, or the error a reading hit.
    pub async fn finish(self) -> Result<Vec<SeenCommand>, tokio_postgres::Error> {
        self.stop.cancel();
        match self.task.await.unwrap_or_default() {
            (_, Some(e)) => Err(e),
            (seen, None) => Ok(seen),
        }
    }
}

/// Adds one reading: a row continues the command of the same backend,
/// table and command seen before (the same CREATE INDEX through its
/// phases), else starts a new one.
fn see(seen: &mut Vec<SeenCommand>, rows: Vec<ProgressRow>, now: Instant) {
    for row in rows {
        let same = |s: &&mut SeenCommand| s.pid == row.pid && s.oid == row.oid && s.command == row.command;
        match seen.iter_mut().rev().find(same) {
            Some(s) => {
                s.last = now;
                if !s.phases.contains(&row.phase) {
                    s.phases.push(row.phase);
                }
                if s.name.is_empty() {
                    s.name = row.name;
                }
            }
            None => seen.push(SeenCommand {
                pid: row.pid,
                oid: row.oid,
                name: row.name,
                command: row.command,
                phases: vec![row.phase],
                first: now,
                last: now,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: i32, command: &str, phase: &str) -> ProgressRow {
        ProgressRow { pid, oid: 16400, name: "public.t".into(), command: command.into(), phase: phase.into() }
    }

    #[test]
    fn one_command_through_its_phases_is_one_sighting() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut seen = Vec::new();
        see(&mut seen, vec![row(7, "CREATE INDEX", "building index: scanning table")], t0);
        see(&mut seen, vec![row(7, "CREATE INDEX", "building index: sorting live tuples")], t0 + ms(50));
        see(&mut seen, vec![row(7, "CREATE INDEX", "building index: sorting live tuples")], t0 + ms(100));
        see(&mut seen, vec![row(7, "VACUUM", "scanning heap"), row(8, "CREATE INDEX", "initializing")], t0 + ms(150));
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].phases, ["building index: scanning table", "building index: sorting live tuples"]);
        assert_eq!(seen[0].last - seen[0].first, ms(100));
        assert_eq!((seen[1].command.as_str(), seen[2].pid), ("VACUUM", 8));
    }
}
