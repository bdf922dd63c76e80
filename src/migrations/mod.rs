//! Migration sources: where pending migrations come from and how one is
//! applied. One file per tool; this enum lists them.

pub mod sql;

use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::plan::MigrationsPlan;
use crate::report::{MigrationError, StatementReport};

/// One pending migration, in apply order.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Stable id shown in reports (for SQL files, the file name without `.sql`).
    pub id: String,
    /// Normalized version as recorded in the tracking table ("3", "1.2").
    pub version: String,
    pub description: String,
    pub file: PathBuf,
}

/// What applying one migration did.
#[derive(Debug, Default)]
pub struct Applied {
    pub duration: Duration,
    pub statements: Vec<StatementReport>,
    /// Set when the migration failed.
    pub error: Option<MigrationError>,
    pub interrupted: bool,
}

pub enum MigrationSource {
    Sql(sql::SqlDir),
}

impl MigrationSource {
    pub fn from_plan(plan: &MigrationsPlan) -> Result<MigrationSource> {
        match plan {
            MigrationsPlan::Sql { dir, table } => Ok(MigrationSource::Sql(sql::SqlDir::scan(dir, table.clone())?)),
        }
    }

    /// The tool's name as the report spells it.
    pub fn tool(&self) -> &'static str {
        match self {
            MigrationSource::Sql(_) => "sql",
        }
    }

    /// Migrations the restored database has not applied yet, in order.
    pub async fn pending(&self, db: &Client) -> Result<Vec<Migration>> {
        match self {
            MigrationSource::Sql(s) => s.pending(db).await,
        }
    }

    /// Applies one migration on `db`, a connection of its own.
    pub async fn apply(&self, migration: &Migration, db: &Client, cancel: &CancellationToken) -> Applied {
        match self {
            MigrationSource::Sql(s) => s.apply(migration, db, cancel).await,
        }
    }
}
