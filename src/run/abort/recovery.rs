//! After the cancel: what the migration left (the catalog against the
//! schema before it, INVALID indexes, the version table), the commands that
//! bring the copy back (run there: the SQL ones as written), and the proof
//! they did: the schema equals the one before the migration, and the
//! migration, run again, applies.

use std::collections::HashSet;

use tokio_postgres::Client;

use super::Sessions;
use crate::catalog::{self, SchemaEntry, SchemaEntryKind};
use crate::drift::changed_keys;
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::sources::{SourcePlan, Sources};
use crate::migrations::{Migration, MigrationSource, MigrationTool, Target, Tracing};
use crate::pg::quote_literal;
use crate::report::{AbortLeftover, AbortReport, VersionTableMove, VersionTableState};

/// The copy's schema and version table at one moment.
pub(super) struct State {
    schema: Vec<SchemaEntry>,
    /// The version table's name and rows (JSON text each), when the tool has one rehearse knows.
    version: Option<(String, Vec<String>)>,
    invalid_indexes: Vec<String>,
}

impl State {
    pub(super) async fn read(observer: &Client, except: &[String], history: Option<String>) -> Result<State> {
        let read = |e| ErrorKind::CatalogReadFailed.because("cannot read the schema of the abort's copy", e);
        let except: Vec<&str> = except.iter().map(String::as_str).collect();
        let schema = catalog::schema_snapshot(observer, &except).await.map_err(read)?;
        let version = match history {
            Some(table) => catalog::rows_as_json(observer, &table).await.map_err(read)?.map(|rows| (table, rows)),
            None => None,
        };
        let invalid_indexes = catalog::invalid_indexes(observer).await.map_err(read)?;
        Ok(State { schema, version, invalid_indexes })
    }

    /// Differs from `other` in nothing compared: schema and version rows.
    fn same_as(&self, other: &State) -> bool {
        changed_keys(&other.schema, &self.schema).is_empty()
            && changed_keys(&self.schema, &other.schema).is_empty()
            && self.version == other.version
    }
}

/// The recovery of one cancelled migration on its copy.
pub(super) struct Recovery<'a> {
    pub sessions: &'a Sessions,
    pub source: &'a MigrationSource,
    pub migration: &'a Migration,
    pub before: &'a State,
    pub after: &'a State,
    pub sources: &'a [SourcePlan],
}

impl Recovery<'_> {
    /// Leftovers and version table into `report`, the recovery run, then the proof.
    pub(super) async fn run_and_prove(
        &self,
        target: &Target<'_>,
        except: &[String],
        report: &mut AbortReport,
    ) -> Result<()> {
        report.leftovers = leftovers(self.before, self.after);
        report.version_table = self.version_table();
        report.recovery = self.commands();
        let observer = &self.sessions.observer;
        for command in report.recovery.iter().filter(|c| !c.starts_with("--")) {
            observer.batch_execute(command).await.map_err(|e| {
                Error::environment_because(format!("the recovery command `{command}` failed on the abort's copy"), e)
            })?;
        }
        let now = State::read(observer, except, self.source.history_table()).await?;
        report.recovered = now.same_as(self.before);
        report.rerun_ok = self.rerun(target).await?;
        Ok(())
    }

    fn version_table(&self) -> Option<VersionTableState> {
        let ((table, before), (_, after)) = (self.before.version.as_ref()?, self.after.version.as_ref()?);
        let state = if before == after { VersionTableMove::Unchanged } else { VersionTableMove::Moved };
        Some(VersionTableState { table: table.clone(), state, before: before.clone(), after: after.clone() })
    }

    /// The commands, verbatim: what to drop, then the version table's rows
    /// put back; by hand (a `--` line) what rehearse cannot undo.
    fn commands(&self) -> Vec<String> {
        let mut out = undo_schema(self.before, self.after);
        if let (Some((table, before)), Some((_, after))) = (&self.before.version, &self.after.version) {
            out.extend(undo_version(table, before, after, self.source.tool(), self.migration));
        }
        out
    }

    /// The migration run again on the copy, from a fresh discovery (the
    /// version table says where the tool stands now).
    async fn rerun(&self, target: &Target<'_>) -> Result<bool> {
        let sources = Sources::new(self.sources, Tracing::default());
        let (pending, _) = sources.pending(target).await?;
        let id = self.migration.shown_id();
        let Some(m) = pending.iter().find(|m| m.shown_id() == id) else {
            sources.close().await;
            return Ok(false);
        };
        let source = sources.of(m)?;
        source.ready(m, target).await?;
        let applied = source.apply(m, target).await;
        sources.close().await;
        let applied = applied?;
        if applied.interrupted {
            return Err(Error::Interrupted);
        }
        Ok(applied.error.is_none())
    }
}

