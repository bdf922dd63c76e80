//! The memory a statement's sorts and hashes used, read by running it under
//! `EXPLAIN (ANALYZE, FORMAT JSON)` instead of bare, when an estimate asks
//! for it: EXPLAIN ANALYZE executes the statement, with all its effects
//! ("the statement is actually executed", EXPLAIN, PostgreSQL 15 and 18),
//! and reports each node's peak memory. The planner's own row estimates
//! cannot stand in: for an aggregate over a UNION ALL it assumes 200
//! groups (the demo's 0009 had 30,000 at scale 1.5).
//!
//! Only data changes (UPDATE, DELETE, INSERT, MERGE) are explained: they
//! are where a migration sorts and hashes, and none returns what a
//! migration needs. `TIMING OFF` keeps the per-node clock reads, the costly
//! part of ANALYZE, out of the measured time; `SUMMARY OFF` drops the
//! planning and execution times, which rehearse measures itself.

use pg_query::NodeEnum;
use serde_json::Value;
use tokio_postgres::SimpleQueryMessage;

use crate::report::{MemoryNode, NodeMemory};

/// Whether `sql` is a data change worth explaining.
pub fn explainable(sql: &str) -> bool {
    let Ok(parsed) = pg_query::parse(sql, 0) else { return false };
    let mut nodes = parsed.protobuf.stmts.iter().filter_map(|s| s.stmt.as_ref().and_then(|n| n.node.as_ref()));
    matches!(
        (nodes.next(), nodes.next()),
        (
            Some(NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_) | NodeEnum::InsertStmt(_) | NodeEnum::MergeStmt(_)),
            None
        )
    )
}

/// `sql` run under EXPLAIN ANALYZE.
pub fn wrap(sql: &str) -> String {
    format!("{}{sql}", crate::catalog::EXPLAIN_MEMORY)
}

/// What the explained statement did: the rows it changed (the rows its
/// ModifyTable node was given; EXPLAIN has no CommandComplete count) and
/// its sorts' and hashes' memory.
pub fn read(messages: &[SimpleQueryMessage]) -> (u64, Vec<NodeMemory>) {
    let text = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    let Some(plan) = text.and_then(|t| serde_json::from_str::<Value>(&t).ok()) else { return (0, Vec::new()) };
    let Some(top) = plan.get(0).and_then(|p| p.get("Plan")) else { return (0, Vec::new()) };
    let rows = match top.get("Node Type").and_then(Value::as_str) {
        Some("ModifyTable") => children(top).map(|c| figure(c, "Actual Rows") * figure(c, "Actual Loops").max(1)).sum(),
        _ => 0,
    };
    let mut out = Vec::new();
    walk(top, &mut out);
    (rows, out)
}

fn children(node: &Value) -> impl Iterator<Item = &Value> {
    node.get("Plans").and_then(Value::as_array).into_iter().flatten()
}

fn figure(node: &Value, key: &str) -> u64 {
    node.get(key).and_then(Value::as_f64).map_or(0, |v| v.max(0.0) as u64)
}

/// Each sort and hash of the plan, with the memory it needed: what it used
/// in memory, or, when it spilled, that plus what it wrote to disk.
fn walk(node: &Value, out: &mut Vec<NodeMemory>) {
    let kind = node.get("Node Type").and_then(Value::as_str).unwrap_or("");
    let hashed = node.get("Strategy").and_then(Value::as_str) == Some("Hashed");
    let found = match kind {
        // "Sort Space Used" is kB in memory, or kB on disk when "Sort Space Type" is Disk.
        "Sort" => Some((MemoryNode::Sort, figure(node, "Sort Space Used"), sort_spilled(node))),
        "Hash" => {
            // A hash join split into batches held one batch in memory at a time.
            let batches = figure(node, "Hash Batches").max(1);
            Some((MemoryNode::Hash, figure(node, "Peak Memory Usage") * batches, batches > 1))
        }
        "Aggregate" if hashed => {
            let disk = figure(node, "Disk Usage");
            Some((MemoryNode::HashAggregate, figure(node, "Peak Memory Usage") + disk, disk > 0))
        }
        _ => None,
    };
    if let Some((node_kind, kb, spilled)) = found {
        out.push(NodeMemory { node: node_kind, need_bytes: kb * 1024, spilled });
    }
    for child in children(node) {
        walk(child, out);
    }
}

fn sort_spilled(node: &Value) -> bool {
    node.get("Sort Space Type").and_then(Value::as_str) == Some("Disk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_data_changes_are_explained() {
        assert!(explainable("UPDATE t SET a = 1"));
        assert!(explainable("INSERT INTO t SELECT * FROM u"));
        assert!(!explainable("CREATE INDEX ON t (a)"));
        assert!(!explainable("SELECT 1"));
        assert!(!explainable("DO $$ BEGIN UPDATE t SET a = 1; END $$"));
    }
}
