//! The docker backend against a real Docker engine and a real image
//! (REHEARSE_TEST_IMAGE; `make test` builds rehearse-postgres:15): the same
//! rehearsal as the local backend, interrupts that leave no container, and
//! a clear error for an image that is not there.

use nix::sys::signal::Signal;
use rehearse::report::{MigrationStatus, RunStatus};

use crate::support::{
    assert_no_containers, docker_lock, docker_out, dumps, kept_container, run_and_signal, table_lock_modes, test_image,
    tiny_demo_dump, Sandbox, REPO,
};

/// A rewrite, an index build, a backfill and a validated constraint: WAL in
/// megabytes, from table sizes both servers share.
const SAME_RELEASE: &[(&str, &str)] = &[
    ("0001_index.sql", "CREATE INDEX orders_customer_total_idx ON public.orders (customer_id, total);\n"),
    ("0002_rewrite.sql", "ALTER TABLE public.orders ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid();\n"),
    ("0003_backfill.sql", "UPDATE public.customers SET meta = meta || '{\"v\": 1}';\n"),
    ("0004_check.sql", "ALTER TABLE public.orders ADD CONSTRAINT total_not_negative CHECK (total >= 0);\n"),
];

fn docker_backend() -> String {
    format!("backend: docker\n  image: {}", test_image())
}

#[test]
fn docker_and_local_rehearse_the_same_release_alike() {
    let _docker = docker_lock();
    let run = |postgres: &str| {
        let sandbox = Sandbox::new();
        sandbox.migrations(SAME_RELEASE);
        let scenario = sandbox.scenario_on(postgres, &dumps().path("custom"), "");
        let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
        out.assert_code(0);
        sandbox.assert_no_leaks();
        out.report()
    };
    let local = run("backend: local");
    let docker = run(&docker_backend());
    assert_no_containers();
    assert_eq!((local.postgres.backend.as_str(), docker.postgres.backend.as_str()), ("local", "docker"));

    let ids = |r: &rehearse::report::Report| r.migrations.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&local), ids(&docker), "same pending set");
    assert_eq!(ids(&docker).len(), SAME_RELEASE.len());
    assert!(docker.migrations.iter().all(|m| m.status == MigrationStatus::Applied));
    assert_eq!(table_lock_modes(&local), table_lock_modes(&docker), "same lock modes per table");
    assert!(table_lock_modes(&docker)[1].contains(&("public.orders".into(), "AccessExclusiveLock".into())));

    let total = |r: &rehearse::report::Report| r.migrations.iter().map(|m| m.wal.bytes).sum::<u64>() as f64;
    let (l, d) = (total(&local), total(&docker));
    assert!(l > 1e6, "the release writes megabytes of WAL ({l} bytes)");
    assert!((l - d).abs() / l.max(d) < 0.10, "WAL within 10%: local {l} bytes, docker {d} bytes");
    for (lm, dm) in local.migrations.iter().zip(&docker.migrations).filter(|(m, _)| m.wal.bytes > 1_000_000) {
        let (a, b) = (lm.wal.bytes as f64, dm.wal.bytes as f64);
        assert!((a - b).abs() / a.max(b) < 0.10, "{}: WAL local {a}, docker {b}", lm.id);
    }
    assert!(!docker.migrations[1].top_statements.is_empty(), "pg_stat_statements was preloaded in the container");
}

