//! The report model's rollback section (`rollback`): the release that
//! undoes this one (`rollback.migrations`, or Alembic's downgrade), applied
//! after it and measured like any release; whether the previous app
//! version's queries work again; what of the schema did not come back; and
//! the data the rollback cannot bring back, counted before the release.
//! Keys are part of `rehearse.report/v1` (docs/report.md).

use serde::{Deserialize, Serialize};

use super::{format_bytes, format_ms, BrokenQuery, MigrationFacts, MigrationReport, MigrationStatus};
use crate::kinds::closed_set;
use crate::pg::DriftKind;
use crate::sys::text::one_line;

/// The rollback rehearsal, as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackReport {
    /// `alembic downgrade` (`rollback.downgrade`) rather than a forward rollback release.
    pub downgrade: bool,
    /// Why it was not rehearsed (the release did not apply whole); null when it was.
    #[serde(default)]
    pub skipped: Option<String>,
    /// Each rollback migration, measured as the release's are.
    pub migrations: Vec<MigrationReport>,
    /// Every query of the previous app version that worked before the
    /// release works after the rollback; null without `compat:`.
    pub compat_restored: Option<bool>,
    /// The queries that worked before the release and fail after the rollback.
    pub still_broken: Vec<BrokenQuery>,
    /// What differs between the schema before the release and after the rollback.
    pub schema_diff: Vec<SchemaDifference>,
    /// Values the release dropped, which the rollback cannot bring back.
    pub data_loss: Vec<DataLoss>,
}

/// One object of the schema that did not come back as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaDifference {
    /// As the drift check names it: `public.orders.note`, `public.orders_note_idx`.
    pub object: String,
    pub kind: DriftKind,
    pub change: SchemaChange,
}

closed_set! {
    /// How an object differs after the rollback from before the release.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum SchemaChange {
        /// There after the rollback, not before the release: the rollback left it behind.
        LeftBehind = "left_behind",
        /// There before the release, not after the rollback.
        Missing = "missing",
        /// There on both sides, defined differently (a type, a default, NOT NULL).
        Altered = "altered",
    }
}

/// Values a release dropped: counted on a copy of the database as it was
/// before the release (never the values themselves).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataLoss {
    /// `public.users.legacy_note` (a column) or `public.audit_log` (a table).
    pub object: String,
    pub kind: DataLossKind,
    /// The migration that dropped it: the release's, or the rollback's (`dropped_by`).
    pub migration: String,
    /// `release`: values production had, which the release dropped;
    /// `rollback`: values in what the release added (its backfill here; in
    /// production, also whatever the app wrote since), which the rollback drops.
    pub dropped_by: DroppedBy,
    /// Rows that held a value before the drop (before the release, on the
    /// copy; before the rollback): non-null values of a column, every row of a table.
    pub rows: u64,
    /// The same count after the rollback; null when the object is not there
    /// again, and for a type change (the values are the rollback's cast back).
    pub rows_after_rollback: Option<u64>,
}

closed_set! {
    /// Which release dropped the values.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DroppedBy {
        Release = "release",
        Rollback = "rollback",
    }
}

closed_set! {
    /// What a release dropped that held values.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DataLossKind {
        DropColumn = "drop_column",
        DropTable = "drop_table",
        /// A column whose type the release changed: values that do not survive the new type.
        AlterType = "alter_type",
    }
}

/// What the rollback stage established (the report is built from it).
#[derive(Debug, Clone, Default)]
pub struct RollbackFacts {
    pub downgrade: bool,
    pub skipped: Option<String>,
    pub migrations: Vec<MigrationFacts>,
    pub compat_restored: Option<bool>,
    pub still_broken: Vec<BrokenQuery>,
    pub schema_diff: Vec<SchemaDifference>,
    pub data_loss: Vec<DataLoss>,
}

impl RollbackFacts {
    pub fn report(&self) -> RollbackReport {
        RollbackReport {
            downgrade: self.downgrade,
            skipped: self.skipped.clone(),
            migrations: self.migrations.iter().map(|m| m.record(&[])).collect(),
            compat_restored: self.compat_restored,
            still_broken: self.still_broken.clone(),
            schema_diff: self.schema_diff.clone(),
            data_loss: self.data_loss.clone(),
        }
    }
}

