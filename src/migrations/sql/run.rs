//! Running one SQL file, statement by statement, on rehearse's own session,
//! reading after each statement, inside its transaction, the relation locks
//! it took (exact, however short the statement). A statement that cannot
//! run in a transaction block commits its own work and releases its locks as
//! it ends, so the statement watcher reads them while it runs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_postgres::SimpleQueryMessage;

use super::explain;
use super::split::{split, Statement};
use super::DEFAULT_TABLE;
use crate::catalog;
use crate::migrations::{taken_by_statement, Applied, Target};
use crate::observe::watch::WatchedLock;
use crate::pg::LockMode;
use crate::report::{LockSource, MigrationError, StatementLock, StatementReport};
use crate::sys::db::describe_pg_error;

/// What runs for one migration: its file, and the Flyway callbacks that run
/// around it in its transaction, placeholders replaced; and how it is recorded.
pub struct Script {
    /// In order: `beforeEachMigrate` callbacks, the file, `afterEachMigrate` callbacks.
    pub parts: Vec<Part>,
    /// The row rehearse's tracking table gets (none for a callback).
    pub record: Option<Record>,
}

pub struct Part {
    pub path: PathBuf,
    pub text: String,
    /// The migration's own file, rather than a callback run around it.
    pub main: bool,
}

/// A row of rehearse's tracking table.
pub struct Record {
    /// The normalized version, or `R:<script>` for a repeatable (`app/` before either with several apps).
    pub key: String,
    pub name: String,
    /// A repeatable's Flyway checksum.
    pub checksum: Option<i32>,
}

/// A statement and the script it comes from.
struct Located<'a> {
    stmt: Statement<'a>,
    part: &'a Part,
}

/// Applies one file; `exact_locks`: read each statement's locks
/// (observation on); `started`: when the migration started (its file read).
pub async fn apply(target: &Target<'_>, exact_locks: bool, script: Script, started: Instant) -> Applied {
    let mut applied = Applied::default();
    let mut statements = Vec::new();
    for part in &script.parts {
        match split(&part.text) {
            Ok(s) => statements.extend(s.into_iter().map(|stmt| Located { stmt, part })),
            Err(message) if part.main => {
                applied.error = Some(MigrationError::new(format!("the file does not parse as SQL: {message}")));
                return applied;
            }
            Err(message) => {
                let shown = part.path.display();
                applied.error = Some(MigrationError::new(format!("callback {shown} does not parse as SQL: {message}")));
                return applied;
            }
        }
    }
    let in_transaction = !statements.iter().any(|s| s.stmt.needs_own_transaction);
    let own_transactions = statements.iter().any(|s| s.stmt.controls_transaction);
    let mut run = FileRun {
        record: script.record.as_ref(),
        target,
        exact_locks,
        started,
        in_transaction,
        own_transactions,
        held: HashSet::new(),
        wal: 0,
        lock_timeout_ms: 0,
        applied: &mut applied,
    };
    if let Err(mut error) = run.execute(&statements).await {
        if in_transaction {
            let _ = target.client.batch_execute("ROLLBACK /*rehearse*/").await;
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
                lock.exact_hold = true;
            }
        }
    }
    applied
}

/// One file being run: where it stands, and what it found so far.
struct FileRun<'a, 'b> {
    record: Option<&'a Record>,
    target: &'a Target<'b>,
    exact_locks: bool,
    started: Instant,
    /// The whole file runs in one transaction.
    in_transaction: bool,
    /// The file has its own BEGIN/COMMIT: it manages its transactions.
    own_transactions: bool,
    /// Locks the current transaction already holds: a statement is credited
    /// only with the locks it added.
    held: HashSet<(i64, LockMode)>,
    /// WAL insert position after the previous statement.
    wal: u64,
    lock_timeout_ms: u64,
    applied: &'a mut Applied,
}

