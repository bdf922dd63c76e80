//! The docker backend against a real Docker engine and a real image
//! (REHEARSE_TEST_IMAGE; `make test` builds rehearse-postgres:15): the same
//! rehearsal as the local backend, a kept container that stays private, and
//! a clear error for an image that is not there. (Interrupts that leave no
//! container: signals.rs.)

use rehearse::error::ErrorKind;
use rehearse::kinds::BackendKind;
use rehearse::report::MigrationStatus;

use crate::support::{
    assert_no_containers, docker_backend, docker_lock, docker_out, dumps, dumps_needing_postgis, kept_container,
    table_lock_modes, test_image, tiny_demo_dump, Sandbox,
};

/// A rewrite, an index build, a backfill and a validated constraint: WAL in
/// megabytes, from table sizes both servers share.
const SAME_RELEASE: &[(&str, &str)] = &[
    ("0001_index.sql", "CREATE INDEX orders_customer_total_idx ON public.orders (customer_id, total);\n"),
    ("0002_rewrite.sql", "ALTER TABLE public.orders ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid();\n"),
    ("0003_backfill.sql", "UPDATE public.customers SET meta = meta || '{\"v\": 1}';\n"),
    ("0004_check.sql", "ALTER TABLE public.orders ADD CONSTRAINT total_not_negative CHECK (total >= 0);\n"),
];

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
    assert_eq!((local.postgres.backend, docker.postgres.backend), (BackendKind::Local, BackendKind::Docker));

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

#[test]
fn a_missing_image_without_a_registry_is_an_environment_error_naming_it() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let scenario = sandbox.scenario_on("backend: docker", tiny_demo_dump(), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--image", "rehearse-no-such-image:0"]);
    out.assert_stopped_by(ErrorKind::ImageUnavailable);
    assert!(out.stderr.contains("rehearse-no-such-image:0"), "names it: {}", out.stderr);
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

/// A container of the test's own, removed (with its volumes) when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").args(["rm", "-f", "-v", &self.0]).output();
    }
}

#[test]
fn the_test_image_serves_connections_with_its_default_command() {
    let _docker = docker_lock();
    let password = "default-command-pw";
    // No command after the image: its CMD, `postgres`, as `docker run IMAGE` runs it.
    let env = format!("POSTGRES_PASSWORD={password}");
    let id = docker_out(&["run", "-d", "-e", &env, "-p", "127.0.0.1::5432", &test_image()]);
    let container = Container(id.trim().to_string());
    let logs = || {
        let out = std::process::Command::new("docker").args(["logs", &container.0]).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let port: u16 = docker_out(&["port", &container.0, "5432"])
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .expect("5432 published on loopback");
    let server = rehearse::sys::db::ConnInfo {
        host: "127.0.0.1".into(),
        port,
        user: "postgres".into(),
        password: rehearse::sys::db::Secret::from_string(password.into()),
        dbname: "postgres".into(),
        admin_dbname: "postgres".into(),
        tls: Default::default(),
        password_command: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let started = std::time::Instant::now();
    let answer: i32 = loop {
        let running = docker_out(&["inspect", "-f", "{{.State.Running}}", &container.0]);
        assert_eq!(running.trim(), "true", "the container exited; its log:\n{}", logs());
        // Until initdb and the temporary socket-only server are done, the
        // published port accepts and closes: try again.
        let tried = rt.block_on(async {
            let client = rehearse::sys::db::connect(&server, "postgres", "test").await?;
            client.query_one("SELECT 1", &[]).await.map(|row| row.get(0))
        });
        match tried {
            Ok(answer) => break answer,
            Err(e) if started.elapsed().as_secs() < 90 => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(e) => panic!("no connection within 90s ({e}); the container's log:\n{}", logs()),
        }
    };
    assert_eq!(answer, 1);
}

/// A dump that needs PostGIS, in an image without it: use an image that
/// has it (exit 4), whose server restores inside the container.
#[test]
fn a_dump_needing_an_extension_the_image_lacks_asks_for_an_image_that_has_it() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_noop.sql", "SELECT 1;")]);
    let scenario = sandbox.scenario_on(&docker_backend(), &dumps_needing_postgis().join("custom"), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_stopped_by(ErrorKind::ExtensionMissing);
    for expected in ["use a server image that has postgis installed", "--image"] {
        assert!(out.stderr.contains(expected), "expected {expected:?} in:\n{}", out.stderr);
    }
    assert_no_containers();
    sandbox.assert_no_leaks();
}
