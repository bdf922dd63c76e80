//! Hazards: findings backed by what was measured (lock mode on a table of
//! known size, hold time, rewrite, validation scan), each with a stable id,
//! the consequence, the evidence and the safe alternative. One file per rule;
//! `Rule` lists them. Rules read the statements' parse trees (pg_query) only
//! to name the cause; they fire on what the server did.

mod add_column_rewrite;
mod blocking_maintenance;
mod check_constraint_validated;
mod column_type_rewrite;
mod create_index_non_concurrent;
mod foreign_key_validated;
mod lock_held_long;
mod no_lock_timeout;
mod set_not_null;
mod unique_constraint_inline_index;

use pg_query::protobuf::{AlterTableCmd, AlterTableType};
use pg_query::NodeEnum;

use super::ignore::HazardIgnore;
pub use crate::kinds::Rule;
use crate::observe::relations::RelationSnapshot;
use crate::pg::{Blocked, LockMode};
use crate::report::{format_bytes, format_ms, Hazard, LockReport, MigrationReport, StatementReport};

/// What each rule checks, and its examples: the ids are `kinds::Rule`.
impl Rule {
    fn check(self, ctx: &Context) -> Vec<Finding> {
        match self {
            Rule::CreateIndexNonConcurrent => create_index_non_concurrent::check(ctx),
            Rule::ForeignKeyValidated => foreign_key_validated::check(ctx),
            Rule::CheckConstraintValidated => check_constraint_validated::check(ctx),
            Rule::SetNotNull => set_not_null::check(ctx),
            Rule::ColumnTypeRewrite => column_type_rewrite::check(ctx),
            Rule::AddColumnRewrite => add_column_rewrite::check(ctx),
            Rule::UniqueConstraintInlineIndex => unique_constraint_inline_index::check(ctx),
            Rule::NoLockTimeout => no_lock_timeout::check(ctx),
            Rule::BlockingMaintenance => blocking_maintenance::check(ctx),
            Rule::LockHeldLong => lock_held_long::check(ctx),
        }
    }

    /// A migration that triggers the rule and its safe alternative, against
    /// a database with `public.customers (id, name, meta jsonb)` and
    /// `public.orders (id, customer_id, total numeric(10,2), note text)`
    /// holding a few thousand rows each.
    pub fn examples(self) -> (&'static str, &'static str) {
        match self {
            Rule::CreateIndexNonConcurrent => (create_index_non_concurrent::BAD, create_index_non_concurrent::GOOD),
            Rule::ForeignKeyValidated => (foreign_key_validated::BAD, foreign_key_validated::GOOD),
            Rule::CheckConstraintValidated => (check_constraint_validated::BAD, check_constraint_validated::GOOD),
            Rule::SetNotNull => (set_not_null::BAD, set_not_null::GOOD),
            Rule::ColumnTypeRewrite => (column_type_rewrite::BAD, column_type_rewrite::GOOD),
            Rule::AddColumnRewrite => (add_column_rewrite::BAD, add_column_rewrite::GOOD),
            Rule::UniqueConstraintInlineIndex => {
                (unique_constraint_inline_index::BAD, unique_constraint_inline_index::GOOD)
            }
            Rule::NoLockTimeout => (no_lock_timeout::BAD, no_lock_timeout::GOOD),
            Rule::BlockingMaintenance => (blocking_maintenance::BAD, blocking_maintenance::GOOD),
            Rule::LockHeldLong => (lock_held_long::BAD, lock_held_long::GOOD),
        }
    }
}

/// What a rule found: the report's `Hazard` without the id and docs link.
pub struct Finding {
    pub message: String,
    pub evidence: String,
    pub fix: String,
}

/// A migration's hazards: those to act on, and those `hazards.ignore` set aside.
#[derive(Debug, Default)]
pub struct Checked {
    pub hazards: Vec<Hazard>,
    pub ignored: Vec<Hazard>,
}

/// Runs every rule over one observed migration; the findings of a rule
/// `ignore` covers for it are kept apart, not dropped.
pub fn check(migration: &MigrationReport, before: &RelationSnapshot, ignore: &HazardIgnore) -> Checked {
    let ctx = Context::new(migration, before);
    let mut out = Checked::default();
    for rule in Rule::ALL {
        let list = match ignore.covers(rule, migration) {
            true => &mut out.ignored,
            false => &mut out.hazards,
        };
        for f in rule.check(&ctx) {
            list.push(Hazard { rule, message: f.message, evidence: f.evidence, fix: f.fix, docs: rule.docs() });
        }
    }
    out
}

/// One observed migration, as the rules see it.
pub struct Context<'a> {
    pub migration: &'a MigrationReport,
    pub before: &'a RelationSnapshot,
    parsed: Vec<(&'a StatementReport, Option<NodeEnum>)>,
}

