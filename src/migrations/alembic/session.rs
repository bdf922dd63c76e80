//! One Alembic process applying a release's revisions, paced by rehearse:
//! `alembic upgrade <target>` runs once, as production's deploy runs it,
//! and before each revision the helper says which one it is about to run
//! and waits for rehearse's `go` (rehearse starts observing in between).
//!
//! Every time the helper reports is on its own clock, which leaves out the
//! pauses: durations, statement times and lock holds never include the
//! time rehearse spent between two revisions. A lock is held from the
//! batch of statements that took it until its transaction ends (the
//! helper reports each commit and rollback); with env.py's default, one
//! transaction for the whole release, that is at a later revision, whose
//! [`Applied::released`] carries the final holds of the earlier ones.

use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::protocol::{self, HelperEvent, TransactionEnd};
use super::{is_bookkeeping, revision_error, stops_the_run, HelperTool};
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::launch::Container;
use crate::migrations::{taken_by_statement, Applied, Migration, ReleasedHold, Target};
use crate::pg::LockMode;
use crate::report::{MigrationError, StatementReport};
use crate::sys::process::{ChildCommand, ChildError, InteractiveChild};
use crate::sys::text::last_lines;

/// How long one revision (or the start-up before the first) may run;
/// budgets (max_runtime) are the real limit.
const REVISION_DEADLINE: Duration = Duration::from_secs(24 * 3600);
/// How long a process told to stop (stdin closed: it rolls back) may take to exit.
const CLOSE_DEADLINE: Duration = Duration::from_secs(30);

pub(crate) struct Session {
    /// Which tool's helper runs (Alembic, Django): names it in messages.
    tool: &'static HelperTool,
    child: InteractiveChild,
    _container: Option<Container>,
    /// The project's folder, for the messages of events that stop the run.
    dir: std::path::PathBuf,
    /// The revision the helper waits to start, and its clock then.
    waiting: Option<(String, f64)>,
    /// From starting the process to its first revision, reported with that revision.
    startup: Option<Duration>,
    /// Why the process ended before a revision could start (env.py raised,
    /// the database refused the connection, a signal).
    early: Option<Ended>,
    ended: bool,
    /// The locks the open transaction holds.
    open: Vec<OpenLock>,
    /// The revisions that ran statements in the open transaction.
    in_transaction: Vec<String>,
    /// WAL position after the previous batch.
    wal: Option<u64>,
    /// Final holds of earlier revisions' locks, for the next `run` to report.
    released: Vec<ReleasedHold>,
}

/// How a process ended: its failure event, or how its exit went wrong.
#[derive(Default)]
struct Ended {
    failed: Option<HelperEvent>,
    exit: Option<ChildError>,
}

/// A lock a batch took, held until its transaction ends.
struct OpenLock {
    /// The migration that took it (`shown_id`).
    migration: String,
    relation: String,
    mode: LockMode,
    /// When its batch started, on the helper's clock.
    clock: f64,
    /// Its place in the current migration's statements: (statement, lock).
    at: Option<(usize, usize)>,
}

/// What one line of the helper brought.
enum Next {
    Event(HelperEvent),
    /// The helper closed stdout: it exited.
    Eof,
    /// Stopped by the run's cancellation or a deadline.
    Stopped(ChildError),
}

impl Session {
    /// Starts the helper and reads up to the first revision it is about to run.
    pub(crate) async fn start(
        tool: &'static HelperTool,
        cmd: ChildCommand,
        container: Option<Container>,
        python: &str,
        dir: &std::path::Path,
        cancel: &CancellationToken,
    ) -> Result<Session> {
        let spawned = SystemTime::now();
        let child = cmd.spawn_interactive().map_err(|e| {
            ErrorKind::MigrationToolMissing.because(
                format!(
                    "cannot start the {} helper with {python}: set migrations.python to your app's interpreter",
                    tool.name
                ),
                e,
            )
        })?;
        let mut s = Session {
            tool,
            child,
            _container: container,
            dir: dir.to_path_buf(),
            waiting: None,
            startup: None,
            early: None,
            ended: false,
            open: Vec::new(),
            in_transaction: Vec::new(),
            wal: None,
            released: Vec::new(),
        };
        s.advance(cancel, Some(spawned), python).await?;
        Ok(s)
    }

