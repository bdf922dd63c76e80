//! Django projects (`migrations.tool: django`), with Django from PyPI
//! against real Postgres: the test's own shop (tests/fixtures/django_shop:
//! two apps, a RunPython data migration, a RemoveField, a non-atomic
//! AddIndexConcurrently, a squashed migration), checked against the same
//! release run by hand with `manage.py migrate -v 3` while the test reads
//! pg_locks itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rehearse::error::ErrorKind;
use rehearse::pg::LockMode;
use rehearse::report::{LockSource, MigrationStatus, Report};

use crate::support::{dumps, made_venv, OwnedServer, RunOutput, Sandbox, REPO};

/// Django 5.2 (the LTS that runs on this machine's Python 3.11) and psycopg2, pinned.
pub fn django_python() -> String {
    made_venv("django52", &["django==5.2.19", "psycopg2-binary==2.9.13"])
}

fn shop_dir() -> String {
    format!("{REPO}/tests/fixtures/django_shop")
}

/// The shop's own variables (SHOP_DB_*) pointing at `db` on `server`.
fn shop_env(server: &OwnedServer, db: &str) -> Vec<(String, String)> {
    vec![
        ("SHOP_DB_NAME".into(), db.into()),
        ("SHOP_DB_HOST".into(), server.conn.host.clone()),
        ("SHOP_DB_PORT".into(), server.conn.port.to_string()),
        ("SHOP_DB_USER".into(), server.conn.user.clone()),
        ("SHOP_DB_PASSWORD".into(), server.conn.password.expose().to_string()),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
    ]
}

fn manage(python: &str, env: &[(String, String)], args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("manage.py")
        .args(args)
        .current_dir(shop_dir())
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "manage.py {args:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Production: the shop at catalog 0001 and orders 0001 with 100,000
/// products, in `shop_prod` on `server`, and its custom-format dump.
fn production(server: &OwnedServer, python: &str, sandbox: &Sandbox) -> PathBuf {
    server.sql("postgres", "CREATE DATABASE shop_prod");
    let env = shop_env(server, "shop_prod");
    for (app, to) in [("contenttypes", None), ("auth", None), ("catalog", Some("0001")), ("orders", Some("0001"))] {
        let mut args = vec!["migrate", app];
        args.extend(to);
        manage(python, &env, &args);
    }
    server.sql(
        "shop_prod",
        "INSERT INTO catalog_product (name, price, legacy_code) SELECT 'p' || g, g % 100, 'L' || g \
         FROM generate_series(1, 100000) g; INSERT INTO orders_order (quantity, product_id) SELECT 1, g \
         FROM generate_series(1, 1000) g",
    );
    dump_of(server, "shop_prod", sandbox)
}

/// A custom-format dump of `db`, as production's nightly dump.
fn dump_of(server: &OwnedServer, db: &str, sandbox: &Sandbox) -> PathBuf {
    let dump = sandbox.path().join(format!("{db}.dump"));
    let status = Command::new(server.bin_dir().join("pg_dump"))
        .args(["-Fc", "-h", &server.conn.host, "-p", &server.conn.port.to_string(), "-U", &server.conn.user])
        .args(["-d", db, "-f", dump.to_str().unwrap()])
        .env("PGPASSWORD", server.conn.password.expose())
        .status()
        .unwrap();
    assert!(status.success());
    dump
}

/// The release by hand on a copy of production restored from the same dump
/// and vacuumed, as rehearse prepares its own: `manage.py migrate -v 3`.
/// Returns Django's own time for each migration (ms), in its order.
fn by_hand(server: &OwnedServer, python: &str, dump: &Path, db: &str, settings: &str) -> Vec<(String, f64)> {
    server.sql("postgres", &format!("CREATE DATABASE {db}"));
    let status = Command::new(server.bin_dir().join("pg_restore"))
        .args(["-h", &server.conn.host, "-p", &server.conn.port.to_string(), "-U", &server.conn.user])
        .args(["-d", db, "--no-owner", dump.to_str().unwrap()])
        .env("PGPASSWORD", server.conn.password.expose())
        .status()
        .unwrap();
    assert!(status.success());
    server.sql(db, "VACUUM ANALYZE");
    let stdout = manage(python, &shop_env(server, db), &["migrate", "--settings", settings, "-v", "3", "--no-input"]);
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("Applying ")?;
            let (id, took) = rest.split_once("... OK (")?;
            Some((id.to_string(), took.strip_suffix("s)")?.parse::<f64>().ok()? * 1000.0))
        })
        .collect()
}

