//! The rehearse stage: each pending migration alone, in order, observed,
//! checked against the running app's queries, judged (hazards, destructive
//! changes, budgets) and, when it fails, assessed for recovery. A failure
//! or a timeout skips the rest; a signal stops the stage with the migration
//! recorded as interrupted.
//!
//! A migration whose transaction is still open when it ends (Alembic's
//! default: one transaction for the whole release) holds its locks into
//! the next ones: it is judged once that transaction ended, with the holds
//! as long as they really were (the migration that ended it says how long).

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::{millis, proof, Pending};
use crate::backend::Throwaway;
use crate::compat::Checker;
use crate::error::{Error, Result};
use crate::findings::{destructive, hazards, recovery};
use crate::migrations::network::ToolNetwork;
use crate::migrations::sources::Sources;
use crate::migrations::{Applied, Migration, MigrationTool, ReleasedHold, Target};
use crate::observe::relations::RelationSnapshot;
use crate::observe::{Observers, StatementWatcher};
use crate::pipeline::events::{Event, EventSink};
use crate::pipeline::Deadline;
use crate::plan::Plan;
use crate::report::{summary, AppliedMigration, CompatInfo, Findings, MigrationFacts, MigrationStatus, Watched};

/// What the rehearse stage establishes, kept as it goes (a run stopped
/// halfway reports what it had): each migration's facts, what the
/// observers watched, and the running app's queries before the first.
pub struct Rehearsed {
    pub migrations: Vec<MigrationFacts>,
    pub watched: Watched,
    pub compat: Option<CompatInfo>,
}

/// Rehearses every pending migration; stops at the first that does not apply.
pub async fn each(
    plan: &Plan,
    server: &Throwaway,
    source: &Sources,
    pending: Pending,
    r: &mut Rehearsed,
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
    r.watched.hot_tables = observers.hot_tables.clone();
    r.watched.limitations = server.limitations().to_vec();
    r.watched.limitations.extend(observers.limitations.iter().cloned());
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
    // Observed, not yet judged: their transaction is still open.
    let mut open: Vec<Unjudged> = Vec::new();
    let mut stopped = Ok(());
    for (i, migration) in pending.migrations.iter().enumerate() {
        events.emit(Event::MigrationStarted { index: i + 1, total, id: migration.shown_id() });
        let step = match rehearsal.one(migration, &mut r.migrations[i], compat.as_mut()).await {
            Ok(step) => step,
            Err(e) => {
                stopped = Err(e);
                break;
            }
        };
        release(&step.released, &open, &mut r.migrations);
        let transaction_open = step.transaction_open;
        let interrupted = step.interrupted;
        open.push(Unjudged { index: i, before: step.before, after: step.after });
        if !transaction_open {
            for o in open.drain(..) {
                let m = &mut r.migrations[o.index];
                m.findings = rehearsal.judge(&pending.migrations[o.index], m, &o).await?;
            }
        }
        let m = &r.migrations[i];
        events.emit(Event::MigrationFinished {
            index: i + 1,
            total,
            id: migration.shown_id(),
            status: m.status(),
            elapsed: std::time::Duration::from_millis(m.applied.as_ref().map_or(0, |a| a.duration_ms)),
        });
        if let Some(c) = m.compat.as_ref().filter(|c| !c.broken.is_empty()) {
            let first = summary::broken_line(&c.broken[0], 60, false);
            let n = summary::queries(c.broken.len());
            events.emit(Event::Note(format!("{} breaks {n} of the running app: {first}", m.planned.id)));
        }
        if interrupted {
            stopped = Err(Error::Interrupted);
            break;
        }
        if matches!(m.status(), MigrationStatus::Failed | MigrationStatus::TimedOut) {
            break;
        }
    }
    // A release that stopped early: its process goes, its open transaction with it.
    source.close().await;
    for o in open.drain(..) {
        let m = &mut r.migrations[o.index];
        m.findings = rehearsal.judge(&pending.migrations[o.index], m, &o).await?;
    }
    stopped?;
    for history in &histories {
        history.check(observers.observer(), &pending.migrations, &r.migrations).await?;
    }
    Ok(())
}

/// A migration observed and waiting to be judged: where it is, the relations before and after it.
struct Unjudged {
    index: usize,
    before: RelationSnapshot,
    after: RelationSnapshot,
}

/// The final holds of earlier migrations' locks, whose transaction ended
/// during a later one, into their facts (those still waiting in `open`).
fn release(released: &[ReleasedHold], open: &[Unjudged], migrations: &mut [MigrationFacts]) {
    for hold in released {
        let Some(o) = open.iter().find(|o| migrations[o.index].planned.id == hold.migration) else { continue };
        let m = &mut migrations[o.index];
        let (Some(observed), Some(applied)) = (m.observed.as_mut(), m.applied.as_mut()) else { continue };
        let statements = &mut applied.statements;
        crate::observe::extend_hold(observed, statements, &o.before, &hold.relation, hold.mode, hold.held_ms);
    }
}

