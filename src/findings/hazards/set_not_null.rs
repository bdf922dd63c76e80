//! `SET NOT NULL` on an existing column scans the table under
//! AccessExclusiveLock (unless a validated CHECK (col IS NOT NULL) proves it, PostgreSQL 12+).

use pg_query::protobuf::AlterTableType;

use super::{blocked_work, lock_evidence, short, Context, Finding};
use crate::pg::LockMode;

pub const BAD: &str = "ALTER TABLE public.customers ALTER COLUMN meta SET NOT NULL;";
pub const GOOD: &str =
    "SET lock_timeout = '2s';\nALTER TABLE public.customers ADD CONSTRAINT customers_meta_not_null CHECK (meta IS NOT NULL) NOT VALID;";

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (stmt, table, cmd) in ctx.alter_table_cmds(AlterTableType::AtSetNotNull) {
        if !ctx.existed(&table) {
            continue;
        }
        let Some(lock) = ctx.lock(&table, LockMode::AccessExclusiveLock) else { continue };
        out.push(Finding {
            message: format!(
                "SET NOT NULL on {}.{} checked every row of {} while {} were blocked",
                table,
                cmd.name,
                ctx.describe(&table),
                blocked_work(lock)
            ),
            evidence: format!("`{}` took {}; {}", short(&stmt.query), crate::report::format_ms(stmt.duration_ms), lock_evidence(ctx, lock)),
            fix: "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in a later migration, then SET NOT NULL (it uses the \
                  validated check and skips the scan), then drop the check"
                .into(),
        });
    }
    out
}
