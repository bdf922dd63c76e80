//! The pipeline of DESIGN.md, as a list of stages: provision → restore
//! (or the snapshot cache) → analyze → snapshot → prepare → [race copy] →
//! [standby] → discover → rehearse each → [race] → [drift] → [backup] →
//! [rollback] → cleanup → report. Each stage is a function from what the stages before
//! it produced to the facts it establishes, run by the stage runner
//! (`pipeline::Pipeline`), which owns events, timing, signals and
//! stage-tagged errors; the facts go into the run's `report::Rehearsal`,
//! and the report is built from them at the end (`outcome.rs`). A new stage
//! is a function and one line in [`on_server`]. Whatever happens after
//! provisioning, the throwaway server is cleaned up (or kept, with
//! `--keep`) and a report is written.

mod abort;
mod backup;
mod drift;
mod outcome;
mod physical;
mod physical_cache;
mod platform;
mod production;
mod proof;
mod rehearse;
mod retry;
mod rollback;
mod snapshot;
mod standby;

use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::backend::BackendPlan;
use crate::backend::Throwaway;
use crate::catalog;
use crate::error::{ErrorKind, Result};
use crate::migrations::launch::Launch;
use crate::migrations::network::ToolNetwork;
use crate::migrations::sources::Sources;
use crate::migrations::{Migration, MigrationSource, MigrationsPlan, Target, Tracing};
use crate::pipeline::events::EventSink;
use crate::pipeline::{Pipeline, Stopped, Summary, Supervisor};
use crate::plan::Plan;
use crate::prepare;
use crate::race::{RaceInputs, RacePlan};
use crate::report::{
    self, IsolationInfo, MigrationFacts, Rehearsal, RestoreInfo, ServerFacts, Setting, SourceReport, Stage,
};
use crate::restore;
use crate::sys::db::ConnInfo;
pub use outcome::Outcome;
use rehearse::Rehearsed;
use snapshot::{DumpIdentity, SnapshotPlan};

/// Runs a resolved plan. Never returns without cleaning up.
pub async fn run(plan: Plan, events: &dyn EventSink, sup: &Supervisor) -> Outcome {
    let started = Instant::now();
    let mut p = Pipeline::new(events, sup.token().clone(), Rehearsal::new(outcome::planned(&plan)));
    for warning in &plan.warnings {
        p.note(warning.clone());
    }
    let dump = DumpIdentity::start(plan.dump.as_ref().map(|d| d.path.as_path()), sup.token());
    let network = ToolNetwork::new(matches!(plan.backend, BackendPlan::Url(_) | BackendPlan::Clone(_)));
    let launches = tool_launches(&plan);
    if let Some(why) = network.facts(&launches).and_then(|f| f.why) {
        p.note(format!("the migration tool runs on the host's network: {why}"));
    }
    let mut server = None;
    let mut stopped = stages(&plan, &mut p, &dump, &mut server, &network).await.err();
    // Before the server goes: nothing may stay connected through a relay.
    network.close();
    p.facts.isolation = network.facts(&launches);
    p.facts.watched.limitations.extend(host_network_limitation(p.facts.isolation.as_ref()));
    let kept = match server {
        Some(server) => finish_server(&plan, &mut p, server).await,
        None => None,
    };
    if stopped.is_none() && p.cancel().is_cancelled() {
        // A signal after the last stage still ends the run as interrupted, the report says where.
        stopped = Some(Stopped::interrupted(Stage::Report));
    }
    outcome::finish(&plan, p, dump, stopped, kept, started).await
}

