//! The url backend: a fresh database `rehearse_<random>` on a server the
//! user owns (`postgres.url` / `--url`), dropped at the end.
//!
//! The server is shared, so rehearse writes to nothing but that database: no
//! ALTER SYSTEM, no reload, no restart, no roles. Per-database settings
//! (`ALTER DATABASE <ours> SET`) stand in where Postgres allows it; settings
//! only ALTER SYSTEM could change, and what the role may not do (extensions,
//! CHECKPOINT), become limitations in the report instead of failing the run.
//! Server-wide bookkeeping the observers need (pg_stat_statements) is
//! created in the throwaway database itself (`ConnInfo::admin_dbname`).
//! The database is dropped `WITH (FORCE)` on every exit path, with `Drop` (a
//! blocking connect-and-drop on its own thread) as the backstop for a panic.
//!
//! The clone backend (`clone.rs`) rehearses through the same type on a
//! database it was given rather than made ([`UrlDatabase::given`]): the same
//! connections, per-database settings and copies, but that database is
//! never dropped here (the clone's `destroy` removes it), only the copies.

use std::time::Duration;

use tokio_postgres::Client;

use super::local::PgBin;
use super::settings::FAST_RESTORE;
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::pg::PgVersion;
use crate::sys::conn_string::{self, TlsRefused};
use crate::sys::db::{self, quote_ident, quote_literal, ConnInfo, Secret};
use crate::sys::password::{self, PgpassQuery};
use crate::sys::process::ChildCommand;
use crate::sys::refusal;
use crate::sys::tls::{Tls, TlsSetupError};

/// Where the throwaway databases go, as the plan resolved it.
#[derive(Debug, Clone)]
pub struct UrlPlan {
    /// The user's server; `dbname` is the database named in the URL (default
    /// `postgres`), used only to create and drop ours.
    pub server: ConnInfo,
    /// Local client tools (pg_restore, psql).
    pub bin: PgBin,
}

/// Parses `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (or `key=value`
/// pairs). Errors never repeat the URL, which may hold a password.
pub fn parse(url: &str) -> Result<ConnInfo> {
    parse_as(url, "postgres.url / --url")
}

/// [`parse`], errors naming the URL as `input` (`observe.standby_url`).
pub fn parse_as(url: &str, input: &str) -> Result<ConnInfo> {
    parse_config(url).map_err(|e| match e {
        UrlError::Tls(refused) => ErrorKind::TlsRequested.error(refused.explain(input)),
        UrlError::TlsSetup(e) => e.explain(input),
        UrlError::Syntax(e) => ErrorKind::UrlInvalid.because(
            format!(
                "{input} is not a PostgreSQL connection string: \
                 write postgres://USER:PASSWORD@HOST:PORT/DATABASE (or ${{VAR}} to take it from the environment)"
            ),
            e,
        ),
    })
}

