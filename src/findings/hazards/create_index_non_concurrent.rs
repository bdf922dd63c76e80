//! `CREATE INDEX` without CONCURRENTLY holds ShareLock on the table for the
//! whole build: reads go on, every write waits.

use pg_query::NodeEnum;

use super::{blocked_work, lock_evidence, range_var_name, short, Context, Finding};
use crate::pg::LockMode;

pub const BAD: &str = "CREATE INDEX orders_total_idx ON public.orders (total);";
pub const GOOD: &str = "CREATE INDEX CONCURRENTLY orders_total_idx ON public.orders (total);";

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (stmt, node) in ctx.statements() {
        let NodeEnum::IndexStmt(index) = node else { continue };
        if index.concurrent {
            continue;
        }
        let Some(table) = index.relation.as_ref().map(range_var_name) else { continue };
        if !ctx.existed(&table) {
            continue;
        }
        let Some(lock) = ctx.lock(&table, LockMode::ShareLock) else { continue };
        out.push(Finding {
            message: format!(
                "CREATE INDEX held ShareLock on {} for {}: {} were blocked",
                ctx.describe(&table),
                crate::report::format_ms(lock.held_ms),
                blocked_work(lock)
            ),
            evidence: format!("`{}` took {}; {}", short(&stmt.query), crate::report::format_ms(stmt.duration_ms), lock_evidence(ctx, lock)),
            fix: "build the index with CREATE INDEX CONCURRENTLY, in a migration of its own (it cannot run in a transaction)".into(),
        });
    }
    out
}
