//! The abort stage (`abort:`): each named migration (or the longest the
//! rehearsal measured) started on a fresh copy of the prepared database
//! and cancelled part-way, as production's operator would (`cancel.rs`);
//! then what it left behind, the recovery run on the copy, and the proof
//! that it worked: the schema is back to the one before the migration, and
//! the migration runs again (`recovery.rs`).
//!
//! One copy per aborted migration, all made right after prepare: a copy
//! needs the pre-release database as its template, and nobody may be
//! connected to a template (CREATE DATABASE refuses), which holds only
//! before the first observer connects; after the rehearsal the template is
//! no longer pre-release. Each copy is dropped once its abort is done; a
//! run stopped halfway leaves the rest to the server's cleanup.

mod cancel;
mod recovery;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::backend::copy::Template;
use crate::backend::Throwaway;
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::network::ToolNetwork;
use crate::migrations::sources::{SourcePlan, Sources};
use crate::migrations::{Migration, Target, Tracing};
use crate::plan::abort::{AbortMigrations, AbortPlan};
use crate::report::{AbortReport, MigrationFacts};
use crate::sys::db::{connect, ConnInfo};

const APP_NAME: &str = "rehearse-abort";

/// How many copies the plan needs: one per aborted migration.
pub fn copies_needed(plan: &AbortPlan) -> usize {
    match &plan.migrations {
        AbortMigrations::Named(ids) => ids.len(),
        AbortMigrations::Longest => 1,
    }
}

/// The copies of the prepared database, `<db>_abort`, `<db>_abort_2`, ...
pub async fn make_copies(server: &mut Throwaway, n: usize) -> Result<Vec<ConnInfo>> {
    let mut copies = Vec::new();
    for i in 0..n {
        let suffix = match i {
            0 => "abort".to_string(),
            i => format!("abort_{}", i + 1),
        };
        copies.push(server.copy_database(&suffix, Template::Rehearsal).await?);
    }
    Ok(copies)
}

/// What the abort stage works with.
pub struct Inputs<'a> {
    pub plan: &'a AbortPlan,
    pub sources: &'a [SourcePlan],
    /// The rehearsal's facts: each migration's rehearsed time.
    pub rehearsed: &'a [MigrationFacts],
    pub server: &'a Throwaway,
    pub copies: &'a [ConnInfo],
    /// Production's role (`production.as_role`): the migrations log in to each copy as it.
    pub as_production: Option<&'a super::production::AsProduction>,
    pub network: &'a ToolNetwork,
    pub cancel: &'a CancellationToken,
}

/// The migrations the plan cancels, with their rehearsed time: the named
/// ones, or the longest the rehearsal applied.
fn targets(plan: &AbortPlan, rehearsed: &[MigrationFacts]) -> Vec<(String, u64)> {
    let time = |m: &MigrationFacts| m.applied.as_ref().map_or(0, |a| a.duration_ms);
    match &plan.migrations {
        AbortMigrations::Named(ids) => {
            ids.iter().map(|id| (id.clone(), rehearsed.iter().find(|m| m.planned.id == *id).map_or(0, time))).collect()
        }
        AbortMigrations::Longest => {
            rehearsed.iter().max_by_key(|m| time(m)).map(|m| (m.planned.id.clone(), time(m))).into_iter().collect()
        }
    }
}

/// Every abort of the plan, each on its copy; a signal stops the stage,
/// anything else that stops one abort is in its report's `error`.
pub async fn rehearse(x: &Inputs<'_>) -> Result<Vec<AbortReport>> {
    let mut reports = Vec::new();
    for ((id, rehearsed_ms), copy) in targets(x.plan, x.rehearsed).into_iter().zip(x.copies) {
        let mut report = AbortReport { migration: id.clone(), at: x.plan.at_text.clone(), ..AbortReport::default() };
        match one(x, &id, rehearsed_ms, copy, &mut report).await {
            Ok(()) => {}
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(e) => report.error = Some(e.with_causes()),
        }
        if x.cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        drop_copy(x.server, copy).await?;
        reports.push(report);
    }
    Ok(reports)
}

/// rehearse's sessions on a copy: the one SQL files run on (`runner`), the
/// one that reads the catalog and sends the cancel (`observer`), the app's
/// read (`prober`).
struct Sessions {
    runner: Client,
    observer: Client,
    prober: Client,
    /// The observer's and the prober's pids: never the migration's.
    own: Vec<i32>,
    /// The runner's, read before the migration keeps it busy.
    runner_pid: i32,
}

