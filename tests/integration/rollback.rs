//! `rollback:`: the release that undoes this one, rehearsed after it on a
//! server of the test's own (url backend, `--keep`), so the test reads the
//! rehearsed database and the copy before the release itself afterwards:
//! its own catalog reads and counts are what the report must say.

use std::path::Path;

use rehearse::report::{DataLossKind, DroppedBy, MigrationStatus, Report, SchemaChange};
use rehearse::sys::db::ConnInfo;

use crate::support::{dumps, tiny_demo_dump, venv_python, OwnedServer, Sandbox, REPO};

/// The kept rehearsal database on `server` and its copy before the release.
struct Kept {
    rehearsed: String,
    before: String,
}

/// Runs `sql` (one row, one bigint or text column) on `dbname`.
fn read<T: for<'a> tokio_postgres::types::FromSql<'a>>(conn: &ConnInfo, dbname: &str, sql: &str) -> T {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = rehearse::sys::db::connect(conn, dbname, "test-rollback").await.unwrap();
        client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
    })
}

/// The databases the run kept on the test's server.
fn kept(server: &OwnedServer) -> Kept {
    let names: String = read(
        &server.conn,
        "postgres",
        "SELECT string_agg(datname::text, ' ' ORDER BY datname) FROM pg_database WHERE datname LIKE 'rehearse%'",
    );
    let names: Vec<&str> = names.split(' ').collect();
    let before = names.iter().find(|n| n.ends_with("_before")).expect("the copy before the release").to_string();
    let rehearsed = before.trim_end_matches("_before").to_string();
    assert!(names.contains(&rehearsed.as_str()), "{names:?}");
    Kept { rehearsed, before }
}

/// Rehearses `scenario` on `server` (url backend), keeping the databases.
fn run(sandbox: &Sandbox, scenario: &Path, server: &OwnedServer) -> (Report, crate::support::RunOutput) {
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--url", &server.url(), "--keep"]);
    assert!(out.code == 0, "exit {}:\n{}", out.code, out.stderr);
    (out.report(), out)
}

fn rename_and_back(server: &OwnedServer) {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0003_rename.sql", "ALTER TABLE public.users RENAME COLUMN full_name TO name;\n")]);
    std::fs::create_dir_all(sandbox.path().join("rollback")).unwrap();
    sandbox.write("rollback/0004_rename_back.sql", "ALTER TABLE public.users RENAME COLUMN name TO full_name;\n");
    sandbox.write("queries.sql", "SELECT full_name FROM public.users WHERE id = $1;\n");
    let extra = "report:\n  formats: [table, markdown, json, junit]\ncompat:\n  queries: queries.sql\nrollback:\n  migrations:\n    tool: sql\n    dir: rollback\n";
    let scenario = sandbox.scenario_on("backend: url", tiny_demo_dump(), extra);
    let (report, out) = run(&sandbox, &scenario, server);
    let broke = report.migrations[0].compat.as_ref().expect("the release is checked");
    assert_eq!(broke.broken.len(), 1, "the release breaks the old name's query: {broke:?}");
    let b = report.rollback.as_ref().expect("report.rollback");
    assert_eq!(b.migrations.len(), 1);
    assert_eq!((b.migrations[0].id.as_str(), b.migrations[0].status), ("0004_rename_back", MigrationStatus::Applied));
    assert!(b.migrations[0].locks.iter().any(|l| l.relation == "public.users"), "measured like any migration");
    assert_eq!(b.compat_restored, Some(true), "{:?}", b.still_broken);
    assert!(b.schema_diff.is_empty(), "{:?}", b.schema_diff);
    assert!(b.data_loss.is_empty(), "a rename loses nothing: {:?}", b.data_loss);
    // The test's own reading: the old name is back, on the rehearsed database.
    let kept = kept(server);
    let column: String = read(
        &server.conn,
        &kept.rehearsed,
        "SELECT string_agg(attname::text, ',') FROM pg_attribute WHERE attrelid = 'public.users'::regclass \
         AND attname IN ('full_name', 'name') AND NOT attisdropped",
    );
    assert_eq!(column, "full_name");
    let item = report.checklist.items.iter().find(|i| i.title.starts_with("Rollback")).unwrap();
    assert!(item.done && item.evidence.iter().any(|e| e.contains("Rehearsed")), "{item:?}");
    assert!(out.markdown().contains("## Rollback rehearsal"));
    assert!(out.stdout.contains("rollback 0004_rename_back: applied"), "{}", out.stdout);
    let junit = out.junit();
    assert!(junit.contains("test: rollback") && junit.contains("name=\"rollback 0004_rename_back\""), "{junit}");
}

