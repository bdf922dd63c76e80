//! Last night's report as a baseline: per migration, how time, WAL and the
//! longest blocking lock changed, and which changes are regressions.
//!
//! The baseline is read while the plan is resolved, so a missing or foreign
//! file fails the run in a second (exit 3) before any server starts. It is
//! read leniently (only the keys compared here), so reports written by older
//! versions of rehearse still serve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{ErrorKind, Result};
use crate::report::{
    format_bytes, format_ms, BaselineComparison, Change, Metric, MigrationDelta, MigrationStatus, Regression,
    RegressionThresholds, Report, SCHEMA,
};
use crate::sys::json::{read_versioned, Refusal};

/// Default growth beyond which a change is a regression.
pub const DEFAULT_PERCENT: f64 = 25.0;
/// Default floor for time and lock holds: below a second, run-to-run noise
/// on a shared CI machine is of the same order as the change.
pub const DEFAULT_MIN_TIME: Duration = Duration::from_secs(1);
/// Default floor for WAL: one WAL segment (16 MB). The WAL counted around a
/// migration includes background activity (autovacuum, checkpoints' first
/// full-page images), which varies by a few MB from run to run.
pub const DEFAULT_MIN_WAL: u64 = 16 << 20;

/// The thresholds, each given or its default.
pub fn thresholds(percent: Option<f64>, min_time: Option<Duration>, min_wal: Option<u64>) -> RegressionThresholds {
    RegressionThresholds {
        percent: percent.unwrap_or(DEFAULT_PERCENT),
        min_time_ms: min_time.unwrap_or(DEFAULT_MIN_TIME).as_millis() as u64,
        min_wal_bytes: min_wal.unwrap_or(DEFAULT_MIN_WAL),
    }
}

/// A previous `report.json`, as far as the comparison needs it.
#[derive(Debug)]
pub struct Baseline {
    pub path: PathBuf,
    report: PreviousReport,
}

#[derive(Debug, Deserialize)]
struct PreviousReport {
    scenario: String,
    started_at: Option<String>,
    #[serde(default)]
    migrations: Vec<PreviousMigration>,
}

#[derive(Debug, Deserialize)]
struct PreviousMigration {
    id: String,
    status: MigrationStatus,
    duration_ms: u64,
    wal: PreviousWal,
    #[serde(default)]
    longest_read_block: Option<PreviousBlock>,
    #[serde(default)]
    longest_write_block: Option<PreviousBlock>,
}

#[derive(Debug, Deserialize)]
struct PreviousWal {
    bytes: u64,
}

#[derive(Debug, Deserialize)]
struct PreviousBlock {
    held_ms: u64,
}

