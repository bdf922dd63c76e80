//! Migration sources: where pending migrations come from and how one is
//! applied. One file per tool; this enum lists them.

pub mod alembic;
pub mod command;
pub mod django;
pub mod isolation;
pub mod job;
pub mod launch;
pub mod network;
pub mod retry;
pub mod sources;
pub mod sql;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
pub use crate::kinds::MigrationTool;
use crate::report::{LockSource, MigrationError, StatementLock, StatementReport};
pub use crate::report::{MigrationKind, SkippedFile};
use crate::sys::db::{ConnInfo, Secret};

/// Where the migrations come from, as the plan resolved it: a scanned SQL
/// folder (bad file names were refused before anything started), an
/// Alembic project with a working interpreter, or a command line.
#[derive(Debug, Clone)]
pub enum MigrationsPlan {
    Sql(sql::SqlDir),
    Alembic(AlembicPlan),
    Command(CommandPlan),
    Django(DjangoPlan),
}

/// A Django project (`migrations.tool: django`).
#[derive(Debug, Clone)]
pub struct DjangoPlan {
    /// The folder holding manage.py; the helper runs there, with it first on sys.path.
    pub dir: PathBuf,
    /// `migrations.settings`: DJANGO_SETTINGS_MODULE; None: the environment's (or manage.py's default).
    pub settings: Option<String>,
    /// `migrations.database`: the alias in settings.DATABASES (default `default`).
    pub database: String,
    /// `all`, `APP`, or `APP NAME`, as `manage.py migrate` takes them.
    pub target: String,
    /// The interpreter of the project's environment, with Django importable.
    pub python: PathBuf,
    pub env: Vec<(String, String)>,
    pub launch: launch::Launch,
}

#[derive(Debug, Clone)]
pub struct AlembicPlan {
    /// The folder holding alembic.ini, as the tool sees it (inside the
    /// image with `launch` in one); Alembic runs with it as working directory.
    pub dir: PathBuf,
    /// The ini file (`migrations.config`, default `dir/alembic.ini`), as `alembic -c` takes it.
    pub config: PathBuf,
    pub target: String,
    /// The `[schema.]table` the scenario says env.py records revisions in
    /// (`version_table`, `version_table_schema`); None: not said.
    pub version_table: Option<String>,
    /// The interpreter of the user's environment (or the image's), with Alembic importable.
    pub python: PathBuf,
    /// The SQLAlchemy driver the user named; None: the helper picks
    /// alembic.ini's, else the first of psycopg and psycopg2 that imports.
    pub driver: Option<Driver>,
    pub env: Vec<(String, String)>,
    /// Here, or in the app's image.
    pub launch: launch::Launch,
    /// One process for the whole release (the default), or one a revision.
    pub process: AlembicProcess,
    /// Each revision in a transaction of its own whatever env.py says (the
    /// drift build, which reads the schema between revisions).
    pub commit_each: bool,
    /// `alembic downgrade <target>` rather than upgrade (`rollback.downgrade`),
    /// always in one process.
    pub downgrade: bool,
}

/// `migrations.process`: how many Alembic processes a release takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlembicProcess {
    /// `alembic upgrade <target>` once, as production's deploy runs it: what
    /// one revision leaves in the process (SQLAlchemy's metadata, an enum it
    /// created) is there for the next.
    #[default]
    One,
    /// `alembic upgrade <revision>` once a revision, for deploys that run so.
    PerRevision,
}

#[derive(Debug, Clone)]
pub struct CommandPlan {
    /// Working directory for `list` and `apply`: the scenario's folder, or `dir`.
    pub dir: PathBuf,
    pub list: Option<String>,
    pub revisions: Option<Vec<String>>,
    pub apply: String,
    /// Builds the whole history from empty (`migrations.build`; `{url}` replaced), for drift.
    pub build: Option<String>,
    /// The SQLAlchemy driver `{sqlalchemy_url}` in `env` names (`migrations.driver`, or DATABASE_URL's).
    pub driver: Option<Driver>,
    pub env: Vec<(String, String)>,
    /// Here, or in the app's image.
    pub launch: launch::Launch,
}

/// A SQLAlchemy driver for PostgreSQL (`postgresql+<name>://`), and who named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Driver {
    /// `psycopg`, `psycopg2`, or any driver of SQLAlchemy's postgresql dialect.
    pub name: String,
    /// `migrations.driver`, `DATABASE_URL in migrations.env`, ...
    pub said_in: String,
}

