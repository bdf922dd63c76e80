//! Statements whose production-scale time reaches production's
//! statement_timeout: production would cancel them ("Abort any statement
//! that takes more than the specified amount of time", statement_timeout,
//! PostgreSQL 15 and 18) although they passed on the smaller copy. The
//! timeout in force is the migration's own `SET statement_timeout` when it
//! has one before the statement, else the recorded role's login setting,
//! else the server's (see `limits.rs`).

use pg_query::NodeEnum;

use super::limits::{duration_ms, Limits};
use crate::report::{OverTimeout, Range, StatementReport};

/// The statements of a migration (each with its estimated time) that reach
/// the timeout in force when they run.
pub fn over(statements: &[(&StatementReport, Range)], limits: &Limits) -> Vec<OverTimeout> {
    let production = limits.statement_timeout_ms().map(|ms| (ms, limits.statement_timeout.from.clone()));
    let mut in_force = production.clone();
    let mut out = Vec::new();
    for (stmt, time) in statements {
        if let Some(set) = sets_timeout(&stmt.query) {
            in_force = match set {
                Some(0) => None,
                Some(ms) => Some((ms, "the migration's SET statement_timeout".into())),
                None => production.clone(),
            };
            continue;
        }
        let Some((timeout_ms, from)) = &in_force else { continue };
        if time.high >= *timeout_ms {
            out.push(OverTimeout {
                statement: stmt.query.clone(),
                line: stmt.line,
                estimate_ms: *time,
                timeout_ms: *timeout_ms,
                timeout_from: from.clone(),
                fails: time.mid >= *timeout_ms,
                fix: fix(&stmt.query).into(),
            });
        }
    }
    out
}

/// The fix for a statement that outlasts the timeout: every kind can raise
/// the timeout for the migration alone; a data change can be split into
/// batches (each a statement of its own, each under the timeout), an index
/// build run CONCURRENTLY (its phases still count as one statement, so the
/// timeout must still be raised for it).
fn fix(sql: &str) -> &'static str {
    let node = pg_query::parse(sql, 0).ok().and_then(|p| p.protobuf.stmts.first()?.stmt.as_ref()?.node.clone());
    match node {
        Some(NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_) | NodeEnum::InsertStmt(_) | NodeEnum::MergeStmt(_)) => {
            "batch it (a few thousand rows a statement, each under the timeout), or SET statement_timeout for this \
             migration"
        }
        Some(NodeEnum::IndexStmt(_)) => {
            "SET statement_timeout = 0 for this migration (and build the index CONCURRENTLY, so writes go on meanwhile)"
        }
        _ => "SET statement_timeout for this migration (at its top, or SET LOCAL inside its transaction)",
    }
}

/// `Some(Some(ms))` for `SET [LOCAL] statement_timeout = v`, `Some(None)`
/// for `RESET statement_timeout` or `SET ... TO DEFAULT`; None for any
/// other statement.
fn sets_timeout(sql: &str) -> Option<Option<u64>> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    let node = parsed.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()?;
    let NodeEnum::VariableSetStmt(set) = node else { return None };
    if set.name != "statement_timeout" {
        return None;
    }
    let value = set.args.first().and_then(|a| match a.node.as_ref()? {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            pg_query::protobuf::a_const::Val::Ival(i) => Some(i.ival.to_string()),
            pg_query::protobuf::a_const::Val::Sval(s) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    });
    Some(value.and_then(|v| duration_ms(&v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migrations_own_timeout_is_read() {
        assert_eq!(sets_timeout("SET statement_timeout = '5min'"), Some(Some(300_000)));
        assert_eq!(sets_timeout("SET LOCAL statement_timeout TO 0"), Some(Some(0)));
        assert_eq!(sets_timeout("RESET statement_timeout"), Some(None));
        assert_eq!(sets_timeout("SET lock_timeout = '2s'"), None);
        assert_eq!(sets_timeout("UPDATE t SET a = 1"), None);
    }
}
