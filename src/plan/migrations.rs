//! The scenario's `migrations:` as a migration source: an SQL folder scanned
//! (bad file names refused here, before the dump is touched), an Alembic
//! project whose interpreter can import Alembic, or a command line.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::scenario::{MigrationTool, MigrationsList, MigrationsSection};
use super::Origin;
use crate::error::{ErrorKind, Result};
use crate::migrations::alembic::DEFAULT_VERSION_TABLE;
use crate::migrations::launch::{ImageLaunch, Launch, Network};
use crate::migrations::retry::RetryPolicy;
use crate::migrations::sources::SourcePlan;
use crate::migrations::sql::{SqlDir, SqlOptions};
use crate::migrations::{alembic, job, AlembicPlan, CommandPlan, DjangoPlan, Driver, MigrationsPlan};
use crate::report::{LaunchInfo, Setting};

/// Every source of `migrations:` (one, or a list of apps), scanned; each
/// app named, no two sharing a history table.
pub(super) fn scan_all(list: &MigrationsList, origin: &Origin) -> Result<Vec<SourcePlan>> {
    let shown = origin.shown();
    if list.sources.is_empty() {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations: is an empty list: give one source (tool, dir) or a list of apps, each with a name"
        )));
    }
    let mut plans: Vec<SourcePlan> = Vec::new();
    for (i, m) in list.sources.iter().enumerate() {
        let app = app_name(m, i, list.listed, origin)?;
        if let Some(other) = plans.iter().find(|p| p.app == app) {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: two apps are named {}: give each app in migrations: its own name",
                other.app.as_deref().unwrap_or_default()
            )));
        }
        let in_app = |e: crate::error::Error| match &app {
            Some(app) => e.context(format!("app {app}")),
            None => e,
        };
        let retry = retry_policy(m, origin).map_err(in_app)?;
        let plan = scan(m, origin).map_err(in_app)?;
        let dir = match &plan {
            MigrationsPlan::Sql(_) => m.dir.as_ref().map(|d| origin.in_scenario(d.as_str())).unwrap_or_default(),
            MigrationsPlan::Alembic(a) => a.dir.clone(),
            MigrationsPlan::Command(c) => c.dir.clone(),
            MigrationsPlan::Django(d) => d.dir.clone(),
        };
        plans.push(SourcePlan { app, dir, plan, retry });
    }
    check_histories(list, &plans, origin)?;
    Ok(plans)
}

/// `migrations.retry` as a policy: a lock_timeout above zero is required
/// (without one there is no failure to retry), and at least one try.
fn retry_policy(m: &MigrationsSection, origin: &Origin) -> Result<Option<RetryPolicy>> {
    let Some(r) = &m.retry else { return Ok(None) };
    let shown = origin.shown();
    let lock_timeout = match r.lock_timeout {
        Some(t) if !t.is_zero() => t,
        Some(_) => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: migrations.retry.lock_timeout is 0, which turns the timeout off: give how long a statement \
                 may wait for a lock before it gives up (e.g. lock_timeout: 2s)"
            )))
        }
        None => {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: migrations.retry has no lock_timeout: the policy retries a migration that failed on its \
                 lock_timeout (SQLSTATE 55P03), so give migrations.retry.lock_timeout (e.g. lock_timeout: 2s)"
            )))
        }
    };
    let attempts = r.attempts.unwrap_or(RetryPolicy::DEFAULT_ATTEMPTS);
    if attempts == 0 {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations.retry.attempts is 0: it counts every try, the first included; give 1 or more"
        )));
    }
    let backoff = r.backoff.unwrap_or(RetryPolicy::DEFAULT_BACKOFF);
    Ok(Some(RetryPolicy { lock_timeout, attempts, backoff }))
}

/// The app's name: required in a list (ids become `name/revision`), and a
/// plain word so ids, budgets' overrides and file names can hold it.
fn app_name(m: &MigrationsSection, index: usize, listed: bool, origin: &Origin) -> Result<Option<String>> {
    let shown = origin.shown();
    let Some(name) = &m.name else {
        return match listed {
            true => Err(ErrorKind::ScenarioInvalid.error(format!(
                "{shown}: migrations[{index}] has no name: with several apps each needs `name:` (ids in the report \
                 become name/revision)"
            ))),
            false => Ok(None),
        };
    };
    let plain = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !plain {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations name {name:?} must be a plain word (letters, digits, `_`, `-`, `.`): it prefixes ids \
             as name/revision"
        )));
    }
    Ok(Some(name.clone()))
}