/// Every stage up to the last one that needs the server.
async fn stages(
    plan: &Plan,
    p: &mut Pipeline<'_>,
    dump: &DumpIdentity,
    server: &mut Option<Throwaway>,
    network: &ToolNetwork,
) -> Result<(), Stopped> {
    let cancel = p.cancel().clone();
    let snapshot = match (&plan.cache, &plan.physical) {
        (Some(cache), Some(physical)) => physical_cache::plan(plan, physical, cache, &cancel).await,
        (Some(cache), None) => snapshot::plan(plan, cache, dump, &cancel).await,
        (None, _) => None,
    };
    let detail = match &plan.backend {
        // The program only: create's arguments may hold secrets.
        crate::backend::BackendPlan::Clone(c) => format!("clone (postgres.clone.create: `{}`)", c.program()),
        other => other.name().to_string(),
    };
    let provisioned = p.stage(Stage::Provision, detail, async || provision(plan, snapshot.as_ref(), &cancel).await);
    let server = server.insert(provisioned.await?);
    p.facts.clone = server.clone_source();
    on_server(plan, p, server, snapshot.as_ref(), network).await
}

async fn provision(plan: &Plan, snapshot: Option<&SnapshotPlan>, cancel: &CancellationToken) -> Result<Throwaway> {
    if plan.physical.is_some() {
        return match snapshot.and_then(|s| s.hit.as_ref().zip(s.binaries.as_ref())) {
            Some((entry, bin)) => Throwaway::provision_physical_from_snapshot(bin, entry, cancel).await,
            None => Throwaway::provision_physical(&plan.backend),
        };
    }
    match snapshot.and_then(|s| s.hit.as_ref()) {
        Some(entry) => Throwaway::provision_from_snapshot(&plan.backend, entry, cancel).await,
        None => Throwaway::provision(&plan.backend, cancel).await,
    }
}

/// The stages that run on the provisioned server, in order.
async fn on_server(
    plan: &Plan,
    p: &mut Pipeline<'_>,
    server: &mut Throwaway,
    snapshot: Option<&SnapshotPlan>,
    network: &ToolNetwork,
) -> Result<(), Stopped> {
    match (snapshot.and_then(|s| s.hit.as_ref()), &plan.dump) {
        _ if plan.physical.is_some() => {
            physical::stages(p, server, plan.physical.as_ref().expect("checked"), snapshot).await?
        }
        // A clone holds production's data, statistics included: nothing to restore or analyze.
        (_, None) => {}
        (Some(entry), _) => {
            let detail = format!("from the snapshot cache ({})", entry.dir.display());
            let hit = p.stage(Stage::Restore, detail, async || Ok(snapshot::restored_from(entry))).await?;
            p.facts.restore = hit.0;
        }
        (None, Some(file)) => restore_stages(plan, p, server, file, snapshot).await?,
    }
    let c = &p.cancel().clone();
    let prepared = p.stage(Stage::Prepare, "prod-like settings", async || prepare(plan, server, c).await).await?;
    p.facts.server = Some(prepared.server.clone());
    p.facts.production = prepared.production.as_ref().map(|a| a.report.clone());
    p.facts.platform = prepared.platform.clone();
    // The login the migrations run as, on the rehearsed database and on each copy (`production::login_on`).
    let as_production = prepared.production.as_ref();
    let race_database = match plan.race {
        Some(_) => Some(race_copy(p, server).await?),
        None => None,
    };
    let abort_copies = match &plan.abort {
        Some(a) => abort_copies(p, server, abort::copies_needed(a)).await?,
        None => Vec::new(),
    };
    let before_release = match plan.rollback {
        Some(_) => Some(before_copy(p, server).await?),
        None => None,
    };
    if let Some(options) = plan.observe.standby.as_ref().filter(|_| plan.observe.enabled) {
        standby_stage(plan, p, server, options).await?;
    }
    let tracing = Tracing { exact_locks: plan.observe.enabled, statements: plan.observe.trace };
    let source = Sources::new(&plan.migrations, tracing);
    let detail = match plan.migrations.len() {
        1 => format!("pending {} migrations", source.tools()),
        n => format!("pending {} migrations of {n} apps", source.tools()),
    };
    let mut pending = p
        .stage(Stage::Discover, detail, async || {
            discover(&source, server, &prepared, network, plan.abort.as_ref(), c).await
        })
        .await?;
    p.facts.sources = std::mem::take(&mut pending.sources);
    let release = Release { migrations: pending.migrations.clone(), largest_tables: pending.largest_tables.clone() };
    rehearse_stage(plan, p, server, &source, pending).await?;
    if let Some(a) = plan.abort.as_ref().filter(|_| applied_all(p, "abort skipped: the rehearsal", "cancel from")) {
        abort_stage(plan, a, p, server, (&abort_copies, as_production), network).await?;
    }
    // The plan allows a race with one source only.
    if let (Some(race), Some(database), Some(single)) = (&plan.race, &race_database, source.single()) {
        if applied_all(p, "race skipped: the sequential rehearsal", "race to") {
            race_stage(p, race, server, single, (database, as_production), network).await?;
        }
    }
    if let Some(d) =
        plan.drift.as_ref().filter(|_| applied_all(p, "drift check skipped: the rehearsal", "compare with the history"))
    {
        let (detail, c) = (drift::detail(&server.conn().dbname), &p.cancel().clone());
        let built = p
            .stage(Stage::Drift, detail, async || {
                drift::build_and_compare(d, &plan.migrations, server, (network, as_production), c).await.map(Fact)
            })
            .await?;
        if let Some(error) = &built.0.error {
            p.note(format!("drift check: {error} (the rehearsal's results stand; the report says so)"));
        }
        p.facts.drift = Some(built.0);
    }
    if plan.report.measure_backup && p.facts.server.is_some() {
        let measured =
            p.stage(Stage::Backup, backup::COMMAND, async || Ok(Fact(backup::measure(server, c).await))).await?;
        p.facts.backup = Some(measured.0);
    }
    if let (Some(rollback), Some(before)) = (&plan.rollback, &before_release) {
        let (downgrade, skipped) = (rollback.downgrade(), "rollback skipped: the rehearsal");
        match applied_all(p, skipped, "roll back from") {
            true => {
                let releases = (rollback, &source, &release);
                rollback_stage(plan, p, server, releases, (before, as_production), network).await?
            }
            false => {
                let skipped = Some(format!("the release did not apply whole: {}", p.facts.unapplied().join(", ")));
                p.facts.rollback = Some(report::RollbackFacts { downgrade, skipped, ..Default::default() });
            }
        }
    }
    Ok(())
}

