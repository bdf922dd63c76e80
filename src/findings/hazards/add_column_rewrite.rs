//! ADD COLUMN with a volatile default (random(), gen_random_uuid(),
//! clock_timestamp()), a stored generated column or serial rewrites the table;
//! a constant default has not since PostgreSQL 11.

use pg_query::protobuf::AlterTableType;
use pg_query::NodeEnum;

use super::{Context, Finding};

pub const BAD: &str = "ALTER TABLE public.orders ADD COLUMN public_id uuid DEFAULT gen_random_uuid();";
pub const GOOD: &str = "SET lock_timeout = '2s';\nALTER TABLE public.orders ADD COLUMN channel text DEFAULT 'web';";

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (stmt, table, cmd) in ctx.alter_table_cmds(AlterTableType::AtAddColumn) {
        if !ctx.existed(&table) {
            continue;
        }
        let Some(rewrite) = ctx.rewrite(&table) else { continue };
        let column = match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::ColumnDef(c)) => c.colname.clone(),
            _ => String::new(),
        };
        out.push(Finding {
            message: format!(
                "adding column {column} rewrote {} while reads and writes were blocked",
                ctx.describe(&table)
            ),
            evidence: super::rewrite_evidence(ctx, stmt, &table, rewrite),
            fix: "add the column without a default (or with a constant one), set the default for new rows, then backfill \
                  existing rows in batches"
                .into(),
        });
        break;
    }
    out
}
