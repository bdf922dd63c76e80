//! The terminal table: one row per migration, then the run's verdict, laid
//! out for the terminal's width.
//!
//! comfy-table's own dynamic arrangement wraps a cell wherever the column
//! ends, which cuts migration ids mid-word (`0010_index_orders_cre` /
//! `ated_at`) below ~160 columns. So the layout is decided here: each cell
//! is wrapped at word boundaries (spaces, and the `_` inside ids), columns
//! shrink widest first down to their longest word, and when even that does
//! not fit, the least telling columns are dropped; comfy-table then only
//! draws the borders.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ContentArrangement, Table};

use super::summary::{self, verdict};
use super::{format_bytes, format_ms, range_ms, BlockReport, MigrationLoad, MigrationReport, Report};
use crate::pg::RelationKind;

/// The table laid out for `width` columns (None: as wide as the content).
/// The plan chose `width` for this process's terminal (`OutputOptions`).
pub fn render_for_width(report: &Report, width: Option<usize>) -> String {
    let mut out = String::new();
    // Regressions come first, so a CI log shows them without scrolling.
    if let Some(heading) = summary::baseline_heading(report) {
        out.push_str(&format!("{heading}\n"));
        for line in summary::regression_lines(report, false) {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    out.push_str(&table(report, width));
    out.push('\n');
    for line in super::hazards::text_lines(report) {
        out.push_str(&format!("{line}\n"));
    }
    for line in summary::breach_lines(report, false) {
        out.push_str(&format!("over budget: {line}\n"));
    }
    for line in report.rollback.iter().flat_map(|b| b.text_lines()) {
        out.push_str(&format!("{line}\n"));
    }
    if let Some(line) = report.load.as_ref().and_then(|l| l.below_asked_line()) {
        out.push_str(&format!("note: {line}\n"));
    }
    for a in &report.abort {
        out.push_str(&format!("{}\n", a.line(false)));
    }
    if let Some(line) = summary::unused_overrides_line(report, false) {
        out.push_str(&format!("note: {line}\n"));
    }
    out.push_str(&verdict(report));
    out.push('\n');
    match width {
        // The lines around the table wrap at words too, continuations indented.
        Some(width) => out.lines().map(|l| fold(l, width)).collect::<Vec<_>>().join("\n") + "\n",
        None => out,
    }
}

/// A line of text (not of the table, whose lines fit already) folded at
/// spaces into lines of at most `width` characters, continuations indented
/// by two spaces more than the line; a word longer than that stays whole.
fn fold(line: &str, width: usize) -> String {
    if line.chars().count() <= width || line.starts_with(['┌', '│', '╞', '├', '└']) {
        return line.to_string();
    }
    // A list item ("  - ...") keeps its indentation, and its continuations line up under its text.
    let body = line.trim_start_matches(' ');
    let lead = &line[..line.len() - body.len()];
    let indent = format!("{lead}  ");
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in body.split(' ') {
        let prefix = if lines.is_empty() { lead.len() } else { indent.len() };
        if !current.is_empty() && prefix + current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        } else if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    lines.push(current);
    let rest: String = lines[1..].iter().map(|l| format!("\n{indent}{l}")).collect();
    format!("{lead}{}{rest}", lines[0])
}

/// A column: its header, how its cells wrap, and when it goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Number,
    Migration,
    Status,
    Time,
    BlocksReads,
    BlocksWrites,
    Wal,
    Rewrites,
    Hazards,
    /// The production-scale estimate, when the scenario asks for one.
    AtScale,
    /// How far the streaming standby fell behind, when the run has one.
    StandbyLag,
    /// What the app's traffic felt (`load:`): its stall, p99 and verdict.
    App,
}

impl Column {
    /// Left to right.
    const ALL: [Column; 12] = [
        Column::Number,
        Column::Migration,
        Column::Status,
        Column::Time,
        Column::AtScale,
        Column::BlocksReads,
        Column::BlocksWrites,
        Column::Wal,
        Column::StandbyLag,
        Column::App,
        Column::Rewrites,
        Column::Hazards,
    ];

    /// Dropped first when the terminal is too narrow: what other columns or
    /// the report say too. Blocked writes stay longest: a lock that blocks
    /// reads blocks writes as well, so that column names the worst block.
    /// What the app felt under `load:` outlasts WAL and lag: it is what the
    /// rehearsal under traffic is for.
    const DROP_ORDER: [Column; 9] = [
        Column::Rewrites,
        Column::Hazards,
        Column::Number,
        Column::BlocksReads,
        Column::Wal,
        Column::StandbyLag,
        Column::App,
        Column::Time,
        Column::AtScale,
    ];

    fn header(self) -> &'static str {
        match self {
            Column::Number => "#",
            Column::Migration => "Migration",
            Column::Status => "Status",
            Column::Time => "Time",
            Column::BlocksReads => "Blocks reads",
            Column::BlocksWrites => "Blocks writes",
            Column::Wal => "WAL",
            Column::Rewrites => "Rewrites",
            Column::Hazards => "Hazards",
            Column::AtScale => "At prod scale",
            Column::StandbyLag => "Standby lag",
            Column::App => "App under load",
        }
    }

    fn right_aligned(self) -> bool {
        matches!(self, Column::Number | Column::Time | Column::Wal | Column::Hazards)
    }

    /// Figures stay on one line: `184.5 kB` split in two reads as two numbers.
    fn wraps(self) -> bool {
        !matches!(self, Column::Number | Column::Time | Column::Wal | Column::Hazards)
    }

    /// Ids break after `_` too: they are words joined by underscores.
    fn breaks_at_underscores(self) -> bool {
        matches!(self, Column::Migration | Column::Rewrites)
    }

    fn cell(self, i: usize, m: &MigrationReport) -> String {
        let ran = m.ran();
        let dash = || "-".to_string();
        match self {
            Column::Number => (i + 1).to_string(),
            Column::Migration => m.id.clone(),
            Column::Status => {
                // No column of its own: a migration that needed `migrations.retry` says so here.
                let notes: Vec<String> = [
                    m.retried().map(|(tries, _, _)| format!("{tries} tries")),
                    (!m.budget_breaches.is_empty()).then(|| "over budget".to_string()),
                ]
                .into_iter()
                .flatten()
                .collect();
                match notes.is_empty() {
                    true => m.status.as_str().to_string(),
                    false => format!("{} ({})", m.status.as_str(), notes.join(", ")),
                }
            }
            Column::Time if ran => format_ms(m.duration_ms),
            Column::BlocksReads if ran => block(&m.longest_read_block),
            Column::BlocksWrites if ran => block(&m.longest_write_block),
            Column::Wal if ran => format_bytes(m.wal.bytes),
            Column::Rewrites if ran => rewritten_tables(m),
            Column::Hazards if !m.hazards.is_empty() => m.hazards.len().to_string(),
            // "-" would read as clean: a command's statement hazards were not looked for.
            Column::Hazards if ran && !m.not_evaluated.is_empty() => "not evaluated".into(),
            Column::AtScale => match &m.estimate {
                Some(e) => range_ms(e.duration_ms),
                None => dash(),
            },
            // Time behind, and bytes behind at most.
            Column::StandbyLag => match &m.standby {
                Some(s) => format!("{} {}", format_ms(s.max_lag_ms), format_bytes(s.max_lag_bytes)),
                None => dash(),
            },
            Column::App => m.load.as_ref().map_or_else(dash, app_cell),
            _ => dash(),
        }
    }
}

