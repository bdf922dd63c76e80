//! Destructive schema changes: tables, views, schemas and columns a
//! migration dropped or renamed, read from the parse trees (pg_query) of the
//! statements it executed. The app version still running in production may
//! use them, so they decide whether a release is expand-contract safe and
//! what a forward fix must restore.

use pg_query::protobuf::{AlterTableType, ObjectType};
use pg_query::NodeEnum;

use crate::pg::range_var_name;
use crate::report::{DestructiveChange, DestructiveKind, MigrationReport};

/// The destructive changes among the statements that ran (a statement that
/// failed changed nothing).
pub fn detect(m: &MigrationReport) -> Vec<DestructiveChange> {
    let failed = m.error.as_ref().and_then(|e| e.statement.as_deref());
    let mut out = Vec::new();
    for (i, s) in m.statements.iter().enumerate() {
        let is_last = i + 1 == m.statements.len();
        if is_last && failed == Some(s.query.as_str()) {
            continue;
        }
        for change in in_statement(&s.query) {
            out.push(DestructiveChange { line: s.line, statement: s.query.clone(), ..change });
        }
    }
    out
}

/// A command tool's destructive changes: its statements are known only
/// from pg_stat_statements (normalized, the migration's top statements by
/// time), where a DROP is found unless the migration ran more statements
/// than the report lists.
pub fn in_recorded(m: &MigrationReport) -> Vec<DestructiveChange> {
    let mut out = Vec::new();
    for s in &m.top_statements {
        for change in in_statement(&s.query) {
            out.push(DestructiveChange { statement: s.query.clone(), ..change });
        }
    }
    out
}

/// The columns whose type a statement changes (`ALTER COLUMN ... TYPE`),
/// as (table, column): their values may not survive the new type.
pub fn retyped_columns(sql: &str) -> Vec<(String, String)> {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for node in parsed.protobuf.stmts.iter().filter_map(|raw| raw.stmt.as_ref().and_then(|s| s.node.as_ref())) {
        let NodeEnum::AlterTableStmt(a) = node else { continue };
        let table = a.relation.as_ref().map(range_var_name).unwrap_or_default();
        for cmd in &a.cmds {
            if let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node {
                if c.subtype == AlterTableType::AtAlterColumnType as i32 {
                    out.push((table.clone(), c.name.clone()));
                }
            }
        }
    }
    out
}

