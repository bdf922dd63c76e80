//! Every catalog query rehearse runs, one documented function each.
//! All work on PostgreSQL 12 and later unless a function says otherwise.

use tokio_postgres::{Client, Error};

/// Names of all roles (`pg_roles`).
pub async fn role_names(client: &Client) -> Result<Vec<String>, Error> {
    let rows = client.query("SELECT rolname::text FROM pg_roles", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The server's version number, e.g. "15.18" (`server_version` without a
/// packager's suffix such as " (Debian 15.18-0+deb12u1)").
pub async fn server_version(client: &Client) -> Result<String, Error> {
    let row = client.query_one("SELECT split_part(current_setting('server_version'), ' ', 1)", &[]).await?;
    Ok(row.get(0))
}

/// The current WAL insert position as a byte offset (`pg_current_wal_insert_lsn()`,
/// PostgreSQL 10+). The difference of two readings is the WAL written between them.
pub async fn wal_position(client: &Client) -> Result<u64, Error> {
    let row = client.query_one("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint", &[]).await?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// A user table with its estimated row count and total size on disk.
#[derive(Debug, Clone)]
pub struct TableSize {
    pub name: String,
    /// `pg_class.reltuples`: exact right after a VACUUM of a freshly restored
    /// table (it scans every page), an estimate otherwise.
    pub rows: i64,
    pub bytes: i64,
}

/// User tables (plain, partitioned and materialized views), largest first.
pub async fn table_sizes(client: &Client) -> Result<Vec<TableSize>, Error> {
    let rows = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), greatest(c.reltuples, 0)::bigint,
                    pg_total_relation_size(c.oid)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p', 'm')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
              ORDER BY 3 DESC, 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| TableSize { name: r.get(0), rows: r.get(1), bytes: r.get(2) }).collect())
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
            "SELECT n, current_setting(n, true) FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i) ORDER BY i",
            &[&names],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default())).collect())
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

/// Whether a table exists (`to_regclass`, 9.4+); `name` may be schema-qualified.
pub async fn table_exists(client: &Client, name: &str) -> Result<bool, Error> {
    let row = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]).await?;
    Ok(row.get(0))
}

/// The columns of a table, by name (`pg_attribute`).
pub async fn table_columns(client: &Client, name: &str) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
            &[&name],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
