//! The rollback stage (`rollback:`): once the release applied whole, the
//! release that undoes it is applied on the rehearsed database, each
//! migration through the rehearse stage's own apply-and-observe path
//! (`rehearse::each`: time, locks, WAL, hazards, the estimate). Then what
//! a rollback is for: the previous app version's queries checked again
//! (`compat.queries`), the schema compared with the schema before the
//! release, and the values the release dropped counted as they were before
//! it. "Before the release" is a copy of the prepared database made right
//! after prepare (`<db>_before`, `CREATE DATABASE ... TEMPLATE`: nobody may
//! be connected to a template), so the counts are measured, not guessed.

mod loss;

use tokio_util::sync::CancellationToken;

use loss::{added_with_values, data_loss, dropped_by_rollback, retyped};

use super::rehearse::{self, Rehearsed};
use super::{outcome, Pending, READY};
use crate::backend::Throwaway;
use crate::catalog::{self, SchemaEntry};
use crate::compat::Checker;
use crate::drift::changed_keys;
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::network::ToolNetwork;
use crate::migrations::sources::{SourcePlan, Sources};
use crate::migrations::{Migration, Target, Tracing};
use crate::pg::DriftKind;
use crate::pipeline::events::EventSink;
use crate::plan::rollback::RollbackPlan;
use crate::plan::Plan;
use crate::report::{
    BrokenQuery, CompatInfo, MigrationFacts, MigrationStatus, RollbackFacts, SchemaChange, SchemaDifference,
};
use crate::sys::db::{connect, connect_when_ready, ConnInfo};

const APP_NAME: &str = "rehearse-rollback";

/// The copy's suffix: `<db>_before`.
pub const BEFORE: &str = "before";

/// The copy of the prepared database before the release (`<db>_before`).
pub struct BeforeRelease(pub ConnInfo);

impl crate::pipeline::Summary for BeforeRelease {
    fn summary(&self) -> String {
        self.0.dbname.clone()
    }
}

/// What the rollback stage works from: the run's plan, the release as
/// discovered and rehearsed, and the copy of the database before it.
pub struct Inputs<'a> {
    pub plan: &'a Plan,
    pub rollback: &'a RollbackPlan,
    pub server: &'a Throwaway,
    /// The release's sources (the downgrade turns its Alembic project around).
    pub release: &'a Sources,
    /// The release's migrations, as discovered, and what rehearsing them established.
    pub release_migrations: &'a [Migration],
    pub release_facts: &'a [MigrationFacts],
    /// The previous app version's queries before the release.
    pub compat: Option<&'a CompatInfo>,
    pub before: &'a ConnInfo,
    /// Production's role (`production.as_role`): the rollback's migrations run as it, as the release's did.
    pub as_production: Option<&'a super::production::AsProduction>,
    pub network: &'a ToolNetwork,
    pub largest_tables: Vec<String>,
    pub events: &'a dyn EventSink,
    pub cancel: &'a CancellationToken,
}