impl Sessions {
    /// `login`: the copy as the migrations log in to it (the runner's).
    async fn connect(copy: &ConnInfo, login: &ConnInfo) -> Result<Sessions> {
        let env =
            |e| ErrorKind::ConnectionFailed.because(format!("cannot connect to the abort's copy {}", copy.dbname), e);
        let runner = connect(login, &login.dbname, "rehearse-migration").await.map_err(env)?;
        let observer = connect(copy, &copy.dbname, APP_NAME).await.map_err(env)?;
        let prober = connect(copy, &copy.dbname, "rehearse-abort-probe").await.map_err(env)?;
        let mut own = Vec::new();
        for c in [&observer, &prober] {
            own.push(catalog::backend_pid(c).await.map_err(env)?);
        }
        let runner_pid = catalog::backend_pid(&runner).await.map_err(env)?;
        Ok(Sessions { runner, observer, prober, own, runner_pid })
    }
}

/// One abort on its copy, into `report`.
async fn one(x: &Inputs<'_>, id: &str, rehearsed_ms: u64, copy: &ConnInfo, report: &mut AbortReport) -> Result<()> {
    let login = super::production::login_on(x.as_production, x.server, copy).await?;
    let s = Sessions::connect(copy, &login).await?;
    // The tool is stopped through this token when it outlasts the operator's SIGINT.
    let stop = x.cancel.child_token();
    let sources = Sources::new(x.sources, Tracing::default());
    let target = Target {
        client: &s.runner,
        conn: &login,
        cancel: &stop,
        watcher: None,
        network: x.network,
        lock_timeout: None,
        explain_memory: false,
    };
    let (pending, _) = sources.pending(&target).await?;
    let Some(index) = pending.iter().position(|m| m.shown_id() == id) else {
        return Err(Error::bad_input(format!("{id} is not pending on the abort's copy {}", copy.dbname)));
    };
    for m in &pending[..index] {
        apply_before(&sources, m, &target).await?;
    }
    let migration = &pending[index];
    let source = sources.of(migration)?;
    let except = super::drift::history_tables(x.sources);
    let before = recovery::State::read(&s.observer, &except, source.history_table()).await?;
    source.ready(migration, &target).await?;
    let cancelled = cancel::Cancel { plan: x.plan, rehearsed_ms, sessions: &s, source, stop: &stop }
        .run(migration, &target)
        .await?;
    cancelled.into_report(report);
    sources.close().await;
    if x.cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    let after = recovery::State::read(&s.observer, &except, source.history_table()).await?;
    let rerun = Target { cancel: x.cancel, ..target };
    recovery::Recovery { sessions: &s, source, migration, before: &before, after: &after, sources: x.sources }
        .run_and_prove(&rerun, &except, report)
        .await
}

/// A migration before the aborted one, applied as the rehearsal did (unobserved).
async fn apply_before(sources: &Sources, m: &Migration, target: &Target<'_>) -> Result<()> {
    let source = sources.of(m)?;
    source.ready(m, target).await?;
    let applied = source.apply(m, target).await?;
    if applied.interrupted {
        return Err(Error::Interrupted);
    }
    if let Some(e) = applied.error {
        return Err(Error::environment(format!(
            "{} failed on the abort's copy before the aborted migration could start: {}",
            m.shown_id(),
            e.message
        )));
    }
    target.client.batch_execute("RESET ALL /*rehearse*/").await.map_err(|e| {
        Error::environment_because(format!("cannot reset the migration session after {}", m.shown_id()), e)
    })
}

/// Drops a copy once its abort is done, whoever is still connected.
async fn drop_copy(server: &Throwaway, copy: &ConnInfo) -> Result<()> {
    let conn = server.conn();
    let admin = connect(conn, &conn.admin_dbname, APP_NAME).await.map_err(|e| {
        ErrorKind::ConnectionFailed.because(format!("cannot connect to {}", conn.masked(&conn.admin_dbname)), e)
    })?;
    let version = catalog::server_version_num(&admin)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot read the server's version", e))?;
    drop(admin);
    crate::backend::url::drop_on(conn, &copy.dbname, version, &conn.masked(&conn.admin_dbname)).await
}
