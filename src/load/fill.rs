//! Makes the workload's statements replayable on the copy, before the first
//! migration: the tables each reads or writes (canonical names), whether it
//! writes, and for each `$n` the values to fill it with, sampled from the
//! column the parse tree says it is compared with, assigned to or inserted
//! into. A statement that cannot be filled is [`NotReplayed`], with the reason.
//!
//! The sampled values are production's data (the copy is production's
//! dump): they are held here to be sent to the copy, and never printed,
//! logged or reported; only their counts are.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio_postgres::Client;

use super::workload::{Segment, Variable, Workload, WorkloadStatement};
use crate::catalog;
use crate::error::{ErrorKind, Result};
use crate::pg::{format_ident, quote_ident, quote_literal};

/// What LIMIT $n and OFFSET $n are filled with: a page of an app's list.
const LIMIT: &str = "20";
const OFFSET: &str = "0";

/// A statement of the workload, ready to replay.
#[derive(Clone)]
pub struct Replayable {
    /// The statement as in the workload (shown in reports).
    pub sql: String,
    pub line: usize,
    pub rate: Option<f64>,
    /// Relations it reads or writes, canonical `schema.name` (`format('%I.%I')`).
    pub tables: Vec<String>,
    /// INSERT/UPDATE/DELETE/MERGE, or SELECT ... FOR UPDATE/SHARE.
    pub writes: bool,
    segments: Vec<Segment>,
    variables: Vec<(String, Variable)>,
    fillers: Vec<(u32, Filler)>,
}

/// What fills one `$n`.
#[derive(Clone)]
enum Filler {
    /// Values sampled from the copy (production's: never shown).
    Sampled(Arc<Vec<String>>),
    /// A constant (LIMIT, OFFSET).
    Constant(&'static str),
}

/// Counts only: the sampled values must not reach a log through `{:?}`.
impl std::fmt::Debug for Replayable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let filled: Vec<String> = self
            .fillers
            .iter()
            .map(|(n, filler)| match filler {
                Filler::Sampled(values) => format!("${n}: {} sampled value(s)", values.len()),
                Filler::Constant(c) => format!("${n}: {c}"),
            })
            .collect();
        f.debug_struct("Replayable")
            .field("sql", &self.sql)
            .field("line", &self.line)
            .field("rate", &self.rate)
            .field("tables", &self.tables)
            .field("writes", &self.writes)
            .field("filled", &filled)
            .finish()
    }
}

impl Replayable {
    /// The statement with every parameter replaced by a literal: sampled
    /// values (quoted as string literals, which the server casts to the
    /// column's type), constants, `\set` values; for the simple query protocol.
    pub fn render(&self, rng: &mut impl rand::Rng) -> String {
        let mut out = String::with_capacity(self.sql.len() + 16);
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Param(n) => match self.fillers.iter().find(|(m, _)| m == n).map(|(_, f)| f) {
                    Some(Filler::Sampled(values)) => {
                        out.push_str(&quote_literal(&values[rng.random_range(0..values.len())]))
                    }
                    Some(Filler::Constant(c)) => out.push_str(c),
                    // prepare() fills every $n of a Replayable.
                    None => out.push_str("NULL"),
                },
                Segment::Variable(name) => {
                    match self.variables.iter().rev().find(|(v, _)| v == name).map(|(_, v)| v) {
                        // In parentheses, so `x - :v` never becomes a `--` comment.
                        Some(Variable::Random(lo, hi)) => match rng.random_range(*lo..=*hi) {
                            v if v < 0 => out.push_str(&format!("({v})")),
                            v => out.push_str(&v.to_string()),
                        },
                        Some(Variable::Constant(c)) => out.push_str(c),
                        None => out.push_str("NULL"),
                    }
                }
            }
        }
        out
    }
}

/// A statement of the workload that is not replayed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReplayed {
    pub sql: String,
    pub line: usize,
    pub reason: String,
}