/// The destructive changes one statement (or a few, as a DO-less script) makes.
pub fn in_statement(sql: &str) -> Vec<DestructiveChange> {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |kind: DestructiveKind, object: String, new_name: Option<String>| {
        out.push(DestructiveChange { kind, object, new_name, line: None, statement: String::new() })
    };
    for node in parsed.protobuf.stmts.iter().filter_map(|raw| raw.stmt.as_ref().and_then(|s| s.node.as_ref())) {
        match node {
            NodeEnum::DropStmt(d) => {
                let Some(kind) = relation_kind(d.remove_type, Verb::Drop) else { continue };
                for object in &d.objects {
                    push(kind, dotted(object), None);
                }
            }
            NodeEnum::AlterTableStmt(a) => {
                let table = a.relation.as_ref().map(range_var_name).unwrap_or_default();
                for cmd in &a.cmds {
                    if let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node {
                        if c.subtype == AlterTableType::AtDropColumn as i32 {
                            push(DestructiveKind::DropColumn, format!("{table}.{}", c.name), None);
                        }
                    }
                }
            }
            NodeEnum::RenameStmt(r) => {
                let table = r.relation.as_ref().map(range_var_name);
                if r.rename_type == ObjectType::ObjectColumn as i32 {
                    push(
                        DestructiveKind::RenameColumn,
                        format!("{}.{}", table.unwrap_or_default(), r.subname),
                        Some(r.newname.clone()),
                    );
                } else if r.rename_type == ObjectType::ObjectSchema as i32 {
                    push(DestructiveKind::RenameSchema, r.subname.clone(), Some(r.newname.clone()));
                } else if let (Some(kind), Some(table)) = (relation_kind(r.rename_type, Verb::Rename), table) {
                    push(kind, table, Some(r.newname.clone()));
                }
            }
            NodeEnum::AlterObjectSchemaStmt(a) => {
                if let (Some(_), Some(rel)) = (relation_kind(a.object_type, Verb::Drop), &a.relation) {
                    push(DestructiveKind::SetSchema, range_var_name(rel), Some(a.newschema.clone()));
                }
            }
            _ => {}
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Verb {
    Drop,
    Rename,
}

/// `drop_table`, `rename_view`, ...: for the object types an app reads.
fn relation_kind(object_type: i32, verb: Verb) -> Option<DestructiveKind> {
    use DestructiveKind::*;
    Some(match (ObjectType::try_from(object_type).ok()?, verb) {
        (ObjectType::ObjectTable | ObjectType::ObjectForeignTable, Verb::Drop) => DropTable,
        (ObjectType::ObjectTable | ObjectType::ObjectForeignTable, Verb::Rename) => RenameTable,
        (ObjectType::ObjectView, Verb::Drop) => DropView,
        (ObjectType::ObjectView, Verb::Rename) => RenameView,
        (ObjectType::ObjectMatview, Verb::Drop) => DropMaterializedView,
        (ObjectType::ObjectMatview, Verb::Rename) => RenameMaterializedView,
        (ObjectType::ObjectSchema, Verb::Drop) => DropSchema,
        (ObjectType::ObjectSchema, Verb::Rename) => RenameSchema,
        _ => return None,
    })
}

/// A DROP's object name: a list of identifiers (`public.users`), or one for a schema.
fn dotted(node: &pg_query::protobuf::Node) -> String {
    let part = |n: &pg_query::protobuf::Node| match &n.node {
        Some(NodeEnum::String(s)) => s.sval.clone(),
        _ => String::new(),
    };
    match &node.node {
        Some(NodeEnum::List(list)) => {
            let parts: Vec<String> = list.items.iter().map(part).collect();
            if parts.len() == 1 {
                format!("public.{}", parts[0])
            } else {
                parts.join(".")
            }
        }
        _ => part(node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(String, String, Option<String>)> {
        in_statement(sql).into_iter().map(|c| (c.kind.as_str().to_string(), c.object, c.new_name)).collect()
    }

    #[test]
    fn drops_and_renames_of_tables_and_columns() {
        let t = |k: &str, o: &str, n: Option<&str>| (k.to_string(), o.to_string(), n.map(String::from));
        assert_eq!(
            kinds("DROP TABLE public.a, b CASCADE"),
            [t("drop_table", "public.a", None), t("drop_table", "public.b", None)]
        );
        assert_eq!(
            kinds("ALTER TABLE users DROP COLUMN full_name, ADD COLUMN x int"),
            [t("drop_column", "public.users.full_name", None)]
        );
        assert_eq!(
            kinds("ALTER TABLE app.users RENAME COLUMN full_name TO display_name"),
            [t("rename_column", "app.users.full_name", Some("display_name"))]
        );
        assert_eq!(
            kinds("ALTER TABLE orders RENAME TO purchases"),
            [t("rename_table", "public.orders", Some("purchases"))]
        );
        assert_eq!(kinds("DROP VIEW public.v"), [t("drop_view", "public.v", None)]);
        assert_eq!(kinds("DROP SCHEMA legacy CASCADE"), [t("drop_schema", "legacy", None)]);
        assert_eq!(kinds("ALTER TABLE public.t SET SCHEMA archive"), [t("set_schema", "public.t", Some("archive"))]);
    }

    #[test]
    fn additive_changes_are_not_destructive() {
        for sql in [
            "ALTER TABLE users ADD COLUMN x int",
            "CREATE INDEX i ON users (x)",
            "DROP INDEX public.users_x_idx",
            "ALTER INDEX i RENAME TO j",
            "UPDATE users SET x = 1",
            "not sql at all",
        ] {
            assert!(kinds(sql).is_empty(), "{sql}");
        }
    }
}
