//! Writing report files: atomically, private to the user, and to GitHub's
//! job summary when running there.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{render_junit, render_markdown, Report, ReportFormat};
use crate::error::{Error, Result};

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

/// Writes the file formats among `formats` into `dir`; returns the paths.
/// Each file is written to a temp file in `dir` and renamed, so a reader
/// never sees half a report. Files are private to the user (0600).
/// Under GitHub Actions (`GITHUB_STEP_SUMMARY` set), the Markdown is also
/// appended to the job's summary page.
pub fn write_files(report: &Report, dir: &Path, formats: &[ReportFormat]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (name, body) in render_all(report, formats) {
        let path = dir.join(name);
        write_atomically(&path, body.as_bytes(), "report", "report.dir or --out")?;
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

/// Writes `bytes` to `path` whole or not at all (a temp file in its
/// directory, then a rename). Errors name `what` was written and the
/// setting that chose the place (`check`), e.g. "report", "report.dir or --out".
pub fn write_atomically(path: &Path, bytes: &[u8], what: &str, check: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| {
        Error::environment_because(format!("cannot write {what} {} (check {check})", path.display()), e)
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}
