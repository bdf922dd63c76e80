//! Adding a CHECK constraint scans the whole table under AccessExclusiveLock.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use super::{blocked_work, lock_evidence, short, Context, Finding};
use crate::pg::Blocked;

pub const BAD: &str = "ALTER TABLE public.orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0);";
pub const GOOD: &str =
    "SET lock_timeout = '2s';\nALTER TABLE public.orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0) NOT VALID;";

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (stmt, table, cmd) in ctx.alter_table_cmds(AlterTableType::AtAddConstraint) {
        let Some(NodeEnum::Constraint(c)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else { continue };
        if c.contype != ConstrType::ConstrCheck as i32 || c.skip_validation || !ctx.existed(&table) {
            continue;
        }
        let Some(lock) = ctx.strongest_lock(&table).filter(|l| l.blocks.contains(&Blocked::Writes)) else {
            continue;
        };
        out.push(Finding {
            message: format!(
                "CHECK constraint {} was validated against every row of {} while {} were blocked",
                c.conname,
                ctx.describe(&table),
                blocked_work(lock)
            ),
            evidence: format!("`{}` took {}; {}", short(&stmt.query), crate::report::format_ms(stmt.duration_ms), lock_evidence(ctx, lock)),
            fix: "add the constraint NOT VALID, then VALIDATE CONSTRAINT in a later migration (ShareUpdateExclusiveLock only)".into(),
        });
    }
    out
}
