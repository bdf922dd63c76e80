//! `rehearse comment REPORT`: the report where the release is reviewed.
//! One comment per scenario on the pull request (GitHub) or merge request
//! (GitLab), found again by a hidden marker and edited in place, so a
//! re-run updates it rather than adding another. The body is the compact
//! Markdown of `report::comment`, cut at a section boundary to fit.

mod http;
mod review;
mod target;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::report::{comment, Report, SCHEMA};
pub use review::Upserted;
pub use target::{Given, Platform};

/// What `rehearse comment` was asked.
#[derive(Debug, Default)]
pub struct Request {
    /// A report.json, or the directory holding it.
    pub report: PathBuf,
    /// Where the full report is (the job's artifact), linked from the comment.
    pub artifact_url: Option<String>,
    /// Comment only when the outcome differs from this earlier report.
    pub changed_since: Option<PathBuf>,
    /// Print the body to stdout and post nothing.
    pub print: bool,
    pub given: Given,
}

/// What was done.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    Printed(String),
    /// Same outcome as `--changed-since`: nothing posted.
    Unchanged,
    Posted {
        upserted: Upserted,
        on: String,
    },
}

/// Runs `rehearse comment`, the CI's variables read through `var`.
pub fn run(request: &Request, var: impl Fn(&str) -> Option<String>) -> Result<Done> {
    let report = read_report(&request.report)?;
    if let Some(previous) = &request.changed_since {
        if outcome(&read_report(previous)?) == outcome(&report) && !regressed(&report) {
            return Ok(Done::Unchanged);
        }
    }
    let artifact = request.artifact_url.as_deref();
    if request.print {
        return Ok(Done::Printed(comment::body(&report, artifact, usize::MAX)));
    }
    let target = target::resolve(&request.given, var)?;
    let review = review::Review::new(&target);
    let body = comment::body(&report, artifact, review.limit());
    let upserted = review.upsert(&comment::marker(&report.scenario), &body)?;
    Ok(Done::Posted { upserted, on: target.shown() })
}

/// A report.json (or the directory holding one), checked to be rehearse's.
fn read_report(path: &Path) -> Result<Report> {
    let file = if path.is_dir() { path.join("report.json") } else { path.to_path_buf() };
    let fail = |why: String| {
        Error::bad_input(format!(
            "cannot read the report {}: {why}; name a report.json rehearse wrote (`--format json`), or its directory",
            file.display()
        ))
    };
    let text = std::fs::read_to_string(&file).map_err(|e| fail(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON ({e})")))?;
    match json.get("schema").and_then(|s| s.as_str()) {
        Some(SCHEMA) => serde_json::from_value(json).map_err(|e| fail(format!("not a {SCHEMA} report ({e})"))),
        other => Err(fail(format!("its schema is {}, not {SCHEMA}", other.unwrap_or("missing")))),
    }
}

/// What a reviewer would call "the result": the run's status, each
/// migration's status, hazards and breaches, and the run's breaches.
fn outcome(r: &Report) -> Vec<String> {
    let mut out = vec![r.status.as_str().to_string()];
    for m in &r.migrations {
        let mut rules: Vec<&str> = m.hazards.iter().map(|h| h.rule.as_str()).collect();
        rules.sort_unstable();
        out.push(format!("{} {} [{}] [{}]", m.id, m.status.as_str(), rules.join(","), m.budget_breaches.join("; ")));
    }
    out.extend(r.budget_breaches.iter().cloned());
    out
}

/// Regressions against the baseline the report was compared with.
fn regressed(r: &Report) -> bool {
    r.baseline.as_ref().is_some_and(|b| !b.regressions.is_empty())
}

/// The exit code of `rehearse comment`, with its line on stdout or stderr.
pub fn exit_code(result: Result<Done>) -> i32 {
    match result {
        Ok(Done::Printed(body)) => {
            print!("{body}");
            0
        }
        Ok(Done::Unchanged) => {
            eprintln!("the outcome is the same as in --changed-since: no comment posted");
            0
        }
        Ok(Done::Posted { upserted, on }) => {
            let (what, id, url) = match upserted {
                Upserted::Created { id, url } => ("created", id, url),
                Upserted::Updated { id, url } => ("updated", id, url),
            };
            eprintln!("{what} comment {id} on {on}{}", url.map(|u| format!(": {u}")).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("{}", e.render());
            e.exit_code()
        }
    }
}
