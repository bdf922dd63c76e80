//! Proof that the migrations ran on the throwaway database. A tool that
//! connects through settings of its own (Airflow's env.py reads
//! `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`; a Django app its settings module)
//! can migrate another database, or a SQLite file, and exit 0. Whatever the
//! tool said, rehearse reads the copy itself:
//!
//! - Alembic: after the release, the version table on the copy must hold
//!   the last revision each app applied (read on the copy, not through
//!   env.py);
//! - Django: likewise, `django_migrations` on the copy must hold the last
//!   migration applied (`app.name`);
//! - a command tool: each `apply` that exited 0 must have opened a session
//!   on the copy (`pg_stat_database.sessions`, PostgreSQL 14+).
//!
//! A mismatch is exit 4, never a PASSED.

use std::time::Duration;

use tokio_postgres::Client;

use crate::catalog;
use crate::error::{ErrorKind, Result};
use crate::migrations::{Migration, MigrationTool};
use crate::report::{MigrationFacts, MigrationStatus};

/// How the message ends: where the usual cause is, and what to do.
const OWN_SETTINGS: &str = "the tool connects through settings of its own (an env.py or settings module that reads \
     its own variable, or a fallback to SQLite when that is unset): set them in migrations.env, e.g. \
     AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: \"{sqlalchemy_url}\" (docs/migrations.md, \"An env.py that reads its own settings\")";

/// How long a session of the tool may take to show in the statistics after
/// the tool exited: a backend flushes its counters when it exits, which is
/// after its client closed the socket.
const FLUSH_WAIT: Duration = Duration::from_secs(3);

/// Sessions established on the copy's database so far; None before
/// PostgreSQL 14 (no `pg_stat_database.sessions`).
pub async fn sessions(client: &Client) -> Result<Option<i64>> {
    catalog::sessions_established(client).await.map_err(|e| {
        ErrorKind::CatalogReadFailed.because("cannot read how many sessions the throwaway database has had", e)
    })
}

/// Fails unless a session was established on the copy since `before`
/// (what [`sessions`] read before the command ran).
pub async fn command_connected(client: &Client, before: Option<i64>, migration: &Migration) -> Result<()> {
    let Some(before) = before else { return Ok(()) };
    let waited = std::time::Instant::now();
    loop {
        if sessions(client).await?.is_some_and(|now| now > before) {
            return Ok(());
        }
        if waited.elapsed() >= FLUSH_WAIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ErrorKind::WrongDatabase.error(format!(
        "the migrations did not run against the throwaway database: migrations.apply for {} exited 0 without \
         opening a session on it (pg_stat_database.sessions did not move); {OWN_SETTINGS}",
        migration.shown_id()
    )))
}

/// One source's history as the copy records it, read before the release.
pub struct History {
    pub app: Option<String>,
    pub tool: MigrationTool,
    pub table: String,
    /// The rows before the release; None: no such table yet.
    pub before: Option<Vec<String>>,
}

impl History {
    pub async fn read(client: &Client, app: Option<String>, tool: MigrationTool, table: String) -> Result<History> {
        // Only Alembic's table is checked (`check`), and only it has `version_num`:
        // reading an SQL source's history that way fails on a dump that has one.
        let before = match tool {
            MigrationTool::Alembic | MigrationTool::Django => rows_of(tool, client, &table).await?,
            _ => None,
        };
        Ok(History { app, tool, table, before })
    }

    /// Fails when every migration of this source applied and the copy's
    /// history does not hold the last of them.
    pub async fn check(&self, client: &Client, migrations: &[Migration], facts: &[MigrationFacts]) -> Result<()> {
        if !matches!(self.tool, MigrationTool::Alembic | MigrationTool::Django) {
            return Ok(());
        }
        let ours: Vec<(&Migration, &MigrationFacts)> =
            migrations.iter().zip(facts).filter(|(m, _)| m.app == self.app).collect();
        let Some((last, _)) = ours.last() else { return Ok(()) };
        if ours.iter().any(|(_, f)| f.status() != MigrationStatus::Applied) {
            return Ok(());
        }
        let now = rows_of(self.tool, client, &self.table).await?;
        // A downgrade's last revision is the release's first: undone, the history no longer holds it.
        let holds = now.as_ref().is_some_and(|rows| rows.contains(&last.id));
        if holds != last.downgrade {
            return Ok(());
        }
        let shown = |rows: &Option<Vec<String>>| match rows {
            None => "absent".to_string(),
            Some(rows) if rows.is_empty() => "empty".to_string(),
            Some(rows) => rows.join(", "),
        };
        let stayed = match now == self.before {
            true => format!("stayed at {}", shown(&now)),
            false => format!("went from {} to {}", shown(&self.before), shown(&now)),
        };
        Err(ErrorKind::WrongDatabase.error(format!(
            "the migrations did not run against the throwaway database: {} reported {} {} migration(s) up \
             to {}, but the copy's {} {stayed}; {OWN_SETTINGS}",
            match self.tool {
                MigrationTool::Django => "Django",
                _ => "Alembic",
            },
            if last.downgrade { "downgrading" } else { "applying" },
            ours.len(),
            last.shown_id(),
            self.table
        )))
    }
}

/// The history rows of a tool whose table rehearse knows.
async fn rows_of(tool: MigrationTool, client: &Client, table: &str) -> Result<Option<Vec<String>>> {
    match tool {
        MigrationTool::Django => catalog::django_history(client).await.map(Some).map_err(|e| {
            ErrorKind::CatalogReadFailed.because(format!("cannot read {table} on the throwaway database"), e)
        }),
        _ => version_rows(client, table).await,
    }
}

async fn version_rows(client: &Client, table: &str) -> Result<Option<Vec<String>>> {
    catalog::alembic_version(client, table)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because(format!("cannot read {table} on the throwaway database"), e))
}
