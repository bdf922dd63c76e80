//! The rehearse stage: each pending migration alone, in order, observed,
//! checked against the running app's queries, judged (hazards, destructive
//! changes, budgets) and, when it fails, assessed for recovery. A failure
//! or a timeout skips the rest; a signal stops the stage with the migration
//! recorded as interrupted.

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::{millis, proof, Pending};
use crate::backend::Throwaway;
use crate::compat::Checker;
use crate::error::{Error, Result};
use crate::findings::{destructive, hazards, recovery};
use crate::migrations::network::ToolNetwork;
use crate::migrations::sources::Sources;
use crate::migrations::{Applied, Migration, MigrationTool, Target};
use crate::observe::{Observers, StatementWatcher};
use crate::pipeline::events::{Event, EventSink};
use crate::pipeline::Deadline;
use crate::plan::Plan;
use crate::report::{summary, MigrationReport, MigrationStatus, Report};

/// Rehearses every pending migration; stops at the first that does not apply.
pub async fn each(
    plan: &Plan,
    server: &Throwaway,
    source: &Sources,
    pending: Pending,
    r: &mut Report,
    events: &dyn EventSink,
    cancel: &CancellationToken,
) -> Result<()> {
    let conn = server.conn();
    let standby = server.standby().map(|s| s.conn());
    let mut observers = Observers::connect(conn, plan.observe.clone(), &pending.largest_tables, standby).await?;
    let watcher = match source.any_in_own_session() {
        true => observers.watcher(conn, &pending.runner).await?,
        false => None,
    };
    r.observation.hot_tables = observers.hot_tables.clone();
    r.observation.limitations = server.limitations().to_vec();
    r.observation.limitations.extend(observers.limitations.iter().cloned());
    if pending.migrations.is_empty() {
        events.emit(Event::Note("no pending migrations: the restored database already has every migration".into()));
    }
    let mut compat = check_before_first(plan, server, r, events, cancel).await?;
    let rehearsal = Rehearsal {
        plan,
        source,
        observers: &observers,
        runner: &pending.runner,
        watcher: watcher.as_ref(),
        server,
        network: &pending.network,
        cancel,
    };
    let mut histories = Vec::new();
    for (app, tool, table) in source.histories() {
        histories.push(proof::History::read(observers.observer(), app, tool, table).await?);
    }
    let total = pending.migrations.len();
    for (i, migration) in pending.migrations.iter().enumerate() {
        events.emit(Event::MigrationStarted { index: i + 1, total, id: migration.shown_id() });
        let m = &mut r.migrations[i];
        let interrupted = rehearsal.one(migration, m, compat.as_mut()).await?;
        events.emit(Event::MigrationFinished {
            index: i + 1,
            total,
            id: migration.shown_id(),
            status: m.status,
            elapsed: std::time::Duration::from_millis(m.duration_ms),
        });
        if let Some(c) = m.compat.as_ref().filter(|c| !c.broken.is_empty()) {
            let first = summary::broken_line(&c.broken[0], 60, false);
            let n = summary::queries(c.broken.len());
            events.emit(Event::Note(format!("{} breaks {n} of the running app: {first}", m.id)));
        }
        if interrupted {
            return Err(Error::Interrupted);
        }
        if matches!(m.status, MigrationStatus::Failed | MigrationStatus::TimedOut) {
            break;
        }
    }
    for history in &histories {
        history.check(observers.observer(), &pending.migrations, &r.migrations).await?;
    }
    Ok(())
}

/// The compatibility check before the first migration, into the report;
/// the checker for the checks after each, None without `compat.queries`.
async fn check_before_first<'a>(
    plan: &'a Plan,
    server: &Throwaway,
    r: &mut Report,
    events: &dyn EventSink,
    cancel: &'a CancellationToken,
) -> Result<Option<Checker<'a>>> {
    let Some(corpus) = &plan.compat else { return Ok(None) };
    let mut checker = Checker::connect(server.conn(), corpus, cancel).await?;
    let info = checker.before_first_migration().await?;
    if !info.already_broken.is_empty() {
        events.emit(Event::Note(format!(
            "{} of the running app's {} already fail before the first migration (listed in the report)",
            info.already_broken.len(),
            summary::queries(info.checked)
        )));
    }
    r.compat = Some(info);
    Ok(Some(checker))
}

