//! Django projects: pending migrations and their order come from Django's
//! own planner (`MigrationExecutor.migration_plan` over the loader's leaf
//! nodes), through a Python helper (helper.py) run with the project's
//! interpreter in the folder holding manage.py. The release is applied as
//! production's deploy runs it, `manage.py migrate` in one process, paced
//! migration by migration and traced through `connection.execute_wrapper()`.
//! The helper speaks the Alembic helper's protocol, so one [`Session`]
//! reads both; what Django does after the last migration (its post_migrate
//! handlers) is timed apart, as the release's epilogue.

use std::time::Duration;

use super::alembic::protocol::{self, HelperEvent, PendingRevision, WrongDatabase};
use super::alembic::session::Session;
use super::alembic::{helper_env, stops_the_run, HelperTool};
use super::{expand_placeholders, Applied, DjangoPlan, Migration, OfflineSql, Target};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::process::ChildError;

/// The helper, after the pacing it shares with the Alembic helper (pace.py).
const HELPER: &str = concat!(include_str!("../pace.py"), include_str!("helper.py"));
/// The application_name of Django's sessions, so observers can tell them.
const APP_NAME: &str = "rehearse-django";
/// How long listing the migrations (and their `sqlmigrate`) may take.
const LISTING_DEADLINE: Duration = Duration::from_secs(300);
/// Django's history table.
pub const HISTORY_TABLE: &str = "django_migrations";

pub(crate) const DJANGO: HelperTool = HelperTool {
    name: "Django",
    command: "manage.py migrate",
    never_ran: "did the settings module point DATABASES at another alias, or a router send the migrations elsewhere?",
    epilogue: "Django's post_migrate handlers",
    wrong_database,
};

/// Django's connection was not the throwaway database: where it went, and how to point it there.
fn wrong_database(wrong: &WrongDatabase) -> Error {
    let place = wrong.postgres_place().unwrap_or_else(|| {
        format!(
            "a {} database ({}, ENGINE {})",
            wrong.dialect,
            wrong.database.as_deref().unwrap_or("?"),
            wrong.driver.as_deref().unwrap_or("?")
        )
    });
    ErrorKind::WrongDatabase.error(format!(
        "the migrations did not run against the throwaway database: Django connected to {place}; rehearse points \
         the alias migrations.database at the copy when its ENGINE is PostgreSQL, and gives DATABASE_URL and \
         the PG* variables: make the settings module read them, or set its own variables in migrations.env \
         (docs/django.md, \"Where Django connects\")"
    ))
}

/// The interpreter to run the helper with: `migrations.python`, else `python3`.
pub fn default_python() -> std::path::PathBuf {
    std::path::PathBuf::from("python3")
}

/// Fails fast, before anything is provisioned, when the interpreter is
/// missing or cannot import Django; returns Django's version.
pub async fn check_python(plan: &DjangoPlan, cancel: &tokio_util::sync::CancellationToken) -> Result<String> {
    let python = plan.python.display().to_string();
    let argv: Vec<String> = vec!["-c".into(), HELPER.into(), "check".into()];
    let (cmd, _container) = plan.launch.command(&python, &argv, &plan.env, &plan.dir);
    let out = cmd.label("the Django helper").deadline(Duration::from_secs(120)).keep_all_stdout().run(cancel).await;
    let stdout = match out {
        Ok(out) => out.stdout,
        Err(ChildError::Cancelled { .. }) => return Err(Error::Interrupted),
        Err(ChildError::Failed { stdout, .. }) => stdout,
        Err(e) => {
            return Err(ErrorKind::MigrationToolMissing.because(
                format!("Python interpreter {python} for Django was not found: set migrations.python to your app's interpreter (e.g. .venv/bin/python)"),
                e,
            ))
        }
    };
    for event in protocol::read_events(&stdout).unwrap_or_default() {
        match event {
            HelperEvent::Checked { driver, .. } => return Ok(driver),
            HelperEvent::Missing { message } => {
                return Err(ErrorKind::MigrationToolMissing.error(format!(
                    "{python} cannot import Django ({message}), run in {}: set migrations.python to the \
                     interpreter of your app's environment, or install it there (`{python} -m pip install django`)",
                    plan.dir.display()
                )))
            }
            _ => {}
        }
    }
    Err(ErrorKind::MigrationToolMissing
        .error(format!("{python} could not run the Django helper in {}: check migrations.python", plan.dir.display())))
}

