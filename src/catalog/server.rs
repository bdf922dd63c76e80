//! The server: version, settings, roles, databases, sessions.

use tokio_postgres::{Client, Error};

use crate::pg::PgVersion;

/// Names of all roles (`pg_roles`).
pub async fn role_names(client: &Client) -> Result<Vec<String>, Error> {
    let rows = client.query("SELECT rolname::text FROM pg_roles", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The server's version number, e.g. "15.18" (`server_version` without a
/// packager's suffix such as " (Debian 15.18-0+deb12u1)").
pub async fn server_version(client: &Client) -> Result<String, Error> {
    let row =
        client.query_one("/*rehearse*/ SELECT split_part(current_setting('server_version'), ' ', 1)", &[]).await?;
    Ok(row.get(0))
}

/// The server's version, from `server_version_num` (e.g. 150018).
pub async fn server_version_num(client: &Client) -> Result<PgVersion, Error> {
    let row = client.query_one("/*rehearse*/ SELECT current_setting('server_version_num')::int4", &[]).await?;
    Ok(PgVersion::from_num(row.get(0)))
}

/// The current database's name and whether the server is a hot standby
/// (`pg_is_in_recovery()`).
pub async fn database_and_recovery(client: &Client) -> Result<(String, bool), Error> {
    let row = client.query_one("/*rehearse*/ SELECT current_database()::text, pg_is_in_recovery()", &[]).await?;
    Ok((row.get(0), row.get(1)))
}

/// Which database a session is connected to, beyond doubt: its name and
/// the server's start time (`pg_postmaster_start_time()`, as epoch seconds
/// with microseconds, so two servers, or one restarted, differ). Both as
/// text, compared as text: rehearse reads it from the throwaway database, and
/// the Alembic helper runs it on every connection env.py opens.
pub const IDENTITY: &str =
    "/*rehearse*/ SELECT current_database()::text, extract(epoch from pg_postmaster_start_time())::text";

/// The connected database's [`IDENTITY`]: `(name, server start time)`.
pub async fn identity(client: &Client) -> Result<(String, String), Error> {
    let row = client.query_one(IDENTITY, &[]).await?;
    Ok((row.get(0), row.get(1)))
}

/// The current database's oid and this session's backend pid.
pub async fn database_oid_and_pid(client: &Client) -> Result<(i64, i32), Error> {
    let row = client
        .query_one(
            "/*rehearse*/ SELECT oid::int8, pg_backend_pid() FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// This session's backend pid.
pub async fn backend_pid(client: &Client) -> Result<i32, Error> {
    Ok(client.query_one("/*rehearse*/ SELECT pg_backend_pid()", &[]).await?.get(0))
}

/// Every database but the templates, by name (`pg_database`; PostgreSQL 15 and 18).
pub async fn database_names(client: &Client) -> Result<Vec<String>, Error> {
    let rows = client
        .query("/*rehearse*/ SELECT datname::text FROM pg_database WHERE NOT datistemplate ORDER BY datname", &[])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Size of the current database (`pg_database_size`).
pub async fn database_size(client: &Client) -> Result<i64, Error> {
    Ok(client.query_one("SELECT pg_database_size(current_database())", &[]).await?.get(0))
}

/// The current value of each named setting (`current_setting`), in order.
pub async fn settings(client: &Client, names: &[&str]) -> Result<Vec<(String, String)>, Error> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let rows = client
        .query(
            "/*rehearse*/ SELECT n, current_setting(n, true) FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i) ORDER BY i",
            &[&names],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default())).collect())
}

/// Where a setting may be set from, for the current role.
#[derive(Debug, Clone)]
pub struct SettingContext {
    /// `pg_settings.context`: `user`, `superuser`, `sighup`, `postmaster`, ...
    pub context: String,
    /// The value the server runs with now.
    pub current: String,
    /// Whether the current role is a superuser.
    pub superuser: bool,
}

/// A setting's context and current value (`pg_settings`); None when the
/// server has no such setting.
pub async fn setting_context(client: &Client, name: &str) -> Result<Option<SettingContext>, Error> {
    let row = client
        .query_opt(
            "SELECT s.context, current_setting(s.name),
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
               FROM pg_settings s WHERE s.name = $1",
            &[&name],
        )
        .await?;
    Ok(row.map(|r| SettingContext { context: r.get(0), current: r.get(1), superuser: r.get(2) }))
}

/// Settings in postgresql.auto.conf (what ALTER SYSTEM wrote) that the
/// server could not apply, with the reason (`pg_file_settings`, 9.5+).
pub async fn unapplied_file_settings(client: &Client) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
            "SELECT name, coalesce(error, 'not applied')
               FROM pg_file_settings
              WHERE sourcefile LIKE '%postgresql.auto.conf' AND (NOT applied OR error IS NOT NULL)",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Settings changed in the files that wait for a restart (`pg_settings.pending_restart`, 9.5+).
pub async fn pending_restart(client: &Client) -> Result<Vec<String>, Error> {
    let rows = client.query("SELECT name FROM pg_settings WHERE pending_restart", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Databases named `rehearse_*` with their comments (`pg_database`,
/// `shobj_description`): the url backend's throwaway databases.
pub async fn rehearse_databases(client: &Client) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
            "SELECT d.datname::text, coalesce(shobj_description(d.oid, 'pg_database'), '')
               FROM pg_database d WHERE d.datname LIKE 'rehearse\\_%'",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Sessions established on the connected database since its statistics
/// were reset: `pg_stat_database.sessions`, PostgreSQL 14 and later (None
/// before). A backend adds its session to the shared counters when it
/// flushes its statistics, at the latest when it exits; the snapshot of
/// this session's statistics is cleared first so a second read sees them.
pub async fn sessions_established(client: &Client) -> Result<Option<i64>, Error> {
    if !server_version_num(client).await?.at_least(14) {
        return Ok(None);
    }
    client.batch_execute("/*rehearse*/ SELECT pg_stat_clear_snapshot()").await?;
    let row = client
        .query_one("/*rehearse*/ SELECT sessions FROM pg_stat_database WHERE datname = current_database()", &[])
        .await?;
    Ok(Some(row.get(0)))
}

/// Whether a session of a migration tool is connected to the current
/// database: a client backend whose application_name is `tool`'s (libpq
/// tools take it from PGAPPNAME) or none of rehearse's own sessions'
/// (`rehearse...`: a JDBC tool names itself). pg_stat_activity, any version.
pub async fn tool_session_connected(client: &Client, tool: &str) -> Result<bool, Error> {
    let row = client
        .query_one(
            "/*rehearse*/ SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database()
                AND backend_type = 'client backend' AND pid <> pg_backend_pid()
                AND (application_name = $1 OR application_name NOT LIKE 'rehearse%'))",
            &[&tool],
        )
        .await?;
    Ok(row.get(0))
}
