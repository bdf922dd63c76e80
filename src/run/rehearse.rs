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
use crate::error::{Error, ErrorKind, Result};
use crate::findings::{destructive, hazards, recovery};
use crate::load::Load;
use crate::migrations::network::ToolNetwork;
use crate::migrations::sources::Sources;
use crate::migrations::{Applied, Migration, MigrationTool, ReleasedHold, Target};
use crate::observe::relations::RelationSnapshot;
use crate::observe::{Observers, StatementWatcher};
use crate::pipeline::events::{Event, EventSink};
use crate::pipeline::Deadline;
use crate::plan::Plan;
use crate::report::{
    summary, AppliedMigration, CompatInfo, Findings, LoadInfo, MigrationFacts, MigrationStatus, Watched,
};
use crate::sys::db::ConnInfo;
use tokio::sync::Mutex;

/// What the report says of every figure once the app's traffic runs with the migrations.
const LOAD_LIMITATION: &str = "load: the app's workload ran during each migration and its writes changed the \
    copy: each migration's WAL, sizes and top statements include the app's share (see each migration's baseline)";

/// What the rehearse stage establishes, kept as it goes (a run stopped
/// halfway reports what it had): each migration's facts, what the
/// observers watched, and the running app's queries before the first.
pub struct Rehearsed {
    pub migrations: Vec<MigrationFacts>,
    pub watched: Watched,
    pub compat: Option<CompatInfo>,
    /// The app's traffic (`load:`), as a whole.
    pub load: Option<LoadInfo>,
    /// The rollback release (`rollback:`): without the app's traffic
    /// (`load:` replays the release's app), and the app's queries checked
    /// once, after its end, against the schema before the release (`run/rollback.rs`).
    pub rollback: bool,
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
    let load = match plan.load.as_ref().filter(|_| !r.rollback) {
        Some(l) => Some(Mutex::new(Load::connect(l, server.conn()).await?)),
        None => None,
    };
    let load_pids = match &load {
        Some(l) => l.lock().await.pids(),
        None => Vec::new(),
    };
    let (observers, watcher) = observers(plan, server, source, &pending, &mut r.watched, &load_pids).await?;
    if let Some(l) = &load {
        l.lock().await.also_not_migration(observers.own_pids());
        r.watched.limitations.push(LOAD_LIMITATION.into());
    }
    if pending.migrations.is_empty() {
        events.emit(Event::Note("no pending migrations: the restored database already has every migration".into()));
    }
    let mut compat = check_before_first(plan, server, r, events, cancel).await?;
    let rehearsal = Rehearsal {
        plan,
        source,
        observers: &observers,
        runner: &pending.runner,
        conn: &pending.conn,
        watcher: watcher.as_ref(),
        network: &pending.network,
        cancel,
        load: load.as_ref(),
    };
    let mut histories = Vec::new();
    for (app, tool, table) in source.histories() {
        histories.push(proof::History::read(observers.observer(), app, tool, table).await?);
    }
    let rehearsed = rehearsal.in_order(&pending.migrations, &mut r.migrations, compat.as_mut(), events).await;
    if let Some(l) = &load {
        r.load = Some(l.lock().await.info());
    }
    rehearsed?;
    for history in &histories {
        history.check(observers.observer(), &pending.migrations, &r.migrations).await?;
    }
    Ok(())
}

/// The observers, the statement watcher when a migration runs in rehearse's
/// own session, and what they watch (and cannot) into `watched`.
async fn observers(
    plan: &Plan,
    server: &Throwaway,
    source: &Sources,
    pending: &Pending,
    watched: &mut Watched,
    load_pids: &[i32],
) -> Result<(Observers, Option<StatementWatcher>)> {
    let conn = server.conn();
    let standby = server.standby().map(|s| s.conn());
    let mut observers = Observers::connect(conn, plan.observe.clone(), &pending.largest_tables, standby).await?;
    observers.exclude(load_pids);
    let watcher = match source.any_in_own_session() {
        true => observers.watcher(conn, &pending.runner).await?,
        false => None,
    };
    watched.hot_tables = observers.hot_tables.clone();
    watched.limitations = server.limitations().to_vec();
    watched.limitations.extend(observers.limitations.iter().cloned());
    Ok((observers, watcher))
}

/// A migration observed and waiting to be judged: where it is, the relations before and after it.
struct Unjudged {
    index: usize,
    before: RelationSnapshot,
    after: RelationSnapshot,
}

