//! Bad scenarios fail fast with exit 3, naming the file, line and column,
//! and start nothing.

use crate::support::{dumps, Sandbox};

fn fails_with(sandbox: &Sandbox, yaml: &str, expected: &[&str]) {
    let path = sandbox.write("bad.yaml", yaml);
    let out = sandbox.rehearse(&["run", path.to_str().unwrap()]);
    out.assert_code(3);
    for e in expected {
        assert!(out.stderr.contains(e), "expected {e:?} in:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(!out.reports.exists(), "nothing ran, so no report");
    sandbox.assert_no_leaks();
}

#[test]
fn unknown_key_is_named_with_line_and_column() {
    let s = Sandbox::new();
    fails_with(
        &s,
        "dump: x.dump\nmigrations:\n  tool: sql\n  dir: .\n  tabel: x\n",
        &["bad.yaml:5:3", "unknown field `tabel`"],
    );
}

#[test]
fn bad_duration_is_named_with_line() {
    let s = Sandbox::new();
    fails_with(
        &s,
        "dump: x.dump\nmigrations: {tool: sql, dir: .}\nobserve:\n  sample_interval: 10 parsecs\n",
        &["bad.yaml:4:", "sample_interval"],
    );
}

#[test]
fn bad_size_is_named_with_line() {
    let s = Sandbox::new();
    fails_with(
        &s,
        "dump: x.dump\nmigrations: {tool: sql, dir: .}\nbudgets:\n  migration:\n    max_wal: lots\n",
        &["bad.yaml:5:", "invalid size \"lots\""],
    );
}

#[test]
fn wrong_type_is_named_with_line() {
    let s = Sandbox::new();
    fails_with(
        &s,
        "dump: x.dump\npostgres:\n  restore_jobs: many\nmigrations: {tool: sql, dir: .}\n",
        &["bad.yaml:3:", "restore_jobs"],
    );
}

#[test]
fn missing_dump_names_the_path() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let missing = s.path().join("nowhere/prod.dump");
    fails_with(
        &s,
        "dump: nowhere/prod.dump\nmigrations: {tool: sql, dir: migrations}\n",
        &[missing.to_str().unwrap(), "cannot be read"],
    );
}

#[test]
fn missing_env_var_is_named_with_line() {
    let s = Sandbox::new();
    fails_with(
        &s,
        "dump: x.dump\npostgres:\n  url: postgres://u@${REHEARSE_TEST_SURELY_UNSET}/db\nmigrations: {tool: sql, dir: .}\n",
        &["bad.yaml:3:", "REHEARSE_TEST_SURELY_UNSET is not set"],
    );
}

#[test]
fn random_bytes_are_not_a_dump() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    std::fs::write(s.path().join("noise.dump"), [0x13u8, 0x00, 0xfe, 0x99, 0x42, 0x00, 0x17]).unwrap();
    fails_with(
        &s,
        "dump: noise.dump\nmigrations: {tool: sql, dir: migrations}\n",
        &["is not pg_dump output", "13 00 fe 99"],
    );
}

#[test]
fn unversioned_migration_file_is_bad_input() {
    let s = Sandbox::new();
    s.migrations(&[("add_users.sql", "SELECT 1;")]);
    let dump = dumps().path("custom");
    let scenario = s.scenario(&dump, "");
    let out = s.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(3);
    assert!(out.stderr.contains("add_users.sql has no version prefix"), "{}", out.stderr);
    s.assert_no_leaks();
}

#[test]
fn unknown_flag_is_bad_input_not_a_migration_failure() {
    let s = Sandbox::new();
    let out = s.rehearse(&["run", "x.yaml", "--no-such-flag"]);
    out.assert_code(3);
}
