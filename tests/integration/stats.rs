//! `rehearse stats` against real servers: a production-like database (the
//! source fixture restored, plus a TOASTed table, a partitioned table, a
//! materialized view, quoted names and an unlogged table) on a server the
//! test owns, read as a role with no privilege on any table; every relation
//! the server has is in the file with the server's own sizes; it writes no
//! WAL; it works on a hot standby; bad input is exit 3, and a server that
//! cannot be reached, refuses the role or keeps a relation locked past
//! --timeout exit 4, each saying what to do and never showing the password.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use rehearse::estimate::stats::{ProductionStats, DDL_SETTINGS, STATS_SCHEMA};
use rehearse::pg::RelationKind;
use rehearse::sys::db::ConnInfo;
use tokio_postgres::Client;

use crate::support::{dumps, Certs, HotStandby, OwnedServer, Sandbox};

const PASSWORD: &str = "stats-s3cret-pw";

/// What production has beyond the fixture's tables: a table whose rows are
/// TOASTed (incompressible text), a partitioned table with a partitioned
/// index, a materialized view, names that need quoting, an unlogged table,
/// and the roles `reader` (LOGIN, CONNECT and pg_read_all_stats only) and
/// `bare` (LOGIN and CONNECT only).
const PRODUCTION_SQL: &str = r#"
CREATE TABLE public.documents (id int PRIMARY KEY, body text);
INSERT INTO public.documents
SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 100) i)
  FROM generate_series(1, 300) g;
CREATE TABLE public.events (id bigint, at date NOT NULL, kind text) PARTITION BY RANGE (at);
CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.events_2027 PARTITION OF public.events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE INDEX events_at_idx ON public.events (at);
INSERT INTO public.events SELECT g, date '2026-01-01' + g % 700, 'login' FROM generate_series(1, 5000) g;
CREATE MATERIALIZED VIEW public.customer_totals AS
SELECT customer_id, sum(total) AS total FROM public.orders GROUP BY customer_id;
CREATE UNIQUE INDEX customer_totals_customer_id ON public.customer_totals (customer_id);
CREATE SCHEMA "Sales Data";
CREATE TABLE "Sales Data"."Quarterly Figures" (quarter int PRIMARY KEY, amount numeric);
INSERT INTO "Sales Data"."Quarterly Figures" SELECT g, g * 10 FROM generate_series(1, 40) g;
CREATE UNLOGGED TABLE public.sessions (id int PRIMARY KEY, data text);
INSERT INTO public.sessions SELECT g, 'x' FROM generate_series(1, 100) g;
REVOKE CONNECT ON DATABASE app FROM PUBLIC;
CREATE ROLE reader LOGIN PASSWORD 'stats-s3cret-pw' IN ROLE pg_read_all_stats;
CREATE ROLE bare LOGIN PASSWORD 'stats-s3cret-pw';
GRANT CONNECT ON DATABASE app TO reader, bare;
"#;