/// The release as discovered, for the rollback stage.
struct Release {
    migrations: Vec<Migration>,
    largest_tables: Vec<String>,
}

/// A copy of the prepared database, as it was before the release, made
/// right after prepare (nobody may be connected to a template): what the
/// rollback is compared with, and where the values the release drops are counted.
async fn before_copy(p: &mut Pipeline<'_>, server: &mut Throwaway) -> Result<rollback::BeforeRelease, Stopped> {
    let detail =
        format!("{} as the template of the database before the release, for the rollback", server.conn().dbname);
    p.stage(Stage::RollbackCopy, detail, async || {
        Ok(rollback::BeforeRelease(
            server.copy_database(rollback::BEFORE, crate::backend::copy::Template::Rehearsal).await?,
        ))
    })
    .await
}

/// The rollback release on the rehearsed database, then compared with the copy before the release.
async fn rollback_stage(
    plan: &Plan,
    p: &mut Pipeline<'_>,
    server: &Throwaway,
    (rollback, release, discovered): (&crate::plan::rollback::RollbackPlan, &Sources, &Release),
    (before, as_production): (&rollback::BeforeRelease, Option<&production::AsProduction>),
    network: &ToolNetwork,
) -> Result<(), Stopped> {
    let (events, cancel) = (p.events(), &p.cancel().clone());
    let what = match rollback.downgrade() {
        true => "alembic downgrade to production's revision",
        false => "the rollback release",
    };
    let detail = format!("{what}, then compared with {}", before.0.dbname);
    let mut facts = report::RollbackFacts { downgrade: rollback.downgrade(), ..Default::default() };
    let (release_facts, compat) = (p.facts.migrations.clone(), p.facts.compat.clone());
    let inputs = rollback::Inputs {
        plan,
        rollback,
        server,
        release,
        release_migrations: &discovered.migrations,
        release_facts: &release_facts,
        compat: compat.as_ref(),
        before: &before.0,
        as_production,
        network,
        largest_tables: discovered.largest_tables.clone(),
        events,
        cancel,
    };
    let done = p.stage(Stage::Rollback, detail, async || rollback::rehearse(inputs, &mut facts).await.map(Fact)).await;
    p.facts.rollback = Some(facts);
    done.map(|_| ())
}