/// One pending migration, in apply order.
#[derive(Debug, Clone, Default)]
pub struct Migration {
    /// Stable id shown in reports (SQL: the file name without `.sql`;
    /// Alembic: the revision id; command: the id the list printed).
    pub id: String,
    /// Version as recorded by the tool ("3", "1.2", an Alembic revision).
    pub version: String,
    pub description: String,
    pub file: Option<PathBuf>,
    /// Alembic: the revisions this one follows (two or more for a merge).
    pub parents: Vec<String>,
    /// Alembic: what `alembic upgrade <parent>:<rev> --sql` prints.
    pub offline_sql: Option<OfflineSql>,
    /// Versioned (the default), repeatable or callback (Flyway folders).
    pub kind: MigrationKind,
    /// The app it belongs to, when the scenario lists several (set by `Sources`).
    pub app: Option<String>,
    /// Its downgrade (`rollback.downgrade`): applied, the history no longer holds it.
    pub downgrade: bool,
}

impl Migration {
    /// The id the report shows: `app/id` when the scenario lists several apps.
    pub fn shown_id(&self) -> String {
        match &self.app {
            Some(app) => format!("{app}/{}", self.id),
            None => self.id.clone(),
        }
    }
}

/// What a source found in the restored database: the pending migrations in
/// apply order, and the files it will not apply, each with its reason.
#[derive(Debug, Default)]
pub struct Found {
    pub migrations: Vec<Migration>,
    pub skipped: Vec<SkippedFile>,
}

impl From<Vec<Migration>> for Found {
    fn from(migrations: Vec<Migration>) -> Found {
        Found { migrations, skipped: Vec::new() }
    }
}

#[derive(Debug, Clone)]
pub enum OfflineSql {
    Sql(String),
    /// Why offline mode could not render this revision.
    Unavailable(String),
}

/// The final hold of a lock an earlier migration took, known once its
/// transaction ended during a later one (Alembic's default: one transaction
/// for every revision of a release).
#[derive(Debug, Clone, PartialEq)]
pub struct ReleasedHold {
    /// The migration that took it, as the report names it (`shown_id`).
    pub migration: String,
    pub relation: String,
    pub mode: crate::pg::LockMode,
    /// From the statement that took it to its transaction's end, rehearse's
    /// pauses between migrations left out.
    pub held_ms: u64,
}

/// What applying one migration did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The migration's own time, without the tool's start-up.
    pub duration: Duration,
    /// Interpreter start and imports of the tool, when it is a separate process.
    pub startup: Option<Duration>,
    /// What the tool did after the release's last migration, reported with
    /// it and not in its duration (Django: the post_migrate handlers).
    pub epilogue: Option<Duration>,
    pub statements: Vec<StatementReport>,
    /// Set when the migration failed.
    pub error: Option<MigrationError>,
    pub interrupted: bool,
    /// Its transaction was still open when it ended: its locks are held
    /// into the next migration, and their holds are final only then.
    pub transaction_open: bool,
    /// Locks earlier migrations took whose transaction was still open when
    /// this one started: the sampler sees them, but they are not this one's.
    pub inherited: Vec<(String, crate::pg::LockMode)>,
    /// Holds of earlier migrations' locks that ended during this one.
    pub released: Vec<ReleasedHold>,
}

/// The throwaway database, as a migration source reaches it.
pub struct Target<'a> {
    /// rehearse's session for migrations it runs itself (SQL files).
    pub client: &'a Client,
    /// For tools that connect on their own (Alembic, commands).
    pub conn: &'a ConnInfo,
    pub cancel: &'a CancellationToken,
    /// Reads the locks of `client`'s statements that cannot run in a
    /// transaction block while they run (None with observation off).
    pub watcher: Option<&'a crate::observe::StatementWatcher>,
    /// How tools' processes start and reach the database (namespace, relays).
    pub network: &'a network::ToolNetwork,
    /// `migrations.retry.lock_timeout`: what the migration's statements run
    /// under (`SET lock_timeout` in rehearse's session, `PGOPTIONS` for a
    /// tool's process); None: whatever the server's and the migration's settings say.
    pub lock_timeout: Option<Duration>,
    /// Run data changes of SQL files under EXPLAIN ANALYZE to read their
    /// sorts' and hashes' memory (`estimate:` judges it at production's size).
    pub explain_memory: bool,
}

