//! SQL migration folders: order, pending set, transactions, failures.

use rehearse::report::{MigrationStatus, RunStatus};

use crate::support::{dumps, Sandbox, DEMO_PENDING, REPO};

/// `rehearse.report/v1` is a contract people write jq against: every key
/// the demo's report.json had before the redesign (tests/fixtures/report-v1-demo.json,
/// from the last build before it) is still there with the same JSON type
/// (unless this run has null where the fixture has a value: an optional
/// section this scenario does not ask for), and the Markdown has the same
/// sections. Keys may be added, never renamed.
fn assert_v1_contract(json: &str, markdown: &str) {
    let fixture = std::fs::read_to_string(format!("{REPO}/tests/fixtures/report-v1-demo.json")).unwrap();
    let (before, now) = (shape(&fixture), shape(json));
    // Nothing to compare under a value this run left null or empty (no probes ran, no backup measured).
    let empty_here = |path: &str| {
        let empty = |prefix: &str| {
            now.contains_key(prefix)
                && !now.keys().any(|k| {
                    k.len() > prefix.len() && k.starts_with(prefix) && k[prefix.len()..].starts_with(['.', '['])
                })
        };
        now.get(path).is_some_and(|t| t.contains("null"))
            || path.match_indices(['.', '[']).any(|(i, _)| empty(&path[..i]))
    };
    let lost: Vec<String> = before
        .iter()
        .filter(|(path, _)| !empty_here(path))
        .filter(|(path, types)| {
            let expected: std::collections::BTreeSet<_> = types.iter().filter(|t| **t != "null").collect();
            now.get(*path).is_none_or(|t| !expected.iter().all(|e| t.contains(*e)))
        })
        .map(|(path, types)| format!("{path}: {types:?} now {:?}", now.get(path)))
        .collect();
    assert!(lost.is_empty(), "report.json lost or retyped v1 keys:\n{}", lost.join("\n"));
    let sections =
        |md: &str| -> Vec<String> { md.lines().filter(|l| l.starts_with("## ")).map(String::from).collect() };
    let fixture_md = rehearse::report::render_markdown(&serde_json::from_str(&fixture).unwrap());
    assert_eq!(sections(markdown), sections(&fixture_md));
}

type Shape = std::collections::BTreeMap<String, std::collections::BTreeSet<&'static str>>;

/// Every key path of a JSON document (`.migrations[].locks[].mode`) with the
/// JSON types seen there.
fn shape(json: &str) -> Shape {
    fn walk(v: &serde_json::Value, path: String, out: &mut Shape) {
        let kind = match v {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "bool",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(items) => {
                items.iter().for_each(|x| walk(x, format!("{path}[]"), out));
                "array"
            }
            serde_json::Value::Object(map) => {
                map.iter().for_each(|(k, x)| walk(x, format!("{path}.{k}"), out));
                "object"
            }
        };
        out.entry(path).or_default().insert(kind);
    }
    let mut out = Shape::new();
    walk(&serde_json::from_str(json).unwrap(), String::new(), &mut out);
    out
}

/// The demo release, plus a last migration that checks the tracking table
/// from inside the rehearsal.
#[test]
fn demo_release_applies_in_order_and_is_recorded() {
    let sandbox = Sandbox::new();
    let dir = sandbox.migrations(&[(
        "9999_check_tracking.sql",
        "DO $$ BEGIN
           IF (SELECT count(*) FROM public.rehearse_schema_migrations
                WHERE version IN ('1','2','3','4','5','6','7','8','9','10')) <> 10
           THEN RAISE EXCEPTION 'tracking table holds %', (SELECT array_agg(version) FROM public.rehearse_schema_migrations); END IF;
         END $$;",
    )]);
    for entry in std::fs::read_dir(format!("{REPO}/scenarios/demo/migrations")).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let scenario = sandbox.scenario(&std::path::Path::new(REPO).join("snapshots/demo.dump"), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids[..8], DEMO_PENDING);
    assert_eq!(ids[8..], ["9999_check_tracking"]);
    for m in &report.migrations {
        assert_eq!(m.status, MigrationStatus::Applied, "{}", m.id);
        assert!(m.wal.bytes > 0, "{} wrote WAL (catalog changes at least)", m.id);
        assert!(!m.statements.is_empty(), "{} lists its statements", m.id);
    }
    let by_id = |id: &str| report.migrations.iter().find(|m| m.id == id).unwrap();
    // A table rewrite writes far more WAL than adding a nullable column.
    assert!(by_id("0006_add_orders_public_id").wal.bytes > 100 * by_id("0005_add_users_last_seen_at").wal.bytes);
    assert!(by_id("0006_add_orders_public_id").duration_ms > 0);
    assert_eq!(by_id("0009_backfill_last_seen_at").statements[0].rows, 20_000, "the backfill's row count");
    assert!(out.stdout.contains("0004_index_events_user_id"), "terminal table: {}", out.stdout);
    assert!(out.markdown().contains("## Migrations"));
    assert_v1_contract(&out.json_text(), &out.markdown());

    // A second rehearsal of the same dump starts from the same state.
    let again = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    again.assert_code(0);
    let again_ids: Vec<String> = again.report().migrations.iter().map(|m| m.id.clone()).collect();
    assert_eq!(again_ids, ids);
    sandbox.assert_no_leaks();
}

