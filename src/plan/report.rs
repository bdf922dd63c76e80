//! The scenario's `report:` and the flags that override it: where the files
//! go, which formats, the baseline (read and checked now), the thresholds.

use std::path::PathBuf;

use super::scenario::ReportSection;
use super::{Origin, Overrides};
use crate::error::Result;
use crate::gate::{baseline, Baseline};
use crate::report::checklist::ChecklistSettings;
use crate::report::{RegressionThresholds, ReportFormat};

#[derive(Debug)]
pub struct ReportPlan {
    pub dir: PathBuf,
    pub formats: Vec<ReportFormat>,
    /// The previous report to compare with, read and checked up front.
    pub baseline: Option<Baseline>,
    pub regression: RegressionThresholds,
    /// Time a `pg_dump -Fc` of the rehearsal database before cleanup.
    pub measure_backup: bool,
    pub checklist: ChecklistSettings,
}

pub(super) fn plan(r: &ReportSection, name: &str, overrides: &Overrides, origin: &Origin) -> Result<ReportPlan> {
    let baseline = match (&overrides.baseline, &r.baseline) {
        (Some(p), _) => Some(origin.on_command_line(p)),
        (None, Some(p)) => Some(origin.in_scenario(p.as_str())),
        (None, None) => None,
    };
    let dir = match (&overrides.out, &r.dir) {
        (Some(d), _) => origin.on_command_line(d),
        (None, Some(d)) => origin.in_scenario(d.as_str()),
        (None, None) => origin.cwd.join("reports").join(name),
    };
    let formats = overrides
        .formats
        .clone()
        .or_else(|| r.formats.clone())
        .unwrap_or_else(|| vec![ReportFormat::Table, ReportFormat::Markdown, ReportFormat::Json]);
    let regression = r.regression.clone().unwrap_or_default();
    let defaults = ChecklistSettings::default();
    Ok(ReportPlan {
        dir,
        formats,
        baseline: baseline.map(|p| Baseline::load(&p)).transpose()?,
        regression: baseline::thresholds(regression.percent, regression.min_time, regression.min_wal.map(|b| b.0)),
        measure_backup: r.measure_backup,
        checklist: ChecklistSettings {
            ops_threshold: r.ops_threshold.unwrap_or(defaults.ops_threshold),
            deploy_window: r.deploy_window.unwrap_or(defaults.deploy_window),
            replica_apply_rate: r.replica_apply_rate.map(|r| r.0).unwrap_or(defaults.replica_apply_rate),
        },
    })
}
