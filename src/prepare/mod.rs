//! Server settings around the restore: fast and unsafe while restoring, then
//! `VACUUM ANALYZE`, `CHECKPOINT`, and durable, prod-like settings for the
//! rehearsal so timings and WAL are those production would see.
//!
//! The fast settings of `backend::settings::FAST_RESTORE` are reloadable (context `sighup` or
//! `user` in pg_settings, PostgreSQL 9.5+). On a server rehearse owns, the
//! restore also runs with `wal_level = minimal` (`FAST_RESTORE_AT_START`),
//! which needs a restart each way; it is worth it because pg_restore then
//! writes no WAL for the data it loads and the indexes it builds (with
//! `--jobs`, pg_restore truncates each table it created in the transaction
//! that loads it, and TRUNCATE is among the operations the manual's
//! `wal_level` entry lists as skipping WAL at `minimal`; see also
//! "Populating a Database", 14.4.7 in the PostgreSQL 15 manual). On 2 cores it made the
//! restore of the 1 GB bench database 10% faster and its WAL 870 MB smaller.
//! The server is back at the default `wal_level = replica` before any
//! migration runs, so the WAL the report shows is what production writes.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

mod vacuum;

use crate::backend::settings::{fast_restore_names, FAST_RESTORE, FAST_RESTORE_AT_START};
use crate::backend::Throwaway;
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::db::{self, quote_ident, quote_literal};

/// Settings shown in the report's environment section.
pub const REPORTED: &[&str] = &[
    "server_version",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "checkpoint_timeout",
    "fsync",
    "full_page_writes",
    "synchronous_commit",
    "wal_level",
    "autovacuum",
    // On by default from PostgreSQL 18's initdb: it WAL-logs hint bits, so
    // WAL and full-page images depend on it (see the release notes of 18).
    "data_checksums",
];

async fn alter_system(client: &Client, name: &str, value: Option<&str>) -> Result<(), tokio_postgres::Error> {
    let sql = match value {
        Some(v) => format!("ALTER SYSTEM SET {} = {}", quote_ident(name), quote_literal(v)),
        None => format!("ALTER SYSTEM RESET {}", quote_ident(name)),
    };
    client.batch_execute(&sql).await
}

/// Switches the server to the fast restore settings (on a shared server,
/// only those our database may set for itself), restarting a server
/// rehearse owns for `wal_level`. Returns a connection made afterwards.
pub async fn fast_restore_settings(server: &mut Throwaway, app: &str, cancel: &CancellationToken) -> Result<Client> {
    let admin = reconnect(server, app, cancel).await?;
    if let Some(shared) = server.shared_database() {
        let limitations = shared.fast_restore_settings(&admin).await?;
        server.note_limitations(limitations);
        return Ok(admin);
    }
    for (name, value) in FAST_RESTORE.iter().chain(FAST_RESTORE_AT_START) {
        alter_system(&admin, name, Some(value))
            .await
            .map_err(|e| ErrorKind::CatalogReadFailed.because(format!("cannot set {name} for the restore"), e))?;
    }
    drop(admin);
    // The database is still empty, so this restart is quick (its shutdown checkpoint has nothing to write).
    server.restart(cancel).await?;
    let admin = reconnect(server, app, cancel).await?;
    let env = |e| ErrorKind::CatalogReadFailed.because("cannot read server settings", e);
    let now = catalog::settings(&admin, &["fsync", "wal_level"]).await.map_err(env)?;
    if now.iter().map(|(_, v)| v.as_str()).ne(["off", "minimal"]) {
        let running: Vec<String> = now.iter().map(|(n, v)| format!("{n}={v}")).collect();
        return Err(Error::environment(format!(
            "the server did not take the fast restore settings after a restart (it runs with {}): \
             check its log, or rerun with --keep and inspect it",
            running.join(", ")
        )));
    }
    Ok(admin)
}

/// VACUUM ANALYZE and CHECKPOINT the fresh restore, then back to durable
/// settings: the state a snapshot cache entry saves. `wal_level` is back at
/// the next restart: the snapshot's, or [`apply_settings`]'s.
pub async fn settle(server: &Throwaway, db: &Client, jobs: u32, cancel: &CancellationToken) -> Result<()> {
    let env = |e| ErrorKind::CatalogReadFailed.because("preparing the restored database failed", e);
    vacuum::vacuum_analyze(server, db, jobs, cancel).await?;
    if server.shared_database().is_some() {
        // Never CHECKPOINT, ALTER SYSTEM or reload a server rehearse does not own.
        return Ok(());
    }
    db.batch_execute("CHECKPOINT").await.map_err(env)?;
    for name in fast_restore_names() {
        alter_system(db, name, None).await.map_err(env)?;
    }
    reload(db, "fsync", "on").await
}

/// The scenario's prod-like settings, checked to have taken effect
/// (restarting the server when one needs it).
pub async fn apply_settings(
    server: &mut Throwaway,
    db: &Client,
    settings: &[(String, String)],
    cancel: &CancellationToken,
) -> Result<()> {
    let env = |e| ErrorKind::CatalogReadFailed.because("applying the scenario's settings failed", e);
    if let Some(shared) = server.shared_database() {
        // Never ALTER SYSTEM, reload or restart a server rehearse does not own.
        let limitations = shared.prod_settings(db, settings).await?;
        server.note_limitations(limitations);
        return Ok(());
    }
    for (name, value) in settings {
        alter_system(db, name, Some(value)).await.map_err(|e| {
            ErrorKind::ScenarioInvalid
                .because(format!("postgres.settings.{name} = `{value}` was refused by the server"), e)
        })?;
    }
    client_reload(db).await?;
    let unapplied = catalog::unapplied_file_settings(db).await.map_err(env)?;
    let needs_restart = catalog::pending_restart(db).await.map_err(env)?;
    if !needs_restart.is_empty() {
        server.restart(cancel).await?;
    } else if let Some((name, why)) = unapplied.first() {
        return Err(ErrorKind::ScenarioInvalid.error(format!("postgres.settings.{name} could not be applied: {why}")));
    }
    Ok(())
}

async fn client_reload(client: &Client) -> Result<()> {
    client
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot reload the server configuration", e))
}

/// Reloads the configuration and waits until `probe` reads `expected`, since
/// pg_reload_conf only signals the postmaster and returns at once.
async fn reload(client: &Client, probe: &str, expected: &str) -> Result<()> {
    client_reload(client).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = catalog::settings(client, &[probe])
            .await
            .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot read server settings", e))?;
        if now.first().map(|(_, v)| v.as_str()) == Some(expected) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::environment(format!(
                "the server did not pick up {probe} = {expected} within 10s of a configuration reload"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reconnects after a restart: the old connections are gone.
pub async fn reconnect(server: &Throwaway, app: &str, cancel: &CancellationToken) -> Result<Client> {
    let conn = server.conn();
    db::connect_when_ready(conn, &conn.dbname, app, Duration::from_secs(30), cancel).await
}