impl Target<'_> {
    /// Environment for a migration tool (see [`tool_env`]).
    pub fn tool_env(&self, application_name: &str) -> Vec<(String, String)> {
        tool_env(self.conn, application_name)
    }

    /// The throwaway database's URL (see [`database_url`]).
    pub fn url(&self, password: Option<&Secret>, application_name: &str) -> String {
        database_url(self.conn, password, application_name)
    }

    /// Removes the password from a tool's output before it is shown or stored.
    pub fn redact(&self, text: &str) -> String {
        redact(self.conn, text)
    }
}

/// Environment for a migration tool: libpq's PG* variables and
/// DATABASE_URL (with the password: the environment of a process is
/// readable only by its owner, unlike its command line).
pub fn tool_env(conn: &ConnInfo, application_name: &str) -> Vec<(String, String)> {
    let mut env = conn.libpq_env(&conn.dbname, application_name);
    // The password libpq_env chose (a `password_command`'s, fresh), not a stale one.
    let password = env.iter().find(|(k, _)| k == "PGPASSWORD").map(|(_, v)| Secret::from_string(v.clone()));
    env.push(("DATABASE_URL".into(), database_url(conn, password.as_ref(), application_name)));
    env
}

/// `postgresql://user[:password]@/db?host=...&port=...`: libpq, psycopg,
/// SQLAlchemy and most drivers read the socket directory from `host`. Over
/// TCP, the connection's TLS settings follow as libpq's query parameters
/// (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`): a tool that reads only
/// the URL (not PGSSLMODE) reaches a server that accepts only TLS.
pub fn database_url(conn: &ConnInfo, password: Option<&Secret>, application_name: &str) -> String {
    let auth = match password {
        Some(p) => format!("{}:{}", conn.user, p.expose()),
        None => conn.user.clone(),
    };
    let mut url = format!(
        "postgresql://{auth}@/{}?host={}&port={}&application_name={application_name}",
        conn.dbname,
        percent_encode(&conn.host),
        conn.port
    );
    // libpq never uses TLS over a unix socket: nothing to say there.
    if !conn.host.starts_with('/') {
        for (key, value) in conn.tls.url_params() {
            url.push_str(&format!("&{key}={}", percent_encode(&value)));
        }
    }
    url
}

/// `url` (see [`database_url`]) as SQLAlchemy takes it with `driver`: `postgresql+<driver>://...`.
pub fn sqlalchemy_url(url: &str, driver: &str) -> String {
    match url.strip_prefix("postgresql://") {
        Some(rest) => format!("postgresql+{driver}://{rest}"),
        None => url.to_string(),
    }
}

/// `migrations.env` with its placeholders replaced: `{url}` by `url` (the
/// throwaway database's libpq URL, with its password) and, when given,
/// `{sqlalchemy_url}` by the same with the driver (else left for the
/// Alembic helper, which chooses the driver). The values go only into the
/// tool's environment: never on a command line, never shown.
pub fn expand_placeholders(env: &[(String, String)], url: &str, driver: Option<&str>) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| {
            let mut v = v.replace("{url}", url);
            if let Some(driver) = driver {
                v = v.replace("{sqlalchemy_url}", &sqlalchemy_url(url, driver));
            }
            (k.clone(), v)
        })
        .collect()
}

/// `text` without `conn`'s password, before a tool's output is shown or stored.
pub fn redact(conn: &ConnInfo, text: &str) -> String {
    let printed = conn.password_command.as_ref().map(|c| c.printed()).unwrap_or_default();
    let mut text = text.to_string();
    for password in std::iter::once(&conn.password).chain(&printed) {
        // A server that takes no password (url backend): nothing to hide, and
        // replacing "" would star every character.
        if !password.expose().is_empty() {
            text = text.replace(password.expose(), "********");
        }
    }
    text
}

/// A lock a statement's session holds right after it (read inside its
/// transaction), as the statement's report lists it; the hold is filled in
/// when the transaction's end is known.
fn taken_by_statement(lock: crate::catalog::LockRow) -> StatementLock {
    StatementLock {
        relation: lock.name,
        oid: lock.oid,
        kind: lock.kind,
        mode: lock.mode,
        held_ms: 0,
        source: LockSource::Statement,
        exact_hold: false,
    }
}

