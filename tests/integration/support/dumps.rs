//! Databases the tests restore, made once per test binary by real servers
//! and dumped in every format, and the server's own account of the locks a
//! statement takes. They live under cargo's target/tmp (CARGO_TARGET_TMPDIR),
//! remade by each test binary run, so no test leaves a directory in /tmp.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rehearse::backend::local::{find_binaries, LocalCluster, PgBin};
use rehearse::pg::RelationKind;
use rehearse::report::{LockSource, Report};
use rehearse::sys::process::ChildCommand;
use tokio_util::sync::CancellationToken;

use super::REPO;

/// A fresh, empty directory for one kind of fixture, readable by the
/// `postgres` user (the server runs as it when tests run as root).
fn fixture_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fixtures-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for d in [dir.parent().unwrap(), dir.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// A source database with owners, grants and awkward data, dumped in every
/// format once per test binary. Row counts come from the source server.
pub struct Dumps {
    pub dir: PathBuf,
    pub customers: i64,
    pub orders: i64,
}

impl Dumps {
    pub fn path(&self, format: &str) -> PathBuf {
        self.dir.join(format!("source.{format}"))
    }
}

const SOURCE_SQL: &str = r#"
CREATE ROLE app NOLOGIN;
CREATE ROLE "Read Only" NOLOGIN;
CREATE TABLE public.customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    meta jsonb
);
CREATE TABLE public.orders (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES public.customers (id),
    total numeric(10, 2) NOT NULL,
    note text
);
CREATE INDEX orders_customer_id_idx ON public.orders (customer_id);
SELECT setseed(0.42);
INSERT INTO public.customers (name, meta)
SELECT 'customer ' || g, jsonb_build_object('tier', g % 3) FROM generate_series(1, 3000) g;
INSERT INTO public.orders (id, customer_id, total, note)
SELECT g, 1 + (random() * 2999)::int, round((random() * 500)::numeric, 2),
       CASE WHEN g % 1000 = 0 THEN E'tab\there\nALTER TABLE x OWNER TO intruder;\\' END
  FROM generate_series(1, 12000) g;
ALTER TABLE public.customers OWNER TO app;
ALTER TABLE public.orders OWNER TO app;
GRANT SELECT ON public.customers, public.orders TO "Read Only";
-- History tables of other tools, as production would have them: Alembic is
-- part way through tests/fixtures/alembic_versions.
CREATE TABLE public.alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
INSERT INTO public.alembic_version VALUES ('r2_orders_note_index');
CREATE TABLE public.schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO public.schema_migrations VALUES (2, false);
CREATE TABLE public.flyway_schema_history (
    installed_rank int PRIMARY KEY, version varchar(50), description varchar(200),
    script varchar(1000) NOT NULL, success boolean NOT NULL
);
INSERT INTO public.flyway_schema_history VALUES
    (1, '1', 'a', 'V1__a.sql', true),
    (2, '1.1', 'b', 'V1_1__b.sql', true),
    (3, '2', 'c', 'V2__c.sql', false),
    (4, NULL, 'views', 'R__views.sql', true);
"#;

static DUMPS: OnceLock<Dumps> = OnceLock::new();

pub fn dumps() -> &'static Dumps {
    DUMPS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(make_dumps())
    })
}

async fn make_dumps() -> Dumps {
    let cancel = CancellationToken::new();
    let dir = fixture_dir("dumps");
    let (bin, cluster, env) = source_cluster(SOURCE_SQL, &cancel).await;
    let conn = cluster.conn().clone();
    let client = rehearse::sys::db::connect(&conn, &conn.dbname, "fixture").await.unwrap();
    let count = |t: &'static str| {
        let client = &client;
        async move { client.query_one(&format!("SELECT count(*) FROM {t}"), &[]).await.unwrap().get::<_, i64>(0) }
    };
    let (customers, orders) = (count("customers").await, count("orders").await);
    for (format, flag) in [("custom", "-Fc"), ("directory", "-Fd"), ("tar", "-Ft"), ("plain", "-Fp")] {
        ChildCommand::new(bin.tool("pg_dump"))
            .args([flag, "-f"])
            .arg(dir.join(format!("source.{format}")))
            .envs(env.clone())
            .run(&cancel)
            .await
            .expect("pg_dump works");
    }
    gzip(&dir.join("source.plain"), &dir.join("source.plain-gz"));
    cluster.stop().await.expect("source cluster stops");
    Dumps { dir, customers, orders }
}