/// Why a connection string was not taken.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// It asks for a TLS setting rehearse does not support (bad input, exit 3).
    #[error("{0}")]
    Tls(#[from] TlsRefused),
    /// Its TLS settings name files that cannot be used (exit 4).
    #[error("{0}")]
    TlsSetup(#[from] TlsSetupError),
    #[error(transparent)]
    Syntax(#[from] tokio_postgres::Error),
}

/// [`parse`] with the parser's own error, for callers that name the input
/// their way. The password, when the URL has none, comes from PGPASSWORD,
/// else the password file (`PGPASSFILE`, `~/.pgpass`), as libpq does. Every
/// connection string rehearse takes passes here, so this is where its TLS
/// settings (and libpq's PGSSL* environment defaults) are read: see
/// `sys::tls`; none is ever dropped on the way to a weaker connection.
pub fn parse_config(url: &str) -> Result<ConnInfo, UrlError> {
    let (rest, params) = conn_string::take_tls(url)?;
    let tls = Tls::from_params(params.with_env(|var| std::env::var(var).ok()))?;
    Ok(ConnInfo { tls, ..conn_info(rest.parse()?) })
}

/// `server` logging in with the password `command` prints (`key` names it in
/// messages), run before each connection; unchanged without one.
pub fn with_password_command(server: ConnInfo, command: Option<&str>, key: &str) -> ConnInfo {
    let password_command = command.map(|c| password::PasswordCommand::new(c.to_string(), key));
    ConnInfo { password_command: password_command.or(server.password_command.clone()), ..server }
}

/// The password [`parse_config`] would log in with (decoded), TLS
/// parameters or not: to keep it out of messages.
pub fn password_of(url: &str) -> Option<Secret> {
    conn_string::stripped_of_tls(url).parse().ok().map(|config| conn_info(config).password)
}

/// Where `config` points, with libpq's environment defaults for what it leaves out.
fn conn_info(config: tokio_postgres::Config) -> ConnInfo {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let user = match config.get_user() {
        Some(u) => u.to_string(),
        None => std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "postgres".into()),
    };
    let dbname = config.get_dbname().unwrap_or("postgres").to_string();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let password = match (config.get_password(), std::env::var("PGPASSWORD")) {
        (Some(p), _) => Secret::from_string(String::from_utf8_lossy(p).into_owned()),
        (None, Ok(p)) => Secret::from_string(p),
        (None, Err(_)) => password::from_pgpass(&PgpassQuery { host: &host, port, dbname: &dbname, user: &user })
            .unwrap_or_else(|| Secret::from_string(String::new())),
    };
    ConnInfo {
        host,
        port,
        user,
        password,
        admin_dbname: dbname.clone(),
        dbname,
        tls: Tls::disabled(),
        password_command: None,
    }
}

/// The throwaway database on the user's server. Call `drop_database` (or
/// `keep`); `Drop` is only a backstop.
#[derive(Debug)]
pub struct UrlDatabase {
    /// The server, connected to a database other than ours (to create, copy and drop).
    server: ConnInfo,
    conn: ConnInfo,
    /// Local client tools; None for a clone on a machine without them (`pg_dump` is then looked up on PATH).
    bin: Option<PgBin>,
    version: PgVersion,
    /// Copies made from it (`create_copy`), dropped before it.
    copies: Vec<String>,
    /// Whether rehearse made the database (and drops it), or was given it (a clone: never dropped here).
    made: bool,
    /// How messages name the server: "postgres.url", "the clone".
    shown: &'static str,
    done: bool,
}

impl UrlDatabase {
    pub async fn create(plan: &UrlPlan) -> Result<UrlDatabase> {
        let server = &plan.server;
        let admin = connect_admin(server, URL).await?;
        let version = catalog::server_version_num(&admin).await.map_err(|e| {
            ErrorKind::CatalogReadFailed
                .because(format!("cannot read the version of {}", server.masked(&server.dbname)), e)
        })?;
        let name = format!("rehearse_{}", random_suffix());
        // From here on, an error drops `database`, whose Drop drops it (IF EXISTS).
        let database = UrlDatabase {
            conn: ConnInfo { dbname: name.clone(), admin_dbname: name.clone(), ..server.clone() },
            server: server.clone(),
            bin: Some(plan.bin.clone()),
            version,
            copies: Vec::new(),
            made: true,
            shown: URL,
            done: false,
        };
        // template0: the dump expects an empty database, not whatever the
        // server's template1 has collected.
        admin.batch_execute(&format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(&name))).await.map_err(
            |e| {
                ErrorKind::ServerStartFailed.because(
                    format!(
                        "cannot create the throwaway database {name} on {}: the role needs CREATEDB \
                         (ALTER ROLE {} CREATEDB), or use a URL with a role that has it",
                        server.masked(&server.dbname),
                        quote_ident(&server.user),
                    ),
                    e,
                )
            },
        )?;
        mark_owner(&admin, &name).await;
        Ok(database)
    }

    /// The database `conn` names, as it is (a clone of production): used,
    /// never dropped. `shown` names its server in messages. Copies of it
    /// are made from, and dropped through, the server's `postgres` database
    /// (`template1` when the clone's database is `postgres`): CREATE
    /// DATABASE ... TEMPLATE refuses while anyone, the admin session
    /// included, is connected to the template.
    pub async fn given(
        conn: ConnInfo,
        bin: Option<PgBin>,
        shown: &'static str,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<UrlDatabase> {
        let client = db::connect_when_ready(&conn, &conn.dbname, "rehearse-admin", READY, cancel).await.map_err(
            |e| match e {
                // The driver's own error, worded as for any server the user
                // named, not the retry loop's message about a server log.
                Error::Failed { source: Some(cause), .. } => match cause.downcast::<tokio_postgres::Error>() {
                    Ok(driver) => refusal::cannot_connect(shown, &conn, *driver),
                    Err(cause) => ErrorKind::ConnectionFailed
                        .because(format!("cannot connect to {shown} ({})", conn.masked(&conn.dbname)), cause),
                },
                other => other,
            },
        )?;
        let version = catalog::server_version_num(&client).await.map_err(|e| {
            ErrorKind::CatalogReadFailed.because(format!("cannot read the version of {}", conn.masked(&conn.dbname)), e)
        })?;
        let admin_db = if conn.dbname == "postgres" { "template1" } else { "postgres" };
        Ok(UrlDatabase {
            server: ConnInfo { dbname: admin_db.into(), admin_dbname: admin_db.into(), ..conn.clone() },
            conn: ConnInfo { admin_dbname: conn.dbname.clone(), ..conn },
            bin,
            version,
            copies: Vec::new(),
            made: false,
            shown,
            done: false,
        })
    }

    /// A copy of the throwaway database, made with it as the template
    /// (`backend::copy`), marked like it for `rehearse cleanup --url`, with
    /// its per-database settings; dropped with it.
    pub async fn create_copy(&mut self, name: &str, template: super::copy::Template) -> Result<ConnInfo> {
        let admin = connect_admin(&self.server, self.shown).await?;
        // Recorded first: whatever happens next, cleanup drops it (IF EXISTS).
        self.copies.push(name.to_string());
        let copy = super::copy::create(&admin, &self.conn, name, template).await?;
        mark_owner(&admin, name).await;
        super::copy::copy_settings(&admin, &self.conn.dbname, name).await?;
        Ok(ConnInfo { admin_dbname: name.to_string(), ..copy })
    }

    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    /// The copies made so far (`create_copy`).
    pub fn copies(&self) -> &[String] {
        &self.copies
    }

    pub fn client_command(&self, tool: &str, dbname: &str, application_name: &str) -> ChildCommand {
        let program = match &self.bin {
            Some(bin) => bin.tool(tool),
            None => std::path::PathBuf::from(tool),
        };
        ChildCommand::new(program).envs(self.conn.libpq_env(dbname, application_name))
    }

    /// Drops the throwaway database and its copies, whoever is still
    /// connected to them; only the copies of a database it was given.
    pub async fn drop_database(mut self) -> Result<()> {
        self.done = true;
        let ours = self.made.then_some(self.conn.dbname.as_str());
        drop_all(&self.server, ours, &self.copies, self.version, self.shown).await
    }

    /// Leaves the database in place and returns how to reach and drop it.
    pub fn keep(mut self) -> String {
        self.done = true;
        let copies = self.copies.iter().map(|c| format!(" and its copy {c}")).collect::<String>();
        let admin = self.server.masked(&self.server.dbname);
        let drop_copies: String =
            self.copies.iter().map(|c| format!("\n  psql \"{admin}\" -c 'DROP DATABASE {c} WITH (FORCE)'")).collect();
        if !self.made {
            let drop_copies = match drop_copies.is_empty() {
                true => String::new(),
                false => format!("\nDrop its copies with:{drop_copies}"),
            };
            return format!(
                "The clone's database {name}{copies} is still there (--keep). Connect with:\n  psql \"{conn}\"{drop_copies}",
                name = self.conn.dbname,
                conn = self.conn.masked(&self.conn.dbname),
            );
        }
        format!(
            "The throwaway database {name}{copies} is still on the server (--keep). Connect with:\n  \
             psql \"{conn}\"\n\
             Drop it with:\n  \
             psql \"{admin}\" -c 'DROP DATABASE {name} WITH (FORCE)'{drop_copies}",
            name = self.conn.dbname,
            conn = self.conn.masked(&self.conn.dbname),
        )
    }

    /// Fast-restore settings that can be set on our database alone; returns
    /// the limitations (the server-wide ones).
    pub async fn fast_restore_settings(&self, admin: &Client) -> Result<Vec<String>> {
        let mut server_wide = Vec::new();
        for (name, value) in FAST_RESTORE {
            if !self.set_for_database(admin, name, value).await?.is_empty() {
                server_wide.push(format!("{name}={value}"));
            }
        }
        Ok(match server_wide.is_empty() {
            true => Vec::new(),
            false => vec![format!(
                "the restore ran without {}: server-wide settings the url backend never changes, \
                 so restore time is not comparable with the local and docker backends",
                server_wide.join(", ")
            )],
        })
    }

    /// After the restore: CHECKPOINT when allowed, the fast settings reset,
    /// the scenario's settings set on our database. Returns the limitations.
    pub async fn prod_settings(&self, db: &Client, settings: &[(String, String)]) -> Result<Vec<String>> {
        let mut limitations = Vec::new();
        if let Err(e) = db.batch_execute("CHECKPOINT").await {
            limitations.push(format!(
                "CHECKPOINT after the restore was refused ({}): the first migration's WAL may include \
                 full-page images of restored pages",
                db::describe_pg_error(&e)
            ));
        }
        let reset =
            |name: &str| format!("ALTER DATABASE {} RESET {}", quote_ident(&self.conn.dbname), quote_ident(name));
        // A clone was never restored here: its own per-database settings are production's, and stay.
        for (name, _) in FAST_RESTORE.iter().filter(|_| self.made) {
            let _ = db.batch_execute(&reset(name)).await;
        }
        for (name, value) in settings {
            limitations.extend(self.set_for_database(db, name, value).await?);
        }
        Ok(limitations)
    }

    /// `ALTER DATABASE <ours> SET name = value` when the setting may be set
    /// per database (context `user`, or `superuser` for a superuser);
    /// otherwise a limitation saying what the server runs with instead.
    async fn set_for_database(&self, client: &Client, name: &str, value: &str) -> Result<Vec<String>> {
        let setting = catalog::setting_context(client, name)
            .await
            .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot read the server's settings", e))?
            .ok_or_else(|| {
                ErrorKind::ScenarioInvalid.error(format!("postgres.settings.{name}: the server has no such setting"))
            })?;
        if setting.context == "user" || (setting.context == "superuser" && setting.superuser) {
            let sql = format!(
                "ALTER DATABASE {} SET {} = {}",
                quote_ident(&self.conn.dbname),
                quote_ident(name),
                quote_literal(value)
            );
            client.batch_execute(&sql).await.map_err(|e| {
                ErrorKind::ScenarioInvalid
                    .because(format!("postgres.settings.{name} = `{value}` was refused by the server"), e)
            })?;
            return Ok(Vec::new());
        }
        Ok(vec![format!(
            "postgres.settings.{name} = {value} was not applied: it is a server-wide setting (context {}) \
             and the {} backend never changes the server's configuration; the server runs with {name} = {}",
            setting.context,
            if self.made { "url" } else { "clone" },
            setting.current
        )])
    }
}

