//! The terminal table: one row per migration, then the run's verdict.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ContentArrangement, Table};

use super::{format_bytes, format_ms, MigrationStatus, Report};

pub fn render(report: &Report) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(vec![
        "#",
        "Migration",
        "Status",
        "Time",
        "Blocks reads",
        "Blocks writes",
        "WAL",
        "Rewrites",
        "Hazards",
    ]);
    for (i, m) in report.migrations.iter().enumerate() {
        let ran = m.status != MigrationStatus::Skipped;
        let status = if m.budget_breaches.is_empty() {
            m.status.as_str().to_string()
        } else {
            format!("{} (over budget)", m.status.as_str())
        };
        let dash = || "-".to_string();
        table.add_row(vec![
            Cell::new(i + 1).set_alignment(CellAlignment::Right),
            Cell::new(&m.id),
            Cell::new(status),
            Cell::new(if ran { format_ms(m.duration_ms) } else { dash() }).set_alignment(CellAlignment::Right),
            Cell::new(if ran { block(&m.longest_read_block) } else { dash() }),
            Cell::new(if ran { block(&m.longest_write_block) } else { dash() }),
            Cell::new(if ran { format_bytes(m.wal.bytes) } else { dash() }).set_alignment(CellAlignment::Right),
            Cell::new(if ran { rewritten_tables(m) } else { dash() }),
            Cell::new(if m.hazards.is_empty() { dash() } else { m.hazards.len().to_string() })
                .set_alignment(CellAlignment::Right),
        ]);
    }
    if let Some(c) = table.column_mut(1) {
        c.set_constraint(comfy_table::ColumnConstraint::UpperBoundary(comfy_table::Width::Fixed(44)));
    }
    let mut out = String::new();
    // Regressions come first, so a CI log shows them without scrolling.
    if let Some(heading) = super::summary::baseline_heading(report) {
        out.push_str(&format!("{heading}\n"));
        for line in super::summary::regression_lines(report, false) {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    out.push_str(&table.to_string());
    out.push('\n');
    for line in super::summary::breach_lines(report, false) {
        out.push_str(&format!("over budget: {line}\n"));
    }
    out.push_str(&verdict(report));
    out.push('\n');
    out
}

/// "1.6s public.orders", or "-" when nothing the app uses was blocked.
pub fn block(b: &Option<super::BlockReport>) -> String {
    match b {
        Some(b) => format!("{} {}", format_ms(b.held_ms), b.relation),
        None => "-".into(),
    }
}

/// Rewritten tables (not their indexes), comma-separated.
pub fn rewritten_tables(m: &super::MigrationReport) -> String {
    let tables: Vec<&str> = m.rewrites.iter().filter(|r| r.kind == "table").map(|r| r.relation.as_str()).collect();
    if tables.is_empty() {
        "-".into()
    } else {
        tables.join(", ")
    }
}

/// One line saying how the run ended, for the terminal and the Markdown.
pub fn verdict(report: &Report) -> String {
    let t = &report.totals;
    let timed_out = if t.timed_out > 0 { format!(", {} timed out", t.timed_out) } else { String::new() };
    let mut summary = format!(
        "{} applied, {} failed{timed_out}, {} skipped; migrations took {}, wrote {} of WAL",
        t.applied,
        t.failed,
        t.skipped,
        format_ms(t.duration_ms),
        format_bytes(t.wal_bytes)
    );
    if let Some(b) = &report.baseline {
        summary.push_str(&format!("; {} regression(s) against the baseline", b.regressions.len()));
    }
    match report.status {
        super::RunStatus::Passed => format!("PASSED: {summary}."),
        super::RunStatus::BudgetExceeded => format!("BUDGET EXCEEDED: {summary}."),
        super::RunStatus::Failed => match &report.error {
            Some(e) => format!(
                "FAILED during {}: {}",
                report.stopped_at_stage.as_deref().unwrap_or("the run"),
                e.lines().next().unwrap_or("")
            ),
            None => format!("FAILED: {summary}."),
        },
        super::RunStatus::Interrupted => {
            format!("INTERRUPTED during {}: {summary}.", report.stopped_at_stage.as_deref().unwrap_or("the run"))
        }
    }
}