/// What differs after the cancel from before the migration, by (kind,
/// object); name kinds (`index name`) left out, the object's own kind says it.
fn leftovers(before: &State, after: &State) -> Vec<AbortLeftover> {
    changed_keys(&before.schema, &after.schema)
        .into_iter()
        .filter(|(kind, _)| kind.name_of().is_none())
        .map(|(kind, object)| AbortLeftover {
            invalid: kind == crate::pg::DriftKind::Index
                && after.invalid_indexes.contains(&object)
                && !before.invalid_indexes.contains(&object),
            object,
            kind,
        })
        .collect()
}

/// The statements that remove what the migration added; a `--` line for
/// what it altered or removed, which only a person can put back.
fn undo_schema(before: &State, after: &State) -> Vec<String> {
    let had: HashSet<(SchemaEntryKind, &str)> = before.schema.iter().map(|e| (e.kind, e.object())).collect();
    let added: Vec<&SchemaEntry> = after.schema.iter().filter(|e| !had.contains(&(e.kind, e.object()))).collect();
    let added_relations: HashSet<&str> = added
        .iter()
        .filter(|e| {
            matches!(e.kind, SchemaEntryKind::Table | SchemaEntryKind::View | SchemaEntryKind::MaterializedView)
        })
        .map(|e| e.object())
        .collect();
    let mut out = Vec::new();
    for e in &added {
        // A new table's columns, indexes, owner... go with it.
        let goes_with_a_new_relation = e.parent.as_ref().is_some_and(|(_, p)| added_relations.contains(p.as_str()))
            || (matches!(e.kind, SchemaEntryKind::Owner | SchemaEntryKind::Privileges)
                && added_relations.contains(e.object()));
        if goes_with_a_new_relation {
            continue;
        }
        out.push(drop_statement(e));
    }
    let still: HashSet<(SchemaEntryKind, &str, &str)> =
        after.schema.iter().map(|e| (e.kind, e.object(), e.definition.as_str())).collect();
    for e in before.schema.iter().filter(|e| !still.contains(&(e.kind, e.object(), e.definition.as_str()))) {
        out.push(format!("-- by hand: {} {} is not as it was before the migration", e.kind.as_str(), e.object()));
    }
    out
}

/// `DROP ... IF EXISTS` for an object the migration added (names as the
/// catalog's `format('%I')` spells them: quoted where needed).
fn drop_statement(e: &SchemaEntry) -> String {
    let object = e.object();
    let on_table = |what: &str| match object.split_once(": ") {
        Some((table, name)) => format!("ALTER TABLE {table} DROP {what} IF EXISTS {name};"),
        None => format!("-- by hand: drop the {what} {object}"),
    };
    match e.kind {
        // Not in a transaction, and without blocking writes: as the index was built.
        SchemaEntryKind::Index => format!("DROP INDEX CONCURRENTLY IF EXISTS {object};"),
        SchemaEntryKind::Table => format!("DROP TABLE IF EXISTS {object};"),
        SchemaEntryKind::View => format!("DROP VIEW IF EXISTS {object};"),
        SchemaEntryKind::MaterializedView => format!("DROP MATERIALIZED VIEW IF EXISTS {object};"),
        SchemaEntryKind::Sequence => format!("DROP SEQUENCE IF EXISTS {object};"),
        SchemaEntryKind::Function => format!("DROP ROUTINE IF EXISTS {object};"),
        SchemaEntryKind::Schema => format!("DROP SCHEMA IF EXISTS {object};"),
        SchemaEntryKind::Enum | SchemaEntryKind::Domain => format!("DROP TYPE IF EXISTS {object};"),
        SchemaEntryKind::Constraint => on_table("CONSTRAINT"),
        SchemaEntryKind::Column => match object.rsplit_once('.') {
            Some((table, column)) => format!("ALTER TABLE {table} DROP COLUMN IF EXISTS {column};"),
            None => format!("-- by hand: drop the column {object}"),
        },
        SchemaEntryKind::Trigger => match object.split_once(": ") {
            Some((table, name)) => format!("DROP TRIGGER IF EXISTS {name} ON {table};"),
            None => format!("-- by hand: drop the trigger {object}"),
        },
        other => format!("-- by hand: {} {object} was added by the migration", other.as_str()),
    }
}