/// Percent-encodes what a URL query value cannot hold as is.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The migration source of a run, ready to list and apply migrations.
pub enum MigrationSource {
    Sql(sql::SqlDir),
    Alembic(alembic::AlembicProject),
    Command(command::CommandTool),
    Django(django::DjangoProject),
}

/// What a source reads of the statements it runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracing {
    /// SQL files: each statement's locks (observation on).
    pub exact_locks: bool,
    /// Alembic: trace the statements (off only with `--no-trace`, to measure what tracing costs).
    pub statements: bool,
}

impl MigrationSource {
    /// The source for a plan, reading what `tracing` says of its statements.
    pub fn new(plan: &MigrationsPlan, tracing: Tracing) -> MigrationSource {
        match plan {
            MigrationsPlan::Sql(dir) => {
                let mut dir = dir.clone();
                dir.exact_locks = tracing.exact_locks;
                MigrationSource::Sql(dir)
            }
            MigrationsPlan::Alembic(p) => {
                MigrationSource::Alembic(alembic::AlembicProject::new(p.clone(), tracing.statements))
            }
            MigrationsPlan::Command(p) => MigrationSource::Command(command::CommandTool::new(p.clone())),
            MigrationsPlan::Django(p) => {
                MigrationSource::Django(django::DjangoProject::new(p.clone(), tracing.statements))
            }
        }
    }

    pub fn tool(&self) -> MigrationTool {
        match self {
            MigrationSource::Sql(_) => MigrationTool::Sql,
            MigrationSource::Alembic(_) => MigrationTool::Alembic,
            MigrationSource::Command(_) => MigrationTool::Command,
            MigrationSource::Django(_) => MigrationTool::Django,
        }
    }

    /// Whether migrations run in rehearse's own session (`Target::client`),
    /// so its statistics can be flushed and its locks read exactly.
    pub fn runs_in_own_session(&self) -> bool {
        matches!(self, MigrationSource::Sql(_))
    }

    /// The table the source records applied migrations in, when rehearse knows it.
    pub fn history_table(&self) -> Option<String> {
        match self {
            MigrationSource::Sql(s) => Some(s.table().unwrap_or(sql::DEFAULT_TABLE).to_string()),
            MigrationSource::Alembic(a) => Some(a.version_table()),
            MigrationSource::Command(_) => None,
            MigrationSource::Django(_) => Some(django::HISTORY_TABLE.to_string()),
        }
    }

    /// The history table this source alone may record in: Alembic's version
    /// table, an SQL folder's `migrations.table`; None for rehearse's own
    /// tracking table (rows keyed by app) and a command.
    pub fn own_history_table(&self) -> Option<String> {
        match self {
            MigrationSource::Sql(s) => s.table().map(str::to_string),
            MigrationSource::Alembic(a) => Some(a.version_table()),
            MigrationSource::Command(_) => None,
            MigrationSource::Django(_) => Some(django::HISTORY_TABLE.to_string()),
        }
    }

    /// Migrations the restored database has not applied yet, in order.
    pub async fn pending(&self, target: &Target<'_>) -> Result<Found> {
        match self {
            MigrationSource::Sql(s) => s.pending(target.client).await,
            MigrationSource::Alembic(a) => Ok(a.pending(target).await?.into()),
            MigrationSource::Command(c) => Ok(c.pending(target).await?.into()),
            MigrationSource::Django(d) => Ok(d.pending(target).await?.into()),
        }
    }

    /// The version rows a race is judged by: the SQL files the database
    /// records as applied, Alembic's `alembic_version`, or, for a tool
    /// known only by its command line, every known history table's rows.
    pub async fn version_state(&self, client: &Client) -> Result<Vec<String>> {
        let env = |e| crate::error::ErrorKind::CatalogReadFailed.because("cannot read the migration history", e);
        match self {
            MigrationSource::Sql(s) => s.applied(client).await,
            MigrationSource::Alembic(a) => {
                Ok(crate::catalog::alembic_version(client, &a.version_table()).await.map_err(env)?.unwrap_or_default())
            }
            MigrationSource::Command(_) => crate::catalog::history_rows(client).await.map_err(env),
            MigrationSource::Django(_) => crate::catalog::django_history(client).await.map_err(env),
        }
    }