/// Every relation the server has that `rehearse stats` must list, found
/// another way than it does: user objects have oids from FirstNormalObjectId
/// (16384) up, whatever initdb made (catalogs, information_schema, their
/// TOAST tables) is below; other sessions' temporary schemas are left out.
const TRUTH_SQL: &str = "
SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text,
       pg_relation_size(c.oid), pg_total_relation_size(c.oid),
       (SELECT format('%I.%I', tn.nspname, t.relname) FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
          JOIN pg_namespace tn ON tn.oid = t.relnamespace WHERE i.indexrelid = c.oid),
       (SELECT format('%I.%I', tn.nspname, t.relname) FROM pg_class t
          JOIN pg_namespace tn ON tn.oid = t.relnamespace WHERE t.reltoastrelid = c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid >= 16384 AND c.relkind IN ('r', 'p', 'i', 'I', 'm', 't')
   AND n.nspname !~ '^pg_(toast_)?temp_'";

/// A relation as the server itself describes it.
#[derive(Debug, Clone, PartialEq)]
struct Truth {
    kind: RelationKind,
    bytes: i64,
    total_bytes: i64,
    table: Option<String>,
}

/// A server of the test's own holding database `app`, production-like.
struct Production {
    server: OwnedServer,
    rt: tokio::runtime::Runtime,
}

impl Production {
    fn start() -> Production {
        let server = OwnedServer::start();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let production = Production { server, rt };
        production.sql("postgres", "CREATE DATABASE app");
        let restore = Command::new(bin_dir().join("pg_restore"))
            .args(["--no-owner", "--no-acl", "-d", "app"])
            .arg(dumps().path("custom"))
            .envs(production.server.conn.libpq_env("app", "test"))
            .output()
            .unwrap();
        assert!(restore.status.success(), "pg_restore: {}", String::from_utf8_lossy(&restore.stderr));
        production.sql("app", PRODUCTION_SQL);
        // Sizes compared with the server's must not change under the test:
        // no autovacuum (it would add visibility maps, or truncate) on the test's own server.
        production.sql("postgres", "ALTER SYSTEM SET autovacuum = off");
        production.sql("postgres", "SELECT pg_reload_conf()");
        production.sql("app", "VACUUM ANALYZE");
        production
    }

    fn conn(&self, user: &str, dbname: &str) -> ConnInfo {
        self.server.role(user, PASSWORD, dbname)
    }

    /// The superuser's connection to `dbname`.
    fn client(&self, dbname: &str) -> Client {
        self.rt.block_on(rehearse::sys::db::connect(&self.server.conn, dbname, "test")).unwrap()
    }

    /// Runs `sql` (statements that may not run in a transaction block one at a time).
    fn sql(&self, dbname: &str, sql: &str) {
        let client = self.client(dbname);
        self.rt.block_on(client.batch_execute(sql)).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    fn truth(&self, client: &Client) -> BTreeMap<String, Truth> {
        truth(&self.rt, client)
    }
}

fn truth(rt: &tokio::runtime::Runtime, client: &Client) -> BTreeMap<String, Truth> {
    let rows = rt.block_on(client.query(TRUTH_SQL, &[])).unwrap();
    rows.iter()
        .map(|r| {
            let kind = RelationKind::from_relkind(r.get(1));
            let total: i64 = r.get(3);
            let truth = Truth {
                kind,
                bytes: r.get(2),
                total_bytes: match kind {
                    RelationKind::Table | RelationKind::MaterializedView => total,
                    _ => r.get(2),
                },
                table: r.get::<_, Option<String>>(4).or(r.get(5)),
            };
            (r.get(0), truth)
        })
        .collect()
}

fn bin_dir() -> PathBuf {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    rt.block_on(rehearse::backend::local::find_binaries(None, &cancel)).unwrap().dir
}

fn url(conn: &ConnInfo) -> String {
    format!("postgres://{}:{}@{}:{}/{}", conn.user, conn.password.expose(), conn.host, conn.port, conn.dbname)
}

/// Runs `rehearse stats --url URL --out stats.json` in `sandbox`: exit 0, the
/// file a rehearse.stats/v1 the estimate's loader accepts, the password nowhere.
fn read_stats(sandbox: &Sandbox, conn: &ConnInfo) -> ProductionStats {
    read_stats_with(sandbox, conn, "")
}

/// [`read_stats`] with `query` (`?sslmode=...`) after the URL.
fn read_stats_with(sandbox: &Sandbox, conn: &ConnInfo, query: &str) -> ProductionStats {
    let out_file = sandbox.path().join("stats.json");
    let url = format!("{}{query}", url(conn));
    let out = sandbox.rehearse(&["stats", "--url", &url, "--out", out_file.to_str().unwrap()]);
    out.assert_code(0);
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "with --out, nothing on stdout: {}", out.stdout);
    assert!(out.stderr.contains("relations") && out.stderr.contains("wrote"), "{}", out.stderr);
    let stats = ProductionStats::load(&out_file).unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(stats.schema, STATS_SCHEMA);
    assert!(humantime::parse_rfc3339(&stats.taken_at).is_ok(), "{}", stats.taken_at);
    assert_eq!(stats.settings.keys().map(String::as_str).collect::<BTreeSet<_>>(), DDL_SETTINGS.into());
    assert!(stats.settings.values().all(|v| !v.is_empty()), "{:?}", stats.settings);
    let names: Vec<&str> = stats.relations.iter().map(|r| r.relation.as_str()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted by name, each once: {names:?}");
    stats
}

/// Every relation of `truth` is in `stats` and nothing else, as the server describes it.
fn assert_matches_server(stats: &ProductionStats, truth: &BTreeMap<String, Truth>) {
    let listed: BTreeMap<String, Truth> = stats
        .relations
        .iter()
        .map(|r| {
            let t = Truth { kind: r.kind, bytes: r.bytes, total_bytes: r.total_bytes, table: r.table.clone() };
            (r.relation.clone(), t)
        })
        .collect();
    let (ours, theirs): (BTreeSet<_>, BTreeSet<_>) = (listed.keys().collect(), truth.keys().collect());
    assert_eq!(ours, theirs, "the relations listed are the server's");
    for (name, t) in truth {
        assert_eq!(&listed[name], t, "{name}");
    }
}

#[test]
fn stats_list_every_relation_with_the_servers_sizes_for_a_role_with_no_table_privilege() {
    let production = Production::start();
    let sandbox = Sandbox::new();
    // Another session's temporary table, open while stats run: not production's.
    let other = production.client("app");
    production.rt.block_on(other.batch_execute("CREATE TEMP TABLE scratch (x text PRIMARY KEY)")).unwrap();

    let reader = production.conn("reader", "app");
    let denied = production.rt.block_on(async {
        let client = rehearse::sys::db::connect(&reader, "app", "test").await.unwrap();
        client.query("SELECT 1 FROM public.orders LIMIT 1", &[]).await.unwrap_err()
    });
    assert_eq!(denied.code(), Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "{denied:?}");

    let stats = read_stats(&sandbox, &reader);
    let truth = production.truth(&production.client("app"));
    assert_matches_server(&stats, &truth);
    assert_eq!((stats.database.as_str(), stats.in_recovery), ("app", false));
    let version: String = production
        .rt
        .block_on(production.client("app").query_one("SELECT current_setting('server_version')", &[]))
        .unwrap()
        .get(0);
    assert!(version.starts_with(&stats.server_version), "{version} vs {}", stats.server_version);

    let kinds: BTreeSet<RelationKind> = stats.relations.iter().map(|r| r.kind).collect();
    use RelationKind::*;
    for kind in [Table, PartitionedTable, Index, PartitionedIndex, MaterializedView, ToastTable] {
        assert!(kinds.contains(&kind), "a {kind} is listed: {kinds:?}");
    }
    let get = |name: &str| stats.relation(name).unwrap_or_else(|| panic!("{name} is listed"));
    let (orders, customers) = (get("public.orders"), get("public.customers"));
    assert_eq!((orders.rows, customers.rows), (dumps().orders, dumps().customers), "reltuples after ANALYZE");
    assert!(orders.total_bytes > orders.bytes && orders.pages * 8192 == orders.bytes, "{orders:?}");
    assert_eq!(get("public.orders_customer_id_idx").table.as_deref(), Some("public.orders"));
    assert_eq!(get("public.events").bytes + get("public.events").total_bytes, 0, "a partitioned parent has no storage");
    assert_eq!(get("public.events_at_idx").table.as_deref(), Some("public.events"));
    assert_eq!(get(r#""Sales Data"."Quarterly Figures""#).rows, 40, "names quoted as format('%I.%I') does");
    let documents_toast =
        stats.relations.iter().find(|r| r.table.as_deref() == Some("public.documents") && r.kind == ToastTable);
    assert!(documents_toast.is_some_and(|t| t.bytes > 0), "public.documents' rows are TOASTed: {documents_toast:?}");
    assert!(!stats.relations.iter().any(|r| r.relation.contains("pg_temp") || r.relation.contains("scratch")));
    let system = |name: &str| name.starts_with("pg_catalog.") || name.starts_with("information_schema.");
    assert!(!stats.relations.iter().any(|r| system(&r.relation) || r.table.as_deref().is_some_and(system)));

    // pg_read_all_stats adds nothing rehearse stats needs: LOGIN and CONNECT read the same.
    let bare = read_stats(&sandbox, &production.conn("bare", "app"));
    let sizes = |s: &ProductionStats| s.relations.iter().map(|r| (r.relation.clone(), r.bytes)).collect::<Vec<_>>();
    assert_eq!(sizes(&bare), sizes(&stats));
    drop(other);
}

#[test]
fn stats_write_no_wal_on_a_primary() {
    let production = Production::start();
    let sandbox = Sandbox::new();
    // A quiet server (no autovacuum, see Production::start) with a
    // checkpoint behind it, and its catalogs vacuumed: any query that reads
    // a catalog page holding dead rows (left by the DDL above) may prune
    // them, which PostgreSQL WAL-logs (Heap2 PRUNE). That is the server
    // tidying up after earlier writers, as it would for psql's \d, and
    // without this VACUUM this test sees it; docs/cli.md says so.
    for sql in ["CREATE EXTENSION pg_walinspect", "VACUUM", "CHECKPOINT"] {
        production.sql("app", sql);
    }
    let wal = Wal { production: &production, client: production.client("app") };
    let before = wal.insert_position();
    read_stats(&sandbox, &production.conn("reader", "app"));
    let after = wal.insert_position();
    let written = wal.records_not_background(&before, &after);
    assert!(written.is_empty(), "rehearse stats wrote WAL between {before} and {after}: {written:?}");

    // Over TLS too (a hostssl-only server, its CA verified).
    let certs = Certs::make();
    production.server.enable_tls(&certs, "hostssl all all 127.0.0.1/32 scram-sha-256");
    let verified = format!("?sslmode=verify-ca&sslrootcert={}", certs.path_str("ca.crt"));
    let before = wal.insert_position();
    read_stats_with(&sandbox, &production.conn("reader", "app"), &verified);
    let after = wal.insert_position();
    let written = wal.records_not_background(&before, &after);
    assert!(written.is_empty(), "rehearse stats over TLS wrote WAL between {before} and {after}: {written:?}");

    // The check sees a session's write (else it would prove nothing).
    let before = wal.insert_position();
    production.sql("app", "INSERT INTO public.sessions VALUES (1000, 'written')");
    let after = wal.insert_position();
    assert!(!wal.records_not_background(&before, &after).is_empty(), "an INSERT between {before} and {after}");
}

/// The WAL of a server, read back with pg_walinspect (PostgreSQL 15+).
struct Wal<'a> {
    production: &'a Production,
    client: Client,
}

impl Wal<'_> {
    fn insert_position(&self) -> String {
        let row = self.production.rt.block_on(self.client.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]));
        row.unwrap().get(0)
    }

    /// WAL records from `before` to `after` that a session writes (a
    /// commit, a heap change, a full-page image for a hint bit, a pruning),
    /// as "resource_manager record_type". An idle server writes some WAL of
    /// its own: the background writer logs the running transactions
    /// (Standby RUNNING_XACTS) up to 15 s after a checkpoint, and a timed
    /// checkpoint may start. So "the insert position did not move" would be
    /// a flaky check, and "nothing in between is a session's record" is the
    /// sound one.
    fn records_not_background(&self, before: &str, after: &str) -> Vec<String> {
        if before == after {
            return Vec::new();
        }
        // pg_walinspect reads flushed WAL only; a checkpoint flushes it.
        self.production.sql("app", "CHECKPOINT");
        let rows = self.production.rt.block_on(self.client.query(
            "SELECT resource_manager || ' ' || record_type
               FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)",
            &[&before, &after],
        ));
        let background = ["Standby RUNNING_XACTS", "XLOG CHECKPOINT_ONLINE"];
        rows.unwrap().iter().map(|r| r.get::<_, String>(0)).filter(|r| !background.contains(&r.as_str())).collect()
    }
}

