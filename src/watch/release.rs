//! What the rehearsal's report (`rehearse.report/v1`) expects of the
//! release in production: the migrations it applied, in order, with the
//! history table each is recorded in, the statements that name it in
//! `pg_stat_activity`, its measured and estimated time, its budgets, the
//! standby lag it caused, and the abort plan the rehearsal proved.

use std::path::Path;

use crate::error::{ErrorKind, Result};
use crate::kinds::MigrationTool;
use crate::migrations::sql::DEFAULT_TABLE;
use crate::report::{MigrationLimits, MigrationReport, MigrationStatus, Range, Report, SCHEMA};
use crate::sys::json::{read_versioned, Refusal};

/// The release as rehearsed.
#[derive(Debug, Clone)]
pub struct Release {
    pub scenario: String,
    /// When the rehearsal started (RFC 3339).
    pub rehearsed_at: String,
    /// The migrations the rehearsal applied, in its order.
    pub migrations: Vec<Expected>,
    /// Where each app records what it applied.
    pub histories: Vec<History>,
    /// Migrations the rehearsal did not apply (failed, skipped): not waited for.
    pub not_applied: Vec<String>,
    /// `budgets.migration.max_standby_lag` and the rehearsal's worst lag, for lag lines outside a migration.
    pub max_standby_lag_ms: Option<u64>,
    /// The `estimate.speed` the rehearsal's estimates were made with; null without `estimate:`.
    pub estimate_speed: Option<f64>,
}

/// A history table and the app whose rows it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub app: Option<String>,
    pub tool: MigrationTool,
    /// `schema.name` or `name`.
    pub table: String,
}

/// One migration the release should apply.
#[derive(Debug, Clone)]
pub struct Expected {
    pub id: String,
    pub app: Option<String>,
    /// The version its history table records (the revision for Alembic).
    pub version: String,
    /// Its statements as the rehearsal ran them, normalized by [`normalize_sql`].
    pub statements: Vec<String>,
    /// Its time on the copy.
    pub rehearsed_ms: u64,
    /// Its time at production's scale, when the rehearsal estimated it.
    pub estimate_ms: Option<Range>,
    /// The budgets the rehearsal judged it by (`budgets.overrides` applied).
    pub limits: MigrationLimits,
    /// The most bytes the rehearsal's standby fell behind while it ran.
    pub standby_peak_bytes: Option<u64>,
    /// The WAL rate it wrote at on the copy (`wal.bytes_per_second`).
    pub wal_bytes_per_second: Option<u64>,
    /// The recovery commands the abort rehearsal proved for it; empty when none ran.
    pub abort_recovery: Vec<String>,
}

impl Release {
    /// Reads `path`; anything but a `rehearse.report/v1` report that applied a migration is bad input.
    pub fn load(path: &Path) -> Result<Release> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ErrorKind::ArgumentsInvalid.because(
                format!("cannot read --report {shown}: pass the report.json the rehearsal of this release wrote"),
                e,
            )
        })?;
        let report: Report = read_versioned(&text, SCHEMA, ErrorKind::ArgumentsInvalid, |refusal| match refusal {
            Refusal::NotJson => format!("--report {shown} is not JSON: pass the report.json of the rehearsal"),
            Refusal::OtherSchema(other) => format!(
                "--report {shown} is not a report this rehearse reads (its schema is {}, expected \"{SCHEMA}\"): \
                 rehearse the release again with this version of rehearse, and pass its report.json",
                other.map(|s| format!("\"{s}\"")).unwrap_or_else(|| "missing".into())
            ),
            Refusal::Incomplete => format!(
                "--report {shown} says it is a {SCHEMA} report but lacks what watch needs: pass the report.json \
                 of a finished rehearsal"
            ),
        })?;
        let release = Release::of(&report);
        if release.migrations.is_empty() {
            return Err(ErrorKind::ArgumentsInvalid.error(format!(
                "--report {shown}: the rehearsal applied no migration (status {}), so there is nothing to \
                 follow: rehearse the release until its migrations apply, then watch it",
                report.status.as_str()
            )));
        }
        Ok(release)
    }

    /// The release `report` rehearsed.
    pub fn of(report: &Report) -> Release {
        let histories = histories(report);
        let (applied, not_applied): (Vec<_>, Vec<_>) =
            report.migrations.iter().partition(|m| m.status == MigrationStatus::Applied);
        Release {
            scenario: report.scenario.clone(),
            rehearsed_at: report.started_at.clone(),
            migrations: applied.into_iter().map(|m| expected(report, m)).collect(),
            histories,
            not_applied: not_applied.into_iter().map(|m| m.id.clone()).collect(),
            max_standby_lag_ms: report.budgets.migration.max_standby_lag_ms,
            estimate_speed: report.estimate.as_ref().map(|e| e.speed),
        }
    }

    /// The history table `m` is recorded in.
    pub fn history_of(&self, m: &Expected) -> Option<&History> {
        self.histories.iter().find(|h| h.app == m.app)
    }
}