/// The version table's rows put back as they were: rows the migration
/// added deleted, rows it removed inserted again; for Alembic the same, as
/// `alembic stamp` would leave it (shown as a comment: rehearse runs the SQL).
fn undo_version(
    table: &str,
    before: &[String],
    after: &[String],
    tool: MigrationTool,
    migration: &Migration,
) -> Vec<String> {
    let mut out = Vec::new();
    if before == after {
        return out;
    }
    if tool == MigrationTool::Alembic {
        let to = match migration.parents.as_slice() {
            [] => "base".to_string(),
            parents => parents.join(" "),
        };
        out.push(format!("-- with Alembic: alembic stamp {to} (the statements below do the same)"));
    }
    for row in after.iter().filter(|r| !before.contains(r)) {
        out.push(format!("DELETE FROM {table} t WHERE to_jsonb(t) = {}::jsonb;", quote_literal(row)));
    }
    for row in before.iter().filter(|r| !after.contains(r)) {
        out.push(format!(
            "INSERT INTO {table} SELECT * FROM jsonb_populate_record(NULL::{table}, {}::jsonb);",
            quote_literal(row)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: SchemaEntryKind, name: &str, label: Option<&str>, parent: Option<&str>) -> SchemaEntry {
        SchemaEntry {
            kind,
            name: name.into(),
            definition: "d".into(),
            label: label.map(Into::into),
            parent: parent.map(|p| (SchemaEntryKind::Table, p.to_string())),
        }
    }

    fn state(schema: Vec<SchemaEntry>, invalid: &[&str]) -> State {
        State { schema, version: None, invalid_indexes: invalid.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn an_invalid_index_left_behind_is_dropped_concurrently() {
        let table = entry(SchemaEntryKind::Table, "public.orders", None, None);
        let index = entry(
            SchemaEntryKind::Index,
            "CREATE INDEX ON public.orders USING btree (created_at)",
            Some("public.orders_created_at_idx"),
            Some("public.orders"),
        );
        let (before, after) =
            (state(vec![table.clone()], &[]), state(vec![table, index], &["public.orders_created_at_idx"]));
        let left = leftovers(&before, &after);
        assert_eq!(left.len(), 1);
        assert!(left[0].invalid && left[0].object == "public.orders_created_at_idx");
        assert_eq!(undo_schema(&before, &after), ["DROP INDEX CONCURRENTLY IF EXISTS public.orders_created_at_idx;"]);
    }

    #[test]
    fn a_new_table_is_dropped_with_what_it_holds() {
        let table = entry(SchemaEntryKind::Table, "public.t", None, None);
        let column = entry(SchemaEntryKind::Column, "public.t.a", None, Some("public.t"));
        let owner = entry(SchemaEntryKind::Owner, "public.t", None, None);
        let (before, after) = (state(vec![], &[]), state(vec![table, column, owner], &[]));
        assert_eq!(undo_schema(&before, &after), ["DROP TABLE IF EXISTS public.t;"]);
    }

    #[test]
    fn version_rows_added_are_deleted_and_removed_ones_put_back() {
        let m = Migration { id: "b".into(), parents: vec!["a".into()], ..Migration::default() };
        let out = undo_version(
            "alembic_version",
            &[r#"{"version_num": "a"}"#.into()],
            &[r#"{"version_num": "b"}"#.into()],
            MigrationTool::Alembic,
            &m,
        );
        assert_eq!(out[0], "-- with Alembic: alembic stamp a (the statements below do the same)");
        assert!(out[1].starts_with("DELETE FROM alembic_version t WHERE to_jsonb(t) = '{\"version_num\": \"b\"}'"));
        assert!(out[2].starts_with("INSERT INTO alembic_version SELECT * FROM jsonb_populate_record("));
    }
}