    /// Reads up to the next revision the helper is about to run (the
    /// start-up, from `spawned`, when it is the process's first), or to its end.
    async fn advance(&mut self, cancel: &CancellationToken, spawned: Option<SystemTime>, python: &str) -> Result<()> {
        let mut ended = Ended::default();
        loop {
            match self.next(cancel).await? {
                Next::Event(HelperEvent::RevisionStart { revision, at, clock }) => {
                    let started = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(at.max(0.0));
                    self.startup = spawned.and_then(|s| started.duration_since(s).ok());
                    self.waiting = Some((revision, clock));
                    return Ok(());
                }
                Next::Event(HelperEvent::Missing { message }) => {
                    return Err(ErrorKind::MigrationToolMissing
                        .error(format!("{python} cannot import {}: {message}", self.tool.name)))
                }
                Next::Event(e @ HelperEvent::Failed { .. }) => ended.failed = Some(e),
                // env.py's own statements before the first revision (the version table's creation).
                Next::Event(HelperEvent::Statement { wal, .. }) => self.wal = wal.or(self.wal),
                Next::Event(HelperEvent::Transaction { clock, .. }) => self.transaction_ended(clock, "", None),
                Next::Event(_) => {}
                Next::Eof => {
                    ended.exit = self.child.finish(CLOSE_DEADLINE).await.err();
                    break;
                }
                Next::Stopped(e) => {
                    ended.exit = Some(e);
                    break;
                }
            }
        }
        self.ended = true;
        self.early = Some(ended);
        Ok(())
    }

    /// Brings a release's running process (if any) to `id`: read on to the
    /// migration it runs next when it is between two. True when it waits
    /// for `id` (or ended before any, which `run` reports); false when a
    /// process must be started. A process about to run another migration
    /// is closed, and `other` says why that is an error.
    pub(crate) async fn reach(
        slot: &mut Option<Box<Session>>,
        id: &str,
        cancel: &CancellationToken,
        python: &str,
        other: impl FnOnce(&str) -> Error,
    ) -> Result<bool> {
        if let Some(running) = slot.as_mut().filter(|s| s.between()) {
            running.advance(cancel, None, python).await?;
        }
        if slot.as_ref().is_some_and(|s| s.ready_for(id)) {
            return Ok(true);
        }
        if let Some(running) = slot.as_mut().filter(|s| !s.ended()) {
            let waiting = running.waiting().unwrap_or("another migration").to_string();
            running.close().await;
            return Err(other(&waiting));
        }
        Ok(false)
    }

    /// Runs `migration` in the slot's process (readied by `reach` or
    /// `start`), and empties the slot once that process ended.
    pub(crate) async fn run_in(
        slot: &mut Option<Box<Session>>,
        migration: &Migration,
        target: &Target<'_>,
        history_table: &str,
    ) -> Result<Applied> {
        let Some(running) = slot.as_mut() else {
            return Err(Error::environment(format!(
                "no helper process is ready to run {}: report this as a bug",
                migration.id
            )));
        };
        let applied = running.run(migration, target, history_table).await?;
        if running.ended() {
            *slot = None;
        }
        Ok(applied)
    }

    /// The revision the helper waits to start.
    pub(crate) fn waiting(&self) -> Option<&str> {
        self.waiting.as_ref().map(|(r, _)| r.as_str())
    }

    /// Whether it is ready to run `revision`, or ended before any revision
    /// (which `run` turns into that revision's failure).
    fn ready_for(&self, revision: &str) -> bool {
        self.waiting() == Some(revision) || self.early.is_some()
    }

    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// Between two revisions, before the helper said which is next.
    fn between(&self) -> bool {
        !self.ended && self.waiting.is_none() && self.early.is_none()
    }

    /// Tells the helper to stop (stdin closed: its open transaction rolls back) and waits for it.
    pub(crate) async fn close(&mut self) {
        if !self.ended {
            let _ = self.child.finish(CLOSE_DEADLINE).await;
            self.ended = true;
        }
    }

