//! What the restored database records as applied: rehearse's own tracking
//! table and the history table the scenario names (Flyway, golang-migrate,
//! sqlx), for versioned migrations and Flyway repeatables alike.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use super::files::{normalize, SqlFile};
use super::DEFAULT_TABLE;
use crate::catalog;
use crate::error::{ErrorKind, Result};

/// What the restored database says is applied.
pub struct History {
    /// Normalized versions recorded one by one (rehearse's table, Flyway, sqlx).
    applied: BTreeSet<String>,
    /// golang-migrate keeps one row: the current version; all before it are applied.
    applied_up_to: Option<Vec<u128>>,
    /// golang-migrate's (table, version) marked dirty: it failed part way.
    pub dirty: Option<(String, String)>,
    /// Flyway's latest run of each repeatable, by description (what Flyway
    /// matches repeatables by: `MigrationInfoServiceImpl` keys them so).
    flyway_runs: BTreeMap<String, RepeatableRun>,
    /// The checksum rehearse's table recorded for each repeatable it applied, by script.
    own_runs: BTreeMap<String, Option<i32>>,
}

/// The latest history row of a repeatable.
struct RepeatableRun {
    checksum: Option<i32>,
    /// A successful run of the SQL script (not a failure, nor a `DELETE` marker).
    applied: bool,
}

/// The key rehearse's tracking table records `key` under: `app/key` when
/// the scenario lists several apps, so their folders do not collide.
pub fn own_key(app: Option<&str>, key: &str) -> String {
    match app {
        Some(app) => format!("{app}/{key}"),
        None => key.to_string(),
    }
}

/// The key of a repeatable in rehearse's tracking table (before the app prefix).
pub fn repeatable_key(script: &str) -> String {
    format!("R:{script}")
}

impl History {
    /// Reads rehearse's table (the rows of `app` only, when set) and
    /// `table`, where they exist. Reads only: nothing is created.
    pub async fn read(db: &Client, table: Option<&str>, app: Option<&str>) -> Result<History> {
        let mut history = History {
            applied: BTreeSet::new(),
            applied_up_to: None,
            dirty: None,
            flyway_runs: BTreeMap::new(),
            own_runs: BTreeMap::new(),
        };
        history.read_own_table(db, app).await?;
        if let Some(table) = table.filter(|t| *t != DEFAULT_TABLE && *t != "rehearse_schema_migrations") {
            history.read_tool_table(db, table).await?;
        }
        Ok(history)
    }

    /// Whether the versioned `file` is recorded as applied.
    pub fn records(&self, file: &SqlFile) -> bool {
        self.applied.contains(&file.normalized_version())
            || self.applied_up_to.as_ref().is_some_and(|max| &file.version <= max)
    }

    /// Whether the repeatable `file` has ever been recorded as applied.
    pub fn knows_repeatable(&self, file: &SqlFile) -> bool {
        self.flyway_runs.contains_key(&file.description) || self.own_runs.contains_key(&file.script)
    }

    /// Why the repeatable `file` is not applied again: its latest run
    /// recorded one of `checksums` (Flyway's, and the raw file's, which
    /// Flyway accepts as equivalent). None when it is pending.
    pub fn unchanged(&self, file: &SqlFile, checksums: [i32; 2]) -> Option<String> {
        let same = |c: &Option<i32>| c.filter(|c| checksums.contains(c));
        if let Some(c) = self.flyway_runs.get(&file.description).filter(|r| r.applied).and_then(|r| same(&r.checksum)) {
            return Some(format!("repeatable, unchanged since production applied it (checksum {c})"));
        }
        let c = same(self.own_runs.get(&file.script)?)?;
        Some(format!("repeatable, unchanged since it was last applied ({DEFAULT_TABLE} records checksum {c})"))
    }

    async fn read_own_table(&mut self, db: &Client, app: Option<&str>) -> Result<()> {
        let env = |e| ErrorKind::CatalogReadFailed.because("cannot read the migration tracking table", e);
        if !catalog::table_exists(db, DEFAULT_TABLE).await.map_err(env)? {
            return Ok(());
        }
        // Tables written before rehearse recorded repeatables have no checksum column.
        let columns = catalog::table_columns(db, DEFAULT_TABLE).await.map_err(env)?;
        let checksum = if columns.iter().any(|c| c == "checksum") { "checksum" } else { "NULL::int" };
        let sql = format!("SELECT version, {checksum} FROM {DEFAULT_TABLE}");
        for row in db.query(&sql, &[]).await.map_err(env)? {
            let key: String = row.get(0);
            let key = match app {
                Some(app) => match key.strip_prefix(app).and_then(|k| k.strip_prefix('/')) {
                    Some(k) => k.to_string(),
                    None => continue,
                },
                None => key,
            };
            if let Some(script) = key.strip_prefix("R:") {
                self.own_runs.insert(script.to_string(), row.get(1));
            } else {
                self.applied.insert(key);
            }
        }
        Ok(())
    }

    /// Reads another tool's history table, when the dump has it: Flyway's
    /// (`version`, `success`, and its repeatables), golang-migrate's
    /// (`version`, `dirty`), sqlx's.
    async fn read_tool_table(&mut self, db: &Client, table: &str) -> Result<()> {
        let env =
            |e| ErrorKind::CatalogReadFailed.because(format!("cannot read the migration history table {table}"), e);
        if !catalog::table_exists(db, table).await.map_err(env)? {
            return Ok(());
        }
        let columns = catalog::table_columns(db, table).await.map_err(env)?;
        let has = |c: &str| columns.iter().any(|x| x == c);
        if !has("version") {
            return Err(ErrorKind::MigrationsInvalid.error(format!(
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
        if has("description") && has("checksum") && has("installed_rank") {
            self.read_flyway_repeatables(db, table, &has).await?;
        }
        Ok(())
    }

    /// The latest row of each repeatable (`version IS NULL`) by
    /// `installed_rank`, as Flyway's `getLatestRepeatableRuns` picks it: a
    /// failed run or a `DELETE` marker there makes the script pending.
    async fn read_flyway_repeatables(&mut self, db: &Client, table: &str, has: &dyn Fn(&str) -> bool) -> Result<()> {
        let env =
            |e| ErrorKind::CatalogReadFailed.because(format!("cannot read the repeatable migrations of {table}"), e);
        let success = if has("success") { "success" } else { "true" };
        let sql_type = if has("type") { "\"type\" = 'SQL'" } else { "true" };
        let sql = format!(
            "SELECT DISTINCT ON (description) description::text, checksum::int4, {success} AND {sql_type} \
             FROM {table} WHERE version IS NULL AND description IS NOT NULL \
             ORDER BY description, installed_rank DESC"
        );
        for row in db.query(&sql, &[]).await.map_err(env)? {
            let run = RepeatableRun { checksum: row.get(1), applied: row.get::<_, Option<bool>>(2).unwrap_or(false) };
            self.flyway_runs.insert(row.get(0), run);
        }
        Ok(())
    }
}
