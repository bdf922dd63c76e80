//! The migration tool run from the app's image, as production's pre-deploy
//! Job runs it (`migrations.image`, `migrations.job`): Debian's Alembic 1.8
//! and psycopg2 in the image, not the test machine's .venv; per-revision
//! timings, statements and locks as on this machine; no container left
//! after success, failure or a signal. Every test holds the docker lock.

use nix::sys::signal::Signal;
use rehearse::kinds::RunsIn;
use rehearse::report::MigrationStatus;

use crate::support::{app_image, assert_no_containers, docker_lock, dumps, run_and_signal, Sandbox, REPO};

/// The tests' Job manifest, naming this run's app image, in the sandbox.
fn job_manifest(sandbox: &Sandbox) -> String {
    let text = std::fs::read_to_string(format!("{REPO}/tests/fixtures/k8s/migrate-job.yaml")).unwrap();
    sandbox.write("migrate-job.yaml", &text.replace("rehearse-app:demo", &app_image()));
    "migrate-job.yaml".into()
}

/// A scenario on the fixture dump and the local backend with `migrations` (YAML lines).
fn scenario(sandbox: &Sandbox, migrations: &str) -> std::path::PathBuf {
    let dump = dumps().path("custom");
    sandbox.write(
        "scenario.yaml",
        &format!("name: image\ndump: {}\npostgres:\n  backend: local\nmigrations:\n{migrations}", dump.display()),
    )
}

/// The version `name` the report says the tool ran with.
fn version<'a>(report: &'a rehearse::report::Report, name: &str) -> Option<&'a str> {
    let launch = report.launch.as_ref()?;
    launch.tool_versions.iter().find(|v| v.name == name).map(|v| v.value.as_str())
}

#[test]
fn an_alembic_tree_runs_in_the_app_image_as_its_job_manifest_says() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let job = job_manifest(&sandbox);
    let scenario = scenario(
        &sandbox,
        &format!("  tool: alembic\n  job: {job}\n  job_container: migrate\n  env:\n    SENTRY_DSN: https://example.invalid/1\n"),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    let launch = report.launch.as_ref().expect("the report says how the tool was launched");
    assert_eq!(launch.runs_in, RunsIn::Image);
    assert_eq!((launch.job.as_deref(), launch.container.as_deref()), (Some("fixture-migrate"), Some("migrate")));
    assert_eq!(launch.workdir.as_deref(), Some("/fixtures/alembic_dburl"));
    assert!(launch.image_id.as_deref().is_some_and(|id| id.starts_with("sha256:")), "{launch:?}");
    // The image's own Alembic (Debian's), not the .venv's this machine has.
    assert!(version(&report, "alembic").is_some_and(|v| v.starts_with("1.8.")), "{launch:?}");
    assert!(version(&report, "sqlalchemy").is_some_and(|v| v.starts_with("1.4.")), "{launch:?}");
    // DATABASE_URL is rehearse's to set; SENTRY_DSN the scenario gives; the config map is the cluster's.
    assert_eq!(launch.from_cluster, ["envFrom configMapRef app-config"]);

    // Up to the Job's target, r6_index_state, one revision at a time in one container, traced.
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.last(), Some(&"r6_index_state"), "{ids:?}");
    assert!(report.migrations.iter().all(|m| m.status == MigrationStatus::Applied));
    let first = &report.migrations[0];
    assert!(first.startup_ms.is_some_and(|ms| ms > 0), "the container's start-up is reported apart: {first:?}");
    let index = report.migrations.last().unwrap();
    assert_eq!(index.startup_ms, None, "one container for the release, as the Job runs it");
    assert!(index.statements.iter().any(|s| s.query.contains("CREATE INDEX")), "{:?}", index.statements);
    assert!(index.locks.iter().any(|l| l.relation == "public.orders"), "{:?}", index.locks);
    let md = out.markdown();
    assert!(md.contains("Rehearsed as Job `fixture-migrate` (container `migrate`), image"), "{md}");
    assert_no_containers();
    sandbox.assert_no_leaks();
}

#[test]
fn a_revision_failing_in_the_image_is_a_failed_migration_and_its_container_is_gone() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let scenario =
        scenario(&sandbox, &format!("  tool: alembic\n  image: {}\n  dir: /fixtures/alembic_dburl\n", app_image()));
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(2);
    let report = out.report();
    let failed = report.migrations.iter().find(|m| m.status == MigrationStatus::Failed).expect("one failed");
    assert_eq!(failed.id, "r7_unique_customer");
    let error = failed.error.as_ref().unwrap();
    assert!(error.message.contains("could not create unique index"), "{error:?}");
    assert_no_containers();
    sandbox.assert_no_leaks();
}

#[test]
fn sigint_while_a_tool_runs_in_the_image_removes_its_container() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let scenario = scenario(
        &sandbox,
        &format!("  tool: command\n  image: {}\n  dir: /app\n  revisions: [slow]\n  apply: sleep 60\n", app_image()),
    );
    let started = std::time::Instant::now();
    let out = run_and_signal(&sandbox, &["run", scenario.to_str().unwrap()], "migration 1/1", Signal::SIGINT);
    out.assert_code(130);
    assert!(started.elapsed().as_secs() < 40, "the 60s command was stopped");
    assert_no_containers();
    sandbox.assert_no_leaks();
}

#[test]
fn an_image_this_machine_lacks_is_not_pulled_unless_asked() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let scenario = scenario(&sandbox, "  tool: alembic\n  image: rehearse-no-such-app:0.0.1\n  dir: /app\n");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(4);
    assert!(out.stderr.contains("rehearse-no-such-app:0.0.1 is not on this machine"), "{}", out.stderr);
    assert!(out.stderr.contains("migrations.pull: true"), "{}", out.stderr);
    sandbox.assert_no_leaks();
}