pub struct DjangoProject {
    plan: DjangoPlan,
    /// Trace the migrations' statements (off: `--no-trace`).
    trace: bool,
    /// The `manage.py migrate` process applying the release, between two migrations.
    session: tokio::sync::Mutex<Option<Box<Session>>>,
}

impl DjangoProject {
    pub fn new(plan: DjangoPlan, trace: bool) -> DjangoProject {
        DjangoProject { plan, trace, session: tokio::sync::Mutex::new(None) }
    }

    /// The helper with `action`, run with the project's interpreter in its
    /// folder, its alias pointed at the throwaway database, whose identity
    /// every connection is checked against.
    async fn helper_command(
        &self,
        action: &str,
        target: &Target<'_>,
    ) -> Result<(crate::sys::process::ChildCommand, Option<super::launch::Container>)> {
        let conn = target.network.reachable(&self.plan.launch, target.conn)?;
        let target = Target { conn: &conn, ..*target };
        let mut argv: Vec<String> = vec!["-c".into(), HELPER.into(), action.into()];
        argv.extend(["--database".into(), self.plan.database.clone(), "--target".into(), self.plan.target.clone()]);
        if let Some(settings) = &self.plan.settings {
            argv.extend(["--settings".into(), settings.clone()]);
        }
        if !self.trace {
            argv.push("--no-trace".into());
        }
        let password = target.conn.current_password();
        let url = target.url(Some(&password), APP_NAME);
        let mut env = expand_placeholders(&self.plan.env, &url, None);
        env.extend(target.tool_env(APP_NAME));
        super::retry::with_lock_timeout(&mut env, target.lock_timeout);
        let database = serde_json::json!({
            "NAME": target.conn.dbname,
            "HOST": target.conn.host,
            "PORT": target.conn.port.to_string(),
            "USER": target.conn.user,
            "PASSWORD": password.expose(),
        });
        env.push(("REHEARSE_DJANGO_DATABASE".to_string(), database.to_string()));
        env.extend(helper_env(&target).await?);
        let python = self.plan.python.display().to_string();
        let (cmd, container) = target.network.command(&self.plan.launch, &python, &argv, &env, &self.plan.dir);
        Ok((cmd.label("the Django helper"), container))
    }

    /// The pending migrations from Django's planner, with what `sqlmigrate` prints for each.
    pub async fn pending(&self, target: &Target<'_>) -> Result<Vec<Migration>> {
        let (cmd, _container) = self.helper_command("discover", target).await?;
        let (stdout, failure) = match cmd.deadline(LISTING_DEADLINE).keep_all_stdout().run(target.cancel).await {
            Ok(out) => (out.stdout, None),
            Err(ChildError::Cancelled { .. }) => return Err(Error::Interrupted),
            Err(e) => {
                let stdout = match &e {
                    ChildError::Failed { stdout, .. } => stdout.clone(),
                    _ => String::new(),
                };
                (stdout, Some(e))
            }
        };
        let events = protocol::read_events(&stdout).map_err(|e| {
            Error::environment_because("the Django helper printed output rehearse cannot read: rerun, and report it", e)
        })?;
        if let Some(stop) = events.iter().find_map(|e| stops_the_run(e, &self.plan.dir, &DJANGO)) {
            return Err(stop);
        }
        let mut pending = None;
        let mut offline = Vec::new();
        for event in events {
            match event {
                HelperEvent::Discovered { pending: found } => pending = Some(found),
                HelperEvent::Offline { revision, sql, error } => offline.push((revision, sql, error)),
                HelperEvent::BadTarget { message, .. } => {
                    return Err(ErrorKind::MigrationsInvalid.error(format!(
                        "Django refuses to migrate {} (migrations.target {}): {}",
                        self.plan.dir.display(),
                        self.plan.target,
                        target.redact(&message)
                    )))
                }
                HelperEvent::Missing { message } => {
                    return Err(ErrorKind::MigrationToolMissing
                        .error(format!("{} cannot import Django: {message}", self.plan.python.display())))
                }
                _ => {}
            }
        }
        let Some(pending) = pending else { return Err(self.not_listed(failure, target)) };
        Ok(pending.into_iter().map(|p| migration(p, &offline, target)).collect())
    }