#[test]
fn stats_work_on_a_hot_standby() {
    let production = Production::start();
    let sandbox = Sandbox::new();
    let on_primary = read_stats(&sandbox, &production.conn("reader", "app"));
    let standby = HotStandby::of(&production.server);

    let stats = read_stats(&sandbox, &standby.conn(&production.conn("reader", "app")));
    assert!(stats.in_recovery, "read on the standby");
    let superuser = standby.conn(&ConnInfo { host: "127.0.0.1".into(), ..production.server.conn.clone() });
    let client = production.rt.block_on(rehearse::sys::db::connect(&superuser, "app", "test")).unwrap();
    assert_matches_server(&stats, &production.truth(&client));
    let names = |s: &ProductionStats| s.relations.iter().map(|r| r.relation.clone()).collect::<Vec<_>>();
    assert_eq!(names(&stats), names(&on_primary), "the standby has the primary's relations");
    // An unlogged table has no data on a standby.
    assert_eq!(stats.relation("public.sessions").map(|r| r.bytes), Some(0));
    drop(standby);
}

#[test]
fn stats_bad_urls_are_exit_3_and_unreachable_servers_exit_4_without_the_password() {
    let sandbox = Sandbox::new();
    sandbox.rehearse_bad_input(
        &["stats", "--url", "postgres://app:hunter2-secret@db:notaport/app"],
        &["not a PostgreSQL connection string"],
    );
    let out = sandbox.rehearse_bad_input(&["stats"], &["--url"]);
    assert!(out.stdout.is_empty());
    sandbox.rehearse_bad_input(&["stats", "--url", "postgres://x@db/app", "--timeout", "0s"], &["between 1s and 24h"]);

    let out = sandbox.rehearse(&["stats", "--url", "postgres://app:hunter2-secret@127.0.0.1:1/app", "--out", "s.json"]);
    out.assert_code(4);
    assert!(
        out.stderr.contains("cannot connect to --url (host=127.0.0.1 port=1 user=app dbname=app): nothing accepts"),
        "{}",
        out.stderr
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("hunter2"), "the password is shown: {text}");
    }
    assert!(!sandbox.path().join("s.json").exists(), "nothing written");
}

