//! Plain SQL migration folders (Flyway, golang-migrate, sqlx, dbmate style):
//! files ordered by version prefix, split into statements by Postgres's own
//! parser (pg_query), each file in one transaction unless it holds a
//! statement that cannot run in one.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pg_query::NodeEnum;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tokio_util::sync::CancellationToken;

use super::{Applied, Migration};
use crate::catalog;
use crate::db::describe_pg_error;
use crate::error::{Error, Result};
use crate::observe::queries;
use crate::report::{MigrationError, StatementLock, StatementReport};

/// The tracking table rehearse records applied files in.
pub const DEFAULT_TABLE: &str = "public.rehearse_schema_migrations";
const CREATE_DEFAULT_TABLE: &str = "CREATE TABLE IF NOT EXISTS public.rehearse_schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms bigint
)";

/// A migration file and its parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFile {
    pub path: PathBuf,
    /// Numeric components of the version prefix, for natural ordering.
    pub version: Vec<u128>,
    pub description: String,
}

impl SqlFile {
    pub fn normalized_version(&self) -> String {
        normalize(&self.version)
    }

    fn id(&self) -> String {
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        name.trim_end_matches(".sql").trim_end_matches(".up").to_string()
    }
}

fn normalize(version: &[u128]) -> String {
    version.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(".")
}

/// Reads a version prefix from a file name: `V2__x.sql` (Flyway: `__`
/// separates, `.` or `_` split components), `0003_x.sql`, `20240101120000_x.up.sql`.
/// Returns None for files that are not forward migrations (`.down.sql`,
/// Flyway's repeatable `R__` and undo `U1__`) and Err for a file with no version.
pub fn parse_file_name(name: &str) -> Option<Result<(Vec<u128>, String), String>> {
    let stem = name.strip_suffix(".sql")?;
    if stem.ends_with(".down") || stem.starts_with("R__") || (stem.starts_with('U') && stem.contains("__")) {
        return None;
    }
    let stem = stem.strip_suffix(".up").unwrap_or(stem);
    let (version_text, description) = match stem.split_once("__") {
        Some((v, d)) => (v.strip_prefix(['V', 'v']).unwrap_or(v), d),
        None => {
            let digits = stem.find(|c: char| !c.is_ascii_digit()).unwrap_or(stem.len());
            (&stem[..digits], stem[digits..].trim_start_matches(['_', '-', '.']))
        }
    };
    let version: Option<Vec<u128>> =
        version_text.split(['.', '_']).map(|c| if c.is_empty() { None } else { c.parse().ok() }).collect();
    Some(match version {
        Some(v) if !v.is_empty() => Ok((v, description.replace(['_', '-'], " ").trim().to_string())),
        _ => Err(format!(
            "migration file {name} has no version prefix: name it like 0001_add_users.sql, V1__add_users.sql \
             or 20240101120000_add_users.sql"
        )),
    })
}

pub struct SqlDir {
    /// Read pg_locks after each statement (off with `--no-observe`).
    pub exact_locks: bool,
    table: Option<String>,
    files: Vec<SqlFile>,
}

impl SqlDir {
    /// Lists and orders the folder's migration files; a bad name or a
    /// duplicate version is bad input.
    pub fn scan(dir: &Path, table: Option<String>) -> Result<SqlDir> {
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

    /// Files not recorded in rehearse's tracking table, nor in the table the
    /// scenario names (Flyway, golang-migrate or sqlx history) when present.
    pub async fn pending(&self, db: &Client) -> Result<Vec<Migration>> {
        let env = |e| Error::environment_because("cannot read the migration tracking table", e);
        db.batch_execute(CREATE_DEFAULT_TABLE).await.map_err(env)?;
        let rows = db.query("SELECT version FROM public.rehearse_schema_migrations", &[]).await.map_err(env)?;
        let mut applied: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
        let mut applied_up_to: Option<Vec<u128>> = None;
        if let Some(table) = self.table.as_deref().filter(|t| *t != DEFAULT_TABLE && *t != "rehearse_schema_migrations")
        {
            if catalog::table_exists(db, table).await.map_err(env)? {
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
                    let Some(version) = row.get::<_, Option<String>>(0) else {
                        continue;
                    };
                    let parsed: Option<Vec<u128>> = version.split(['.', '_']).map(|c| c.parse().ok()).collect();
                    let Some(parsed) = parsed else { continue };
                    if has("dirty") {
                        // golang-migrate keeps one row: the current version; all before it are applied.
                        if row.get::<_, bool>(1) {
                            return Err(Error::bad_input(format!(
                                "tracking table {table} marks version {version} dirty (it failed part way in \
                                 production): fix that database first, then re-take the dump"
                            )));
                        }
                        applied_up_to = applied_up_to.max(Some(parsed));
                    } else {
                        applied.insert(normalize(&parsed));
                    }
                }
            }
        }
        Ok(self
            .files
            .iter()
            .filter(|f| !applied.contains(&f.normalized_version()))
            .filter(|f| applied_up_to.as_ref().is_none_or(|max| &f.version > max))
            .map(|f| Migration {
                id: f.id(),
                version: f.normalized_version(),
                description: f.description.clone(),
                file: Some(f.path.clone()),
                parents: Vec::new(),
                offline_sql: None,
            })
            .collect())
    }