/// `rehearse run scenario` while the test reads pg_locks itself every 5 ms:
/// the run, and how long the Django helper's sessions were seen holding each
/// ACCESS EXCLUSIVE lock, by transaction and relation, in the order first seen (ms).
fn rehearse_watching_locks(sandbox: &Sandbox, server: &OwnedServer, scenario: &Path) -> (RunOutput, Vec<u64>) {
    let file = |name: &str| std::fs::File::create(sandbox.path().join(name)).unwrap();
    let mut child = sandbox
        .command(&["run", scenario.to_str().unwrap()])
        .stdout(file("run.stdout"))
        .stderr(file("run.stderr"))
        .spawn()
        .unwrap();
    // (first seen, last seen) by "vxid relation".
    let mut seen: BTreeMap<String, (Instant, Instant)> = BTreeMap::new();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = rehearse::sys::db::connect(&server.conn, "postgres", "test-poller").await.unwrap();
        let query = "SELECT l.virtualtransaction || ' ' || l.relation::text FROM pg_locks l \
                     JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name = 'rehearse-django' \
                     AND l.granted AND l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'";
        while child.try_wait().unwrap().is_none() {
            let now = Instant::now();
            for row in client.query(query, &[]).await.unwrap() {
                seen.entry(row.get(0)).and_modify(|(_, last)| *last = now).or_insert((now, now));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let read = |name: &str| std::fs::read_to_string(sandbox.path().join(name)).unwrap();
    let out = RunOutput {
        code: child.wait().unwrap().code().unwrap_or(-1),
        stdout: read("run.stdout"),
        stderr: read("run.stderr"),
        reports: sandbox.reports(),
    };
    let mut spans: Vec<(Instant, Instant)> = seen.into_values().collect();
    spans.sort();
    (out, spans.into_iter().map(|(first, last)| (last - first).as_millis() as u64).collect())
}

fn django_scenario(sandbox: &Sandbox, server: &OwnedServer, dump: &Path, settings: &str, python: &str) -> PathBuf {
    // The settings read the shop's own variables, set here to production's
    // database: rehearse points the alias at its copy, and production stays as it was.
    let env: String = shop_env(server, "shop_prod").iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    sandbox.write(
        "django.yaml",
        &format!(
            "name: django-test\ndump: {}\npostgres:\n  backend: url\n  url: {}\nmigrations:\n  tool: django\n  dir: {}\n  \
             settings: {settings}\n  python: {python}\n  env:\n{env}",
            dump.display(),
            server.url(),
            shop_dir()
        ),
    )
}

/// The ACCESS EXCLUSIVE lock a migration's statements took on catalog_product, as the report merged it.
fn exclusive_on_products(report: &Report, id: &str) -> (u64, Vec<LockSource>) {
    let m = report.migrations.iter().find(|m| m.id == id).unwrap();
    let lock = m
        .locks
        .iter()
        .find(|l| l.relation == "public.catalog_product" && l.mode == LockMode::AccessExclusiveLock)
        .unwrap_or_else(|| panic!("{id}: no ACCESS EXCLUSIVE on catalog_product: {:?}", m.locks));
    (lock.held_ms, lock.source.clone())
}

#[test]
fn a_django_release_is_rehearsed_in_one_process_as_migrate_runs_it() {
    let server = OwnedServer::start();
    let python = django_python();
    let sandbox = Sandbox::new();
    let dump = production(&server, &python, &sandbox);
    let django_ms = by_hand(&server, &python, &dump, "shop_hand", "shop.settings");
    let scenario = django_scenario(&sandbox, &server, &dump, "shop.settings", &python);
    let (out, held_seen) = rehearse_watching_locks(&sandbox, &server, &scenario);
    let report = out.report();
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    let by_hand_ids: Vec<&str> = django_ms.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, by_hand_ids, "Django's planner's order, the squashed migration in place of the two it replaces");
    assert_eq!(
        ids,
        [
            "catalog.0002_product_sku",
            "catalog.0003_remove_product_legacy_code",
            "catalog.0004_product_sku_idx",
            "orders.0002_squashed_0003"
        ]
    );
    for m in &report.migrations {
        assert_eq!(m.status, MigrationStatus::Applied, "{}: {:?}\n{}", m.id, m.error, out.stderr);
    }

    // One process: start-up once, apart; post_migrate apart, after the last.
    let (first, last) = (&report.migrations[0], &report.migrations[3]);
    assert!(first.startup_ms.is_some_and(|ms| ms > 0), "{first:?}");
    assert!(report.migrations[1..].iter().all(|m| m.startup_ms.is_none()));
    assert!(last.post_migrate_ms.is_some(), "post_migrate is timed apart: {last:?}");
    assert!(report.migrations[..3].iter().all(|m| m.post_migrate_ms.is_none()));

    // Each migration's time is Django's own for the same release, within 20%
    // (and a few milliseconds for the quick ones): of the by-hand run before
    // the rehearsal or of one after it, as this machine is shared.
    let again = by_hand(&server, &python, &dump, "shop_hand_again", "shop.settings");
    let times: Vec<String> = report
        .migrations
        .iter()
        .zip(django_ms.iter().zip(&again))
        .map(|(m, ((id, before), (_, after)))| {
            format!("{id}: rehearse {} ms, by hand {before:.0} and {after:.0} ms", m.duration_ms)
        })
        .collect();
    for (m, ((_, before), (_, after))) in report.migrations.iter().zip(django_ms.iter().zip(&again)) {
        let ours = m.duration_ms as f64;
        let near = |theirs: f64| (ours - theirs).abs() <= (theirs * 0.2).max(60.0);
        assert!(near(*before) || near(*after), "{times:#?}");
    }
    eprintln!("{times:#?}");

    // Statements attributed exactly: Django's own bookkeeping and introspection left out.
    let drop = &report.migrations[1];
    let queries: Vec<&str> = drop.statements.iter().map(|s| s.query.as_str()).collect();
    assert_eq!(queries, ["ALTER TABLE \"catalog_product\" DROP COLUMN \"legacy_code\" CASCADE"], "{queries:?}");
    let backfill = report.migrations[0].statements.iter().find(|s| s.query.starts_with("UPDATE")).unwrap();
    assert_eq!(backfill.rows, 100_000);
    assert!(backfill.query.contains("$1") && !backfill.query.contains("SKU-"), "no values: {}", backfill.query);

    // Exact holds, against the test's own reading of pg_locks during the rehearsal:
    // catalog_product in 0002 and 0003, orders_order in the squashed migration.
    assert!(held_seen.len() >= 3 && held_seen[2..].iter().all(|ms| *ms < 100), "{held_seen:?}");
    for (id, theirs) in [(ids[0], held_seen[0]), (ids[1], held_seen[1])] {
        let (ours, source) = exclusive_on_products(&report, id);
        assert!(source.contains(&LockSource::Statement), "{id}: read in its transaction: {source:?}");
        let theirs = theirs as f64;
        assert!(
            ours as f64 >= theirs - 30.0 && ours as f64 <= theirs * 1.2 + 100.0,
            "{id}: held {ours} ms by rehearse's reading, {theirs} ms by the test's"
        );
    }
    assert!(held_seen[1] >= 800, "0003 holds its lock through the RunPython: {held_seen:?}");

    // Destructive changes found; offline SQL from sqlmigrate.
    assert!(
        drop.destructive_changes
            .iter()
            .any(|d| d.object == "catalog_product.legacy_code" || d.object == "public.catalog_product.legacy_code"),
        "{:?}",
        drop.destructive_changes
    );
    assert!(drop.offline_sql.as_deref().unwrap_or("").contains("DROP COLUMN \"legacy_code\""));
    let index = &report.migrations[2];
    assert!(index.offline_sql.as_deref().unwrap_or("").contains("CREATE INDEX CONCURRENTLY"));
    assert!(index.statements.iter().any(|s| s.query.starts_with("CREATE INDEX CONCURRENTLY")), "{index:?}");

    // Production was named by the settings, and never touched.
    let kept = Command::new(server.bin_dir().join("psql"))
        .args(["-h", &server.conn.host, "-p", &server.conn.port.to_string(), "-U", &server.conn.user])
        .args(["-d", "shop_prod", "-Atc", "SELECT count(*) FROM django_migrations WHERE app IN ('catalog', 'orders')"])
        .env("PGPASSWORD", server.conn.password.expose())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&kept.stdout).trim(), "2");
    assert!(out.markdown().contains("post_migrate"), "{}", out.markdown());
    sandbox.assert_no_leaks();
}