impl<'a> Context<'a> {
    pub fn new(migration: &'a MigrationReport, before: &'a RelationSnapshot) -> Context<'a> {
        let parsed = migration
            .statements
            .iter()
            .map(|s| {
                let node = pg_query::parse(&s.query, 0)
                    .ok()
                    .and_then(|p| p.protobuf.stmts.into_iter().next())
                    .and_then(|raw| raw.stmt)
                    .and_then(|n| n.node);
                (s, node)
            })
            .collect();
        Context { migration, before, parsed }
    }

    /// Statements with their parse trees.
    pub fn statements(&self) -> impl Iterator<Item = (&'a StatementReport, &NodeEnum)> + '_ {
        self.parsed.iter().filter_map(|(s, n)| n.as_ref().map(|n| (*s, n)))
    }

    /// `ALTER TABLE` subcommands of a given type, with the statement and its table.
    pub fn alter_table_cmds(&self, kind: AlterTableType) -> Vec<(&'a StatementReport, String, AlterTableCmd)> {
        let mut out = Vec::new();
        for (stmt, node) in self.statements() {
            let NodeEnum::AlterTableStmt(alter) = node else { continue };
            let table = alter.relation.as_ref().map(range_var_name).unwrap_or_default();
            for cmd in &alter.cmds {
                if let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node {
                    if c.subtype == kind as i32 {
                        out.push((stmt, table.clone(), (**c).clone()));
                    }
                }
            }
        }
        out
    }

    /// The observed lock on a relation in the given mode.
    pub fn lock(&self, relation: &str, mode: LockMode) -> Option<&'a LockReport> {
        self.migration.locks.iter().find(|l| l.relation == relation && l.mode == mode)
    }

    /// The strongest observed lock on a relation (by what it blocks, then hold).
    pub fn strongest_lock(&self, relation: &str) -> Option<&'a LockReport> {
        self.migration.locks.iter().filter(|l| l.relation == relation).max_by_key(|l| (l.blocks.len(), l.held_ms))
    }

    /// Whether the relation existed before the migration (so the app uses it).
    pub fn existed(&self, relation: &str) -> bool {
        self.before.contains(relation)
    }

    /// Whether the relation was rewritten (its relfilenode changed).
    pub fn rewrite(&self, relation: &str) -> Option<&'a crate::report::Rewrite> {
        self.migration.rewrites.iter().find(|r| r.relation == relation)
    }

    /// "public.orders (12000 rows, 1.2 MB)" from the snapshot before the migration.
    pub fn describe(&self, relation: &str) -> String {
        match self.before.get(relation) {
            Some(r) => format!("{relation} ({} rows, {})", r.rows, format_bytes(r.bytes.max(0) as u64)),
            None => relation.to_string(),
        }
    }
}

pub use crate::pg::range_var_name;

/// "AccessExclusiveLock on public.orders (12000 rows, 1.2 MB) held 1.2s".
pub fn lock_evidence(ctx: &Context, lock: &LockReport) -> String {
    let mut text = format!("{} on {} held {}", lock.mode, ctx.describe(&lock.relation), format_ms(lock.held_ms));
    if lock.waited_ms > 0 {
        text.push_str(&format!(" (after waiting {})", format_ms(lock.waited_ms)));
    }
    text
}

/// "reads and writes", "writes", from what a lock blocks.
pub fn blocked_work(lock: &LockReport) -> &'static str {
    match (lock.blocks.contains(&Blocked::Reads), lock.blocks.contains(&Blocked::Writes)) {
        (true, _) => "reads and writes",
        (false, true) => "writes",
        _ => "schema changes",
    }
}

/// The first words of a statement, for messages.
pub fn short(sql: &str) -> String {
    crate::sys::text::one_line(sql, 80)
}

/// " (line 12)" when the statement's line in its file is known.
pub fn at_line(stmt: &StatementReport) -> String {
    stmt.line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

/// "`ALTER ...` took 1.5s; relfilenode changed, 42 MB → 45 MB; AccessExclusiveLock on ... held 1.5s".
pub fn rewrite_evidence(
    ctx: &Context,
    stmt: &StatementReport,
    table: &str,
    rewrite: &crate::report::Rewrite,
) -> String {
    let lock = ctx.lock(table, LockMode::AccessExclusiveLock).map(|l| lock_evidence(ctx, l)).unwrap_or_default();
    format!(
        "`{}` took {}; relfilenode changed, {} → {}; {lock}",
        short(&stmt.query),
        format_ms(stmt.duration_ms),
        format_bytes(rewrite.bytes_before.max(0) as u64),
        format_bytes(rewrite.bytes_after.max(0) as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule is a file here; `Rule::ALL` must name each, or it never runs.
    #[test]
    fn the_rule_list_names_every_rule_file() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/findings/hazards");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".rs").map(String::from))
            .filter(|name| name != "mod")
            .collect();
        files.sort();
        let mut listed: Vec<String> = Rule::ALL.iter().map(|r| r.as_str().replace('-', "_")).collect();
        listed.sort();
        // A rule listed twice, or a file with no rule, shows here as well.
        assert_eq!(listed, files, "Rule::ALL and the rule files of {} differ", dir.display());
    }
}