/// Two apps recording their history in the same table would each see the
/// other's rows as their own: refused before anything starts when the
/// scenario says so, and after discovery when their env.py files do
/// (`Sources::pending`).
fn check_histories(list: &MigrationsList, plans: &[SourcePlan], origin: &Origin) -> Result<()> {
    let qualify = |t: &str| match t.contains('.') {
        true => t.to_ascii_lowercase(),
        false => format!("public.{}", t.to_ascii_lowercase()),
    };
    let mut seen: Vec<(String, &str)> = Vec::new();
    for (m, p) in list.sources.iter().zip(plans) {
        let (table, key) = match m.tool {
            MigrationTool::Sql => match &m.table {
                Some(t) => (qualify(t), "table"),
                // rehearse's own table keys each app's rows by its name.
                None => continue,
            },
            MigrationTool::Alembic => match alembic_table(m) {
                Some(t) => (qualify(&t), "version_table"),
                // What env.py passes to context.configure is read at
                // discovery, and two apps really sharing one are refused then.
                None => continue,
            },
            MigrationTool::Command => continue,
            // Always django_migrations: two Django sources on one database
            // are refused at discovery (`Sources::pending`), by that table.
            MigrationTool::Django => continue,
        };
        let app = p.app.as_deref().unwrap_or("(unnamed)");
        if let Some((_, other)) = seen.iter().find(|(t, _)| *t == table) {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{}: apps {other} and {app} both record their history in {table}: each app needs its own history \
                 table (set {key}{} as the app's own configuration does)",
                origin.shown(),
                if key == "version_table" {
                    " and version_table_schema, as its env.py passes them to context.configure,"
                } else {
                    ""
                }
            )));
        }
        seen.push((table, app));
    }
    Ok(())
}

/// `version_table_schema.version_table` as the scenario says it; None: not said.
fn alembic_table(m: &MigrationsSection) -> Option<String> {
    match (&m.version_table_schema, &m.version_table) {
        (Some(schema), table) => Some(format!("{schema}.{}", table.as_deref().unwrap_or(DEFAULT_VERSION_TABLE))),
        (None, Some(table)) => Some(table.clone()),
        (None, None) => None,
    }
}

