//! Reports: one model (`model.rs`, `facts.rs`), one writer per format
//! (terminal table, Markdown, JSON, JUnit), each a set of small functions
//! over that model; files written atomically.

mod abort;
pub mod checklist;
mod facts;
mod files;
mod hazards;
pub mod junit;
mod load;
mod markdown;
mod model;
mod physical;
mod platform;
mod production;
mod race;
mod redact;
mod rehearsal;
mod rollback;
pub mod summary;
mod table;
mod units;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::kinds::closed_set;

pub use abort::*;
pub use files::{render, render_json, write_atomically, Rendered};
pub use junit::render as render_junit;
pub use load::*;
pub use markdown::comment;
pub use markdown::render as render_markdown;
pub use model::*;
pub use physical::*;
pub use platform::*;
pub use production::*;
pub use race::*;
pub use redact::redacted;
pub use rehearsal::*;
pub use rollback::*;
pub use table::render_for_width as render_table_for_width;
pub use units::{count, format_bytes, format_ms, range_ms};

closed_set! {
    /// A report format, as `report.formats` and `--format` name it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
    pub enum ReportFormat {
        /// A table on the terminal (stdout).
        Table = "table",
        /// `report.md`, for humans and release tickets.
        Markdown = "markdown",
        /// `report.json`, for machines (schema `rehearse.report/v1`).
        Json = "json",
        /// `junit.xml`, for CI test views (GitHub, GitLab, Jenkins).
        Junit = "junit",
    }
}

impl ReportFormat {
    /// Whether it shows each stage's time (`stages`), the report stage's
    /// own included: such a format is rendered after that stage's clock stops.
    pub fn lists_stages(self) -> bool {
        matches!(self, ReportFormat::Markdown | ReportFormat::Json)
    }
}

/// The output choices that depend on where rehearse runs, resolved with
/// the plan (`plan::report`) so that no writer reads the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// Columns the terminal table is laid out for; None: as wide as its content.
    pub width: Option<usize>,
    /// GitHub Actions' job summary file (`GITHUB_STEP_SUMMARY`), to which
    /// the Markdown report is appended.
    pub step_summary: Option<PathBuf>,
}

/// One line for stderr when the run did not pass: which migration failed or
/// went over budget, and where the details are.
pub fn outcome_line(r: &Report) -> Option<String> {
    match r.status {
        RunStatus::Passed => None,
        RunStatus::Failed => {
            summary::failed(r).map(|m| format!("error: {} (details in the report; exit 2)", summary::failed_line(m)))
        }
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
