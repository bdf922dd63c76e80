//! Reports: one model (`model.rs`), one writer per format, written atomically.

pub mod checklist;
pub mod junit;
mod markdown;
mod model;
mod section;
pub mod summary;
mod table;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use junit::render as render_junit;
pub use markdown::render as render_markdown;
pub use model::*;
pub use table::render as render_table;

use crate::error::{Error, Result};
use crate::scenario::ReportFormat;

/// Writes the file formats among `formats` into `dir`; returns the paths.
/// Each file is written to a temp file in `dir` and renamed, so a reader
/// never sees half a report. Files are private to the user (0600).
/// Under GitHub Actions (`GITHUB_STEP_SUMMARY` set), the Markdown is also
/// appended to the job's summary page.
/// Every file format asked for, rendered: (file name, contents).
pub fn render_all(report: &Report, formats: &[ReportFormat]) -> Vec<(&'static str, String)> {
    formats
        .iter()
        .filter_map(|format| match format {
            ReportFormat::Markdown => Some(("report.md", render_markdown(report))),
            ReportFormat::Json => Some(("report.json", render_json(report))),
            ReportFormat::Junit => Some(("junit.xml", render_junit(report))),
            ReportFormat::Table => None,
        })
        .collect()
}

pub fn write_files(report: &Report, dir: &Path, formats: &[ReportFormat]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (name, body) in render_all(report, formats) {
        let path = dir.join(name);
        write_atomically(&path, body.as_bytes())?;
        written.push(path);
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(summary);
        append_step_summary(&path, &render_markdown(report))?;
        written.push(path);
    }
    Ok(written)
}

/// GitHub rejects a step summary over 1 MiB, so a longer report is cut at a
/// line boundary with a pointer to the full file.
const STEP_SUMMARY_LIMIT: usize = 1000 * 1024;

fn append_step_summary(path: &Path, markdown: &str) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::environment_because(format!("cannot append the report to GITHUB_STEP_SUMMARY ({})", path.display()), e)
    };
    let mut text = markdown.to_string();
    if text.len() > STEP_SUMMARY_LIMIT {
        let cut = text[..STEP_SUMMARY_LIMIT].rfind('\n').unwrap_or(0);
        text.truncate(cut);
        text.push_str("\n\n*(cut to fit the step summary: the full report is report.md among the job's artifacts)*\n");
    }
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(path).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.write_all(b"\n").map_err(fail)
}

pub fn render_json(report: &Report) -> String {
    let mut text = serde_json::to_string_pretty(report).expect("the report model always serializes");
    text.push('\n');
    text
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| {
        Error::environment_because(format!("cannot write report {} (check report.dir or --out)", path.display()), e)
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// `850ms`, `12.3s`, `4m 05s`, `1h 02m`.
pub fn format_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// Sizes in Postgres's units (1 kB = 1024 bytes): `512 B`, `8.0 kB`, `1.2 GB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// One line for stderr when the run did not pass: which migration failed or
/// went over budget, and where the details are.
pub fn outcome_line(r: &Report) -> Option<String> {
    match r.status {
        RunStatus::Passed => None,
        RunStatus::Failed => r.migrations.iter().find(|m| m.status == MigrationStatus::Failed).map(|m| {
            let first = m.error.as_ref().and_then(|e| e.message.lines().next()).unwrap_or("");
            format!("error: migration {} failed: {first} (details in the report; exit 2)", m.id)
        }),
        RunStatus::BudgetExceeded => {
            let mut breaches: Vec<String> = r
                .migrations
                .iter()
                .flat_map(|m| m.budget_breaches.iter().map(move |b| format!("{}: {b}", m.id)))
                .collect();
            breaches.extend(r.budget_breaches.iter().cloned());
            Some(format!("error: budget exceeded: {} (exit 1)", breaches.join("; ")))
        }
        RunStatus::Interrupted => Some(
            "interrupted: the throwaway server was cleaned up; the partial report says where it stopped (exit 130)"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(format_ms(850), "850ms");
        assert_eq!(format_ms(12_340), "12.3s");
        assert_eq!(format_ms(245_000), "4m 05s");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(8192), "8.0 kB");
        assert_eq!(format_bytes(3 << 30), "3.0 GB");
    }
}
