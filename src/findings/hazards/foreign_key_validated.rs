//! Adding a foreign key validates every existing row while holding
//! ShareRowExclusiveLock on both tables: writes to both wait for the scan.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use super::{lock_evidence, range_var_name, short, Context, Finding};
use crate::pg::LockMode;

pub const BAD: &str =
    "ALTER TABLE public.orders ADD CONSTRAINT orders_customer_fk2 FOREIGN KEY (customer_id) REFERENCES public.customers (id);";
pub const GOOD: &str = "SET lock_timeout = '2s';\nALTER TABLE public.orders ADD CONSTRAINT orders_customer_fk2 FOREIGN KEY (customer_id) REFERENCES public.customers (id) NOT VALID;";

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (stmt, table, cmd) in ctx.alter_table_cmds(AlterTableType::AtAddConstraint) {
        let Some(NodeEnum::Constraint(c)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else { continue };
        if c.contype != ConstrType::ConstrForeign as i32 || c.skip_validation || !ctx.existed(&table) {
            continue;
        }
        let referenced = c.pktable.as_ref().map(range_var_name).unwrap_or_default();
        let locks: Vec<String> = [&table, &referenced]
            .iter()
            .filter_map(|t| ctx.lock(t, LockMode::ShareRowExclusiveLock))
            .map(|l| lock_evidence(ctx, l))
            .collect();
        if locks.is_empty() {
            continue;
        }
        out.push(Finding {
            message: format!(
                "adding foreign key {} validated every row of {} while writes to {table} and {referenced} were blocked",
                c.conname,
                ctx.describe(&table)
            ),
            evidence: format!("`{}` took {}; {}", short(&stmt.query), crate::report::format_ms(stmt.duration_ms), locks.join("; ")),
            fix: "add the constraint NOT VALID (instant), then VALIDATE CONSTRAINT in a later migration: validation takes only ShareUpdateExclusiveLock".into(),
        });
    }
    out
}
