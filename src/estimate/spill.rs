//! Sorts and hashes that outgrow production's memory: each one's memory on
//! the copy (EXPLAIN ANALYZE, `migrations::sql::explain`) grown by the rows
//! ratio of the table the statement's work scales with, against production's
//! `work_mem` (a sort) or `work_mem × hash_mem_multiplier` (a hash join's
//! table, a hashed aggregate). Past it, PostgreSQL writes the input to
//! temporary files and reads it back ("a sort or hash table ... will write
//! to temporary disk files", work_mem, PostgreSQL 15 and 18): slower than
//! any size ratio says.

use super::limits::Limits;
use crate::observe::relations::RelationSnapshot;
use crate::pg::RelationKind;
use crate::report::{format_bytes, MemoryNode, Range, Spill, StatementReport};

/// How much a statement that spills at production's size takes longer than
/// its scaled time: mid and high. From `make bench-estimate`'s one spill
/// (the demo's 0009 at 4×: a hashed aggregate needing ~2× its memory; it
/// took 1.46× the n·log n model's mid), rounded down for the mid and up for
/// the high end, as one measurement supports no finer figure.
const SPILL_MID: f64 = 1.3;
const SPILL_HIGH: f64 = 1.8;

/// How much an index build that outgrows maintenance_work_mem only at
/// production's size may take longer: its high end only. Its sort turns
/// external (merge passes over temporary files); no measurement here says
/// by how much, so the mid stays the model's.
const INDEX_SPILL_HIGH: f64 = 1.5;

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
                MemoryNode::IndexBuild => ("maintenance_work_mem".to_string(), limits.maintenance_bytes()),
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

/// An index build's sort at production's size: one entry per row of the
/// table, each an index tuple (what the index the statement built here
/// holds per row, at least 16 bytes: a header and one aligned key; on disk
/// a B-tree may hold less, deduplicating equal keys, which the sort does
/// not) plus the sort's own slot and allocation header (~40 bytes), for
/// production's rows of the table, against maintenance_work_mem. The whole
/// build shares that limit, however many workers it has ("Parallel utility
/// commands treat the resource limit maintenance_work_mem as a limit to be
/// applied to the entire utility command, regardless of the number of
/// parallel worker processes", max_parallel_maintenance_workers, PostgreSQL
/// 15 and 18).
pub fn index_build(
    stmt: &StatementReport,
    table: &str,
    ratio: f64,
    limits: &Limits,
    snapshots: Snapshots,
) -> Option<Spill> {
    let (before, after) = snapshots;
    let rows_here = before.get(table)?.rows.max(1) as f64;
    let built = stmt
        .locks
        .iter()
        .filter(|l| l.kind == RelationKind::Index && !before.contains(&l.relation))
        .filter_map(|l| after.get(&l.relation))
        .map(|r| r.main_bytes.max(0) as f64)
        .fold(None, |acc: Option<f64>, b| Some(acc.map_or(b, |a| a.max(b))))?;
    let per_row = SORT_SLOT_BYTES + (built / rows_here).max(MIN_INDEX_TUPLE_BYTES);
    let need = (rows_here * ratio * per_row) as u64;
    let limit = limits.maintenance_bytes();
    (need > limit).then(|| Spill {
        statement: stmt.query.clone(),
        node: MemoryNode::IndexBuild,
        need_bytes: need,
        limit_setting: "maintenance_work_mem".into(),
        limit_bytes: limit,
    })
}

/// The relations before and after the migration.
pub type Snapshots<'a> = (&'a RelationSnapshot, &'a RelationSnapshot);

/// A sort's slot (SortTuple, 24 bytes on 64-bit) and the tuple's allocation header.
const SORT_SLOT_BYTES: f64 = 40.0;
/// The smallest index tuple: an 8-byte header and one key aligned to 8.
const MIN_INDEX_TUPLE_BYTES: f64 = 16.0;

/// A statement's estimated time, widened when it spills in production but
/// did not here (a spill here is already in the measured time): a sort or
/// hash of a data change by the measured factors, an index build's high end
/// only.
pub fn widen(time: Range, stmt: &StatementReport, spills: &[Spill]) -> Range {
    if spills.is_empty() || stmt.memory.iter().any(|n| n.spilled) {
        return time;
    }
    let f = |v: u64, k: f64| (v as f64 * k).round() as u64;
    match spills.iter().all(|s| s.node == MemoryNode::IndexBuild) {
        true => Range { high: f(time.high, INDEX_SPILL_HIGH), ..time },
        false => Range { low: time.low, mid: f(time.mid, SPILL_MID), high: f(time.high, SPILL_HIGH) },
    }
}

/// The basis line of one spill.
pub fn basis(s: &Spill, limits: &Limits, widened: bool) -> String {
    let limit = match s.node {
        MemoryNode::Sort => format!("work_mem ({})", limits.work_mem.value),
        MemoryNode::Hash | MemoryNode::HashAggregate => limits.describe_hash(),
        MemoryNode::IndexBuild => format!("maintenance_work_mem ({})", limits.maintenance_work_mem.value),
    };
    let then = match (widened, s.node) {
        (true, MemoryNode::IndexBuild) => format!("; its time's high end ×{INDEX_SPILL_HIGH}"),
        (true, _) => format!("; its time mid ×{SPILL_MID}, high ×{SPILL_HIGH}"),
        (false, _) => "; it spilled here too, which its measured time includes".into(),
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
        MemoryNode::IndexBuild => "index build's sort",
    }
}