/// Refused before anything runs, with Django's own message: two leaf nodes
/// in an app's history; and settings that fall back to SQLite when the
/// shop's variable is unset (rehearse can point only a PostgreSQL ENGINE at its copy).
#[test]
fn a_conflict_and_a_settings_module_on_sqlite_are_refused() {
    let python = django_python();
    let sandbox = Sandbox::new();
    let write = |settings: &str, env: &str| {
        sandbox.write(
            "django.yaml",
            &format!(
                "dump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: django\n  dir: {}\n  settings: {settings}\n  \
                 python: {python}\n  env:\n    SHOP_HOME: {}\n{env}",
                dumps().path("custom").display(),
                shop_dir(),
                sandbox.path().display()
            ),
        )
    };
    let scenario = write("shop.settings_conflict", "    SHOP_DB_NAME: elsewhere\n");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_stopped_by(ErrorKind::MigrationsInvalid);
    assert!(
        out.stderr.contains("Conflicting migrations detected")
            && out.stderr.contains("0002_left, 0002_right in conflicted"),
        "{}",
        out.stderr
    );

    let scenario = write("shop.settings", "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_stopped_by(ErrorKind::WrongDatabase);
    assert!(out.stderr.contains("a sqlite database") && out.stderr.contains("shop.sqlite3"), "{}", out.stderr);
    assert!(!sandbox.path().join("shop.sqlite3").exists(), "nothing ran on the SQLite file");
    sandbox.assert_no_leaks();
}

/// A non-atomic migration that fails part-way: Django's error with its
/// SQLSTATE, what it left (its index, built outside a transaction), and
/// the recovery steps from django_migrations as the failure left it.
#[test]
fn a_failed_non_atomic_migration_gets_recovery_steps_from_django_migrations() {
    let python = django_python();
    let sandbox = Sandbox::new();
    let scenario = sandbox.write(
        "django.yaml",
        &format!(
            "dump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: django\n  dir: {}\n  settings: shop.settings_fails\n  \
             python: {python}\n  env:\n    SHOP_DB_NAME: elsewhere\n",
            dumps().path("custom").display(),
            shop_dir()
        ),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(2);
    let report = out.report();
    let failed = report.migrations.iter().find(|m| m.status == MigrationStatus::Failed).unwrap();
    assert_eq!(failed.id, "fails.0002_code_index");
    let error = failed.error.as_ref().unwrap();
    assert_eq!(error.sqlstate.as_deref(), Some("42703"), "{error:?}");
    assert!(failed.statements.iter().any(|s| s.query.starts_with("CREATE INDEX CONCURRENTLY")), "{failed:?}");
    // A RunPython inserting 500 rows one by one: one batch of 500 statements, not 500 entries.
    let initial = report.migrations.iter().find(|m| m.id == "fails.0001_initial").unwrap();
    let inserts: Vec<_> = initial.statements.iter().filter(|s| s.query.starts_with("INSERT INTO fails_item")).collect();
    assert!(inserts.len() == 1 && inserts[0].count == 500 && inserts[0].rows == 500, "{inserts:?}");
    assert_eq!(inserts[0].query, "INSERT INTO fails_item (id, code) VALUES ($1, $2)", "no values");
    let recovery = failed.recovery.as_ref().unwrap();
    assert!(recovery.leftovers.iter().any(|l| l.contains("fails_item_code_idx")), "{recovery:?}");
    let steps = recovery.steps.join("\n");
    assert!(
        steps.contains("does not record fails.0002_code_index (its last migration of fails is fails.0001_initial)")
            && steps.contains("`python manage.py migrate --fake fails 0002_code_index`"),
        "{steps}"
    );
    // The applied migrations before it are what django_migrations holds; the later ones did not run.
    assert!(report.migrations.iter().any(|m| m.id.starts_with("auth.") && m.status == MigrationStatus::Applied));
    assert!(report
        .migrations
        .iter()
        .filter(|m| m.id.starts_with("orders."))
        .all(|m| m.status == MigrationStatus::Skipped));
    sandbox.assert_no_leaks();
}

/// A real app from PyPI, django-auditlog, upgraded between two of its
/// releases (2.2.2 to 3.4.1: five migrations, one of which turns
/// `changes` from text into jsonb, rewriting the table) on 200,000 log
/// entries, against the same upgrade by hand. `make demo-django` shows it.
#[test]
fn a_real_app_from_pypi_upgraded_between_two_releases() {
    let server = OwnedServer::start();
    let pinned =
        |v: &str| ["django==5.2.19".to_string(), "psycopg2-binary==2.9.13".into(), format!("django-auditlog=={v}")];
    let venv = |v: &str| made_venv(&format!("auditlog-{v}"), &pinned(v).iter().map(String::as_str).collect::<Vec<_>>());
    let (old, new) = (venv("2.2.2"), venv("3.4.1"));
    let sandbox = Sandbox::new();
    let settings = "shop.settings_auditlog";
    server.sql("postgres", "CREATE DATABASE shop_prod");
    manage(&old, &shop_env(&server, "shop_prod"), &["migrate", "--settings", settings]);
    server.sql(
        "shop_prod",
        "INSERT INTO auditlog_logentry (content_type_id, object_pk, object_id, object_repr, action, changes, timestamp) \
         SELECT 1, g::text, g, 'obj ' || g, g % 3, '{\"name\": [\"a\", \"b' || g || '\"]}', now() - g * interval '1 minute' \
         FROM generate_series(1, 200000) g",
    );
    let dump = dump_of(&server, "shop_prod", &sandbox);
    let django_ms = by_hand(&server, &new, &dump, "shop_hand", settings);
    // With drift: the whole history built from empty by the same Django source, compared with production plus the release.
    let scenario = django_scenario(&sandbox, &server, &dump, settings, &new);
    let text = std::fs::read_to_string(&scenario).unwrap();
    std::fs::write(&scenario, format!("{text}drift: true\n")).unwrap();
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    let report = out.report();
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, django_ms.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), "{}", out.stderr);
    assert_eq!(ids.first().copied(), Some("auditlog.0013_alter_logentry_timestamp"));
    assert_eq!(ids.last().copied(), Some("auditlog.0017_add_actor_email"));
    let mut figures = vec![format!("start-up {} ms", report.migrations[0].startup_ms.unwrap_or_default())];
    for (m, (_, theirs)) in report.migrations.iter().zip(&django_ms) {
        assert_eq!(m.status, MigrationStatus::Applied, "{}: {:?}", m.id, m.error);
        figures.push(format!("{}: rehearse {} ms, manage.py migrate -v 3 {theirs:.0} ms", m.id, m.duration_ms));
    }
    figures.push(format!("post_migrate {} ms", report.migrations[4].post_migrate_ms.unwrap_or_default()));
    eprintln!("{}\n{}", out.stdout, figures.join("\n"));
    let retype = report.migrations.iter().find(|m| m.id == "auditlog.0015_alter_logentry_changes").unwrap();
    let theirs = django_ms.iter().find(|(id, _)| id == &retype.id).unwrap().1;
    assert!((retype.duration_ms as f64 - theirs).abs() <= theirs * 0.2 + 60.0, "{figures:#?}");
    assert!(retype.rewrites.iter().any(|r| r.relation == "public.auditlog_logentry"), "{:?}", retype.rewrites);
    assert!(retype.locks.iter().any(|l| l.relation == "public.auditlog_logentry"
        && l.mode == LockMode::AccessExclusiveLock
        && l.source.contains(&LockSource::Statement)));
    assert!(!retype.hazards.is_empty(), "a table rewrite under ACCESS EXCLUSIVE is a hazard");
    let drift = report.drift.as_ref().expect("drift ran");
    assert!(drift.error.is_none() && drift.findings.is_empty(), "auditlog's history builds the same schema: {drift:?}");
    assert!(drift.checked.get("columns").is_some_and(|n| *n > 0), "{drift:?}");
    sandbox.assert_no_leaks();
}