impl Drop for UrlDatabase {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Backstop for a panic or an early return: a runtime of its own on a
        // thread of its own, since this may run inside (and block) an async task.
        let (server, version, shown) = (self.server.clone(), self.version, self.shown);
        let name = self.made.then(|| self.conn.dbname.clone());
        let copies = std::mem::take(&mut self.copies);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            let drop = drop_all(&server, name.as_deref(), &copies, version, shown);
            rt.block_on(tokio::time::timeout(Duration::from_secs(30), drop)).ok()
        })
        .join();
    }
}

/// How messages name the url backend's server.
const URL: &str = "postgres.url";
/// How long a clone's server may take to accept connections after `create` printed its URL.
const READY: Duration = Duration::from_secs(120);

async fn connect_admin(server: &ConnInfo, shown: &str) -> Result<Client> {
    db::connect(server, &server.dbname, "rehearse-admin").await.map_err(|e| refusal::cannot_connect(shown, server, e))
}

/// Records who made database `name` in its comment, for `rehearse cleanup
/// --url` after a crash (best effort: a role may not be allowed to comment).
async fn mark_owner(admin: &Client, name: &str) {
    let owner = format!("rehearse pid={} host={}", std::process::id(), crate::backend::docker::hostname());
    let _ =
        admin.batch_execute(&format!("COMMENT ON DATABASE {} IS {}", quote_ident(name), quote_literal(&owner))).await;
}

