//! Probe sessions on hot tables: while a migration runs, a reader and a
//! writer per table repeatedly time `LOCK TABLE ... IN ACCESS SHARE MODE`
//! (what a SELECT takes) and `IN ROW EXCLUSIVE MODE` (what INSERT, UPDATE and
//! DELETE take) in a transaction that is rolled back, so they change nothing.
//! The wait is the blocking the application would feel, including queueing
//! behind a migration that is itself waiting for a lock.
//!
//! A probe runs only while the lock sampler's latest sample shows a lock on
//! its table, held or awaited, whose mode conflicts with the probe's (the
//! conflict matrix, `LockMode::conflicts_with`): otherwise it could not wait, and
//! probing would only take CPU from the migration (make bench: ten sessions
//! probing all the time cost about 3% of the migrations' time on 2 cores).
//! A probe starts within one sample interval of the lock being taken.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::locks::Sighting;
use crate::pg::LockMode;
use crate::report::{ProbeReport, WaitStats};
use crate::sys::db::{self, ConnInfo};

/// Pause between two probes of one session: often enough to catch a block
/// of a tenth of a second, rare enough that ten probe sessions cost little
/// on a small machine (make bench measured 20ms as too eager on 2 cores).
const PAUSE: Duration = Duration::from_millis(50);

/// One probe session.
pub struct ProbeSession {
    client: Arc<Client>,
    /// For cancel requests, over the session's TLS.
    tls: crate::sys::tls::Tls,
    pub pid: i32,
    table: String,
    write: bool,
}

impl ProbeSession {
    pub async fn connect(conn: &ConnInfo, table: &str, write: bool) -> Result<ProbeSession, tokio_postgres::Error> {
        let client = db::connect(conn, &conn.dbname, "rehearse-probe").await?;
        let pid = crate::catalog::backend_pid(&client).await?;
        Ok(ProbeSession { client: Arc::new(client), tls: conn.tls.clone(), pid, table: table.to_string(), write })
    }

    /// `table` is a canonical `schema.name` as `format('%I.%I')` writes it, so it is already quoted.
    fn sql(&self) -> String {
        let mode = if self.write { "ROW EXCLUSIVE" } else { "ACCESS SHARE" };
        format!("BEGIN /*rehearse*/; LOCK TABLE {} IN {mode} MODE /*rehearse*/; ROLLBACK /*rehearse*/", self.table)
    }

    /// The mode the probe takes, as pg_locks spells it.
    fn mode(&self) -> LockMode {
        if self.write {
            LockMode::RowExclusiveLock
        } else {
            LockMode::AccessShareLock
        }
    }
}

/// (table, is the writer, the task returning its waits in ms, its session).
type RunningProbe = (String, bool, JoinHandle<Vec<f64>>, Arc<Client>, crate::sys::tls::Tls);

/// Probes running during one migration.
pub struct RunningProbes {
    stop: CancellationToken,
    tasks: Vec<RunningProbe>,
}

/// Starts the probes. With `gate`, a probe runs only while the lock
/// sampler's latest sample shows a lock it would queue behind; without one
/// (probes on a standby, where the primary's locks arrive later, by
/// replay), it runs all the time.
pub fn start(sessions: &[ProbeSession], gate: Option<&tokio::sync::watch::Receiver<Sighting>>) -> RunningProbes {
    let stop = CancellationToken::new();
    let tasks = sessions
        .iter()
        .map(|s| {
            let (client, tls) = (s.client.clone(), s.tls.clone());
            let sql = s.sql();
            let token = stop.clone();
            let mut gate = gate.cloned();
            let (table, mode) = (s.table.clone(), s.mode());
            let task = tokio::spawn(async move {
                let mut waits = Vec::new();
                while !token.is_cancelled() {
                    // Wait for a sample showing a lock this probe would queue behind.
                    while let Some(sightings) = gate.as_mut() {
                        let could_wait = sightings
                            .borrow_and_update()
                            .iter()
                            .any(|(relation, held)| *relation == table && held.conflicts_with(mode));
                        if could_wait {
                            break;
                        }
                        tokio::select! {
                            changed = sightings.changed() => if changed.is_err() { return waits },
                            _ = token.cancelled() => return waits,
                        }
                    }
                    let t0 = Instant::now();
                    let probed = tokio::select! {
                        r = client.batch_execute(&sql) => r.is_ok(),
                        _ = token.cancelled() => {
                            // Observation ends while the probe still waits (behind a
                            // transaction that stays open into the next migration):
                            // it waited this long at least, and must not wait on.
                            waits.push(t0.elapsed().as_secs_f64() * 1000.0);
                            db::cancel(&tls, &client).await;
                            let _ = client.batch_execute("ROLLBACK").await;
                            break;
                        }
                    };
                    if probed {
                        waits.push(t0.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        // The table was dropped or renamed.
                        let _ = client.batch_execute("ROLLBACK").await;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(PAUSE) => {}
                        _ = token.cancelled() => break,
                    }
                }
                waits
            });
            (s.table.clone(), s.write, task, s.client.clone(), s.tls.clone())
        })
        .collect();
    RunningProbes { stop, tasks }
}

impl RunningProbes {
    /// Stops the probes and summarizes their waits per table.
    pub async fn finish(self) -> Vec<ProbeReport> {
        self.stop.cancel();
        let mut reports: Vec<ProbeReport> = Vec::new();
        for (table, write, mut task, client, tls) in self.tasks {
            // A probe still waiting cancels its own query when stopped; this is a backstop.
            let waits = match tokio::time::timeout(Duration::from_secs(2), &mut task).await {
                Ok(w) => w.unwrap_or_default(),
                Err(_) => {
                    db::cancel(&tls, &client).await;
                    task.await.unwrap_or_default()
                }
            };
            let stats = wait_stats(waits);
            let entry = match reports.iter_mut().position(|r| r.relation == table) {
                Some(i) => &mut reports[i],
                None => {
                    reports.push(ProbeReport {
                        relation: table.clone(),
                        reads: WaitStats::default(),
                        writes: WaitStats::default(),
                    });
                    reports.last_mut().expect("just pushed")
                }
            };
            if write {
                entry.writes = stats;
            } else {
                entry.reads = stats;
            }
        }
        reports
    }
}

fn wait_stats(mut waits: Vec<f64>) -> WaitStats {
    if waits.is_empty() {
        return WaitStats::default();
    }
    waits.sort_by(f64::total_cmp);
    let p99 = waits[((waits.len() as f64 * 0.99).ceil() as usize).saturating_sub(1).min(waits.len() - 1)];
    let round = |v: f64| (v * 10.0).round() / 10.0;
    WaitStats { probes: waits.len() as u64, max_ms: round(*waits.last().expect("not empty")), p99_ms: round(p99) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_and_max() {
        let s = wait_stats((1..=200).map(f64::from).collect());
        assert_eq!((s.probes, s.max_ms, s.p99_ms), (200, 200.0, 198.0));
        assert_eq!(wait_stats(vec![]).probes, 0);
    }
}
