//! Production as `rehearse watch` reads it: one read-only session on the
//! primary (and one on each `--standby-url`), each statement bounded, and
//! one [`Reading`] per interval: history rows, sessions, progress, lag.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::release::{History, Release};
use super::track::{LagReading, Reading};
use crate::catalog::{self, HistoryRows};
use crate::error::{Error, ErrorKind, Result};
use crate::kinds::MigrationTool;
use crate::migrations::sql::DEFAULT_TABLE;
use crate::pg::PgVersion;
use crate::sys::db::{self, ConnInfo};
use crate::sys::refusal;

/// `application_name` of every watch session: production's own monitoring can tell it apart.
pub const APPLICATION_NAME: &str = "rehearse watch";

/// How often an unreachable standby is tried again.
const RECONNECT: Duration = Duration::from_secs(5);

/// A read-only session: `default_transaction_read_only` so that nothing is
/// written even by mistake, `statement_timeout` on every query, and a
/// `lock_timeout` so that a read of the history table never queues for
/// long behind the migration's lock (where later requests would queue behind it).
pub async fn connect_read_only(server: &ConnInfo, what: &str, timeout: Duration) -> Result<Client> {
    let client = db::connect(server, &server.dbname, APPLICATION_NAME)
        .await
        .map_err(|e| refusal::cannot_connect(what, server, e))?;
    let lock_timeout = timeout.min(Duration::from_secs(1));
    client
        .batch_execute(&format!(
            "SET default_transaction_read_only = on; SET statement_timeout = '{}ms'; SET lock_timeout = '{}ms'",
            timeout.as_millis(),
            lock_timeout.as_millis()
        ))
        .await
        .map_err(|e| read_failed(server, "set up the read-only session", e))?;
    Ok(client)
}

fn read_failed(server: &ConnInfo, what: &str, e: tokio_postgres::Error) -> Error {
    ErrorKind::CatalogReadFailed.because(
        format!("cannot {what} on {}: check the server, then run watch again", server.masked(&server.dbname)),
        e,
    )
}

/// The primary, and what it has recorded so far.
pub struct Primary {
    pub server: ConnInfo,
    client: Client,
    version: PgVersion,
    applied: BTreeSet<usize>,
    wal: Option<(Instant, u64)>,
}

/// A standby named by `--standby-url`, while it answers.
pub struct Standby {
    pub server: ConnInfo,
    client: Option<Client>,
    tried: Instant,
    timeout: Duration,
}

impl Primary {
    /// Connects; a hot standby is refused (the migration runs on the primary, and only it shows its sessions).
    pub async fn connect(server: ConnInfo, timeout: Duration) -> Result<Primary> {
        let client = connect_read_only(&server, "--url", timeout).await?;
        let failed = |e| read_failed(&server, "read the server's version", e);
        let version = catalog::server_version_num(&client).await.map_err(failed)?;
        let (_, in_recovery) = catalog::database_and_recovery(&client).await.map_err(failed)?;
        if in_recovery {
            return Err(ErrorKind::ArgumentsInvalid.error(format!(
                "--url {} is a hot standby: name the primary, where the release runs (a standby goes in \
                 --standby-url)",
                server.masked(&server.dbname)
            )));
        }
        Ok(Primary { server, client, version, applied: BTreeSet::new(), wal: None })
    }

    /// The settings the session runs with, read back: `default_transaction_read_only=on statement_timeout=5s`.
    pub async fn settings(&self) -> Result<String> {
        let mut out = Vec::new();
        for name in ["default_transaction_read_only", "statement_timeout", "lock_timeout"] {
            let row = self.client.query_one(&format!("SHOW {name}"), &[]).await;
            let value: String = row.map_err(|e| read_failed(&self.server, "read its settings", e))?.get(0);
            out.push(format!("{name}={value}"));
        }
        Ok(out.join(" "))
    }

    /// One reading of production; standbys that do not answer are marked so.
    pub async fn read(&mut self, release: &Release, standbys: &mut [Standby]) -> Result<Reading> {
        let failed = |e| read_failed(&self.server, "read production's sessions", e);
        for history in &release.histories {
            if let Some(rows) = self.history(history).await? {
                self.applied.extend(applied(release, history, &rows));
            }
        }
        let sessions = catalog::watched_sessions(&self.client, self.version).await.map_err(failed)?;
        let active: Vec<i32> = sessions.iter().filter(|s| s.state == "active").map(|s| s.pid).collect();
        let progress = catalog::progress_of(&self.client, self.version, &active).await.map_err(failed)?;
        let lags = self.lags(standbys).await?;
        Ok(Reading { now: SystemTime::now(), applied: self.applied.clone(), sessions, progress, lags })
    }

    /// The rows of `history`; None when the table is not there yet, or
    /// could not be read this time (its lock not granted within lock_timeout).
    async fn history(&self, history: &History) -> Result<Option<HistoryRows>> {
        match catalog::history_versions(&self.client, &history.table).await {
            Ok(rows) => Ok(rows),
            Err(e) if matches!(e.code(), Some(&SqlState::LOCK_NOT_AVAILABLE) | Some(&SqlState::QUERY_CANCELED)) => {
                Ok(None)
            }
            Err(e) => Err(read_failed(&self.server, &format!("read the history table {}", history.table), e)),
        }
    }