/// Every Kubernetes manifest in the repository is valid, strictly
/// (unknown fields refused), by the schemas kubernetes-validate carries.
#[test]
fn the_job_manifests_are_valid_kubernetes() {
    let mut files = Vec::new();
    for dir in ["scenarios/k8s", "tests/fixtures/k8s"] {
        for entry in std::fs::read_dir(format!("{REPO}/{dir}")).unwrap().flatten() {
            files.push(entry.path());
        }
    }
    // The Kubernetes Job of docs/ci.md, cut out of its code block.
    let ci = std::fs::read_to_string(format!("{REPO}/docs/ci.md")).unwrap();
    let docs: Vec<String> = ci
        .split("```")
        .filter(|block| block.contains("kind: Job"))
        .flat_map(|block| block.trim_start_matches("yaml").split("\n---\n").map(String::from).collect::<Vec<_>>())
        .filter(|doc| doc.contains("apiVersion:"))
        .collect();
    assert!(!docs.is_empty(), "docs/ci.md shows a Job");
    let sandbox = Sandbox::new();
    for (i, doc) in docs.iter().enumerate() {
        files.push(sandbox.write(&format!("ci-{i}.yaml"), doc));
    }
    let validate = format!("{REPO}/.venv/bin/kubernetes-validate");
    let out =
        std::process::Command::new(&validate).arg("--strict").args(&files).output().unwrap_or_else(|e| {
            panic!("{validate}: {e} (make deps installs it into .venv from requirements-alembic.txt)")
        });
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.matches("passed").count() >= files.len(), "{text}");
}

/// From the host's network, the tool in the image reaches the server on
/// the docker backend (its published port) and on the url backend too.
#[test]
fn the_image_reaches_the_server_on_the_docker_and_url_backends() {
    let _docker = docker_lock();
    let migrations = format!(
        "migrations:\n  tool: alembic\n  image: {}\n  dir: /fixtures/alembic_dburl\n  target: r3a_orders_state\n",
        app_image()
    );
    let server = crate::support::OwnedServer::start();
    for postgres in [crate::support::docker_backend(), format!("backend: url\n  url: {}", server.url())] {
        let sandbox = Sandbox::new();
        let scenario = sandbox.write(
            "scenario.yaml",
            &format!("name: image\ndump: {}\npostgres:\n  {postgres}\n{migrations}", dumps().path("custom").display()),
        );
        let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
        out.assert_code(0);
        let report = out.report();
        let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["r3a_orders_state"], "{postgres}");
        assert!(!report.migrations[0].statements.is_empty(), "traced in the image on {postgres}");
        assert_no_containers();
        sandbox.assert_no_leaks();
    }
}

/// Racing replicas run in the image too, as the app's pods would; the copy
/// `kill_one` kills loses its container at once, and a fresh copy finishes.
#[test]
fn replicas_race_in_the_image_and_a_killed_copys_container_is_gone() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let scenario = scenario(
        &sandbox,
        &format!(
            "  tool: alembic\n  image: {}\n  dir: /fixtures/alembic_race\n  env: {{ RACE_LOCK: polling }}\n\
             race: {{ replicas: 3, kill_one: true }}\n",
            app_image()
        ),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    assert!(version(&report, "alembic").is_some_and(|v| v.starts_with("1.8.")), "{:?}", report.launch);
    let race = report.race.as_ref().expect("a race");
    assert_eq!(race.verdict, rehearse::report::RaceVerdict::Safe, "{:#?}", race.reasons);
    assert!(race.kill.is_some() && race.copies.iter().any(|c| c.fresh && c.exit == Some(0)), "{race:#?}");
    assert_no_containers();
    sandbox.assert_no_leaks();
}

/// `make demo-job`: the Alembic demo from the app image as
/// scenarios/k8s/migrate-job.yaml says, then three replicas of the Job's
/// `alembic upgrade head` racing in that image. Which copies fail varies
/// from run to run; that they end at head and fail only as racing copies
/// do does not.
#[test]
fn the_job_demo_runs_from_the_image_and_races_three_replicas_there() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let out = sandbox.rehearse(&["run", &format!("{REPO}/scenarios/alembic-job.yaml")]);
    out.assert_code(0);
    let report = out.report();
    let launch = report.launch.as_ref().unwrap();
    assert_eq!((launch.job.as_deref(), launch.image.as_deref()), (Some("shop-migrate"), Some("rehearse-app:demo")));
    assert_eq!(launch.from_cluster, ["SHOP_FEATURE_FLAGS"]);
    assert_eq!(report.migrations.len(), 7);
    let race = report.race.as_ref().expect("three replicas raced");
    assert_eq!(race.copies.len(), 3);
    assert_eq!(race.versions.found, ["a8_orders_created_at_idx"]);
    assert!(race.copies.iter().any(|c| c.exit == Some(0)), "{:#?}", race.copies);
    use rehearse::report::RaceFailure::{AlreadyExists, DeadlockDetected, VersionTable};
    assert!(
        race.copies
            .iter()
            .filter_map(|c| c.failure)
            .all(|f| matches!(f, VersionTable | AlreadyExists | DeadlockDetected)),
        "{:#?}",
        race.copies
    );
    let md = out.markdown();
    assert!(md.contains("Rehearsed as Job `shop-migrate`") && md.contains("## Racing replicas"), "{md}");
    assert_no_containers();
    sandbox.assert_no_leaks();
}
