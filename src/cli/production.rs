//! Reading production safely, as `rehearse stats` and `rehearse queries`
//! both do: one connection, one read-only transaction bounded by
//! `--timeout`, messages that name the server without its password, and
//! the JSON written whole or not at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::error::{exit, Error, Result};
use crate::report::write_atomically;
use crate::sys::db::{self, ConnInfo};
use crate::sys::refusal;

/// The production database to read, and where the JSON goes.
#[derive(Debug, Args)]
pub struct ProductionArgs {
    /// The production database to read, e.g. postgres://stats@db.internal:5432/app: a primary or a hot
    /// standby. Without a password in the URL, PGPASSWORD is used.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// A shell command that prints the password (e.g. `aws rds generate-db-auth-token ...`), run before
    /// each connection; its output is never shown. For passwords that expire (cloud IAM tokens).
    #[arg(long, value_name = "COMMAND")]
    pub password_command: Option<String>,

    /// Write the JSON to FILE (atomically: the whole file or none) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Give up when reading takes longer than this (the transaction's statement_timeout), e.g. 5m for a
    /// busy server or a database with very many relations. Between 1s and 24h.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// A `--timeout` for reading production.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    // statement_timeout = 0 would mean no timeout at all; past 24h it is no guard either.
    super::duration_within(
        text,
        Duration::from_secs(1)..=Duration::from_secs(24 * 3600),
        "between 1s and 24h, e.g. 60s or 5m",
    )
}

/// The exit code of a command, its error printed.
pub fn exit_code(result: Result<()>) -> i32 {
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("{}", e.render());
            e.exit_code()
        }
    }
}

/// Connects to `server` as `rehearse <command>`; a refusal says what to fix.
pub async fn connect(server: &ConnInfo, command: &str) -> Result<Client> {
    let name = format!("rehearse {command}");
    db::connect(server, &server.dbname, &name).await.map_err(|e| refusal::cannot_connect("--url", server, e))
}

/// One transaction, so every figure comes from the same snapshot. READ ONLY
/// so that nothing can be written even by mistake; REPEATABLE READ named
/// rather than the server's default, because a standby refuses SERIALIZABLE
/// (a production default some shops set). statement_timeout bounds any wait
/// for a lock.
pub async fn begin_read_only(client: &Client, timeout: Duration) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = '{}ms'",
            timeout.as_millis()
        ))
        .await
}

/// Writes `value` as pretty JSON to `out` (atomically) or stdout.
pub fn write_json(value: &impl Serialize, out: Option<&Path>, what: &str) -> Result<()> {
    let mut json = serde_json::to_string_pretty(value)
        .map_err(|e| Error::environment_because(format!("cannot render the {what} as JSON"), e))?;
    json.push('\n');
    match out {
        Some(path) => write_atomically(path, json.as_bytes(), &format!("{what} file"), "--out"),
        None => {
            print!("{json}");
            Ok(())
        }
    }
}

/// A hot standby cancels queries in the way of replay (a recovery conflict).
pub fn recovery_conflict(server: &ConnInfo, e: &tokio_postgres::Error) -> Option<String> {
    (e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)).then(|| {
        format!(
            "the standby {} cancelled the read to replay WAL (a recovery conflict): run again",
            server.masked(&server.dbname)
        )
    })
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
