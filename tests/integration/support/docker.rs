//! The Docker engine and images the docker tests use.

use std::process::Command;

/// The image the docker tests run: REHEARSE_TEST_IMAGE, else the one
/// `make test` builds (scripts/docker-test-image.sh).
pub fn test_image() -> String {
    let image = std::env::var("REHEARSE_TEST_IMAGE").unwrap_or_else(|_| "rehearse-postgres:15".into());
    let present = Command::new("docker").args(["image", "inspect", &image]).output().is_ok_and(|o| o.status.success());
    assert!(
        present,
        "docker image {image} is not here (or Docker is not running): run `make test`, which runs \
         scripts/docker-test-image.sh, or set REHEARSE_TEST_IMAGE to a postgres image this machine has"
    );
    image
}

/// The app image the Job tests run migrations in: REHEARSE_APP_IMAGE, else
/// the one `make test` builds (scripts/docker-app-image.sh): Debian's
/// Alembic 1.8 and psycopg2, the tests' Alembic trees under /fixtures.
pub fn app_image() -> String {
    let image = std::env::var("REHEARSE_APP_IMAGE").unwrap_or_else(|_| "rehearse-app:demo".into());
    let present = Command::new("docker").args(["image", "inspect", &image]).output().is_ok_and(|o| o.status.success());
    assert!(present, "app image {image} is not here: run `make test` (scripts/docker-app-image.sh builds it)");
    image
}

/// rehearse's own image: REHEARSE_IMAGE, else the one `make image` builds
/// (scripts/docker-rehearse-image.sh), rehearse:<this crate's version>.
pub fn rehearse_image() -> String {
    let image = std::env::var("REHEARSE_IMAGE").unwrap_or_else(|_| format!("rehearse:{}", env!("CARGO_PKG_VERSION")));
    let present = Command::new("docker").args(["image", "inspect", &image]).output().is_ok_and(|o| o.status.success());
    assert!(present, "rehearse's image {image} is not here: run `make image` (make test builds it too)");
    image
}

/// The scenario's `postgres:` lines for the docker backend on the test image.
pub fn docker_backend() -> String {
    format!("backend: docker\n  image: {}", test_image())
}

/// Docker tests run one at a time: the machine has two cores, and "no
/// container labelled rehearse is left" is then a statement about the test alone.
/// The first docker test first removes what an earlier, killed test run
/// left (a session stopped mid-run leaves its containers behind, and the
/// next run's "no container is left" checks would fail on them), with
/// `rehearse cleanup`, as a user would: it removes only containers whose
/// process is gone.
pub fn docker_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    SWEPT.call_once(|| {
        // An empty TMPDIR: only containers are swept, never the cluster dirs
        // that the local cleanup tests leave on purpose and then look for.
        let tmp = tempfile::tempdir().expect("a temp dir");
        let out = Command::new(env!("CARGO_BIN_EXE_rehearse"))
            .arg("cleanup")
            .env("TMPDIR", tmp.path())
            .output()
            .expect("rehearse cleanup runs");
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("removed") {
            eprintln!("before the docker tests, rehearse cleanup removed an earlier run's leftovers:\n{text}");
        }
    });
    guard
}

/// Containers labelled `rehearse`, running or not.
pub fn rehearse_containers() -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "--all", "--filter", "label=rehearse", "--format", "{{.ID}} {{.Status}} {{.Labels}}"])
        .output()
        .expect("docker ps runs");
    assert!(out.status.success(), "docker ps failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// Whether the process `pid` is running and is not this test binary nor
/// one of its descendants: another run on the same machine (a second
/// checkout's tests), whose containers are not this test's to judge.
fn someone_elses(pid: u32) -> bool {
    let me = std::process::id();
    let parent = |p: u32| -> Option<u32> {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse().ok())
    };
    let mut p = pid;
    for _ in 0..64 {
        match parent(p) {
            None if p == pid => return false, // not running: a leak, if anyone's
            None => return true,
            Some(_) if p == me => return false,
            Some(0) | Some(1) => return true,
            Some(up) => p = up,
        }
    }
    true
}

pub fn assert_no_containers() {
    let owner = |line: &str| -> Option<u32> {
        line.split([' ', ',']).find_map(|l| l.strip_prefix("rehearse.pid=")).and_then(|p| p.parse().ok())
    };
    let left: Vec<String> =
        rehearse_containers().into_iter().filter(|c| !owner(c).is_some_and(someone_elses)).collect();
    assert!(left.is_empty(), "containers labelled rehearse were left: {left:?}");
}

/// The container id from a `--keep` run's "docker rm -f -v <id>" line.
pub fn kept_container(stderr: &str) -> String {
    let remove = stderr.lines().find(|l| l.contains("docker rm -f -v")).expect("how to remove the kept container");
    remove.split_whitespace().last().unwrap().to_string()
}

pub fn docker_out(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
