//! `rehearse stats`: production's size statistics (`rehearse.stats/v1`),
//! read from a primary or a hot standby over one connection, in one
//! read-only transaction of catalog reads, and written as JSON for an
//! estimate. Sizes only: no row of any table is read.

use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::production::{self, ProductionArgs};
use crate::backend::url;
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::estimate::stats::{Activity, ProductionStats, DDL_SETTINGS, MIGRATION_SETTINGS, STATS_SCHEMA};
use crate::report::format_bytes;
use crate::sys::db::{quote_ident, ConnInfo};

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub production: ProductionArgs,

    /// Also sample production's pg_stat_activity and pg_locks once a second for this long (e.g. 60s, between 1s
    /// and 24h) and record, per table, the oldest transaction seen holding a lock on it (a report, a pg_dump, a
    /// long batch): the long transactions a migration's lock would queue behind (`activity` in the file; tables
    /// and ages only, no query text). Read-only and light. Other roles' sessions need pg_read_all_stats.
    #[arg(long, value_name = "DURATION", value_parser = parse_activity)]
    pub activity: Option<Duration>,

    /// The role production's migrations run as (default: the user of --url): its attributes, memberships and
    /// login settings are recorded (`role` in the file), for a scenario's `production: { as_role: true }`.
    #[arg(long, value_name = "NAME")]
    pub role: Option<String>,
}

/// An `--activity` duration.
fn parse_activity(text: &str) -> Result<Duration, String> {
    super::duration_within(
        text,
        Duration::from_secs(1)..=Duration::from_secs(24 * 3600),
        "between 1s and 24h, e.g. 60s",
    )
}

/// Runs `rehearse stats` and returns the exit code.
pub async fn command(args: StatsArgs) -> i32 {
    production::exit_code(stats(&args).await)
}

async fn stats(args: &StatsArgs) -> Result<()> {
    let (activity, role_args) = (args.activity, args);
    let args = &args.production;
    let server =
        url::with_password_command(url::parse(&args.url)?, args.password_command.as_deref(), "--password-command");
    let role = role_args.role.clone().unwrap_or_else(|| server.user.clone());
    let stats = read(&server, args.timeout, activity, &role).await?;
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
    if let Some(role) = &stats.role {
        eprintln!(
            "recorded the role {}{} with {} login setting(s), and {} server setting(s)",
            role.name,
            if role.superuser { " (a superuser)" } else { "" },
            role.settings.len(),
            stats.server_settings.len()
        );
    }
    if let Some(activity) = &stats.activity {
        let longest = activity.long_transactions.first();
        eprintln!(
            "sampled the sessions of {} for {:.0} s: {} table(s) locked by a transaction{}",
            stats.database,
            activity.sampled_seconds,
            activity.long_transactions.len(),
            longest.map(|l| format!(", the oldest {} ms old on {}", l.max_age_ms, l.table)).unwrap_or_default()
        );
    }
    if let Some(path) = &args.out {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Reads production's statistics from `server` over one connection, then
/// samples its sessions for `activity` when given.
pub async fn read(
    server: &ConnInfo,
    timeout: Duration,
    activity: Option<Duration>,
    role: &str,
) -> Result<ProductionStats> {
    let client = production::connect(server, "stats").await?;
    let taken_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let mut stats =
        read_in_transaction(&client, taken_at, timeout, role).await.map_err(|e| read_error(server, timeout, e))?;
    if stats.role.is_none() {
        return Err(ErrorKind::StatisticsInvalid.error(format!(
            "--role {role}: no such role on {}: name the role production's migrations run as",
            server.masked(&server.dbname)
        )));
    }
    if let Some(duration) = activity {
        stats.activity =
            Some(sample_activity(&client, duration, timeout).await.map_err(|e| read_error(server, timeout, e))?);
    }
    Ok(stats)
}

/// Samples the sessions holding locks on tables once a second for
/// `duration`, the first sample at once and the last `duration` after it.
/// Each sample is its own statement outside a transaction block: in one,
/// pg_stat_activity would show the same snapshot throughout. The session
/// is read-only by default and each sample bounded by `timeout`.
async fn sample_activity(
    client: &Client,
    duration: Duration,
    timeout: Duration,
) -> Result<Activity, tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "SET default_transaction_read_only = on; SET statement_timeout = '{}ms'",
            timeout.as_millis()
        ))
        .await?;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    // A slow sample delays the next rather than bunching samples up.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    loop {
        ticks.tick().await;
        samples.push(catalog::table_lock_holders(client).await?);
        if started.elapsed() >= duration {
            break;
        }
    }
    let seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    Ok(Activity::from_samples(seconds, samples.iter().map(Vec::as_slice)))
}

/// One read-only transaction ([`production::begin_read_only`]); its
/// statement_timeout bounds a wait for a relation locked ACCESS EXCLUSIVE,
/// which pg_relation_size waits for.
async fn read_in_transaction(
    client: &Client,
    taken_at: String,
    timeout: Duration,
    role: &str,
) -> Result<ProductionStats, tokio_postgres::Error> {
    production::begin_read_only(client, timeout).await?;
    let server_version = catalog::server_version(client).await?;
    let (database, in_recovery) = catalog::database_and_recovery(client).await?;
    let settings = catalog::settings(client, &DDL_SETTINGS).await?.into_iter().collect();
    let relations = catalog::production_relations(client).await?;
    let role = catalog::migration_role(client, role).await?;
    let server_settings = catalog::server_settings(client, &MIGRATION_SETTINGS).await?.into_iter().collect();
    client.batch_execute("COMMIT").await?;
    Ok(ProductionStats {
        schema: STATS_SCHEMA.to_string(),
        taken_at,
        server_version,
        database,
        in_recovery,
        settings,
        relations,
        activity: None,
        role,
        server_settings,
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