/// Restore the dump, analyze it, and save it into the snapshot cache when there is one.
async fn restore_stages(
    plan: &Plan,
    p: &mut Pipeline<'_>,
    server: &mut Throwaway,
    file: &crate::plan::DumpFile,
    snapshot: Option<&SnapshotPlan>,
) -> Result<(), Stopped> {
    let c = &p.cancel().clone();
    let detail = format!("{} ({}, {} job(s))", file.path.display(), file.format, plan.restore_jobs);
    let restored = p.stage(Stage::Restore, detail, async || restore(plan, file, server, c).await).await?;
    p.facts.restore = restored.info;
    let analyze = "VACUUM ANALYZE, CHECKPOINT";
    p.stage(Stage::Analyze, analyze, async || prepare::settle(server, &restored.admin, plan.restore_jobs, c).await)
        .await?;
    drop(restored.admin);
    if let Some(s) = snapshot {
        let detail = format!("saving to {}", s.cache.root().display());
        let (events, restore) = (p.events(), p.facts.restore.clone());
        let saved = p
            .stage(Stage::Snapshot, detail, async || {
                snapshot::save(server, s, (&restore, None), events, c).await.map(Fact)
            })
            .await?;
        (p.facts.restore.cache_key, p.facts.restore.cache) = (Some(s.key.hex.clone()), Some(saved.0));
    }
    Ok(())
}

/// The standby the observers watch: started from the primary, or the one the scenario names.
async fn standby_stage(
    plan: &Plan,
    p: &mut Pipeline<'_>,
    server: &mut Throwaway,
    options: &crate::observe::StandbyOptions,
) -> Result<(), Stopped> {
    let c = &p.cancel().clone();
    let detail = match options.url {
        Some(_) => "the standby observe.standby_url names",
        None => "pg_basebackup of the primary, hot standby",
    };
    let standby = p
        .stage(Stage::Standby, detail, async || {
            let standby = server.start_standby(&plan.backend, options, c).await?;
            standby::describe(standby, options).await.map(Fact)
        })
        .await?;
    p.facts.standby = Some(standby.0);
    Ok(())
}

/// Each pending migration, one at a time. What the stage established stays
/// in the facts however it ended.
async fn rehearse_stage(
    plan: &Plan,
    p: &mut Pipeline<'_>,
    server: &Throwaway,
    source: &Sources,
    pending: Pending,
) -> Result<(), Stopped> {
    let (events, c) = (p.events(), &p.cancel().clone());
    let detail = format!("{} migration(s), one at a time", pending.migrations.len());
    let mut rehearsed = Rehearsed {
        migrations: pending.migrations.iter().map(|m| MigrationFacts::pending(outcome::planned_migration(m))).collect(),
        watched: Default::default(),
        compat: None,
        load: None,
        rollback: false,
    };
    let result = p
        .stage(Stage::Rehearse, detail, async || {
            rehearse::each(plan, server, source, pending, &mut rehearsed, events, c).await
        })
        .await;
    p.facts.migrations = rehearsed.migrations;
    p.facts.watched = rehearsed.watched;
    p.facts.compat = rehearsed.compat;
    p.facts.load = rehearsed.load;
    result
}

