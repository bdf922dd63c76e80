//! Drift's comparison on real catalogs: two databases on one server built
//! from the same SQL, production then changed out of band, each read by
//! `schema_snapshot` and compared as the drift stage compares them.

use rehearse::backend::local::{find_binaries, LocalCluster};
use rehearse::catalog::{schema_snapshot, SchemaEntry, SchemaEntryKind};
use rehearse::drift::{compare, Ignore};
use rehearse::pg::DriftKind;
use rehearse::report::{DriftCause, DriftFinding};
use tokio_util::sync::CancellationToken;

/// The history tables of three migration tools: never compared.
const HISTORY_TABLES: &[&str] =
    &["public.alembic_version", "public.rehearse_schema_migrations", "public.flyway_schema_history"];

/// A schema with one of every kind the snapshot reads, and the history tables.
const SCHEMA: &str = r#"
CREATE EXTENSION citext;
CREATE EXTENSION pg_trgm;
CREATE SCHEMA billing;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive_amount AS numeric(12,2) DEFAULT 0 NOT NULL CHECK (VALUE >= 0);
CREATE SEQUENCE billing.invoice_numbers START 1000 INCREMENT 5;
CREATE TABLE customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email citext NOT NULL UNIQUE,
    name text COLLATE "C",
    mood mood DEFAULT 'ok');
CREATE TABLE orders (
    id bigserial,
    customer_id bigint NOT NULL REFERENCES customers (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    total positive_amount,
    total_with_tax numeric GENERATED ALWAYS AS (total * 1.2) STORED,
    note text,
    PRIMARY KEY (id, created_at),
    CONSTRAINT orders_total_check CHECK (total < 1000000)
) PARTITION BY RANGE (created_at);
CREATE TABLE orders_2024 PARTITION OF orders FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE orders_2025 PARTITION OF orders FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX customers_name_trgm ON customers USING gin (name gin_trgm_ops);
CREATE UNLOGGED TABLE billing.events (id int, payload jsonb) WITH (fillfactor = 70, autovacuum_enabled = off);
ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.note := coalesce(NEW.note, ''); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch();
CREATE PROCEDURE billing.close_month(m date) LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION order_count(c bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
SELECT count(*) FROM orders WHERE customer_id = c $$;
CREATE FUNCTION add_one(i int) RETURNS int LANGUAGE sql IMMUTABLE RETURN i + 1;
CREATE VIEW customer_totals AS
    SELECT c.id, sum(o.total) AS total FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id;
CREATE MATERIALIZED VIEW order_days AS SELECT created_at::date AS day, count(*) FROM orders GROUP BY 1;
CREATE INDEX order_days_day ON order_days (day);
GRANT SELECT ON customers TO drift_reader;
GRANT USAGE ON SCHEMA billing TO drift_reader;
CREATE TABLE rehearse_schema_migrations (version text PRIMARY KEY, applied_at timestamptz DEFAULT now());
CREATE TABLE alembic_version (version_num varchar(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
CREATE TABLE flyway_schema_history (installed_rank serial PRIMARY KEY, version varchar(50));
"#;

/// The history tables differ between the two databases in every way the
/// snapshot could see: none of it may be a finding.
const PRODUCTION_HISTORY_TABLES: &str = "
CREATE INDEX ON alembic_version (lower(version_num));
GRANT SELECT ON rehearse_schema_migrations TO drift_reader;
ALTER TABLE flyway_schema_history ADD COLUMN checksum int;
ALTER SEQUENCE flyway_schema_history_installed_rank_seq INCREMENT 2;
";

/// Builds `production` and `history` on one throwaway server from
/// `schema` plus each one's own SQL, and reads both snapshots.
fn snapshots(production_sql: &str, history_sql: &str) -> (Vec<SchemaEntry>, Vec<SchemaEntry>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cancel = CancellationToken::new();
        let cluster = LocalCluster::start(find_binaries(None, &cancel).await.unwrap(), &cancel).await.unwrap();
        let conn = cluster.conn().clone();
        let admin = rehearse::sys::db::connect(&conn, "postgres", "drift-test").await.unwrap();
        // CREATE DATABASE refuses a multi-statement string (an implicit transaction).
        for sql in ["CREATE ROLE drift_reader", "CREATE DATABASE production", "CREATE DATABASE history"] {
            admin.batch_execute(sql).await.unwrap();
        }
        for (database, own) in [("production", production_sql), ("history", history_sql)] {
            let client = rehearse::sys::db::connect(&conn, database, "drift-test").await.unwrap();
            client.batch_execute(SCHEMA).await.unwrap_or_else(|e| panic!("the schema loads into {database}: {e}"));
            client.batch_execute(own).await.unwrap_or_else(|e| panic!("{database}'s own SQL runs: {e}"));
        }
        // Production's sessions print names and constants otherwise (set
        // after the build: a timestamptz bound is read in the TimeZone of
        // the session that creates it); the snapshot must not care.
        admin
            .batch_execute(
                "ALTER DATABASE production SET search_path = public, billing;
                 ALTER DATABASE production SET TimeZone = 'Pacific/Auckland'",
            )
            .await
            .unwrap();
        let mut snapshots = Vec::new();
        for database in ["production", "history"] {
            let client = rehearse::sys::db::connect(&conn, database, "drift-test").await.unwrap();
            snapshots.push(schema_snapshot(&client, HISTORY_TABLES).await.unwrap());
            let after: String = client.query_one("SELECT current_setting('search_path')", &[]).await.unwrap().get(0);
            let expected = if database == "production" { "public, billing" } else { "\"$user\", public" };
            assert_eq!(after, expected, "the snapshot leaves the session's settings as they were");
        }
        cluster.stop().await.unwrap();
        let history = snapshots.pop().unwrap();
        (snapshots.pop().unwrap(), history)
    })
}

/// (cause, kind, object) of each finding, in the comparison's order.
fn found(findings: &[DriftFinding]) -> Vec<(DriftCause, DriftKind, &str)> {
    findings.iter().map(|f| (f.cause, f.kind, f.object.as_str())).collect()
}

fn definition<'a>(entries: &'a [SchemaEntry], kind: SchemaEntryKind, name: &str) -> &'a str {
    let entry = entries.iter().find(|e| e.kind == kind && e.name == name);
    &entry.unwrap_or_else(|| panic!("no {} {name} in {entries:#?}", kind.as_str())).definition
}

