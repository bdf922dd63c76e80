//! Alembic as real projects configure it (Apache Airflow, MLflow): a
//! package beside alembic.ini named like a standard module, SQLAlchemy 2.1
//! with only psycopg2, an env.py that connects through its own setting, a
//! history read somewhere else than the copy's.

use rehearse::error::ErrorKind;
use rehearse::report::{MigrationStatus, Report};

use crate::support::{dumps, made_venv, venv_python, OwnedServer, Sandbox, REPO};

/// An Alembic scenario for a fixture project, to `target`, with `extra` under `migrations:`.
fn scenario(sandbox: &Sandbox, project: &str, python: &str, extra: &str) -> std::path::PathBuf {
    sandbox.write(
        "alembic.yaml",
        &format!(
            "name: alembic-env\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: alembic\n  dir: {REPO}/tests/fixtures/{project}\n  target: r5_backfill_state\n  python: {python}\n{extra}",
            dumps().path("custom").display(),
        ),
    )
}

fn run(sandbox: &Sandbox, scenario: &std::path::Path) -> crate::support::RunOutput {
    sandbox.rehearse(&["run", scenario.to_str().unwrap()])
}

/// The four revisions after the dump's r2 applied, on the copy: r5's UPDATE touched every order.
fn assert_migrated_the_copy(report: &Report) {
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    for m in &report.migrations {
        assert_eq!(m.status, MigrationStatus::Applied, "{}: {:?}", m.id, m.error);
    }
    let backfill = report.migrations.last().unwrap();
    let update = backfill.statements.iter().find(|s| s.query.starts_with("UPDATE orders")).expect("traced UPDATE");
    assert_eq!(update.rows as i64, dumps().orders, "the copy's orders were updated");
}

/// The driver the report says SQLAlchemy used, and who named it.
fn driver(report: &Report) -> String {
    let launch = report.launch.as_ref().expect("launch in the report");
    launch.tool_versions.iter().find(|v| v.name == "driver").map(|v| v.value.clone()).unwrap_or_default()
}

#[test]
fn a_package_beside_alembic_ini_named_like_a_standard_module_does_not_shadow_it() {
    let sandbox = Sandbox::new();
    // alembic_shadow/logging/ is empty: imported instead of the standard
    // module, SQLAlchemy fails on logging.getLogger (Airflow's airflow/logging/).
    let path = scenario(&sandbox, "alembic_shadow", &venv_python(), "");
    let out = run(&sandbox, &path);
    out.assert_code(0);
    assert_migrated_the_copy(&out.report());
    sandbox.assert_no_leaks();
}

#[test]
fn a_broken_environment_in_the_projects_folder_fails_before_the_restore() {
    let sandbox = Sandbox::new();
    // PYTHONPATH=. puts the folder back on sys.path, ahead of the standard
    // library: broken there, the check run there says so before anything starts.
    let path = scenario(&sandbox, "alembic_shadow", &venv_python(), "  env: { PYTHONPATH: \".\" }\n");
    let out = run(&sandbox, &path);
    out.assert_code(4).assert_nothing_ran();
    assert!(
        out.stderr.contains("cannot import Alembic and SQLAlchemy, run in") && out.stderr.contains("alembic_shadow"),
        "{}",
        out.stderr
    );
}

#[test]
fn sqlalchemy_2_1_with_only_psycopg2_runs_through_psycopg2() {
    // MLflow's documented setup: SQLAlchemy 2.1 maps a bare postgresql:// to
    // psycopg 3, which this environment does not have.
    let python = made_venv("sa21-psycopg2", &["sqlalchemy>=2.1", "alembic", "psycopg2-binary"]);
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "alembic_url", &python, "");
    let out = run(&sandbox, &path);
    out.assert_code(0);
    let report = out.report();
    assert_migrated_the_copy(&report);
    assert_eq!(driver(&report), "psycopg2 (the first PostgreSQL driver this Python imports)");
    let versions = &report.launch.as_ref().unwrap().tool_versions;
    assert!(versions.iter().any(|v| v.name == "sqlalchemy" && v.value.starts_with("2.1")), "{versions:?}");
    assert!(!versions.iter().any(|v| v.name == "psycopg"), "psycopg 3 is not there: {versions:?}");
    sandbox.assert_no_leaks();
}

#[test]
fn a_python_without_a_postgresql_driver_is_told_what_to_install_before_the_restore() {
    let python = made_venv("sa21-no-driver", &["sqlalchemy>=2.1", "alembic"]);
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "alembic_url", &python, "");
    let out = run(&sandbox, &path);
    out.assert_code(4).assert_nothing_ran();
    assert!(
        out.stderr.contains("has no PostgreSQL driver SQLAlchemy can use")
            && out.stderr.contains(&format!("`{python} -m pip install 'psycopg2-binary'`")),
        "{}",
        out.stderr
    );
}

