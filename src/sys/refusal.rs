//! Why a server the user named refused a connection (or never answered),
//! worded once for every command that connects to one (`run` and
//! `cleanup --url`, the clone backend, `stats`, `queries`, `calibrate`): the
//! cause in the first line, in the user's words, then what to do. The
//! driver's own error stays attached as the `caused by:` lines.
//!
//! A `hostssl`-only pg_hba.conf refuses a connection made without TLS
//! (`sslmode=disable`, or `allow`); the server says so only in the text of
//! its message (SQLSTATE 28000 covers every pg_hba.conf refusal), which is
//! why that text is read here. TLS failures (a certificate for another
//! host, an unknown issuer, a server without TLS) and a failed
//! `password_command` are read from the error's causes.

use std::io::ErrorKind;

use tokio_postgres::error::SqlState;

use super::db::{quote_ident, ConnInfo};
use super::password::PasswordCommandFailed;
use crate::error::{self, Error};

/// The error for a failed connection to `server` (database `server.dbname`),
/// which messages call `what` ("postgres.url", "--url", "the clone ...").
pub fn cannot_connect(what: &str, server: &ConnInfo, e: tokio_postgres::Error) -> Error {
    error::ErrorKind::ConnectionFailed.because(message(what, server, &e), e)
}

/// "cannot connect to --url (host=... dbname=app): <why>: <what to do>".
pub fn message(what: &str, server: &ConnInfo, e: &tokio_postgres::Error) -> String {
    format!("cannot connect to {what} ({}): {}", server.masked(&server.dbname), reason(server, e))
}

/// Why, and what to do, from the server's answer or the socket's error.
fn reason(server: &ConnInfo, e: &tokio_postgres::Error) -> String {
    if let Some(failed) = cause::<PasswordCommandFailed>(e) {
        return failed.to_string();
    }
    if let Some(tls) = tls_failure(server, e) {
        return tls;
    }
    match e.as_db_error() {
        Some(db_error) => refused(server, db_error),
        None => unreachable(server, e),
    }
}

/// Why the server refused the connection, from its answer.
fn refused(server: &ConnInfo, db_error: &tokio_postgres::error::DbError) -> String {
    let (user, db) = (&server.user, &server.dbname);
    let who = format!("role {user} connecting to database {db} from this machine");
    let text = db_error.message();
    match db_error.code() {
        // PostgreSQL 14+ ends the message with the connection's
        // encryption: "no encryption" (before 14: "SSL off").
        c if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION && text.contains("no pg_hba.conf entry") => {
            match text.ends_with("no encryption") || text.ends_with("SSL off") {
                true => format!(
                    "its pg_hba.conf has no line for {who} without encryption (sslmode={}): it may admit them \
                     over TLS only (a `hostssl` line): connect with sslmode=require or verify-full",
                    server.tls.mode.as_str()
                ),
                false => format!("its pg_hba.conf has no line for {who}: add a `host` line for them"),
            }
        }
        c if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION && text.contains("pg_hba.conf rejects") => {
            format!("its pg_hba.conf rejects {who} (a `reject` line): put a `host` or `hostssl` line for them above it")
        }
        // Role refusals, and pg_hba.conf's in a server that words them in another language.
        c if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => format!(
            "the server refused {who}: check the user in the URL, that the role has LOGIN (ALTER ROLE {} \
             LOGIN), and that pg_hba.conf has a `host` or `hostssl` line for it (or, for `cert`, that \
             sslcert/sslkey name its client certificate)",
            quote_ident(user)
        ),
        c if *c == SqlState::INVALID_PASSWORD => {
            format!(
                "the server refused the password of role {user}: check the password in the URL (or \
                 PGPASSWORD, ~/.pgpass, the password command)"
            )
        }
        c if *c == SqlState::INSUFFICIENT_PRIVILEGE => format!(
            "role {user} may not connect to database {db}: grant it CONNECT (GRANT CONNECT ON DATABASE {} TO {})",
            quote_ident(db),
            quote_ident(user)
        ),
        c if *c == SqlState::INVALID_CATALOG_NAME => {
            format!("database {db} does not exist on that server: check the database in the URL")
        }
        c if *c == SqlState::TOO_MANY_CONNECTIONS => {
            "the server has no free connection slot (too many clients): try again when fewer are connected".to_string()
        }
        c if *c == SqlState::CANNOT_CONNECT_NOW => {
            "the server is starting up or shutting down: try again once it accepts connections".to_string()
        }
        _ => "the server refused the connection: check the URL and the server's pg_hba.conf".to_string(),
    }
}