#[test]
fn the_same_sql_gives_no_findings_on_every_kind_of_object() {
    let (production, history) = snapshots(PRODUCTION_HISTORY_TABLES, "");
    let comparison = compare(&production, &history, &Ignore::default());
    assert_eq!(comparison.findings, vec![], "no false positives");
    for (kind, count) in &comparison.checked {
        assert!(*count > 0, "no {kind} checked: the schema should have one of each: {:#?}", comparison.checked);
    }

    let mentions_history_table = |e: &&SchemaEntry| {
        ["alembic_version", "rehearse_schema_migrations", "flyway_schema"].iter().any(|t| format!("{e:?}").contains(t))
    };
    assert_eq!(production.iter().filter(mentions_history_table).collect::<Vec<_>>(), Vec::<&SchemaEntry>::new());
    assert!(!production.iter().any(|e| e.name.contains("similarity")), "pg_trgm's own functions are the extension's");

    // What the definitions hold, and what they leave out (oids, column order).
    assert_eq!(
        definition(&production, SchemaEntryKind::Column, "public.orders.total_with_tax"),
        "numeric GENERATED ALWAYS AS (((total)::numeric * 1.2)) STORED"
    );
    assert_eq!(
        definition(&production, SchemaEntryKind::Column, "public.customers.id"),
        "bigint NOT NULL GENERATED ALWAYS AS IDENTITY"
    );
    assert_eq!(
        definition(&production, SchemaEntryKind::Column, "public.customers.name"),
        r#"text COLLATE pg_catalog."C""#
    );
    assert_eq!(
        definition(&production, SchemaEntryKind::Table, "billing.events"),
        "unlogged WITH (autovacuum_enabled=off, fillfactor=70)"
    );
    assert_eq!(
        definition(&production, SchemaEntryKind::Table, "public.orders"),
        "permanent PARTITION BY RANGE (created_at)"
    );
    assert_eq!(
        definition(&production, SchemaEntryKind::Table, "public.orders_2024"),
        "permanent PARTITION OF public.orders FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')"
    );
    assert_eq!(
        definition(&production, SchemaEntryKind::Privileges, "public.customers"),
        "(owner): DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE; drift_reader: SELECT"
    );
    assert_eq!(definition(&production, SchemaEntryKind::Enum, "public.mood"), "'sad', 'ok', 'happy'");
    let index = production.iter().find(|e| e.label.as_deref() == Some("public.orders_customer_idx")).unwrap();
    assert_eq!(index.name, "CREATE INDEX ON ONLY public.orders USING btree (customer_id)");
}

