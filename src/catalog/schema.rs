//! A database's schema as normalized catalog entries, for the drift check:
//! two databases on one server (production plus the release, and the
//! history built from empty) compared entry by entry.
//!
//! Read from the catalogs, not from `pg_dump --schema-only` text, so that
//! what differs by construction stays out of every definition: OIDs,
//! statistics, relfilenodes, column order (`attnum`), the order objects
//! were created in. Each entry is a key (`name`: what the two sides are
//! matched by), a definition (compared), an optional label (the object's
//! own name where the key is not it) and its parent (for folding the
//! children of a missing table into one finding).
//!
//! Indexes and constraints are keyed by their definition, not their name:
//! an index's key is `pg_get_indexdef` with its own name cut out
//! (`CREATE INDEX ON public.orders USING btree (note)`), a constraint's is
//! `table: pg_get_constraintdef`. An index or constraint renamed by hand
//! then matches its twin and differs only in its label: a name finding,
//! not a drop plus an add. Indexes backing a primary key, unique or
//! exclusion constraint are the constraint's and are not listed apart.
//!
//! Every `pg_get_*def`, `format_type` and `regclass` output qualifies names
//! not on the search path, so the snapshot is read in one read-only
//! transaction with `search_path = pg_catalog`: both databases then spell
//! every user object schema-qualified, whatever search_path their
//! sessions or `ALTER DATABASE ... SET` give. TimeZone, DateStyle,
//! IntervalStyle and extra_float_digits are fixed the same way.
//!
//! Left out: system schemas (`pg_catalog`, `information_schema`,
//! `pg_toast*`, `pg_temp*`), extension members (`pg_depend` deptype e),
//! the history tables the caller names, and kinds not read at all:
//! aggregates, composite and range types, foreign tables, RLS policies,
//! rules, statistics objects, publications, casts and operators, comments,
//! column privileges, the owners and privileges of functions and types,
//! default privileges, column storage and compression, sequences' current
//! values, tablespaces.
//!
//! PostgreSQL 12 and later: `pg_attribute.attgenerated` (12+),
//! `pg_attribute.attidentity`, `pg_sequence`, `pg_class.relispartition`,
//! `relpartbound` and `pg_get_partkeydef` (10+), `pg_proc.prokind` and
//! `pg_constraint.conparentid` (11+); `pg_get_function_sqlbody` (14+) only
//! when the server is 14 or later. Not-null constraints, which PostgreSQL
//! 17 (domains) and 18 (tables) also store in `pg_constraint` (contype
//! `n`), are left to the column's and domain's `NOT NULL`.

use crate::pg::PgVersion;
pub use crate::pg::SchemaEntryKind;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row};

/// One object of a database's schema, normalized so that two databases
/// built the same way give equal entries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaEntry {
    pub kind: SchemaEntryKind,
    /// What the two sides are matched by: `public.orders`, `public.orders.total`,
    /// `public.order_count(bigint)`, an index's definition without its name,
    /// `public.orders: CHECK (...)`. Not unique for indexes and constraints
    /// (two identical indexes under different names).
    pub name: String,
    /// What is compared: the type, default and NOT NULL of a column, a view's query...
    pub definition: String,
    /// The object's own name where the key is not it: `public.orders_note_idx`,
    /// `public.orders: orders_total_check`. Differing alone, it is a name finding.
    pub label: Option<String>,
    /// The object this one belongs to (a column's table, a partition's parent,
    /// a table's schema), as its (kind, name).
    pub parent: Option<(SchemaEntryKind, String)>,
}

