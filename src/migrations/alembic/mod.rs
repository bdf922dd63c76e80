//! Alembic projects: pending revisions and their upgrade order come from
//! Alembic itself, through a small Python helper (helper.py) run with the
//! user's interpreter. The release is applied as production's deploy runs
//! it, `alembic upgrade <target>` in one process (`migrations.process:
//! per_revision`: one a revision), paced revision by revision
//! (`session.rs`) and in-process to Alembic, with its statements traced in
//! batches (text, time, rows, WAL and the locks its session holds after
//! each batch, read with the query rehearse gives it) and its transactions'
//! ends reported. The helper's output is a typed protocol (`protocol.rs`).

pub(crate) mod protocol;
pub(crate) mod session;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{expand_placeholders, AlembicPlan, AlembicProcess, Applied, Migration, OfflineSql, Target};
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::report::MigrationError;
use crate::sys::process::{ChildCommand, ChildError};
use protocol::{HelperEvent, NoDriver, PendingRevision, WrongDatabase};
use session::Session;

/// What every Python rehearse runs with the project's interpreter starts
/// with: sys.path without the working folder, and the driver choice.
pub const PRELUDE: &str = include_str!("prelude.py");
const HELPER: &str = concat!(include_str!("prelude.py"), include_str!("../pace.py"), include_str!("helper.py"));
/// `alembic` itself, with the database rehearse names as its sqlalchemy.url (cli.py).
const CLI: &str = concat!(include_str!("prelude.py"), include_str!("cli.py"));
/// Where the helper and cli.py read the database URL (with its password) from.
const URL_VAR: &str = "REHEARSE_ALEMBIC_URL";
/// The application_name of Alembic's sessions, so observers can tell them.
const APP_NAME: &str = "rehearse-alembic";
/// How long listing the revisions, or rendering their offline SQL, may take.
const LISTING_DEADLINE: Duration = Duration::from_secs(300);
/// Alembic's version table when env.py names none.
pub const DEFAULT_VERSION_TABLE: &str = "alembic_version";

/// The interpreter behind `alembic` on PATH (its shebang), else `python3`.
pub fn default_python() -> PathBuf {
    let from_shebang = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|d| d.join("alembic")).find(|p| p.is_file()).and_then(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            let line = text.lines().next()?.strip_prefix("#!")?.trim().to_string();
            (!line.contains(' ')).then(|| PathBuf::from(line))
        })
    });
    from_shebang.unwrap_or_else(|| PathBuf::from("python3"))
}

/// Fails fast, before anything is provisioned, when the interpreter is
/// missing or cannot import Alembic, SQLAlchemy and a PostgreSQL driver:
/// the helper's `check`, run as discovery will run it (in the project's
/// folder, with its environment, here or in the image). Returns the driver
/// SQLAlchemy will use and who named it, e.g. `psycopg2 (migrations.driver)`.
pub async fn check_python(plan: &AlembicPlan, cancel: &CancellationToken) -> Result<String> {
    let python = plan.python.display().to_string();
    let mut argv: Vec<String> = vec!["-c".into(), HELPER.into(), "check".into()];
    argv.extend(["--config".into(), plan.config.display().to_string()]);
    let mut env = plan.env.clone();
    env.extend(driver_env(plan));
    let (cmd, _container) = plan.launch.command(&python, &argv, &env, &plan.dir);
    let out = cmd.label("the Alembic helper").deadline(Duration::from_secs(120)).keep_all_stdout().run(cancel).await;
    let (stdout, failure) = match out {
        Ok(out) => (out.stdout, None),
        Err(ChildError::Spawn { source, .. }) if plan.launch.image().is_none() => {
            return Err(ErrorKind::MigrationToolMissing.because(
                format!(
                    "Python interpreter {python} for Alembic was not found: set migrations.python to your app's \
                     interpreter (e.g. .venv/bin/python), or put `alembic` on PATH"
                ),
                source,
            ))
        }
        Err(ChildError::Cancelled { .. }) => return Err(Error::Interrupted),
        Err(ChildError::Failed { label, status, stderr, stdout }) => {
            (stdout.clone(), Some(ChildError::Failed { label, status, stderr, stdout }))
        }
        Err(e) => (String::new(), Some(e)),
    };
    let events = protocol::read_events(&stdout).unwrap_or_default();
    for event in events {
        match event {
            HelperEvent::Checked { driver, said_in } => return Ok(format!("{driver} ({said_in})")),
            HelperEvent::NoDriver(no) => return Err(no_driver(&no, &plan.dir)),
            _ => {}
        }
    }
    let cause: crate::error::BoxError = match failure {
        Some(e) => e.into(),
        None => "the helper's check ended without a verdict".into(),
    };
    Err(ErrorKind::MigrationToolMissing.because(
        format!(
            "{python} cannot import Alembic and SQLAlchemy, run in {}: install them in that environment \
             (`{python} -m pip install alembic psycopg2-binary`) or set migrations.python to the interpreter that has them",
            plan.dir.display()
        ),
        cause,
    ))
}

