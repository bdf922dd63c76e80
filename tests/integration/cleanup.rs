//! `rehearse cleanup` after a crash: a run killed with SIGKILL cleans up
//! nothing, and `rehearse cleanup` then removes its cluster (server stopped,
//! dir deleted), its container or its database on the user's server, while
//! leaving live runs' leftovers alone.
//! Every test here holds the docker lock: cleanup looks at all containers.

use nix::sys::signal::Signal;

use crate::support::{
    assert_no_containers, docker_backend, docker_lock, rehearse_containers, run_and_signal,
    url_run_signalled_in_its_second_migration, OwnedServer, Sandbox, REPO,
};

fn killed_at_restore(sandbox: &Sandbox, postgres: &str) {
    sandbox.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let demo = std::path::Path::new(REPO).join("snapshots/demo.dump");
    let scenario = sandbox.scenario_on(postgres, &demo, "");
    let out = run_and_signal(sandbox, &["run", scenario.to_str().unwrap()], "restore:", Signal::SIGKILL);
    assert_eq!(out.code, -1, "killed by SIGKILL");
}

#[test]
fn cleanup_after_kill_9_stops_and_removes_the_local_cluster() {
    // `rehearse cleanup` looks at containers too: not while another test's one is about.
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    killed_at_restore(&sandbox, "backend: local");
    let left: Vec<_> = std::fs::read_dir(sandbox.path().join("tmp")).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "SIGKILL leaves the cluster dir behind");
    assert!(!crate::support::processes_mentioning(sandbox.path()).is_empty(), "and its server running");

    let out = sandbox.rehearse(&["cleanup"]);
    out.assert_code(0);
    assert!(out.stdout.contains("removed cluster dir"), "{}", out.stdout);
    sandbox.assert_no_leaks();
    let again = sandbox.rehearse(&["cleanup"]);
    assert!(again.stdout.contains("nothing to clean up"), "{}", again.stdout);
}

#[test]
fn cleanup_after_kill_9_removes_the_container() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    killed_at_restore(&sandbox, &docker_backend());
    assert_eq!(rehearse_containers().len(), 1, "SIGKILL leaves the container behind");

    let out = sandbox.rehearse(&["cleanup"]);
    out.assert_code(0);
    assert!(out.stdout.contains("removed container"), "{}", out.stdout);
    assert_no_containers();
    sandbox.assert_no_leaks();
}

#[test]
fn cleanup_leaves_a_running_rehearsal_alone() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_slow.sql", "SELECT pg_sleep(60);")]);
    let scenario = sandbox.scenario(crate::support::tiny_demo_dump(), "");
    let mut child = sandbox.spawn(&["run", scenario.to_str().unwrap()]);
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0 && !line.contains("migration 1/1") {
        line.clear();
    }
    let out = sandbox.rehearse(&["cleanup"]);
    out.assert_code(0);
    assert!(out.stdout.contains(&format!("in use by a running rehearse (pid {})", child.id())), "{}", out.stdout);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    sandbox.assert_no_leaks();
}

#[test]
fn cleanup_with_url_drops_the_database_a_killed_run_left() {
    let _docker = docker_lock();
    let server = OwnedServer::start();
    let before = server.state();
    let (sandbox, out) = url_run_signalled_in_its_second_migration(&server, Signal::SIGKILL);
    assert_eq!(out.code, -1, "killed by SIGKILL");
    let (dbs, _, _, _) = server.state();
    assert_eq!(dbs.len(), before.0.len() + 1, "SIGKILL leaves the throwaway database behind: {dbs:?}");

    let cleaned = sandbox.rehearse(&["cleanup", "--url", &server.url()]);
    cleaned.assert_code(0);
    assert!(cleaned.stdout.contains("removed database rehearse_"), "{}", cleaned.stdout);
    assert!(!cleaned.stdout.contains(server.conn.password.expose()), "password leaked: {}", cleaned.stdout);
    assert_eq!(server.state(), before);
}

#[test]
fn cleanup_after_kill_9_during_a_migration_with_a_standby_removes_both_clusters() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_slow.sql", "SELECT pg_sleep(60);")]);
    let scenario = sandbox.scenario(&crate::support::dumps().path("custom"), "observe:\n  standby: true\n");
    let out = run_and_signal(&sandbox, &["run", scenario.to_str().unwrap()], "migration 1/1", Signal::SIGKILL);
    assert_eq!(out.code, -1, "killed by SIGKILL");
    let left: Vec<_> = std::fs::read_dir(sandbox.path().join("tmp")).unwrap().flatten().collect();
    assert_eq!(left.len(), 2, "SIGKILL leaves the primary's and the standby's cluster dirs behind: {left:?}");

    let out = sandbox.rehearse(&["cleanup"]);
    out.assert_code(0);
    assert_eq!(out.stdout.matches("removed cluster dir").count(), 2, "{}", out.stdout);
    sandbox.assert_no_leaks();
}