/// What rehearsing one migration needs.
struct Rehearsal<'a> {
    plan: &'a Plan,
    source: &'a Sources,
    observers: &'a Observers,
    /// rehearse's own session, on which SQL files run.
    runner: &'a Client,
    watcher: Option<&'a StatementWatcher>,
    server: &'a Throwaway,
    network: &'a ToolNetwork,
    cancel: &'a CancellationToken,
}

impl Rehearsal<'_> {
    /// Applies, observes, checks and judges one migration into `m`;
    /// whether a signal interrupted it (or the check after it).
    async fn one(
        &self,
        migration: &Migration,
        m: &mut MigrationReport,
        compat: Option<&mut Checker<'_>>,
    ) -> Result<bool> {
        let observing = self.observers.begin().await?;
        let deadline = Deadline::start(self.cancel, self.plan.budgets.deadline(&m.id));
        let source = self.source.of(migration)?;
        let target = Target {
            client: self.runner,
            conn: self.server.conn(),
            cancel: deadline.token(),
            watcher: self.watcher,
            network: self.network,
        };
        let sessions_before = match source.tool() {
            MigrationTool::Command => proof::sessions(self.observers.observer()).await?,
            _ => None,
        };
        let mut applied = source.apply(migration, &target).await?;
        if applied.error.is_none() && !applied.interrupted {
            proof::command_connected(self.observers.observer(), sessions_before, migration).await?;
        }
        let timed_out = applied.interrupted && deadline.expired() && !self.cancel.is_cancelled();
        if timed_out {
            deadline.explain(&mut applied.error);
        }
        record(m, &mut applied, timed_out);
        let own_session = source.runs_in_own_session().then_some(self.runner);
        let (before, after) = self.observers.finish(observing, own_session, m).await?;
        // A migration's session settings (SET lock_timeout, search_path, ...)
        // must not leak into the next one.
        self.runner.batch_execute("RESET ALL /*rehearse*/").await.map_err(|e| {
            Error::environment_because(format!("cannot reset the migration session after {}", migration.id), e)
        })?;
        // Checked once observation ended, so the checks are neither in its
        // time nor in its locks. After a migration that did not apply there
        // is nothing to check: it rolled back, or left a state its recovery
        // describes, and the rehearsal stops there.
        let mut check_interrupted = false;
        if let (Some(checker), MigrationStatus::Applied) = (compat, m.status) {
            match checker.after_migration().await {
                Ok(report) => m.compat = Some(report),
                Err(Error::Interrupted) => check_interrupted = true,
                Err(e) => return Err(e),
            }
        }
        let checked = hazards::check(m, &before, &self.plan.hazard_ignore);
        (m.hazards, m.ignored_hazards) = (checked.hazards, checked.ignored);
        m.destructive_changes = destructive::detect(m);
        if let Some(estimator) = &self.plan.estimate {
            let mut estimate = estimator.migration(m, &before);
            if m.status != MigrationStatus::Applied {
                estimate.basis.insert(0, format!("the migration {}: this estimates what ran of it", m.status.as_str()));
            }
            m.estimate = Some(estimate);
        }
        self.plan.budgets.judge_migration(m);
        if matches!(m.status, MigrationStatus::Failed | MigrationStatus::TimedOut) {
            let history = source.history_table();
            let observer = self.observers.observer();
            let assessed = recovery::assess(observer, &before, &after, m, source.tool(), history.as_deref()).await;
            let env = |e| Error::environment_because(format!("cannot read what the failed migration {} left", m.id), e);
            m.recovery = Some(assessed.map_err(env)?);
        }
        Ok((applied.interrupted && !timed_out) || check_interrupted)
    }
}

/// What the migration source reported, into the migration's report.
fn record(m: &mut MigrationReport, applied: &mut Applied, timed_out: bool) {
    m.duration_ms = millis(applied.duration);
    m.startup_ms = applied.startup.map(millis);
    m.statements = std::mem::take(&mut applied.statements);
    m.status = match (&applied.error, applied.interrupted) {
        (_, true) if timed_out => MigrationStatus::TimedOut,
        (_, true) => MigrationStatus::Interrupted,
        (Some(_), false) => MigrationStatus::Failed,
        (None, false) => MigrationStatus::Applied,
    };
    m.error = applied.error.take();
}