    /// The error when the helper listed nothing: how it ended (the settings
    /// module raised, the database refused the connection).
    fn not_listed(&self, failure: Option<ChildError>, target: &Target<'_>) -> Error {
        let dir = self.plan.dir.display();
        match failure {
            // Pasted, not attached as a source: the output may hold the password, redacted first.
            Some(e) => ErrorKind::MigrationsInvalid.error(format!(
                "Django could not list the migrations of {dir} (settings {}): {}",
                self.plan.settings.as_deref().unwrap_or("from DJANGO_SETTINGS_MODULE"),
                target.redact(&e.to_string())
            )),
            None => Error::environment(format!(
                "the Django helper ended without listing the migrations of {dir}: rerun, and report it if it persists"
            )),
        }
    }

    /// Gets the `manage.py migrate` process ready to run `migration`: the
    /// running one has reached it, or it is started (the release's first
    /// migration), its start-up measured.
    pub async fn ready(&self, migration: &Migration, target: &Target<'_>) -> Result<()> {
        let mut session = self.session.lock().await;
        let python = self.plan.python.display().to_string();
        let other = |other: &str| {
            Error::environment(format!(
                "Django is about to run {other} where rehearse expected {} (the order its planner listed): report it",
                migration.id
            ))
        };
        if Session::reach(&mut session, &migration.id, target.cancel, &python, other).await? {
            return Ok(());
        }
        let (cmd, container) = self.helper_command("migrate", target).await?;
        let started = Session::start(&DJANGO, cmd, container, &python, &self.plan.dir, target.cancel).await?;
        if let Some(other) = started.waiting().filter(|r| *r != migration.id) {
            return Err(Error::environment(format!(
                "manage.py migrate starts with {other}, where rehearse expected {} (the order Django's planner \
                 listed): report it",
                migration.id
            )));
        }
        *session = Some(Box::new(started));
        Ok(())
    }

    /// Applies one migration in the process `ready` prepared.
    pub async fn apply(&self, migration: &Migration, target: &Target<'_>) -> Result<Applied> {
        self.ready(migration, target).await?;
        let mut session = self.session.lock().await;
        let mut applied = Session::run_in(&mut session, migration, target, HISTORY_TABLE).await?;
        target.network.explain(&self.plan.launch, &mut applied.error);
        Ok(applied)
    }

    /// Stops the process of a release that stopped early (its open transaction rolls back).
    pub async fn close(&self) {
        if let Some(mut running) = self.session.lock().await.take() {
            running.close().await;
        }
    }
}

/// A pending migration as the report shows it: `app.name`, what its
/// operations do, and what `sqlmigrate` prints for it.
fn migration(
    p: PendingRevision,
    offline: &[(String, Option<String>, Option<String>)],
    target: &Target<'_>,
) -> Migration {
    let rendered = offline.iter().find(|(id, _, _)| *id == p.revision);
    let offline_sql = Some(match rendered {
        Some((_, Some(sql), _)) => OfflineSql::Sql(target.redact(sql)),
        Some((_, None, error)) => {
            OfflineSql::Unavailable(target.redact(error.as_deref().unwrap_or("sqlmigrate failed")))
        }
        None => OfflineSql::Unavailable("sqlmigrate did not report this migration".into()),
    });
    Migration {
        version: p.revision.clone(),
        id: p.revision,
        description: p.message,
        file: p.path.map(std::path::PathBuf::from),
        parents: p.down,
        offline_sql,
        ..Migration::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settings_module_on_sqlite_is_named_with_its_engine_and_where_to_point_it() {
        let wrong = WrongDatabase {
            dialect: "sqlite".into(),
            driver: Some("django.db.backends.sqlite3".into()),
            host: None,
            port: None,
            database: Some("/srv/app/db.sqlite3".into()),
        };
        let message = wrong_database(&wrong).to_string();
        assert!(message.contains("a sqlite database (/srv/app/db.sqlite3, ENGINE django.db.backends.sqlite3)"));
        assert!(message.contains("DATABASE_URL") && message.contains("migrations.env"), "{message}");
    }
}