    pub async fn apply(&self, migration: &Migration, db: &Client, cancel: &CancellationToken) -> Applied {
        let started = Instant::now();
        let mut applied = Applied::default();
        let path = migration.file.clone().unwrap_or_default();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                applied.error = Some(MigrationError::new(format!("cannot read {}: {e}", path.display())));
                return applied;
            }
        };
        let statements = match split(&text) {
            Ok(s) => s,
            Err(message) => {
                applied.error = Some(MigrationError::new(format!("the file does not parse as SQL: {message}")));
                return applied;
            }
        };
        let in_transaction = !statements.iter().any(|s| s.needs_own_transaction);
        let own_transactions = statements.iter().any(|s| s.controls_transaction);
        let result = self
            .execute(migration, &statements, in_transaction, own_transactions, started, db, cancel, &mut applied)
            .await;
        if let Err(mut error) = result {
            if in_transaction {
                let _ = db.batch_execute("ROLLBACK /*rehearse*/").await;
            } else if applied.statements.len() > 1 {
                let done = applied.statements.len() - 1;
                error.message = format!(
                    "{}\n({done} earlier statement(s) of this file had already been applied and stay applied: \
                     the file runs outside a transaction because it holds a statement that cannot run in one)",
                    error.message
                );
            }
            applied.error = Some(error);
        }
        applied.duration = started.elapsed();
        if in_transaction {
            // Every lock of a transaction is released at its end, so each was
            // held from the start of the statement that took it until then.
            let end = millis(applied.duration);
            for stmt in &mut applied.statements {
                for lock in &mut stmt.locks {
                    lock.held_ms = end.saturating_sub(stmt.started_ms);
                }
            }
        }
        applied
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        migration: &Migration,
        statements: &[Statement<'_>],
        in_transaction: bool,
        own_transactions: bool,
        started: Instant,
        db: &Client,
        cancel: &CancellationToken,
        applied: &mut Applied,
    ) -> Result<(), MigrationError> {
        let failed = |e: tokio_postgres::Error| MigrationError::new(describe_pg_error(&e));
        let (_, mut wal, mut lock_timeout) = match self.exact_locks {
            true => queries::own_locks(db).await.map_err(failed)?,
            false => (Vec::new(), 0, 0),
        };
        if in_transaction {
            db.batch_execute("BEGIN /*rehearse*/").await.map_err(failed)?;
        }
        // Locks the current transaction already holds: a statement is credited
        // only with the locks it added.
        let mut held: HashSet<(i64, String)> = HashSet::new();
        for stmt in statements {
            // Statements of a file that runs outside a transaction still get a
            // transaction each when they can, so their locks can be read
            // before they are released.
            // A file with its own BEGIN/COMMIT is left to manage them: locks
            // are still read after each statement, holds come from the sampler.
            let wrap = !in_transaction && !own_transactions && !stmt.needs_own_transaction;
            if wrap {
                db.batch_execute("BEGIN /*rehearse*/").await.map_err(failed)?;
                held.clear();
            }
            let started_ms = millis(started.elapsed());
            let t0 = Instant::now();
            let outcome = tokio::select! {
                r = db.simple_query(stmt.sql) => r,
                _ = cancel.cancelled() => {
                    let _ = db.cancel_token().cancel_query(NoTls).await;
                    applied.interrupted = true;
                    // Cancelled by a signal or by the migration's deadline (the
                    // caller knows which): keep the statement that was running.
                    applied.statements.push(StatementReport {
                        query: stmt.sql.to_string(),
                        line: Some(stmt.line),
                        duration_ms: millis(t0.elapsed()),
                        rows: 0,
                        wal_bytes: None,
                        locks: Vec::new(),
                        lock_timeout_ms: Some(lock_timeout),
                        started_ms,
                    });
                    return Err(MigrationError {
                        statement: Some(stmt.sql.to_string()),
                        file: migration.file.as_ref().map(|f| f.display().to_string()),
                        line: Some(stmt.line),
                        ..MigrationError::new("interrupted by a signal while this statement ran")
                    });
                }
            };
            let elapsed = t0.elapsed();
            let rows = match &outcome {
                Ok(msgs) => msgs
                    .iter()
                    .filter_map(|m| match m {
                        SimpleQueryMessage::CommandComplete(n) => Some(*n),
                        _ => None,
                    })
                    .sum(),
                Err(_) => 0,
            };
            let mut report = StatementReport {
                query: stmt.sql.to_string(),
                line: Some(stmt.line),
                duration_ms: millis(elapsed),
                rows,
                wal_bytes: None,
                locks: Vec::new(),
                lock_timeout_ms: Some(lock_timeout),
                started_ms,
            };
            if let Err(e) = outcome {
                if wrap {
                    let _ = db.batch_execute("ROLLBACK /*rehearse*/").await;
                }
                applied.statements.push(report);
                return Err(statement_error(migration, stmt, &e));
            }
            let (locks, wal_after, timeout_after) = match self.exact_locks {
                true => queries::own_locks(db).await.map_err(failed)?,
                false => (Vec::new(), 0, 0),
            };
            report.wal_bytes = self.exact_locks.then(|| wal_after.saturating_sub(wal));
            (wal, lock_timeout) = (wal_after, timeout_after);
            // A nameless lock is on a relation the statement dropped; the
            // observers name it from their snapshot taken before the migration.
            for lock in locks {
                if held.insert((lock.oid, lock.mode.clone())) {
                    report.locks.push(StatementLock {
                        relation: lock.name,
                        oid: lock.oid,
                        kind: lock.kind,
                        mode: lock.mode,
                        held_ms: 0,
                    });
                }
            }
            if stmt.controls_transaction {
                held.clear();
            }
            if wrap {
                db.batch_execute("COMMIT /*rehearse*/").await.map_err(failed)?;
                let held_ms = millis(started.elapsed()).saturating_sub(started_ms);
                report.locks.iter_mut().for_each(|l| l.held_ms = held_ms);
            }
            applied.statements.push(report);
        }
        let record = format!(
            "/*rehearse*/ INSERT INTO {DEFAULT_TABLE} (version, name, duration_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (version) DO UPDATE SET name = excluded.name, applied_at = now(), duration_ms = excluded.duration_ms"
        );
        let name =
            migration.file.as_ref().and_then(|f| f.file_name()).unwrap_or_default().to_string_lossy().into_owned();
        let ms = millis(started.elapsed()) as i64;
        db.execute(&record, &[&migration.version, &name, &ms])
            .await
            .map_err(|e| MigrationError::new(format!("cannot record the migration: {}", describe_pg_error(&e))))?;
        if in_transaction {
            // COMMIT can fail too (deferred constraints).
            db.batch_execute("COMMIT /*rehearse*/").await.map_err(failed)?;
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn statement_error(migration: &Migration, stmt: &Statement<'_>, e: &tokio_postgres::Error) -> MigrationError {
    let mut line = stmt.line;
    let db = e.as_db_error();
    if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) = db.and_then(|d| d.position()) {
        let before: String = stmt.sql.chars().take((*pos as usize).saturating_sub(1)).collect();
        line += before.matches('\n').count();
    }
    MigrationError {
        message: describe_pg_error(e),
        statement: Some(stmt.sql.to_string()),
        file: migration.file.as_ref().map(|f| f.display().to_string()),
        line: Some(line),
        sqlstate: db.map(|d| d.code().code().to_string()),
    }
}

/// One statement of a file, as Postgres splits it.
#[derive(Debug)]
pub struct Statement<'a> {
    pub sql: &'a str,
    /// 1-based line in the file where the statement starts.
    pub line: usize,
    /// CREATE INDEX CONCURRENTLY and friends cannot run inside a transaction
    /// block; explicit BEGIN/COMMIT means the file manages its own.
    pub needs_own_transaction: bool,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT...: the file manages its transactions.
    pub controls_transaction: bool,
}