impl SchemaEntry {
    /// The object as a finding names it: its label, else its key.
    pub fn object(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

/// The schema of the database `client` is connected to, sorted, leaving
/// out system schemas, objects that belong to an extension, and the tables
/// in `except_tables` (spelled as `format('%I.%I')` spells them, e.g.
/// `public.alembic_version`) with their columns, indexes, constraints,
/// triggers, owned sequences, owner and privileges.
///
/// Runs in a transaction of its own: `client` must not be in one.
pub async fn schema_snapshot(client: &Client, except_tables: &[&str]) -> Result<Vec<SchemaEntry>, Error> {
    let version = super::server_version_num(client).await?;
    // Constants in defaults, partition bounds and view queries print per
    // these settings (a timestamptz bound in the session's TimeZone): fix
    // them, so that two databases' settings never make a difference.
    let begin = client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
             SET LOCAL search_path = pg_catalog; SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD';
             SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1",
        )
        .await;
    let read = match begin {
        Ok(()) => read_schema(client, except_tables, version).await,
        Err(e) => Err(e),
    };
    let end = client.batch_execute(if read.is_ok() { "COMMIT" } else { "ROLLBACK" }).await;
    let mut entries = read?;
    end?;
    entries.sort();
    Ok(entries)
}

async fn read_schema(client: &Client, except_tables: &[&str], version: PgVersion) -> Result<Vec<SchemaEntry>, Error> {
    let except: Vec<String> = except_tables.iter().map(|t| t.to_string()).collect();
    let mut entries = schemas(client).await?;
    entries.extend(extensions(client).await?);
    entries.extend(tables(client, &except).await?);
    entries.extend(columns(client, &except).await?);
    entries.extend(constraints(client, &except).await?);
    entries.extend(indexes(client, &except).await?);
    entries.extend(triggers(client, &except).await?);
    entries.extend(sequences(client, &except).await?);
    entries.extend(views(client, &except).await?);
    entries.extend(owners_and_privileges(client, &except).await?);
    entries.extend(functions(client, version).await?);
    entries.extend(enums(client).await?);
    entries.extend(domains(client).await?);
    Ok(entries)
}

/// Runs a query whose rows are (kind, name, definition, label, parent kind, parent name).
async fn read(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<SchemaEntry>, Error> {
    Ok(client.query(sql, params).await?.iter().map(entry).collect())
}

fn entry(row: &Row) -> SchemaEntry {
    let kind =
        |text: &str| SchemaEntryKind::from_name(text).unwrap_or_else(|| panic!("a schema query names kind {text:?}"));
    let parent_kind: Option<String> = row.get(4);
    let parent_name: Option<String> = row.get(5);
    SchemaEntry {
        kind: kind(row.get(0)),
        name: row.get(1),
        definition: row.get(2),
        label: row.get(3),
        parent: parent_kind.zip(parent_name).map(|(k, n)| (kind(&k), n)),
    }
}

/// A `WHERE` condition on `pg_namespace n`: not a system schema.
const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// A condition: the object `oid` of catalog `catalog` is not an extension's member.
fn not_in_extension(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass
                        AND e.objid = {oid} AND e.deptype = 'e')"
    )
}

/// The CTE `rel`: user tables (plain and partitioned), views, materialized
/// views and sequences, without extension members, the tables in `$1` and
/// the sequences those own. `kind` is the [`SchemaEntryKind`] text, `name` the
/// `format('%I.%I')` spelling.
fn user_relations() -> String {
    format!(
        "rel AS (
           SELECT c.oid, c.relkind, c.relowner, c.relacl, n.nspname,
                  format('%I.%I', n.nspname, c.relname) AS name,
                  CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                                 WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND {USER_SCHEMA}
              AND format('%I.%I', n.nspname, c.relname) <> ALL($1::text[])
              AND {}
              AND NOT EXISTS (
                    SELECT 1 FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
                      JOIN pg_namespace tn ON tn.oid = t.relnamespace
                     WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid
                       AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                       AND format('%I.%I', tn.nspname, t.relname) = ANY($1::text[])))",
        not_in_extension("pg_class", "c.oid")
    )
}

/// An expression: the privileges in `acl` (an `aclitem[]`, NULL for the
/// default of an object of `acl_kind` owned by `owner`), as
/// `(owner): DELETE, INSERT; PUBLIC: SELECT; app_ro: SELECT`: grantors
/// left out, the owner named `(owner)` so that an owner changed is one
/// finding (`owner`), not two.
fn privileges_sql(acl: &str, acl_kind: &str, owner: &str) -> String {
    format!(
        "coalesce((SELECT string_agg(g.grantee || ': ' || g.privileges, '; ' ORDER BY g.grantee)
                     FROM (SELECT p.grantee, string_agg(p.privilege, ', ' ORDER BY p.privilege) AS privileges
                             FROM (SELECT DISTINCT
                                          CASE WHEN a.grantee = {owner} THEN '(owner)' WHEN a.grantee = 0 THEN 'PUBLIC'
                                               ELSE pg_get_userbyid(a.grantee)::text END AS grantee,
                                          a.privilege_type || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
                                            AS privilege
                                     FROM aclexplode(coalesce({acl}, acldefault({acl_kind}, {owner}))) a) p
                            GROUP BY p.grantee) g), 'none')"
    )
}

/// Schemas (`pg_namespace`): owner and privileges.
async fn schemas(client: &Client) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "SELECT 'schema', format('%I', n.nspname),
                'owner ' || pg_get_userbyid(n.nspowner) || '; privileges ' || {},
                NULL, NULL, NULL
           FROM pg_namespace n WHERE {USER_SCHEMA} AND {}",
        privileges_sql("n.nspacl", "'n'", "n.nspowner"),
        not_in_extension("pg_namespace", "n.oid")
    );
    read(client, &sql, &[]).await
}