/// Each column's cells, header first, as text to lay out.
struct Grid {
    columns: Vec<(Column, Vec<String>)>,
}

impl Grid {
    fn new(report: &Report) -> Grid {
        let columns = Column::ALL
            .iter()
            .filter(|&&c| c != Column::AtScale || report.estimate.is_some())
            .filter(|&&c| c != Column::StandbyLag || report.standby.is_some())
            .filter(|&&c| c != Column::App || report.load.is_some())
            .map(|&c| {
                let mut cells = vec![c.header().to_string()];
                cells.extend(report.migrations.iter().enumerate().map(|(i, m)| c.cell(i, m)));
                (c, cells)
            })
            .collect();
        Grid { columns }
    }

    /// The column widths that fit `width`, trying layouts from the most
    /// readable down (see [`Layout`]): within a layout, columns shrink
    /// widest first, and the least telling are dropped one by one.
    fn fit(&mut self, width: Option<usize>) -> Vec<usize> {
        let Some(width) = width else {
            return self.columns.iter().map(|(c, cells)| natural_width(*c, cells)).collect();
        };
        let all = std::mem::take(&mut self.columns);
        let mut columns = all.clone();
        for layout in [Layout::WholeIds, Layout::ComfortableIds, Layout::Tight] {
            columns = all.clone();
            let mut drop = layout.droppable().iter();
            loop {
                let mut widths: Vec<usize> = columns.iter().map(|(c, cells)| natural_width(*c, cells)).collect();
                let minimums: Vec<usize> = columns.iter().map(|(c, cells)| min_width(*c, cells, layout)).collect();
                if shrink(&mut widths, &minimums, width.saturating_sub(overhead(columns.len()))) {
                    self.columns = columns;
                    return widths;
                }
                let Some(next) = drop.next() else { break };
                columns.retain(|(c, _)| c != next);
            }
        }
        // Too narrow for even the longest words: the narrowest layout, wider than asked.
        self.columns = columns;
        self.columns.iter().map(|(c, cells)| min_width(*c, cells, Layout::Tight)).collect()
    }
}

