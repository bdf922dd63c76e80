//! `rehearse stats`: production's size statistics (`rehearse.stats/v1`),
//! read from a primary or a hot standby over one connection, in one
//! read-only transaction of catalog reads, and written as JSON for an
//! estimate. Sizes only: no row of any table is read.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::Args;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::backend::url;
use crate::catalog;
use crate::error::{exit, Error, Result};
use crate::estimate::stats::{ProductionStats, DDL_SETTINGS, STATS_SCHEMA};
use crate::report::{format_bytes, write_atomically};
use crate::sys::db::{self, quote_ident, ConnInfo};

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The production database to read, e.g. postgres://stats@db.internal:5432/app: a primary or a hot
    /// standby. Without a password in the URL, PGPASSWORD is used.
    #[arg(long, value_name = "URL")]
    pub url: String,

    /// Write the JSON to FILE (atomically: the whole file or none) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Give up when reading takes longer than this (the transaction's statement_timeout), e.g. 5m for a
    /// database with very many relations. Between 1s and 24h.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    // statement_timeout = 0 would mean no timeout at all; past 24h it is no guard either.
    super::duration_within(
        text,
        Duration::from_secs(1)..=Duration::from_secs(24 * 3600),
        "between 1s and 24h, e.g. 60s or 5m",
    )
}

/// Runs `rehearse stats` and returns the exit code.
pub async fn command(args: StatsArgs) -> i32 {
    match stats(&args).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("{}", e.render());
            e.exit_code()
        }
    }
}

async fn stats(args: &StatsArgs) -> Result<()> {
    let server = url::parse(&args.url)?;
    let stats = read(&server, args.timeout).await?;
    let mut json = serde_json::to_string_pretty(&stats)
        .map_err(|e| Error::environment_because("cannot render the statistics as JSON", e))?;
    json.push('\n');
    match &args.out {
        Some(path) => write_atomically(path, json.as_bytes())?,
        None => print!("{json}"),
    }
    let total: i64 = stats.relations.iter().map(|r| r.bytes).sum();
    eprintln!(
        "read {} relations, {} in all, from {} (PostgreSQL {}, {})",
        stats.relations.len(),
        format_bytes(total.max(0) as u64),
        server.masked(&server.dbname),
        stats.server_version,
        if stats.in_recovery { "hot standby" } else { "primary" },
    );
    if let Some(path) = &args.out {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Reads production's statistics from `server` over one connection.
pub async fn read(server: &ConnInfo, timeout: Duration) -> Result<ProductionStats> {
    let client = db::connect(server, &server.dbname, "rehearse stats").await.map_err(|e| connect_error(server, e))?;
    let taken_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stats = read_in_transaction(&client, taken_at, timeout).await.map_err(|e| read_error(server, timeout, e))?;
    Ok(stats)
}

/// One transaction, so every figure comes from the same snapshot. READ ONLY
/// so that nothing can be written even by mistake; REPEATABLE READ named
/// rather than the server's default, because a standby refuses SERIALIZABLE
/// (a production default some shops set). statement_timeout bounds a wait
/// for a relation locked ACCESS EXCLUSIVE, which pg_relation_size waits for.
async fn read_in_transaction(
    client: &Client,
    taken_at: String,
    timeout: Duration,
) -> Result<ProductionStats, tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = '{}ms'",
            timeout.as_millis()
        ))
        .await?;
    let server_version = catalog::server_version(client).await?;
    let (database, in_recovery) = catalog::database_and_recovery(client).await?;
    let settings = catalog::settings(client, &DDL_SETTINGS).await?.into_iter().collect();
    let relations = catalog::production_relations(client).await?;
    client.batch_execute("COMMIT").await?;
    Ok(ProductionStats {
        schema: STATS_SCHEMA.to_string(),
        taken_at,
        server_version,
        database,
        in_recovery,
        settings,
        relations,
    })
}

fn connect_error(server: &ConnInfo, e: tokio_postgres::Error) -> Error {
    let (db, user) = (&server.dbname, &server.user);
    let shown = server.masked(db);
    let message = match e.code() {
        Some(&SqlState::INSUFFICIENT_PRIVILEGE) => format!(
            "the role {user} may not connect to database {db} ({shown}): rehearse stats needs CONNECT on it \
             (GRANT CONNECT ON DATABASE {} TO {})",
            quote_ident(db),
            quote_ident(user)
        ),
        Some(&SqlState::INVALID_PASSWORD) | Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => format!(
            "cannot log in to {shown}: check the user and password (in the URL or PGPASSWORD), \
             that the role has LOGIN, and the server's pg_hba.conf"
        ),
        _ => format!(
            "cannot connect to {shown}: check the URL, that the server is up and reachable from here, \
             and its pg_hba.conf (rehearse connects without TLS)"
        ),
    };
    Error::environment_because(message, e)
}

fn read_error(server: &ConnInfo, timeout: Duration, e: tokio_postgres::Error) -> Error {
    let shown = server.masked(&server.dbname);
    let message = match e.code() {
        Some(&SqlState::INSUFFICIENT_PRIVILEGE) => format!(
            "the role {user} cannot read the catalog of {shown}: rehearse stats reads pg_class, pg_index and \
             pg_namespace, which every role may read unless that was revoked; grant it back \
             (GRANT SELECT ON pg_catalog.pg_class, pg_catalog.pg_index, pg_catalog.pg_namespace TO {role}) \
             or use a role that can",
            user = server.user,
            role = quote_ident(&server.user),
        ),
        Some(&SqlState::QUERY_CANCELED) => format!(
            "reading the statistics of {shown} took longer than --timeout {}: a relation may be locked \
             ACCESS EXCLUSIVE (a long ALTER TABLE, VACUUM FULL or CLUSTER, or its replay on a standby), which \
             pg_relation_size waits for; run again when it is done, or give a longer --timeout",
            humantime::format_duration(timeout)
        ),
        // On a hot standby, replay cancels queries in its way (a recovery conflict).
        Some(&SqlState::T_R_SERIALIZATION_FAILURE) => {
            format!("the standby {shown} cancelled the read to replay WAL (a recovery conflict): run again")
        }
        _ => format!("cannot read the statistics of {shown}"),
    };
    Error::environment_because(message, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("2days").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
