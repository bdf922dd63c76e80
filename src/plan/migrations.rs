//! The scenario's `migrations:` as a migration source: an SQL folder scanned
//! (bad file names refused here, before the dump is touched), an Alembic
//! project whose interpreter can import Alembic, or a command line.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::scenario::{MigrationTool, MigrationsSection};
use super::Origin;
use crate::error::{Error, Result};
use crate::migrations::launch::{ImageLaunch, Launch};
use crate::migrations::sql::{SqlDir, SqlOptions};
use crate::migrations::{alembic, job, AlembicPlan, CommandPlan, MigrationsPlan};
use crate::report::LaunchInfo;

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
            // Refuses an image or a Job: rehearse applies SQL files itself.
            launch(m, origin)?;
            let options = SqlOptions {
                table: m.table.clone(),
                placeholders: m.placeholders.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
                app: m.name.clone(),
            };
            MigrationsPlan::Sql(SqlDir::scan(&dir, options)?)
        }
        MigrationTool::Alembic => MigrationsPlan::Alembic(alembic_plan(m, origin)?),
        MigrationTool::Command => MigrationsPlan::Command(command_plan(m, origin)?),
    })
}

/// Checks what the migrations need from this machine: an interpreter that
/// imports Alembic (asked once here, so a missing one fails fast), the app
/// image and a Docker engine to run it; returns how the tool will be
/// launched, with the versions it runs with.
pub(super) async fn check(
    plan: MigrationsPlan,
    cancel: &CancellationToken,
) -> Result<(MigrationsPlan, Option<LaunchInfo>)> {
    let info = match &plan {
        MigrationsPlan::Alembic(a) => {
            if a.launch.image().is_none() {
                alembic::check_python(&a.python, cancel).await?;
            }
            Some(a.launch.describe(Some(&a.python.display().to_string()), cancel).await?)
        }
        MigrationsPlan::Command(c) => Some(c.launch.describe(None, cancel).await?),
        MigrationsPlan::Sql(_) => None,
    };
    Ok((plan, info))
}

/// How the tool is launched: here, or in the app's image (`migrations.image`,
/// or `migrations.job`'s container); and the environment the Job gives it,
/// under the scenario's own `migrations.env`.
fn launch(m: &MigrationsSection, origin: &Origin) -> Result<(Launch, Vec<(String, String)>)> {
    let shown = origin.shown();
    let own_env: Vec<(String, String)> = m.env.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    if m.image.is_some() && m.job.is_some() {
        return Err(Error::bad_input(format!(
            "{shown}: set migrations.image or migrations.job, not both: the Job names the image it runs"
        )));
    }
    let job = match &m.job {
        Some(path) => Some(job::read(&origin.in_scenario(path.as_str()), m.job_container.as_deref())?),
        None if m.job_container.is_some() => {
            return Err(Error::bad_input(format!("{shown}: migrations.job_container needs migrations.job")))
        }
        None => None,
    };
    let image = match (&m.image, &job) {
        (Some(image), _) => image.0.clone(),
        (None, Some(job)) => job.image.clone(),
        (None, None) if m.pull => {
            return Err(Error::bad_input(format!("{shown}: migrations.pull needs migrations.image or migrations.job")))
        }
        (None, None) => return Ok((Launch::Here, own_env)),
    };
    if m.tool == MigrationTool::Sql {
        return Err(Error::bad_input(format!(
            "{shown}: migrations.image and migrations.job run a migration tool in the app's image; with tool: sql \
             rehearse applies the files itself: use tool: alembic or tool: command"
        )));
    }
    let workdir = m.dir.as_ref().map(|d| d.0.clone()).or_else(|| job.as_ref().and_then(|j| j.working_dir.clone()));
    let Some(workdir) = workdir.filter(|w| w.starts_with('/')) else {
        return Err(Error::bad_input(format!(
            "{shown}: with the app image {image}, migrations.dir is the folder inside the image the tool runs in \
             (e.g. /app, where alembic.ini is): give it as an absolute path, or set workingDir in the Job"
        )));
    };
    let mut env = Vec::new();
    let mut job_spec = job;
    if let Some(job) = &mut job_spec {
        env.extend(job.env.iter().filter(|(k, _)| !m.env.contains_key(k)).cloned());
        // rehearse sets the connection variables itself, to the throwaway copy.
        let connection = |name: &str| name == "DATABASE_URL" || name.starts_with("PG");
        job.from_cluster.retain(|name| !m.env.contains_key(name) && !connection(name));
    }
    env.extend(own_env);
    let launch = Launch::Image(Box::new(ImageLaunch { image, workdir: Some(workdir), pull: m.pull, job: job_spec }));
    Ok((launch, env))
}

fn alembic_plan(m: &MigrationsSection, origin: &Origin) -> Result<AlembicPlan> {
    let shown = origin.shown();
    let (launch, env) = launch(m, origin)?;
    if let Launch::Image(i) = &launch {
        let dir = PathBuf::from(i.workdir.clone().unwrap_or_default());
        let target = m.target.clone().or_else(|| i.job.as_ref().and_then(|j| j.alembic_target()));
        return Ok(AlembicPlan {
            config: dir.join("alembic.ini"),
            dir,
            target: target.unwrap_or_else(|| "head".into()),
            python: PathBuf::from(m.python.as_ref().map_or("python3", |p| p.as_str())),
            env,
            launch,
        });
    }
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
    Ok(AlembicPlan { dir, config, target: m.target.clone().unwrap_or_else(|| "head".into()), python, env, launch })
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
    let (launch, env) = launch(m, origin)?;
    let dir = match &launch {
        Launch::Image(i) => PathBuf::from(i.workdir.clone().unwrap_or_default()),
        Launch::Here => m.dir.as_ref().map(|d| origin.in_scenario(d.as_str())).unwrap_or_else(|| origin.base.clone()),
    };
    Ok(CommandPlan {
        dir,
        list: m.list.as_ref().map(|l| l.0.clone()),
        revisions: m.revisions.clone(),
        apply: apply.0.clone(),
        env,
        launch,
    })
}
