//! A second database made from the rehearsal database as its template
//! (`race:` races its copies there, so the sequential rehearsal's end state
//! stays untouched to compare with). `CREATE DATABASE ... TEMPLATE` copies
//! the template's files and refuses while anyone is connected to the
//! template, so the copy is made right after `prepare`, before any observer
//! or migration session connects. On PostgreSQL 15 and later it uses
//! `STRATEGY FILE_COPY`: the files copied as they are, after a checkpoint,
//! rather than every block written to the WAL (the default WAL_LOG, which
//! on a large database writes as much WAL as the database is big).

use tokio_postgres::Client;

use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::db::{quote_ident, quote_literal, ConnInfo};

/// The copy's name: the rehearsal database's, with a suffix.
pub fn copy_name(conn: &ConnInfo, suffix: &str) -> String {
    format!("{}_{suffix}", conn.dbname)
}

/// What a second database starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// A copy of the rehearsal database (the race's).
    Rehearsal,
    /// Empty (`template0`): the drift check builds the history there.
    Empty,
}

/// `CREATE DATABASE name TEMPLATE <conn.dbname | template0>`, from the
/// session `admin` (connected to another database); its connection details.
pub async fn create(admin: &Client, conn: &ConnInfo, name: &str, template: Template) -> Result<ConnInfo> {
    let version = catalog::server_version_num(admin)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot read the server's version", e))?;
    let strategy = if version.at_least(15) { " STRATEGY FILE_COPY" } else { "" };
    let from = match template {
        Template::Rehearsal => quote_ident(&conn.dbname),
        Template::Empty => "template0".to_string(),
    };
    let sql = format!("CREATE DATABASE {} TEMPLATE {from}{strategy}", quote_ident(name));
    admin.batch_execute(&sql).await.map_err(|e| {
        let why = match template {
            Template::Rehearsal => format!(
                "cannot copy the rehearsal database {} to {name} (the race's or the rollback's copy; CREATE DATABASE ... TEMPLATE needs \
                 the role to own the template or CREATEDB, and nobody connected to the template)",
                conn.dbname
            ),
            Template::Empty => format!(
                "cannot create the empty database {name} to build the migration history in (the role needs CREATEDB)"
            ),
        };
        ErrorKind::ServerStartFailed.because(why, e)
    })?;
    Ok(ConnInfo { dbname: name.to_string(), ..conn.clone() })
}

/// Gives the copy the per-database settings of its template
/// (`ALTER DATABASE ... SET`), which CREATE DATABASE does not copy.
pub async fn copy_settings(admin: &Client, template: &str, name: &str) -> Result<()> {
    let env = |e| Error::environment_because(format!("cannot give {name} the settings of {template}"), e);
    for setting in catalog::database_settings(admin, template).await.map_err(env)? {
        let Some((key, value)) = setting.split_once('=') else { continue };
        let sql = format!("ALTER DATABASE {} SET {} = {}", quote_ident(name), quote_ident(key), quote_literal(value));
        admin.batch_execute(&sql).await.map_err(env)?;
    }
    Ok(())
}