/// The migrations as far as the files say: no process started yet.
fn scan(m: &MigrationsSection, origin: &Origin) -> Result<MigrationsPlan> {
    let shown = origin.shown();
    let misplaced = [
        ("placeholders", !m.placeholders.is_empty(), MigrationTool::Sql),
        ("config", m.config.is_some(), MigrationTool::Alembic),
        ("version_table", m.version_table.is_some(), MigrationTool::Alembic),
        ("version_table_schema", m.version_table_schema.is_some(), MigrationTool::Alembic),
        ("process", m.process.is_some(), MigrationTool::Alembic),
        ("build", m.build.is_some(), MigrationTool::Command),
        ("settings", m.settings.is_some(), MigrationTool::Django),
        ("database", m.database.is_some(), MigrationTool::Django),
    ];
    if let Some((key, _, tool)) = misplaced.iter().find(|(_, set, tool)| *set && *tool != m.tool) {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations.{key} is for tool: {}, and this source's tool is {}: remove it",
            tool.as_str(),
            m.tool.as_str()
        )));
    }
    if m.driver.is_some() && m.tool == MigrationTool::Sql {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations.driver is the SQLAlchemy driver of tool: alembic or command; with tool: sql \
             rehearse applies the files itself: remove it"
        )));
    }
    Ok(match m.tool {
        MigrationTool::Sql => {
            let dir = m.dir.as_ref().ok_or_else(|| {
                ErrorKind::ScenarioInvalid
                    .error(format!("{shown}: migrations.dir is required when migrations.tool is sql"))
            })?;
            let dir = origin.in_scenario(dir.as_str());
            if !dir.is_dir() {
                return Err(ErrorKind::ScenarioInvalid.error(format!(
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
        MigrationTool::Django => MigrationsPlan::Django(django_plan(m, origin)?),
    })
}

/// Checks what the migrations need from this machine: an interpreter that
/// imports Alembic (asked once here, so a missing one fails fast), the app
/// image and a Docker engine to run it; returns how the tool will be
/// launched, with the versions it runs with.
pub(super) async fn check_all(
    plans: Vec<SourcePlan>,
    cancel: &CancellationToken,
) -> Result<(Vec<SourcePlan>, Option<LaunchInfo>)> {
    let mut launch = None;
    for p in &plans {
        let info = check(&p.plan, cancel).await.map_err(|e| match &p.app {
            Some(app) => e.context(format!("app {app}")),
            None => e,
        })?;
        // The report describes one launch: the first source's that has one.
        launch = launch.or(info);
    }
    Ok((plans, launch))
}

async fn check(plan: &MigrationsPlan, cancel: &CancellationToken) -> Result<Option<LaunchInfo>> {
    let info = match plan {
        MigrationsPlan::Alembic(a) => {
            let python = a.python.display().to_string();
            let tool = Some((python.as_str(), a.dir.as_path(), a.env.as_slice()));
            // Here, a missing interpreter is told first; in an image, a missing image is.
            let checked = match a.launch.image() {
                None => Some(alembic::check_python(a, cancel).await?),
                Some(_) => None,
            };
            let mut info = a.launch.describe(tool, cancel).await?;
            let driver = match checked {
                Some(driver) => driver,
                None => alembic::check_python(a, cancel).await?,
            };
            info.tool_versions.push(Setting { name: "driver".into(), value: driver });
            Some(info)
        }
        MigrationsPlan::Command(c) => Some(c.launch.describe(None, cancel).await?),
        MigrationsPlan::Django(d) => {
            let django = crate::migrations::django::check_python(d, cancel).await?;
            let mut info = d.launch.describe(None, cancel).await?;
            info.tool_versions.push(Setting { name: "django".into(), value: django });
            Some(info)
        }
        MigrationsPlan::Sql(_) => None,
    };
    Ok(info)
}

/// How the tool is launched: here, or in the app's image (`migrations.image`,
/// or `migrations.job`'s container); and the environment the Job gives it,
/// under the scenario's own `migrations.env`.
fn launch(m: &MigrationsSection, origin: &Origin) -> Result<(Launch, Vec<(String, String)>)> {
    let shown = origin.shown();
    let own_env: Vec<(String, String)> = m.env.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    if m.image.is_some() && m.job.is_some() {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: set migrations.image or migrations.job, not both: the Job names the image it runs"
        )));
    }
    let job = match &m.job {
        Some(path) => Some(job::read(&origin.in_scenario(path.as_str()), m.job_container.as_deref())?),
        None if m.job_container.is_some() => {
            return Err(
                ErrorKind::ScenarioInvalid.error(format!("{shown}: migrations.job_container needs migrations.job"))
            )
        }
        None => None,
    };
    let image = match (&m.image, &job) {
        (Some(image), _) => image.0.clone(),
        (None, Some(job)) => job.image.clone(),
        (None, None) if m.pull => {
            return Err(ErrorKind::ScenarioInvalid
                .error(format!("{shown}: migrations.pull needs migrations.image or migrations.job")))
        }
        (None, None) => return Ok((Launch::Here(m.network.unwrap_or_default()), own_env)),
    };
    if m.network == Some(Network::Isolated) {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations.network: isolated cannot be given to the app image {image}: its container runs on \
             the host's network (it reaches the throwaway server on the host's loopback); remove migrations.network, \
             or run the tool on this machine (without migrations.image / migrations.job) to isolate it"
        )));
    }
    if m.tool == MigrationTool::Sql {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations.image and migrations.job run a migration tool in the app's image; with tool: sql \
             rehearse applies the files itself: use tool: alembic or tool: command"
        )));
    }
    let workdir = m.dir.as_ref().map(|d| d.0.clone()).or_else(|| job.as_ref().and_then(|j| j.working_dir.clone()));
    let Some(workdir) = workdir.filter(|w| w.starts_with('/')) else {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
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
            config: dir.join(m.config.as_ref().map_or("alembic.ini", |c| c.as_str())),
            version_table: alembic_table(m),
            driver: driver(m, &env, origin)?,
            dir,
            target: target.unwrap_or_else(|| "head".into()),
            python: PathBuf::from(m.python.as_ref().map_or("python3", |p| p.as_str())),
            env,
            launch,
            process: m.process.unwrap_or_default(),
            commit_each: false,
            downgrade: false,
        });
    }
    let dir = m.dir.as_ref().ok_or_else(|| {
        ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations.dir (the folder holding alembic.ini) is required when migrations.tool is alembic"
        ))
    })?;
    let dir = origin.in_scenario(dir.as_str());
    let config = dir.join(m.config.as_ref().map_or("alembic.ini", |c| c.as_str()));
    if !config.is_file() {
        return Err(ErrorKind::ScenarioInvalid.error(match &m.config {
            Some(c) => format!(
                "{shown}: migrations.config {} is not a file in {}: give the ini file's path relative to \
                 migrations.dir, the folder `alembic -c <config>` runs in",
                c.as_str(),
                dir.display()
            ),
            None => format!(
                "{shown}: migrations.dir {} holds no alembic.ini: point it at the folder you run `alembic upgrade` in, \
                 or set migrations.config to the ini file's path relative to it (`alembic -c`)",
                dir.display()
            ),
        }));
    }
    let python = match &m.python {
        Some(p) if p.as_str().contains('/') => origin.in_scenario(p.as_str()),
        Some(p) => PathBuf::from(p.as_str()),
        None => alembic::default_python(),
    };
    let target = m.target.clone().unwrap_or_else(|| "head".into());
    let driver = driver(m, &env, origin)?;
    Ok(AlembicPlan {
        dir,
        config,
        target,
        version_table: alembic_table(m),
        python,
        driver,
        env,
        launch,
        process: m.process.unwrap_or_default(),
        commit_each: false,
        downgrade: false,
    })
}