/// Says a migration finished, and what of the running app it breaks.
fn finished(m: &MigrationFacts, i: usize, total: usize, events: &dyn EventSink) {
    events.emit(Event::MigrationFinished {
        index: i + 1,
        total,
        id: m.planned.id.clone(),
        status: m.status(),
        elapsed: std::time::Duration::from_millis(m.applied.as_ref().map_or(0, |a| a.duration_ms)),
    });
    if let Some(c) = m.compat.as_ref().filter(|c| !c.broken.is_empty()) {
        let first = summary::broken_line(&c.broken[0], 60, false);
        let n = summary::queries(c.broken.len());
        events.emit(Event::Note(format!("{} breaks {n} of the running app: {first}", m.planned.id)));
    }
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
    let Some(corpus) = plan.compat.as_ref().filter(|_| !r.rollback) else { return Ok(None) };
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
    /// The login the migrations run as (production's role with `production.as_role`).
    conn: &'a ConnInfo,
    watcher: Option<&'a StatementWatcher>,
    network: &'a ToolNetwork,
    cancel: &'a CancellationToken,
    /// The app's traffic, when the scenario has `load:`.
    load: Option<&'a Mutex<Load>>,
}

/// What applying and observing one migration left for the runner.
struct Step {
    /// A signal interrupted it (or the check of the app's queries after it).
    interrupted: bool,
    /// Its transaction is still open: it is judged once that ends.
    transaction_open: bool,
    /// Earlier migrations' holds that ended during it.
    released: Vec<ReleasedHold>,
    before: RelationSnapshot,
    after: RelationSnapshot,
}

