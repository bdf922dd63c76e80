//! The scenario's `report:` and the flags that override it: where the files
//! go (a directory that can hold them, checked before the run starts), which
//! formats, the baseline (read and checked now), the thresholds, and the
//! output choices this process's environment makes (the terminal's width,
//! GitHub's step summary).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::scenario::ReportSection;
use super::{Origin, Overrides};
use crate::error::{ErrorKind, Result};
use crate::gate::{baseline, Baseline};
use crate::report::checklist::ChecklistSettings;
use crate::report::{OutputOptions, RegressionThresholds, ReportFormat};

#[derive(Debug)]
pub struct ReportPlan {
    pub dir: PathBuf,
    /// Who named `dir`, for messages: "--out", "report.dir" or the default.
    pub dir_named_by: &'static str,
    pub formats: Vec<ReportFormat>,
    /// The previous report to compare with, read and checked up front.
    pub baseline: Option<Baseline>,
    pub regression: RegressionThresholds,
    /// Time a `pg_dump -Fc` of the rehearsal database before cleanup.
    pub measure_backup: bool,
    pub checklist: ChecklistSettings,
    /// The terminal's width and the step summary, read once, here.
    pub output: OutputOptions,
    /// Row values taken out of the report, the events and the errors shown (`report.redact`).
    pub redact: bool,
}

pub(super) fn plan(r: &ReportSection, name: &str, overrides: &Overrides, origin: &Origin) -> Result<ReportPlan> {
    let baseline = match (&overrides.baseline, &r.baseline) {
        (Some(p), _) => Some(origin.on_command_line(p)),
        (None, Some(p)) => Some(origin.in_scenario(p.as_str())),
        (None, None) => None,
    };
    let (dir, dir_named_by) = match (&overrides.out, &r.dir) {
        (Some(d), _) => (origin.on_command_line(d), "--out"),
        (None, Some(d)) => (origin.in_scenario(d.as_str()), "report.dir"),
        (None, None) => (origin.cwd.join("reports").join(name), "the default, reports/<name>"),
    };
    can_be_a_directory(&dir, dir_named_by)?;
    let formats = overrides
        .formats
        .clone()
        .or_else(|| r.formats.clone())
        .unwrap_or_else(|| vec![ReportFormat::Table, ReportFormat::Markdown, ReportFormat::Json]);
    let regression = r.regression.clone().unwrap_or_default();
    let defaults = ChecklistSettings::default();
    Ok(ReportPlan {
        dir,
        dir_named_by,
        formats,
        baseline: baseline.map(|p| Baseline::load(&p)).transpose()?,
        regression: baseline::thresholds(regression.percent, regression.min_time, regression.min_wal.map(|b| b.0)),
        measure_backup: r.measure_backup,
        checklist: ChecklistSettings {
            ops_threshold: r.ops_threshold.unwrap_or(defaults.ops_threshold),
            deploy_window: r.deploy_window.unwrap_or(defaults.deploy_window),
            replica_apply_rate: r.replica_apply_rate.map(|r| r.0).unwrap_or(defaults.replica_apply_rate),
        },
        output: output_options(stdout_width(), |name| std::env::var_os(name), &origin.cwd),
        redact: redact(r),
    })
}

/// `report.redact`: on unless the scenario turns it off.
pub(super) fn redact(r: &ReportSection) -> bool {
    r.redact.unwrap_or(true)
}

/// The output choices, from the terminal's width (None when stdout is not a
/// terminal) and the environment (`var`): the table fits the terminal, else
/// `$COLUMNS` when set (a CI log), else is as wide as its content; under
/// GitHub Actions (`GITHUB_STEP_SUMMARY` set and not empty) the Markdown
/// also goes to the job's summary, a relative path starting in `cwd`.
fn output_options(terminal: Option<usize>, var: impl Fn(&str) -> Option<OsString>, cwd: &Path) -> OutputOptions {
    let columns = || var("COLUMNS")?.to_str()?.trim().parse().ok();
    OutputOptions {
        width: terminal.or_else(columns),
        step_summary: var("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()).map(|p| cwd.join(p)),
    }
}

/// Stdout's width in columns, when it is a terminal.
fn stdout_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(std::io::stdout()).map(|(terminal_size::Width(w), _)| w as usize)
}

