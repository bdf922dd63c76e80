//! Connections to the throwaway server: where it is, how to log in without
//! ever printing the password, and connecting with a bounded retry.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::password::PasswordCommand;
use super::tls::{SslMode, Tls};
use crate::error::{Error, ErrorKind, Result};
pub use crate::pg::{quote_ident, quote_literal};

/// A password: shown as asterisks by Debug and Display.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// 32 random alphanumerics from the OS's CSPRNG (via rand's thread RNG).
    pub fn generate() -> Secret {
        use rand::distr::{Alphanumeric, SampleString};
        Secret(Alphanumeric.sample_string(&mut rand::rng(), 32))
    }

    /// A password the user gave (e.g. in `postgres.url`).
    pub fn from_string(password: String) -> Secret {
        Secret(password)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// Where the throwaway server listens and how to log in.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// A unix socket directory (local backend) or a host name.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    /// The database the rehearsal runs in.
    pub dbname: String,
    /// The maintenance database to connect to when `dbname` does not exist
    /// yet, where server-wide bookkeeping (pg_stat_statements) is kept. On a
    /// server rehearse does not own (url backend) it is `dbname` itself:
    /// nothing else on that server may be written to.
    pub admin_dbname: String,
    /// How the connection is encrypted: disabled for the servers rehearse
    /// starts itself, libpq's settings for the servers the user names.
    pub tls: Tls,
    /// Run before each connection for a fresh password (`password_command`); `password` otherwise.
    pub password_command: Option<PasswordCommand>,
}

impl ConnInfo {
    pub fn config(&self, dbname: &str, application_name: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        if self.host.starts_with('/') {
            // libpq never uses TLS over a unix socket.
            config.host_path(PathBuf::from(&self.host)).ssl_mode(tokio_postgres::config::SslMode::Disable);
        } else {
            config.host(&self.host).ssl_mode(self.tls.first_attempt());
        }
        config
            .port(self.port)
            .user(&self.user)
            .password(self.password.expose())
            .dbname(dbname)
            .application_name(application_name)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// libpq environment for client tools (psql, pg_restore): the password
    /// travels in the environment, never on a command line.
    /// A `password_command` is run for it (a failure leaves the last known password).
    pub fn libpq_env(&self, dbname: &str, application_name: &str) -> Vec<(String, String)> {
        let password = self.current_password();
        let mut env: Vec<(String, String)> = vec![
            ("PGHOST".into(), self.host.clone()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), self.user.clone()),
            ("PGPASSWORD".into(), password.expose().to_string()),
            ("PGDATABASE".into(), dbname.to_string()),
            ("PGAPPNAME".into(), application_name.to_string()),
            // A user's ~/.psqlrc or service file must not change what we run.
            ("PSQLRC".into(), "/dev/null".into()),
            ("PGSERVICEFILE".into(), "/dev/null".into()),
        ];
        env.extend(self.tls.libpq_env());
        env
    }

    /// The password to hand a client tool now: a `password_command`'s, fresh
    /// (if it fails, the tool's login fails and says so), else `password`.
    pub fn current_password(&self) -> Secret {
        self.password_command.as_ref().and_then(|c| c.run_blocking()).unwrap_or_else(|| self.password.clone())
    }

    /// `host=... port=... user=... dbname=...`, without the password.
    pub fn masked(&self, dbname: &str) -> String {
        format!("host={} port={} user={} dbname={}", self.host, self.port, self.user, dbname)
    }
}