/// The driver the user named (`migrations.driver`, or DATABASE_URL's), for the helper and cli.py.
pub fn driver_env(plan: &AlembicPlan) -> Vec<(String, String)> {
    match &plan.driver {
        Some(d) => vec![
            ("REHEARSE_ALEMBIC_DRIVER".into(), d.name.clone()),
            ("REHEARSE_ALEMBIC_DRIVER_FROM".into(), d.said_in.clone()),
        ],
        None => Vec::new(),
    }
}

/// A tool whose helper speaks this protocol (Alembic, Django), as a
/// [`Session`] names it in its messages.
pub(crate) struct HelperTool {
    /// "Alembic", "Django".
    pub name: &'static str,
    /// The command the helper runs, as the user knows it (`alembic upgrade`).
    pub command: &'static str,
    /// Why a process may end without running a migration it listed.
    pub never_ran: &'static str,
    /// What the tool does after the last migration, when it reports an epilogue.
    pub epilogue: &'static str,
    /// Where the tool connected, when it is not the throwaway database, and what to do.
    pub wrong_database: fn(&WrongDatabase) -> Error,
}

pub(crate) const ALEMBIC: HelperTool = HelperTool {
    name: "Alembic",
    command: "alembic upgrade",
    never_ran: "does env.py call context.run_migrations() for this database?",
    epilogue: "after alembic upgrade",
    wrong_database,
};

/// Whatever the action, these stop the run: nothing may go on against
/// another database, nor without a driver.
pub(crate) fn stops_the_run(event: &HelperEvent, dir: &Path, tool: &HelperTool) -> Option<Error> {
    match event {
        HelperEvent::WrongDatabase(wrong) => Some((tool.wrong_database)(wrong)),
        HelperEvent::NoDriver(no) => Some(no_driver(no, dir)),
        _ => None,
    }
}

/// What a helper needs from rehearse, whatever the tool: the copy's
/// identity (every connection is checked against it) and the queries it
/// runs (its session's locks, the statistics' flush), passed rather than copied.
pub(crate) async fn helper_env(target: &Target<'_>) -> Result<Vec<(String, String)>> {
    let identity = catalog::identity(target.client)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot read the throwaway database's identity", e))?;
    Ok(vec![
        ("REHEARSE_IDENTITY_SQL".to_string(), catalog::IDENTITY.to_string()),
        ("REHEARSE_EXPECTED_IDENTITY".to_string(), serde_json::json!([identity.0, identity.1]).to_string()),
        ("REHEARSE_OWN_LOCKS_SQL".to_string(), catalog::OWN_LOCKS.to_string()),
        ("REHEARSE_FLUSH_STATS_SQL".to_string(), catalog::FORCE_STATS_FLUSH.to_string()),
        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
    ])
}

