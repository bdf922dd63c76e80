//! `rehearse stats`: production's size statistics (`rehearse.stats/v1`),
//! read from a primary or a hot standby over one connection, in one
//! read-only transaction of catalog reads, and written as JSON for an
//! estimate. Sizes only: no row of any table is read.

use std::time::{Duration, SystemTime};

use clap::Args;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::production::{self, ProductionArgs};
use crate::backend::url;
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::estimate::stats::{ProductionStats, DDL_SETTINGS, STATS_SCHEMA};
use crate::report::format_bytes;
use crate::sys::db::{quote_ident, ConnInfo};

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub production: ProductionArgs,
}

/// Runs `rehearse stats` and returns the exit code.
pub async fn command(args: StatsArgs) -> i32 {
    production::exit_code(stats(&args).await)
}

async fn stats(args: &StatsArgs) -> Result<()> {
    let args = &args.production;
    let server = url::parse(&args.url)?;
    let stats = read(&server, args.timeout).await?;
    production::write_json(&stats, args.out.as_deref(), "statistics")?;
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
    let client = production::connect(server, "stats").await?;
    let taken_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stats = read_in_transaction(&client, taken_at, timeout).await.map_err(|e| read_error(server, timeout, e))?;
    Ok(stats)
}

/// One read-only transaction ([`production::begin_read_only`]); its
/// statement_timeout bounds a wait for a relation locked ACCESS EXCLUSIVE,
/// which pg_relation_size waits for.
async fn read_in_transaction(
    client: &Client,
    taken_at: String,
    timeout: Duration,
) -> Result<ProductionStats, tokio_postgres::Error> {
    production::begin_read_only(client, timeout).await?;
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
        _ => production::recovery_conflict(server, &e)
            .unwrap_or_else(|| format!("cannot read the statistics of {shown}")),
    };
    let kind = match e.code() {
        Some(&SqlState::QUERY_CANCELED) => ErrorKind::TimedOut,
        _ => ErrorKind::CatalogReadFailed,
    };
    kind.because(message, e)
}