#[test]
fn the_driver_the_scenario_names_is_the_one_used_and_one_that_does_not_load_is_refused() {
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "alembic_url", &venv_python(), "  driver: psycopg2\n");
    let out = run(&sandbox, &path);
    out.assert_code(0);
    assert_eq!(driver(&out.report()), "psycopg2 (migrations.driver)");

    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "alembic_url", &venv_python(), "  driver: pg8000\n");
    let out = run(&sandbox, &path);
    out.assert_code(4).assert_nothing_ran();
    assert!(
        out.stderr.contains("the PostgreSQL driver pg8000 (named by migrations.driver) does not load")
            && out.stderr.contains("pip install 'pg8000'"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_env_py_on_its_own_settings_is_refused_naming_where_it_connected() {
    let sandbox = Sandbox::new();
    let sqlite = format!("{REPO}/tests/fixtures/alembic_ownsettings/app.db");
    let _ = std::fs::remove_file(&sqlite);
    // Without APP_DB_URL, env.py falls back to SQLite, as Airflow does without
    // AIRFLOW__DATABASE__SQL_ALCHEMY_CONN (where it once ran 124 revisions and passed).
    let path = scenario(&sandbox, "alembic_ownsettings", &venv_python(), "");
    let out = run(&sandbox, &path);
    out.assert_stopped_by(ErrorKind::WrongDatabase);
    assert!(
        out.stderr.contains("env.py connected to sqlite:///")
            && out.stderr.contains("alembic_ownsettings/app.db")
            && out.stderr.contains("{sqlalchemy_url}"),
        "names where it connected, and what to set: {}",
        out.stderr
    );
    assert!(!std::path::Path::new(&sqlite).exists(), "stopped before SQLite made its file");
    sandbox.assert_no_leaks();
}

#[test]
fn an_env_py_given_sqlalchemy_url_in_its_own_setting_migrates_the_copy() {
    let sandbox = Sandbox::new();
    let path =
        scenario(&sandbox, "alembic_ownsettings", &venv_python(), "  env: { APP_DB_URL: \"{sqlalchemy_url}\" }\n");
    let out = run(&sandbox, &path);
    out.assert_code(0);
    assert_migrated_the_copy(&out.report());
    let shown = format!("{}{}{}", out.stdout, out.stderr, out.json_text());
    assert!(!shown.contains("postgresql+psycopg://rehearse:"), "the expanded value (with its password) is never shown");
    sandbox.assert_no_leaks();
}

#[test]
fn an_env_py_connecting_to_another_postgresql_server_is_refused_without_its_password() {
    let other = OwnedServer::start();
    let sandbox = Sandbox::new();
    let url = other.url().replacen("postgres://", "postgresql+psycopg2://", 1);
    let path =
        // On the host's network, on purpose: in its own namespace the tool would not reach the server at all
        // (trust_isolation.rs); there the connection guard is what stops it.
        scenario(
            &sandbox,
            "alembic_ownsettings",
            &venv_python(),
            &format!("  env: {{ APP_DB_URL: \"{url}\" }}\n  network: host\n"),
        );
    let out = run(&sandbox, &path);
    out.assert_stopped_by(ErrorKind::WrongDatabase);
    assert!(
        out.stderr.contains("env.py connected to database postgres on host 127.0.0.1 port"),
        "names where it connected: {}",
        out.stderr
    );
    assert!(!out.stderr.contains(other.conn.password.expose()), "{}", out.stderr);
    sandbox.assert_no_leaks();
}

#[test]
fn heads_env_py_read_elsewhere_than_the_copys_version_table_are_refused_naming_both() {
    let sandbox = Sandbox::new();
    let path = scenario(&sandbox, "alembic_search_path", &venv_python(), "");
    let out = run(&sandbox, &path);
    out.assert_stopped_by(ErrorKind::WrongDatabase);
    assert!(
        out.stderr.contains("reported the database at r1_base")
            && out.stderr.contains("alembic_version on the throwaway database holds r2_orders_note_index"),
        "{}",
        out.stderr
    );
    sandbox.assert_no_leaks();
}

#[test]
fn a_command_tool_gets_url_and_sqlalchemy_url_in_its_environment() {
    let sandbox = Sandbox::new();
    // The apply command checks what it was given, and fails (exit 7) otherwise.
    let check = r#"test "$APP_URL" = "$DATABASE_URL" && case "$APP_SQLALCHEMY" in postgresql+psycopg2://*) psql -XAtq "$APP_URL" -c "SELECT 1" ;; *) exit 7 ;; esac"#;
    let body = format!(
        "dump: {}\nmigrations:\n  tool: command\n  revisions: [one]\n  apply: '{check}'\n  env: {{ APP_URL: \"{{url}}\", APP_SQLALCHEMY: \"{{sqlalchemy_url}}\" }}\n",
        dumps().path("custom").display()
    );
    let path = sandbox.write("command.yaml", &format!("{body}  driver: psycopg2\n"));
    let out = sandbox.rehearse(&["run", path.to_str().unwrap()]);
    out.assert_code(0);

    // A shell command has no interpreter to ask which driver: it must be named.
    let path = sandbox.write("no-driver.yaml", &body);
    let out = sandbox.rehearse_bad_input(&["run", path.to_str().unwrap()], &["APP_SQLALCHEMY uses {sqlalchemy_url}"]);
    assert!(out.stderr.contains("migrations.driver"), "{}", out.stderr);
}
