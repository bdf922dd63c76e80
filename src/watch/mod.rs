//! `rehearse watch`: follows a release as it runs in production, against
//! what its rehearsal measured (the report's `report.json`): which
//! migration runs, how long against the rehearsed and estimated time, who
//! waits behind it, how far the standbys lag, and which budget it crosses,
//! with the abort plan. Read-only: it never cancels anything itself.

mod events;
mod production;
mod release;
mod summary;
mod track;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::error::{exit, ErrorKind, Result};
use crate::sys::db::ConnInfo;
pub use events::{line, Event, EventLog};
pub use production::{connect_read_only, Primary, Standby, APPLICATION_NAME};
pub use release::{normalize_sql, Expected, History, Release};
pub use summary::{WatchSummary, WatchedMigration, WATCH_SCHEMA};
pub use track::{abort_plan, LagReading, Reading, Tracker};

/// What to do when a threshold is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnBreach {
    /// Print the breach line and the abort plan, and keep watching.
    Warn,
    /// Print them and exit 1, for a pipeline to act on.
    Exit,
}

/// A resolved `rehearse watch`.
#[derive(Debug, Clone)]
pub struct WatchPlan {
    pub server: ConnInfo,
    pub standbys: Vec<ConnInfo>,
    pub report: PathBuf,
    pub interval: Duration,
    /// Give up after this long.
    pub timeout: Option<Duration>,
    /// Every statement's statement_timeout.
    pub statement_timeout: Duration,
    pub on_breach: OnBreach,
    pub events: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub quiet: bool,
}

/// Why the watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every migration of the report is recorded as applied.
    Applied,
    /// They all were at the first reading.
    AlreadyApplied,
    Timeout,
    Interrupted,
    /// A threshold was crossed under `--on-breach exit`.
    Breach,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Applied => "applied",
            Ending::AlreadyApplied => "already_applied",
            Ending::Timeout => "timeout",
            Ending::Interrupted => "interrupted",
            Ending::Breach => "breach",
        }
    }

    pub fn exit_code(self) -> i32 {
        match self {
            Ending::Applied | Ending::AlreadyApplied => exit::OK,
            Ending::Timeout | Ending::Breach => exit::BUDGET_BREACHED,
            Ending::Interrupted => exit::INTERRUPTED,
        }
    }
}

/// Watches until every migration is applied, `timeout`, a signal, or a
/// breach under `--on-breach exit`; writes the summary to `--out`.
pub async fn watch(plan: &WatchPlan, cancel: &CancellationToken) -> Result<Ending> {
    let release = Release::load(&plan.report)?;
    if let Some(dir) = &plan.out {
        std::fs::create_dir_all(dir).map_err(|e| {
            ErrorKind::ReportDirInvalid.because(format!("cannot make --out {}: name a folder", dir.display()), e)
        })?;
    }
    let mut log = EventLog::create(plan.events.as_deref(), plan.quiet)?;
    let mut primary = Primary::connect(plan.server.clone(), plan.statement_timeout).await?;
    let mut standbys = Vec::new();
    for server in &plan.standbys {
        standbys.push(Standby::connect(server.clone(), plan.statement_timeout).await?);
    }
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    if !plan.quiet {
        eprintln!(
            "watching {} for the {} migration(s) of {} (rehearsed {}), every {}; session: {}",
            primary.server.masked(&primary.server.dbname),
            release.migrations.len(),
            release.scenario,
            release.rehearsed_at,
            humantime::format_duration(plan.interval),
            primary.settings().await?
        );
    }
    let mut tracker = Tracker::new(release);
    let ending = follow(plan, &mut primary, &mut standbys, &mut tracker, &mut log, cancel).await?;
    log.emit(&Event::Ended {
        migration: tracker.running().map(|i| tracker.release.migrations[i].id.clone()),
        reason: ending.as_str().to_string(),
    });
    if let Some(dir) = &plan.out {
        let server = primary.server.masked(&primary.server.dbname);
        for path in WatchSummary::of(&tracker, server, started_at, ending.as_str()).write(dir)? {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(ending)
}

/// The readings, one an interval, until the watch ends.
async fn follow(
    plan: &WatchPlan,
    primary: &mut Primary,
    standbys: &mut [Standby],
    tracker: &mut Tracker,
    log: &mut EventLog,
    cancel: &CancellationToken,
) -> Result<Ending> {
    let deadline = plan.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut first = true;
    loop {
        let reading = primary.read(&tracker.release, standbys).await?;
        if first {
            first = false;
            let before = tracker.applied_before(&reading);
            if tracker.done() {
                eprintln!(
                    "every migration of the report is already recorded as applied in production ({}): \
                     nothing to watch",
                    primary.server.masked(&primary.server.dbname)
                );
                return Ok(Ending::AlreadyApplied);
            }
            if before > 0 && !plan.quiet {
                eprintln!("{before} migration(s) of the report were applied before the watch began");
            }
        }
        let events = tracker.observe(&reading);
        let mut breached = false;
        for event in &events {
            log.emit(event);
            breached |= matches!(event, Event::Breach { .. });
        }
        if breached && plan.on_breach == OnBreach::Exit {
            return Ok(Ending::Breach);
        }
        if tracker.done() {
            return Ok(Ending::Applied);
        }
        let sleep = tokio::time::sleep(plan.interval);
        let until_deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = until_deadline => return Ok(Ending::Timeout),
            _ = cancel.cancelled() => return Ok(Ending::Interrupted),
        }
    }
}
