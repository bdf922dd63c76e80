//! What the parse tree (pg_query) says of one statement of the corpus:
//! whether it is a query the check prepares (SELECT, INSERT, UPDATE,
//! DELETE, MERGE, with or without WITH) or a utility statement it ignores,
//! and what each INSERT in it writes to.

use pg_query::protobuf::{InsertStmt, SelectStmt, SetOperation, WithClause};
use pg_query::NodeEnum;

use crate::pg::quote_ident;

/// An INSERT of a query: its table and the columns it supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertTarget {
    /// The table as the statement names it, quoted for `to_regclass`
    /// (`"public"."orders"`, or `"orders"` to be found on the search path).
    pub table: String,
    pub supplies: Supplied,
}

/// The columns an INSERT gives values for; every other column gets its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Supplied {
    /// Those of its column list.
    Named(Vec<String>),
    /// No column list: the table's first N (`DEFAULT VALUES`: none).
    First(usize),
    /// No column list and a `SELECT *`: not known from the text.
    Unknown,
}

/// A statement, classified.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A query the check prepares, with the INSERTs in it (the statement's
    /// own, and those of data-modifying WITH queries).
    Query(Vec<InsertTarget>),
    /// Anything else (SET, BEGIN, CREATE, COPY, CALL, ...): not checked.
    Utility,
}

/// Classifies one statement; pg_query's message when it does not parse.
///
/// A corpus holds up to hundreds of thousands of statements, and the parse
/// tree (built in C, encoded and decoded as protobuf) costs about five times
/// what classifying a statement does: so it is built only for a query that
/// can hold an INSERT, one whose text has the keyword (keywords are ASCII,
/// in any case). Classified as libpg_query's `is_utility_stmt` does: a
/// query is a SELECT, INSERT, UPDATE, DELETE or MERGE statement.
pub fn parse(sql: &str) -> Result<Parsed, String> {
    match pg_query::is_utility_stmt(sql) {
        Ok(utility) if utility.contains(&true) => Ok(Parsed::Utility),
        Ok(_) if !has_insert_keyword(sql) => Ok(Parsed::Query(Vec::new())),
        // With pg_query's own message when it does not parse.
        _ => from_tree(sql),
    }
}

/// [`parse`] from the parse tree, whatever the statement.
fn from_tree(sql: &str) -> Result<Parsed, String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| e.to_string())?;
    let mut inserts = Vec::new();
    for raw in &parsed.protobuf.stmts {
        match raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            Some(
                node @ (NodeEnum::SelectStmt(_)
                | NodeEnum::InsertStmt(_)
                | NodeEnum::UpdateStmt(_)
                | NodeEnum::DeleteStmt(_)
                | NodeEnum::MergeStmt(_)),
            ) => collect_inserts(node, &mut inserts),
            _ => return Ok(Parsed::Utility),
        }
    }
    Ok(Parsed::Query(inserts))
}

/// Whether `insert` appears in `sql`, in any case.
fn has_insert_keyword(sql: &str) -> bool {
    sql.as_bytes().windows(6).any(|w| w.eq_ignore_ascii_case(b"insert"))
}

/// Whether `sql` parses as a utility statement (not a query).
pub fn is_utility(sql: &str) -> bool {
    matches!(parse(sql), Ok(Parsed::Utility))
}

/// The INSERTs of `node` and of its WITH queries, outermost first.
fn collect_inserts(node: &NodeEnum, out: &mut Vec<InsertTarget>) {
    let with = match node {
        NodeEnum::InsertStmt(i) => {
            out.extend(insert_target(i));
            &i.with_clause
        }
        NodeEnum::SelectStmt(s) => &s.with_clause,
        NodeEnum::UpdateStmt(u) => &u.with_clause,
        NodeEnum::DeleteStmt(d) => &d.with_clause,
        NodeEnum::MergeStmt(m) => &m.with_clause,
        _ => return,
    };
    for cte in with.iter().flat_map(|w: &WithClause| &w.ctes) {
        if let Some(NodeEnum::CommonTableExpr(c)) = &cte.node {
            if let Some(query) = c.ctequery.as_ref().and_then(|q| q.node.as_ref()) {
                collect_inserts(query, out);
            }
        }
    }
}

fn insert_target(i: &InsertStmt) -> Option<InsertTarget> {
    let rv = i.relation.as_ref()?;
    // Quoted as parsed (names already folded to lower case unless quoted),
    // so to_regclass finds the same table the statement does.
    let table = match rv.schemaname.is_empty() {
        true => quote_ident(&rv.relname),
        false => format!("{}.{}", quote_ident(&rv.schemaname), quote_ident(&rv.relname)),
    };
    let named: Vec<String> = i
        .cols
        .iter()
        .filter_map(|c| match &c.node {
            // `INSERT INTO t (point.x, tags[1])` writes columns point and tags.
            Some(NodeEnum::ResTarget(r)) => Some(r.name.clone()),
            _ => None,
        })
        .collect();
    let supplies = match (named.is_empty(), i.select_stmt.as_ref().and_then(|s| s.node.as_ref())) {
        (false, _) => Supplied::Named(named),
        (true, None) => Supplied::First(0),
        (true, Some(NodeEnum::SelectStmt(s))) => values_supplied(s).map_or(Supplied::Unknown, Supplied::First),
        (true, Some(_)) => Supplied::Unknown,
    };
    Some(InsertTarget { table, supplies })
}

