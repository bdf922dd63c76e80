//! What the rollback cannot bring back: the values in the columns and
//! tables the release dropped (counted on the copy before the release), in
//! the columns whose type the release changed that do not survive the new
//! type (the same copy), and in what the release added that the rollback
//! drops (counted before the rollback). Counts only: never a value.

use tokio_postgres::Client;

use crate::catalog::{self, SchemaEntry};
use crate::error::{ErrorKind, Result};
use crate::findings::destructive::retyped_columns;
use crate::pg::SchemaEntryKind;
use crate::report::{DataLoss, DataLossKind, DestructiveChange, DestructiveKind, DroppedBy, MigrationFacts};

/// The columns and tables the release dropped that held values before it
/// (counted on the copy), with the same count after the rollback.
pub(super) async fn data_loss(release: &[MigrationFacts], before: &Client, after: &Client) -> Result<Vec<DataLoss>> {
    let mut out = Vec::new();
    for m in release {
        for change in &m.findings.destructive_changes {
            let (kind, table, column) = match change.kind {
                DestructiveKind::DropColumn => match change.object.rsplit_once('.') {
                    Some((table, column)) => (DataLossKind::DropColumn, table, Some(column)),
                    None => continue,
                },
                DestructiveKind::DropTable => (DataLossKind::DropTable, change.object.as_str(), None),
                _ => continue,
            };
            let count = |client| catalog::rows_with_values(client, table, column);
            let env =
                |e| ErrorKind::CatalogReadFailed.because(format!("cannot count the rows of {}", change.object), e);
            let Some(rows) = count(before).await.map_err(env)?.filter(|rows| *rows > 0) else { continue };
            let rows_after_rollback = count(after).await.map_err(env)?;
            let object = change.object.clone();
            let (migration, dropped_by) = (m.planned.id.clone(), DroppedBy::Release);
            out.push(DataLoss { object, kind, migration, dropped_by, rows, rows_after_rollback });
        }
    }
    Ok(out)
}

/// A column or table the release added, and the rows holding a value in it before the rollback.
pub(super) struct Added {
    object: String,
    kind: DataLossKind,
    rows: u64,
}

/// The columns and tables the release added that hold values before the
/// rollback (the release's backfill here; in production, also what the app
/// wrote since): a rollback that drops them drops those values.
pub(super) async fn added_with_values(
    was: &[SchemaEntry],
    released: &[SchemaEntry],
    db: &Client,
) -> Result<Vec<Added>> {
    let tables: Vec<&str> = released
        .iter()
        .filter(|e| e.kind == SchemaEntryKind::Table && !was.iter().any(|w| w.kind == e.kind && w.name == e.name))
        .map(|e| e.name.as_str())
        .collect();
    let mut out = Vec::new();
    for e in released.iter().filter(|e| !was.iter().any(|w| w.kind == e.kind && w.name == e.name)) {
        let (kind, table, column) = match (e.kind, &e.parent) {
            (SchemaEntryKind::Table, _) => (DataLossKind::DropTable, e.name.as_str(), None),
            // A new table's columns are its rows' values: counted once, as the table.
            (SchemaEntryKind::Column, Some((_, table))) if !tables.contains(&table.as_str()) => {
                let column = e.name.strip_prefix(&format!("{table}.")).unwrap_or(&e.name);
                (DataLossKind::DropColumn, table.as_str(), Some(column.trim_matches('"')))
            }
            _ => continue,
        };
        let counted = catalog::rows_with_values(db, table, column).await;
        let counted = counted.map_err(|e| ErrorKind::CatalogReadFailed.because(format!("cannot count {table}"), e))?;
        if let Some(rows) = counted.filter(|rows| *rows > 0) {
            out.push(Added { object: e.name.clone(), kind, rows });
        }
    }
    Ok(out)
}

/// Of what the release added with values, what is gone (or emptied) after
/// the rollback, credited to the rollback migration that dropped it.
pub(super) async fn dropped_by_rollback(
    added: Vec<Added>,
    rollback: &[MigrationFacts],
    after: &Client,
) -> Result<Vec<DataLoss>> {
    let mut out = Vec::new();
    for a in added {
        let (table, column) = match a.kind {
            DataLossKind::DropColumn => match a.object.rsplit_once('.') {
                Some((t, c)) => (t, Some(c.trim_matches('"'))),
                None => continue,
            },
            DataLossKind::DropTable | DataLossKind::AlterType => (a.object.as_str(), None),
        };
        let now = catalog::rows_with_values(after, table, column).await;
        let now = now.map_err(|e| ErrorKind::CatalogReadFailed.because(format!("cannot count {}", a.object), e))?;
        if now.is_some_and(|n| n >= a.rows) {
            continue;
        }
        let bare = |o: &str| o.replace('"', "");
        // Gone: dropped (a rename back, say, keeps the values under the old name).
        let dropped = |c: &&DestructiveChange| {
            bare(&c.object) == bare(&a.object)
                && (now.is_some() || matches!(c.kind, DestructiveKind::DropColumn | DestructiveKind::DropTable))
        };
        let by = rollback.iter().find(|m| m.findings.destructive_changes.iter().any(|c| dropped(&c)));
        if now.is_none() && by.is_none() {
            continue;
        }
        let migration = by.map_or_else(String::new, |m| m.planned.id.clone());
        let (object, kind, rows) = (a.object, a.kind, a.rows);
        out.push(DataLoss { object, kind, migration, dropped_by: DroppedBy::Rollback, rows, rows_after_rollback: now });
    }
    Ok(out)
}

/// The columns whose type the release changed, with the values on the copy
/// before the release that a cast to the new type and back does not give
/// back (the release's `USING`, when it has one, may convert otherwise:
/// the count is what a plain cast loses). Read before the rollback, while
/// `released` still has the new type.
pub(super) async fn retyped(release: &[MigrationFacts], before: &Client, released: &Client) -> Result<Vec<DataLoss>> {
    let mut out: Vec<DataLoss> = Vec::new();
    for m in release {
        let statements = m.applied.iter().flat_map(|a| &a.statements);
        for (table, column) in statements.flat_map(|s| retyped_columns(&s.query)) {
            let object = format!("{table}.{column}");
            if out.iter().any(|d| d.object == object) {
                continue;
            }
            let env = |e| ErrorKind::CatalogReadFailed.because(format!("cannot read the type of {object}"), e);
            let from = catalog::column_type(before, &table, &column).await.map_err(env)?;
            let to = catalog::column_type(released, &table, &column).await.map_err(env)?;
            let (Some(from), Some(to)) = (from, to) else { continue };
            if from == to {
                continue;
            }
            // A value the cast refuses made the release fail, or its USING converted it: not counted.
            let Ok(Some(rows)) = catalog::values_changed_by_cast(before, &table, &column, (&from, &to)).await else {
                continue;
            };
            if rows > 0 {
                let (kind, migration, dropped_by) = (DataLossKind::AlterType, m.planned.id.clone(), DroppedBy::Release);
                out.push(DataLoss { object, kind, migration, dropped_by, rows, rows_after_rollback: None });
            }
        }
    }
    Ok(out)
}