/// How far a layout goes to fit, from the most readable down.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Every migration id on one line, giving up at most the rewrites and
    /// hazards columns (the Markdown report has both).
    WholeIds,
    /// Ids keep [`COMFORTABLE_ID`] characters a line; any droppable column may go.
    ComfortableIds,
    /// Ids wrap down to their longest word.
    Tight,
}

impl Layout {
    fn droppable(self) -> &'static [Column] {
        match self {
            Layout::WholeIds => &Column::DROP_ORDER[..2],
            _ => &Column::DROP_ORDER,
        }
    }
}

/// Characters of a migration id a line keeps while other columns can be
/// dropped instead (about three `_`-separated words).
const COMFORTABLE_ID: usize = 24;

/// Border and padding characters of a table of `n` columns: `│ a ┆ b │`.
fn overhead(n: usize) -> usize {
    3 * n + 1
}

fn natural_width(_: Column, cells: &[String]) -> usize {
    cells.iter().map(|c| c.chars().count()).max().unwrap_or(0)
}

/// The longest word of the column (it can never be wrapped), or its
/// natural width for a column that does not wrap; ids as `layout` keeps them.
fn min_width(column: Column, cells: &[String], layout: Layout) -> usize {
    if !column.wraps() {
        return natural_width(column, cells);
    }
    match (column, layout) {
        (Column::Migration, Layout::WholeIds) => return natural_width(column, cells),
        (Column::Migration, Layout::ComfortableIds) => return natural_width(column, cells).min(COMFORTABLE_ID),
        _ => {}
    }
    cells.iter().flat_map(|c| words(c, column.breaks_at_underscores())).map(|w| w.chars().count()).max().unwrap_or(0)
}

/// Narrows the widest columns, one character at a time, until the content
/// fits `budget` or every column is at its minimum; whether it fits.
fn shrink(widths: &mut [usize], minimums: &[usize], budget: usize) -> bool {
    while widths.iter().sum::<usize>() > budget {
        let widest = (0..widths.len()).filter(|&i| widths[i] > minimums[i]).max_by_key(|&i| (widths[i], i));
        match widest {
            Some(i) => widths[i] -= 1,
            None => return false,
        }
    }
    true
}

/// `text` split into the pieces a line may break after: at spaces (which
/// are dropped at a break), and after `_` when `underscores`.
fn words(text: &str, underscores: bool) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if underscores {
            let mut piece = String::new();
            for ch in word.chars() {
                piece.push(ch);
                if ch == '_' {
                    out.push(std::mem::take(&mut piece));
                }
            }
            if !piece.is_empty() {
                out.push(piece);
            }
        } else {
            out.push(word.to_string());
        }
    }
    out
}

/// Wraps `text` into lines of at most `width` characters at word boundaries
/// (a word longer than `width` stays whole on its own line).
fn wrap(text: &str, width: usize, underscores: bool) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        for piece in words(word, underscores) {
            let joiner = if line.is_empty() || line.ends_with('_') { "" } else { " " };
            if !line.is_empty() && line.chars().count() + joiner.len() + piece.chars().count() > width {
                lines.push(std::mem::take(&mut line));
                line.push_str(&piece);
            } else {
                line.push_str(joiner);
                line.push_str(&piece);
            }
        }
    }
    lines.push(line);
    lines.join("\n")
}

fn table(report: &Report, width: Option<usize>) -> String {
    let mut grid = Grid::new(report);
    let widths = grid.fit(width);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    let cell = |col: Column, text: &str, w: usize| {
        let cell = Cell::new(wrap(text, w, col.breaks_at_underscores()));
        if col.right_aligned() {
            cell.set_alignment(CellAlignment::Right)
        } else {
            cell
        }
    };
    let rows = report.migrations.len() + 1;
    for row in 0..rows {
        let cells: Vec<Cell> =
            grid.columns.iter().zip(&widths).map(|((col, cells), w)| cell(*col, &cells[row], *w)).collect();
        if row == 0 {
            table.set_header(cells);
        } else {
            table.add_row(cells);
        }
    }
    table.to_string()
}