/// The history tables of the report's sources; a report from before
/// `sources` was recorded had one SQL folder, in rehearse's own table.
fn histories(report: &Report) -> Vec<History> {
    if report.sources.is_empty() {
        return vec![History { app: None, tool: MigrationTool::Sql, table: DEFAULT_TABLE.to_string() }];
    }
    report
        .sources
        .iter()
        .filter_map(|s| Some(History { app: s.app.clone(), tool: s.tool, table: s.history.clone()? }))
        .collect()
}

fn expected(report: &Report, m: &MigrationReport) -> Expected {
    let limits = report.budgets.overrides.get(&m.id).unwrap_or(&report.budgets.migration).clone();
    let abort = report.abort.iter().find(|a| a.migration == m.id && a.proved());
    Expected {
        id: m.id.clone(),
        app: m.app.clone(),
        version: m.version.clone(),
        statements: m.statements.iter().map(|s| normalize_sql(&s.query)).filter(|s| names_a_migration(s)).collect(),
        rehearsed_ms: m.duration_ms,
        estimate_ms: m.estimate.as_ref().map(|e| e.duration_ms),
        limits,
        standby_peak_bytes: m.standby.as_ref().map(|s| s.max_lag_bytes),
        wal_bytes_per_second: m.wal.bytes_per_second.map(|r| r.max(0.0) as u64),
        abort_recovery: abort.map(|a| a.recovery.clone()).unwrap_or_default(),
    }
}

/// A statement as `pg_stat_activity` and the report can both be compared
/// by: `--` comments dropped, whitespace collapsed, lower case, no final `;`.
pub fn normalize_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    for line in sql.lines() {
        let code = line.split_once("--").map_or(line, |(code, _)| code);
        for word in code.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&word.to_lowercase());
        }
    }
    out.trim_end_matches(';').trim_end().to_string()
}

/// Whether a statement says which migration runs: transaction control and
/// settings (`BEGIN`, `SET lock_timeout ...`) are in every migration.
fn names_a_migration(normalized: &str) -> bool {
    let first = normalized.split([' ', ';']).next().unwrap_or_default();
    normalized.len() >= 12 && !matches!(first, "begin" | "commit" | "rollback" | "set" | "reset" | "show" | "start")
}

/// Whether the session's statement `query` (normalized) is `statement`:
/// the same text, the statement cut at `track_activity_query_size`, or a
/// batch of several statements holding it.
pub fn same_statement(query: &str, statement: &str) -> bool {
    query == statement || (query.len() >= 64 && statement.starts_with(query)) || query.contains(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_compare_without_comments_case_or_layout() {
        let file = "-- add the column\nALTER TABLE public.users\n    ADD COLUMN note text; -- why\n";
        assert_eq!(normalize_sql(file), "alter table public.users add column note text");
        assert!(same_statement(
            &normalize_sql("alter table   public.users ADD COLUMN note text"),
            &normalize_sql(file)
        ));
        assert!(!names_a_migration("set lock_timeout = '2s'"));
        assert!(!names_a_migration("begin"));
        assert!(names_a_migration("create index on public.users (email)"));
    }

    #[test]
    fn the_fixture_report_expects_its_applied_migrations() {
        let report: Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report-v1-demo.json")).expect("a report");
        let release = Release::of(&report);
        assert_eq!(
            release.histories,
            vec![History { app: None, tool: MigrationTool::Sql, table: DEFAULT_TABLE.into() }]
        );
        let applied = report.migrations.iter().filter(|m| m.status == MigrationStatus::Applied).count();
        assert_eq!(release.migrations.len(), applied);
        assert!(release.migrations.iter().all(|m| !m.statements.is_empty()), "each names itself by a statement");
    }
}
