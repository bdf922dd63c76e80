//! What kind of work a statement did, and on which relation: read from its
//! parse tree (pg_query) together with what rehearse observed of it (the
//! tables it rewrote, the locks it took). The kind decides how the work's
//! time grows with the relation's size.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use crate::observe::relations::RelationSnapshot;
use crate::pg::{range_var_name, LockMode, RelationKind};
use crate::report::{MigrationReport, ProgressReport, StatementReport};

/// One statement's work, as far as its scaling goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Changes the catalog only (ADD COLUMN without a rewrite, CREATE TABLE,
    /// GRANT, ...), or touches only relations the migration created: its
    /// time does not grow with production's data.
    Catalog,
    /// Reads the whole table once: a validation (FOREIGN KEY, CHECK, SET NOT
    /// NULL, VALIDATE CONSTRAINT), VACUUM, ANALYZE. Linear in its size.
    Scan(String),
    /// Writes a new copy of the table and rebuilds its indexes (ALTER TYPE,
    /// a volatile default, VACUUM FULL, CLUSTER). Linear in its size, with
    /// the index sorts a little more.
    Rewrite(String),
    /// Builds an index on the table: a sort, n·log n in its rows.
    IndexBuild(String),
    /// Changes rows of the table (UPDATE, DELETE, INSERT ... SELECT, a
    /// backfill in a DO block): linear in its rows, as the same predicate
    /// selects the same share of a bigger table.
    Rows(String),
    /// Changes rows of `target` while reading other tables (UPDATE ... FROM,
    /// DELETE ... USING, INSERT ... SELECT with a join or an aggregate): its
    /// time goes to hashing or sorting what it reads, n·log n in the rows of
    /// the `largest` table involved; its WAL grows with `target`'s rows.
    Join { target: String, largest: String },
}

impl Work {
    /// The relation the work scales with, if any.
    pub fn table(&self) -> Option<&str> {
        match self {
            Work::Catalog => None,
            Work::Scan(t) | Work::Rewrite(t) | Work::IndexBuild(t) | Work::Rows(t) => Some(t),
            Work::Join { largest, .. } => Some(largest),
        }
    }
}

impl Work {
    /// Whether this work already accounts for `other` (a CREATE INDEX
    /// statement for the index build the progress views showed, a rewrite
    /// for the index builds on its table).
    pub fn covers(&self, other: &Work) -> bool {
        self == other || (matches!(self, Work::Rewrite(_) | Work::IndexBuild(_)) && self.table() == other.table())
    }
}

/// The work a progress view showed (see `catalog::progress`): an index
/// build, a rewrite by CLUSTER or VACUUM FULL, a scan by VACUUM or COPY TO,
/// rows loaded by COPY FROM; catalog work (not scaled) on a table the
/// migration created.
pub fn from_progress(p: &ProgressReport, before: &RelationSnapshot) -> Option<Work> {
    if !before.contains(&p.relation) {
        return Some(Work::Catalog);
    }
    let t = p.relation.clone();
    match p.command.as_str() {
        "CREATE INDEX" | "CREATE INDEX CONCURRENTLY" | "REINDEX" | "REINDEX CONCURRENTLY" => Some(Work::IndexBuild(t)),
        "CLUSTER" | "VACUUM FULL" => Some(Work::Rewrite(t)),
        "VACUUM" | "COPY TO" => Some(Work::Scan(t)),
        "COPY FROM" => Some(Work::Rows(t)),
        _ => None,
    }
}

/// The work of one statement of migration `m` (whose rewrites and locks
/// were observed); relations the migration created count as catalog work.
pub fn classify(stmt: &StatementReport, m: &MigrationReport, before: &RelationSnapshot) -> Work {
    let existing = |t: String| before.contains(&t).then_some(t);
    let rewritten = |t: &str| m.rewrites.iter().any(|r| r.relation == t && r.kind == RelationKind::Table);
    let parsed = pg_query::parse(&stmt.query, 0).ok();
    let node = parsed
        .as_ref()
        .and_then(|p| p.protobuf.stmts.first())
        .and_then(|s| s.stmt.as_ref())
        .and_then(|s| s.node.as_ref());
    let work = match node {
        Some(NodeEnum::IndexStmt(s)) => {
            s.relation.as_ref().map(range_var_name).and_then(existing).map(Work::IndexBuild)
        }
        Some(NodeEnum::ClusterStmt(s)) => s.relation.as_ref().map(range_var_name).and_then(existing).map(Work::Rewrite),
        Some(NodeEnum::VacuumStmt(s)) => vacuum(s, before),
        Some(NodeEnum::ReindexStmt(s)) => {
            // REINDEX TABLE names the table; REINDEX INDEX, the index: its table is the one locked.
            let named = s.relation.as_ref().map(range_var_name).and_then(existing);
            named
                .filter(|t| before.get(t).is_some_and(|r| r.kind == RelationKind::Table))
                .or_else(|| largest_locked(stmt, before, false))
                .map(Work::IndexBuild)
        }
        Some(NodeEnum::AlterTableStmt(s)) => {
            let table = s.relation.as_ref().map(range_var_name).and_then(existing);
            table.map(|t| alter_table(s, t, rewritten))
        }
        Some(NodeEnum::UpdateStmt(s)) => {
            s.relation.as_ref().map(range_var_name).and_then(existing).map(|t| rows(stmt, t, before))
        }
        Some(NodeEnum::DeleteStmt(s)) => {
            s.relation.as_ref().map(range_var_name).and_then(existing).map(|t| rows(stmt, t, before))
        }
        Some(NodeEnum::InsertStmt(_) | NodeEnum::MergeStmt(_) | NodeEnum::DoStmt(_) | NodeEnum::CallStmt(_)) => {
            largest_locked(stmt, before, true)
                .map(|t| rows(stmt, t, before))
                .or_else(|| largest_locked(stmt, before, false).map(Work::Scan))
        }
        Some(NodeEnum::SelectStmt(_) | NodeEnum::CreateTableAsStmt(_) | NodeEnum::RefreshMatViewStmt(_)) => {
            largest_locked(stmt, before, false).map(Work::Scan)
        }
        Some(_) => None,
        // Not SQL pg_query reads (a tool's own command): judge by its locks.
        None => largest_locked(stmt, before, true).map(Work::Rows),
    };
    work.unwrap_or(Work::Catalog)
}