/// Splits a file into statements with pg_query (Postgres's own grammar), so
/// semicolons in strings, dollar quotes and comments are handled as the server does.
pub fn split(text: &str) -> Result<Vec<Statement<'_>>, String> {
    let pieces = pg_query::split_with_parser(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for piece in pieces {
        let offset = piece.as_ptr() as usize - text.as_ptr() as usize;
        let skip = leading_comments_len(piece);
        let sql = piece[skip..].trim_end();
        if sql.is_empty() {
            continue;
        }
        let line = 1 + text[..offset + skip].matches('\n').count();
        let controls_transaction = matches!(first_node(sql), Some(NodeEnum::TransactionStmt(_)));
        out.push(Statement { sql, line, needs_own_transaction: needs_own_transaction(sql), controls_transaction });
    }
    Ok(out)
}

fn leading_comments_len(s: &str) -> usize {
    let mut i = 0;
    loop {
        let rest = &s[i..];
        let trimmed = rest.trim_start();
        i += rest.len() - trimmed.len();
        if trimmed.starts_with("--") {
            i += trimmed.find('\n').map(|n| n + 1).unwrap_or(trimmed.len());
        } else if trimmed.starts_with("/*") {
            i += trimmed.find("*/").map(|n| n + 2).unwrap_or(trimmed.len());
        } else {
            return i;
        }
    }
}