#[test]
fn a_failing_migration_names_file_line_statement_and_skips_the_rest() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("V1__add_column.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n"),
        (
            "V2__broken.sql",
            "-- a typo in the table name\nUPDATE public.orders SET state = 'new';\n\nALTER TABLE public.ordrs\n  ADD COLUMN shipped boolean;\n",
        ),
        ("V10__later.sql", "CREATE TABLE public.later (id int);\n"),
    ]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(2);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Failed);
    let statuses: Vec<_> = report.migrations.iter().map(|m| (m.id.as_str(), m.status)).collect();
    assert_eq!(
        statuses,
        [
            ("V1__add_column", MigrationStatus::Applied),
            ("V2__broken", MigrationStatus::Failed),
            ("V10__later", MigrationStatus::Skipped)
        ]
    );
    let error = report.migrations[1].error.as_ref().unwrap();
    assert!(error.file.as_deref().unwrap().ends_with("V2__broken.sql"));
    assert_eq!(error.line, Some(4), "the line of the statement's error position");
    assert!(error.statement.as_deref().unwrap().starts_with("ALTER TABLE public.ordrs"));
    assert!(error.message.contains("relation \"public.ordrs\" does not exist"), "{}", error.message);
    assert_eq!(error.sqlstate.as_deref(), Some("42P01"));
    let md = out.markdown();
    assert!(md.contains("V2__broken.sql` line 4") && md.contains("ALTER TABLE public.ordrs"), "{md}");
    sandbox.assert_no_leaks();
}

#[test]
fn a_failed_transactional_file_is_rolled_back_whole() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_half.sql", "CREATE TABLE public.half (id int);\nSELECT 1/0;\n")]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(2);
    let m = &out.report().migrations[0];
    assert_eq!(m.statements.len(), 2);
    assert!(m.error.as_ref().unwrap().message.contains("division by zero"));
    assert!(!m.error.as_ref().unwrap().message.contains("stay applied"), "a transactional file leaves nothing behind");
}

#[test]
fn concurrent_index_builds_run_outside_a_transaction() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        (
            "0001_index.sql",
            "CREATE INDEX CONCURRENTLY orders_total_idx ON public.orders (total);\nANALYZE public.orders;\n",
        ),
        (
            "0002_check.sql",
            "DO $$ BEGIN IF NOT (SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.orders_total_idx'::regclass)
             THEN RAISE EXCEPTION 'index not valid'; END IF; END $$;",
        ),
    ]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    assert!(out.report().migrations.iter().all(|m| m.status == MigrationStatus::Applied));
    sandbox.assert_no_leaks();
}

fn pending_with_history_table(table: &str, files: &[&str]) -> Vec<String> {
    let sandbox = Sandbox::new();
    let migrations: Vec<(&str, &str)> = files.iter().map(|f| (*f, "SELECT 1;")).collect();
    sandbox.migrations(&migrations);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let text = std::fs::read_to_string(&scenario)
        .unwrap()
        .replace("dir: migrations", &format!("dir: migrations\n  table: {table}"));
    std::fs::write(&scenario, text).unwrap();
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    out.report().migrations.into_iter().map(|m| m.id).collect()
}

#[test]
fn golang_migrate_history_marks_everything_up_to_its_version_applied() {
    assert_eq!(
        pending_with_history_table("schema_migrations", &["1_a.up.sql", "1_a.down.sql", "2_b.up.sql", "3_c.up.sql"]),
        ["3_c"]
    );
}

#[test]
fn flyway_history_marks_successful_versions_applied() {
    assert_eq!(
        pending_with_history_table(
            "public.flyway_schema_history",
            &["V1__a.sql", "V1_1__b.sql", "V2__c.sql", "V3__d.sql"]
        ),
        ["V2__c", "V3__d"],
        "V2 failed in production's history, so it is pending"
    );
}

#[test]
fn an_absent_history_table_marks_nothing_applied() {
    assert_eq!(pending_with_history_table("public.no_such_history", &["1_a.sql", "2_b.sql"]), ["1_a", "2_b"]);
}

/// A misnamed migration file is bad input found in a second, before the dump
/// is read: here a 20 GB (sparse) custom dump, which the snapshot cache
/// would otherwise hash first (a minute or more).
#[test]
fn a_misnamed_file_is_refused_before_a_huge_dump_is_read() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_fine.sql", "SELECT 1;"), ("add_users.sql", "SELECT 1;")]);
    let dump = sandbox.path().join("huge.dump");
    let file = std::fs::File::create(&dump).unwrap();
    std::io::Write::write_all(&mut &file, b"PGDMP\x01\x0e\x00").unwrap();
    file.set_len(20 << 30).unwrap();
    let scenario = sandbox.scenario(&dump, "");
    let started = std::time::Instant::now();
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache"]);
    out.assert_code(3);
    assert!(started.elapsed().as_secs() < 5, "took {:?}: the dump was read first", started.elapsed());
    assert!(out.stderr.contains("add_users.sql has no version prefix"), "{}", out.stderr);
    sandbox.assert_no_leaks();
}