/// Whether the rehearsal applied every migration; if not, says so: what is
/// skipped (the race, the drift check), and that it has no end state to `what`.
fn applied_all(p: &Pipeline<'_>, skipped: &str, what: &str) -> bool {
    let unapplied = p.facts.unapplied();
    if !unapplied.is_empty() {
        p.note(format!("{skipped} did not apply {}, so there is no end state to {what}", unapplied.join(", ")));
    }
    unapplied.is_empty()
}

/// The race's database.
struct RaceDatabase(ConnInfo);

impl Summary for RaceDatabase {
    fn summary(&self) -> String {
        self.0.dbname.clone()
    }
}

/// A fresh copy of the restored database for the race, made right after
/// prepare: nobody may be connected to a template.
async fn race_copy(p: &mut Pipeline<'_>, server: &mut Throwaway) -> Result<RaceDatabase, Stopped> {
    let detail = format!("{} as the template of a fresh database for the race", server.conn().dbname);
    p.stage(Stage::RaceCopy, detail, async || {
        Ok(RaceDatabase(server.copy_database("race", crate::backend::copy::Template::Rehearsal).await?))
    })
    .await
}

/// The abort rehearsal's copies of the prepared database, made right after
/// prepare as the race's is (see `abort`).
async fn abort_copies(p: &mut Pipeline<'_>, server: &mut Throwaway, n: usize) -> Result<Vec<ConnInfo>, Stopped> {
    let detail = format!("{} as the template of {n} fresh database(s) for the abort rehearsal", server.conn().dbname);
    let made = p.stage(Stage::AbortCopy, detail, async || abort::make_copies(server, n).await.map(Fact)).await?;
    Ok(made.0)
}

/// Each aborted migration cancelled on its copy, what it left, the recovery proved.
async fn abort_stage(
    plan: &Plan,
    a: &crate::plan::abort::AbortPlan,
    p: &mut Pipeline<'_>,
    server: &Throwaway,
    (copies, as_production): (&[ConnInfo], Option<&production::AsProduction>),
    network: &ToolNetwork,
) -> Result<(), Stopped> {
    let detail = format!("{} cancelled at {} on a fresh copy", abort_names(a), a.at_text);
    let (cancel, rehearsed) = (p.cancel().clone(), p.facts.migrations.clone());
    let inputs = abort::Inputs {
        plan: a,
        sources: &plan.migrations,
        rehearsed: &rehearsed,
        server,
        copies,
        as_production,
        network,
        cancel: &cancel,
    };
    let reports = p.stage(Stage::Abort, detail, async || abort::rehearse(&inputs).await.map(Fact)).await?;
    for r in reports.0.iter().filter(|r| !r.proved()) {
        p.note(format!("abort of {}: {}", r.migration, abort_problem(r)));
    }
    p.facts.abort = reports.0;
    Ok(())
}

fn abort_names(a: &crate::plan::abort::AbortPlan) -> String {
    match &a.migrations {
        crate::plan::abort::AbortMigrations::Named(ids) => ids.join(", "),
        crate::plan::abort::AbortMigrations::Longest => "the longest migration".into(),
    }
}

/// What an abort that did not prove its recovery says in the run's notes.
fn abort_problem(r: &crate::report::AbortReport) -> String {
    match (&r.error, r.recovered, r.rerun_ok) {
        (Some(e), _, _) => e.clone(),
        (None, false, _) => "the recovery did not bring the schema back (see the report's abort section)".into(),
        _ => "the migration did not apply again after the recovery (see the report's abort section)".into(),
    }
}

