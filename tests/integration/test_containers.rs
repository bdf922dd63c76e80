//! testcontainers, which starts the tests' own containers (a "production"
//! server: support/containers.rs), against this machine's Docker engine.
//!
//! testcontainers 0.28 (bollard 0.21) does not negotiate the Engine API
//! version: it works with Docker 20.10 (API 1.41, Debian 12's docker.io,
//! which CI runs) only because bollard 0.21 happens to send its requests
//! without a version in the path, which the engine serves at its own
//! version. A bollard that sends its default version (1.53) would be
//! refused by this engine; these tests turn that day red.

use std::sync::mpsc;

use crate::support::{docker_out, rehearse_containers, ServerContainer};

/// The Engine API version of Docker 20.10, the oldest engine the tests run on.
const GUARDED_API: &str = "1.41";

/// Containers, running or not, whose id is `id`.
fn containers_with_id(id: &str) -> String {
    docker_out(&["ps", "--all", "--quiet", "--no-trunc", "--filter", &format!("id={id}")])
}

#[test]
fn pinned_testcontainers_still_runs_postgres_on_this_docker_20_10_engine_api_1_41() {
    // Read by the CLI, which negotiates: what the engine speaks, whatever testcontainers sends.
    let api = docker_out(&["version", "--format", "{{.Server.APIVersion}}"]).trim().to_string();
    assert_eq!(
        api, GUARDED_API,
        "this test guards the pinned testcontainers against Docker 20.10's Engine API {GUARDED_API}, the oldest \
         engine the tests run on; this engine speaks {api}, so it does not check what it is for: run it on Docker 20.10"
    );

    let server = ServerContainer::start();
    let id = server.id().to_string();
    let managed =
        docker_out(&["inspect", "--format", "{{index .Config.Labels \"org.testcontainers.managed-by\"}}", &id]);
    assert_eq!(managed.trim(), "testcontainers", "the engine the CLI talks to holds the container testcontainers made");
    // Reached through the published port, the server answers from inside the
    // container's network namespace: its address is the container's own.
    let inside = docker_out(&["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &id]);
    assert_eq!(server.query_text("SELECT host(inet_server_addr())"), inside.trim());
    assert_eq!(server.query_text("SELECT count(*)::text FROM keep_me"), "1");
    assert!(server.query_text("SHOW shared_preload_libraries").contains("pg_stat_statements"));

    drop(server);
    assert_eq!(containers_with_id(&id), "", "dropping the container removes it");
}

/// The tests' containers are not rehearse's: the checks that no container of
/// rehearse's is left (label `rehearse`) never count them, and `rehearse
/// cleanup` never removes them; their own Drop does, also when their test fails.
#[test]
fn test_containers_are_not_rehearses_and_go_when_their_test_panics() {
    let (sender, started) = mpsc::channel();
    let test = std::thread::spawn(move || {
        let server = ServerContainer::start();
        sender.send(server.id().to_string()).unwrap();
        let rehearses = rehearse_containers();
        assert!(!rehearses.iter().any(|c| server.id().starts_with(c.split(' ').next().unwrap())), "{rehearses:?}");
        panic!("a failing test holding {}", server.name);
    });
    let failure = test.join().expect_err("the test failed");
    let message = failure.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.starts_with("a failing test holding"), "it failed where it should: {message}");
    let id = started.recv().expect("the container was started before the test failed");
    assert_eq!(containers_with_id(&id), "", "the failed test's container was removed as it unwound");
}