/// Why no server answered, from the socket's error (or the driver's, for an
/// authentication method it does not support).
fn unreachable(server: &ConnInfo, e: &tokio_postgres::Error) -> String {
    let user = &server.user;
    let at = format!("{} port {}", server.host, server.port);
    match io_kind(e) {
        Some(ErrorKind::ConnectionRefused) => {
            format!(
                "nothing accepts connections at {at}: check the host and port in the URL, and that the server is up"
            )
        }
        Some(ErrorKind::TimedOut) => format!(
            "no answer from {at} within the connect timeout: check the host and port in the URL, and that \
             nothing (a firewall, a security group) drops connections from this machine"
        ),
        Some(ErrorKind::NotFound) if server.host.starts_with('/') => {
            format!("no server socket in {}: check the host and port in the URL", server.host)
        }
        _ if e.to_string().starts_with("authentication error") => format!(
            "the server asks role {user} for an authentication method rehearse does not support (it logs in \
             with a password: scram-sha-256, md5 or password): use such a line in pg_hba.conf"
        ),
        _ => "the server cannot be reached: check the host and port in the URL, and that the server is up and \
              reachable from this machine"
            .to_string(),
    }
}

/// Why the TLS handshake failed, in the user's words; None if it was not TLS.
fn tls_failure(server: &ConnInfo, e: &tokio_postgres::Error) -> Option<String> {
    use rustls::{AlertDescription, CertificateError};
    let (host, mode) = (&server.host, server.tls.mode.as_str());
    if e.to_string().contains("server does not support TLS") {
        return Some(format!(
            "the server does not accept TLS connections (its ssl setting is off), and sslmode={mode} asks for \
             TLS: turn ssl on there, or use sslmode=prefer on a network you trust"
        ));
    }
    let why = match cause::<rustls::Error>(e)? {
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
        | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => format!(
            "its certificate does not name the host {host}, and sslmode=verify-full checks that it does: connect \
             to a host name the certificate names, or use sslmode=verify-ca to check the certificate's chain only"
        ),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "its certificate is not signed by a certificate in sslrootcert (sslmode={mode} checks the chain): \
             set sslrootcert to the CA that signed the server's certificate"
        ),
        refused @ rustls::Error::InvalidCertificate(_) => {
            format!("its certificate was refused ({refused}, sslmode={mode}): check the server's certificate")
        }
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            "the server asks for a client certificate: set sslcert and sslkey".to_string()
        }
        other => format!("the TLS handshake failed ({other}): check the server's TLS settings"),
    };
    Some(why)
}

/// The kind of the socket error under the driver's, if that is what failed.
fn io_kind(e: &tokio_postgres::Error) -> Option<ErrorKind> {
    cause::<std::io::Error>(e).map(std::io::Error::kind)
}

/// The first cause of `e` that is a `T`, looking inside io errors too
/// (whose `source` skips the error they wrap).
fn cause<T: std::error::Error + 'static>(e: &tokio_postgres::Error) -> Option<&T> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(found) = c.downcast_ref::<T>() {
            return Some(found);
        }
        let inner = c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if let Some(found) = inner.and_then(|i| i.downcast_ref::<T>()) {
            return Some(found);
        }
        cause = inner.map(|i| i as &(dyn std::error::Error + 'static)).or_else(|| c.source());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::db::Secret;

    fn server(port: u16) -> ConnInfo {
        ConnInfo {
            host: "127.0.0.1".into(),
            port,
            user: "stats".into(),
            password: Secret::from_string("s3cret".into()),
            dbname: "app".into(),
            admin_dbname: "app".into(),
            tls: Default::default(),
            password_command: None,
        }
    }

    #[tokio::test]
    async fn a_port_nothing_listens_on_is_named_with_what_to_check() {
        // Port 1 on loopback: refused at once on any Linux machine.
        let s = server(1);
        let Err(e) = crate::sys::db::connect(&s, &s.dbname, "test").await else { panic!("nothing listens on port 1") };
        let text = cannot_connect("--url", &s, e).render();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            "error: cannot connect to --url (host=127.0.0.1 port=1 user=stats dbname=app): nothing accepts \
             connections at 127.0.0.1 port 1: check the host and port in the URL, and that the server is up"
        );
        assert!(!text.contains("s3cret"));
    }
}
