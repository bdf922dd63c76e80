//! The url backend against "a server the user owns": a PostgreSQL server in
//! a container the test starts (testcontainers, support/containers.rs),
//! reached over TCP from outside its network namespace, as production is.
//! The rehearsal works in a database of its own, and afterwards the server
//! has exactly the databases and roles it had before. (Signals during a url rehearsal:
//! signals.rs; what a killed one leaves and `rehearse cleanup --url`: cleanup.rs.)

use rehearse::kinds::BackendKind;
use rehearse::report::MigrationStatus;

use crate::support::{dumps, tiny_demo_dump, OwnedServer, Sandbox, ServerContainer};

#[test]
fn url_backend_rehearses_in_its_own_database_and_leaves_the_server_as_it_was() {
    let server = ServerContainer::start();
    let before = server.state();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_add.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n"),
        ("0002_index.sql", "CREATE INDEX orders_state_idx ON public.orders (state);\n"),
    ]);
    // The URL (and its password) comes from the environment, as in CI.
    let scenario = sandbox.scenario_on(
        "backend: url\n  url: ${REHEARSE_TEST_URL}\n  settings:\n    work_mem: 32MB\n    max_wal_size: 2GB",
        &dumps().path("custom"),
        "",
    );
    let mut cmd = sandbox.command(&["run", scenario.to_str().unwrap()]);
    cmd.env("REHEARSE_TEST_URL", server.url());
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let text = std::fs::read_to_string(sandbox.reports().join("report.json")).unwrap();
    let report: rehearse::report::Report = serde_json::from_str(&text).unwrap();
    assert_eq!(report.postgres.backend, BackendKind::Url);
    assert!(report.migrations.iter().all(|m| m.status == MigrationStatus::Applied));
    assert!(report.migrations[1].wal.bytes > 0);
    let setting = |name: &str| report.postgres.settings.iter().find(|s| s.name == name).map(|s| s.value.clone());
    assert_eq!(setting("work_mem").as_deref(), Some("32MB"), "a per-database setting is applied");
    let limitations = report.observation.limitations.join("\n");
    assert!(limitations.contains("max_wal_size = 2GB was not applied"), "{limitations}");
    assert!(limitations.contains("restored without owners and grants"), "{limitations}");
    let password = server.conn.password.expose();
    assert!(!text.contains(password) && !stderr.contains(password) && !stdout.contains(password), "password leaked");

    assert_eq!(server.state(), before, "the server has exactly the databases, roles and data it had");
    sandbox.assert_no_leaks();
}

/// A staging server without pg_stat_statements preloaded: the rehearsal
/// passes, its top statements are missing, and the report says why.
#[test]
fn url_backend_without_pg_stat_statements_preloaded_notes_it_and_goes_on() {
    let server = OwnedServer::start_without_pg_stat_statements();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_add.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n"),
        ("0002_fill.sql", "UPDATE public.orders SET state = 'new';\n"),
    ]);
    let scenario = sandbox.scenario_on("backend: url", tiny_demo_dump(), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--url", &server.url()]);
    out.assert_code(0);
    let report = out.report();
    assert!(report.migrations.iter().all(|m| m.status == MigrationStatus::Applied));
    assert!(report.migrations.iter().all(|m| m.top_statements.is_empty()));
    let limitations = report.observation.limitations.join("\n");
    assert!(limitations.contains("per-statement statistics unavailable"), "{limitations}");
    assert!(limitations.contains("shared_preload_libraries"), "{limitations}");
    assert!(out.markdown().contains("per-statement statistics unavailable"), "the Markdown report says it too");
    sandbox.assert_no_leaks();
}