    /// Gets ready to apply `migration`, before it is observed: an Alembic
    /// process is started (or the running one has reached the revision), so
    /// its start-up is not in the migration's observation.
    pub async fn ready(&self, migration: &Migration, target: &Target<'_>) -> Result<()> {
        match self {
            MigrationSource::Alembic(a) => a.ready(migration, target).await,
            MigrationSource::Django(d) => d.ready(migration, target).await,
            _ => Ok(()),
        }
    }

    /// Ends what the source still runs (an Alembic process whose release
    /// stopped early: its open transaction rolls back).
    pub async fn close(&self) {
        match self {
            MigrationSource::Alembic(a) => a.close().await,
            MigrationSource::Django(d) => d.close().await,
            _ => {}
        }
    }

    /// Why `migration`, which just failed, cannot be tried again alone;
    /// None when it can. An SQL file in a transaction and a command's
    /// failure leave nothing of the try; an Alembic revision can be tried
    /// again when the earlier revisions are committed, which env.py's
    /// default (one transaction for the release) does not do: its failure
    /// rolled them back with it, and a new `alembic upgrade` would start
    /// with them (read from the version table: what the database has now).
    pub async fn why_not_again(&self, migration: &Migration, client: &Client) -> Result<Option<String>> {
        let MigrationSource::Alembic(a) = self else { return Ok(None) };
        let table = a.version_table();
        let rows = crate::catalog::alembic_version(client, &table).await.map_err(|e| {
            crate::error::ErrorKind::CatalogReadFailed.because(format!("cannot read {table} to try again"), e)
        })?;
        let rows = rows.unwrap_or_default();
        let missing: Vec<&str> = migration.parents.iter().filter(|p| !rows.contains(p)).map(String::as_str).collect();
        if missing.is_empty() {
            return Ok(None);
        }
        Ok(Some(format!(
            "its failure rolled back {} too (env.py runs the release in one transaction, Alembic's default), so a \
             new try would start before it: set transaction_per_migration=True in env.py's context.configure, or \
             migrations.process: per_revision, so each revision commits on its own",
            missing.join(", ")
        )))
    }

    /// Applies one migration. An error is the harness failing (a helper that
    /// cannot be understood); the migration's own failure is in `Applied`.
    pub async fn apply(&self, migration: &Migration, target: &Target<'_>) -> Result<Applied> {
        match self {
            MigrationSource::Sql(s) => Ok(s.apply(migration, target).await),
            MigrationSource::Alembic(a) => a.apply(migration, target).await,
            MigrationSource::Command(c) => c.apply(migration, target).await,
            MigrationSource::Django(d) => d.apply(migration, target).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_the_libpq_url_and_the_same_with_the_driver() {
        let url = "postgresql://rehearse:pw@/rehearse?host=%2Ftmp&port=5433&application_name=a";
        let env = vec![
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN".to_string(), "{sqlalchemy_url}".to_string()),
            ("PSQL_URL".to_string(), "{url}".to_string()),
            ("OTHER".to_string(), "as is".to_string()),
        ];
        let expanded = expand_placeholders(&env, url, Some("psycopg2"));
        assert_eq!(
            expanded[0].1,
            "postgresql+psycopg2://rehearse:pw@/rehearse?host=%2Ftmp&port=5433&application_name=a"
        );
        assert_eq!((expanded[1].1.as_str(), expanded[2].1.as_str()), (url, "as is"));
        // Without a driver, {sqlalchemy_url} is left for the Alembic helper.
        assert_eq!(expand_placeholders(&env, url, None)[0].1, "{sqlalchemy_url}");
    }

    #[test]
    fn over_tcp_the_url_carries_the_tls_settings_and_over_a_socket_none() {
        use crate::sys::tls::{Tls, TlsParams};
        let params = TlsParams { sslmode: Some("require".into()), ..Default::default() };
        let conn = ConnInfo {
            host: "db.internal".into(),
            port: 5432,
            user: "app".into(),
            password: Secret::from_string("pw".into()),
            dbname: "rehearse_1".into(),
            admin_dbname: "rehearse_1".into(),
            tls: Tls::from_params(params).unwrap(),
            password_command: None,
        };
        let url = database_url(&conn, None, "a");
        assert!(url.ends_with("&application_name=a&sslmode=require"), "{url}");
        let socket = ConnInfo { host: "/tmp/relay".into(), ..conn };
        assert!(database_url(&socket, None, "a").ends_with("&application_name=a"));
    }
}
