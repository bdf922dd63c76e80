//! Splitting a file into statements with pg_query (Postgres's own
//! grammar), so semicolons in strings, dollar quotes and comments are
//! handled as the server does; and which statements cannot run in a
//! transaction block.

use pg_query::NodeEnum;

/// One statement of a file, as Postgres splits it.
#[derive(Debug)]
pub struct Statement<'a> {
    pub sql: &'a str,
    /// 1-based line in the file where the statement starts.
    pub line: usize,
    /// CREATE INDEX CONCURRENTLY and friends cannot run inside a transaction
    /// block; explicit BEGIN/COMMIT means the file manages its own.
    pub needs_own_transaction: bool,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT...: the file manages its transactions.
    pub controls_transaction: bool,
}

/// Splits a file into statements with pg_query (Postgres's own grammar), so
/// semicolons in strings, dollar quotes and comments are handled as the server does.
pub fn split(text: &str) -> Result<Vec<Statement<'_>>, String> {
    let pieces = pg_query::split_with_parser(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for piece in pieces {
        let offset = piece.as_ptr() as usize - text.as_ptr() as usize;
        let skip = leading_comments_len(piece);
        let sql = piece[skip..].trim_end();
        if sql.is_empty() {
            continue;
        }
        let line = 1 + text[..offset + skip].matches('\n').count();
        let controls_transaction = matches!(first_node(sql), Some(NodeEnum::TransactionStmt(_)));
        out.push(Statement { sql, line, needs_own_transaction: needs_own_transaction(sql), controls_transaction });
    }
    Ok(out)
}

fn leading_comments_len(s: &str) -> usize {
    let mut i = 0;
    loop {
        let rest = &s[i..];
        let trimmed = rest.trim_start();
        i += rest.len() - trimmed.len();
        if trimmed.starts_with("--") {
            i += trimmed.find('\n').map(|n| n + 1).unwrap_or(trimmed.len());
        } else if trimmed.starts_with("/*") {
            i += trimmed.find("*/").map(|n| n + 2).unwrap_or(trimmed.len());
        } else {
            return i;
        }
    }
}

fn first_node(sql: &str) -> Option<NodeEnum> {
    pg_query::parse(sql, 0).ok()?.protobuf.stmts.into_iter().next()?.stmt?.node
}

fn needs_own_transaction(sql: &str) -> bool {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return false;
    };
    parsed.protobuf.stmts.iter().filter_map(|raw| raw.stmt.as_ref().and_then(|s| s.node.as_ref())).any(|node| {
        match node {
            NodeEnum::IndexStmt(s) => s.concurrent,
            NodeEnum::DropStmt(s) => s.concurrent,
            NodeEnum::ReindexStmt(s) => s.params.iter().any(|p| {
                matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")
            }),
            NodeEnum::VacuumStmt(s) => s.is_vacuumcmd,
            NodeEnum::AlterTableStmt(s) => s.cmds.iter().any(|c| {
                matches!(&c.node, Some(NodeEnum::AlterTableCmd(cmd))
                    if matches!(cmd.def.as_ref().and_then(|d| d.node.as_ref()), Some(NodeEnum::PartitionCmd(p)) if p.concurrent))
            }),
            NodeEnum::TransactionStmt(_)
            | NodeEnum::CreatedbStmt(_)
            | NodeEnum::DropdbStmt(_)
            | NodeEnum::AlterSystemStmt(_)
            | NodeEnum::CreateTableSpaceStmt(_)
            | NodeEnum::DropTableSpaceStmt(_)
            | NodeEnum::CreateSubscriptionStmt(_)
            | NodeEnum::DropSubscriptionStmt(_) => true,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_lines_and_finds_non_transactional_statements() {
        let text = "-- header\nCREATE TABLE t (a text DEFAULT ';');\n\n/* c */ CREATE INDEX CONCURRENTLY i ON t (a);\nDO $$ BEGIN PERFORM 1; END $$;\n";
        let stmts = split(text).unwrap();
        assert_eq!(stmts.len(), 3);
        assert_eq!((stmts[0].line, stmts[0].needs_own_transaction), (2, false));
        assert!(stmts[0].sql.starts_with("CREATE TABLE"));
        assert_eq!((stmts[1].line, stmts[1].needs_own_transaction), (4, true));
        assert!(!stmts[2].needs_own_transaction);
        assert!(split("BEGIN; SELECT 1; COMMIT;").unwrap()[0].needs_own_transaction);
        assert!(split("VACUUM t").unwrap()[0].needs_own_transaction);
        assert!(!split("ANALYZE t").unwrap()[0].needs_own_transaction);
        assert!(split("SELEC 1").is_err());
    }
}
