//! The scenario's `rollback:` as the rollback stage's plan: a forward
//! rollback release (`rollback.migrations`, scanned as the top-level
//! `migrations:` is) or `alembic downgrade` back to production's revision
//! (`rollback.downgrade: true`). Refused before anything starts: an empty
//! section, both keys, a downgrade of anything but one Alembic project,
//! and a rollback folder whose versions the release's folder already uses
//! (on one history, the rollback's file would count as applied).

use super::migrations::scan_all;
use super::scenario::Scenario;
use super::Origin;
use crate::error::{ErrorKind, Result};
use crate::migrations::sources::SourcePlan;
use crate::migrations::MigrationsPlan;

/// What the rollback stage applies once the release applied.
#[derive(Debug)]
pub enum RollbackPlan {
    /// A release that undoes this one, applied like any other.
    Forward(Vec<SourcePlan>),
    /// `alembic downgrade` of the release's revisions, back to production's.
    Downgrade,
}

impl RollbackPlan {
    pub fn downgrade(&self) -> bool {
        matches!(self, RollbackPlan::Downgrade)
    }
}

pub(super) fn plan(s: &Scenario, release: &[SourcePlan], origin: &Origin) -> Result<Option<RollbackPlan>> {
    let Some(r) = &s.rollback else { return Ok(None) };
    let shown = origin.shown();
    match (&r.migrations, r.downgrade.unwrap_or(false)) {
        (Some(_), true) => Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: rollback has both migrations and downgrade: true: give rollback.migrations (a forward \
             rollback release) or rollback.downgrade (Alembic's downgrade), not both"
        ))),
        (None, false) => Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: rollback is empty: give rollback.migrations (the release that undoes this one, in the shapes \
             of migrations:) or, for an Alembic project, rollback.downgrade: true"
        ))),
        (None, true) => downgrade(release, &shown).map(Some),
        (Some(list), false) => {
            let sources = scan_all(list, origin).map_err(|e| e.context("rollback.migrations"))?;
            refuse_clashes(release, &sources, &shown)?;
            Ok(Some(RollbackPlan::Forward(sources)))
        }
    }
}

/// `rollback.downgrade`: the release's one source must be an Alembic project.
fn downgrade(release: &[SourcePlan], shown: &str) -> Result<RollbackPlan> {
    match release {
        [SourcePlan { plan: MigrationsPlan::Alembic(_), .. }] => Ok(RollbackPlan::Downgrade),
        [one] => Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: rollback.downgrade: true runs `alembic downgrade`, and this release's migrations.tool is {}, \
             which has no downgrade rehearse can run: write the forward rollback release and give it as \
             rollback.migrations",
            tool(&one.plan)
        ))),
        _ => Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: rollback.downgrade: true with {} apps in migrations: the downgrade is rehearsed for one \
             Alembic project: give each app's rollback as rollback.migrations instead",
            release.len()
        ))),
    }
}

fn tool(plan: &MigrationsPlan) -> &'static str {
    match plan {
        MigrationsPlan::Sql(_) => "sql",
        MigrationsPlan::Alembic(_) => "alembic",
        MigrationsPlan::Command(_) => "command",
        MigrationsPlan::Django(_) => "django",
    }
}

/// A rollback SQL file with the id or version of a release file of the same
/// app: on one history table the rollback's file would count as applied.
/// (An Alembic or command tree's ids are known once listed: the rollback
/// stage refuses a clash then.)
fn refuse_clashes(release: &[SourcePlan], rollback: &[SourcePlan], shown: &str) -> Result<()> {
    for r in rollback {
        let MigrationsPlan::Sql(back) = &r.plan else { continue };
        for p in release.iter().filter(|p| p.app == r.app) {
            let MigrationsPlan::Sql(forward) = &p.plan else { continue };
            let ours = forward.versions();
            let clash = back
                .versions()
                .into_iter()
                .find(|(id, version)| ours.iter().any(|(i, v)| i == id || (!version.is_empty() && v == version)));
            if let Some((id, version)) = clash {
                return Err(ErrorKind::ScenarioInvalid.error(format!(
                    "{shown}: rollback.migrations: {id} (version {version}) clashes with a migration of the release \
                     in {}: the rollback is a release of its own, after this one: number its files after the \
                     release's last (e.g. the next version up)",
                    p.dir.display()
                )));
            }
        }
    }
    Ok(())
}
