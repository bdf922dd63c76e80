//! What a managed platform's profile needs to read of the copy: whether a
//! role exists, the extensions installed, and which of a list of extensions
//! only a superuser may create here (PostgreSQL 13 and later:
//! `pg_available_extension_versions.trusted` appeared in 13; 15 and 18 alike).

use tokio_postgres::{Client, Error};

/// Whether role `name` exists (`pg_roles`).
pub async fn role_exists(client: &Client, name: &str) -> Result<bool, Error> {
    Ok(client.query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", &[&name]).await?.get(0))
}

/// The extensions installed in the current database, sorted.
pub async fn installed_extensions(client: &Client) -> Result<Vec<String>, Error> {
    let rows = client.query("SELECT extname::text FROM pg_extension ORDER BY 1", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Those of `names` this server has whose default version a non-superuser
/// may not create: `superuser` and not `trusted` in its control file.
pub async fn untrusted_extensions(client: &Client, names: &[String]) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "SELECT v.name::text FROM pg_available_extension_versions v
               JOIN pg_available_extensions a ON a.name = v.name AND a.default_version = v.version
              WHERE v.name = ANY($1) AND v.superuser AND NOT v.trusted ORDER BY 1",
            &[&names],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
