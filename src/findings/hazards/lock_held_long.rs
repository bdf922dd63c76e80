//! A lock that blocks reads or writes, taken early in a transaction and held
//! while later statements run: the table is blocked for the whole remainder
//! of the migration, not just the statement that needed the lock.

use super::{blocked_work, short, Context, Finding};
use crate::report::format_ms;

pub const BAD: &str =
    "SET lock_timeout = '2s';\nALTER TABLE public.orders ADD COLUMN archived boolean;\nSELECT pg_sleep(0.3);";
pub const GOOD: &str =
    "SET lock_timeout = '2s';\nSELECT pg_sleep(0.3);\nALTER TABLE public.orders ADD COLUMN archived boolean;";

/// Holding a lock this much longer than the statement that took it is
/// reported; less is the ordinary cost of committing.
const EXTRA_MS: u64 = 100;

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let statements = &ctx.migration.statements;
    for (i, stmt) in statements.iter().enumerate() {
        for lock in &stmt.locks {
            if !ctx.existed(&lock.relation) || !lock.mode.blocks_writes() {
                continue;
            }
            let extra = lock.held_ms.saturating_sub(stmt.duration_ms);
            if extra < EXTRA_MS || lock.held_ms < 2 * stmt.duration_ms.max(1) {
                continue;
            }
            let later = statements.len() - i - 1;
            if later == 0 {
                continue;
            }
            let report_lock = ctx.lock(&lock.relation, lock.mode);
            out.push(Finding {
                message: format!(
                    "{} on {} was taken by a {} statement and held {} until the transaction ended: {} were blocked while {later} later statement(s) ran",
                    lock.mode,
                    ctx.describe(&lock.relation),
                    format_ms(stmt.duration_ms),
                    format_ms(lock.held_ms),
                    report_lock.map(blocked_work).unwrap_or("writes")
                ),
                evidence: format!(
                    "`{}`{} took {}; the lock was released {} later, at commit",
                    short(&stmt.query),
                    super::at_line(stmt),
                    format_ms(stmt.duration_ms),
                    format_ms(extra)
                ),
                fix: "move the statement that takes the lock to the end of the transaction, or split the migration so the slow \
                      work runs in its own transaction"
                    .into(),
            });
        }
    }
    out
}
