//! Tables, indexes and their sizes (`pg_class`, `pg_index`, `pg_attribute`).

use tokio_postgres::{Client, Error};

use crate::pg::RelationKind;

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

/// Tables to VACUUM ANALYZE after a restore, largest first: plain tables,
/// materialized views and partitioned roots (which cover their partitions),
/// no temporary tables.
pub async fn tables_to_vacuum(client: &Client) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'm', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
              ORDER BY pg_total_relation_size(c.oid) DESC, 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One user table, index or materialized view: identity, storage and size.
#[derive(Debug, Clone)]
pub struct RelationRow {
    pub oid: i64,
    pub relfilenode: i64,
    pub name: String,
    pub kind: RelationKind,
    /// Table size with TOAST (`pg_table_size`) for tables, `pg_relation_size` for indexes.
    pub bytes: i64,
    /// The main fork (`pg_relation_size`), as `rehearse stats` reads production's.
    pub main_bytes: i64,
    pub rows: i64,
}

/// Every user table, materialized view and index (`pg_class`).
/// Partitioned parents have no storage (relfilenode 0) and are left out.
///
/// pg_relation_size and pg_table_size take ACCESS SHARE on the relation, so
/// they would wait for a session holding ACCESS EXCLUSIVE on it: an Alembic
/// release paused between two revisions in its one open transaction (which
/// waits for rehearse in turn: a deadlock). Such a relation's size is read
/// from `relpages` instead (as of its last VACUUM or ANALYZE), which takes no
/// lock. Any PostgreSQL version.
pub async fn relations(client: &Client) -> Result<Vec<RelationRow>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ WITH locked AS (
                 SELECT DISTINCT l.relation FROM pg_locks l
                  WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND l.pid <> pg_backend_pid()
                    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
             SELECT c.oid::int8, c.relfilenode::int8, format('%I.%I', n.nspname, c.relname), c.relkind::text,
                    CASE WHEN c.oid IN (SELECT relation FROM locked) THEN c.relpages::int8 * current_setting('block_size')::int8
                         WHEN c.relkind = 'i' THEN pg_relation_size(c.oid) ELSE pg_table_size(c.oid) END,
                    greatest(c.reltuples, 0)::int8,
                    CASE WHEN c.oid IN (SELECT relation FROM locked) THEN c.relpages::int8 * current_setting('block_size')::int8
                         ELSE pg_relation_size(c.oid) END
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'm', 'i') AND c.relfilenode <> 0
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RelationRow {
            oid: r.get(0),
            relfilenode: r.get(1),
            name: r.get(2),
            kind: RelationKind::from_relkind(r.get(3)),
            bytes: r.get(4),
            rows: r.get(5),
            main_bytes: r.get(6),
        })
        .collect())
}

/// Names of relations by oid, for locks seen before the relation was visible.
pub async fn relation_names(client: &Client, oids: &[i64]) -> Result<Vec<(i64, String, RelationKind)>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT c.oid::int8, format('%I.%I', n.nspname, c.relname), c.relkind::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid::int8 = ANY($1) AND n.nspname NOT LIKE 'pg_toast%'",
            &[&oids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), RelationKind::from_relkind(r.get(2)))).collect())
}

/// The canonical `schema.name` of the relation `name` (as the user wrote
/// it, resolved on the search path by `to_regclass`, 9.4+); None when there
/// is no such relation.
pub async fn canonical_name(client: &Client, name: &str) -> Result<Option<String>, Error> {
    let row = client
        .query_opt(
            "/*rehearse*/ SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
            &[&name],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
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

/// Indexes left invalid, e.g. by a failed CREATE INDEX CONCURRENTLY (`pg_index.indisvalid`).
pub async fn invalid_indexes(client: &Client) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE NOT i.indisvalid ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The revisions in Alembic's version table (`alembic_version`, or the
/// `[schema.]table` an app's env.py configures), if the table exists.
pub async fn alembic_version(client: &Client, table: &str) -> Result<Option<Vec<String>>, Error> {
    let Some(table) = regclass(client, table).await? else { return Ok(None) };
    let sql = format!("/*rehearse*/ SELECT version_num::text FROM {table} ORDER BY 1");
    let rows = client.query(&sql, &[]).await?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}

/// Django's applied migrations (`django_migrations`), as `app.name`,
/// sorted; empty when the table does not exist yet. Any PostgreSQL version.
pub async fn django_history(client: &Client) -> Result<Vec<String>, Error> {
    let Some(table) = regclass(client, "django_migrations").await? else { return Ok(Vec::new()) };
    let sql = format!("/*rehearse*/ SELECT app::text || '.' || name::text FROM {table} ORDER BY 1");
    Ok(client.query(&sql, &[]).await?.iter().map(|r| r.get(0)).collect())
}

/// `table` (`[schema.]name`) as `to_regclass`'s text spells it, quoted
/// where needed and so safe to splice into SQL; None when there is no such relation.
pub async fn regclass(client: &Client, table: &str) -> Result<Option<String>, Error> {
    Ok(client.query_one("/*rehearse*/ SELECT to_regclass($1)::text", &[&table]).await?.get(0))
}

/// The owner of a table (`schema.name`), None when there is no such table.
pub async fn table_owner(client: &Client, table: &str) -> Result<Option<String>, Error> {
    let row = client
        .query_opt(
            "/*rehearse*/ SELECT pg_get_userbyid(c.relowner)::text FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&table],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The extensions of the connected database, `(name, schema)`, by name.
pub async fn extensions(client: &Client) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
            "/*rehearse*/ SELECT e.extname::text, n.nspname::text FROM pg_extension e
               JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// How many rows of `table` hold a value in `column` (non-null), or how
/// many rows it has when `column` is None; None when there is no such table
/// or column. Reads the whole table (a count, never a value); any version.
pub async fn rows_with_values(client: &Client, table: &str, column: Option<&str>) -> Result<Option<u64>, Error> {
    let Some(name) = canonical_name(client, table).await? else { return Ok(None) };
    let sql = match column {
        Some(c) if !table_columns(client, &name).await?.iter().any(|have| have == c) => return Ok(None),
        Some(c) => format!("/*rehearse*/ SELECT count(*) FROM {name} WHERE {} IS NOT NULL", crate::pg::quote_ident(c)),
        None => format!("/*rehearse*/ SELECT count(*) FROM {name}"),
    };
    let rows: i64 = client.query_one(&sql, &[]).await?.get(0);
    Ok(Some(rows.max(0) as u64))
}

/// The type of `table`.`column` as `format_type` spells it (`numeric(10,2)`);
/// None when there is no such column. Any version.
pub async fn column_type(client: &Client, table: &str, column: &str) -> Result<Option<String>, Error> {
    let row = client
        .query_opt(
            "/*rehearse*/ SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped",
            &[&table, &column],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// How many non-null values of `table`.`column` (of type `from`) do not
/// survive a cast to `to` and back: what a column retyped to `to` lost.
/// `from` and `to` come from `format_type` ([`column_type`]); a value the
/// cast refuses (out of range) is an error, as the release would have been.
pub async fn values_changed_by_cast(
    client: &Client,
    table: &str,
    column: &str,
    (from, to): (&str, &str),
) -> Result<Option<u64>, Error> {
    let Some(name) = canonical_name(client, table).await? else { return Ok(None) };
    let c = crate::pg::quote_ident(column);
    let sql = format!("/*rehearse*/ SELECT count(*) FROM {name} WHERE {c} IS DISTINCT FROM ({c}::{to})::{from}");
    let rows: i64 = client.query_one(&sql, &[]).await?.get(0);
    Ok(Some(rows.max(0) as u64))
}
