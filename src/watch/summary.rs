//! The release as it happened beside the rehearsal (`rehearse.watch/v1`):
//! time per migration in production against the rehearsed and estimated
//! time, the longest blocking, the peak lag and the breaches; written as
//! `watch.json` and `watch.md` in `--out DIR`, for the checklist's
//! "monitoring active" item.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::track::Tracker;
use crate::error::Result;
use crate::report::{format_bytes, format_ms, range_ms, write_atomically, Range};

pub const WATCH_SCHEMA: &str = "rehearse.watch/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchSummary {
    pub schema: String,
    pub scenario: String,
    /// When the rehearsal ran.
    pub rehearsed_at: String,
    /// Host, port, user and database (never the password).
    pub server: String,
    pub started_at: String,
    pub ended_at: String,
    /// `applied`, `already_applied`, `timeout`, `interrupted`, `breach`.
    pub ending: String,
    pub migrations: Vec<WatchedMigration>,
    /// Production's time ÷ the rehearsal's, summed over the migrations whose
    /// start and end were both seen.
    pub production_over_rehearsal: Option<f64>,
    /// The `estimate.speed` that would have made the estimates' mids equal
    /// production's times, over the same migrations (the rehearsal's speed ×
    /// Σ estimated mid ÷ Σ production's time); null without estimates.
    #[serde(default)]
    pub calibrated_speed: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchedMigration {
    pub id: String,
    pub started_at: Option<String>,
    /// Production had applied it before the watch began.
    pub before_watch: bool,
    pub finished_at: Option<String>,
    /// Its time in production, when its first statement was seen.
    pub duration_ms: Option<u64>,
    pub rehearsed_ms: u64,
    pub estimate_ms: Option<Range>,
    /// Most sessions waiting behind it at once, and the longest wait of one.
    pub peak_queue: usize,
    pub longest_wait_ms: u64,
    /// The longest it waited for a lock itself.
    pub own_wait_ms: u64,
    pub peak_lag_bytes: Option<u64>,
    pub rehearsed_peak_lag_bytes: Option<u64>,
    pub breaches: Vec<String>,
}

impl WatchSummary {
    pub fn of(tracker: &Tracker, server: String, started_at: String, ending: &str) -> WatchSummary {
        let time = |t: Option<std::time::SystemTime>| t.map(|t| humantime::format_rfc3339_seconds(t).to_string());
        let migrations: Vec<WatchedMigration> = tracker
            .release
            .migrations
            .iter()
            .zip(&tracker.seen)
            .map(|(m, seen)| WatchedMigration {
                id: m.id.clone(),
                started_at: time(seen.started),
                before_watch: seen.before_watch,
                finished_at: time(seen.finished),
                duration_ms: seen.duration_ms(),
                rehearsed_ms: m.rehearsed_ms,
                estimate_ms: m.estimate_ms,
                peak_queue: seen.peak_queue,
                longest_wait_ms: seen.longest_wait_ms,
                own_wait_ms: seen.own_wait_ms,
                peak_lag_bytes: seen.peak_lag_bytes,
                rehearsed_peak_lag_bytes: m.standby_peak_bytes,
                breaches: seen.breaches.iter().map(|(_, message)| message.clone()).collect(),
            })
            .collect();
        let timed: Vec<_> = migrations.iter().filter_map(|m| Some((m.duration_ms?, m.rehearsed_ms))).collect();
        let (production, rehearsed) = timed.iter().fold((0, 0), |(p, r), (dp, dr)| (p + dp, r + dr));
        let estimated: Vec<_> = migrations.iter().filter_map(|m| Some((m.duration_ms?, m.estimate_ms?.mid))).collect();
        let (in_production, mid) = estimated.iter().fold((0, 0), |(p, e), (dp, de)| (p + dp, e + de));
        let calibrated_speed = tracker
            .release
            .estimate_speed
            .filter(|_| in_production > 0)
            .map(|speed| significant3(speed * mid as f64 / in_production as f64));
        WatchSummary {
            schema: WATCH_SCHEMA.to_string(),
            scenario: tracker.release.scenario.clone(),
            rehearsed_at: tracker.release.rehearsed_at.clone(),
            server,
            started_at,
            ended_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            ending: ending.to_string(),
            migrations,
            production_over_rehearsal: (rehearsed > 0).then(|| round2(production as f64 / rehearsed as f64)),
            calibrated_speed,
        }
    }
}

