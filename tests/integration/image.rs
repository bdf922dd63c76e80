//! rehearse's own image (Dockerfile, `make image`), under real Docker: the
//! demo rehearsed inside it from mounted volumes on the local backend
//! there, a budget breach as exit 1 whatever uid the container runs as,
//! `docker stop` during a migration cleaning up to exit 130, a copy of a
//! cache volume (a snapshot's clone) as a cache hit, and the nightly
//! wrapper keeping the last good night as the baseline. The manifests that
//! run it on Kubernetes are kubernetes.rs's. Every test holds the docker lock.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rehearse::kinds::BackendKind;
use rehearse::report::{CacheStatus, MigrationStatus, RunStatus};

use crate::support::{docker_lock, rehearse_image, tiny_demo_dump, RunOutput, Sandbox, REPO};

/// `docker stop`'s timeout in the stop test: past it, Docker kills (137).
const STOP_TIMEOUT_S: u64 = 20;

/// Who the container runs as.
#[derive(Clone, Copy, Debug)]
enum User {
    /// The image's own `USER` (10001).
    Image,
    /// `--user "$(id -u):$(id -g)"`, as the docs say: the report files are yours.
    Caller,
    /// A uid the image has no passwd entry for (an OpenShift-style random uid).
    Arbitrary,
}

/// A `docker run --rm` of the image in `sandbox`: its `reports/` is
/// /reports and its `tmp/` is the container's TMPDIR (/scratch), both
/// writable by any uid, so what a run leaves there is visible.
struct Container<'a> {
    sandbox: &'a Sandbox,
    name: String,
    args: Vec<String>,
}

impl<'a> Container<'a> {
    fn new(sandbox: &'a Sandbox, user: User) -> Container<'a> {
        for (dir, mode) in [(sandbox.reports(), 0o777), (sandbox.path().join("tmp"), 0o1777)] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let name = format!("rehearse-image-test-{}", sandbox.path().file_name().unwrap().to_string_lossy());
        let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--name".into(), name.clone()];
        match user {
            User::Image => {}
            User::Caller => {
                args.extend(["--user".into(), format!("{}:{}", nix::unistd::getuid(), nix::unistd::getgid())])
            }
            User::Arbitrary => args.extend(["--user".into(), "4242:4242".into()]),
        }
        let container = Container { sandbox, name, args };
        container
            .mount(&sandbox.reports(), "/reports", false)
            .mount(&sandbox.path().join("tmp"), "/scratch", false)
            .env("TMPDIR", "/scratch")
    }

    fn mount(mut self, host: &Path, inside: &str, read_only: bool) -> Self {
        let ro = if read_only { ":ro" } else { "" };
        self.args.extend(["-v".into(), format!("{}:{inside}{ro}", host.display())]);
        self
    }

    fn env(mut self, name: &str, value: &str) -> Self {
        self.args.extend(["-e".into(), format!("{name}={value}")]);
        self
    }

    /// The `docker run` command, `rehearse_args` given to the image's entrypoint.
    fn command(&self, rehearse_args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.args(&self.args).arg(rehearse_image()).args(rehearse_args).stdin(Stdio::null());
        cmd
    }

    fn run(&self, rehearse_args: &[&str]) -> RunOutput {
        let out = self.command(rehearse_args).output().expect("docker runs");
        self.output(out.status, out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn output(&self, status: std::process::ExitStatus, stdout: Vec<u8>, stderr: String) -> RunOutput {
        RunOutput {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
            reports: self.sandbox.reports(),
        }
    }

    /// The container is gone (`--rm`), and its TMPDIR, where the throwaway
    /// server's directory was, is empty.
    fn assert_gone_and_clean(&self) {
        let left = crate::support::docker_out(&["ps", "--all", "--quiet", "--filter", &format!("name={}", self.name)]);
        assert!(left.trim().is_empty(), "container {} is left: {left}", self.name);
        self.sandbox.assert_no_leaks();
    }
}

/// A scenario folder for the container (/scenario): `scenario.yaml` on the
/// tiny demo dump (mounted at /dump/tiny.dump) and `migrations`.
fn scenario_dir(sandbox: &Sandbox, migrations: &[(&str, &str)], extra: &str) -> PathBuf {
    let dir = sandbox.path().join("scenario");
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    for (name, sql) in migrations {
        std::fs::write(dir.join("migrations").join(name), sql).unwrap();
    }
    std::fs::write(
        dir.join("scenario.yaml"),
        format!(
            "name: image\ndump: /dump/tiny.dump\npostgres:\n  backend: local\nmigrations:\n  tool: sql\n  dir: migrations\n\
             report:\n  dir: /reports\n  formats: [table, markdown, json]\n{extra}"
        ),
    )
    .unwrap();
    dir
}

/// The tiny dump and the scenario folder mounted read-only.
fn with_scenario<'a>(container: Container<'a>, scenario: &Path) -> Container<'a> {
    container.mount(tiny_demo_dump(), "/dump/tiny.dump", true).mount(scenario, "/scenario", true)
}

/// The README's command: the demo release from the repository's snapshots/
/// and scenarios/, mounted read-only, on the local backend in the container.
#[test]
fn the_demo_runs_in_the_image_from_mounted_volumes() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let container = Container::new(&sandbox, User::Caller)
        .mount(&Path::new(REPO).join("snapshots"), "/dump", true)
        .mount(&Path::new(REPO).join("scenarios"), "/scenario", true);
    let out = container.run(&["run", "/scenario/image-demo.yaml"]);
    let report = out.assert_demo_verdict();
    assert!(out.stdout.contains(": 8 applied, 0 failed"), "{}", out.stdout);
    assert_eq!(report.postgres.backend, BackendKind::Local);
    assert!(report.postgres.version.as_deref().is_some_and(|v| v.starts_with("15.")), "{:?}", report.postgres);
    assert_eq!(report.migrations.len(), 8);
    for file in ["report.md", "junit.xml"] {
        assert!(sandbox.reports().join(file).is_file(), "{file} in the mounted reports dir");
    }
    container.assert_gone_and_clean();
}