/// Room the report files must have before the run starts: 8 MiB. A report
/// is usually about 0.1 MB (the demo's report.json is 87 kB, its report.md
/// less); a release of hundreds of migrations with thousands of distinct
/// statements makes a few MB, and each file is written beside its old
/// version before it replaces it.
pub const REPORT_ROOM: u64 = 8 << 20;

/// A report directory that is plainly wrong (a file, or a path through
/// one) is bad input; one that cannot be read yet is left to [`check_room`].
fn can_be_a_directory(dir: &Path, named_by: &str) -> Result<()> {
    for path in dir.ancestors() {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(ErrorKind::ReportDirInvalid.error(format!(
                    "the report directory {} ({named_by}) cannot be made: {} is a file, not a directory: name a \
                     directory (it is created when missing)",
                    dir.display(),
                    path.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// The report directory exists (made when missing), can be written, and
/// has [`REPORT_ROOM`] free: else the rehearsal would run to its end and
/// then fail to say what it found. Nothing to check when only the terminal
/// table is asked for.
pub(super) fn check_room(plan: &ReportPlan) -> Result<()> {
    if plan.formats.iter().all(|f| *f == ReportFormat::Table) {
        return Ok(());
    }
    let dir = &plan.dir;
    let shown = format!("the report directory {} ({})", dir.display(), plan.dir_named_by);
    let remedy = "or choose another with --out DIR (or report.dir)";
    // The room first, where the directory is or will be made: a refused run makes nothing.
    let existing = dir.ancestors().find(|a| a.is_dir()).unwrap_or(dir);
    let free = crate::restore::space::free_bytes(existing)
        .map_err(|e| ErrorKind::ReportUnwritable.because(format!("cannot tell how much room {shown} has"), e))?;
    if free < REPORT_ROOM {
        return Err(ErrorKind::ReportUnwritable.error(format!(
            "{shown} has {} free, and the reports need up to {}: free some space there, {remedy}",
            crate::report::format_bytes(free),
            crate::report::format_bytes(REPORT_ROOM)
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        ErrorKind::ReportUnwritable.because(format!("cannot create {shown}: make its parent writable, {remedy}"), e)
    })?;
    // A file made and removed: the one proof of writing that holds for a
    // read-only mount and for root alike (root ignores the mode bits).
    tempfile::NamedTempFile::new_in(dir).map_err(|e| {
        ErrorKind::ReportUnwritable.because(format!("cannot write in {shown}: make it writable, {remedy}"), e)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(terminal: Option<usize>, vars: &[(&str, &str)]) -> OutputOptions {
        let var = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(v));
        output_options(terminal, var, Path::new("/work"))
    }

    #[test]
    fn the_width_is_the_terminals_else_columns_else_none() {
        assert_eq!(resolved(Some(120), &[("COLUMNS", "80")]).width, Some(120));
        assert_eq!(resolved(None, &[("COLUMNS", " 80\n")]).width, Some(80));
        assert_eq!(resolved(None, &[("COLUMNS", "wide")]).width, None);
        assert_eq!(resolved(None, &[]).width, None);
    }

    #[test]
    fn the_step_summary_is_a_set_github_step_summary_made_absolute() {
        let summary = |value: &str| resolved(None, &[("GITHUB_STEP_SUMMARY", value)]).step_summary;
        assert_eq!(summary("/gh/step_summary"), Some(PathBuf::from("/gh/step_summary")));
        assert_eq!(summary("summary.md"), Some(PathBuf::from("/work/summary.md")));
        assert_eq!(summary(""), None);
        assert_eq!(resolved(None, &[]).step_summary, None);
    }
}