/// A relation as the terminal shows it: without the `public.` everyone has.
/// `stalled 5.0s orders` or `p99 12ms`, then the errors and the verdict when there are.
fn app_cell(l: &MigrationLoad) -> String {
    let mut cell = match &l.stall_table {
        Some(t) if l.stall_ms > 0 => format!("stalled {} {}", format_ms(l.stall_ms), short_name(t)),
        _ => format!("p99 {}", format_ms(l.latency_ms.p99.round() as u64)),
    };
    if l.error_count() > 0 {
        cell.push_str(&format!(", {} errors", l.error_count()));
    }
    if let Some(v) = l.verdict {
        cell.push_str(&format!(" ({})", v.as_str()));
    }
    cell
}

fn short_name(relation: &str) -> &str {
    relation.strip_prefix("public.").unwrap_or(relation)
}

/// "1.6s orders", or "-" when nothing the app uses was blocked.
fn block(b: &Option<BlockReport>) -> String {
    match b {
        Some(b) => format!("{} {}", format_ms(b.held_ms), short_name(&b.relation)),
        None => "-".into(),
    }
}

/// Rewritten tables (not their indexes), comma-separated.
fn rewritten_tables(m: &MigrationReport) -> String {
    let tables: Vec<&str> =
        m.rewrites.iter().filter(|r| r.kind == RelationKind::Table).map(|r| short_name(&r.relation)).collect();
    if tables.is_empty() {
        "-".into()
    } else {
        tables.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Attempt;

    #[test]
    fn a_migration_that_needed_retries_says_how_many_tries_in_the_table_and_the_markdown() {
        let mut report: Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report-v1-demo.json")).unwrap();
        let try_ = |started_ms, sqlstate: Option<&str>| Attempt {
            started_ms,
            duration_ms: 300,
            sqlstate: sqlstate.map(String::from),
            lock_timeout_ms: 300,
        };
        let plain_table = table(&report, Some(200));
        let plain_markdown = crate::report::render_markdown(&report);
        report.migrations[1].attempts = vec![try_(0, Some("55P03")), try_(500, Some("55P03")), try_(1200, None)];
        report.migrations[1].retry_lost_ms = Some(1200);
        report.migrations[2].attempts = vec![try_(0, None)];
        report.migrations[2].retry_lost_ms = Some(0);
        let id = &report.migrations[1].id;
        let table = table(&report, Some(200));
        let row = table.lines().find(|l| l.contains(id.as_str())).unwrap();
        assert!(row.contains("applied (3 tries)"), "{table}");
        assert_eq!(table.matches("tries").count(), 1, "one try is no note: {table}");
        let markdown = crate::report::render_markdown(&report);
        assert!(markdown.contains("- Retried: 3 attempts, 1.2s lost to lock_timeout 300ms"), "{markdown}");
        assert_eq!(markdown.matches("- Retried:").count(), 1, "{markdown}");
        assert!(!plain_table.contains("tries") && !plain_markdown.contains("Retried"));
    }

    #[test]
    fn ids_wrap_after_underscores_never_inside_a_word() {
        let wrapped = wrap("0010_index_orders_created_at_concurrently", 20, true);
        assert_eq!(wrapped, "0010_index_orders_\ncreated_at_\nconcurrently");
        assert_eq!(wrap("748ms order_items", 11, false), "748ms\norder_items");
        assert_eq!(wrap("applied (over budget)", 9, false), "applied\n(over\nbudget)");
        assert_eq!(wrap("short", 40, true), "short");
    }

    #[test]
    fn a_folded_list_item_keeps_its_indentation_and_its_continuations_line_up_under_its_text() {
        assert_eq!(fold("  - one two three four", 12), "  - one two\n    three\n    four");
        assert_eq!(fold("PASSED: one two three", 12), "PASSED: one\n  two three");
        assert_eq!(fold("short", 12), "short");
    }

    #[test]
    fn columns_shrink_widest_first_to_their_longest_word() {
        let mut widths = vec![2, 41, 7];
        assert!(shrink(&mut widths, &[1, 13, 7], 30));
        assert_eq!(widths, [2, 21, 7]);
        assert!(!shrink(&mut widths, &[1, 13, 7], 10));
        assert_eq!(widths, [1, 13, 7]);
    }
}