fn vacuum(s: &pg_query::protobuf::VacuumStmt, before: &RelationSnapshot) -> Option<Work> {
    let full = s.options.iter().any(|o| matches!(&o.node, Some(NodeEnum::DefElem(d)) if d.defname == "full"));
    let table = s.rels.iter().find_map(|r| match &r.node {
        Some(NodeEnum::VacuumRelation(v)) => v.relation.as_ref().map(range_var_name),
        _ => None,
    })?;
    before.contains(&table).then_some(if full && s.is_vacuumcmd { Work::Rewrite(table) } else { Work::Scan(table) })
}

/// ALTER TABLE: a rewrite when one was observed; a scan when a subcommand
/// validates existing rows; an index build for an inline UNIQUE or PRIMARY
/// KEY; otherwise catalog work.
fn alter_table(s: &pg_query::protobuf::AlterTableStmt, table: String, rewritten: impl Fn(&str) -> bool) -> Work {
    if rewritten(&table) {
        return Work::Rewrite(table);
    }
    let mut work = Work::Catalog;
    for cmd in &s.cmds {
        let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node else { continue };
        let subtype = AlterTableType::try_from(c.subtype).unwrap_or(AlterTableType::Undefined);
        match subtype {
            AlterTableType::AtSetNotNull | AlterTableType::AtValidateConstraint => work = Work::Scan(table.clone()),
            AlterTableType::AtAddConstraint | AlterTableType::AtAddIndexConstraint => {
                let Some(NodeEnum::Constraint(con)) = c.def.as_ref().and_then(|d| d.node.as_ref()) else { continue };
                let kind = ConstrType::try_from(con.contype).unwrap_or(ConstrType::Undefined);
                match kind {
                    ConstrType::ConstrPrimary | ConstrType::ConstrUnique | ConstrType::ConstrExclusion
                        if con.indexname.is_empty() =>
                    {
                        return Work::IndexBuild(table);
                    }
                    ConstrType::ConstrForeign | ConstrType::ConstrCheck if !con.skip_validation => {
                        work = Work::Scan(table.clone())
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    work
}

/// Row changes of `target`; a join when the statement also read other
/// existing tables. Read means ACCESS SHARE: a foreign key's check of the
/// table it references takes ROW SHARE (SELECT ... FOR KEY SHARE, one index
/// lookup per row), which does not make a statement a join.
fn rows(stmt: &StatementReport, target: String, before: &RelationSnapshot) -> Work {
    let size = |t: &str| before.get(t).map_or(0, |r| r.main_bytes);
    let largest_read = stmt
        .locks
        .iter()
        .filter(|l| l.kind == RelationKind::Table && l.mode == LockMode::AccessShareLock && l.relation != target)
        .filter(|l| before.contains(&l.relation))
        .map(|l| l.relation.as_str())
        .max_by_key(|t| size(t));
    match largest_read {
        None => Work::Rows(target),
        Some(read) => {
            let largest = if size(read) > size(&target) { read.to_string() } else { target.clone() };
            Work::Join { target, largest }
        }
    }
}

/// The largest existing table the statement locked (in a mode that writes
/// rows, with `writing`), as the relation its work scales with.
fn largest_locked(stmt: &StatementReport, before: &RelationSnapshot, writing: bool) -> Option<String> {
    stmt.locks
        .iter()
        .filter(|l| l.kind == RelationKind::Table && before.contains(&l.relation))
        .filter(|l| !writing || l.mode == LockMode::RowExclusiveLock || l.mode.blocks_writes())
        .max_by_key(|l| before.get(&l.relation).map_or(0, |r| r.main_bytes))
        .map(|l| l.relation.clone())
}