/// Connects once (twice for `allow` and `prefer`, as libpq does: the other
/// way when the first fails); the connection's driver runs on its own task.
/// A `password_command` runs first; its failure comes back as the
/// connection's error (the TLS connector fails with it: the one way to make
/// a `tokio_postgres::Error` of our own), which `refusal` words.
pub async fn connect(info: &ConnInfo, dbname: &str, application_name: &str) -> Result<Client, tokio_postgres::Error> {
    use tokio_postgres::config::SslMode as Pg;
    let mut config = info.config(dbname, application_name);
    let mut refusal: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>> = None;
    if let Some(command) = &info.password_command {
        match command.run().await {
            Ok(password) => _ = config.password(password.expose()),
            Err(e) => refusal = Some(std::sync::Arc::new(e)),
        }
    }
    let connector = info.tls.connector(refusal.clone());
    let first = config.connect(connector.clone()).await;
    // As libpq: the other way only when the server answered (it refused,
    // or the TLS handshake failed), not when it cannot be reached at all.
    let answered = |e: &tokio_postgres::Error| {
        e.as_db_error().is_some() || e.to_string().starts_with("error performing TLS handshake")
    };
    let retry = match (info.tls.mode, &first) {
        (_, Ok(_)) => None,
        _ if refusal.is_some() || info.host.starts_with('/') => None,
        (SslMode::Allow, Err(e)) if answered(e) => Some(Pg::Require),
        (SslMode::Prefer, Err(e)) if answered(e) => Some(Pg::Disable),
        _ => None,
    };
    let (client, connection) = match retry {
        Some(mode) => config.ssl_mode(mode).connect(connector).await?,
        None => first?,
    };
    tokio::spawn(async move {
        // The error surfaces on the client's next call; nothing to add here.
        let _ = connection.await;
    });
    Ok(client)
}

/// Cancels what `client` runs, over the same TLS as its connection.
pub async fn cancel(tls: &Tls, client: &Client) {
    // A failed cancel is not worth reporting: the caller is already giving up on the query.
    let _ = client.cancel_token().cancel_query(tls.connector(None)).await;
}

/// Sets `password` for `info.user`, connecting with the current one (a
/// snapshot cache entry's): a cached server never runs with a password
/// that was written down in the cache.
pub async fn set_password(info: &ConnInfo, password: &Secret, cancel: &CancellationToken) -> Result<()> {
    let client = connect_when_ready(info, &info.admin_dbname, "rehearse", Duration::from_secs(30), cancel).await?;
    client
        .batch_execute(&format!("ALTER ROLE {} PASSWORD {}", quote_ident(&info.user), quote_literal(password.expose())))
        .await
        .map_err(|e| Error::environment_because("cannot set a new password on the server from the snapshot cache", e))
}

/// Connects, retrying only while the server is still starting up or not yet
/// listening, with backoff, until `deadline`; a signal (`cancel`) ends the
/// wait at once.
pub async fn connect_when_ready(
    info: &ConnInfo,
    dbname: &str,
    application_name: &str,
    deadline: Duration,
    cancel: &CancellationToken,
) -> Result<Client> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let attempt = tokio::select! {
            r = connect(info, dbname, application_name) => r,
            _ = cancel.cancelled() => return Err(Error::Interrupted),
        };
        match attempt {
            Ok(client) => return Ok(client),
            Err(e) if is_transient(&e) && started.elapsed() + pause < deadline => {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = cancel.cancelled() => return Err(Error::Interrupted),
                }
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                let waited = humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()));
                return Err(ErrorKind::ConnectionFailed.because(
                    format!(
                        "cannot connect to the throwaway server ({}) after {waited} (deadline {}); check the server log named above",
                        info.masked(dbname),
                        humantime::format_duration(deadline)
                    ),
                    e,
                ));
            }
        }
    }
}

fn is_transient(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        // 57P03: "the database system is starting up".
        return db.code() == &SqlState::CANNOT_CONNECT_NOW;
    }
    // No server answer at all: refused, or the socket file is not there yet.
    e.code().is_none()
}

/// Postgres's own message for a failed query, with detail and hint.
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("\nDETAIL: {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("\nHINT: {hint}"));
            }
            text
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_display() {
        let s = Secret::generate();
        assert_eq!(s.expose().len(), 32);
        assert_eq!(format!("{s} {s:?}"), "******** ********");
    }

    #[tokio::test]
    async fn waiting_for_a_server_ends_at_a_signal() {
        // Nothing listens on port 1: a transient error, retried until the deadline or a signal.
        let info = ConnInfo {
            host: "127.0.0.1".into(),
            port: 1,
            user: "nobody".into(),
            password: Secret::generate(),
            dbname: "x".into(),
            admin_dbname: "x".into(),
            tls: Tls::disabled(),
            password_command: None,
        };
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.cancel();
        });
        let started = Instant::now();
        let err = connect_when_ready(&info, "x", "test", Duration::from_secs(60), &cancel).await.unwrap_err();
        assert!(matches!(err, Error::Interrupted), "{}", err.render());
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
    }
}