/// How many values each row of a VALUES list or SELECT gives; None for a `*`.
fn values_supplied(s: &SelectStmt) -> Option<usize> {
    if let Some(row) = s.values_lists.first() {
        return match &row.node {
            Some(NodeEnum::List(l)) => Some(l.items.len()),
            _ => None,
        };
    }
    if s.op != SetOperation::SetopNone as i32 {
        // Every branch of a UNION has as many columns as the first.
        return s.larg.as_deref().and_then(values_supplied);
    }
    let star = s.target_list.iter().any(|t| match &t.node {
        Some(NodeEnum::ResTarget(r)) => match r.val.as_ref().and_then(|v| v.node.as_ref()) {
            Some(NodeEnum::ColumnRef(c)) => c.fields.iter().any(|f| matches!(f.node, Some(NodeEnum::AStar(_)))),
            _ => false,
        },
        _ => false,
    });
    (!star).then_some(s.target_list.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inserts(sql: &str) -> Vec<InsertTarget> {
        match parse(sql).unwrap() {
            Parsed::Query(i) => i,
            Parsed::Utility => panic!("{sql} is a query"),
        }
    }

    fn target(table: &str, supplies: Supplied) -> InsertTarget {
        InsertTarget { table: table.into(), supplies }
    }

    #[test]
    fn queries_and_utility_statements() {
        for sql in [
            "SELECT 1",
            "UPDATE t SET a = $1 WHERE id = $2",
            "DELETE FROM t WHERE id = $1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "VALUES (1)",
        ] {
            assert!(matches!(parse(sql), Ok(Parsed::Query(_))), "{sql}");
        }
        for sql in ["SET search_path = app", "BEGIN", "CREATE TABLE t (a int)", "COPY t FROM STDIN", "CALL p()"] {
            assert!(matches!(parse(sql), Ok(Parsed::Utility)), "{sql}");
        }
        // libpg_query parses pg_stat_statements' text of date '2026-01-01',
        // which the server refuses: the check sorts that out.
        assert!(parse("SELECT date $1").is_ok());
        assert!(parse("SELECT FROM WHERE (").is_err());
    }

    #[test]
    fn the_tree_is_built_only_where_it_changes_nothing() {
        for sql in [
            "SELECT 1",
            "SELECT a INTO new_table FROM t",
            "InSeRt INTO t (a) VALUES ($1)",
            "WITH m AS (insert INTO archive SELECT * FROM t RETURNING id) SELECT count(*) FROM m",
            "SELECT 'insert' FROM t",
            "EXPLAIN INSERT INTO t VALUES (1)",
            "CREATE TABLE inserts (a int)",
            "COPY t FROM STDIN",
            "SELECT FROM WHERE (",
            "",
        ] {
            assert_eq!(parse(sql), from_tree(sql), "{sql}");
        }
    }

    #[test]
    fn what_an_insert_supplies() {
        assert_eq!(
            inserts("INSERT INTO public.orders (user_id, Status) VALUES ($1, $2)"),
            [target("\"public\".\"orders\"", Supplied::Named(vec!["user_id".into(), "status".into()]))]
        );
        assert_eq!(
            inserts("INSERT INTO \"Orders\" VALUES ($1, $2), ($3, $4)"),
            [target("\"Orders\"", Supplied::First(2))]
        );
        assert_eq!(inserts("INSERT INTO t DEFAULT VALUES"), [target("\"t\"", Supplied::First(0))]);
        assert_eq!(
            inserts("INSERT INTO t SELECT a, b FROM s UNION SELECT 1, 2"),
            [target("\"t\"", Supplied::First(2))]
        );
        assert_eq!(inserts("INSERT INTO t SELECT * FROM s"), [target("\"t\"", Supplied::Unknown)]);
        assert_eq!(
            inserts("INSERT INTO t (p.x, tags[1]) VALUES (1, 'a')"),
            [target("\"t\"", Supplied::Named(vec!["p".into(), "tags".into()]))]
        );
        assert_eq!(
            inserts("WITH moved AS (INSERT INTO archive (id) SELECT id FROM t RETURNING id) DELETE FROM t USING moved"),
            [target("\"archive\"", Supplied::Named(vec!["id".into()]))]
        );
        assert!(inserts("SELECT 1").is_empty());
    }
}
