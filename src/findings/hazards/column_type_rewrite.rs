//! A column type change that is not binary-coercible rewrites the whole
//! table (and its indexes) under AccessExclusiveLock.

use pg_query::protobuf::AlterTableType;

use super::{Context, Finding};

pub const BAD: &str = "ALTER TABLE public.orders ALTER COLUMN total TYPE float8;";
pub const GOOD: &str = "SET lock_timeout = '2s';\nALTER TABLE public.orders ALTER COLUMN total TYPE numeric(12, 2);";

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for (stmt, table, cmd) in ctx.alter_table_cmds(AlterTableType::AtAlterColumnType) {
        if !ctx.existed(&table) || seen.contains(&table) {
            continue;
        }
        let Some(rewrite) = ctx.rewrite(&table) else { continue };
        seen.push(table.clone());
        out.push(Finding {
            message: format!(
                "changing the type of {table}.{} rewrote {} while reads and writes were blocked",
                cmd.name,
                ctx.describe(&table)
            ),
            evidence: super::rewrite_evidence(ctx, stmt, &table, rewrite),
            fix: "add a new column of the new type, backfill it in batches, switch the app over, then drop the old column \
                  (expand-contract); or choose a binary-coercible change (e.g. varchar(n) to text or a larger n)"
                .into(),
        });
    }
    out
}