/// No PostgreSQL driver SQLAlchemy can load: what to install.
fn no_driver(no: &NoDriver, dir: &Path) -> Error {
    let python = &no.python;
    let install = format!("`{python} -m pip install '{}'`", no.install);
    ErrorKind::MigrationToolMissing.error(match (&no.driver, &no.said_in) {
        (Some(driver), said_in) => format!(
            "the PostgreSQL driver {driver} (named by {}) does not load in {python}, run in {}: {}; install it \
             ({install}), or set migrations.driver to the driver your app uses (psycopg, psycopg2)",
            said_in.as_deref().unwrap_or("rehearse"),
            dir.display(),
            no.message
        ),
        (None, _) => format!(
            "{python} has no PostgreSQL driver SQLAlchemy can use (tried {}: {}): install one in that environment \
             ({install}), or set migrations.python to the interpreter that has it",
            no.tried.join(", "),
            no.message
        ),
    })
}

/// env.py connected somewhere else than the throwaway database: where, and how to point it there.
fn wrong_database(wrong: &WrongDatabase) -> Error {
    let database = wrong.database.as_deref().unwrap_or("?");
    let place = match (wrong.postgres_place(), wrong.dialect.as_str()) {
        (Some(place), _) => place,
        (None, "sqlite") => format!("sqlite:///{database}"),
        (None, other) => format!("a {other} database ({database})"),
    };
    let place = match &wrong.driver {
        Some(driver) => format!("{place}, through {}+{driver}", wrong.dialect),
        None => place,
    };
    ErrorKind::WrongDatabase.error(format!(
        "the migrations did not run against the throwaway database: env.py connected to {place}; env.py connects \
         through its own settings: set them in migrations.env (e.g. AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: \
         \"{{sqlalchemy_url}}\"; {{url}} is the plain libpq URL)"
    ))
}

/// `alembic -c <config> upgrade <target>` as the project's interpreter runs
/// it (cli.py), for a replica of the app migrating at start-up. The
/// environment must hold [`url_env`]: the URL replaces alembic.ini's
/// sqlalchemy.url, so a URL written there (another server) is never used.
pub fn upgrade_command(python: &Path, config: &Path, target: &str) -> Vec<String> {
    let (python, config) = (python.display().to_string(), config.display().to_string());
    vec![python, "-c".into(), CLI.into(), "-c".into(), config, "upgrade".into(), target.into()]
}

/// The environment variable the helper and cli.py read the database URL from.
pub fn url_env(url: String) -> (String, String) {
    (URL_VAR.into(), url)
}

pub struct AlembicProject {
    plan: AlembicPlan,
    /// Trace the revisions' statements (off: `--no-trace`).
    trace: bool,
    /// The `[schema.]table` env.py records revisions in, as discovery read it.
    version_table: std::sync::OnceLock<String>,
    /// The Alembic process applying the release, between two revisions.
    session: tokio::sync::Mutex<Option<Box<Session>>>,
}

/// What discovery read through env.py: the heads and the table they are in.
struct History {
    current: Vec<String>,
    table: String,
}

/// The helper's events, and how its process ended.
struct HelperRun {
    events: Vec<HelperEvent>,
    failure: Option<ChildError>,
}

impl AlembicProject {
    pub fn new(plan: AlembicPlan, trace: bool) -> AlembicProject {
        AlembicProject {
            plan,
            trace,
            version_table: std::sync::OnceLock::new(),
            session: tokio::sync::Mutex::new(None),
        }
    }

    /// The `[schema.]table` the project records revisions in: what env.py
    /// configured at discovery, else what the scenario says, else Alembic's default.
    pub fn version_table(&self) -> String {
        self.version_table
            .get()
            .or(self.plan.version_table.as_ref())
            .cloned()
            .unwrap_or_else(|| DEFAULT_VERSION_TABLE.into())
    }

