//! What PostgreSQL's progress views say other sessions are doing: which
//! command runs on which table, in which phase. Per PostgreSQL 15's
//! "Progress Reporting" (monitoring.sgml 28.4): pg_stat_progress_create_index
//! (CREATE INDEX [CONCURRENTLY], REINDEX [CONCURRENTLY]; 12+),
//! pg_stat_progress_cluster (CLUSTER, VACUUM FULL; 12+),
//! pg_stat_progress_vacuum (VACUUM; 9.6+, no command column) and
//! pg_stat_progress_copy (COPY FROM, COPY TO; 14+). Each has one row per
//! backend while its command runs, and `relid` is the table worked on.
//! A table rewrite by ALTER TABLE reports to none of them.

use crate::pg::PgVersion;
use tokio_postgres::{Client, Error, Statement};

/// One row of a progress view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressRow {
    pub pid: i32,
    /// The table worked on (`relid`).
    pub oid: i64,
    /// `schema.name`, or '' while the table is not visible to this session
    /// (created in the working session's open transaction).
    pub name: String,
    /// As the view names it: `CREATE INDEX`, `VACUUM FULL`, `COPY FROM`, ...
    pub command: String,
    pub phase: String,
}

/// The progress views of `version`'s server, for the database `$1`,
/// other than the backends `$2`.
pub fn progress_query(version: PgVersion) -> String {
    let mut views = vec![
        "SELECT pid, datid, relid, command, phase FROM pg_stat_progress_create_index",
        "SELECT pid, datid, relid, command, phase FROM pg_stat_progress_cluster",
        "SELECT pid, datid, relid, 'VACUUM', phase FROM pg_stat_progress_vacuum",
    ];
    if version.at_least(14) {
        views.push("SELECT pid, datid, relid, command, 'copying' FROM pg_stat_progress_copy");
    }
    format!(
        "/*rehearse*/ SELECT p.pid, p.relid::int8,
                CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END, p.command, p.phase
           FROM ({}) AS p (pid, datid, relid, command, phase)
           LEFT JOIN pg_class c ON c.oid = p.relid
           LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE p.datid = $1::int8::oid AND p.pid <> ALL($2::int4[])",
        views.join(" UNION ALL ")
    )
}

/// Runs [`progress_query`], prepared once by the caller.
pub async fn progress(
    client: &Client,
    prepared: &Statement,
    db_oid: i64,
    exclude: &[i32],
) -> Result<Vec<ProgressRow>, Error> {
    let rows = client.query(prepared, &[&db_oid, &exclude]).await?;
    Ok(rows
        .iter()
        .map(|r| ProgressRow { pid: r.get(0), oid: r.get(1), name: r.get(2), command: r.get(3), phase: r.get(4) })
        .collect())
}
