//! `backend: auto`: local binaries when there are some, Docker when there
//! are none, and exit 4 naming both remedies when neither is there. PATH is
//! stripped and REHEARSE_PG_SEARCH=path hides /usr/lib/postgresql and
//! pg_config, so "no binaries" is real for the run under test.

use std::path::Path;
use std::process::Command;

use rehearse::kinds::BackendKind;

use crate::support::{assert_no_containers, docker_lock, test_image, tiny_demo_dump, Sandbox};

/// A PATH holding only `docker` (when `with_docker`): no PostgreSQL binaries on it.
fn bare_path(sandbox: &Sandbox, with_docker: bool) -> std::path::PathBuf {
    let bin = sandbox.path().join(if with_docker { "bin-docker" } else { "bin-empty" });
    std::fs::create_dir_all(&bin).unwrap();
    if with_docker {
        let out = Command::new("sh").args(["-c", "command -v docker"]).output().unwrap();
        let docker = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!docker.is_empty(), "the docker CLI is on PATH");
        std::os::unix::fs::symlink(Path::new(&docker), bin.join("docker")).unwrap();
    }
    bin
}

fn auto_scenario(sandbox: &Sandbox) -> String {
    sandbox.migrations(&[("0001_a.sql", "CREATE TABLE public.a (id int);")]);
    sandbox.scenario_on("backend: auto", tiny_demo_dump(), "").to_str().unwrap().to_string()
}

#[test]
fn auto_picks_local_binaries_when_they_exist() {
    let sandbox = Sandbox::new();
    let scenario = auto_scenario(&sandbox);
    let out = sandbox.rehearse(&["run", &scenario]);
    out.assert_code(0);
    assert_eq!(out.report().postgres.backend, BackendKind::Local);
    sandbox.assert_no_leaks();
}

#[test]
fn auto_picks_docker_when_there_are_no_binaries() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let scenario = auto_scenario(&sandbox);
    let image = test_image();
    let mut cmd = sandbox.command(&["run", &scenario, "--image", &image]);
    cmd.env("PATH", bare_path(&sandbox, true)).env("REHEARSE_PG_SEARCH", "path");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: rehearse::report::Report =
        serde_json::from_str(&std::fs::read_to_string(sandbox.reports().join("report.json")).unwrap()).unwrap();
    assert_eq!(report.postgres.backend, BackendKind::Docker);
    assert_no_containers();
    sandbox.assert_no_leaks();
}

#[test]
fn auto_without_binaries_or_docker_exits_4_with_both_remedies() {
    let sandbox = Sandbox::new();
    let scenario = auto_scenario(&sandbox);
    let mut cmd = sandbox.command(&["run", &scenario]);
    cmd.env("PATH", bare_path(&sandbox, false)).env("REHEARSE_PG_SEARCH", "path");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    for remedy in ["apt-get install postgresql-15", "--pg-bin", "apt-get install docker.io", "systemctl start docker"] {
        assert!(stderr.contains(remedy), "missing remedy {remedy:?} in:\n{stderr}");
    }
    assert!(!sandbox.reports().exists(), "nothing started, so no report");
    sandbox.assert_no_leaks();
}