/// A throwaway cluster for a fixture's source database, `sql` loaded into
/// it; the binaries, and the libpq environment that reaches the database.
async fn source_cluster(sql: &str, cancel: &CancellationToken) -> (PgBin, LocalCluster, Vec<(String, String)>) {
    let bin = find_binaries(None, cancel).await.expect("PostgreSQL binaries (run `make deps`)");
    let cluster = LocalCluster::start(bin.clone(), cancel).await.expect("source cluster starts");
    let env = cluster.conn().libpq_env(&cluster.conn().dbname, "fixture");
    ChildCommand::new(bin.tool("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .envs(env.clone())
        .run(cancel)
        .await
        .expect("source data loads");
    (bin, cluster, env)
}

/// `from`, gzip-compressed into `to` (a `pg_dump -Fp | gzip` dump).
fn gzip(from: &Path, to: &Path) {
    let plain = std::fs::read(from).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    std::fs::write(to, gz.finish().unwrap()).unwrap();
}

/// The demo schema (scenarios/demo migrations 0001 and 0002) with five rows
/// per table, dumped once per test binary: every statement on it takes about
/// a millisecond.
pub fn tiny_demo_dump() -> &'static PathBuf {
    static TINY: OnceLock<PathBuf> = OnceLock::new();
    TINY.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let cancel = CancellationToken::new();
            let dir = fixture_dir("tiny");
            let bin = find_binaries(None, &cancel).await.unwrap();
            let cluster = LocalCluster::start(bin.clone(), &cancel).await.unwrap();
            let conn = cluster.conn().clone();
            let psql = |args: Vec<String>| {
                ChildCommand::new(bin.tool("psql"))
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
                    .args(args)
                    .envs(conn.libpq_env(&conn.dbname, "fixture"))
                    .run(&cancel)
            };
            psql(vec!["-c".into(), "CREATE ROLE app NOLOGIN; CREATE ROLE readonly NOLOGIN;".into()]).await.unwrap();
            for file in ["0001_create_schema.sql", "0002_add_events.sql"] {
                psql(vec!["-f".into(), format!("{REPO}/scenarios/demo/migrations/{file}")]).await.unwrap();
            }
            psql(vec!["-c".into(), TINY_ROWS.into()]).await.expect("tiny rows load");
            let dump = dir.join("tiny.dump");
            ChildCommand::new(bin.tool("pg_dump"))
                .args(["-Fc", "-f"])
                .arg(&dump)
                .envs(conn.libpq_env(&conn.dbname, "fixture"))
                .run(&cancel)
                .await
                .unwrap();
            cluster.stop().await.unwrap();
            dump
        })
    })
}

const TINY_ROWS: &str = "
INSERT INTO public.users (email, full_name, country) SELECT 'u' || g || '@x.test', 'User ' || g, 'DE' FROM generate_series(1, 5) g;
INSERT INTO public.coupons (code, percent_off) SELECT 'C' || g, 10 FROM generate_series(1, 5) g;
INSERT INTO public.orders (user_id, status) SELECT g, 'paid' FROM generate_series(1, 5) g;
INSERT INTO public.order_items (order_id, sku, quantity, unit_price_cents) SELECT g, 'sku' || g, 1, 100 FROM generate_series(1, 5) g;
INSERT INTO public.events (user_id, kind) SELECT g, 'login' FROM generate_series(1, 5) g;
";

/// Dumps of a database that uses PostGIS, which this machine's server does
/// not have: custom (`custom`), plain (`plain`) and gzip'd plain
/// (`plain-gz`), made once per test binary. PostGIS is not installed here,
/// so the source database uses pg_trgm (a contrib extension) and every
/// `pg_trgm` in the dumps becomes `postgis`: the same length, so the custom
/// archive's length-prefixed strings stay whole (made with -Z0, so its data
/// blocks hold no compressed bytes that could spell the name by chance).
/// To a server without PostGIS they are what production's dumps are.
pub fn dumps_needing_postgis() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let cancel = CancellationToken::new();
            let dir = fixture_dir("postgis");
            let (bin, cluster, env) = source_cluster(POSTGIS_LIKE_SQL, &cancel).await;
            for (format, flag) in [("custom", "-Fc"), ("plain", "-Fp")] {
                let path = dir.join(format);
                ChildCommand::new(bin.tool("pg_dump"))
                    .args([flag, "-Z0", "-f"])
                    .arg(&path)
                    .envs(env.clone())
                    .run(&cancel)
                    .await
                    .expect("pg_dump works");
                let mut bytes = std::fs::read(&path).unwrap();
                let mut at = 0;
                while let Some(found) = bytes[at..].windows(7).position(|w| w == b"pg_trgm") {
                    bytes[at + found..at + found + 7].copy_from_slice(b"postgis");
                    at += found + 7;
                }
                std::fs::write(&path, bytes).unwrap();
            }
            gzip(&dir.join("plain"), &dir.join("plain-gz"));
            cluster.stop().await.unwrap();
            dir
        })
    })
}

