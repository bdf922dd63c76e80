//! `rehearse queries`: the statements the app version in production runs
//! (`rehearse.queries/v1`), read from the database's pg_stat_statements on
//! a primary or a hot standby, over one connection in one read-only
//! transaction, and written as JSON for `compat.queries`. Normalized text
//! only (constants are `$1`, `$2`, ...): no row of any table is read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::production::{self, ProductionArgs};
use crate::backend::url;
use crate::catalog::{self, AppStatements, QueryStats, StatisticsWindow};
use crate::compat::{is_utility, AppQueries, QUERIES_SCHEMA};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::db::{quote_ident, ConnInfo};

#[derive(Debug, Args)]
pub struct QueriesArgs {
    #[command(flatten)]
    pub production: ProductionArgs,

    /// How many statements to keep, the most called first.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub top: u32,
}

/// Runs `rehearse queries` and returns the exit code.
pub async fn command(args: QueriesArgs) -> i32 {
    production::exit_code(queries(&args).await)
}

async fn queries(args: &QueriesArgs) -> Result<()> {
    let (top, args) = (args.top as usize, &args.production);
    let server =
        url::with_password_command(url::parse(&args.url)?, args.password_command.as_deref(), "--password-command");
    let (queries, read) = read(&server, top, args.timeout).await?;
    production::write_json(&queries, args.out.as_deref(), "queries")?;
    let calls: i64 = queries.queries.iter().map(|q| q.calls).sum();
    eprintln!(
        "read {} statements ({calls} calls) of database {} from {} (PostgreSQL {}); left out {} utility \
         statement(s) (SET, BEGIN, DDL, ...: not queries, and PostgreSQL before 16 keeps their constants)",
        queries.queries.len(),
        queries.database,
        server.masked(&server.dbname),
        queries.server_version,
        read.utility,
    );
    if read.hidden > 0 {
        eprintln!("note: {}", hidden_note(&server, read.hidden));
    }
    if let Some(path) = &args.out {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// What was left out of the file.
#[derive(Debug, Clone, Copy)]
pub struct LeftOut {
    /// Utility statements.
    pub utility: usize,
    /// Statements of other roles this role may not see.
    pub hidden: i64,
}

/// Reads the app's `top` queries from `server` over one connection.
/// Utility statements are left out: they are not checked, and before
/// PostgreSQL 16 pg_stat_statements keeps their constants (a `SET` of a
/// tenant's name, a password in `ALTER ROLE`), which must not leave production.
pub async fn read(server: &ConnInfo, top: usize, timeout: Duration) -> Result<(AppQueries, LeftOut)> {
    let client = production::connect(server, "queries").await?;
    let taken_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let (server_version, database, statements, window) = read_in_transaction(&client, server, timeout).await?;
    let hidden = statements.hidden;
    let (utility, queries): (Vec<_>, Vec<_>) = statements.statements.into_iter().partition(|s| is_utility(&s.query));
    if queries.is_empty() {
        return Err(ErrorKind::StatementStatisticsUnavailable.error(nothing_recorded(server, &database, hidden)));
    }
    let queries = queries.into_iter().take(top).map(|q| with_rate(q, &window)).collect();
    let window_start = UNIX_EPOCH + Duration::from_secs_f64(window.start_epoch.max(0.0));
    let file = AppQueries {
        schema: QUERIES_SCHEMA.to_string(),
        taken_at,
        server_version,
        database,
        queries,
        window_seconds: Some(round3(window.seconds)),
        window_start: Some(humantime::format_rfc3339_seconds(window_start).to_string()),
    };
    Ok((file, LeftOut { utility: utility.len(), hidden }))
}

/// `q` with its calls per second over `window`. A window under a
/// millisecond (a reset just now) gives no rate rather than an absurd one.
fn with_rate(q: QueryStats, window: &StatisticsWindow) -> QueryStats {
    let calls_per_second = (window.seconds >= 0.001).then(|| round3(q.calls as f64 / window.seconds));
    QueryStats { calls_per_second, ..q }
}

/// `x` to three decimals, as the file's other figures are.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// (server version, database, statements, their window), in one read-only transaction.
async fn read_in_transaction(
    client: &Client,
    server: &ConnInfo,
    timeout: Duration,
) -> Result<(String, String, AppStatements, StatisticsWindow)> {
    let failed = |e| read_error(server, timeout, e);
    production::begin_read_only(client, timeout).await.map_err(failed)?;
    let server_version = catalog::server_version(client).await.map_err(failed)?;
    let (database, _) = catalog::database_and_recovery(client).await.map_err(failed)?;
    let extension = catalog::statement_statistics_extension(client).await.map_err(failed)?;
    let Some((schema, version)) = extension else {
        return Err(ErrorKind::StatementStatisticsUnavailable.error(not_created(server, &database)));
    };
    let statements = catalog::app_statements(client, &schema, &version).await.map_err(failed)?;
    let window = catalog::statement_statistics_window(client, &schema, &version).await.map_err(failed)?;
    client.batch_execute("COMMIT").await.map_err(failed)?;
    Ok((server_version, database, statements, window))
}

fn not_created(server: &ConnInfo, database: &str) -> String {
    format!(
        "pg_stat_statements is not created in database {database} ({}): rehearse queries reads the app's \
         statements from it. On the primary, as a superuser: put pg_stat_statements in shared_preload_libraries \
         (postgresql.conf; a restart) unless it is there, run CREATE EXTENSION pg_stat_statements; in database \
         {}, let the app run (a day of traffic covers most of its queries), then run rehearse queries again",
        server.masked(&server.dbname),
        quote_ident(database)
    )
}

fn nothing_recorded(server: &ConnInfo, database: &str, hidden: i64) -> String {
    let shown = server.masked(&server.dbname);
    match hidden {
        0 => format!(
            "pg_stat_statements has recorded no query of database {database} ({shown}) yet: it counts from the \
             server's start or its last reset; let the app run, then run rehearse queries again"
        ),
        _ => format!(
            "every statement of database {database} ({shown}) is hidden from this role: {}",
            hidden_note(server, hidden)
        ),
    }
}

fn hidden_note(server: &ConnInfo, hidden: i64) -> String {
    format!(
        "{hidden} statement(s) of other roles are hidden from {} (pg_stat_statements shows their text only to \
         superusers and pg_read_all_stats): GRANT pg_read_all_stats TO {} to export them too",
        server.user,
        quote_ident(&server.user)
    )
}

fn read_error(server: &ConnInfo, timeout: Duration, e: tokio_postgres::Error) -> Error {
    let shown = server.masked(&server.dbname);
    let message = match e.code() {
        // The view raises it when the library is not loaded.
        Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => format!(
            "pg_stat_statements is created in {shown} but not loaded: add pg_stat_statements to \
             shared_preload_libraries in postgresql.conf and restart the server; it counts statements from then \
             on, so let the app run a while (a day of traffic) before running rehearse queries again"
        ),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE) => format!(
            "the role {} cannot read pg_stat_statements in {shown}: GRANT pg_read_all_stats TO {}, or use a role \
             that can",
            server.user,
            quote_ident(&server.user)
        ),
        Some(&SqlState::QUERY_CANCELED) => format!(
            "reading the statements of {shown} took longer than --timeout {}: run again, or give a longer --timeout",
            humantime::format_duration(timeout)
        ),
        _ => production::recovery_conflict(server, &e)
            .unwrap_or_else(|| format!("cannot read the statements of {shown}")),
    };
    let kind = match e.code() {
        Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => ErrorKind::StatementStatisticsUnavailable,
        Some(&SqlState::QUERY_CANCELED) => ErrorKind::TimedOut,
        _ => ErrorKind::CatalogReadFailed,
    };
    kind.because(message, e)
}