#[test]
fn a_rollback_that_renames_back_restores_the_old_apps_query_and_the_schema() {
    rename_and_back(&OwnedServer::start());
}

#[test]
fn a_rollback_that_renames_back_restores_the_old_apps_query_on_postgresql_18_too() {
    let bin = crate::postgres18::pg18_bin();
    rename_and_back(&OwnedServer::start_with(Some(Path::new(&bin))));
}

#[test]
fn a_lossy_rollback_names_the_dropped_column_and_the_narrowed_one_with_the_rows_that_held_a_value() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_drop_note.sql", "ALTER TABLE public.orders DROP COLUMN note;\n"),
        ("0002_total_integer.sql", "ALTER TABLE public.orders ALTER COLUMN total TYPE integer;\n"),
    ]);
    std::fs::create_dir_all(sandbox.path().join("rollback")).unwrap();
    sandbox.write("rollback/0003_note_back.sql", "ALTER TABLE public.orders ADD COLUMN note text;\n");
    sandbox
        .write("rollback/0004_total_back.sql", "ALTER TABLE public.orders ALTER COLUMN total TYPE numeric(10, 2);\n");
    let extra = "rollback:\n  migrations:\n    tool: sql\n    dir: rollback\n";
    let scenario = sandbox.scenario_on("backend: url", &dumps().path("custom"), extra);
    let (report, out) = run(&sandbox, &scenario, &server);
    let b = report.rollback.as_ref().expect("report.rollback");
    assert_eq!(b.compat_restored, None, "no compat: nothing to check");
    assert!(b.schema_diff.is_empty(), "the column is back as it was: {:?}", b.schema_diff);
    let kept = kept(&server);
    let held: i64 = read(&server.conn, &kept.before, "SELECT count(*) FROM public.orders WHERE note IS NOT NULL");
    let now: i64 = read(&server.conn, &kept.rehearsed, "SELECT count(*) FROM public.orders WHERE note IS NOT NULL");
    assert!(held > 0 && now == 0, "the dump's notes: {held} before, {now} after");
    let [loss, narrowed] = b.data_loss.as_slice() else { panic!("two losses: {:?}", b.data_loss) };
    assert_eq!(
        (loss.object.as_str(), loss.kind, loss.dropped_by),
        ("public.orders.note", DataLossKind::DropColumn, DroppedBy::Release)
    );
    assert_eq!((loss.rows, loss.rows_after_rollback), (held as u64, Some(0)));
    assert_eq!(loss.migration, "0001_drop_note");
    // The cents an integer total rounded away: the test's own count, on the copy before the release.
    let cents: i64 = read(&server.conn, &kept.before, "SELECT count(*) FROM public.orders WHERE total <> round(total)");
    assert!(cents > 0);
    assert_eq!((narrowed.object.as_str(), narrowed.kind), ("public.orders.total", DataLossKind::AlterType));
    assert_eq!(
        (narrowed.rows, narrowed.rows_after_rollback, narrowed.migration.as_str()),
        (cents as u64, None, "0002_total_integer")
    );
    let item = report.checklist.items.iter().find(|i| i.title.starts_with("Rollback")).unwrap();
    assert!(!item.done && item.todo.as_deref().unwrap_or("").contains("backup"), "{item:?}");
    // A count, never a value: the dump's notes hold "intruder".
    let md = out.markdown();
    assert!(md.contains("public.orders.note") && !md.contains("intruder"), "{md}");
}

