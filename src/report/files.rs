//! Each format rendered once, then written as rendered: files atomically
//! and private to the user, and the Markdown to GitHub's job summary when
//! the plan found one. Rendering reads no environment: what depends on it
//! (the terminal's width, the step summary) comes in [`OutputOptions`],
//! resolved with the plan.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{junit, markdown, table, OutputOptions, Report, ReportFormat};
use crate::error::{ErrorKind, Result};

/// `format` rendered: a pure function of the report and the output options.
pub fn render(report: &Report, format: ReportFormat, output: &OutputOptions) -> String {
    match format {
        ReportFormat::Table => table::render_for_width(report, output.width),
        ReportFormat::Markdown => markdown::render(report),
        ReportFormat::Json => render_json(report),
        ReportFormat::Junit => junit::render(report),
    }
}

/// The file a format is written to; None for the terminal table.
fn file_name(format: ReportFormat) -> Option<&'static str> {
    match format {
        ReportFormat::Table => None,
        ReportFormat::Markdown => Some("report.md"),
        ReportFormat::Json => Some("report.json"),
        ReportFormat::Junit => Some("junit.xml"),
    }
}

/// The formats a run shows, each rendered once and written as rendered:
/// those asked for, and the Markdown for GitHub's step summary (also when
/// `report.md` itself was not asked for).
pub struct Rendered {
    asked: Vec<ReportFormat>,
    output: OutputOptions,
    texts: Vec<(ReportFormat, Option<String>)>,
}

impl Rendered {
    /// Nothing rendered yet.
    pub fn new(asked: &[ReportFormat], output: &OutputOptions) -> Rendered {
        let mut texts: Vec<(ReportFormat, Option<String>)> = Vec::new();
        let summary = output.step_summary.as_ref().map(|_| ReportFormat::Markdown);
        for format in asked.iter().copied().chain(summary) {
            if texts.iter().all(|(f, _)| *f != format) {
                texts.push((format, None));
            }
        }
        Rendered { asked: asked.to_vec(), output: output.clone(), texts }
    }

    /// Renders each format not rendered yet that `now` selects.
    pub fn render(&mut self, report: &Report, now: impl Fn(ReportFormat) -> bool) {
        for (format, text) in &mut self.texts {
            if text.is_none() && now(*format) {
                *text = Some(render(report, *format, &self.output));
            }
        }
    }

    /// A format's text, once rendered.
    pub fn text(&self, format: ReportFormat) -> Option<&str> {
        self.texts.iter().find(|(f, _)| *f == format).and_then(|(_, t)| t.as_deref())
    }

    /// Writes the rendered file formats asked for into `dir`, and appends
    /// the Markdown to the step summary when there is one; returns the
    /// paths. Each file is written to a temp file in `dir` and renamed, so
    /// a reader never sees half a report. Files are private to the user (0600).
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (format, text) in &self.texts {
            let (Some(name), Some(text), true) = (file_name(*format), text, self.asked.contains(format)) else {
                continue;
            };
            let path = dir.join(name);
            write_atomically(&path, text.as_bytes(), "report", "report.dir or --out")?;
            written.push(path);
        }
        if let (Some(path), Some(markdown)) = (&self.output.step_summary, self.text(ReportFormat::Markdown)) {
            append_step_summary(path, markdown)?;
            written.push(path.clone());
        }
        Ok(written)
    }
}

/// GitHub rejects a step summary over 1 MiB, so a longer report is cut at a
/// line boundary with a pointer to the full file.
const STEP_SUMMARY_LIMIT: usize = 1000 * 1024;

fn append_step_summary(path: &Path, markdown: &str) -> Result<()> {
    let fail = |e: std::io::Error| {
        ErrorKind::ReportUnwritable
            .because(format!("cannot append the report to GITHUB_STEP_SUMMARY ({})", path.display()), e)
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
        ErrorKind::ReportUnwritable.because(format!("cannot write {what} {} (check {check})", path.display()), e)
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// The tests that set environment variables, one at a time.
    static ENV: Mutex<()> = Mutex::new(());

    fn demo() -> Report {
        serde_json::from_str(include_str!("../../tests/fixtures/report-v1-demo.json")).unwrap()
    }

    #[test]
    fn the_table_has_the_width_it_is_given_whatever_columns_says_at_render_time() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let (report, output) = (demo(), OutputOptions { width: Some(100), step_summary: None });
        std::env::remove_var("COLUMNS");
        let table = render(&report, ReportFormat::Table, &output);
        assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
        assert_ne!(table, render(&report, ReportFormat::Table, &OutputOptions::default()), "the demo is wider");
        for columns in ["1000", "40"] {
            std::env::set_var("COLUMNS", columns);
            let again = render(&report, ReportFormat::Table, &output);
            std::env::remove_var("COLUMNS");
            assert_eq!(again, table, "COLUMNS={columns} at render time changed the table");
        }
    }

    #[test]
    fn the_step_summary_the_options_name_gets_the_markdown_as_rendered_and_no_other() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let (report, summary, decoy) = (demo(), dir.path().join("summary.md"), dir.path().join("decoy.md"));
        std::env::set_var("GITHUB_STEP_SUMMARY", &decoy);
        let output = OutputOptions { width: None, step_summary: Some(summary.clone()) };
        // The Markdown goes to the step summary also when report.md is not asked for.
        let mut rendered = Rendered::new(&[ReportFormat::Json], &output);
        rendered.render(&report, |_| true);
        let written = rendered.write(dir.path());
        let markdown = render(&report, ReportFormat::Markdown, &output);
        assert_eq!(std::fs::read_to_string(&summary).unwrap(), format!("{markdown}\n"));
        assert_eq!(written.unwrap(), [dir.path().join("report.json"), summary]);
        assert!(!dir.path().join("report.md").exists() && !decoy.exists());
        // No step summary in the options: none written, whatever the environment says.
        let mut rendered = Rendered::new(&[ReportFormat::Markdown], &OutputOptions::default());
        rendered.render(&report, |_| true);
        let written = rendered.write(dir.path());
        std::env::remove_var("GITHUB_STEP_SUMMARY");
        assert_eq!(written.unwrap(), [dir.path().join("report.md")]);
        assert!(!decoy.exists());
    }

    #[test]
    fn each_format_is_rendered_once_and_those_that_list_the_stages_last() {
        let mut report = demo();
        let asked = [ReportFormat::Table, ReportFormat::Markdown, ReportFormat::Json, ReportFormat::Junit];
        let mut rendered = Rendered::new(&asked, &OutputOptions::default());
        rendered.render(&report, |format| !format.lists_stages());
        assert!(rendered.text(ReportFormat::Table).is_some() && rendered.text(ReportFormat::Junit).is_some());
        assert_eq!((rendered.text(ReportFormat::Markdown), rendered.text(ReportFormat::Json)), (None, None));
        let junit = rendered.text(ReportFormat::Junit).unwrap().to_string();
        // The report stage's own time, as the run adds it when the stage's clock stops; and
        // a change JUnit would show, to see that a format rendered already is not rendered again.
        report.stages.push(crate::report::StageTime { stage: crate::report::Stage::Report, duration_ms: 4321 });
        report.totals.run_duration_ms += 60_000;
        rendered.render(&report, |_| true);
        assert_eq!(rendered.text(ReportFormat::Junit), Some(junit.as_str()), "rendered once, not again");
        assert!(rendered.text(ReportFormat::Json).unwrap().contains("4321"));
        assert!(rendered.text(ReportFormat::Markdown).unwrap().contains("report 4.3s"));
    }
}