    /// The helper with `args`, run with the project's interpreter in its
    /// folder (here or in the app's image, in the tool's network), reaching
    /// the throwaway database, whose identity every connection is checked against.
    async fn helper_command(
        &self,
        args: &[&str],
        target: &Target<'_>,
    ) -> Result<(ChildCommand, Option<super::launch::Container>)> {
        let conn = target.network.reachable(&self.plan.launch, target.conn)?;
        let target = Target { conn: &conn, ..*target };
        let mut argv: Vec<String> = vec!["-c".into(), HELPER.into()];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv.extend(["--config".into(), self.plan.config.display().to_string()]);
        let url = target.url(Some(&target.conn.current_password()), APP_NAME);
        let mut env = expand_placeholders(&self.plan.env, &url, None);
        env.extend(target.tool_env(APP_NAME));
        env.extend(driver_env(&self.plan));
        super::retry::with_lock_timeout(&mut env, target.lock_timeout);
        env.push(url_env(url));
        env.extend(helper_env(&target).await?);
        let python = self.plan.python.display().to_string();
        let (cmd, container) = target.network.command(&self.plan.launch, &python, &argv, &env, &self.plan.dir);
        Ok((cmd.label("the Alembic helper"), container))
    }

    /// Runs the helper; an event it printed that rehearse cannot read is an error.
    async fn helper(&self, args: &[&str], target: &Target<'_>, deadline: Duration) -> Result<HelperRun> {
        let (cmd, _container) = self.helper_command(args, target).await?;
        let cmd = cmd.deadline(deadline).keep_all_stdout();
        let (stdout, failure) = match cmd.run(target.cancel).await {
            Ok(out) => (out.stdout, None),
            Err(ChildError::Failed { label, status, stderr, stdout }) => {
                (stdout.clone(), Some(ChildError::Failed { label, status, stderr, stdout }))
            }
            Err(e) => (String::new(), Some(e)),
        };
        let events = protocol::read_events(&stdout).map_err(|e| {
            Error::environment_because(
                format!(
                    "the Alembic helper, run with {}, printed output rehearse cannot read (a different helper \
                     version, or an env.py printing rehearse's marker): rerun, and report it if it persists",
                    self.plan.python.display()
                ),
                e,
            )
        })?;
        if let Some(stop) = events.iter().find_map(|e| stops_the_run(e, &self.plan.dir, &ALEMBIC)) {
            return Err(stop);
        }
        Ok(HelperRun { events, failure })
    }

    pub async fn pending(&self, target: &Target<'_>) -> Result<Vec<Migration>> {
        let run = self.helper(&self.discover_args(), target, LISTING_DEADLINE).await?;
        let mut found = None;
        let mut history = None;
        for event in run.events {
            match event {
                HelperEvent::History { current, version_table, version_table_schema } => {
                    history = Some(self.history(current, version_table, version_table_schema)?);
                }
                HelperEvent::Discovered { pending } => found = Some(pending),
                other => {
                    if let Some(refused) = self.discovery_refused(other, target) {
                        return Err(refused);
                    }
                }
            }
        }
        let Some(found) = found else { return Err(self.not_listed(run.failure, target)) };
        if let Some(history) = &history {
            self.check_history_is_the_copys(history, target).await?;
        }
        let mut pending: Vec<Migration> = found.into_iter().map(migration).collect();
        self.attach_offline_sql(&mut pending, target).await?;
        Ok(pending)
    }

    /// The helper's `discover` command line, with the version table the scenario names.
    fn discover_args(&self) -> Vec<&str> {
        let mut args = vec!["discover", "--target", &self.plan.target];
        let declared = self.plan.version_table.as_deref().map(|t| match t.split_once('.') {
            Some((schema, table)) => (Some(schema), table),
            None => (None, t),
        });
        if let Some((schema, table)) = declared {
            args.extend(["--version-table", table]);
            args.extend(schema.map(|s| ["--version-table-schema", s]).into_iter().flatten());
        }
        args
    }

    /// The history env.py read: its heads, in the version table it
    /// configured, which must be the one the scenario says.
    fn history(&self, current: Vec<String>, table: Option<String>, schema: Option<String>) -> Result<History> {
        let table = table.unwrap_or_else(|| DEFAULT_VERSION_TABLE.into());
        let table = match schema {
            Some(schema) => format!("{schema}.{table}"),
            None => table,
        };
        // Set before any refusal below: two apps sharing a table are told apart by it.
        let _ = self.version_table.set(table.clone());
        self.check_version_table(&table)?;
        Ok(History { current, table })
    }