fn first_node(sql: &str) -> Option<NodeEnum> {
    pg_query::parse(sql, 0).ok()?.protobuf.stmts.into_iter().next()?.stmt?.node
}

fn needs_own_transaction(sql: &str) -> bool {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return false;
    };
    parsed.protobuf.stmts.iter().filter_map(|raw| raw.stmt.as_ref().and_then(|s| s.node.as_ref())).any(|node| {
        match node {
            NodeEnum::IndexStmt(s) => s.concurrent,
            NodeEnum::DropStmt(s) => s.concurrent,
            NodeEnum::ReindexStmt(s) => s.params.iter().any(|p| {
                matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")
            }),
            NodeEnum::VacuumStmt(s) => s.is_vacuumcmd,
            NodeEnum::AlterTableStmt(s) => s.cmds.iter().any(|c| {
                matches!(&c.node, Some(NodeEnum::AlterTableCmd(cmd))
                    if matches!(cmd.def.as_ref().and_then(|d| d.node.as_ref()), Some(NodeEnum::PartitionCmd(p)) if p.concurrent))
            }),
            NodeEnum::TransactionStmt(_)
            | NodeEnum::CreatedbStmt(_)
            | NodeEnum::DropdbStmt(_)
            | NodeEnum::AlterSystemStmt(_)
            | NodeEnum::CreateTableSpaceStmt(_)
            | NodeEnum::DropTableSpaceStmt(_)
            | NodeEnum::CreateSubscriptionStmt(_)
            | NodeEnum::DropSubscriptionStmt(_) => true,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(name: &str) -> Vec<u128> {
        parse_file_name(name).unwrap().unwrap().0
    }

    #[test]
    fn versions_order_naturally() {
        assert!(version("V2__x.sql") < version("V10__y.sql"));
        assert_eq!(version("0003_x.sql"), vec![3]);
        assert_eq!(version("V1_1__split.sql"), vec![1, 1]);
        assert_eq!(version("20240101120000_x.up.sql"), vec![20240101120000]);
        assert!(parse_file_name("20240101120000_x.down.sql").is_none());
        assert!(parse_file_name("R__views.sql").is_none());
        assert!(parse_file_name("README.md").is_none());
        assert!(parse_file_name("add_users.sql").unwrap().is_err());
    }

    #[test]
    fn split_keeps_lines_and_finds_non_transactional_statements() {
        let text = "-- header\nCREATE TABLE t (a text DEFAULT ';');\n\n/* c */ CREATE INDEX CONCURRENTLY i ON t (a);\nDO $$ BEGIN PERFORM 1; END $$;\n";
        let stmts = split(text).unwrap();
        assert_eq!(stmts.len(), 3);
        assert_eq!((stmts[0].line, stmts[0].needs_own_transaction), (2, false));
        assert!(stmts[0].sql.starts_with("CREATE TABLE"));
        assert_eq!((stmts[1].line, stmts[1].needs_own_transaction), (4, true));
        assert!(!stmts[2].needs_own_transaction);
        assert!(split("BEGIN; SELECT 1; COMMIT;").unwrap()[0].needs_own_transaction);
        assert!(split("VACUUM t").unwrap()[0].needs_own_transaction);
        assert!(!split("ANALYZE t").unwrap()[0].needs_own_transaction);
        assert!(split("SELEC 1").is_err());
    }
}
