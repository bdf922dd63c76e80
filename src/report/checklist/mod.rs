//! The production checklist (DESIGN.md): each item marked done with the
//! run's evidence, or left open with what a human must do. Items are data in
//! the report; the Markdown writer renders them for the release ticket. One
//! file per item (or two that share their facts), in the checklist's order.

use std::time::Duration;

mod abort;
mod backup;
mod compat;
mod data;
mod job;
mod lag;
mod monitoring;
mod ops;
mod rollback;
mod runtime;
mod traffic;

use abort::abort_plan;
use backup::backup;
use compat::app_compatibility;
use data::prod_shaped_data;
use job::standalone_job;
use lag::replica_lag_plan;
use monitoring::monitoring;
use ops::ops_comm;
use rollback::rollback;
use runtime::runtime_estimate;
use traffic::traffic_window;

use super::{
    count, format_bytes, format_ms, summary, Checklist, ChecklistId, ChecklistItem, MigrationReport, MigrationStatus,
    RaceVerdict, Report,
};

/// Default `report.ops_threshold`: a blocking lock this long surfaces as
/// request timeouts (30s is a common one), and a release this long is worth
/// a heads-up to whoever watches production.
pub const DEFAULT_OPS_THRESHOLD: Duration = Duration::from_secs(30);
/// Default `report.deploy_window`: a migration longer than a minute does not
/// belong on the deploy's critical path (start-up probes, rollout deadlines).
pub const DEFAULT_DEPLOY_WINDOW: Duration = Duration::from_secs(60);
/// Default `report.replica_apply_rate`: a conservative single-process WAL
/// replay rate for a replica on ordinary hardware.
pub const DEFAULT_REPLICA_APPLY_RATE: u64 = 50 << 20;

/// The thresholds the checklist judges by (`report.*` in the scenario).
#[derive(Debug, Clone)]
pub struct ChecklistSettings {
    pub ops_threshold: Duration,
    pub deploy_window: Duration,
    /// Bytes per second.
    pub replica_apply_rate: u64,
}

impl Default for ChecklistSettings {
    fn default() -> Self {
        ChecklistSettings {
            ops_threshold: DEFAULT_OPS_THRESHOLD,
            deploy_window: DEFAULT_DEPLOY_WINDOW,
            replica_apply_rate: DEFAULT_REPLICA_APPLY_RATE,
        }
    }
}

/// The replica lag a migration implies: the time to replay its WAL at
/// `rate`, and how far that replay ends behind the migration itself
/// (replay − duration, floored at 0); with WAL and time at production
/// scale when the run has an estimate (its mid). An estimate: it assumes
/// the replica replays as WAL arrives, at that rate, with no other write load.
pub fn replica_lag(m: &MigrationReport, rate: u64) -> (u64, u64) {
    lag_of(wal(m), duration(m), rate)
}

/// (replay time, lag) of `wal` bytes written over `duration_ms`, replayed at `rate` bytes/s.
fn lag_of(wal: u64, duration_ms: u64, rate: u64) -> (u64, u64) {
    let replay_ms = (wal as f64 / rate.max(1) as f64 * 1000.0).round() as u64;
    (replay_ms, replay_ms.saturating_sub(duration_ms))
}

/// A migration's figures the checklist judges by: at production scale when
/// the run has an estimate (its mid), else as measured here.
fn duration(m: &MigrationReport) -> u64 {
    m.estimate.as_ref().map_or(m.duration_ms, |e| e.duration_ms.mid)
}

fn longest_block(m: &MigrationReport) -> u64 {
    m.estimate.as_ref().map_or(m.longest_block(), |e| e.longest_read_block_ms.mid.max(e.longest_write_block_ms.mid))
}

fn wal(m: &MigrationReport) -> u64 {
    m.estimate.as_ref().map_or(m.wal.bytes, |e| e.wal_bytes.mid)
}

struct Item(ChecklistItem);

impl Item {
    fn new(id: ChecklistId, title: &str) -> Item {
        Item(ChecklistItem { id, title: title.into(), done: false, evidence: Vec::new(), todo: None })
    }
    fn evidence(mut self, line: impl Into<String>) -> Item {
        self.0.evidence.push(line.into());
        self
    }
    /// Done when `todo` is None; open with it otherwise.
    fn verdict(mut self, todo: Option<String>) -> ChecklistItem {
        self.0.done = todo.is_none();
        self.0.todo = todo;
        self.0
    }
}

/// What every item looks at: the run's figures, computed once.
struct Facts<'a> {
    r: &'a Report,
    s: &'a ChecklistSettings,
    ran: Vec<&'a MigrationReport>,
    restored: bool,
    /// "`x` (failed) did not complete", when one did not.
    unfinished: Option<String>,
    longest: Option<&'a MigrationReport>,
    /// The migration that blocked the app longest, if any did.
    blocker: Option<&'a MigrationReport>,
    /// The migration with the worst replica lag: (it, replay ms, lag ms).
    worst_lag: Option<(&'a MigrationReport, u64, u64)>,
    /// "drop_column public.t.c (`0002`, line 1)" for each destructive change.
    destructive: Vec<String>,
    environment: String,
}

