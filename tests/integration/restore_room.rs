//! Room for the restore: TMPDIR (where the local backend keeps its cluster)
//! on a small filesystem of its own, a tmpfs mounted for the test (the tests
//! run as root, as CI does; without root the test fails and says so).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rehearse::error::ErrorKind;
use rehearse::report::RunStatus;

use crate::support::{Sandbox, REPO};

/// A tmpfs of `size` on `dir`, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs on {} (these tests need root, as `make test` in CI has): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn demo_scenario(sandbox: &Sandbox) -> PathBuf {
    sandbox.migrations(&[("9001_quick.sql", "CREATE TABLE public.quick (id int);")]);
    sandbox.scenario(&Path::new(REPO).join("snapshots/demo.dump"), "")
}

/// The demo dump (13 MB, 177 MB restored) in a 120 MB TMPDIR: the restore
/// runs out of room mid-way. That is the machine's problem (exit 4), and
/// the message names the directory, what it had and what it needs.
#[test]
fn a_restore_that_runs_out_of_disk_is_an_environment_error_naming_the_directory() {
    let sandbox = Sandbox::new();
    let scenario = demo_scenario(&sandbox);
    let tmp = sandbox.path().join("tmp");
    let disk = SmallDisk::mount(&tmp, "120m");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_stopped_by(ErrorKind::DiskFull);
    let tmp_shown = tmp.display().to_string();
    assert!(out.stderr.contains("may run out of room"), "warned before it started:\n{}", out.stderr);
    assert!(out.stderr.contains(&format!("in {tmp_shown} (TMPDIR)")), "names the directory:\n{}", out.stderr);
    assert!(
        out.stderr.contains("could not extend file") || out.stderr.contains("No space left on device"),
        "the server's own message, as the cause:\n{}",
        out.stderr
    );
    let report = out.report();
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.stopped_at_stage.map(|s| s.as_str()), Some("restore"));
    sandbox.assert_no_leaks();
    drop(disk);
}

/// A TMPDIR smaller than the dump itself: refused before anything starts.
#[test]
fn a_dump_that_plainly_cannot_fit_is_refused_before_anything_starts() {
    let sandbox = Sandbox::new();
    let scenario = demo_scenario(&sandbox);
    let tmp = sandbox.path().join("tmp");
    let disk = SmallDisk::mount(&tmp, "40m");
    let started = Instant::now();
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(4);
    assert!(started.elapsed().as_secs() < 10, "refused at once, not after trying");
    assert!(out.stderr.contains("not enough room to restore dump"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("in {} (TMPDIR)", tmp.display())), "{}", out.stderr);
    assert!(out.stderr.contains("set TMPDIR to a directory on a bigger disk"), "{}", out.stderr);
    assert!(!out.reports.join("report.json").exists(), "nothing ran, so there is no report");
    sandbox.assert_no_leaks();
    drop(disk);
}