fn interrupted(signal: Signal, during: &str) {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let demo = std::path::Path::new(REPO).join("snapshots/demo.dump");
    let (dump, when) = match during {
        // The demo snapshot takes seconds to restore and to VACUUM ANALYZE: time to be interrupted.
        "restore" => (demo, "restore:"),
        "analyze" => (demo, "analyze:"),
        // Starting a container takes seconds too.
        "provision" => (tiny_demo_dump().clone(), "provision:"),
        _ => (tiny_demo_dump().clone(), "migration 2/3"),
    };
    sandbox.migrations(&[
        ("0001_quick.sql", "CREATE TABLE public.quick (id int);"),
        ("0002_slow.sql", "SELECT pg_sleep(60);"),
        ("0003_never.sql", "SELECT 1;"),
    ]);
    let scenario = sandbox.scenario_on(&docker_backend(), &dump, "");
    let started = std::time::Instant::now();
    let out = run_and_signal(&sandbox, &["run", scenario.to_str().unwrap()], when, signal);
    assert!(started.elapsed().as_secs() < 90, "the interrupted step was stopped, not waited for");
    out.assert_code(130);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Interrupted);
    let stage = if during == "migration" { "rehearse" } else { during };
    assert_eq!(report.stopped_at_stage.map(|s| s.as_str()), Some(stage), "{}", out.stderr);
    if during == "migration" {
        let statuses: Vec<_> = report.migrations.iter().map(|m| m.status).collect();
        assert_eq!(statuses, [MigrationStatus::Applied, MigrationStatus::Interrupted, MigrationStatus::Skipped]);
    }
    assert_no_containers();
    sandbox.assert_no_leaks();
}

#[test]
fn sigterm_during_docker_provisioning_removes_the_container() {
    interrupted(Signal::SIGTERM, "provision");
}

#[test]
fn sigint_during_docker_analyze_removes_the_container() {
    interrupted(Signal::SIGINT, "analyze");
}

#[test]
fn sigint_during_a_docker_restore_removes_the_container() {
    interrupted(Signal::SIGINT, "restore");
}

#[test]
fn sigterm_during_a_docker_restore_removes_the_container() {
    interrupted(Signal::SIGTERM, "restore");
}

#[test]
fn sigint_during_a_docker_migration_removes_the_container() {
    interrupted(Signal::SIGINT, "migration");
}

#[test]
fn sigterm_during_a_docker_migration_removes_the_container() {
    interrupted(Signal::SIGTERM, "migration");
}

#[test]
fn a_missing_image_without_a_registry_is_an_environment_error_naming_it() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let scenario = sandbox.scenario_on("backend: docker", tiny_demo_dump(), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--image", "rehearse-no-such-image:0"]);
    out.assert_code(4);
    assert!(out.stderr.contains("docker image rehearse-no-such-image:0 is not on this machine"), "{}", out.stderr);
    assert!(out.stderr.contains("--image"), "says what to do: {}", out.stderr);
    assert_no_containers();
    sandbox.assert_no_leaks();
}

#[test]
fn a_kept_container_listens_on_loopback_only_and_its_password_stays_out_of_the_output() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "CREATE TABLE public.kept (id int);")]);
    let scenario = sandbox.scenario_on(&docker_backend(), tiny_demo_dump(), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--keep"]);
    out.assert_code(0);
    let id = kept_container(&out.stderr);
    let docker = docker_out;
    // The restarts around the restore (wal_level) are fast shutdowns: a smart
    // one (docker restart's SIGTERM) waits for every session, then is killed.
    let log = std::process::Command::new("docker").args(["logs", &id]).output().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&log.stdout), String::from_utf8_lossy(&log.stderr));
    assert!(log.contains("received fast shutdown request"), "{log}");
    assert!(!log.contains("smart shutdown") && !log.contains("not properly shut down"), "{log}");
    let ports = docker(&["port", &id, "5432"]);
    assert!(!ports.trim().is_empty() && ports.lines().all(|l| l.starts_with("127.0.0.1:")), "published on {ports:?}");
    let env = docker(&["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", &id]);
    let password =
        env.lines().find_map(|l| l.strip_prefix("POSTGRES_PASSWORD=")).expect("the container's password").to_string();
    assert!(password.len() >= 16);
    let report = std::fs::read_to_string(out.reports.join("report.json")).unwrap();
    for text in [&out.stdout, &out.stderr, &report] {
        assert!(!text.contains(&password), "the container's password leaked");
    }
    docker(&["rm", "-f", "-v", &id]);
    assert_no_containers();
    sandbox.assert_no_leaks();
}