    /// The error for a discovery event that stops the run: a revision the
    /// tree does not have, a target Alembic cannot reach, no Alembic.
    fn discovery_refused(&self, event: HelperEvent, target: &Target<'_>) -> Option<Error> {
        let dir = self.plan.dir.display();
        match event {
            HelperEvent::UnknownRevision { revision, heads } => Some(ErrorKind::MigrationsInvalid.error(format!(
                "the restored database is at Alembic revision {revision}, which the migration tree in {dir} \
                 does not contain (production is ahead of this code, or history was edited); its heads are \
                 {}: rehearse the code production runs, or a dump that matches this tree",
                heads.join(", ")
            ))),
            HelperEvent::BadTarget { message, current } => Some(ErrorKind::MigrationsInvalid.error(format!(
                "Alembic cannot upgrade to migrations.target {} from the database's revision(s) {}: {}; \
                 with several heads, set migrations.target to one revision, `<branch>@head`, or `heads`",
                self.plan.target,
                if current.is_empty() { "(none)".to_string() } else { current.join(", ") },
                target.redact(&message)
            ))),
            HelperEvent::Missing { message } => Some(
                ErrorKind::MigrationToolMissing
                    .error(format!("{} cannot import Alembic: {message}", self.plan.python.display())),
            ),
            _ => None,
        }
    }

    /// The error when the helper listed no revisions: how it ended.
    fn not_listed(&self, failure: Option<ChildError>, target: &Target<'_>) -> Error {
        let dir = self.plan.dir.display();
        match failure {
            Some(ChildError::Cancelled { .. }) => Error::Interrupted,
            Some(e) => match e.stderr().and_then(|s| target.network.unreachable_hint(&self.plan.launch, s)) {
                // The tool connected elsewhere: this machine's doing, not the scenario's.
                Some(hint) => ErrorKind::WrongDatabase
                    .because(format!("Alembic could not list the revisions of {dir}: {hint}"), e),
                None => {
                    ErrorKind::MigrationsInvalid.because(format!("Alembic could not list the revisions of {dir}"), e)
                }
            },
            None => Error::environment(format!(
                "the Alembic helper ended without listing the revisions of {dir}: rerun, and report it if it persists"
            )),
        }
    }

    /// The table env.py records revisions in must be the one the scenario
    /// says (other apps' tables were checked against it before the run).
    fn check_version_table(&self, found: &str) -> Result<()> {
        let Some(said) = &self.plan.version_table else { return Ok(()) };
        let bare = |t: &str| t.strip_prefix("public.").unwrap_or(t).to_string();
        if bare(said) == bare(found) {
            return Ok(());
        }
        Err(ErrorKind::MigrationsInvalid.error(format!(
            "the env.py of {} records revisions in {found}, but the scenario says version_table {said}: set \
             version_table (and version_table_schema) to what env.py passes to context.configure",
            self.plan.dir.display()
        )))
    }

    /// The heads env.py reported must be those the throwaway database's
    /// version table holds, read directly: else env.py read another
    /// database's history, and the pending list is not the copy's.
    async fn check_history_is_the_copys(&self, history: &History, target: &Target<'_>) -> Result<()> {
        let on_copy = catalog::alembic_version(target.client, &history.table).await.map_err(|e| {
            ErrorKind::CatalogReadFailed.because(format!("cannot read {} on the throwaway database", history.table), e)
        })?;
        let mut on_copy = on_copy.unwrap_or_default();
        let mut reported = history.current.clone();
        on_copy.sort();
        reported.sort();
        if on_copy == reported {
            return Ok(());
        }
        let shown = |revs: &[String]| match revs {
            [] => "no revision".to_string(),
            revs => revs.join(", "),
        };
        Err(ErrorKind::WrongDatabase.error(format!(
            "env.py of {} reported the database at {}, but {} on the throwaway database holds {}: env.py read \
             another database's history; point it at the throwaway database (it is in DATABASE_URL and \
             sqlalchemy.url, and {{sqlalchemy_url}} in migrations.env)",
            self.plan.dir.display(),
            shown(&reported),
            history.table,
            shown(&on_copy)
        )))
    }