#[test]
fn a_downgrade_that_forgets_an_index_reports_it_left_behind() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    let scenario = sandbox.write(
        "alembic.yaml",
        &format!(
            "name: downgrade\ndump: {}\npostgres:\n  backend: url\nmigrations:\n  tool: alembic\n  dir: {REPO}/tests/fixtures/alembic_rollback\n  python: {}\nrollback:\n  downgrade: true\nreport:\n  formats: [json, markdown, junit]\n",
            dumps().path("custom").display(),
            venv_python()
        ),
    );
    let (report, out) = run(&sandbox, &scenario, &server);
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["r3_orders_total_idx", "r4_orders_channel"]);
    let b = report.rollback.as_ref().expect("report.rollback");
    assert!(b.downgrade);
    let down: Vec<(&str, MigrationStatus)> = b.migrations.iter().map(|m| (m.id.as_str(), m.status)).collect();
    assert_eq!(
        down,
        [("r4_orders_channel", MigrationStatus::Applied), ("r3_orders_total_idx", MigrationStatus::Applied)]
    );
    assert!(
        b.migrations[0].statements.iter().any(|s| s.query.contains("DROP COLUMN channel")),
        "the downgrade's statements are traced: {:?}",
        b.migrations[0].statements
    );
    // The test's own reading: production's revision is back, and the index is still there.
    let kept = kept(&server);
    let version: String = read(&server.conn, &kept.rehearsed, "SELECT version_num::text FROM public.alembic_version");
    assert_eq!(version, "r2_orders_note_index");
    let index: i64 =
        read(&server.conn, &kept.rehearsed, "SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_total_idx'");
    let before: i64 =
        read(&server.conn, &kept.before, "SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_total_idx'");
    assert_eq!((before, index), (0, 1));
    let left: Vec<_> = b.schema_diff.iter().filter(|d| d.object.contains("orders_total_idx")).collect();
    assert!(!left.is_empty() && left.iter().all(|d| d.change == SchemaChange::LeftBehind), "{:?}", b.schema_diff);
    // orders.channel held values the release added: the downgrade drops them.
    let channel = b.data_loss.iter().find(|d| d.object == "public.orders.channel").expect("channel's values");
    let filled: i64 = read(&server.conn, &kept.before, "SELECT count(*) FROM public.orders WHERE id % 2 = 0");
    assert_eq!(
        (channel.dropped_by, channel.rows, channel.rows_after_rollback),
        (DroppedBy::Rollback, filled as u64, None)
    );
    assert!(out.junit().contains("rollback_not_restored"), "a schema that did not come back fails in JUnit");
}

#[test]
fn bad_rollback_sections_are_refused_before_anything_starts() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "SELECT 1;\n")]);
    std::fs::create_dir_all(sandbox.path().join("rollback")).unwrap();
    sandbox.write("rollback/0001_undo.sql", "SELECT 1;\n");
    let cases: [(&str, &[&str]); 5] = [
        ("rollback:\n", &["rollback is empty"]),
        ("rollback: {}\n", &["rollback is empty"]),
        ("rollback:\n  downgrade: true\n", &["rollback.downgrade", "tool is sql"]),
        (
            "rollback:\n  downgrade: true\n  migrations: {tool: sql, dir: rollback}\n",
            &["both migrations and downgrade"],
        ),
        ("rollback:\n  migrations: {tool: sql, dir: rollback}\n", &["rollback.migrations", "0001_undo", "clashes"]),
    ];
    for (extra, expected) in cases {
        let scenario = sandbox.scenario(tiny_demo_dump(), extra);
        let out = sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], expected);
        assert!(!out.reports.join("report.json").exists(), "nothing ran for {extra:?}");
    }
    let command = sandbox.write(
        "command.yaml",
        &format!(
            "dump: {}\nmigrations:\n  tool: command\n  revisions: [a]\n  apply: 'true'\nrollback:\n  downgrade: true\n",
            tiny_demo_dump().display()
        ),
    );
    sandbox.rehearse_bad_input(&["run", command.to_str().unwrap()], &["rollback.downgrade", "tool is command"]);
    let typo = sandbox.scenario(tiny_demo_dump(), "rollback:\n  downgrade: true\n  migration: {}\n");
    sandbox.rehearse_bad_input(&["run", typo.to_str().unwrap()], &["migration"]);
}