/// The replicas racing to run the whole upgrade at start-up, on the race's copy.
async fn race_stage(
    p: &mut Pipeline<'_>,
    plan: &RacePlan,
    server: &Throwaway,
    source: &MigrationSource,
    (database, as_production): (&RaceDatabase, Option<&production::AsProduction>),
    network: &ToolNetwork,
) -> Result<(), Stopped> {
    let sequential = Duration::from_millis(p.facts.stage_ms(Stage::Rehearse).unwrap_or(0));
    let applied = p.facts.migrations.len();
    let detail = format!("{} replicas of `{}` at once on {}", plan.replicas, plan.command.shown(), database.0.dbname);
    let (events, cancel) = (p.events(), p.cancel().clone());
    let raced = p.stage(Stage::Race, detail, async || {
        let rehearsed = server.conn();
        let login = production::login_on(as_production, server, &database.0).await?;
        let inputs = RaceInputs {
            plan,
            rehearsed,
            copy: &database.0,
            login: &login,
            source,
            sequential,
            applied,
            events,
            network,
            cancel: &cancel,
        };
        crate::race::race(inputs).await.map(Fact)
    });
    let raced = raced.await?;
    p.facts.race = Some(raced.0);
    Ok(())
}

impl Summary for Throwaway {}

/// A stage's facts, with nothing to add to its "done" line.
struct Fact<T>(T);

impl<T> Summary for Fact<T> {}

/// The restore, and an admin session made after its restart.
struct Restored {
    info: RestoreInfo,
    admin: Client,
}

impl Summary for Restored {}

async fn restore(
    plan: &Plan,
    file: &crate::plan::DumpFile,
    server: &mut Throwaway,
    cancel: &CancellationToken,
) -> Result<Restored> {
    let admin = prepare::fast_restore_settings(server, "rehearse-admin", cancel).await?;
    let dump =
        restore::Dump { path: &file.path, format: file.format, jobs: plan.restore_jobs, room: plan.room.as_ref() };
    let restored = restore::restore(server, &admin, dump, cancel).await?;
    let info = RestoreInfo {
        duration_ms: millis(restored.duration),
        jobs: restored.jobs,
        roles_created: restored.roles_created,
        restored_at: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
        ..RestoreInfo::default()
    };
    Ok(Restored { info, admin })
}

/// The server and its data after prod-like settings: what the report says
/// of them, and the largest tables (probed when the scenario names no hot tables).
struct Prepared {
    server: ServerFacts,
    /// Production's role and settings (`production:`), and the role's login.
    production: Option<production::AsProduction>,
    /// The managed platform's limits on the copy (`postgres.platform`).
    platform: Option<report::PlatformReport>,
}

impl Summary for Prepared {}

/// Prod-like settings, then what the report says of the server and the
/// restored data.
async fn prepare(plan: &Plan, server: &mut Throwaway, cancel: &CancellationToken) -> Result<Prepared> {
    let admin = prepare::reconnect(server, "rehearse-admin", cancel).await?;
    prepare::apply_settings(server, &admin, &plan.settings, cancel).await?;
    drop(admin);
    let has_sql = plan.migrations.iter().any(|s| matches!(s.plan, MigrationsPlan::Sql(_)));
    // Before production's role: it may be a member of the platform's pseudo-superuser.
    let platform = match &plan.platform {
        Some(pp) => {
            let admin = prepare::reconnect(server, "rehearse-admin", cancel).await?;
            let as_role = plan.production.as_ref().is_some_and(|p| p.role.is_some());
            Some(platform::reproduce(pp, server, &admin, as_role).await?)
        }
        None => None,
    };
    let production = match &plan.production {
        // A new session: applying the settings may have restarted the server.
        Some(pp) => {
            let admin = prepare::reconnect(server, "rehearse-admin", cancel).await?;
            Some(production::reproduce(pp, server, &admin, has_sql).await?)
        }
        None => None,
    };
    let observer = prepare::reconnect(server, "rehearse-observer", cancel).await?;
    let env = |e| ErrorKind::CatalogReadFailed.because("cannot read the restored database's catalog", e);
    let server = ServerFacts {
        version: catalog::server_version(&observer).await.map_err(env)?,
        settings: catalog::settings(&observer, &prepare::REPORTED[1..])
            .await
            .map_err(env)?
            .into_iter()
            .map(|(name, value)| Setting { name, value })
            .collect(),
        tables: catalog::table_sizes(&observer)
            .await
            .map_err(env)?
            .into_iter()
            .map(|t| report::TableInfo { name: t.name, rows: t.rows, bytes: t.bytes })
            .collect(),
        database_bytes: catalog::database_size(&observer).await.map_err(env)?,
    };
    Ok(Prepared { server, production, platform })
}

