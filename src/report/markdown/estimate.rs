//! The notes under the production-scale table: sorts and hashes that spill
//! to disk at production's size, and statements that reach production's
//! statement_timeout.

use std::fmt::Write;

use super::put;
use crate::report::{format_bytes, format_ms, range_ms, Estimate, MemoryNode};
use crate::sys::text::one_line;

/// One migration's notes, indented under its basis line.
pub fn notes(w: &mut String, e: &Estimate) {
    for s in &e.spills {
        put!(
            w,
            "  - Spills to disk in production: `{}`: its {} needs about {}, over {} ({})",
            one_line(&s.statement, 80),
            match s.node {
                MemoryNode::Sort => "sort",
                MemoryNode::Hash => "hash join's table",
                MemoryNode::HashAggregate => "hashed aggregate",
                MemoryNode::IndexBuild => "index build's sort",
            },
            format_bytes(s.need_bytes),
            s.limit_setting,
            format_bytes(s.limit_bytes)
        );
    }
    for o in &e.over_statement_timeout {
        let verdict = match o.fails {
            true => "**production cancels it** (SQLSTATE 57014): the migration fails there",
            false => "only the high end reaches it: production may cancel it",
        };
        put!(
            w,
            "  - Over production's statement_timeout {} ({}): `{}`{} takes {} at production scale; {verdict}. Fix: {}",
            format_ms(o.timeout_ms),
            o.timeout_from,
            one_line(&o.statement, 80),
            o.line.map(|l| format!(" (line {l})")).unwrap_or_default(),
            range_ms(o.estimate_ms),
            o.fix
        );
    }
}