    /// pg_stat_replication's standbys, then each `--standby-url`'s own replay position.
    async fn lags(&mut self, standbys: &mut [Standby]) -> Result<Vec<LagReading>> {
        let failed = |e| read_failed(&self.server, "read its replication state", e);
        let position = catalog::primary_position(&self.client).await.map_err(failed)?;
        let now = Instant::now();
        let rate = self.wal.map(|(at, before)| {
            let seconds = now.duration_since(at).as_secs_f64().max(0.001);
            (position.saturating_sub(before) as f64 / seconds) as u64
        });
        self.wal = Some((now, position));
        let replicas = catalog::replica_lags(&self.client).await.map_err(failed)?;
        let mut out: Vec<LagReading> = replicas
            .into_iter()
            .map(|r| LagReading {
                standby: r.name,
                bytes: Some(r.bytes),
                ms: r.ms,
                wal_bytes_per_second: rate,
                unreachable: false,
            })
            .collect();
        for standby in standbys {
            let replayed = standby.replay_position().await;
            out.push(LagReading {
                standby: standby.server.masked(&standby.server.dbname),
                bytes: replayed.map(|r| position.saturating_sub(r)),
                ms: None,
                wal_bytes_per_second: rate,
                unreachable: replayed.is_none(),
            });
        }
        Ok(out)
    }
}

impl Standby {
    /// Connects to a `--standby-url`: it must answer at the start.
    pub async fn connect(server: ConnInfo, timeout: Duration) -> Result<Standby> {
        let client = connect_read_only(&server, "--standby-url", timeout).await?;
        Ok(Standby { server, client: Some(client), tried: Instant::now(), timeout })
    }

    /// Its replay position; None while it does not answer (tried again every few seconds).
    async fn replay_position(&mut self) -> Option<u64> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) && self.tried.elapsed() >= RECONNECT {
            self.tried = Instant::now();
            self.client = connect_read_only(&self.server, "--standby-url", self.timeout).await.ok();
        }
        let position = catalog::replay_position(self.client.as_ref()?).await;
        if position.is_err() {
            self.client = None;
        }
        position.ok()
    }
}

/// The migrations of `history`'s app that `rows` record as applied.
fn applied(release: &Release, history: &History, rows: &HistoryRows) -> Vec<usize> {
    let mine: Vec<usize> =
        (0..release.migrations.len()).filter(|&i| release.migrations[i].app == history.app).collect();
    let position = |version: &str| mine.iter().position(|&i| release.migrations[i].version == version);
    if history.tool == MigrationTool::Alembic {
        // alembic_version holds the heads only: every revision up to the
        // furthest head, in the rehearsal's order, is applied.
        let furthest = rows.rows.iter().filter_map(|(v, _)| position(v)).max();
        return furthest.map(|p| mine[..=p].to_vec()).unwrap_or_default();
    }
    let own_table = history.table == DEFAULT_TABLE || history.table == "rehearse_schema_migrations";
    let versions: Vec<(Vec<u128>, bool)> = rows
        .rows
        .iter()
        .filter_map(|(v, dirty)| {
            let v = match (&history.app, own_table) {
                (Some(app), true) => v.strip_prefix(app.as_str())?.strip_prefix('/')?,
                _ => v.as_str(),
            };
            Some((parse_version(v)?, *dirty))
        })
        .collect();
    mine.into_iter()
        .filter(|&i| {
            let Some(version) = parse_version(&release.migrations[i].version) else { return false };
            versions.iter().any(|(v, dirty)| match rows.current_only {
                true => version < *v || (version == *v && !dirty),
                false => version == *v,
            })
        })
        .collect()
}

/// `3`, `0003`, `1.2` and `2026_01_05` as numbers, as SQL folders order them.
fn parse_version(v: &str) -> Option<Vec<u128>> {
    v.split(['.', '_']).map(|c| c.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    fn demo() -> Release {
        let report: Report = serde_json::from_str(include_str!("../../tests/fixtures/report-v1-demo.json")).unwrap();
        Release::of(&report)
    }

    #[test]
    fn rows_name_the_applied_migrations_by_each_tools_layout() {
        let release = demo();
        let ids = |found: Vec<usize>| found.iter().map(|&i| release.migrations[i].version.clone()).collect::<Vec<_>>();
        let own = release.histories[0].clone();
        let rows = |rows: &[(&str, bool)], current_only| HistoryRows {
            rows: rows.iter().map(|(v, d)| (v.to_string(), *d)).collect(),
            current_only,
        };
        assert_eq!(ids(applied(&release, &own, &rows(&[("3", false), ("0004", false)], false))), ["3", "4"]);
        // golang-migrate: the current version, dirty while it is applied.
        let migrate = History { table: "schema_migrations".into(), ..own.clone() };
        assert_eq!(ids(applied(&release, &migrate, &rows(&[("5", false)], true))), ["3", "4", "5"]);
        assert_eq!(ids(applied(&release, &migrate, &rows(&[("5", true)], true))), ["3", "4"]);
        let alembic = History { tool: MigrationTool::Alembic, ..own };
        assert_eq!(ids(applied(&release, &alembic, &rows(&[("4", false)], false))), ["3", "4"]);
    }
}