    async fn next(&mut self, cancel: &CancellationToken) -> Result<Next> {
        loop {
            let line = match self.child.next_line(cancel, REVISION_DEADLINE).await {
                Ok(Some(line)) => line,
                Ok(None) => return Ok(Next::Eof),
                Err(e) => return Ok(Next::Stopped(e)),
            };
            let Some(event) = protocol::read_line(&line) else { continue };
            let event = event.map_err(|e| {
                Error::environment_because(
                    format!(
                        "the {} helper printed output rehearse cannot read (a different helper version, or the \
                         project printing rehearse's marker): rerun, and report it if it persists",
                        self.tool.name
                    ),
                    e,
                )
            })?;
            // A connection to another database, or no driver: the run stops here.
            if let Some(stop) = stops_the_run(&event, &self.dir, self.tool) {
                self.close().await;
                return Err(stop);
            }
            return Ok(Next::Event(event));
        }
    }

    /// Runs the revision the helper waits for (`ready_for(migration.id)`)
    /// and reads what it did, up to its end (or the process's, after the last).
    pub(crate) async fn run(
        &mut self,
        migration: &Migration,
        target: &Target<'_>,
        version_table: &str,
    ) -> Result<Applied> {
        if let Some(ended) = self.early.take() {
            return Ok(ended_before_running(self.tool, ended, migration, target));
        }
        let Some((revision, go)) = self.waiting.take() else {
            return Err(Error::environment(format!(
                "the {} process is not waiting to run {}: report this as a bug",
                self.tool.name, migration.id
            )));
        };
        let mut applied = Applied {
            startup: self.startup.take(),
            inherited: self.open.iter().map(|l| (l.relation.clone(), l.mode)).collect(),
            ..Applied::default()
        };
        let shown = migration.shown_id();
        let sent = Instant::now();
        self.child.send(&format!("go {revision}")).await.map_err(|e| {
            Error::environment_because(format!("cannot tell the {} helper to go on", self.tool.name), e)
        })?;
        let mut run = Revision { go, end: None, ended: Ended::default(), rolled_back: Vec::new(), epilogue: None };
        self.read_revision(&shown, &mut run, &mut applied, target, version_table).await?;
        let end = run.end.unwrap_or(go + sent.elapsed().as_secs_f64());
        self.holds_at_end(end, &shown, &mut applied);
        applied.duration = Duration::from_secs_f64((end - go).max(0.0));
        conclude(self.tool, &mut applied, run, migration, target);
        Ok(applied)
    }

    /// Reads the running revision's events into `run` and `applied`, up to
    /// its end, or the process's.
    async fn read_revision(
        &mut self,
        shown: &str,
        run: &mut Revision,
        applied: &mut Applied,
        target: &Target<'_>,
        version_table: &str,
    ) -> Result<()> {
        loop {
            match self.next(target.cancel).await? {
                Next::Event(e) => {
                    if self.event(e, shown, run, applied, target, version_table) {
                        return Ok(());
                    }
                }
                Next::Eof => {
                    run.ended.exit = self.child.finish(CLOSE_DEADLINE).await.err();
                    self.ended = true;
                    return Ok(());
                }
                Next::Stopped(e) => {
                    run.ended.exit = Some(e);
                    self.ended = true;
                    return Ok(());
                }
            }
        }
    }

    /// The revision's locks as its end (`end`, the helper's clock) leaves
    /// them: its own still held at least until then, those a transaction's
    /// end made final, and the earlier revisions' holds released meanwhile.
    fn holds_at_end(&mut self, end: f64, shown: &str, applied: &mut Applied) {
        if self.ended && !self.open.is_empty() {
            // The process is gone, so is its connection: the transaction rolled back.
            self.transaction_ended(end, shown, Some(&mut *applied));
        }
        for lock in self.open.iter().filter(|l| l.migration == shown) {
            // Held at least until the revision's end; the transaction's end makes it final.
            if let Some((s, l)) = lock.at {
                let held = &mut applied.statements[s].locks[l];
                (held.held_ms, held.exact_hold) = (millis(end - lock.clock), true);
            }
        }
        applied.transaction_open = !self.open.is_empty();
        applied.released = std::mem::take(&mut self.released);
    }