/// Resolves tables and samples each `$n`'s values from the copy (before the
/// first migration). A failed catalog read is an error; a statement that
/// cannot be filled is a [`NotReplayed`]. Each column is sampled once.
pub async fn prepare(client: &Client, workload: &Workload) -> Result<(Vec<Replayable>, Vec<NotReplayed>)> {
    let mut samples: HashMap<(String, String), Arc<Vec<String>>> = HashMap::new();
    let (mut replayable, mut not_replayed) = (Vec::new(), Vec::new());
    for s in &workload.statements {
        let prepared = prepare_one(client, s, &mut samples).await.map_err(|e| {
            ErrorKind::CatalogReadFailed.because(
                format!(
                    "cannot read the copy to fill the parameters of the workload's statement at line {} of {} \
                     (load.queries)",
                    s.line,
                    workload.path.display()
                ),
                e,
            )
        })?;
        match prepared {
            Ok(r) => replayable.push(r),
            Err(reason) => not_replayed.push(NotReplayed { sql: s.sql.clone(), line: s.line, reason }),
        }
    }
    Ok((replayable, not_replayed))
}

type Prepared = std::result::Result<Replayable, String>;

async fn prepare_one(
    client: &Client,
    s: &WorkloadStatement,
    samples: &mut HashMap<(String, String), Arc<Vec<String>>>,
) -> std::result::Result<Prepared, tokio_postgres::Error> {
    let tree = match read_tree(&s.parsable()) {
        Ok(tree) => tree,
        Err(reason) => return Ok(Err(reason)),
    };
    let mut tables = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for range in tree.ranges.iter().filter(|r| !(r.schema.is_empty() && tree.ctes.contains(&r.name))) {
        let written = match range.schema.is_empty() {
            true => quote_ident(&range.name),
            false => format!("{}.{}", quote_ident(&range.schema), quote_ident(&range.name)),
        };
        let Some(canonical) = catalog::canonical_name(client, &written).await? else {
            return Ok(Err(format!("table {} does not exist on the copy", shown(range))));
        };
        names.insert(range.name.clone(), canonical.clone());
        if let Some(alias) = &range.alias {
            names.insert(alias.clone(), canonical.clone());
        }
        if !tables.contains(&canonical) {
            tables.push(canonical);
        }
    }
    let mut fillers = Vec::new();
    for n in s.params() {
        let Some(binding) = tree.bindings.iter().find(|(m, _)| *m == n).map(|(_, b)| b) else {
            return Ok(Err(format!("${n} is not compared with a column")));
        };
        let filler = match binding {
            Binding::Limit => Filler::Constant(LIMIT),
            Binding::Offset => Filler::Constant(OFFSET),
            Binding::Column { qualifier, column } => {
                let Some((table, column)) = column_of(client, &names, &tables, qualifier, column).await? else {
                    return Ok(Err(format!("${n} is compared with {column}, which no table of the statement has")));
                };
                match sampled(client, samples, &table, &column).await? {
                    values if values.is_empty() => {
                        return Ok(Err(format!("{table}.{} has no non-null value on the copy", format_ident(&column))))
                    }
                    values => Filler::Sampled(values),
                }
            }
        };
        fillers.push((n, filler));
    }
    Ok(Ok(Replayable {
        sql: s.sql.clone(),
        line: s.line,
        rate: s.rate,
        tables,
        writes: tree.writes,
        segments: s.segments.clone(),
        variables: s.variables.clone(),
        fillers,
    }))
}

/// The table as the statement names it.
fn shown(range: &Range) -> String {
    match range.schema.is_empty() {
        true => range.name.clone(),
        false => format!("{}.{}", range.schema, range.name),
    }
}

