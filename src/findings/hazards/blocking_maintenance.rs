//! DROP INDEX, REINDEX, VACUUM FULL, CLUSTER and DETACH PARTITION without
//! their concurrent forms take AccessExclusiveLock for the whole operation.

use pg_query::protobuf::{AlterTableType, ObjectType};
use pg_query::NodeEnum;

use super::{blocked_work, lock_evidence, short, Context, Finding};
use crate::pg::LockMode;

pub const BAD: &str = "DROP INDEX public.orders_customer_id_idx;";
pub const GOOD: &str = "DROP INDEX CONCURRENTLY public.orders_customer_id_idx;";

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for (stmt, node) in ctx.statements() {
        let (what, fix) = match node {
            NodeEnum::DropStmt(d) if d.remove_type == ObjectType::ObjectIndex as i32 && !d.concurrent => {
                ("DROP INDEX", "use DROP INDEX CONCURRENTLY (in a migration of its own)")
            }
            NodeEnum::ReindexStmt(r)
                if !r.params.iter().any(|p| matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")) =>
            {
                ("REINDEX", "use REINDEX ... CONCURRENTLY (PostgreSQL 12+)")
            }
            NodeEnum::VacuumStmt(v)
                if v.is_vacuumcmd && v.options.iter().any(|o| matches!(&o.node, Some(NodeEnum::DefElem(d)) if d.defname == "full")) =>
            {
                ("VACUUM FULL", "use pg_repack or pg_squeeze, which rebuild without holding AccessExclusiveLock throughout")
            }
            NodeEnum::ClusterStmt(_) => ("CLUSTER", "use pg_repack (it reorders online)"),
            NodeEnum::AlterTableStmt(a)
                if a.cmds.iter().any(|c| matches!(&c.node, Some(NodeEnum::AlterTableCmd(cmd))
                    if cmd.subtype == AlterTableType::AtDetachPartition as i32
                        && !matches!(cmd.def.as_ref().and_then(|d| d.node.as_ref()), Some(NodeEnum::PartitionCmd(p)) if p.concurrent))) =>
            {
                ("DETACH PARTITION", "use DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+)")
            }
            _ => continue,
        };
        // The blocking locks this statement took on relations the app uses.
        let locks: Vec<_> = stmt
            .locks
            .iter()
            .filter(|l| l.mode == LockMode::AccessExclusiveLock && ctx.existed(&l.relation))
            .filter_map(|l| ctx.lock(&l.relation, l.mode))
            .collect();
        let locks = if locks.is_empty() {
            ctx.migration
                .locks
                .iter()
                .filter(|l| l.mode == LockMode::AccessExclusiveLock && ctx.existed(&l.relation))
                .collect()
        } else {
            locks
        };
        let Some(worst) = locks.iter().max_by_key(|l| l.held_ms) else { continue };
        out.push(Finding {
            message: format!(
                "{what} held AccessExclusiveLock on {}: {} were blocked",
                worst.relation,
                blocked_work(worst)
            ),
            evidence: format!(
                "`{}` took {}; {}",
                short(&stmt.query),
                crate::report::format_ms(stmt.duration_ms),
                locks.iter().map(|l| lock_evidence(ctx, l)).collect::<Vec<_>>().join("; ")
            ),
            fix: fix.into(),
        });
    }
    out
}