    /// What `alembic upgrade <parent>:<rev> --sql` prints for each revision,
    /// for reviewers; merges and env.py files without offline support say why.
    async fn attach_offline_sql(&self, pending: &mut [Migration], target: &Target<'_>) -> Result<()> {
        let ranges: Vec<serde_json::Value> = pending
            .iter()
            .filter(|m| m.parents.len() <= 1)
            .map(|m| {
                let range = match m.parents.first() {
                    Some(p) => format!("{p}:{}", m.id),
                    None => m.id.clone(),
                };
                serde_json::json!({"revision": m.id, "range": range})
            })
            .collect();
        let ranges = serde_json::Value::Array(ranges).to_string();
        let run = self.helper(&["offline", "--revisions", &ranges], target, LISTING_DEADLINE).await?;
        for m in pending.iter_mut() {
            if m.parents.len() > 1 {
                m.offline_sql =
                    Some(OfflineSql::Unavailable("a merge revision has no single `from` revision for --sql".into()));
                continue;
            }
            let rendered = run.events.iter().find_map(|e| match e {
                HelperEvent::Offline { revision, sql, error } if *revision == m.id => Some((sql, error)),
                _ => None,
            });
            m.offline_sql = Some(match rendered {
                Some((Some(sql), _)) => OfflineSql::Sql(target.redact(sql)),
                Some((None, error)) => {
                    OfflineSql::Unavailable(target.redact(error.as_deref().unwrap_or("offline mode failed")))
                }
                None => OfflineSql::Unavailable("the offline run did not report this revision".into()),
            });
        }
        Ok(())
    }

    /// Gets the Alembic process ready to run `migration`: the running one
    /// has reached it, or one is started (the release's first revision, or
    /// each revision with `process: per_revision`), its start-up measured.
    pub async fn ready(&self, migration: &Migration, target: &Target<'_>) -> Result<()> {
        let mut session = self.session.lock().await;
        let python = self.plan.python.display().to_string();
        let other = |other: &str| {
            Error::environment(format!(
                "Alembic is about to run {other} where rehearse expected {} (the order discovery listed): \
                 rerun with migrations.process: per_revision, and report it",
                migration.id
            ))
        };
        if Session::reach(&mut session, &migration.id, target.cancel, &python, other).await? {
            return Ok(());
        }
        // A downgrade runs in one process: per revision, each target would be its parent.
        let (action, alembic_target) = match (self.plan.downgrade, self.plan.process) {
            (true, _) => ("downgrade", self.plan.target.as_str()),
            (false, AlembicProcess::One) => ("upgrade", self.plan.target.as_str()),
            (false, AlembicProcess::PerRevision) => ("upgrade", migration.id.as_str()),
        };
        let mut args = vec![action, "--target", alembic_target];
        args.extend(self.plan.commit_each.then_some("--commit-each"));
        args.extend((!self.trace).then_some("--no-trace"));
        let (cmd, container) = self.helper_command(&args, target).await?;
        let started = Session::start(&ALEMBIC, cmd, container, &python, &self.plan.dir, target.cancel).await?;
        if let Some(other) = started.waiting().filter(|r| *r != migration.id) {
            return Err(Error::environment(format!(
                "Alembic's {action} to {alembic_target} starts with {other}, where rehearse expected {} (the \
                 order discovery listed): report it",
                migration.id
            )));
        }
        *session = Some(Box::new(started));
        Ok(())
    }

