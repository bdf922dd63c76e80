//! Production's relations and their sizes, for `rehearse stats`.

use tokio_postgres::{Client, Error};

use serde::{Deserialize, Serialize};

use crate::pg::RelationKind;

/// One relation of production, as `rehearse stats` reads it and
/// rehearse.stats/v1 (`estimate::ProductionStats`) holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelationStats {
    /// `schema.name`, as `format('%I.%I')` writes it.
    pub relation: String,
    pub kind: RelationKind,
    /// The table an index or TOAST table belongs to.
    pub table: Option<String>,
    /// `pg_class.reltuples`: the planner's row count; -1 when the relation
    /// was never vacuumed or analyzed (PostgreSQL 14+).
    pub rows: i64,
    /// `pg_class.relpages`.
    pub pages: i64,
    /// `pg_relation_size`: the main fork.
    pub bytes: i64,
    /// `pg_total_relation_size`: with indexes and TOAST (tables), or `bytes` (the rest).
    pub total_bytes: i64,
}

/// Every table, partitioned table, index, partitioned index, materialized
/// view, TOAST table and TOAST index of the connected database, by name:
/// `reltuples`, `relpages`, `pg_relation_size` (the main fork) and, for
/// tables and materialized views, `pg_total_relation_size` (with indexes
/// and TOAST; the relation's own size for the rest). Partitioned parents
/// have no storage: their sizes are 0.
///
/// Left out: pg_catalog, information_schema and the TOAST tables of their
/// tables, and temporary relations (other sessions'; this one has none).
/// `table` is what an index is on (`pg_index.indrelid`) and the table whose
/// `reltoastrelid` a TOAST table is; a TOAST table's index is on the TOAST
/// table.
///
/// PostgreSQL 12 and later. It reads pg_class, pg_index and pg_namespace
/// (readable by every role unless an administrator revoked it) and scans no
/// table: pg_relation_size and pg_total_relation_size read file sizes, and
/// need no privilege on the relation. Each takes ACCESS SHARE on its
/// relation only while it reads the size, so a relation held in ACCESS
/// EXCLUSIVE (a running ALTER TABLE or VACUUM FULL, or its replay on a
/// standby) makes it wait until the lock is released or the caller's
/// statement_timeout ends it. A relation dropped while this runs is left out
/// (its size comes back NULL).
pub async fn production_relations(client: &Client) -> Result<Vec<RelationStats>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ WITH belongs AS (  -- what each index and TOAST table belongs to
                 SELECT indexrelid AS oid, indrelid AS parent FROM pg_index
                 UNION ALL
                 SELECT reltoastrelid, oid FROM pg_class WHERE reltoastrelid <> 0
             ), sized AS (
                 SELECT format('%I.%I', n.nspname, c.relname) AS relation, c.relkind,
                        CASE WHEN p.oid IS NOT NULL THEN format('%I.%I', pn.nspname, p.relname) END AS parent,
                        c.reltuples::int8 AS rows, c.relpages::int8 AS pages,
                        pg_relation_size(c.oid) AS bytes,
                        CASE WHEN c.relkind IN ('r', 'm') THEN pg_total_relation_size(c.oid) END AS total_bytes,
                        -- the schema of the table a relation (or its TOAST table) belongs to
                        coalesce(un.nspname, pn.nspname, n.nspname) AS home
                   FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   LEFT JOIN belongs b ON b.oid = c.oid
                   LEFT JOIN pg_class p ON p.oid = b.parent
                   LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
                   LEFT JOIN belongs b2 ON b2.oid = p.oid AND p.relkind = 't'
                   LEFT JOIN pg_class u ON u.oid = b2.parent
                   LEFT JOIN pg_namespace un ON un.oid = u.relnamespace
                  WHERE c.relkind IN ('r', 'p', 'i', 'I', 'm', 't') AND c.relpersistence <> 't'
             )
             SELECT relation, relkind::text, parent, rows, pages, bytes, coalesce(total_bytes, bytes)
               FROM sized
              WHERE home NOT IN ('pg_catalog', 'information_schema') AND bytes IS NOT NULL
              ORDER BY relation",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RelationStats {
            relation: r.get(0),
            kind: RelationKind::from_relkind(r.get(1)),
            table: r.get(2),
            rows: r.get(3),
            pages: r.get(4),
            bytes: r.get(5),
            total_bytes: r.get(6),
        })
        .collect())
}

/// A session seen holding a lock on a table of the connected database, with
/// how long its transaction had run then: what `rehearse stats --activity`
/// samples. Never its query, role or application: production's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLockHolder {
    /// `schema.name`, as `format('%I.%I')` writes it.
    pub table: String,
    pub pid: i32,
    /// `now() - xact_start`, in milliseconds.
    pub xact_age_ms: i64,
}

/// The client sessions (`backend_type`, 10+) other than this one holding a
/// granted lock on a table, partitioned table or materialized view of the
/// connected database, from `pg_locks` joined to `pg_stat_activity`, one
/// row per (table, session). Light: both views are read from shared memory,
/// no table is touched, and no lock is taken but on the catalogs the join
/// reads. Runs outside a transaction block, so each call sees a fresh
/// snapshot of pg_stat_activity (which a transaction would keep, the
/// manual's "Viewing Statistics"). Other roles' sessions show no
/// `xact_start` to a role without pg_read_all_stats: they are left out.
/// System catalogs and autovacuum are left out (autovacuum gives way to a
/// conflicting lock request on its own).
pub async fn table_lock_holders(client: &Client) -> Result<Vec<TableLockHolder>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT DISTINCT format('%I.%I', n.nspname, c.relname), a.pid,
                    (extract(epoch FROM now() - a.xact_start) * 1000)::int8
               FROM pg_locks l
               JOIN pg_stat_activity a ON a.pid = l.pid
               JOIN pg_class c ON c.oid = l.relation
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE l.locktype = 'relation' AND l.granted
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
                AND a.xact_start IS NOT NULL
                AND c.relkind IN ('r', 'p', 'm')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TableLockHolder { table: r.get(0), pid: r.get(1), xact_age_ms: r.get::<_, i64>(2).max(0) })
        .collect())
}