/// `x` to two decimals.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `x` to three significant figures: a speed far below 1 (production much
/// slower than the estimate's mid, e.g. a migration that waited on a lock)
/// must not read as 0, which `estimate.speed` refuses.
fn significant3(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(2 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

impl WatchSummary {
    /// Writes `watch.json` and `watch.md` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let json = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        let (json_path, md_path) = (dir.join("watch.json"), dir.join("watch.md"));
        write_atomically(&json_path, json.as_bytes(), "watch summary", "--out")?;
        write_atomically(&md_path, self.markdown().as_bytes(), "watch summary", "--out")?;
        Ok(vec![json_path, md_path])
    }

    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Release watched in production: {}\n\n{} from {} to {} ({}), beside the rehearsal of {}.\n\n",
            self.scenario,
            self.server,
            self.started_at,
            self.ended_at,
            self.ending.replace('_', " "),
            self.rehearsed_at
        );
        out.push_str("| Migration | Production | Rehearsed | Estimated | Waiting behind it | Standby lag |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for m in &self.migrations {
            let production = match (&m.finished_at, m.duration_ms) {
                _ if m.before_watch => "applied before the watch".into(),
                (_, Some(ms)) => format_ms(ms),
                (Some(_), None) => "between two readings".into(),
                (None, _) if m.started_at.is_some() => "running at the end".into(),
                (None, _) => "not started".into(),
            };
            let waiting = match m.peak_queue {
                0 => "none".to_string(),
                n => format!("{n} session(s), up to {}", format_ms(m.longest_wait_ms)),
            };
            let lag = m.peak_lag_bytes.map(format_bytes).unwrap_or_else(|| "—".into());
            let rehearsed_lag = m.rehearsed_peak_lag_bytes.map(|b| format!(" (rehearsed {})", format_bytes(b)));
            let _ = writeln!(
                out,
                "| {} | {production} | {} | {} | {waiting} | {lag}{} |",
                m.id,
                format_ms(m.rehearsed_ms),
                m.estimate_ms.map(range_ms).unwrap_or_else(|| "—".into()),
                rehearsed_lag.unwrap_or_default()
            );
        }
        self.notes(&mut out);
        out
    }

    fn notes(&self, out: &mut String) {
        if let Some(m) = self.migrations.iter().filter(|m| m.peak_queue > 0).max_by_key(|m| m.longest_wait_ms) {
            let _ = writeln!(
                out,
                "\nLongest blocking: {} kept {} session(s) waiting, the longest {}.",
                m.id,
                m.peak_queue,
                format_ms(m.longest_wait_ms)
            );
        }
        let breaches: Vec<&String> = self.migrations.iter().flat_map(|m| &m.breaches).collect();
        if !breaches.is_empty() {
            out.push_str("\n**Thresholds crossed:**\n\n");
            for b in breaches {
                let _ = writeln!(out, "- {b}");
            }
        }
        if let Some(ratio) = self.production_over_rehearsal {
            let _ =
                writeln!(out, "\nProduction took {ratio}× the rehearsal's time for the migrations seen start to end.");
        }
        if let Some(speed) = self.calibrated_speed {
            let _ = writeln!(
                out,
                "With `estimate.speed: {speed}` the estimates' mids would have matched production's times: the \
                 calibration for the next rehearsal."
            );
        }
    }
}

#[cfg(test)]
mod rounding {
    #[test]
    fn a_small_speed_keeps_three_significant_figures() {
        assert_eq!(super::significant3(0.004048), 0.00405);
        assert_eq!(super::significant3(72.5123), 72.5);
        assert_eq!(super::significant3(0.0), 0.0);
    }
}