    /// Applies one revision: the process `ready` prepared runs it (started
    /// here when nothing called `ready`, as the drift build does not).
    pub async fn apply(&self, migration: &Migration, target: &Target<'_>) -> Result<Applied> {
        self.ready(migration, target).await?;
        let mut session = self.session.lock().await;
        let mut applied = Session::run_in(&mut session, migration, target, &self.version_table()).await?;
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

fn migration(r: PendingRevision) -> Migration {
    Migration {
        version: r.revision.clone(),
        id: r.revision,
        description: r.message.trim().to_string(),
        file: r.path.map(PathBuf::from),
        parents: r.down,
        offline_sql: None,
        ..Migration::default()
    }
}

/// The revision's own failure: the exception, the statement, the traceback's end.
pub(crate) fn revision_error(failed: &HelperEvent, migration: &Migration, target: &Target<'_>) -> MigrationError {
    let HelperEvent::Failed { message, sqlstate, statement, traceback, .. } = failed else {
        return MigrationError::new("the revision raised an exception");
    };
    MigrationError {
        message: target.redact(&format!("{message}\n\nTraceback (its last lines):\n{}", traceback.trim_end())),
        statement: statement.as_deref().map(|s| target.redact(s)),
        file: migration.file.as_ref().map(|p| p.display().to_string()),
        line: None,
        sqlstate: sqlstate.clone(),
    }
}

/// Whether `sql` names `table` as a whole identifier (`app_versions` does not name `versions`).
fn names(sql: &str, table: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    sql.match_indices(table)
        .any(|(at, _)| !word(sql[..at].chars().last()) && !word(sql[at + table.len()..].chars().next()))
}

/// Statements SQLAlchemy and Alembic send for themselves: dialect probes on
/// connect and the version table's bookkeeping (`alembic_version`, or the
/// `[schema.]table` env.py configures). Their locks still count.
pub(crate) fn is_bookkeeping(sql: &str, version_table: &str) -> bool {
    let s = sql.trim_start().to_ascii_lowercase();
    let table = version_table.rsplit('.').next().unwrap_or(version_table).to_ascii_lowercase();
    names(&s, &table)
        || s.contains(DEFAULT_VERSION_TABLE)
        || s.starts_with("select pg_catalog.version()")
        || s.starts_with("select current_schema()")
        || s.starts_with("show standard_conforming_strings")
        || s.starts_with("select pg_catalog.pg_class.relname")
        || s.starts_with("show transaction isolation level")
        || s.starts_with("select current_setting(")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_python_rehearse_runs_starts_with_the_prelude() {
        for code in [HELPER, CLI] {
            assert!(code.starts_with(PRELUDE), "the prelude runs before any other import");
        }
        assert!(PRELUDE.contains("_rehearse_drop_working_folder()\n"));
    }

    #[test]
    fn a_wrong_database_is_named_without_a_password_and_with_the_way_to_point_env_py_at_the_copy() {
        let wrong = |dialect: &str, database: &str| WrongDatabase {
            dialect: dialect.into(),
            driver: Some("psycopg2".into()),
            host: Some("prod.internal".into()),
            port: Some("5432".into()),
            database: Some(database.into()),
        };
        let message = wrong_database(&wrong("postgresql", "app")).to_string();
        assert!(message.contains("database app on host prod.internal port 5432"), "{message}");
        assert!(message.contains("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: \"{sqlalchemy_url}\""), "{message}");
        let message = wrong_database(&wrong("sqlite", "/srv/airflow/airflow.db")).to_string();
        assert!(message.contains("env.py connected to sqlite:////srv/airflow/airflow.db"), "{message}");
    }

    #[test]
    fn bookkeeping_is_the_version_table_env_py_names_as_a_whole_identifier() {
        let update = "UPDATE billing.billing_versions SET version_num='b2' WHERE billing_versions.version_num = 'b1'";
        assert!(is_bookkeeping(update, "billing.billing_versions"));
        assert!(is_bookkeeping("INSERT INTO alembic_version (version_num) VALUES ('a1')", "alembic_version"));
        assert!(!is_bookkeeping("CREATE TABLE app_versions (id int)", "versions"));
        assert!(!is_bookkeeping("ALTER TABLE orders ADD COLUMN versions_seen int", "versions"));
        assert!(is_bookkeeping("DELETE FROM versions WHERE version_num = 'x'", "versions"));
    }
}