/// Extensions (`pg_extension`): version and schema.
async fn extensions(client: &Client) -> Result<Vec<SchemaEntry>, Error> {
    let sql = "SELECT 'extension', format('%I', e.extname),
                      'version ' || e.extversion || ' in schema ' || format('%I', n.nspname),
                      NULL, 'schema', format('%I', n.nspname)
                 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace";
    read(client, sql, &[]).await
}

/// Tables: persistence (`permanent`, `unlogged`), partition key
/// (`pg_get_partkeydef`), for a partition `PARTITION OF parent FOR VALUES ...`,
/// storage parameters (`reloptions`, sorted, as written: `off` and `false`
/// differ) and row level security.
async fn tables(client: &Client, except: &[String]) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "WITH {}
         SELECT r.kind, r.name,
                concat_ws(' ', CASE c.relpersistence WHEN 'u' THEN 'unlogged' ELSE 'permanent' END,
                          'PARTITION BY ' || pg_get_partkeydef(c.oid),
                          'PARTITION OF ' || h.inhparent::regclass::text || ' ' || pg_get_expr(c.relpartbound, c.oid),
                          'WITH (' || (SELECT string_agg(o, ', ' ORDER BY o) FROM unnest(c.reloptions) o) || ')',
                          CASE WHEN c.relrowsecurity THEN 'ROW LEVEL SECURITY' END,
                          CASE WHEN c.relforcerowsecurity THEN 'FORCE ROW LEVEL SECURITY' END),
                NULL,
                CASE WHEN h.inhparent IS NULL THEN 'schema' ELSE 'table' END,
                coalesce(h.inhparent::regclass::text, format('%I', r.nspname))
           FROM rel r JOIN pg_class c ON c.oid = r.oid
           LEFT JOIN pg_inherits h ON h.inhrelid = c.oid AND c.relispartition
          WHERE r.relkind IN ('r', 'p')",
        user_relations()
    );
    read(client, &sql, &[&except]).await
}

/// Columns of tables, `schema.table.column`: type with its modifier
/// (`format_type`), collation when not the type's, NOT NULL, default or
/// generation expression (`pg_get_expr`), identity. Not their position.
async fn columns(client: &Client, except: &[String]) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "WITH {}
         SELECT 'column', r.name || '.' || quote_ident(a.attname),
                concat_ws(' ', format_type(a.atttypid, a.atttypmod),
                          CASE WHEN a.attcollation <> t.typcollation
                               THEN 'COLLATE ' || format('%I.%I', cn.nspname, co.collname) END,
                          CASE WHEN a.attnotnull THEN 'NOT NULL' END,
                          CASE WHEN a.attgenerated = 's'
                               THEN 'GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ') STORED'
                               ELSE 'DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid) END,
                          CASE a.attidentity WHEN 'a' THEN 'GENERATED ALWAYS AS IDENTITY'
                                             WHEN 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY' END),
                NULL, r.kind, r.name
           FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
           JOIN pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_collation co ON co.oid = a.attcollation
           LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
           LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
          WHERE r.relkind IN ('r', 'p')",
        user_relations()
    );
    read(client, &sql, &[&except]).await
}

/// Constraints of tables, keyed `table: pg_get_constraintdef` and labelled
/// `table: name`. A partition's constraint belongs to its parent's: by
/// `conparentid` (keys, foreign keys), or by name (inherited CHECKs, which
/// have no `conparentid`).
async fn constraints(client: &Client, except: &[String]) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "WITH {}, con AS (
           SELECT k.oid, k.conrelid, k.conname, k.conislocal, k.conparentid, r.kind AS table_kind,
                  r.name AS table_name, r.name || ': ' || pg_get_constraintdef(k.oid) AS key,
                  pg_get_constraintdef(k.oid) AS def
             FROM rel r JOIN pg_constraint k ON k.conrelid = r.oid
            WHERE k.contype <> 'n')
         SELECT 'constraint', c.key, c.def, c.table_name || ': ' || quote_ident(c.conname),
                CASE WHEN p.key IS NULL THEN c.table_kind ELSE 'constraint' END, coalesce(p.key, c.table_name)
           FROM con c LEFT JOIN LATERAL (
                  SELECT p.key FROM con p WHERE p.oid = c.conparentid
                  UNION ALL
                  SELECT p.key FROM pg_inherits h JOIN con p ON p.conrelid = h.inhparent AND p.conname = c.conname
                   WHERE h.inhrelid = c.conrelid AND NOT c.conislocal AND c.conparentid = 0
                  LIMIT 1) p ON true",
        user_relations()
    );
    read(client, &sql, &[&except]).await
}

