//! The report directory is checked before anything starts: one that cannot
//! be written, or has no room for the reports, fails in seconds with
//! nothing provisioned (exit 4), rather than after the whole rehearsal; a
//! file where the directory should be is bad input (exit 3).
//!
//! Tests run as root, which writes through any mode bits, so "cannot be
//! written" is a filesystem mounted read-only, and "full" a tiny one: each
//! a tmpfs mounted in a mount namespace of the run's own (`unshare -m`),
//! which nothing outside it sees.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{RunOutput, Sandbox, REPO};

/// Fails in far less than the demo dump's restore alone takes.
const WITHIN_SECONDS: Duration = Duration::from_secs(15);

/// `rehearse ARGS` (with `--out dir`) run in a mount namespace where `dir`
/// is a fresh tmpfs mounted with `options`, after `prepare` (shell) ran in it.
fn rehearse_on_tmpfs(sandbox: &Sandbox, args: &[&str], dir: &Path, options: &str, prepare: &str) -> RunOutput {
    std::fs::create_dir_all(dir).unwrap();
    let run = sandbox.command(&[args, &["--out", dir.to_str().unwrap()]].concat());
    let script = format!("mount -t tmpfs -o {options} tmpfs \"$0\" && {prepare} && exec \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]).arg(dir).arg(run.get_program());
    cmd.args(run.get_args()).current_dir(sandbox.path());
    for (key, value) in run.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let out = cmd.output().expect("unshare runs (util-linux, as root)");
    RunOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        reports: dir.to_path_buf(),
    }
}

/// Exit 4 within seconds, each of `expected` on stderr, no stage started,
/// nothing left.
fn refused_up_front(sandbox: &Sandbox, out: &RunOutput, took: Duration, expected: &[&str]) {
    out.assert_code(4);
    assert!(took < WITHIN_SECONDS, "refused after {took:?}");
    for e in expected {
        assert!(out.stderr.contains(e), "expected {e:?} in:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("provision:"), "nothing was provisioned:\n{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    sandbox.assert_no_leaks();
}

fn demo_scenario(sandbox: &Sandbox) -> String {
    sandbox.migrations(&[("9001_quick.sql", "SELECT 1;")]);
    let scenario = sandbox.scenario(&Path::new(REPO).join("snapshots/demo.dump"), "");
    scenario.to_str().unwrap().to_string()
}

#[test]
fn a_read_only_report_dir_fails_before_anything_starts() {
    let sandbox = Sandbox::new();
    let scenario = demo_scenario(&sandbox);
    let dir = sandbox.path().join("read-only");
    let started = Instant::now();
    // Room enough (64 MiB): only writing is refused.
    let out = rehearse_on_tmpfs(&sandbox, &["run", &scenario], &dir, "ro,size=64m", "true");
    let expected = ["cannot write in the report directory", dir.to_str().unwrap(), "(--out)", "Read-only file system"];
    refused_up_front(&sandbox, &out, started.elapsed(), &expected);
}

#[test]
fn a_full_report_dir_fails_before_anything_starts() {
    let sandbox = Sandbox::new();
    let scenario = demo_scenario(&sandbox);
    let dir = sandbox.path().join("full");
    let started = Instant::now();
    // 64 KiB, filled to the last block.
    let fill = "{ cat /dev/zero > \"$0/filler\" 2>/dev/null; true; }";
    let out = rehearse_on_tmpfs(&sandbox, &["run", &scenario], &dir, "size=64k", fill);
    let expected = ["the report directory", "has 0 B free", "the reports need up to 8.0 MB", "free some space"];
    refused_up_front(&sandbox, &out, started.elapsed(), &expected);
}

#[test]
fn a_file_in_place_of_the_report_dir_is_bad_input() {
    let sandbox = Sandbox::new();
    let scenario = demo_scenario(&sandbox);
    let file = sandbox.write("reports.txt", "not a directory\n");
    for out_dir in [file.clone(), file.join("nightly")] {
        let out = sandbox.rehearse_bad_input(
            &["run", &scenario, "--out", out_dir.to_str().unwrap()],
            &["the report directory", "(--out)", &format!("{} is a file, not a directory", file.display())],
        );
        assert!(out.stdout.is_empty() && !out.stderr.contains("provision:"), "{}", out.stderr);
    }
}

#[test]
fn a_missing_report_dir_is_made_for_a_run_that_starts() {
    let sandbox = Sandbox::new();
    let scenario = demo_scenario(&sandbox);
    let dir = sandbox.path().join("nights/2026-12-04");
    // A run whose migrations cannot run (no such interpreter) never starts: no directory.
    let refused = sandbox.write(
        "alembic.yaml",
        &format!(
            "dump: {REPO}/snapshots/demo.dump\nmigrations:\n  tool: alembic\n  dir: {REPO}/tests/fixtures/alembic_dburl\n  \
             python: /nonexistent/python\n"
        ),
    );
    let out = sandbox.rehearse(&["run", refused.to_str().unwrap(), "--out", dir.to_str().unwrap()]);
    out.assert_code(4);
    assert!(!sandbox.path().join("nights").exists(), "nothing started, so no report directory");
    // One that starts makes it, and writes there.
    let out = sandbox.rehearse(&["run", &scenario, "--out", dir.to_str().unwrap()]);
    out.assert_code(0);
    assert!(dir.join("report.json").is_file());
    sandbox.assert_no_leaks();
}