impl<'a> Facts<'a> {
    fn new(r: &'a Report, s: &'a ChecklistSettings) -> Facts<'a> {
        let ms = &r.migrations;
        let ran: Vec<&MigrationReport> = ms.iter().filter(|m| m.ran()).collect();
        let incomplete: Vec<String> = ms
            .iter()
            .filter(|m| m.status != MigrationStatus::Applied)
            .map(|m| format!("`{}` ({})", m.id, m.status.as_str()))
            .collect();
        let worst_lag = ran
            .iter()
            .map(|m| {
                let (replay, lag) = replica_lag(m, s.replica_apply_rate);
                (*m, replay, lag)
            })
            .max_by_key(|(_, replay, lag)| (*lag, *replay));
        Facts {
            r,
            s,
            // A clone's data was in place once it was made: nothing to restore.
            restored: r.restore.restored_at.is_some() || r.dump.clone.is_some(),
            unfinished: (!incomplete.is_empty()).then(|| format!("{} did not complete", incomplete.join(", "))),
            longest: ran.iter().copied().max_by_key(|m| m.duration_ms),
            blocker: ran.iter().copied().max_by_key(|m| longest_block(m)).filter(|m| longest_block(m) > 0),
            worst_lag,
            destructive: destructive_changes(ms),
            environment: environment(r),
            ran,
        }
    }

    fn ops_ms(&self) -> u64 {
        self.s.ops_threshold.as_millis() as u64
    }

    /// The release's time the checklist judges: at production scale when estimated.
    fn total_ms(&self) -> u64 {
        self.r.totals.estimate.as_ref().map_or(self.r.totals.duration_ms, |e| e.duration_ms.mid)
    }

    /// The migration that lags replicas most, by how much, and how that is
    /// known: measured on the standby when the run had one, else estimated.
    fn replica_lag(&self) -> Option<(&'a MigrationReport, u64, &'static str)> {
        if self.r.standby.is_some() {
            let measured = self.ran.iter().filter_map(|m| m.standby.as_ref().map(|s| (*m, s.max_lag_ms)));
            return measured.max_by_key(|(_, lag)| *lag).map(|(m, lag)| (m, lag, " (measured on the standby)"));
        }
        self.worst_lag.map(|(m, _, lag)| (m, lag, ""))
    }

    /// " at production scale (estimate)" when the figures are estimates.
    fn at_scale(&self) -> &'static str {
        if self.r.estimate.is_some() {
            " at production scale (estimate)"
        } else {
            ""
        }
    }

    /// The usual verdict of an item with nothing of its own to say: open
    /// when the run did not restore or did not finish.
    fn unless_incomplete(&self, unfinished: impl FnOnce(&str) -> String) -> Option<String> {
        match &self.unfinished {
            Some(u) => Some(unfinished(u)),
            None if !self.restored => Some("Nothing was measured: fix the restore and re-run.".into()),
            None => None,
        }
    }

    fn destructive_line(&self) -> String {
        match self.destructive.is_empty() {
            true => "No dropped or renamed tables, views, schemas or columns in the executed statements.".into(),
            false => format!("Destructive changes: {}.", self.destructive.join("; ")),
        }
    }
}

fn destructive_changes(ms: &[MigrationReport]) -> Vec<String> {
    ms.iter()
        .flat_map(|m| {
            m.destructive_changes.iter().map(move |c| {
                let to = c.new_name.as_ref().map(|n| format!(" → {n}")).unwrap_or_default();
                let line = c.line.map(|l| format!(", line {l}")).unwrap_or_default();
                format!("{} {}{to} (`{}`{line})", c.kind, c.object, m.id)
            })
        })
        .collect()
}

fn environment(r: &Report) -> String {
    format!(
        "PostgreSQL {} ({} backend), {} CPU(s), {} RAM",
        r.postgres.version.as_deref().unwrap_or("?"),
        r.postgres.backend,
        r.machine.cpus,
        r.machine.memory_bytes.map(format_bytes).unwrap_or_else(|| "?".into())
    )
}

pub fn fill(r: &Report, s: &ChecklistSettings) -> Checklist {
    let f = Facts::new(r, s);
    Checklist {
        ops_threshold_ms: f.ops_ms(),
        deploy_window_ms: s.deploy_window.as_millis() as u64,
        replica_apply_rate_bytes_per_second: s.replica_apply_rate,
        items: vec![
            prod_shaped_data(&f),
            runtime_estimate(&f),
            backup(&f),
            replica_lag_plan(&f),
            ops_comm(&f),
            traffic_window(&f),
            standalone_job(&f),
            rollback(&f),
            abort_plan(&f),
            app_compatibility(&f),
            monitoring(&f),
        ],
    }
}