#[test]
fn out_of_band_changes_are_each_found_once_with_their_kind_and_cause() {
    let out_of_band = "
        CREATE INDEX orders_note_idx ON orders (note);
        ALTER TABLE customers ALTER COLUMN mood SET DEFAULT 'happy';
        ALTER TYPE mood ADD VALUE 'ecstatic';
        CREATE OR REPLACE FUNCTION order_count(c bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
        SELECT count(*) FROM orders WHERE customer_id = c AND total > 0 $$;
        ALTER TABLE orders RENAME CONSTRAINT orders_total_check TO orders_total_limit;
    ";
    let (production, history) = snapshots(&format!("{PRODUCTION_HISTORY_TABLES}{out_of_band}"), "");
    let comparison = compare(&production, &history, &Ignore::default());
    assert_eq!(
        found(&comparison.findings),
        vec![
            (DriftCause::OnlyInProduction, DriftKind::Index, "public.orders_note_idx"),
            (DriftCause::Different, DriftKind::Column, "public.customers.mood"),
            (DriftCause::Different, DriftKind::ConstraintName, "public.orders: orders_total_check"),
            (DriftCause::Different, DriftKind::Enum, "public.mood"),
            (DriftCause::Different, DriftKind::Function, "public.order_count(bigint)"),
        ],
        "{:#?}",
        comparison.findings
    );
    let by_kind = |kind: DriftKind| comparison.findings.iter().find(|f| f.kind == kind).unwrap();
    assert!(by_kind(DriftKind::Index).likely.ends_with("covers its 2 indexes"), "the partitions' copies fold in");
    assert_eq!(by_kind(DriftKind::Column).production.as_deref(), Some("public.mood DEFAULT 'happy'::public.mood"));
    assert_eq!(by_kind(DriftKind::Column).history.as_deref(), Some("public.mood DEFAULT 'ok'::public.mood"));
    assert_eq!(by_kind(DriftKind::ConstraintName).production.as_deref(), Some("public.orders: orders_total_limit"));
    assert!(by_kind(DriftKind::Enum).likely.contains("ADD VALUE by hand"), "{}", by_kind(DriftKind::Enum).likely);
    assert!(
        by_kind(DriftKind::Function).likely.contains("edited after it ran"),
        "{}",
        by_kind(DriftKind::Function).likely
    );

    let ignore = Ignore::parse(&["index:public.orders_*".into(), "enum".into()]).unwrap();
    let kinds: Vec<DriftKind> = compare(&production, &history, &ignore).findings.into_iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [DriftKind::Column, DriftKind::ConstraintName, DriftKind::Function]);
}

#[test]
fn a_table_the_history_has_and_production_dropped_is_one_finding() {
    let refunds = "
        CREATE TABLE refunds (
            id serial PRIMARY KEY,
            order_id bigint NOT NULL,
            amount numeric NOT NULL CHECK (amount > 0),
            reason text);
        CREATE INDEX refunds_order_idx ON refunds (order_id);
        GRANT SELECT ON refunds TO drift_reader;
    ";
    let (production, history) = snapshots(PRODUCTION_HISTORY_TABLES, refunds);
    let comparison = compare(&production, &history, &Ignore::default());
    assert_eq!(found(&comparison.findings), vec![(DriftCause::OnlyInHistory, DriftKind::Table, "public.refunds")]);
    assert_eq!(
        comparison.findings[0].likely,
        "a migration stamped but never run in production, or the table dropped out of band; \
         this finding covers its 4 columns, 2 constraints, 1 index and 1 sequence"
    );
}