/// Applies the rollback release into `facts` (kept however it ends), then
/// compares what it left with the database before the release.
pub async fn rehearse(i: Inputs<'_>, facts: &mut RollbackFacts) -> Result<()> {
    let env = |what: String| move |e| ErrorKind::CatalogReadFailed.because(what, e);
    let before = connect(i.before, &i.before.dbname, APP_NAME)
        .await
        .map_err(env(format!("cannot connect to the copy before the release, {}", i.before.dbname)))?;
    let tracing = Tracing { exact_locks: i.plan.observe.enabled, statements: i.plan.observe.trace };
    let sources = match i.rollback {
        RollbackPlan::Forward(plans) => Sources::new(plans, tracing),
        RollbackPlan::Downgrade => downgrade_sources(&i, &before, tracing).await?,
    };
    let except = history_tables(i.plan, i.rollback);
    let except: Vec<&str> = except.iter().map(String::as_str).collect();
    let read = |what: &'static str| env(format!("cannot read the schema {what}"));
    let was = catalog::schema_snapshot(&before, &except).await.map_err(read("before the release (on the copy)"))?;
    let pending = pending(&i, &sources).await?;
    // rehearse's own session: the migrations' (production's role's) may not read every table.
    let rehearsed = connect(i.server.conn(), &i.server.conn().dbname, APP_NAME)
        .await
        .map_err(env("cannot connect to the rehearsed database after the release".into()))?;
    let released = catalog::schema_snapshot(&rehearsed, &except).await.map_err(read("after the release"))?;
    let added = added_with_values(&was, &released, &rehearsed).await?;
    let retyped = retyped(i.release_facts, &before, &rehearsed).await?;
    drop(rehearsed);
    facts.migrations =
        pending.migrations.iter().map(|m| MigrationFacts::pending(outcome::planned_migration(m))).collect();
    let migrations = std::mem::take(&mut facts.migrations);
    let mut rehearsed = Rehearsed { migrations, watched: Default::default(), compat: None, load: None, rollback: true };
    let applied = rehearse::each(i.plan, i.server, &sources, pending, &mut rehearsed, i.events, i.cancel).await;
    facts.migrations = rehearsed.migrations;
    applied?;
    if facts.migrations.iter().any(|m| m.status() != MigrationStatus::Applied) {
        return Ok(());
    }
    let after = connect(i.server.conn(), &i.server.conn().dbname, APP_NAME)
        .await
        .map_err(env("cannot connect to the rehearsed database after the rollback".into()))?;
    if let (Some(corpus), Some(before_release)) = (&i.plan.compat, i.compat) {
        let mut checker = Checker::connect(i.server.conn(), corpus, i.cancel).await?;
        let now = checker.before_first_migration().await?;
        facts.still_broken = still_broken(&before_release.already_broken, now.already_broken);
        facts.compat_restored = Some(facts.still_broken.is_empty());
    }
    let is = catalog::schema_snapshot(&after, &except).await.map_err(read("after the rollback"))?;
    facts.schema_diff = schema_diff(&was, &is);
    facts.data_loss = data_loss(i.release_facts, &before, &after).await?;
    facts.data_loss.extend(retyped);
    facts.data_loss.extend(dropped_by_rollback(added, &facts.migrations, &after).await?);
    Ok(())
}

/// The release's Alembic project turned around, down to the revision the
/// copy before the release records: production's (`base` when it has none).
async fn downgrade_sources(i: &Inputs<'_>, before: &tokio_postgres::Client, tracing: Tracing) -> Result<Sources> {
    let Some((_, _, table)) = i.release.histories().into_iter().next() else {
        return Err(Error::environment("rollback.downgrade: the release has no Alembic version table: report this"));
    };
    let rows = catalog::alembic_version(before, &table)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because(format!("cannot read {table} before the release"), e))?;
    let to = match rows.unwrap_or_default().as_slice() {
        [] => "base".to_string(),
        [one] => one.clone(),
        many => {
            return Err(ErrorKind::MigrationsInvalid.error(format!(
                "rollback.downgrade: production's {table} holds several heads ({}), and `alembic downgrade` goes \
                 down to one revision: give the rollback as rollback.migrations instead",
                many.join(", ")
            )))
        }
    };
    i.release.downgrade(&to, tracing).ok_or_else(|| {
        Error::environment("rollback.downgrade needs the release's one Alembic project: report this as a bug")
    })
}

/// The rollback's migrations and the session they run on: a forward
/// release's pending migrations (none may share an id with the release's),
/// or the release's revisions downgraded, last first.
async fn pending(i: &Inputs<'_>, sources: &Sources) -> Result<Pending> {
    let login = super::production::login_on(i.as_production, i.server, i.server.conn()).await?;
    let conn = &login;
    let runner = connect_when_ready(conn, &conn.dbname, "rehearse-migration", READY, i.cancel).await?;
    let migrations = match i.rollback {
        RollbackPlan::Forward(_) => {
            let target = Target {
                client: &runner,
                conn,
                cancel: i.cancel,
                watcher: None,
                network: i.network,
                lock_timeout: None,
                explain_memory: false,
            };
            let (found, _) = sources.pending(&target).await.map_err(|e| e.context("rollback.migrations"))?;
            refuse_clash(&found, i.release_migrations)?;
            found
        }
        RollbackPlan::Downgrade => downgraded(i.release_migrations),
    };
    Ok(Pending {
        migrations,
        sources: Vec::new(),
        runner,
        largest_tables: i.largest_tables.clone(),
        network: i.network.clone(),
        conn: conn.clone(),
    })
}

/// A rollback migration listed with a release migration's id: the two
/// trees share ids (or the rollback's tree is the release's).
fn refuse_clash(rollback: &[Migration], release: &[Migration]) -> Result<()> {
    let Some(m) = rollback.iter().find(|m| release.iter().any(|r| r.shown_id() == m.shown_id())) else {
        return Ok(());
    };
    Err(ErrorKind::ScenarioInvalid.error(format!(
        "rollback.migrations lists {}, which is also a migration of the release: the rollback is a release of its \
         own, with ids of its own (a revision after the release's head, files numbered after the release's)",
        m.shown_id()
    )))
}

