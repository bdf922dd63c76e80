//! Several apps' migration sources on one database (a monorepo's trees,
//! each with its own history table), applied in the order the scenario
//! lists them: all of the first app's pending migrations, then the
//! second's. Interleaving by a per-source timestamp is not supported.
//! With one source nothing is named: ids stay as the tool prints them.

use super::{Found, Migration, MigrationSource, MigrationsPlan, Target, Tracing};
use crate::error::{Error, ErrorKind, Result};
use crate::report::SourceReport;

/// One source of a run, as the plan resolved it.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// The app's name (`migrations[].name`); None for a scenario with one unnamed source.
    pub app: Option<String>,
    /// The folder its migrations live in (as the tool sees it), for the report.
    pub dir: std::path::PathBuf,
    pub plan: MigrationsPlan,
    /// `migrations.retry`: lock_timeout with retries.
    pub retry: Option<super::retry::RetryPolicy>,
}

/// The migration sources of a run, in apply order.
pub struct Sources {
    list: Vec<(SourcePlan, MigrationSource)>,
}

impl Sources {
    pub fn new(plans: &[SourcePlan], tracing: Tracing) -> Sources {
        Sources { list: plans.iter().map(|p| (p.clone(), MigrationSource::new(&p.plan, tracing))).collect() }
    }

    /// The release's one Alembic project turned around (`rollback.downgrade`):
    /// `alembic downgrade <to>` in one process, recording in the version
    /// table discovery read; None when the release is not one Alembic project.
    pub fn downgrade(&self, to: &str, tracing: Tracing) -> Option<Sources> {
        let [(plan, MigrationSource::Alembic(project))] = self.list.as_slice() else { return None };
        let MigrationsPlan::Alembic(mut alembic) = plan.plan.clone() else { return None };
        alembic.downgrade = true;
        alembic.target = to.to_string();
        alembic.process = super::AlembicProcess::One;
        alembic.version_table = Some(project.version_table());
        let plan = SourcePlan { plan: MigrationsPlan::Alembic(alembic), ..plan.clone() };
        Some(Sources::new(&[plan], tracing))
    }

    /// Ends what every source still runs (see [`MigrationSource::close`]).
    pub async fn close(&self) {
        for (_, source) in &self.list {
            source.close().await;
        }
    }

    /// The tools, as the discover stage names them ("alembic", "alembic and sql").
    pub fn tools(&self) -> String {
        let mut tools: Vec<&str> = self.list.iter().map(|(_, s)| s.tool().as_str()).collect();
        tools.dedup();
        tools.join(" and ")
    }

    /// The one source, when the run has only one (a race needs it).
    pub fn single(&self) -> Option<&MigrationSource> {
        match self.list.as_slice() {
            [(_, only)] => Some(only),
            _ => None,
        }
    }

    /// Whether any source runs migrations in rehearse's own session.
    pub fn any_in_own_session(&self) -> bool {
        self.list.iter().any(|(_, s)| s.runs_in_own_session())
    }

    /// Each source's app, tool and history table, when rehearse knows the
    /// table (after discovery, for Alembic: the one env.py configures).
    pub fn histories(&self) -> Vec<(Option<String>, super::MigrationTool, String)> {
        let known = |(p, s): &(SourcePlan, MigrationSource)| s.history_table().map(|t| (p.app.clone(), s.tool(), t));
        self.list.iter().filter_map(known).collect()
    }

    /// The retry policy of the source a migration came from (`migrations.retry`).
    pub fn retry_of(&self, migration: &Migration) -> Option<super::retry::RetryPolicy> {
        self.list.iter().find(|(p, _)| p.app == migration.app).and_then(|(p, _)| p.retry)
    }

    /// The source a migration came from.
    pub fn of(&self, migration: &Migration) -> Result<&MigrationSource> {
        self.list.iter().find(|(p, _)| p.app == migration.app).map(|(_, s)| s).ok_or_else(|| {
            Error::environment(format!("no migration source for {}: report this as a bug", migration.shown_id()))
        })
    }

    /// Every source's pending migrations, in the listed order, each
    /// tagged with its app; and what each source found, for the report.
    pub async fn pending(&self, target: &Target<'_>) -> Result<(Vec<Migration>, Vec<SourceReport>)> {
        let mut all = Vec::new();
        let mut reports = Vec::new();
        for (i, (plan, source)) in self.list.iter().enumerate() {
            let found = source.pending(target).await;
            // Before the app's own verdict: sharing another app's table, its
            // env.py may have read the other app's revision as its own.
            self.refuse_shared_history(i)?;
            let Found { mut migrations, skipped } = found.map_err(|e| match &plan.app {
                Some(app) => e.context(format!("app {app}")),
                None => e,
            })?;
            for m in &mut migrations {
                m.app = plan.app.clone();
            }
            reports.push(SourceReport {
                app: plan.app.clone(),
                tool: source.tool(),
                dir: plan.dir.display().to_string(),
                history: source.history_table(),
                pending: migrations.len(),
                skipped,
            });
            all.extend(migrations);
        }
        Ok((all, reports))
    }

    /// Two apps recording their history in one table (as their env.py
    /// files configure it, read at discovery) would each see the other's
    /// revisions as their own: refused before anything is applied.
    fn refuse_shared_history(&self, index: usize) -> Result<()> {
        let qualified = |s: &MigrationSource| {
            s.own_history_table().map(|t| match t.contains('.') {
                true => t.to_ascii_lowercase(),
                false => format!("public.{}", t.to_ascii_lowercase()),
            })
        };
        let (plan, source) = &self.list[index];
        let Some(table) = qualified(source) else { return Ok(()) };
        let Some((other, _)) = self.list[..index].iter().find(|(_, s)| qualified(s).as_ref() == Some(&table)) else {
            return Ok(());
        };
        let name = |p: &SourcePlan| p.app.clone().unwrap_or_else(|| "(unnamed)".into());
        Err(ErrorKind::MigrationsInvalid.error(format!(
            "apps {} and {} both record their history in {table}, as their configuration says: each app needs its \
             own history table (an Alembic app: pass version_table=... to context.configure in its env.py)",
            name(other),
            name(plan)
        )))
    }
}