    /// Takes one event of the running revision into `applied`; whether the
    /// revision is over (the helper now waits for the next).
    fn event(
        &mut self,
        event: HelperEvent,
        shown: &str,
        run: &mut Revision,
        applied: &mut Applied,
        target: &Target<'_>,
        version_table: &str,
    ) -> bool {
        match event {
            HelperEvent::Statement { .. } => self.statement(&event, shown, run.go, applied, target, version_table),
            HelperEvent::Transaction { state, clock } => {
                if state == TransactionEnd::Rollback {
                    run.rolled_back = self.in_transaction.iter().filter(|r| *r != shown).cloned().collect();
                }
                self.transaction_ended(clock, shown, Some(applied));
                // After the last revision: its transaction's end is part of it.
                run.end = run.end.map(|e| e.max(clock));
            }
            HelperEvent::RevisionEnd { clock, last, .. } => {
                run.end = Some(clock);
                return !last;
            }
            HelperEvent::RevisionStart { revision, clock, .. } => {
                // The next revision starts where this one ended: what Alembic
                // does between two steps (a busy machine may deschedule it
                // there) is the release's time too, and so counts in the next
                // revision, and the revisions' times add up to the release's.
                let go = run.end.map_or(clock, |end| end.min(clock));
                self.waiting = Some((revision, go));
                return true;
            }
            HelperEvent::Failed { clock, .. } => {
                // A failure after the last migration leaves that migration's time as it was.
                if run.epilogue.is_none() {
                    run.end = Some(clock);
                }
                run.ended.failed = Some(event);
            }
            HelperEvent::Epilogue { clock } => {
                // From the last migration's end: what the tool did after it
                // (Django's check_replacements, then its post_migrate handlers).
                run.epilogue = Some(run.end.unwrap_or(clock));
                run.end = run.end.or(Some(clock));
            }
            HelperEvent::Done { clock: Some(clock), .. } => {
                if let Some(began) = run.epilogue {
                    applied.epilogue = Some(Duration::from_secs_f64((clock - began).max(0.0)));
                }
            }
            _ => {}
        }
        false
    }

    /// A batch of statements into the migration's statements; its locks are
    /// held from now on, until its transaction ends.
    fn statement(
        &mut self,
        event: &HelperEvent,
        shown: &str,
        go: f64,
        applied: &mut Applied,
        target: &Target<'_>,
        version_table: &str,
    ) {
        let HelperEvent::Statement { sql, ms, rows, count, wal, lock_timeout, locks, clock } = event else { return };
        let wal_bytes = match (self.wal, *wal) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        self.wal = wal.or(self.wal);
        // Alembic's and SQLAlchemy's own bookkeeping: its WAL counts toward the next batch.
        if is_bookkeeping(sql, version_table) {
            return;
        }
        if !self.in_transaction.iter().any(|r| r == shown) {
            self.in_transaction.push(shown.to_string());
        }
        let locks: Vec<_> = catalog::own_lock_rows(locks.clone()).into_iter().map(taken_by_statement).collect();
        let index = applied.statements.len();
        for (i, lock) in locks.iter().enumerate() {
            self.open.push(OpenLock {
                migration: shown.to_string(),
                relation: lock.relation.clone(),
                mode: lock.mode,
                clock: *clock,
                at: Some((index, i)),
            });
        }
        applied.statements.push(StatementReport {
            query: target.redact(sql.trim()),
            line: None,
            duration_ms: ms.round() as u64,
            rows: (*rows).max(0) as u64,
            count: *count,
            wal_bytes,
            locks,
            lock_timeout_ms: *lock_timeout,
            started_ms: millis(clock - go),
            memory: Vec::new(),
        });
    }