impl Rehearsal<'_> {
    /// Each migration in turn (applied and observed, the app's queries
    /// checked, judged once its transaction ended), until one does not
    /// apply or a signal arrives; whatever is left open is judged at the end.
    async fn in_order(
        &self,
        migrations: &[Migration],
        facts: &mut [MigrationFacts],
        mut compat: Option<&mut Checker<'_>>,
        events: &dyn EventSink,
    ) -> Result<()> {
        let total = migrations.len();
        // Observed, not yet judged: their transaction is still open.
        let mut open: Vec<Unjudged> = Vec::new();
        let mut stopped = Ok(());
        for (i, migration) in migrations.iter().enumerate() {
            events.emit(Event::MigrationStarted { index: i + 1, total, id: migration.shown_id() });
            let mut step = match self.apply(migration, &mut facts[i]).await {
                Ok(step) => step,
                Err(e) => {
                    stopped = Err(e);
                    break;
                }
            };
            match self.check_app(&mut facts[i], &step, compat.as_deref_mut()).await {
                Ok(interrupted) => step.interrupted |= interrupted,
                Err(e) => {
                    stopped = Err(e);
                    break;
                }
            }
            release(&step.released, &open, facts);
            open.push(Unjudged { index: i, before: step.before, after: step.after });
            if !step.transaction_open {
                self.judge_all(migrations, facts, &mut open).await?;
            }
            finished(&facts[i], i, total, events);
            if step.interrupted {
                stopped = Err(Error::Interrupted);
                break;
            }
            if matches!(facts[i].status(), MigrationStatus::Failed | MigrationStatus::TimedOut) {
                break;
            }
        }
        // A release that stopped early: its process goes, its open transaction with it.
        self.source.close().await;
        self.judge_all(migrations, facts, &mut open).await?;
        stopped
    }

    /// Judges the migrations waiting in `open`.
    async fn judge_all(
        &self,
        migrations: &[Migration],
        facts: &mut [MigrationFacts],
        open: &mut Vec<Unjudged>,
    ) -> Result<()> {
        for o in open.drain(..) {
            let m = &mut facts[o.index];
            m.findings = self.judge(&migrations[o.index], m, &o).await?;
        }
        Ok(())
    }

    /// Applies and observes one migration into `m` (its queries checked by
    /// [`Rehearsal::check_app`], judged by [`Rehearsal::judge`]).
    async fn apply(&self, migration: &Migration, m: &mut MigrationFacts) -> Result<Step> {
        let source = self.source.of(migration)?;
        let policy = self.source.retry_of(migration);
        // Before observing: a tool's start-up (an Alembic process) is not the migration's.
        let target = Target {
            client: self.runner,
            conn: self.conn,
            cancel: self.cancel,
            watcher: self.watcher,
            network: self.network,
            lock_timeout: policy.map(|p| p.lock_timeout),
            explain_memory: self.plan.estimate.is_some(),
        };
        source.ready(migration, &target).await?;
        let mut load = match self.load {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let measuring = match load.as_mut() {
            Some(l) => Some(l.before_migration(self.cancel).await?),
            None => None,
        };
        let observing = self.observers.begin().await?;
        let deadline = Deadline::start(self.cancel, self.plan.budgets.deadline(&m.planned.id));
        let target = Target { cancel: deadline.token(), ..target };
        let sessions_before = match source.tool() {
            MigrationTool::Command => proof::sessions(self.observers.observer()).await?,
            _ => None,
        };
        let (mut applied, tries) = super::retry::apply(source, migration, &target, policy).await?;
        let ended = std::time::Instant::now();
        if applied.error.is_none() && !applied.interrupted {
            proof::command_connected(self.observers.observer(), sessions_before, migration).await?;
        }
        if let (Some(l), Some(measuring)) = (load.as_mut(), measuring) {
            m.load = Some(l.after_migration(measuring, ended).await);
        }
        let timed_out = applied.interrupted && deadline.expired() && !self.cancel.is_cancelled();
        if timed_out {
            deadline.explain(&mut applied.error);
        }
        let record = m.applied.insert(record(&mut applied, timed_out, &tries));
        let own_session = source.runs_in_own_session().then_some(self.runner);
        let (statements, duration_ms) = (&mut record.statements, record.duration_ms);
        let observed =
            self.observers.finish(observing, own_session, statements, duration_ms, &applied.inherited).await?;
        super::retry::explain(&mut record.error, &tries, &observed.observation.locks);
        m.observed = Some(observed.observation);
        // A migration's session settings (SET lock_timeout, search_path, ...)
        // must not leak into the next one.
        self.runner.batch_execute("RESET ALL /*rehearse*/").await.map_err(|e| {
            Error::environment_because(format!("cannot reset the migration session after {}", migration.id), e)
        })?;
        Ok(Step {
            interrupted: applied.interrupted && !timed_out,
            transaction_open: applied.transaction_open,
            released: std::mem::take(&mut applied.released),
            before: observed.before,
            after: observed.after,
        })
    }

    /// The running app's queries against the migration's result, into its
    /// facts; whether a signal interrupted the check. Checked once
    /// observation ended, so the checks are neither in its time nor in its
    /// locks. After a migration that did not apply there is nothing to
    /// check: it rolled back, or left a state its recovery describes, and the
    /// rehearsal stops there. Nor while its transaction is still open: the
    /// app sees nothing of it until the commit (the migration that ends it is
    /// checked for the whole transaction), and the checks would wait on its locks.
    async fn check_app(&self, m: &mut MigrationFacts, step: &Step, compat: Option<&mut Checker<'_>>) -> Result<bool> {
        let (Some(checker), MigrationStatus::Applied, false) = (compat, m.status(), step.transaction_open) else {
            return Ok(false);
        };
        match checker.after_migration().await {
            Ok(report) => m.compat = Some(report),
            Err(Error::Interrupted) => return Ok(true),
            Err(e) => return Err(e),
        }
        Ok(false)
    }

    /// Judges an observed migration: hazards, destructive changes, the
    /// estimate and, when it failed, what is left to recover. (The budgets
    /// are the gate's, once every fact is in.) The findings read the
    /// migration as the report will show it.
    async fn judge(&self, migration: &Migration, facts: &MigrationFacts, o: &Unjudged) -> Result<Findings> {
        let m = facts.record(&[]);
        let checked = hazards::check(&m, &o.before, &self.plan.hazard_ignore);
        // A command's statements are not traced: pg_stat_statements recorded them.
        let untraced = self.source.of(migration)?.tool() == MigrationTool::Command && m.statements.is_empty();
        let destructive_changes = match untraced {
            true => destructive::in_recorded(&m),
            false => destructive::detect(&m),
        };
        let not_evaluated = match untraced && m.ran() {
            true => vec![NOT_TRACED.to_string()],
            false => Vec::new(),
        };
        let mut findings = Findings {
            hazards: checked.hazards,
            ignored_hazards: checked.ignored,
            destructive_changes,
            not_evaluated,
            ..Findings::default()
        };
        if let Some(estimator) = &self.plan.estimate {
            let mut estimate = estimator.migration(&m, &o.before, &o.after);
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
            let env = |e| {
                ErrorKind::CatalogReadFailed.because(format!("cannot read what the failed migration {} left", m.id), e)
            };
            findings.recovery = Some(assessed.map_err(env)?);
        }
        Ok(findings)
    }
}

/// Why a command's statement hazards are not evaluated.
const NOT_TRACED: &str = "the hazards that read a migration's statements (a command tool's statements are not \
     traced: its locks, WAL, rewrites and destructive changes are read from the server)";

/// What the migration source reported, as the migration's facts.
fn record(applied: &mut Applied, timed_out: bool, tries: &super::retry::Tries) -> AppliedMigration {
    AppliedMigration {
        duration_ms: millis(applied.duration),
        startup_ms: applied.startup.map(millis),
        post_migrate_ms: applied.epilogue.map(millis),
        statements: std::mem::take(&mut applied.statements),
        status: match (&applied.error, applied.interrupted) {
            (_, true) if timed_out => MigrationStatus::TimedOut,
            (_, true) => MigrationStatus::Interrupted,
            (Some(_), false) => MigrationStatus::Failed,
            (None, false) => MigrationStatus::Applied,
        },
        error: applied.error.take(),
        attempts: tries.attempts.clone(),
        retry_lost_ms: tries.lost_ms,
    }
}
