//! Sorts and hashes that outgrow production's memory: each one's memory on
//! the copy (EXPLAIN ANALYZE, `migrations::sql::explain`) grown by the rows
//! ratio of the table the statement's work scales with, against production's
//! `work_mem` (a sort) or `work_mem × hash_mem_multiplier` (a hash join's
//! table, a hashed aggregate). Past it, PostgreSQL writes the input to
//! temporary files and reads it back ("a sort or hash table ... will write
//! to temporary disk files", work_mem, PostgreSQL 15 and 18): slower than
//! any size ratio says.

use super::limits::Limits;
use crate::report::{format_bytes, MemoryNode, Range, Spill, StatementReport};

/// How much a statement that spills at production's size takes longer than
/// its scaled time: mid and high. From `make bench-estimate`'s one spill
/// (the demo's 0009 at 4×: a hashed aggregate needing ~2× its memory; it
/// took 1.46× the n·log n model's mid), rounded down for the mid and up for
/// the high end, as one measurement supports no finer figure.
const SPILL_MID: f64 = 1.3;
const SPILL_HIGH: f64 = 1.8;

/// The sorts and hashes of `stmt` that spill at production's size, whose
/// rows are `ratio` times the copy's.
pub fn spills(stmt: &StatementReport, ratio: f64, limits: &Limits) -> Vec<Spill> {
    stmt.memory
        .iter()
        .filter_map(|n| {
            let need = (n.need_bytes as f64 * ratio) as u64;
            let (setting, limit) = match n.node {
                MemoryNode::Sort => ("work_mem".to_string(), limits.sort_bytes()),
                MemoryNode::Hash | MemoryNode::HashAggregate => {
                    ("work_mem × hash_mem_multiplier".to_string(), limits.hash_bytes())
                }
            };
            (need > limit).then(|| Spill {
                statement: stmt.query.clone(),
                node: n.node,
                need_bytes: need,
                limit_setting: setting,
                limit_bytes: limit,
            })
        })
        .collect()
}

/// A statement's estimated time, widened when it spills in production but
/// did not here (a spill here is already in the measured time).
pub fn widen(time: Range, stmt: &StatementReport, spills: &[Spill]) -> Range {
    if spills.is_empty() || stmt.memory.iter().any(|n| n.spilled) {
        return time;
    }
    let f = |v: u64, k: f64| (v as f64 * k).round() as u64;
    Range { low: time.low, mid: f(time.mid, SPILL_MID), high: f(time.high, SPILL_HIGH) }
}

/// The basis line of one spill.
pub fn basis(s: &Spill, limits: &Limits, widened: bool) -> String {
    let limit = match s.node {
        MemoryNode::Sort => format!("work_mem ({})", limits.work_mem.value),
        MemoryNode::Hash | MemoryNode::HashAggregate => limits.describe_hash(),
    };
    let then = match widened {
        true => format!("; its time mid ×{SPILL_MID}, high ×{SPILL_HIGH}"),
        false => "; it spilled here too, which its measured time includes".into(),
    };
    format!(
        "`{}`: its {} needs about {} at production's size, over {limit}: it spills to disk there{then}",
        crate::sys::text::one_line(&s.statement, 80),
        label(s.node),
        format_bytes(s.need_bytes),
    )
}

fn label(node: MemoryNode) -> &'static str {
    match node {
        MemoryNode::Sort => "sort",
        MemoryNode::Hash => "hash join's table",
        MemoryNode::HashAggregate => "hashed aggregate",
    }
}