/// Exit 1 on a budget breach, as the image's user and as a uid the image
/// does not know (nss_wrapper gives it a passwd entry for initdb).
#[test]
fn a_budget_breach_is_exit_1_as_the_images_user_and_as_any_uid() {
    let _docker = docker_lock();
    for user in [User::Image, User::Arbitrary] {
        let sandbox = Sandbox::new();
        let scenario = scenario_dir(
            &sandbox,
            &[("0100_slow.sql", "SELECT pg_sleep(0.5);\n")],
            "budgets:\n  migration:\n    max_runtime: 100ms\n",
        );
        let container = with_scenario(Container::new(&sandbox, user), &scenario);
        let out = container.run(&["run", "/scenario/scenario.yaml"]);
        out.assert_code(1);
        assert!(out.stdout.contains("BUDGET EXCEEDED"), "{user:?}: {}", out.stdout);
        // The files are the container user's, private (0600): their being there is what this test can see.
        assert!(sandbox.reports().join("report.json").exists(), "{user:?}: report.json written");
        container.assert_gone_and_clean();
    }
}

/// `docker stop` while a migration sleeps (its server running, not as
/// root): tini passes the SIGTERM to
/// rehearse (or to the nightly wrapper, which passes it on), which cancels
/// the migration, stops and removes the throwaway server, writes the
/// report and exits 130, long before the stop timeout.
#[test]
fn docker_stop_during_a_migration_cleans_up_and_exits_130() {
    let _docker = docker_lock();
    let entry_points: [&[&str]; 2] =
        [&["run", "/scenario/scenario.yaml"], &["rehearse-nightly", "/scenario/scenario.yaml"]];
    for args in entry_points {
        let sandbox = Sandbox::new();
        let scenario = scenario_dir(&sandbox, &[("0100_sleep.sql", "SELECT pg_sleep(30);\n")], "");
        let container = with_scenario(Container::new(&sandbox, User::Caller), &scenario);
        let (out, stop_took) = stop_during(&container, args, "migration 1/1");
        out.assert_code(130);
        assert!(stop_took < Duration::from_secs(STOP_TIMEOUT_S / 2), "{args:?}: docker stop took {stop_took:?}");
        assert!(out.stderr.contains("the throwaway server was cleaned up"), "{}", out.stderr);
        let report_dir = match args[0] {
            "run" => sandbox.reports(),
            _ => only_entry(&sandbox.reports().join("nights")),
        };
        let report: rehearse::report::Report =
            serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap()).unwrap();
        assert_eq!(report.status, RunStatus::Interrupted, "{args:?}");
        assert_eq!(report.migrations[0].status, MigrationStatus::Interrupted);
        assert!(!sandbox.reports().join("latest").exists(), "an interrupted night is no baseline");
        container.assert_gone_and_clean();
    }
}