const POSTGIS_LIKE_SQL: &str = "
CREATE EXTENSION pg_trgm;
CREATE TABLE public.places (id bigint PRIMARY KEY, name text NOT NULL);
CREATE INDEX places_name_trgm ON public.places USING gin (name gin_trgm_ops);
INSERT INTO public.places SELECT g, 'place ' || g FROM generate_series(1, 100) g;
";

/// A throwaway cluster of the test's own (stopped when dropped) with `dump`
/// restored into its `rehearse` database, `application_name` naming the restore.
pub async fn restored_cluster(dump: &Path, application_name: &str) -> LocalCluster {
    let cancel = CancellationToken::new();
    let bin = find_binaries(None, &cancel).await.unwrap();
    let cluster = LocalCluster::start(bin.clone(), &cancel).await.unwrap();
    let conn = cluster.conn();
    ChildCommand::new(bin.tool("pg_restore"))
        .args(["--no-owner", "--no-acl", "-j", "2", "-d", &conn.dbname])
        .arg(dump)
        .envs(conn.libpq_env(&conn.dbname, application_name))
        .deadline(Duration::from_secs(300))
        .run(&cancel)
        .await
        .unwrap_or_else(|e| panic!("{} does not restore: {}", dump.display(), e));
    cluster
}

/// (relation, mode) pairs, as pg_locks and the report spell them.
pub type LockSet = std::collections::BTreeSet<(String, String)>;

/// Ground truth from the server: restores `dump` into a cluster of its own
/// and applies the forms in order, each in a transaction: after the form,
/// before COMMIT, it reads the relation locks its session holds from
/// pg_locks, naming dropped relations from pg_class as it was before the form.
pub fn server_lock_truth(dump: &Path, forms: &[&str]) -> Vec<LockSet> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = restored_cluster(dump, "truth").await;
        let conn = cluster.conn().clone();
        let client = rehearse::sys::db::connect(&conn, &conn.dbname, "truth").await.unwrap();
        let names = "SELECT c.oid::int8, format('%I.%I', n.nspname, c.relname) FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg_toast%'";
        let mut out = Vec::new();
        for form in forms {
            let before: std::collections::HashMap<i64, String> =
                client.query(names, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
            client.batch_execute("BEGIN").await.unwrap();
            client.batch_execute(form).await.unwrap_or_else(|e| panic!("{form}: {e:?}"));
            let now: std::collections::HashMap<i64, String> =
                client.query(names, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
            let rows = client
                .query(
                    "SELECT l.relation::int8, l.mode FROM pg_locks l
                      WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
                        AND l.relation::int8 >= 16384",
                    &[],
                )
                .await
                .unwrap();
            let mut set = LockSet::new();
            for r in rows {
                let oid: i64 = r.get(0);
                if let Some(name) = now.get(&oid).or_else(|| before.get(&oid)) {
                    set.insert((name.clone(), r.get(1)));
                }
            }
            out.push(set);
            client.batch_execute("COMMIT").await.unwrap();
        }
        cluster.stop().await.unwrap();
        out
    })
}

/// Per migration, the (table, mode) pairs read from pg_locks right after
/// each statement: exact, unlike what the sampler happens to catch.
pub fn table_lock_modes(report: &Report) -> Vec<LockSet> {
    report
        .migrations
        .iter()
        .map(|m| {
            m.locks
                .iter()
                .filter(|l| l.kind == RelationKind::Table && l.source.contains(&LockSource::Statement))
                .map(|l| (l.relation.clone(), l.mode.as_str().to_string()))
                .collect()
        })
        .collect()
}

/// The migrations of scenarios/demo that snapshots/demo.dump has not
/// applied yet (it is at 0002), in order.
pub const DEMO_PENDING: [&str; 8] = [
    "0003_create_coupon_redemptions",
    "0004_index_events_user_id",
    "0005_add_users_last_seen_at",
    "0006_add_orders_public_id",
    "0007_widen_order_items_quantity",
    "0008_fk_events_user",
    "0009_backfill_last_seen_at",
    "0010_index_orders_created_at_concurrently",
];