/// Indexes not backing a constraint, keyed by `pg_get_indexdef` with the
/// index's name cut out (`CREATE INDEX ON public.orders USING btree (note)`),
/// labelled `schema.index`; ` INVALID` appended to the definition of an
/// index a failed `CREATE INDEX CONCURRENTLY` left. A partition's index
/// belongs to its parent's (`pg_inherits`).
async fn indexes(client: &Client, except: &[String]) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "WITH {}, idx AS (
           SELECT i.indexrelid, i.indisvalid, r.kind AS table_kind, r.name AS table_name,
                  format('%I.%I', r.nspname, ic.relname) AS label,
                  overlay(d.def PLACING ' INDEX ON ' FROM position(d.head IN d.def) FOR length(d.head)) AS key
             FROM rel r JOIN pg_index i ON i.indrelid = r.oid JOIN pg_class ic ON ic.oid = i.indexrelid,
                  LATERAL (SELECT pg_get_indexdef(i.indexrelid) AS def,
                                  ' INDEX ' || quote_ident(ic.relname) || ' ON ' AS head) d
            WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                                 AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')))
         SELECT 'index', x.key, x.key || CASE WHEN x.indisvalid THEN '' ELSE ' INVALID' END, x.label,
                CASE WHEN p.key IS NULL THEN x.table_kind ELSE 'index' END, coalesce(p.key, x.table_name)
           FROM idx x LEFT JOIN pg_inherits h ON h.inhrelid = x.indexrelid
           LEFT JOIN idx p ON p.indexrelid = h.inhparent",
        user_relations()
    );
    read(client, &sql, &[&except]).await
}

/// Triggers not internal (not those of foreign keys), keyed `table: name`:
/// `pg_get_triggerdef`, and how it is enabled when not the default. A
/// partition's clone (13+) belongs to its parent's trigger (`pg_depend` P);
/// PostgreSQL 12 marks clones internal.
async fn triggers(client: &Client, except: &[String]) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "WITH {}, trg AS (
           SELECT t.oid, t.tgenabled, r.kind AS table_kind, r.name AS table_name,
                  r.name || ': ' || quote_ident(t.tgname) AS key
             FROM rel r JOIN pg_trigger t ON t.tgrelid = r.oid WHERE NOT t.tgisinternal)
         SELECT 'trigger', x.key,
                pg_get_triggerdef(x.oid) || CASE x.tgenabled WHEN 'D' THEN ' (disabled)'
                    WHEN 'R' THEN ' (enabled on replicas only)' WHEN 'A' THEN ' (enabled always)' ELSE '' END,
                NULL, CASE WHEN p.key IS NULL THEN x.table_kind ELSE 'trigger' END, coalesce(p.key, x.table_name)
           FROM trg x LEFT JOIN pg_depend d ON d.classid = 'pg_trigger'::regclass AND d.objid = x.oid
                AND d.refclassid = 'pg_trigger'::regclass AND d.deptype = 'P'
           LEFT JOIN trg p ON p.oid = d.refobjid",
        user_relations()
    );
    read(client, &sql, &[&except]).await
}

/// Sequences (`pg_sequence`): type, start, increment, bounds, cache, cycle
/// and the column owning them (serial: `pg_depend` a; identity: i), whose
/// table is then their parent. Not their current value.
async fn sequences(client: &Client, except: &[String]) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "WITH {}
         SELECT 'sequence', r.name,
                concat_ws(' ', format_type(s.seqtypid, NULL), 'START ' || s.seqstart, 'INCREMENT ' || s.seqincrement,
                          'MINVALUE ' || s.seqmin, 'MAXVALUE ' || s.seqmax, 'CACHE ' || s.seqcache,
                          CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END,
                          'OWNED BY ' || o.col || CASE WHEN o.deptype = 'i' THEN ' (identity)' ELSE '' END),
                NULL, CASE WHEN o.tbl IS NULL THEN 'schema' ELSE 'table' END, coalesce(o.tbl, format('%I', r.nspname))
           FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
           LEFT JOIN LATERAL (
                  SELECT d.refobjid::regclass::text AS tbl,
                         d.refobjid::regclass::text || '.' || quote_ident(a.attname) AS col, d.deptype
                    FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                   WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid
                     AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                   LIMIT 1) o ON true",
        user_relations()
    );
    read(client, &sql, &[&except]).await
}

