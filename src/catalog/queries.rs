//! The statements the app runs, as production's pg_stat_statements counts
//! them, for `rehearse queries`; and the columns an INSERT must supply, for
//! the compatibility check.

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Error};

use crate::pg::quote_ident;

/// One statement the app runs (`rehearse.queries/v1`): pg_stat_statements'
/// normalized text, constants as `$1`, `$2`, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryStats {
    pub query: String,
    /// How many times it ran since pg_stat_statements was last reset.
    pub calls: i64,
    /// Its mean execution time (ms).
    pub mean_ms: f64,
    /// `calls` over the statistics' window ([`StatisticsWindow`]): how often
    /// production runs it. Absent in files written before it was exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_second: Option<f64>,
}

/// The span pg_stat_statements' counts cover: from its last reset, or the
/// server's start, to now (the transaction's start).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatisticsWindow {
    /// When it starts, in seconds since the Unix epoch.
    pub start_epoch: f64,
    /// Its length in seconds.
    pub seconds: f64,
}

/// The window of [`app_statements`]' counts. pg_stat_statements_info
/// (extension 1.9+, PostgreSQL 14+; the manual's "The
/// pg_stat_statements_info View",
/// <https://www.postgresql.org/docs/current/pgstatstatements.html#PGSTATSTATEMENTS-PG-STAT-STATEMENTS-INFO>:
/// `stats_reset` is the time at which all statistics in the
/// pg_stat_statements view were last reset) says when the counts started;
/// the extension sets it when its shared memory is first made, so it is
/// the server's start unless reset since. Before 1.9, or were it NULL, the server's start
/// (`pg_postmaster_start_time()`) is the best bound there is: counts saved
/// across a clean restart then make the rates read high, and a reset of
/// some entries only (`pg_stat_statements_reset(userid, dbid, queryid)`)
/// does not move stats_reset, so those read low. `now()` is the
/// transaction's start, the same snapshot the statements are read in.
pub async fn statement_statistics_window(
    client: &Client,
    schema: &str,
    version: &str,
) -> Result<StatisticsWindow, Error> {
    let reset = match extension_minor(version).is_some_and(|v| v >= 9) {
        true => format!("(SELECT stats_reset FROM {}.pg_stat_statements_info)", quote_ident(schema)),
        false => "NULL::timestamptz".to_string(),
    };
    let row = client
        .query_one(
            &format!(
                "/*rehearse*/ SELECT extract(epoch FROM s)::float8, extract(epoch FROM now() - s)::float8
                   FROM (SELECT coalesce({reset}, pg_postmaster_start_time()) AS s) w"
            ),
            &[],
        )
        .await?;
    Ok(StatisticsWindow { start_epoch: row.get(0), seconds: row.get(1) })
}

/// Where pg_stat_statements is created in the connected database: the
/// schema its view lives in, and the extension's version; None when it is
/// not created there (it is per database, though it counts every
/// database's statements once preloaded).
pub async fn statement_statistics_extension(client: &Client) -> Result<Option<(String, String)>, Error> {
    let row = client
        .query_opt(
            "/*rehearse*/ SELECT n.nspname::text, e.extversion FROM pg_extension e
               JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
            &[],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// What pg_stat_statements shows the connected role of its database.
#[derive(Debug, Clone, Default)]
pub struct AppStatements {
    /// Most called first.
    pub statements: Vec<QueryStats>,
    /// Statements of other roles whose text this role may not see
    /// (`<insufficient privilege>`: it lacks pg_read_all_stats).
    pub hidden: i64,
}

/// The statements run in the connected database, most called first, one
/// row per text (summed over roles; at most `pg_stat_statements.max`,
/// 5000 by default); rehearse's own (marked `/*rehearse*/`) left out. With extension version 1.9+
/// (PostgreSQL 14+) only top-level statements, not those run inside
/// functions (`toplevel`), whose text names PL/pgSQL variables; before 1.8
/// (PostgreSQL 12) the time column is `total_time`. `schema` and `version`
/// are [`statement_statistics_extension`]'s.
///
/// Reads the view only: it takes no lock on any table. When the library is
/// not in `shared_preload_libraries`, the view raises 55000
/// (object_not_in_prerequisite_state).
pub async fn app_statements(client: &Client, schema: &str, version: &str) -> Result<AppStatements, Error> {
    let at_least = |minor: u32| extension_minor(version).is_some_and(|v| v >= minor);
    let total = if at_least(8) { "total_exec_time" } else { "total_time" };
    let toplevel = if at_least(9) { "AND toplevel" } else { "" };
    let view = format!("{}.pg_stat_statements", quote_ident(schema));
    let database = "dbid = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let rows = client
        .query(
            &format!(
                "/*rehearse*/ SELECT query, sum(calls)::int8, (sum({total}) / greatest(sum(calls), 1))::float8
                   FROM {view}
                  WHERE {database} {toplevel} AND queryid IS NOT NULL AND query IS NOT NULL
                    AND query NOT LIKE '%/*rehearse*/%'
                  GROUP BY query ORDER BY 2 DESC, 1"
            ),
            &[],
        )
        .await?;
    let hidden = client
        .query_one(
            &format!("/*rehearse*/ SELECT count(*) FROM {view} WHERE {database} {toplevel} AND queryid IS NULL"),
            &[],
        )
        .await?
        .get(0);
    let statements = rows
        .iter()
        .map(|r| QueryStats {
            query: r.get(0),
            calls: r.get(1),
            mean_ms: (r.get::<_, f64>(2) * 1000.0).round() / 1000.0,
            calls_per_second: None,
        })
        .collect();
    Ok(AppStatements { statements, hidden })
}

/// The minor version of an extension version "1.10": 10.
fn extension_minor(version: &str) -> Option<u32> {
    version.strip_prefix("1.")?.split('.').next()?.parse().ok()
}

/// A column of an INSERT's target table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertColumn {
    pub name: String,
    /// NOT NULL, with no default, not an identity and not generated: an
    /// INSERT that leaves it out fails (23502).
    pub required: bool,
}

/// The table `name` (as a statement names it, resolved on the search path
/// by `to_regclass`, 9.4+): its name as PostgreSQL's messages give it
/// (`relname`) and its columns in order (`pg_attribute`); None when it is
/// not a table or partitioned table. `attgenerated` is PostgreSQL 12+.
pub async fn insert_columns(client: &Client, name: &str) -> Result<Option<(String, Vec<InsertColumn>)>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT c.relname::text, a.attname::text,
                    a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
              WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&name],
        )
        .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let columns = rows.iter().map(|r| InsertColumn { name: r.get(1), required: r.get(2) }).collect();
    Ok(Some((first.get(0), columns)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_versions() {
        assert_eq!(extension_minor("1.10"), Some(10));
        assert_eq!(extension_minor("1.8"), Some(8));
        assert_eq!(extension_minor("2.0"), None);
    }
}
