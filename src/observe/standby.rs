//! The standby observer: how far a streaming hot standby trails the primary
//! while each migration runs, how long it needs to catch up afterwards,
//! what readers on it wait, and which of its queries replay cancels.
//!
//! - A heartbeat session on the primary sets `catalog::HEARTBEAT_TABLE`'s
//!   row to the primary's clock every reading interval, for the whole
//!   rehearse stage. Its commits flush the WAL as production's traffic
//!   would; without them, on an idle copy, a lock's WAL record waits in the
//!   WAL buffers until the migration commits and the standby never sees the
//!   lock while it is held.
//! - Every reading interval, the primary's current WAL position and the
//!   standby's replay position and newest replayed heartbeat are read
//!   together: bytes behind (`pg_wal_lsn_diff`, as the runbook's query) and
//!   time behind (the standby's clock less that heartbeat). On the url
//!   backend the two servers' clocks may differ: the time behind carries
//!   their skew.
//! - Probe sessions on the standby read each hot table all the time (the
//!   primary's locks reach the standby by replay, later than the sampler
//!   sees them), and `pg_stat_database_conflicts` counts the standby
//!   queries replay cancelled.
//!
//! Its sessions on the primary are rehearse's own: the lock sampler leaves
//! them out (`pids`), and their queries carry the rehearse marker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::probes::{self, ProbeSession, RunningProbes};
use super::{Pace, StandbyOptions};
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::report::{StandbyReadWait, StandbyReport};
use crate::sys::db::{self, ConnInfo};

/// How long a migration's end waits for the standby to catch up before it
/// records that it had not (`catch_up_ms: null`) and goes on.
pub const CATCH_UP_LIMIT: Duration = Duration::from_secs(600);

/// Sessions on the primary and the standby, for the whole rehearse stage.
pub struct StandbyObserver {
    primary: Arc<Client>,
    standby: Arc<Client>,
    probes: Vec<ProbeSession>,
    options: StandbyOptions,
    dbname: String,
    /// rehearse's own sessions on the primary (heartbeat, positions).
    pub pids: Vec<i32>,
    _heartbeat: (JoinHandle<()>, DropGuard),
}

/// One migration being watched on the standby.
pub struct StandbyWatch {
    stop: CancellationToken,
    readings: JoinHandle<Result<Vec<Reading>, tokio_postgres::Error>>,
    probes: RunningProbes,
    conflicts_before: u64,
}

/// One reading: when, bytes behind, ms behind.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    bytes: u64,
    ms: u64,
}

impl StandbyObserver {
    /// Connects to the primary (`primary`, its maintenance database) and the
    /// standby, creates the heartbeat and starts it, and opens a read probe
    /// on the standby for each of `hot_tables`.
    pub async fn connect(
        primary: &ConnInfo,
        standby: &ConnInfo,
        options: StandbyOptions,
        hot_tables: &[String],
    ) -> Result<StandbyObserver> {
        let env = |what: &str| {
            let what = what.to_string();
            move |e| Error::environment_because(what, e)
        };
        let admin = &primary.admin_dbname;
        let heart = db::connect(primary, admin, "rehearse-heartbeat")
            .await
            .map_err(env("cannot start the heartbeat session on the primary"))?;
        catalog::create_heartbeat(&heart).await.map_err(env("cannot create the heartbeat table on the primary"))?;
        let positions = db::connect(primary, admin, "rehearse-standby-lag")
            .await
            .map_err(env("cannot connect to the primary to read its WAL position"))?;
        let mut pids = vec![
            catalog::backend_pid(&heart).await.map_err(env("cannot read the heartbeat session's pid"))?,
            catalog::backend_pid(&positions).await.map_err(env("cannot read the position session's pid"))?,
        ];
        pids.sort_unstable();
        // The heartbeat's table must have reached the standby before it is read there.
        let on_standby = ConnInfo { dbname: admin.clone(), ..standby.clone() };
        let standby_client = wait_for_heartbeat(&on_standby).await?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let interval = options.interval;
        let heartbeat = tokio::spawn(async move {
            let mut pace = Pace::new(interval, token);
            while pace.tick().await {
                if catalog::beat(&heart).await.is_err() {
                    break;
                }
            }
        });
        let mut probes = Vec::new();
        for table in hot_tables {
            let p = ProbeSession::connect(standby, table, false)
                .await
                .map_err(env(&format!("cannot open a read probe on the standby for {table}")))?;
            probes.push(p);
        }
        Ok(StandbyObserver {
            primary: Arc::new(positions),
            standby: Arc::new(standby_client),
            probes,
            dbname: standby.dbname.clone(),
            options,
            pids,
            _heartbeat: (heartbeat, stop.drop_guard()),
        })
    }