/// The release's revisions as `alembic downgrade` runs them: last first.
fn downgraded(release: &[Migration]) -> Vec<Migration> {
    release
        .iter()
        .rev()
        .map(|m| Migration {
            description: format!("downgrade: {}", m.description),
            offline_sql: None,
            downgrade: true,
            ..m.clone()
        })
        .collect()
}

/// The queries that fail after the rollback and did not before the release.
fn still_broken(before_release: &[BrokenQuery], now: Vec<BrokenQuery>) -> Vec<BrokenQuery> {
    now.into_iter().filter(|q| !before_release.iter().any(|b| b.query == q.query)).collect()
}

/// Bookkeeping, never compared: every history table the release and the rollback record in.
fn history_tables(plan: &Plan, rollback: &RollbackPlan) -> Vec<String> {
    let mut sources: Vec<SourcePlan> = plan.migrations.clone();
    if let RollbackPlan::Forward(plans) = rollback {
        sources.extend(plans.iter().cloned());
    }
    super::drift::history_tables(&sources)
}

/// The extension rehearse's observers create (`catalog::stats`) on a
/// database without it: rehearse's doing, not the release's nor the rollback's.
const OBSERVERS_EXTENSION: (DriftKind, &str) = (DriftKind::Extension, "pg_stat_statements");

/// What differs between the schema before the release and after the
/// rollback: objects left behind, missing, or defined differently.
fn schema_diff(before: &[SchemaEntry], after: &[SchemaEntry]) -> Vec<SchemaDifference> {
    let mut added = changed_keys(before, after);
    added.retain(|(kind, object)| (*kind, object.as_str()) != OBSERVERS_EXTENSION);
    let removed = changed_keys(after, before);
    let mut out: Vec<SchemaDifference> = added
        .iter()
        .map(|(kind, object)| {
            let change = match removed.contains(&(*kind, object.clone())) {
                true => SchemaChange::Altered,
                false => SchemaChange::LeftBehind,
            };
            SchemaDifference { object: object.clone(), kind: *kind, change }
        })
        .collect();
    out.extend(removed.into_iter().filter(|k| !added.contains(k)).map(|(kind, object)| SchemaDifference {
        object,
        kind,
        change: SchemaChange::Missing,
    }));
    out.sort_by(|a, b| (&a.object, a.kind).cmp(&(&b.object, b.kind)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::SchemaEntryKind;

    fn entry(kind: SchemaEntryKind, name: &str, definition: &str) -> SchemaEntry {
        SchemaEntry { kind, name: name.into(), definition: definition.into(), label: None, parent: None }
    }

    #[test]
    fn the_schema_diff_names_what_was_left_behind_missing_or_altered() {
        let before = [
            entry(SchemaEntryKind::Column, "public.users.name", "text"),
            entry(SchemaEntryKind::Column, "public.users.note", "text"),
        ];
        let after = [
            entry(SchemaEntryKind::Column, "public.users.name", "varchar(10)"),
            entry(SchemaEntryKind::Table, "public.shadow", ""),
        ];
        let diff: Vec<(String, SchemaChange)> =
            schema_diff(&before, &after).into_iter().map(|d| (d.object, d.change)).collect();
        assert_eq!(
            diff,
            [
                ("public.shadow".to_string(), SchemaChange::LeftBehind),
                ("public.users.name".to_string(), SchemaChange::Altered),
                ("public.users.note".to_string(), SchemaChange::Missing),
            ]
        );
        assert!(schema_diff(&before, &before).is_empty());
        let observers = [entry(SchemaEntryKind::Extension, "pg_stat_statements", "1.10")];
        assert!(schema_diff(&before, &[&before[..], &observers[..]].concat()).is_empty(), "rehearse's own extension");
    }

    #[test]
    fn a_downgrade_runs_the_release_backwards_and_says_so() {
        let release = [
            Migration { id: "a".into(), description: "add".into(), ..Migration::default() },
            Migration { id: "b".into(), description: "index".into(), ..Migration::default() },
        ];
        let down = downgraded(&release);
        assert_eq!(down.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert!(down.iter().all(|m| m.downgrade && m.description.starts_with("downgrade: ")));
        assert!(refuse_clash(&down, &release).is_err(), "a forward rollback may not reuse the release's ids");
        assert!(refuse_clash(&down[..0], &release).is_ok());
    }
}