    /// The open transaction ended at `clock`: each of its locks was held
    /// from its batch until now. The running migration's (`shown`) are
    /// final in its statements; earlier migrations' go back to them through
    /// `released`, which the next run reports.
    fn transaction_ended(&mut self, clock: f64, shown: &str, mut applied: Option<&mut Applied>) {
        for lock in std::mem::take(&mut self.open) {
            let held_ms = millis(clock - lock.clock);
            let own = lock.at.filter(|_| lock.migration == shown);
            match (own, applied.as_deref_mut()) {
                (Some((s, l)), Some(applied)) => {
                    let held = &mut applied.statements[s].locks[l];
                    (held.held_ms, held.exact_hold) = (held_ms, true);
                }
                _ if !lock.relation.is_empty() => self.released.push(ReleasedHold {
                    migration: lock.migration,
                    relation: lock.relation,
                    mode: lock.mode,
                    held_ms,
                }),
                _ => {}
            }
        }
        self.in_transaction.clear();
    }
}

/// What the running revision has seen so far.
struct Revision {
    /// Its start on the helper's clock.
    go: f64,
    /// Its end: the revision's end, or its transaction's after the last.
    end: Option<f64>,
    ended: Ended,
    /// Earlier revisions a rollback in this one undid.
    rolled_back: Vec<String>,
    /// When the tool's own work after its last migration started (Django's
    /// post_migrate handlers): none of it is the migration's.
    epilogue: Option<f64>,
}

/// The revision's outcome when the process ended before it could start
/// (env.py raised, the connection was refused, a signal), or exited
/// cleanly without running it.
fn ended_before_running(tool: &HelperTool, ended: Ended, migration: &Migration, target: &Target<'_>) -> Applied {
    let mut applied = Applied::default();
    outcome(tool, &mut applied, ended, migration, target);
    if applied.error.is_none() {
        // It exited cleanly without running the migration discovery listed.
        applied.error = Some(MigrationError::new(format!(
            "the {} process ended without running {}: {}",
            tool.name, migration.id, tool.never_ran
        )));
    }
    applied
}

/// The revision's error from what `run` saw: its failure or its process's
/// exit, no report of its end at all, and the earlier revisions a rollback undid.
fn conclude(tool: &HelperTool, applied: &mut Applied, run: Revision, migration: &Migration, target: &Target<'_>) {
    let reported = run.end.is_some() || run.ended.failed.is_some() || run.ended.exit.is_some();
    let after_last = run.epilogue.is_some() && run.ended.failed.is_some();
    outcome(tool, applied, run.ended, migration, target);
    if !reported {
        applied.error = Some(MigrationError::new(format!(
            "the {} helper ended without reporting the migration's outcome",
            tool.name
        )));
    }
    if let (Some(error), true) = (applied.error.as_mut(), after_last) {
        // The migration itself ran: what failed is the tool's work after the release's last migration.
        error.message = format!("after the last migration ({}): {}", tool.epilogue, error.message);
    }
    if let (Some(error), false) = (applied.error.as_mut(), run.rolled_back.is_empty()) {
        error.message = format!(
            "{}\n\n(Alembic ran {} in the same transaction, so the rollback undid {} too: production's \
             `alembic upgrade` would leave the database as it was before {})",
            error.message,
            run.rolled_back.join(", "),
            if run.rolled_back.len() == 1 { "it" } else { "them" },
            run.rolled_back[0]
        );
    }
}

/// The revision's error from how its process ended, if it did.
fn outcome(tool: &HelperTool, applied: &mut Applied, ended: Ended, migration: &Migration, target: &Target<'_>) {
    match (ended.failed, ended.exit) {
        (Some(f), _) => applied.error = Some(revision_error(&f, migration, target)),
        (None, Some(ChildError::Cancelled { .. })) => {
            applied.interrupted = true;
            applied.error = Some(MigrationError::new("interrupted by a signal while the revision ran"));
        }
        (None, Some(other)) => {
            let text = match &other {
                ChildError::Failed { stderr, .. } => last_lines(stderr, 25),
                e => e.to_string(),
            };
            let message = format!("{} {} failed:\n{text}", tool.command, migration.id);
            applied.error = Some(MigrationError::new(target.redact(&message)));
        }
        (None, None) => {}
    }
}

fn millis(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1000.0).round() as u64
}