/// The SQLAlchemy driver the user named: `migrations.driver`, else the
/// driver of DATABASE_URL (`postgresql+psycopg2://`) in the tool's
/// environment (`migrations.env`, the Job's) or in rehearse's own.
fn driver(m: &MigrationsSection, env: &[(String, String)], origin: &Origin) -> Result<Option<Driver>> {
    if let Some(name) = &m.driver {
        let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "{}: migrations.driver {name:?} is not a driver name: write the part after `postgresql+` in a \
                 SQLAlchemy URL, e.g. psycopg2 or psycopg",
                origin.shown()
            )));
        }
        return Ok(Some(Driver { name: name.clone(), said_in: "migrations.driver".into() }));
    }
    let in_env = env.iter().find(|(k, _)| k == "DATABASE_URL").map(|(_, v)| v.clone());
    let said_in = match m.env.contains_key("DATABASE_URL") {
        true => "DATABASE_URL in migrations.env",
        false => "DATABASE_URL in the Job's env",
    };
    let found = match in_env {
        Some(url) => url_driver(&url).map(|name| Driver { name, said_in: said_in.into() }),
        None => std::env::var("DATABASE_URL")
            .ok()
            .and_then(|url| url_driver(&url))
            .map(|name| Driver { name, said_in: "DATABASE_URL in rehearse's environment".into() }),
    };
    Ok(found)
}

/// The driver a SQLAlchemy URL names: `postgresql+psycopg2://...` → psycopg2.
fn url_driver(url: &str) -> Option<String> {
    let scheme = url.trim().split_once("://")?.0;
    let (dialect, driver) = scheme.split_once('+')?;
    let plain = !driver.is_empty() && driver.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (matches!(dialect, "postgresql" | "postgres") && plain).then(|| driver.to_string())
}

/// `{sqlalchemy_url}` names a driver: a shell command's environment can
/// hold it only when the user named one (the Alembic helper asks the
/// interpreter; a shell command has none to ask).
pub(super) fn needs_driver_for_sqlalchemy_url(
    env: &[(String, String)],
    driver: &Option<Driver>,
    what: &str,
    origin: &Origin,
) -> Result<()> {
    let Some((name, _)) = env.iter().find(|(_, v)| v.contains("{sqlalchemy_url}")) else { return Ok(()) };
    if driver.is_some() {
        return Ok(());
    }
    Err(ErrorKind::ScenarioInvalid.error(format!(
        "{}: migrations.env {name} uses {{sqlalchemy_url}}, which names a SQLAlchemy driver, and {what} runs a \
         shell command, which rehearse cannot ask: set migrations.driver to the driver your app uses (psycopg2 or \
         psycopg), or use {{url}} (the plain libpq URL)",
        origin.shown()
    )))
}

