//! Plain SQL migration folders (Flyway, golang-migrate, sqlx, dbmate style):
//! files ordered by version prefix (`files.rs`), split into statements by
//! Postgres's own parser (`split.rs`), each file in one transaction unless
//! it holds a statement that cannot run in one (`run.rs`).

mod files;
mod run;
mod split;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use tokio_postgres::Client;

use super::{Applied, Found, Migration, Target};
use crate::catalog;
use crate::error::{Error, Result};
use files::normalize;
pub use files::{parse_file_name, SqlFile};
pub use split::{split, Statement};

/// The tracking table rehearse records applied files in.
pub const DEFAULT_TABLE: &str = "public.rehearse_schema_migrations";
const CREATE_DEFAULT_TABLE: &str = "CREATE TABLE IF NOT EXISTS public.rehearse_schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms bigint
)";

/// What the scenario says of an SQL source besides its folder.
#[derive(Debug, Clone, Default)]
pub struct SqlOptions {
    /// `migrations.table`: production's history table (Flyway, golang-migrate, sqlx).
    pub table: Option<String>,
    /// `migrations.placeholders`: the values of Flyway's `${name}` placeholders.
    pub placeholders: BTreeMap<String, String>,
    /// The app's name when the scenario lists several sources.
    pub app: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SqlDir {
    /// Read pg_locks after each statement (off with `--no-observe`).
    pub exact_locks: bool,
    table: Option<String>,
    files: Vec<SqlFile>,
}

impl SqlDir {
    /// Lists and orders the folder's migration files; a bad name or a
    /// duplicate version is bad input.
    pub fn scan(dir: &Path, options: SqlOptions) -> Result<SqlDir> {
        let table = options.table;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::bad_input_because(format!("cannot list migrations folder {}", dir.display()), e))?;
        let mut by_version: BTreeMap<Vec<u128>, SqlFile> = BTreeMap::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(parsed) = parse_file_name(&name) else {
                continue;
            };
            let (version, description) = parsed.map_err(|m| Error::bad_input(format!("{}: {m}", dir.display())))?;
            let file = SqlFile { path: entry.path(), version: version.clone(), description };
            if let Some(other) = by_version.insert(version, file) {
                return Err(Error::bad_input(format!(
                    "{}: {} and {} have the same version {}: give one of them a new number",
                    dir.display(),
                    other.path.file_name().unwrap_or_default().to_string_lossy(),
                    name,
                    other.normalized_version()
                )));
            }
        }
        if by_version.is_empty() {
            return Err(Error::bad_input(format!(
                "migrations folder {} holds no *.sql migration files: add files such as 0001_add_users.sql",
                dir.display()
            )));
        }
        Ok(SqlDir { exact_locks: true, table, files: by_version.into_values().collect() })
    }

    pub fn files(&self) -> &[SqlFile] {
        &self.files
    }

    /// `migrations.table`: production's history table, when the scenario names one.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// Files not recorded in rehearse's tracking table, nor in the table the
    /// scenario names (Flyway, golang-migrate or sqlx history) when present.
    pub async fn pending(&self, db: &Client) -> Result<Found> {
        let env = |e| Error::environment_because("cannot read the migration tracking table", e);
        db.batch_execute(CREATE_DEFAULT_TABLE).await.map_err(env)?;
        let history = self.history(db).await?;
        if let Some((table, version)) = &history.dirty {
            return Err(Error::bad_input(format!(
                "tracking table {table} marks version {version} dirty (it failed part way in \
                 production): fix that database first, then re-take the dump"
            )));
        }
        Ok(self
            .files
            .iter()
            .filter(|f| !history.records(f))
            .map(|f| Migration {
                id: f.id(),
                version: f.normalized_version(),
                description: f.description.clone(),
                file: Some(f.path.clone()),
                parents: Vec::new(),
                offline_sql: None,
                ..Migration::default()
            })
            .collect::<Vec<_>>()
            .into())
    }

    /// The files the database records as applied (by id), and a `dirty`
    /// line when golang-migrate's table says a version failed part way:
    /// what a race is judged by. Reads only: nothing is created.
    pub async fn applied(&self, db: &Client) -> Result<Vec<String>> {
        let history = self.history(db).await?;
        let mut out: Vec<String> = self.files.iter().filter(|f| history.records(f)).map(|f| f.id()).collect();
        if let Some((table, version)) = history.dirty {
            out.push(format!("{table}: version {version} dirty"));
        }
        Ok(out)
    }

    /// What rehearse's tracking table and the scenario's table record, where they exist.
    async fn history(&self, db: &Client) -> Result<History> {
        let env = |e| Error::environment_because("cannot read the migration tracking table", e);
        let mut history = History { applied: BTreeSet::new(), applied_up_to: None, dirty: None };
        if catalog::table_exists(db, DEFAULT_TABLE).await.map_err(env)? {
            let rows = db.query("SELECT version FROM public.rehearse_schema_migrations", &[]).await.map_err(env)?;
            history.applied = rows.iter().map(|r| r.get(0)).collect();
        }
        if let Some(table) = self.table.as_deref().filter(|t| *t != DEFAULT_TABLE && *t != "rehearse_schema_migrations")
        {
            history.read_tool_table(db, table).await?;
        }
        Ok(history)
    }

    /// Applies one file: in one transaction, unless it holds a statement
    /// that cannot run in one or manages its own transactions.
    pub async fn apply(&self, migration: &Migration, target: &Target<'_>) -> Applied {
        run::apply(migration, target, self.exact_locks).await
    }
}

