//! A lock that blocks reads or writes taken with no lock_timeout: had a long
//! query been running on the table, the statement would have queued behind
//! it, and every read or write of the table would have queued behind the
//! statement — an outage with no error.

use super::{blocked_work, short, Context, Finding};
use crate::pg::RelationKind;

pub const BAD: &str = "ALTER TABLE public.orders ADD COLUMN flagged boolean;";
pub const GOOD: &str = "SET lock_timeout = '2s';\nALTER TABLE public.orders ADD COLUMN flagged boolean;";

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for stmt in &ctx.migration.statements {
        if stmt.lock_timeout_ms != Some(0) {
            continue;
        }
        let blocking: Vec<_> =
            stmt.locks.iter().filter(|l| ctx.existed(&l.relation) && l.mode.blocks_writes()).collect();
        let Some(worst) = blocking.iter().max_by_key(|l| (l.mode.blocks().len(), l.kind == RelationKind::Table)) else {
            continue;
        };
        let report_lock = ctx.lock(&worst.relation, worst.mode);
        out.push(Finding {
            message: format!(
                "`{}` took {} on {} with no lock_timeout: behind any long-running query on it, this statement would have \
                 waited, and all {} of the table would have queued behind it",
                short(&stmt.query),
                worst.mode,
                worst.relation,
                report_lock.map(blocked_work).unwrap_or("writes")
            ),
            evidence: format!(
                "lock_timeout was 0 when the statement{} ran; it took {}",
                super::at_line(stmt),
                blocking.iter().map(|l| format!("{} on {}", l.mode, l.relation)).collect::<Vec<_>>().join(", ")
            ),
            fix: "SET lock_timeout (e.g. '2s') at the top of the migration and retry it when it times out".into(),
        });
    }
    out
}