/// Drops the copies, then `name`; every one is tried, the first error returned.
async fn drop_all(
    server: &ConnInfo,
    name: Option<&str>,
    copies: &[String],
    version: PgVersion,
    shown: &str,
) -> Result<()> {
    let mut first_error = None;
    for db in copies.iter().map(String::as_str).chain(name) {
        if let Err(e) = drop_on(server, db, version, shown).await {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Drops database `name` on `server`: `WITH (FORCE)` on 13+, else after
/// terminating its sessions; `shown` names the server in messages.
pub async fn drop_on(server: &ConnInfo, name: &str, version: PgVersion, shown: &str) -> Result<()> {
    let admin = connect_admin(server, shown).await?;
    let ident = quote_ident(name);
    let sql = match version.at_least(13) {
        true => format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"),
        false => format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}; DROP DATABASE IF EXISTS {ident}",
            quote_literal(name)
        ),
    };
    admin.batch_execute(&sql).await.map_err(|e| {
        ErrorKind::CleanupFailed.because(
            format!(
                "could not drop the throwaway database {name} on {}: drop it with DROP DATABASE {ident} WITH (FORCE)",
                server.masked(&server.dbname)
            ),
            e,
        )
    })
}

/// Throwaway databases a rehearse run left on `server` (`shown` in messages): (name, comment).
pub async fn leftover_databases(server: &ConnInfo, shown: &str) -> Result<Vec<(String, String)>> {
    let admin = connect_admin(server, shown).await?;
    catalog::rehearse_databases(&admin)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot list the server's databases", e))
}

/// The server's version as `server_version_num` (`shown` names the server in messages).
pub async fn server_version_num(server: &ConnInfo, shown: &str) -> Result<PgVersion> {
    let admin = connect_admin(server, shown).await?;
    catalog::server_version_num(&admin)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot read the server's version", e))
}

fn random_suffix() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 12).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_the_password() {
        let c = parse("postgres://app:s3cret@db.internal:6543/staging").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str(), c.dbname.as_str()),
            ("db.internal", 6543, "app", "staging")
        );
        assert_eq!(c.password.expose(), "s3cret");
        assert!(!format!("{c:?} {}", c.masked(&c.dbname)).contains("s3cret"));
        let d = parse("postgres://app@localhost").unwrap();
        assert_eq!((d.port, d.dbname.as_str()), (5432, "postgres"));
        let err = parse("postgres://app:s3cret@host:notaport/db").unwrap_err();
        assert!(!err.render().contains("s3cret"), "{}", err.render());
    }
}