impl Baseline {
    /// Reads and checks a baseline; anything but a `rehearse.report/v1` JSON is bad input.
    pub fn load(path: &Path) -> Result<Baseline> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ErrorKind::BaselineInvalid.because(
                format!(
                    "cannot read baseline {shown}: pass the report.json of an earlier run (--baseline or \
                     report.baseline), or leave the baseline out for the first night"
                ),
                e,
            )
        })?;
        let kind = ErrorKind::BaselineInvalid;
        let report: PreviousReport = read_versioned(&text, SCHEMA, kind, |refusal| match refusal {
            Refusal::NotJson => format!("baseline {shown} is not JSON: pass the report.json of an earlier run"),
            Refusal::OtherSchema(other) => format!(
                "baseline {shown} is not a rehearse report (its schema is {}, expected \"{SCHEMA}\"): \
                 pass the report.json of an earlier run",
                other.map(|s| format!("\"{s}\"")).unwrap_or_else(|| "missing".into())
            ),
            Refusal::Incomplete => {
                format!("baseline {shown} says it is a {SCHEMA} report but lacks what the comparison needs")
            }
        })?;
        Ok(Baseline { path: path.to_path_buf(), report })
    }

    /// This run against the baseline.
    pub fn compare(&self, report: &Report, t: &RegressionThresholds) -> BaselineComparison {
        let previous: BTreeMap<&str, &PreviousMigration> =
            self.report.migrations.iter().map(|m| (m.id.as_str(), m)).collect();
        let mut out = BaselineComparison {
            path: self.path.display().to_string(),
            scenario: self.report.scenario.clone(),
            started_at: self.report.started_at.clone(),
            thresholds: t.clone(),
            ..Default::default()
        };
        for m in &report.migrations {
            let Some(before) = previous.get(m.id.as_str()) else {
                out.new.push(m.id.clone());
                continue;
            };
            if m.status != MigrationStatus::Applied || before.status != MigrationStatus::Applied {
                out.not_compared.push(m.id.clone());
                continue;
            }
            let delta = MigrationDelta {
                id: m.id.clone(),
                duration_ms: change(before.duration_ms, m.duration_ms),
                wal_bytes: change(before.wal.bytes, m.wal.bytes),
                longest_block_ms: change(previous_block(before), m.longest_block()),
            };
            for (metric, c, floor, what) in [
                (Metric::DurationMs, delta.duration_ms, t.min_time_ms, "time"),
                (Metric::WalBytes, delta.wal_bytes, t.min_wal_bytes, "WAL"),
                (Metric::LongestBlockMs, delta.longest_block_ms, t.min_time_ms, "longest blocking lock"),
            ] {
                if is_regression(c, t.percent, floor) {
                    let shown = |v| if metric == Metric::WalBytes { format_bytes(v) } else { format_ms(v) };
                    let pct = c.change_percent.map(|p| format!("+{p:.0}%")).unwrap_or_else(|| "new".into());
                    out.regressions.push(Regression {
                        id: m.id.clone(),
                        metric,
                        baseline: c.baseline,
                        current: c.current,
                        change_percent: c.change_percent,
                        message: format!("{what} {} → {} ({pct})", shown(c.baseline), shown(c.current)),
                    });
                }
            }
            out.migrations.push(delta);
        }
        let now: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
        out.vanished =
            self.report.migrations.iter().filter(|m| !now.contains(&m.id.as_str())).map(|m| m.id.clone()).collect();
        out
    }
}

fn previous_block(m: &PreviousMigration) -> u64 {
    [&m.longest_read_block, &m.longest_write_block].into_iter().flatten().map(|b| b.held_ms).max().unwrap_or(0)
}

fn change(baseline: u64, current: u64) -> Change {
    let change_percent =
        (baseline > 0).then(|| ((current as f64 - baseline as f64) / baseline as f64 * 1000.0).round() / 10.0);
    Change { baseline, current, change_percent }
}

/// Grew by more than `percent` and by at least `floor`.
fn is_regression(c: Change, percent: f64, floor: u64) -> bool {
    let grew = c.current.saturating_sub(c.baseline);
    grew >= floor.max(1) && c.current as f64 > c.baseline as f64 * (1.0 + percent / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regression_needs_both_the_percentage_and_the_floor() {
        let t = thresholds(None, None, None);
        assert_eq!((t.percent, t.min_time_ms, t.min_wal_bytes), (25.0, 1000, 16 << 20));
        assert!(is_regression(change(2_000, 4_000), t.percent, t.min_time_ms), "doubled, +2s");
        assert!(!is_regression(change(200, 900), t.percent, t.min_time_ms), "+350% but only +700ms");
        assert!(!is_regression(change(10_000, 12_000), t.percent, t.min_time_ms), "+2s but only +20%");
        assert!(is_regression(change(0, 1_500), t.percent, t.min_time_ms), "a new 1.5s block");
        assert!(!is_regression(change(4_000, 2_000), t.percent, t.min_time_ms), "faster is not a regression");
        assert!(is_regression(change(40 << 20, 80 << 20), t.percent, t.min_wal_bytes));
        assert!(!is_regression(change(1 << 20, 8 << 20), t.percent, t.min_wal_bytes), "under one segment");
        assert_eq!(change(2_000, 3_000).change_percent, Some(50.0));
        assert_eq!(change(0, 3_000).change_percent, None);
    }

    #[test]
    fn foreign_files_are_bad_input_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let err = Baseline::load(&missing).unwrap_err();
        assert!(err.to_string().contains("nope.json") && err.exit_code() == 3, "{err}");
        let other = dir.path().join("other.json");
        std::fs::write(&other, r#"{"schema": "something/v2"}"#).unwrap();
        let err = Baseline::load(&other).unwrap_err().to_string();
        assert!(err.contains("not a rehearse report") && err.contains("something/v2"), "{err}");
        std::fs::write(&other, "name: yaml").unwrap();
        assert!(Baseline::load(&other).unwrap_err().to_string().contains("is not JSON"));
    }
}