/// Views and materialized views: their query (`pg_get_viewdef`, pretty).
async fn views(client: &Client, except: &[String]) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "WITH {}
         SELECT r.kind, r.name, pg_get_viewdef(r.oid, true), NULL, 'schema', format('%I', r.nspname)
           FROM rel r WHERE r.relkind IN ('v', 'm')",
        user_relations()
    );
    read(client, &sql, &[&except]).await
}

/// Each relation's owner (`relowner`) and privileges (`relacl` exploded,
/// sorted; NULL read as the default it stands for, `acldefault`).
async fn owners_and_privileges(client: &Client, except: &[String]) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "WITH {}
         SELECT 'owner', r.name, pg_get_userbyid(r.relowner)::text, NULL, r.kind, r.name FROM rel r
         UNION ALL
         SELECT 'privileges', r.name, {}, NULL, r.kind, r.name FROM rel r",
        user_relations(),
        privileges_sql("r.relacl", "CASE WHEN r.relkind = 'S' THEN 's' ELSE 'r' END::\"char\"", "r.relowner")
    );
    read(client, &sql, &[&except]).await
}

/// Functions and procedures, keyed `schema.name(argument types)`: kind,
/// arguments with names and defaults, result, language, volatility,
/// strictness, SECURITY DEFINER, SET options and an md5 of the body
/// (`prosrc`; from 14, a SQL-standard body through `pg_get_function_sqlbody`).
/// Aggregates are left out.
async fn functions(client: &Client, version: PgVersion) -> Result<Vec<SchemaEntry>, Error> {
    // pg_get_function_sqlbody does not exist before 14: naming it would fail to parse.
    let body = if version.at_least(14) { "coalesce(pg_get_function_sqlbody(p.oid), p.prosrc)" } else { "p.prosrc" };
    let sql = format!(
        "SELECT 'function', format('%I.%I', n.nspname, p.proname) || '(' || oidvectortypes(p.proargtypes) || ')',
                concat_ws(' ', CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'w' THEN 'window function'
                                              ELSE 'function' END,
                          '(' || pg_get_function_arguments(p.oid) || ')',
                          'RETURNS ' || pg_get_function_result(p.oid), 'LANGUAGE ' || quote_ident(l.lanname),
                          CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END,
                          CASE WHEN p.proisstrict THEN 'STRICT' END,
                          CASE WHEN p.prosecdef THEN 'SECURITY DEFINER' END,
                          'SET ' || array_to_string(p.proconfig, ', '),
                          'body md5 ' || md5({body})),
                NULL, 'schema', format('%I', n.nspname)
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
          WHERE p.prokind IN ('f', 'p', 'w') AND {USER_SCHEMA} AND {}",
        not_in_extension("pg_proc", "p.oid")
    );
    read(client, &sql, &[]).await
}

/// Enum types: their labels, in order (`enumsortorder`).
async fn enums(client: &Client) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "SELECT 'enum', format('%I.%I', n.nspname, t.typname),
                coalesce((SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                            FROM pg_enum e WHERE e.enumtypid = t.oid), ''),
                NULL, 'schema', format('%I', n.nspname)
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
          WHERE t.typtype = 'e' AND {USER_SCHEMA} AND {}",
        not_in_extension("pg_type", "t.oid")
    );
    read(client, &sql, &[]).await
}

/// Domains: base type with its modifier, collation when not the base
/// type's, default, NOT NULL and CHECK constraints (sorted, names left out).
async fn domains(client: &Client) -> Result<Vec<SchemaEntry>, Error> {
    let sql = format!(
        "SELECT 'domain', format('%I.%I', n.nspname, t.typname),
                concat_ws(' ', format_type(t.typbasetype, t.typtypmod),
                          CASE WHEN t.typcollation <> b.typcollation
                               THEN 'COLLATE ' || format('%I.%I', cn.nspname, co.collname) END,
                          'DEFAULT ' || pg_get_expr(t.typdefaultbin, 0),
                          CASE WHEN t.typnotnull THEN 'NOT NULL' END,
                          (SELECT string_agg(pg_get_constraintdef(k.oid), ' ' ORDER BY pg_get_constraintdef(k.oid))
                             FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype <> 'n')),
                NULL, 'schema', format('%I', n.nspname)
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_type b ON b.oid = t.typbasetype
           LEFT JOIN pg_collation co ON co.oid = t.typcollation
           LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
          WHERE t.typtype = 'd' AND {USER_SCHEMA} AND {}",
        not_in_extension("pg_type", "t.oid")
    );
    read(client, &sql, &[]).await
}