#[test]
fn a_rollback_that_does_not_undo_the_rename_leaves_the_query_broken_and_fails_in_junit() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0003_rename.sql", "ALTER TABLE public.users RENAME COLUMN full_name TO name;\n")]);
    std::fs::create_dir_all(sandbox.path().join("rollback")).unwrap();
    sandbox.write("rollback/0004_index.sql", "CREATE INDEX users_country_idx ON public.users (country);\n");
    sandbox
        .write("queries.sql", "SELECT full_name FROM public.users WHERE id = $1;\nSELECT email FROM public.users;\n");
    let extra = "report:\n  formats: [json, junit]\ncompat:\n  queries: queries.sql\nrollback:\n  migrations:\n    tool: sql\n    dir: rollback\n";
    let scenario = sandbox.scenario_on("backend: url", tiny_demo_dump(), extra);
    let (report, out) = run(&sandbox, &scenario, &server);
    let b = report.rollback.as_ref().expect("report.rollback");
    assert_eq!(b.compat_restored, Some(false));
    let broken: Vec<&str> = b.still_broken.iter().map(|q| q.query.as_str()).collect();
    assert_eq!(broken, ["SELECT full_name FROM public.users WHERE id = $1"]);
    assert_eq!(b.still_broken[0].code, "42703", "undefined column");
    // The test's own reading of the kept database: the new name stayed, the index was added.
    let kept = kept(&server);
    let name: String = read(
        &server.conn,
        &kept.rehearsed,
        "SELECT string_agg(attname::text, ',') FROM pg_attribute WHERE attrelid = 'public.users'::regclass \
         AND attname IN ('full_name', 'name') AND NOT attisdropped",
    );
    assert_eq!(name, "name");
    let change = |object: &str| b.schema_diff.iter().find(|d| d.object == object).map(|d| d.change);
    assert_eq!(change("public.users.name"), Some(SchemaChange::LeftBehind), "{:?}", b.schema_diff);
    assert_eq!(change("public.users.full_name"), Some(SchemaChange::Missing), "{:?}", b.schema_diff);
    assert!(b.schema_diff.iter().any(|d| d.object.contains("users_country_idx")), "{:?}", b.schema_diff);
    assert!(out.junit().contains("type=\"rollback_not_restored\""), "{}", out.junit());
    assert_eq!(out.code, 0, "the run's status is the release's: the JUnit suite and the checklist carry the rollback");
    let item = report.checklist.items.iter().find(|i| i.title.starts_with("Rollback")).unwrap();
    assert!(!item.done && item.todo.as_deref().unwrap_or("").contains("queries"), "{item:?}");
}

#[test]
fn a_release_that_fails_skips_the_rollback_and_says_so() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0003_fail.sql", "ALTER TABLE public.users ADD COLUMN x int NOT NULL CHECK (x > 0);\n")]);
    std::fs::create_dir_all(sandbox.path().join("rollback")).unwrap();
    sandbox.write("rollback/0004_undo.sql", "ALTER TABLE public.users DROP COLUMN IF EXISTS x;\n");
    let extra =
        "report:\n  formats: [json, junit, markdown]\nrollback:\n  migrations:\n    tool: sql\n    dir: rollback\n";
    let scenario = sandbox.scenario(tiny_demo_dump(), extra);
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(2);
    let report = out.report();
    assert_eq!(report.migrations[0].status, MigrationStatus::Failed);
    let b = report.rollback.as_ref().expect("report.rollback, skipped");
    assert!(b.skipped.as_deref().unwrap_or("").contains("0003_fail (failed)"), "{:?}", b.skipped);
    assert!(b.migrations.is_empty() && b.compat_restored.is_none());
    assert!(!report.stages.iter().any(|s| s.stage.as_str() == "rollback"), "no rollback stage ran");
    assert!(out.stderr.contains("rollback skipped"), "{}", out.stderr);
    assert!(out.junit().contains("<skipped message=\"the release did not apply whole"), "{}", out.junit());
    let item = report.checklist.items.iter().find(|i| i.title.starts_with("Rollback")).unwrap();
    assert!(!item.done && item.todo.as_deref().unwrap_or("").contains("Re-run"), "{item:?}");
    sandbox.assert_no_leaks();
}
