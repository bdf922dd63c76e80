//! The locks the manual documents for statements that cannot run in a
//! transaction block, for when a statement ran too fast for any reading of
//! pg_locks (under a millisecond on a tiny table): reported as `inferred`,
//! never as no lock at all.
//!
//! From "Table-Level Locks" (13.3.1 in the PostgreSQL 15 to 18 manuals):
//! SHARE UPDATE EXCLUSIVE is acquired by VACUUM (without FULL), CREATE INDEX
//! CONCURRENTLY and REINDEX CONCURRENTLY; ACCESS EXCLUSIVE by VACUUM FULL
//! (and REINDEX, CLUSTER, which run in a transaction and are read exactly).

use pg_query::NodeEnum;

use crate::pg::{range_var_name as name, LockMode};

/// (table as `schema.name`, mode) the statement takes on each table it names,
/// by the manual; empty for statements that run inside a transaction (their
/// locks are read exactly) or that name no table.
pub fn documented_locks(sql: &str) -> Vec<(String, LockMode)> {
    let Ok(parsed) = pg_query::parse(sql, 0) else { return Vec::new() };
    let mut out = Vec::new();
    for node in parsed.protobuf.stmts.iter().filter_map(|raw| raw.stmt.as_ref().and_then(|s| s.node.as_ref())) {
        match node {
            NodeEnum::IndexStmt(s) if s.concurrent => {
                out.extend(s.relation.as_ref().map(|r| (name(r), LockMode::ShareUpdateExclusiveLock)));
            }
            NodeEnum::VacuumStmt(s) if s.is_vacuumcmd => {
                let full =
                    s.options.iter().any(|o| matches!(&o.node, Some(NodeEnum::DefElem(d)) if d.defname == "full"));
                let mode = if full { LockMode::AccessExclusiveLock } else { LockMode::ShareUpdateExclusiveLock };
                for rel in &s.rels {
                    if let Some(NodeEnum::VacuumRelation(v)) = &rel.node {
                        out.extend(v.relation.as_ref().map(|r| (name(r), mode)));
                    }
                }
            }
            NodeEnum::ReindexStmt(s)
                if s.kind == pg_query::protobuf::ReindexObjectType::ReindexObjectTable as i32
                    && s.params
                        .iter()
                        .any(|p| matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")) =>
            {
                out.extend(s.relation.as_ref().map(|r| (name(r), LockMode::ShareUpdateExclusiveLock)));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manuals_modes_for_statements_outside_a_transaction() {
        use LockMode::*;
        let t = |sql: &str| documented_locks(sql);
        assert_eq!(
            t("CREATE INDEX CONCURRENTLY i ON orders (a)"),
            [("public.orders".into(), ShareUpdateExclusiveLock)]
        );
        assert_eq!(t("VACUUM FULL app.\"Big\""), [("app.\"Big\"".into(), AccessExclusiveLock)]);
        assert_eq!(t("VACUUM (ANALYZE) a, b").len(), 2);
        assert_eq!(t("REINDEX TABLE CONCURRENTLY orders"), [("public.orders".into(), ShareUpdateExclusiveLock)]);
        assert!(t("CREATE INDEX i ON orders (a)").is_empty(), "read exactly in its transaction");
        assert!(t("not sql").is_empty());
    }
}
