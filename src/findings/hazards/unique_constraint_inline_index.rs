//! ADD PRIMARY KEY / UNIQUE builds its index inline, under a lock that
//! blocks writes (AccessExclusiveLock for ALTER TABLE ADD CONSTRAINT).

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use super::{blocked_work, lock_evidence, short, Context, Finding};
use crate::pg::Blocked;

pub const BAD: &str = "ALTER TABLE public.customers ADD CONSTRAINT customers_name_key UNIQUE (name);";
pub const GOOD: &str = "CREATE UNIQUE INDEX CONCURRENTLY customers_name_key ON public.customers (name);\n\
SET lock_timeout = '2s';\n\
ALTER TABLE public.customers ADD CONSTRAINT customers_name_key UNIQUE USING INDEX customers_name_key;";

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (stmt, table, cmd) in ctx.alter_table_cmds(AlterTableType::AtAddConstraint) {
        let Some(NodeEnum::Constraint(c)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else { continue };
        let unique = c.contype == ConstrType::ConstrUnique as i32 || c.contype == ConstrType::ConstrPrimary as i32;
        if !unique || !c.indexname.is_empty() || !ctx.existed(&table) {
            continue;
        }
        let Some(lock) = ctx.strongest_lock(&table).filter(|l| l.blocks.contains(&Blocked::Writes)) else {
            continue;
        };
        let kind = if c.contype == ConstrType::ConstrPrimary as i32 { "PRIMARY KEY" } else { "UNIQUE" };
        out.push(Finding {
            message: format!(
                "ADD {kind} built its index on {} inline while {} were blocked",
                ctx.describe(&table),
                blocked_work(lock)
            ),
            evidence: format!("`{}` took {}; {}", short(&stmt.query), crate::report::format_ms(stmt.duration_ms), lock_evidence(ctx, lock)),
            fix: format!(
                "CREATE UNIQUE INDEX CONCURRENTLY first, then ALTER TABLE ... ADD CONSTRAINT ... {kind} USING INDEX (instant)"
            ),
        });
    }
    out
}