impl FileRun<'_, '_> {
    async fn execute(&mut self, statements: &[Located<'_>]) -> Result<(), MigrationError> {
        let db = self.target.client;
        if let Some(timeout) = self.target.lock_timeout {
            // Session-wide, before the file's transaction: the file's own SET
            // lock_timeout still wins for what follows it, and rehearse
            // resets the session after each migration.
            let set = format!("SET lock_timeout = '{}' /*rehearse*/", crate::migrations::retry::setting(timeout));
            db.batch_execute(&set).await.map_err(failed)?;
        }
        if self.exact_locks {
            let now = catalog::own_locks(db).await.map_err(failed)?;
            (self.wal, self.lock_timeout_ms) = (now.wal, now.lock_timeout_ms);
        }
        if self.in_transaction {
            db.batch_execute("BEGIN /*rehearse*/").await.map_err(failed)?;
        }
        for stmt in statements {
            self.statement(stmt).await?;
        }
        self.record().await?;
        if self.in_transaction {
            // COMMIT can fail too (deferred constraints).
            db.batch_execute("COMMIT /*rehearse*/").await.map_err(failed)?;
        }
        Ok(())
    }

    async fn statement(&mut self, located: &Located<'_>) -> Result<(), MigrationError> {
        let (stmt, file) = (&located.stmt, located.part.path.as_path());
        let db = self.target.client;
        // Statements of a file that runs outside a transaction still get a
        // transaction each when they can, so their locks can be read before
        // they are released. A file with its own BEGIN/COMMIT is left to
        // manage them: locks are still read after each statement, holds
        // come from the sampler.
        let wrap = !self.in_transaction && !self.own_transactions && !stmt.needs_own_transaction;
        if wrap {
            db.batch_execute("BEGIN /*rehearse*/").await.map_err(failed)?;
            self.held.clear();
        }
        let mut report = self.starting(located);
        let watching = match (stmt.needs_own_transaction && !stmt.controls_transaction, self.target.watcher) {
            (true, Some(watcher)) if self.exact_locks => Some(watcher.watch()),
            _ => None,
        };
        let explained = self.target.explain_memory && explain::explainable(stmt.sql);
        let sent = if explained { explain::wrap(stmt.sql) } else { stmt.sql.to_string() };
        let t0 = Instant::now();
        let outcome = tokio::select! {
            r = db.simple_query(&sent) => r,
            _ = self.target.cancel.cancelled() => {
                crate::sys::db::cancel(&self.target.conn.tls, db).await;
                return Err(self.interrupted(stmt, file, report, t0));
            }
        };
        report.duration_ms = millis(t0.elapsed());
        if let Some(watching) = watching {
            report.locks.extend(watched_locks(watching.finish().await, report.duration_ms));
        }
        let messages = match outcome {
            Ok(messages) => messages,
            Err(e) => {
                if wrap {
                    let _ = db.batch_execute("ROLLBACK /*rehearse*/").await;
                }
                self.applied.statements.push(report);
                // An error's position counts from the start of what was sent.
                let offset = if explained { crate::catalog::EXPLAIN_MEMORY.chars().count() } else { 0 };
                return Err(statement_error(file, stmt, &e, offset));
            }
        };
        report.rows = rows(&messages);
        if explained {
            (report.rows, report.memory) = explain::read(&messages);
        }
        if self.exact_locks {
            self.read_own_locks(&mut report).await?;
        }
        if stmt.controls_transaction {
            self.held.clear();
        }
        if wrap {
            self.commit_wrapped(&mut report).await?;
        }
        self.applied.statements.push(report);
        Ok(())
    }

    /// The statement's report as it starts: what runs, where it stands in
    /// the migration's file, when, under which lock_timeout.
    fn starting(&self, located: &Located<'_>) -> StatementReport {
        let stmt = &located.stmt;
        StatementReport {
            query: stmt.sql.to_string(),
            // A line of the migration's file; a callback's statement has none there.
            line: located.part.main.then_some(stmt.line),
            duration_ms: 0,
            rows: 0,
            count: 1,
            wal_bytes: None,
            locks: Vec::new(),
            lock_timeout_ms: Some(self.lock_timeout_ms),
            started_ms: millis(self.started.elapsed()),
            memory: Vec::new(),
        }
    }

    /// Commits the transaction rehearse wrapped the statement in: the
    /// statement's own locks were held from its start until now.
    async fn commit_wrapped(&mut self, report: &mut StatementReport) -> Result<(), MigrationError> {
        self.target.client.batch_execute("COMMIT /*rehearse*/").await.map_err(failed)?;
        let held_ms = millis(self.started.elapsed()).saturating_sub(report.started_ms);
        for lock in report.locks.iter_mut().filter(|l| l.source == LockSource::Statement) {
            (lock.held_ms, lock.exact_hold) = (held_ms, true);
        }
        Ok(())
    }

    /// The locks the session holds after the statement, less those it held
    /// before; the WAL it wrote; the lock_timeout in force now. A nameless
    /// lock is on a relation the statement dropped; the observers name it
    /// from their snapshot taken before the migration.
    async fn read_own_locks(&mut self, report: &mut StatementReport) -> Result<(), MigrationError> {
        let now = catalog::own_locks(self.target.client).await.map_err(failed)?;
        report.wal_bytes = Some(now.wal.saturating_sub(self.wal));
        (self.wal, self.lock_timeout_ms) = (now.wal, now.lock_timeout_ms);
        for lock in now.locks {
            if self.held.insert((lock.oid, lock.mode)) {
                report.locks.push(taken_by_statement(lock));
            }
        }
        Ok(())
    }

    /// Cancelled by a signal or by the migration's deadline (the caller knows
    /// which): keeps the statement that was running.
    fn interrupted(
        &mut self,
        stmt: &Statement<'_>,
        file: &Path,
        mut report: StatementReport,
        t0: Instant,
    ) -> MigrationError {
        self.applied.interrupted = true;
        report.duration_ms = millis(t0.elapsed());
        self.applied.statements.push(report);
        MigrationError {
            statement: Some(stmt.sql.to_string()),
            file: Some(file.display().to_string()),
            line: Some(stmt.line),
            ..MigrationError::new("interrupted by a signal while this statement ran")
        }
    }

    /// Records the file in rehearse's tracking table (a callback is not recorded).
    async fn record(&mut self) -> Result<(), MigrationError> {
        let Some(r) = self.record else { return Ok(()) };
        let record = format!(
            "/*rehearse*/ INSERT INTO {DEFAULT_TABLE} (version, name, duration_ms, checksum) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (version) DO UPDATE SET name = excluded.name, applied_at = now(), \
             duration_ms = excluded.duration_ms, checksum = excluded.checksum"
        );
        let ms = millis(self.started.elapsed()) as i64;
        self.target
            .client
            .execute(&record, &[&r.key, &r.name, &ms, &r.checksum])
            .await
            .map(|_| ())
            .map_err(|e| MigrationError::new(format!("cannot record the migration: {}", describe_pg_error(&e))))
    }
}

/// The granted locks the watcher saw, each held no longer than the statement.
fn watched_locks(seen: Vec<WatchedLock>, duration_ms: u64) -> Vec<StatementLock> {
    seen.into_iter()
        .filter(|l| l.granted)
        .map(|l| StatementLock {
            relation: l.name,
            oid: l.oid,
            kind: l.kind,
            mode: l.mode,
            held_ms: millis(l.held).min(duration_ms),
            source: LockSource::Watched,
            exact_hold: false,
        })
        .collect()
}

/// The rows the statement's commands report (INSERT, UPDATE, DELETE, ...).
fn rows(messages: &[SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .sum()
}

fn failed(e: tokio_postgres::Error) -> MigrationError {
    MigrationError::new(describe_pg_error(&e))
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The failed statement's error, at its line in the file: `offset` is how
/// many characters were sent before the statement's own (an EXPLAIN).
fn statement_error(file: &Path, stmt: &Statement<'_>, e: &tokio_postgres::Error, offset: usize) -> MigrationError {
    let mut line = stmt.line;
    let db = e.as_db_error();
    if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) = db.and_then(|d| d.position()) {
        let before: String = stmt.sql.chars().take((*pos as usize).saturating_sub(1 + offset)).collect();
        line += before.matches('\n').count();
    }
    MigrationError {
        message: describe_pg_error(e),
        statement: Some(stmt.sql.to_string()),
        file: Some(file.display().to_string()),
        line: Some(line),
        sqlstate: db.map(|d| d.code().code().to_string()),
    }
}