/// The (canonical table, column) a binding names: through the qualifier's
/// table or alias; without one, the first table of the statement that has
/// the column. A column given by position (an INSERT without a column
/// list) is `#N`.
async fn column_of(
    client: &Client,
    names: &HashMap<String, String>,
    tables: &[String],
    qualifier: &Option<String>,
    column: &str,
) -> std::result::Result<Option<(String, String)>, tokio_postgres::Error> {
    let candidates: Vec<&String> = match qualifier {
        Some(q) => names.get(q).into_iter().collect(),
        None => tables.iter().collect(),
    };
    for table in candidates {
        if let Some(position) = column.strip_prefix('#').and_then(|p| p.parse::<usize>().ok()) {
            let columns = catalog::insert_columns(client, table).await?.map(|(_, c)| c).unwrap_or_default();
            return Ok(columns.get(position).map(|c| (table.clone(), c.name.clone())));
        }
        if catalog::table_columns(client, table).await?.iter().any(|c| c == column) {
            return Ok(Some((table.clone(), column.to_string())));
        }
    }
    Ok(None)
}

/// The sampled values of `table.column`, read once.
async fn sampled(
    client: &Client,
    samples: &mut HashMap<(String, String), Arc<Vec<String>>>,
    table: &str,
    column: &str,
) -> std::result::Result<Arc<Vec<String>>, tokio_postgres::Error> {
    let key = (table.to_string(), column.to_string());
    if let Some(values) = samples.get(&key) {
        return Ok(values.clone());
    }
    let values = Arc::new(catalog::column_sample(client, table, column).await?);
    samples.insert(key, values.clone());
    Ok(values)
}

/// A relation a statement names.
#[derive(Debug, Clone, PartialEq)]
struct Range {
    schema: String,
    name: String,
    alias: Option<String>,
}

/// What a `$n` is bound to.
#[derive(Debug, Clone, PartialEq)]
enum Binding {
    /// A column, through the table or alias that qualifies it (if any);
    /// `#N` for the Nth column of an INSERT without a column list.
    Column {
        qualifier: Option<String>,
        column: String,
    },
    Limit,
    Offset,
}

/// What the parse tree says of a statement.
#[derive(Debug, Default)]
struct Tree {
    ranges: Vec<Range>,
    /// Names of WITH queries (not tables).
    ctes: Vec<String>,
    bindings: Vec<(u32, Binding)>,
    writes: bool,
}

/// The tree of `sql`, read as JSON (pg_query's protobuf types serialize to
/// it), so every node is visited without listing every node type.
fn read_tree(sql: &str) -> std::result::Result<Tree, String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| format!("does not parse: {e}"))?;
    let mut tree = Tree::default();
    for raw in &parsed.protobuf.stmts {
        match raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            Some(
                pg_query::NodeEnum::SelectStmt(_)
                | pg_query::NodeEnum::InsertStmt(_)
                | pg_query::NodeEnum::UpdateStmt(_)
                | pg_query::NodeEnum::DeleteStmt(_)
                | pg_query::NodeEnum::MergeStmt(_),
            ) => {}
            _ => return Err("is not a query or a write (SET, BEGIN, DDL, ...)".into()),
        }
    }
    let json = serde_json::to_value(&parsed.protobuf).map_err(|e| format!("cannot be read: {e}"))?;
    walk(&json, &mut tree);
    Ok(tree)
}

/// Visits every object of the tree.
fn walk(v: &Value, tree: &mut Tree) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk(i, tree)),
        Value::Object(fields) => {
            for (key, value) in fields {
                // `FOR UPDATE OF u` names an alias of the FROM clause, as a RangeVar.
                if key == "LockingClause" {
                    continue;
                }
                visit(key, value, tree);
                walk(value, tree);
            }
        }
        _ => {}
    }
}