fn django_plan(m: &MigrationsSection, origin: &Origin) -> Result<DjangoPlan> {
    let shown = origin.shown();
    let (launch, env) = launch(m, origin)?;
    if m.driver.is_some() {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations.driver is SQLAlchemy's; Django's ENGINE in the settings module chooses its driver: \
             remove it"
        )));
    }
    let dir = match &launch {
        Launch::Image(i) => PathBuf::from(i.workdir.clone().unwrap_or_default()),
        Launch::Here(_) => {
            let dir = m.dir.as_ref().ok_or_else(|| {
                ErrorKind::ScenarioInvalid.error(format!(
                    "{shown}: migrations.dir (the folder holding manage.py) is required when migrations.tool is django"
                ))
            })?;
            let dir = origin.in_scenario(dir.as_str());
            if !dir.join("manage.py").is_file() {
                return Err(ErrorKind::ScenarioInvalid.error(format!(
                    "{shown}: migrations.dir {} holds no manage.py: point it at the folder you run \
                     `python manage.py migrate` in",
                    dir.display()
                )));
            }
            dir
        }
    };
    let python = match &m.python {
        Some(p) if p.as_str().contains('/') => origin.in_scenario(p.as_str()),
        Some(p) => PathBuf::from(p.as_str()),
        None => crate::migrations::django::default_python(),
    };
    let target = m.target.clone().unwrap_or_else(|| "all".into());
    let words = target.split_whitespace().count();
    if words == 0 || words > 2 {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations.target {target:?} is not what `manage.py migrate` takes: give `all`, an app label \
             (`orders`), or an app and a migration (`orders 0007`)"
        )));
    }
    Ok(DjangoPlan {
        dir,
        settings: m.settings.clone(),
        database: m.database.clone().unwrap_or_else(|| "default".into()),
        target,
        python,
        env,
        launch,
    })
}

fn command_plan(m: &MigrationsSection, origin: &Origin) -> Result<CommandPlan> {
    let shown = origin.shown();
    let apply = m.apply.as_ref().ok_or_else(|| {
        ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations.apply is required when migrations.tool is command, e.g. \
             `apply: ./migrate.sh up {{rev}} --url {{url}}`"
        ))
    })?;
    if m.list.is_none() && m.revisions.is_none() {
        return Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: migrations.tool command needs `list:` (a command printing pending ids, one per line) \
             or `revisions: [...]`"
        )));
    }
    let (launch, env) = launch(m, origin)?;
    let driver = driver(m, &env, origin)?;
    needs_driver_for_sqlalchemy_url(&env, &driver, "migrations.env", origin)?;
    let dir = match &launch {
        Launch::Image(i) => PathBuf::from(i.workdir.clone().unwrap_or_default()),
        Launch::Here(_) => {
            m.dir.as_ref().map(|d| origin.in_scenario(d.as_str())).unwrap_or_else(|| origin.base.clone())
        }
    };
    Ok(CommandPlan {
        dir,
        list: m.list.as_ref().map(|l| l.0.clone()),
        revisions: m.revisions.clone(),
        apply: apply.0.clone(),
        build: m.build.as_ref().map(|b| b.0.clone()),
        driver,
        env,
        launch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_of_a_url_is_the_part_after_the_plus_of_a_postgresql_scheme() {
        assert_eq!(url_driver("postgresql+psycopg2://u:p@h/db").as_deref(), Some("psycopg2"));
        assert_eq!(url_driver(" postgres+asyncpg://h/db").as_deref(), Some("asyncpg"));
        assert_eq!(url_driver("postgresql://u@h/db"), None);
        assert_eq!(url_driver("mysql+pymysql://u@h/db"), None);
        assert_eq!(url_driver("not a url"), None);
    }
}