/// What the restored database says is applied.
struct History {
    /// Normalized versions recorded one by one (rehearse's table, Flyway, sqlx).
    applied: BTreeSet<String>,
    /// golang-migrate keeps one row: the current version; all before it are applied.
    applied_up_to: Option<Vec<u128>>,
    /// golang-migrate's (table, version) marked dirty: it failed part way.
    dirty: Option<(String, String)>,
}

impl History {
    /// Whether `file` is recorded as applied.
    fn records(&self, file: &SqlFile) -> bool {
        self.applied.contains(&file.normalized_version())
            || self.applied_up_to.as_ref().is_some_and(|max| &file.version <= max)
    }
}

impl History {
    /// Reads another tool's history table, when the dump has it: Flyway's
    /// (`version`, `success`), golang-migrate's (`version`, `dirty`), sqlx's.
    async fn read_tool_table(&mut self, db: &Client, table: &str) -> Result<()> {
        let env = |e| Error::environment_because(format!("cannot read the migration history table {table}"), e);
        if !catalog::table_exists(db, table).await.map_err(env)? {
            return Ok(());
        }
        let columns = catalog::table_columns(db, table).await.map_err(env)?;
        let has = |c: &str| columns.iter().any(|x| x == c);
        if !has("version") {
            return Err(Error::bad_input(format!(
                "tracking table {table} has no `version` column; rehearse reads its own, Flyway's, \
                 golang-migrate's and sqlx's layouts"
            )));
        }
        let filter = if has("success") { " WHERE success" } else { "" };
        let dirty = if has("dirty") { "dirty" } else { "false" };
        let sql = format!("SELECT version::text, {dirty} FROM {table}{filter}");
        for row in db.query(&sql, &[]).await.map_err(env)? {
            let Some(version) = row.get::<_, Option<String>>(0) else { continue };
            let parsed: Option<Vec<u128>> = version.split(['.', '_']).map(|c| c.parse().ok()).collect();
            let Some(parsed) = parsed else { continue };
            if !has("dirty") {
                self.applied.insert(normalize(&parsed));
            } else if row.get::<_, bool>(1) {
                self.dirty = Some((table.to_string(), version));
            } else {
                self.applied_up_to = self.applied_up_to.take().max(Some(parsed));
            }
        }
        Ok(())
    }
}
