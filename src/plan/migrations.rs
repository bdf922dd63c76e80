//! The scenario's `migrations:` as a migration source: an SQL folder scanned
//! (bad file names refused here, before the dump is touched), an Alembic
//! project whose interpreter can import Alembic, or a command line.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::scenario::{MigrationTool, MigrationsSection};
use super::Origin;
use crate::error::{Error, Result};
use crate::migrations::sql::SqlDir;
use crate::migrations::{alembic, AlembicPlan, CommandPlan, MigrationsPlan};

/// The migrations as far as the files say: no process started yet.
pub(super) async fn scan(m: &MigrationsSection, origin: &Origin) -> Result<MigrationsPlan> {
    let shown = origin.shown();
    Ok(match m.tool {
        MigrationTool::Sql => {
            let dir = m.dir.as_ref().ok_or_else(|| {
                Error::bad_input(format!("{shown}: migrations.dir is required when migrations.tool is sql"))
            })?;
            let dir = origin.in_scenario(dir.as_str());
            if !dir.is_dir() {
                return Err(Error::bad_input(format!(
                    "{shown}: migrations.dir {} is not a directory: create it or fix the path (relative paths \
                     start at the scenario's folder)",
                    dir.display()
                )));
            }
            MigrationsPlan::Sql(SqlDir::scan(&dir, m.table.clone())?)
        }
        MigrationTool::Alembic => MigrationsPlan::Alembic(alembic_plan(m, origin)?),
        MigrationTool::Command => MigrationsPlan::Command(command_plan(m, origin)?),
    })
}

/// Checks what the migrations need from this machine: an interpreter that
/// imports Alembic (asked once here, so a missing one fails fast).
pub(super) async fn check(plan: MigrationsPlan, cancel: &CancellationToken) -> Result<MigrationsPlan> {
    if let MigrationsPlan::Alembic(a) = &plan {
        alembic::check_python(&a.python, cancel).await?;
    }
    Ok(plan)
}

fn alembic_plan(m: &MigrationsSection, origin: &Origin) -> Result<AlembicPlan> {
    let shown = origin.shown();
    let dir = m.dir.as_ref().ok_or_else(|| {
        Error::bad_input(format!(
            "{shown}: migrations.dir (the folder holding alembic.ini) is required when migrations.tool is alembic"
        ))
    })?;
    let dir = origin.in_scenario(dir.as_str());
    let config = dir.join("alembic.ini");
    if !config.is_file() {
        return Err(Error::bad_input(format!(
            "{shown}: migrations.dir {} holds no alembic.ini: point it at the folder you run `alembic upgrade` in",
            dir.display()
        )));
    }
    let python = match &m.python {
        Some(p) if p.as_str().contains('/') => origin.in_scenario(p.as_str()),
        Some(p) => PathBuf::from(p.as_str()),
        None => alembic::default_python(),
    };
    Ok(AlembicPlan {
        dir,
        config,
        target: m.target.clone().unwrap_or_else(|| "head".into()),
        python,
        env: m.env.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
    })
}

fn command_plan(m: &MigrationsSection, origin: &Origin) -> Result<CommandPlan> {
    let shown = origin.shown();
    let apply = m.apply.as_ref().ok_or_else(|| {
        Error::bad_input(format!(
            "{shown}: migrations.apply is required when migrations.tool is command, e.g. \
             `apply: ./migrate.sh up {{rev}} --url {{url}}`"
        ))
    })?;
    if m.list.is_none() && m.revisions.is_none() {
        return Err(Error::bad_input(format!(
            "{shown}: migrations.tool command needs `list:` (a command printing pending ids, one per line) \
             or `revisions: [...]`"
        )));
    }
    Ok(CommandPlan {
        dir: m.dir.as_ref().map(|d| origin.in_scenario(d.as_str())).unwrap_or_else(|| origin.base.clone()),
        list: m.list.as_ref().map(|l| l.0.clone()),
        revisions: m.revisions.clone(),
        apply: apply.0.clone(),
        env: m.env.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
    })
}