#[test]
fn stats_refused_or_timed_out_say_what_to_do() {
    let production = Production::start();
    let sandbox = Sandbox::new();
    let outsider = "CREATE ROLE outsider LOGIN PASSWORD 'stats-s3cret-pw'";
    production.sql("postgres", outsider);
    let failed = |conn: &ConnInfo, expected: &str| {
        let out = sandbox.rehearse(&["stats", "--url", &url(conn)]);
        out.assert_code(4);
        assert!(out.stderr.contains(expected), "expected {expected:?} in:\n{}", out.stderr);
        assert!(!out.stderr.contains(PASSWORD) && out.stdout.is_empty(), "{}", out.stderr);
    };
    // No CONNECT on the database (revoked from PUBLIC by PRODUCTION_SQL).
    failed(&production.conn("outsider", "app"), r#"GRANT CONNECT ON DATABASE "app" TO "outsider""#);
    // An --out that cannot be written names what and --out (no report is involved).
    let blocked = sandbox.write("not-a-dir", "").join("s.json");
    let out = sandbox.rehearse(&[
        "stats",
        "--url",
        &url(&production.conn("reader", "app")),
        "--out",
        blocked.to_str().unwrap(),
    ]);
    out.assert_code(4);
    let expected = format!("error: cannot write statistics file {} (check --out)", blocked.display());
    assert_eq!(out.stderr.lines().next(), Some(expected.as_str()), "{}", out.stderr);
    // pg_class no longer readable by every role (a hardened database).
    production.sql("postgres", "CREATE DATABASE hardened");
    production.sql("hardened", "CREATE TABLE t (id int); REVOKE SELECT ON pg_catalog.pg_class FROM PUBLIC");
    failed(&production.conn("outsider", "hardened"), "GRANT SELECT ON pg_catalog.pg_class");

    // A relation held ACCESS EXCLUSIVE (a long migration): pg_relation_size waits, until --timeout.
    let migration = production.client("app");
    production
        .rt
        .block_on(migration.batch_execute("BEGIN; LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE"))
        .unwrap();
    let out = sandbox.rehearse(&["stats", "--url", &url(&production.conn("reader", "app")), "--timeout", "1s"]);
    out.assert_code(4);
    assert!(
        out.stderr.contains("took longer than --timeout 1s: a relation may be locked ACCESS EXCLUSIVE"),
        "{}",
        out.stderr
    );
    drop(migration);
}

/// `--activity`: a transaction of the test's own holds ACCESS SHARE on `t`
/// (as a report does) while `rehearse stats --activity 2s` samples, as a
/// role with pg_read_all_stats and no privilege on `t`. The file names `t`
/// with an age the test's own clock bounds: at least the sampling's length
/// (its last sample is 2 s after its first, which is after the test's
/// BEGIN), at most the time from BEGIN to the command's exit. No query
/// text: the secret in the test's query is not in the file.
#[test]
fn stats_activity_records_the_longest_transaction_per_table() {
    let server = OwnedServer::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (holder, idle) = rt.block_on(async {
        let admin = rehearse::sys::db::connect(&server.conn, "postgres", "test").await.unwrap();
        admin
            .batch_execute(
                "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10); CREATE TABLE idle (id int);
                 CREATE ROLE reader LOGIN PASSWORD 'stats-s3cret-pw' IN ROLE pg_read_all_stats",
            )
            .await
            .unwrap();
        let holder = rehearse::sys::db::connect(&server.conn, "postgres", "report").await.unwrap();
        (holder, admin)
    });
    let sandbox = Sandbox::new();
    let out_file = sandbox.path().join("stats.json");
    let reader = server.role("reader", PASSWORD, "postgres");

    let begun = std::time::Instant::now();
    rt.block_on(holder.batch_execute("BEGIN; SELECT count(*) AS secret_report_4711 FROM t")).unwrap();
    let out =
        sandbox.rehearse(&["stats", "--url", &url(&reader), "--activity", "2s", "--out", out_file.to_str().unwrap()]);
    let held_ms = begun.elapsed().as_millis() as i64;
    rt.block_on(holder.batch_execute("COMMIT")).unwrap();
    drop(idle);
    out.assert_code(0);
    assert!(!out.stderr.contains(PASSWORD), "{}", out.stderr);
    assert!(out.stderr.contains("sampled the sessions of postgres for 2 s: 1 table(s)"), "{}", out.stderr);

    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(!text.contains("secret_report_4711") && !text.contains("report"), "{text}");
    let stats = ProductionStats::load(&out_file).unwrap_or_else(|e| panic!("{}", e.render()));
    let activity = stats.activity.expect("--activity writes activity");
    assert!((2.0..3.0).contains(&activity.sampled_seconds), "{}", activity.sampled_seconds);
    let tables: Vec<(&str, usize)> =
        activity.long_transactions.iter().map(|l| (l.table.as_str(), l.sessions_seen)).collect();
    assert_eq!(tables, [("public.t", 1)], "only the table the test's transaction holds, not the idle one");
    let age = activity.long_transactions[0].max_age_ms;
    assert!((2000..=held_ms).contains(&age), "max_age_ms {age}, expected 2000..={held_ms}");

    // Without --activity, no activity key at all.
    let out = sandbox.rehearse(&["stats", "--url", &url(&reader)]);
    out.assert_code(0);
    assert!(!out.stdout.contains("\"activity\""), "{}", out.stdout);
    let help = sandbox.rehearse(&["stats", "--help"]);
    assert!(help.stdout.contains("--activity <DURATION>") && help.stdout.contains("oldest transaction"));
    sandbox.rehearse_bad_input(&["stats", "--url", &url(&reader), "--activity", "0s"], &["--activity"]);
}