impl RollbackReport {
    /// A rollback migration that did not apply.
    pub fn failed(&self) -> Option<&MigrationReport> {
        self.migrations.iter().find(|m| m.status != MigrationStatus::Applied)
    }

    /// Whether the rollback rehearsed and came back whole: every migration
    /// applied, the app's queries work again, the schema is as it was.
    pub fn restored(&self) -> bool {
        self.skipped.is_none()
            && self.failed().is_none()
            && self.compat_restored != Some(false)
            && self.schema_diff.is_empty()
    }

    /// Rows the rollback cannot bring back, in all.
    pub fn rows_lost(&self) -> u64 {
        self.data_loss.iter().map(|d| d.rows.saturating_sub(d.rows_after_rollback.unwrap_or(0))).sum()
    }
}

impl RollbackReport {
    /// One line for the terminal, the Markdown's lead and JUnit.
    pub fn line(&self) -> String {
        let what = if self.downgrade { "the downgrade" } else { "the rollback release" };
        if let Some(why) = &self.skipped {
            return format!("{what} was not rehearsed: {why}");
        }
        if let Some(m) = self.failed() {
            return format!("{what} did not apply: `{}` {}", m.id, m.status.as_str());
        }
        let ms: u64 = self.migrations.iter().map(|m| m.duration_ms).sum();
        let mut parts = vec![format!(
            "{what} applied ({} migration{} in {})",
            self.migrations.len(),
            if self.migrations.len() == 1 { "" } else { "s" },
            format_ms(ms)
        )];
        parts.push(match self.compat_restored {
            Some(true) => "the previous app version's queries work again".into(),
            Some(false) => format!("{} of the previous app version's queries still fail", self.still_broken.len()),
            None => "no app queries to check (compat:)".into(),
        });
        parts.push(match self.schema_diff.len() {
            0 => "the schema is as before the release".into(),
            n => format!("{n} schema difference{} from before the release", if n == 1 { "" } else { "s" }),
        });
        if !self.data_loss.is_empty() {
            parts.push(format!("{} row value(s) do not come back (data lost, listed)", self.rows_lost()));
        }
        parts.join("; ")
    }

    /// The terminal's lines: the verdict, then each rollback migration and difference.
    pub fn text_lines(&self) -> Vec<String> {
        let mut lines = vec![format!("rollback: {}", self.line())];
        for m in &self.migrations {
            let at_scale =
                m.estimate.as_ref().map(|e| format!(" (about {} at production scale)", format_ms(e.duration_ms.mid)));
            lines.push(format!(
                "  rollback {}: {} in {}{}, WAL {}, longest block {}",
                m.id,
                m.status.as_str(),
                format_ms(m.duration_ms),
                at_scale.unwrap_or_default(),
                format_bytes(m.wal.bytes),
                format_ms(m.longest_block())
            ));
        }
        lines.extend(
            self.still_broken.iter().map(|q| format!("  still broken: {} ({})", one_line(&q.query, 80), q.message)),
        );
        lines.extend(
            self.schema_diff.iter().map(|d| format!("  schema: {} {} {}", d.kind, d.object, d.change.in_words())),
        );
        lines.extend(self.data_loss.iter().map(|d| d.line()));
        lines
    }
}

impl SchemaChange {
    pub fn in_words(self) -> &'static str {
        match self {
            SchemaChange::LeftBehind => "left behind by the rollback",
            SchemaChange::Missing => "missing after the rollback",
            SchemaChange::Altered => "defined differently after the rollback",
        }
    }
}

impl DataLoss {
    /// `data lost: public.users.note (dropped by 0003): 120 rows held a value, 0 after the rollback`.
    pub fn line(&self) -> String {
        let after = match self.rows_after_rollback {
            Some(n) => format!("{n} after the rollback"),
            None => "not there after the rollback".into(),
        };
        let what = match self.kind {
            DataLossKind::DropColumn => "rows held a value",
            DataLossKind::DropTable => "rows",
            DataLossKind::AlterType => "values do not survive the new type",
        };
        let by = match self.dropped_by {
            DroppedBy::Release => format!("dropped by the release's {}", self.migration),
            DroppedBy::Rollback => format!("added by the release, dropped by the rollback's {}", self.migration),
        };
        format!("  data lost: {} ({by}): {} {what}, {after}", self.object, self.rows)
    }
}