/// The pending migrations, where they came from, the session rehearse runs
/// them on, and the network the tools that run them start on.
struct Pending {
    migrations: Vec<Migration>,
    sources: Vec<SourceReport>,
    runner: Client,
    largest_tables: Vec<String>,
    /// How the migration tools start and reach the database.
    network: ToolNetwork,
    /// The login the migrations run as (the role's with `production.as_role`).
    conn: ConnInfo,
}

impl Summary for Pending {
    fn summary(&self) -> String {
        format!("{} pending", self.migrations.len())
    }
}

async fn discover(
    source: &Sources,
    server: &Throwaway,
    prepared: &Prepared,
    network: &ToolNetwork,
    abort: Option<&crate::plan::abort::AbortPlan>,
    cancel: &CancellationToken,
) -> Result<Pending> {
    // As production's role when `production.as_role`: its login settings apply to this session.
    let conn = &production::login_on(prepared.production.as_ref(), server, server.conn()).await?;
    let runner = crate::sys::db::connect_when_ready(conn, &conn.dbname, "rehearse-migration", READY, cancel).await?;
    let target =
        Target { client: &runner, conn, cancel, watcher: None, network, lock_timeout: None, explain_memory: false };
    let (migrations, sources) = source.pending(&target).await?;
    if let Some(a) = abort {
        // Before the first migration runs: a scenario that names no pending migration is wrong input.
        a.check_pending(&migrations.iter().map(Migration::shown_id).collect::<Vec<_>>())?;
    }
    let largest_tables = prepared.server.tables.iter().map(|t| t.name.clone()).collect();
    Ok(Pending { migrations, sources, runner, largest_tables, network: network.clone(), conn: conn.clone() })
}

/// Every launch of a migration tool the plan holds: the sources' (SQL
/// files have none: rehearse applies them) and the race's command.
fn tool_launches(plan: &Plan) -> Vec<&Launch> {
    let mut launches: Vec<&Launch> = plan
        .migrations
        .iter()
        .filter_map(|s| match &s.plan {
            MigrationsPlan::Alembic(a) => Some(&a.launch),
            MigrationsPlan::Command(c) => Some(&c.launch),
            MigrationsPlan::Django(d) => Some(&d.launch),
            MigrationsPlan::Sql(_) => None,
        })
        .collect();
    launches.extend(plan.race.as_ref().map(|r| &r.command.launch));
    launches
}

/// When a tool ran on the host's network, the limitation that comes with it.
fn host_network_limitation(isolation: Option<&IsolationInfo>) -> Option<String> {
    let why = isolation.and_then(|i| i.why.as_ref())?;
    Some(format!(
        "the migration tool ran on the host's network ({why}): it could have reached servers other than the copy, \
         so rehearse relies on its checks instead (proof that the copy's migration history advanced)"
    ))
}

/// How long a restarted server may take to accept connections.
const READY: Duration = Duration::from_secs(30);

/// Cleanup (or `--keep`): always, whatever stopped the run. Returns how to
/// reach a kept server.
async fn finish_server(plan: &Plan, p: &mut Pipeline<'_>, server: Throwaway) -> Option<String> {
    if plan.keep {
        return Some(server.keep());
    }
    let detail = server.cleanup_detail();
    if let Err(e) = p.always(Stage::Cleanup, detail, async || server.cleanup().await).await {
        p.note(e.render());
    }
    None
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}
