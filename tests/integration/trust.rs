//! A run that did not happen on the copy is never a PASS: whatever the tool
//! said, rehearse reads the throwaway database itself (src/run/proof.rs).

use rehearse::error::ErrorKind;
use rehearse::report::RunStatus;

use crate::support::{dumps, venv_python, Sandbox, REPO};

/// An env.py that connects through its own setting (APP_DATABASE_URL, as Airflow's
/// reads AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: tests/fixtures/alembic_appenv) and falls back to SQLite when
/// it is unset: the revisions run in the SQLite file and Alembic exits 0.
#[test]
fn an_env_py_that_falls_back_to_sqlite_is_exit_4_never_passed() {
    let sandbox = Sandbox::new();
    let scenario = sandbox.write(
        "elsewhere.yaml",
        &format!(
            "dump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: alembic\n  dir: {REPO}/tests/fixtures/alembic_appenv\n  python: {}\n",
            dumps().path("custom").display(),
            venv_python()
        ),
    );
    let home = sandbox.path().display().to_string();
    let out = sandbox.rehearse_env(&["run", scenario.to_str().unwrap()], &[("APP_HOME", &home)]);
    out.assert_stopped_by(ErrorKind::WrongDatabase);
    assert!(out.stderr.contains("migrations.env"), "says what to do: {}", out.stderr);
    assert_eq!(out.report().status, RunStatus::Failed);
    assert!(!out.stdout.contains("PASSED"), "{}", out.stdout);
    sandbox.assert_no_leaks();
}

/// A command whose `apply` exits 0 without ever connecting to the copy.
#[test]
fn a_command_that_never_opened_a_session_on_the_copy_is_exit_4() {
    let sandbox = Sandbox::new();
    let scenario = sandbox.write(
        "nowhere.yaml",
        &format!(
            "dump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: command\n  revisions: [x1_nothing]\n  apply: \"true\"\n",
            dumps().path("custom").display()
        ),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_stopped_by(ErrorKind::WrongDatabase);
    assert!(out.stderr.contains("x1_nothing") && out.stderr.contains("pg_stat_database.sessions"), "{}", out.stderr);
    assert_eq!(out.report().status, RunStatus::Failed);
    sandbox.assert_no_leaks();
}