/// One node of type `key`.
fn visit(key: &str, v: &Value, tree: &mut Tree) {
    match key {
        "RangeVar" => tree.ranges.extend(range(v)),
        "CommonTableExpr" => tree.ctes.extend(text(v, "ctename")),
        "InsertStmt" => {
            tree.writes = true;
            insert_bindings(v, tree);
        }
        "UpdateStmt" => {
            tree.writes = true;
            tree.ranges.extend(range(&v["relation"]));
            target_bindings(&v["target_list"], target_name(v), tree);
        }
        "DeleteStmt" | "MergeStmt" => {
            tree.writes = true;
            tree.ranges.extend(range(&v["relation"]));
        }
        "SelectStmt" => {
            tree.writes |= v["locking_clause"].as_array().is_some_and(|l| !l.is_empty());
            tree.bindings.extend(param(&v["limit_count"]).map(|n| (n, Binding::Limit)));
            tree.bindings.extend(param(&v["limit_offset"]).map(|n| (n, Binding::Offset)));
        }
        "AExpr" => expression_bindings(v, tree),
        _ => {}
    }
}

/// INSERT's and UPDATE's own relation is a RangeVar message, not a node.
fn target_name(v: &Value) -> Option<String> {
    let r = range(&v["relation"])?;
    Some(r.alias.unwrap_or(r.name))
}

/// `INSERT INTO t (a, b) VALUES ($1, $2)` (by position), and `ON CONFLICT DO UPDATE SET a = $3`.
fn insert_bindings(v: &Value, tree: &mut Tree) {
    tree.ranges.extend(range(&v["relation"]));
    let target = target_name(v);
    let columns: Vec<Option<String>> =
        v["cols"].as_array().into_iter().flatten().map(|c| node(c).and_then(|(_, r)| text(r, "name"))).collect();
    let values = node(&v["select_stmt"]).map(|(_, s)| &s["values_lists"]);
    for row in values.and_then(Value::as_array).into_iter().flatten() {
        let items = node(row).map(|(_, l)| &l["items"]).and_then(Value::as_array);
        for (i, item) in items.into_iter().flatten().enumerate() {
            let column = match columns.is_empty() {
                true => Some(format!("#{i}")),
                false => columns.get(i).cloned().flatten(),
            };
            if let (Some(n), Some(column)) = (param(item), column) {
                tree.bindings.push((n, Binding::Column { qualifier: target.clone(), column }));
            }
        }
    }
    target_bindings(&v["on_conflict_clause"]["target_list"], target, tree);
}

/// `SET col = $n` of an UPDATE or an ON CONFLICT DO UPDATE.
fn target_bindings(list: &Value, target: Option<String>, tree: &mut Tree) {
    for item in list.as_array().into_iter().flatten() {
        let Some(("ResTarget", r)) = node(item) else { continue };
        if let (Some(n), Some(column)) = (param(&r["val"]), text(r, "name")) {
            tree.bindings.push((n, Binding::Column { qualifier: target.clone(), column }));
        }
    }
}

/// `col op $n`, `$n op col`, `col IN ($1, $2)`, `col BETWEEN $1 AND $2`, `col LIKE $1`.
fn expression_bindings(v: &Value, tree: &mut Tree) {
    // AExprKind: 1 operator, 7 IN, 8 LIKE, 9 ILIKE, 11 to 14 the BETWEENs.
    let kind = v["kind"].as_i64().unwrap_or_default();
    let (left, right) = (&v["lexpr"], &v["rexpr"]);
    match kind {
        1 | 8 | 9 => {
            if let (Some(c), Some(n)) = (column(left), param(right)) {
                tree.bindings.push((n, c));
            } else if let (Some(n), Some(c)) = (param(left), column(right)) {
                tree.bindings.push((n, c));
            }
        }
        7 | 11..=14 => {
            let Some(c) = column(left) else { return };
            let items = node(right).filter(|(k, _)| *k == "List").and_then(|(_, l)| l["items"].as_array());
            for n in items.into_iter().flatten().filter_map(param) {
                tree.bindings.push((n, c.clone()));
            }
        }
        _ => {}
    }
}