/// Runs the container, and `docker stop`s it once a stderr line holds
/// `when`; returns the run and how long `docker stop` took.
fn stop_during(container: &Container, args: &[&str], when: &str) -> (RunOutput, Duration) {
    use std::io::{BufRead, BufReader};
    let mut child = container.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let (mut seen, mut line, mut took) = (String::new(), String::new(), None);
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        seen.push_str(&line);
        if took.is_none() && line.contains(when) {
            std::thread::sleep(Duration::from_millis(500));
            assert_server_not_root(&container.name);
            let started = Instant::now();
            crate::support::docker_out(&["stop", "-t", &STOP_TIMEOUT_S.to_string(), &container.name]);
            took = Some(started.elapsed());
        }
        line.clear();
    }
    let out = child.wait_with_output().unwrap();
    let took = took.unwrap_or_else(|| panic!("never saw {when:?} on stderr:\n{seen}"));
    (container.output(out.status, out.stdout, seen), took)
}

/// The throwaway server runs in the container, and not as root (as the
/// caller's root, rehearse runs it as the image's `postgres` user).
fn assert_server_not_root(name: &str) {
    let top = crate::support::docker_out(&["top", name, "-o", "pid,uid,args"]);
    let server: Vec<&str> = top.lines().filter(|l| l.contains("postgres: ") || l.contains("bin/postgres")).collect();
    assert!(!server.is_empty(), "the server runs in the container:\n{top}");
    let root: Vec<&&str> = server.iter().filter(|l| l.split_whitespace().nth(1) == Some("0")).collect();
    assert!(root.is_empty(), "server processes run as root: {root:?}");
}

fn only_entry(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

/// The golden-snapshot pattern (deploy/kubernetes/job-from-snapshot.yaml)
/// with a copy standing in for the volume snapshot's clone: a run with a
/// volume at /cache saves its restore there; a run on a copy of that
/// volume, with TMPDIR on it as the Job sets, restores nothing.
#[test]
fn a_copy_of_the_cache_volume_is_a_cache_hit() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let scenario =
        scenario_dir(&sandbox, &[("0100_add.sql", "ALTER TABLE public.users ADD COLUMN nickname text;\n")], "");
    let (golden, clone) = (sandbox.path().join("golden"), sandbox.path().join("clone"));
    std::fs::create_dir(&golden).unwrap();
    let nightly = with_scenario(Container::new(&sandbox, User::Caller), &scenario).mount(&golden, "/cache", false);
    nightly.run(&["run", "/scenario/scenario.yaml", "--quiet"]).assert_code(0);
    assert_eq!(read_report(&sandbox.reports().join("report.json")).restore.cache, Some(CacheStatus::Saved));

    let copied = Command::new("cp").arg("-a").arg(&golden).arg(&clone).status().unwrap();
    assert!(copied.success());
    let candidate = with_scenario(Container::new(&sandbox, User::Caller), &scenario)
        .mount(&clone, "/cache", false)
        .env("TMPDIR", "/cache");
    let out = candidate.run(&["run", "/scenario/scenario.yaml"]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.restore.cache, Some(CacheStatus::Hit), "{}", out.stderr);
    assert_eq!(report.migrations[0].status, MigrationStatus::Applied);
    let left: Vec<_> = std::fs::read_dir(&clone).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["snapshots"], "the run's cluster dir on the clone is gone");
    candidate.assert_gone_and_clean();
}

/// rehearse-nightly, as the CronJob runs it: the first night has no
/// baseline and becomes `latest`; the second is compared with it and
/// replaces it; a failed third night (exit 2) leaves it alone.
#[test]
fn the_nightly_wrapper_keeps_the_last_good_night_as_the_baseline() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let scenario =
        scenario_dir(&sandbox, &[("0100_add.sql", "ALTER TABLE public.users ADD COLUMN nickname text;\n")], "");
    let container = with_scenario(Container::new(&sandbox, User::Caller), &scenario);
    let latest = sandbox.reports().join("latest/report.json");
    let nightly = ["rehearse-nightly", "/scenario/scenario.yaml", "--quiet"];

    container.run(&nightly).assert_code(0);
    let first = read_report(&latest);
    assert!(first.baseline.is_none(), "the first night has no baseline");

    std::thread::sleep(Duration::from_millis(1100)); // the nights' folders are named to the second
    container.run(&nightly).assert_code(0);
    let second = read_report(&latest);
    assert!(second.baseline.is_some(), "the second night is compared with the first");

    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(scenario.join("migrations/0101_fail.sql"), "SELECT 1/0;\n").unwrap();
    container.run(&nightly).assert_code(2);
    assert_eq!(read_report(&latest).started_at, second.started_at, "a failed night is not the baseline");
    assert_eq!(std::fs::read_dir(sandbox.reports().join("nights")).unwrap().count(), 3);
    container.assert_gone_and_clean();
}

fn read_report(path: &Path) -> rehearse::report::Report {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}