    /// Starts reading positions and probing; call before the migration.
    pub async fn begin(&self) -> Result<StandbyWatch> {
        let conflicts_before = catalog::recovery_conflicts(&self.standby, &self.dbname)
            .await
            .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot read the standby's recovery conflicts", e))?;
        let stop = CancellationToken::new();
        let (primary, standby, token, interval) =
            (self.primary.clone(), self.standby.clone(), stop.clone(), self.options.interval);
        let readings = tokio::spawn(async move {
            let mut readings = Vec::new();
            let mut pace = Pace::new(interval, token);
            while pace.tick().await {
                // Both at the same moment, as the runbook's query compares them.
                let (here, there) =
                    tokio::join!(catalog::primary_position(&primary), catalog::standby_position(&standby));
                let ((replayed, ms), written) = (there?, here?);
                readings.push(Reading { at: Instant::now(), bytes: written.saturating_sub(replayed), ms });
            }
            Ok(readings)
        });
        Ok(StandbyWatch { stop, readings, probes: probes::start(&self.probes, None), conflicts_before })
    }

    /// The migration has ended: waits for the standby to replay up to where
    /// the primary is now (at most [`CATCH_UP_LIMIT`]), then stops reading
    /// and probing and sums up.
    pub async fn finish(&self, w: StandbyWatch) -> Result<StandbyReport> {
        let env = |e| ErrorKind::CatalogReadFailed.because("cannot read the standby's position after a migration", e);
        let ended = Instant::now();
        let target = catalog::primary_position(&self.primary).await.map_err(env)?;
        let mut caught_up = None;
        while ended.elapsed() < CATCH_UP_LIMIT {
            if catalog::replay_position(&self.standby).await.map_err(env)? >= target {
                caught_up = Some(ended.elapsed().as_millis() as u64);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        w.stop.cancel();
        let readings = w.readings.await.unwrap_or(Ok(Vec::new())).map_err(env)?;
        let waits = w.probes.finish().await;
        let conflicts = catalog::recovery_conflicts(&self.standby, &self.dbname).await.map_err(env)?;
        let mut report = summarize(&readings, self.options.interval, self.options.threshold);
        report.catch_up_ms = caught_up;
        report.conflicts = conflicts.saturating_sub(w.conflicts_before);
        report.read_waits = waits
            .into_iter()
            .map(|p| StandbyReadWait { relation: p.relation, max_ms: p.reads.max_ms, probes: p.reads.probes })
            .collect();
        Ok(report)
    }
}

/// A session on the standby's copy of the heartbeat's database once the
/// heartbeat row is there (it was just created on the primary).
async fn wait_for_heartbeat(standby: &ConnInfo) -> Result<Client> {
    let started = Instant::now();
    loop {
        let tried = match db::connect(standby, &standby.dbname, "rehearse-standby-lag").await {
            Ok(client) => match catalog::standby_position(&client).await {
                Ok(_) => return Ok(client),
                Err(e) => e,
            },
            Err(e) => e,
        };
        if started.elapsed() > Duration::from_secs(60) {
            return Err(ErrorKind::ServerStartFailed.because(
                format!(
                    "the standby ({}) did not replay the heartbeat table {} within a minute: is it streaming from \
                     the primary?",
                    standby.masked(&standby.dbname),
                    catalog::HEARTBEAT_TABLE
                ),
                tried,
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Peaks and time over the threshold of one migration's readings: each
/// reading stands for the time since the one before (one interval for the first).
fn summarize(readings: &[Reading], interval: Duration, threshold: Duration) -> StandbyReport {
    let threshold_ms = threshold.as_millis() as u64;
    let mut over = 0;
    let mut previous: Option<Instant> = None;
    for r in readings {
        let span = previous.map_or(interval, |p| r.at - p);
        if r.ms > threshold_ms {
            over += span.as_millis() as u64;
        }
        previous = Some(r.at);
    }
    StandbyReport {
        max_lag_bytes: readings.iter().map(|r| r.bytes).max().unwrap_or(0),
        max_lag_ms: readings.iter().map(|r| r.ms).max().unwrap_or(0),
        over_threshold_ms: over,
        ..StandbyReport::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_over_the_threshold_counts_each_reading_for_the_gap_before_it() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let at = |t: u64, bytes: u64, lag: u64| Reading { at: t0 + ms(t), bytes, ms: lag };
        let r = summarize(&[at(0, 10, 50), at(100, 900, 1500), at(250, 400, 1200), at(350, 0, 80)], ms(100), ms(1000));
        assert_eq!((r.max_lag_bytes, r.max_lag_ms, r.over_threshold_ms), (900, 1500, 250));
        assert_eq!(summarize(&[], ms(100), ms(1000)).max_lag_ms, 0);
    }
}