/// The type and body of a `Node` (`{"node": {"Type": {...}}}`).
fn node(v: &Value) -> Option<(&str, &Value)> {
    let (k, body) = v.get("node")?.as_object()?.iter().next()?;
    Some((k.as_str(), body))
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)?.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// `$n`, or `$n::type`.
fn param(v: &Value) -> Option<u32> {
    match node(v)? {
        ("ParamRef", p) => p["number"].as_u64().and_then(|n| u32::try_from(n).ok()),
        ("TypeCast", c) => param(&c["arg"]),
        _ => None,
    }
}

/// `col`, `t.col`, `s.t.col`, or any of them cast.
fn column(v: &Value) -> Option<Binding> {
    match node(v)? {
        ("ColumnRef", c) => {
            let fields: Vec<String> = c["fields"]
                .as_array()?
                .iter()
                .map(|f| match node(f) {
                    Some(("String", s)) => text(s, "sval"),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            let (column, rest) = fields.split_last()?;
            Some(Binding::Column { qualifier: rest.last().cloned(), column: column.clone() })
        }
        ("TypeCast", c) => column(&c["arg"]),
        _ => None,
    }
}

/// A RangeVar (as a node's body, or a statement's relation).
fn range(v: &Value) -> Option<Range> {
    Some(Range {
        schema: text(v, "schemaname").unwrap_or_default(),
        name: text(v, "relname")?,
        alias: v.get("alias").and_then(|a| text(a, "aliasname")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings(sql: &str) -> Vec<(u32, Binding)> {
        read_tree(sql).unwrap().bindings
    }

    fn col(q: Option<&str>, c: &str) -> Binding {
        Binding::Column { qualifier: q.map(str::to_string), column: c.to_string() }
    }

    #[test]
    fn each_shape_of_parameter_is_bound_to_its_column() {
        assert_eq!(
            bindings("SELECT * FROM orders o WHERE o.user_id = $1 AND $2 = status AND total < $3::numeric"),
            [(1, col(Some("o"), "user_id")), (2, col(None, "status")), (3, col(None, "total"))]
        );
        assert_eq!(
            bindings("SELECT 1 FROM t WHERE a IN ($1, $2) AND b BETWEEN $3 AND $4 LIMIT $5 OFFSET $6"),
            [
                (5, Binding::Limit),
                (6, Binding::Offset),
                (1, col(None, "a")),
                (2, col(None, "a")),
                (3, col(None, "b")),
                (4, col(None, "b"))
            ]
        );
        assert_eq!(
            bindings("UPDATE users u SET last_seen_at = $1 WHERE id = $2"),
            [(1, col(Some("u"), "last_seen_at")), (2, col(None, "id"))]
        );
        assert_eq!(
            bindings("INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT (a) DO UPDATE SET b = $3"),
            [(1, col(Some("t"), "a")), (2, col(Some("t"), "b")), (3, col(Some("t"), "b"))]
        );
        assert_eq!(bindings("INSERT INTO t VALUES (1, $1)"), [(1, col(Some("t"), "#1"))]);
        assert_eq!(bindings("SELECT $1 + 1 AS x"), []);
    }

    #[test]
    fn tables_writes_and_with_queries() {
        let tree =
            read_tree("WITH x AS (SELECT id FROM app.users) SELECT * FROM x JOIN orders o ON o.uid = x.id").unwrap();
        let mut names: Vec<(&str, &str)> = tree.ranges.iter().map(|r| (r.schema.as_str(), r.name.as_str())).collect();
        names.sort();
        assert_eq!(names, [("", "orders"), ("", "x"), ("app", "users")]);
        assert_eq!((tree.ctes, tree.writes), (vec!["x".to_string()], false));
        let locking = read_tree("SELECT * FROM t x WHERE id = $1 FOR UPDATE OF x").unwrap();
        assert_eq!((locking.ranges.len(), locking.writes), (1, true), "OF x names an alias, not a table");
        assert!(read_tree("DELETE FROM t WHERE id = $1").unwrap().writes);
        assert!(read_tree("SET x = 1").unwrap_err().contains("not a query"));
    }
}