/// The compatibility check before the first migration, into the report;
/// the checker for the checks after each, None without `compat.queries`.
async fn check_before_first<'a>(
    plan: &'a Plan,
    server: &Throwaway,
    r: &mut Rehearsed,
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

/// What applying and observing one migration left for the runner.
struct Step {
    /// A signal interrupted it (or the check after it).
    interrupted: bool,
    /// Its transaction is still open: it is judged once that ends.
    transaction_open: bool,
    /// Earlier migrations' holds that ended during it.
    released: Vec<ReleasedHold>,
    before: RelationSnapshot,
    after: RelationSnapshot,
}

impl Rehearsal<'_> {
    /// Applies, observes and checks one migration into `m` (judged apart, by [`Rehearsal::judge`]).
    async fn one(
        &self,
        migration: &Migration,
        m: &mut MigrationFacts,
        compat: Option<&mut Checker<'_>>,
    ) -> Result<Step> {
        let source = self.source.of(migration)?;
        // Before observing: a tool's start-up (an Alembic process) is not the migration's.
        let target = Target {
            client: self.runner,
            conn: self.server.conn(),
            cancel: self.cancel,
            watcher: self.watcher,
            network: self.network,
        };
        source.ready(migration, &target).await?;
        let observing = self.observers.begin().await?;
        let deadline = Deadline::start(self.cancel, self.plan.budgets.deadline(&m.planned.id));
        let target = Target { cancel: deadline.token(), ..target };
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
        let record = m.applied.insert(record(&mut applied, timed_out));
        let own_session = source.runs_in_own_session().then_some(self.runner);
        let (statements, duration_ms) = (&mut record.statements, record.duration_ms);
        let observed =
            self.observers.finish(observing, own_session, statements, duration_ms, &applied.inherited).await?;
        m.observed = Some(observed.observation);
        // A migration's session settings (SET lock_timeout, search_path, ...)
        // must not leak into the next one.
        self.runner.batch_execute("RESET ALL /*rehearse*/").await.map_err(|e| {
            Error::environment_because(format!("cannot reset the migration session after {}", migration.id), e)
        })?;
        // Checked once observation ended, so the checks are neither in its
        // time nor in its locks. After a migration that did not apply there
        // is nothing to check: it rolled back, or left a state its recovery
        // describes, and the rehearsal stops there. Nor while its transaction
        // is still open: the app sees nothing of it until the commit (the
        // migration that ends it is checked for the whole transaction), and
        // the checks would wait on its locks.
        let mut check_interrupted = false;
        if let (Some(checker), MigrationStatus::Applied, false) = (compat, m.status(), applied.transaction_open) {
            match checker.after_migration().await {
                Ok(report) => m.compat = Some(report),
                Err(Error::Interrupted) => check_interrupted = true,
                Err(e) => return Err(e),
            }
        }
        Ok(Step {
            interrupted: (applied.interrupted && !timed_out) || check_interrupted,
            transaction_open: applied.transaction_open,
            released: std::mem::take(&mut applied.released),
            before: observed.before,
            after: observed.after,
        })
    }

    /// Judges an observed migration: hazards, destructive changes, the
    /// estimate and, when it failed, what is left to recover. (The budgets
    /// are the gate's, once every fact is in.) The findings read the
    /// migration as the report will show it.
    async fn judge(&self, migration: &Migration, facts: &MigrationFacts, o: &Unjudged) -> Result<Findings> {
        let m = facts.record(&[]);
        let checked = hazards::check(&m, &o.before, &self.plan.hazard_ignore);
        let mut findings = Findings {
            hazards: checked.hazards,
            ignored_hazards: checked.ignored,
            destructive_changes: destructive::detect(&m),
            ..Findings::default()
        };
        if let Some(estimator) = &self.plan.estimate {
            let mut estimate = estimator.migration(&m, &o.before);
            if m.status != MigrationStatus::Applied {
                estimate.basis.insert(0, format!("the migration {}: this estimates what ran of it", m.status.as_str()));
            }
            findings.estimate = Some(estimate);
        }
        if matches!(m.status, MigrationStatus::Failed | MigrationStatus::TimedOut) {
            let source = self.source.of(migration)?;
            let history = source.history_table();
            let observer = self.observers.observer();
            let assessed = recovery::assess(observer, &o.before, &o.after, &m, source.tool(), history.as_deref()).await;
            let env = |e| Error::environment_because(format!("cannot read what the failed migration {} left", m.id), e);
            findings.recovery = Some(assessed.map_err(env)?);
        }
        Ok(findings)
    }
}

/// What the migration source reported, as the migration's facts.
fn record(applied: &mut Applied, timed_out: bool) -> AppliedMigration {
    AppliedMigration {
        duration_ms: millis(applied.duration),
        startup_ms: applied.startup.map(millis),
        statements: std::mem::take(&mut applied.statements),
        status: match (&applied.error, applied.interrupted) {
            (_, true) if timed_out => MigrationStatus::TimedOut,
            (_, true) => MigrationStatus::Interrupted,
            (Some(_), false) => MigrationStatus::Failed,
            (None, false) => MigrationStatus::Applied,
        },
        error: applied.error.take(),
    }
}
