//! Every dump format restores, with owners, grants and the source's row counts.

use rehearse::error::ErrorKind;

use crate::support::{dumps, dumps_needing_postgis, Sandbox};

/// A migration that fails unless the restored data matches the source:
/// counted by the throwaway server itself, not read from the report.
fn check_restore_sql(customers: i64, orders: i64) -> String {
    format!(
        r#"DO $$
BEGIN
  IF (SELECT count(*) FROM public.customers) <> {customers} THEN RAISE EXCEPTION 'customers: % rows', (SELECT count(*) FROM public.customers); END IF;
  IF (SELECT count(*) FROM public.orders) <> {orders} THEN RAISE EXCEPTION 'orders: % rows', (SELECT count(*) FROM public.orders); END IF;
  IF (SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'orders') <> 'app' THEN RAISE EXCEPTION 'orders owner lost'; END IF;
  IF NOT has_table_privilege('Read Only', 'public.orders', 'SELECT') THEN RAISE EXCEPTION 'grant lost'; END IF;
  IF (SELECT count(*) FROM public.orders WHERE note LIKE E'tab\there\n%') = 0 THEN RAISE EXCEPTION 'awkward rows lost'; END IF;
END $$;
"#
    )
}

fn restores(format: &str, detected_as: &str) {
    let d = dumps();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_check_restore.sql", &check_restore_sql(d.customers, d.orders))]);
    let scenario = sandbox.scenario(&d.path(format), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.migrations.len(), 1);
    assert_eq!(report.migrations[0].status, rehearse::report::MigrationStatus::Applied);
    let rows = |t: &str| report.dump.tables.iter().find(|x| x.name == t).map(|x| x.rows);
    assert_eq!(rows("public.customers"), Some(d.customers));
    assert_eq!(rows("public.orders"), Some(d.orders));
    let mut roles = report.restore.roles_created.clone();
    roles.sort();
    assert_eq!(roles, vec!["Read Only".to_string(), "app".to_string()]);
    assert_eq!(
        serde_json::to_value(report.dump.format).unwrap(),
        serde_json::Value::String(detected_as.into()),
        "format detected from content"
    );
    sandbox.assert_no_leaks();
}

#[test]
fn custom_format_restores() {
    restores("custom", "custom");
}

#[test]
fn directory_format_restores() {
    restores("directory", "directory");
}

#[test]
fn tar_format_restores() {
    restores("tar", "tar");
}

#[test]
fn plain_sql_restores() {
    restores("plain", "plain");
}

#[test]
fn gzipped_plain_sql_restores() {
    restores("plain-gz", "plain_gzip");
}

#[test]
fn a_dump_pg_restore_rejects_is_bad_input_with_its_message() {
    let d = dumps();
    let sandbox = Sandbox::new();
    // A custom dump cut in half: the header is right, the body is not.
    let whole = std::fs::read(d.path("custom")).unwrap();
    let cut = sandbox.path().join("cut.dump");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    sandbox.migrations(&[("0001_noop.sql", "SELECT 1;")]);
    let scenario = sandbox.scenario(&cut, "");
    // pg_restore's own message is shown.
    let out = sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], &["pg_restore:"]);
    out.assert_stopped_by(ErrorKind::DumpRejected);
    assert_eq!(out.report().status, rehearse::report::RunStatus::Failed);
    assert_eq!(out.report().stopped_at_stage.map(|s| s.as_str()), Some("restore"));
}

/// A dump of a database that uses PostGIS, on a server without it: the
/// server lacks something (exit 4: install it where the server runs), the
/// dump is fine; in every format.
fn a_missing_extension_is_the_servers(format: &str) {
    // Debian's layout: /usr/lib/postgresql/15/bin runs with /usr/share/postgresql/15/extension.
    let bin = std::path::PathBuf::from(crate::support::pg_bin_dir());
    let major = bin.parent().and_then(|v| v.file_name()).unwrap().to_string_lossy().into_owned();
    let control = format!("/usr/share/postgresql/{major}/extension/postgis.control");
    assert!(
        !std::path::Path::new(&control).exists(),
        "PostGIS is installed here ({control}): this test needs a server without it"
    );
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_noop.sql", "SELECT 1;")]);
    let scenario = sandbox.scenario(&dumps_needing_postgis().join(format), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_stopped_by(ErrorKind::ExtensionMissing);
    for expected in ["extension \"postgis\" is not available", "install postgis for the local PostgreSQL"] {
        assert!(out.stderr.contains(expected), "expected {expected:?} in:\n{}", out.stderr);
    }
    let report = out.report();
    assert_eq!(report.status, rehearse::report::RunStatus::Failed);
    assert_eq!(report.stopped_at_stage.map(|s| s.as_str()), Some("restore"));
    sandbox.assert_no_leaks();
}

#[test]
fn a_plain_dump_needing_an_extension_the_server_lacks_is_an_environment_problem() {
    a_missing_extension_is_the_servers("plain");
}

#[test]
fn a_gzipped_plain_dump_needing_an_extension_the_server_lacks_is_an_environment_problem() {
    a_missing_extension_is_the_servers("plain-gz");
}

#[test]
fn a_custom_dump_needing_an_extension_the_server_lacks_is_an_environment_problem() {
    a_missing_extension_is_the_servers("custom");
}
