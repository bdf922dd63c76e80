//! SIGINT and SIGTERM on every backend, at every stage: exit 130 within
//! seconds, a partial report that names the stage that was stopped, and
//! nothing left behind (no temp dir, no server process, no container, no
//! database on the user's server). A second signal ends a child's grace
//! period at once, but never the cleanup. (SIGKILL, which cleans up nothing,
//! and `rehearse cleanup` after it: cleanup.rs.)

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use rehearse::kinds::BackendKind;
use rehearse::report::{MigrationStatus, Report, RunStatus};

use crate::support::{RunOutput, Sandbox, REPO};

/// The demo snapshot: seconds to restore and to VACUUM ANALYZE, time to be interrupted.
fn demo_dump() -> PathBuf {
    std::path::Path::new(REPO).join("snapshots/demo.dump")
}

/// A release whose second migration runs for a minute unless stopped.
const QUICK_SLOW_NEVER: &[(&str, &str)] = &[
    ("0001_quick.sql", "CREATE TABLE public.quick (id int);"),
    ("0002_slow.sql", "SELECT pg_sleep(60);"),
    ("0003_never.sql", "SELECT 1;"),
];

/// Exit 130 and a report that says interrupted, stopped at `stage`.
fn assert_interrupted(out: &RunOutput, stage: &str) -> Report {
    out.assert_code(130);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Interrupted);
    assert_eq!(report.stopped_at_stage.map(|s| s.as_str()), Some(stage), "{}", out.stderr);
    report
}

/// `QUICK_SLOW_NEVER` stopped during its second migration.
fn assert_stopped_in_the_slow_migration(report: &Report) {
    let statuses: Vec<_> = report.migrations.iter().map(|m| m.status).collect();
    assert_eq!(statuses, [MigrationStatus::Applied, MigrationStatus::Interrupted, MigrationStatus::Skipped]);
}

/// The one line an interrupted run prints on stderr instead of an `error:`
/// line: the one docs/exit-codes.md quotes.
fn assert_the_documented_interrupted_line(out: &RunOutput) {
    let doc = std::fs::read_to_string(std::path::Path::new(REPO).join("docs/exit-codes.md")).unwrap();
    let quoted = doc.split('`').find(|q| q.starts_with("interrupted: the")).expect("docs/exit-codes.md quotes it");
    let said: Vec<&str> =
        out.stderr.lines().filter(|l| l.starts_with("interrupted:") || l.starts_with("error:")).collect();
    assert_eq!(said, [quoted], "{}", out.stderr);
}

mod local {
    use super::*;
    use crate::support::{dumps, run_and_signal, run_and_signal_spaced, run_and_signal_times, tiny_demo_dump};

    /// Signals at one stage: exit 130 within 5 seconds, a partial report
    /// that names the stage, nothing left.
    fn interrupted_at(stage_line: &str, stage: &str, signal: Signal, times: usize) {
        let sandbox = Sandbox::new();
        // Numbered after the demo dump's recorded migrations (1 and 2).
        sandbox.migrations(&[("9001_slow.sql", "SELECT pg_sleep(30);")]);
        let scenario = sandbox.scenario(&demo_dump(), "");
        let (out, took) =
            run_and_signal_times(&sandbox, &["run", scenario.to_str().unwrap()], stage_line, signal, times);
        assert_interrupted(&out, stage);
        assert!(took.as_secs_f64() < 5.0, "exited {took:?} after the signal");
        sandbox.assert_no_leaks();
    }

    #[test]
    fn sigterm_during_provision() {
        interrupted_at("provision:", "provision", Signal::SIGTERM, 1);
    }

    #[test]
    fn sigint_during_restore() {
        interrupted_at("restore:", "restore", Signal::SIGINT, 1);
    }

    #[test]
    fn sigterm_during_restore() {
        interrupted_at("restore:", "restore", Signal::SIGTERM, 1);
    }

    #[test]
    fn sigint_during_analyze() {
        interrupted_at("analyze:", "analyze", Signal::SIGINT, 1);
    }

    #[test]
    fn a_second_ctrl_c_does_not_abort_the_cleanup() {
        interrupted_at("migration 1/1", "rehearse", Signal::SIGINT, 3);
    }

    fn interrupted_during_a_migration(signal: Signal) {
        let sandbox = Sandbox::new();
        sandbox.migrations(QUICK_SLOW_NEVER);
        let scenario = sandbox.scenario(&dumps().path("custom"), "");
        let started = std::time::Instant::now();
        let out = run_and_signal(&sandbox, &["run", scenario.to_str().unwrap()], "migration 2/3", signal);
        assert!(started.elapsed().as_secs() < 40, "the 60s statement was cancelled");
        let report = assert_interrupted(&out, "rehearse");
        assert_stopped_in_the_slow_migration(&report);
        assert_the_documented_interrupted_line(&out);
        sandbox.assert_no_leaks();
    }

    #[test]
    fn sigint_during_a_migration() {
        interrupted_during_a_migration(Signal::SIGINT);
    }

    #[test]
    fn sigterm_during_a_migration() {
        interrupted_during_a_migration(Signal::SIGTERM);
    }

    #[test]
    fn sigint_during_a_migration_with_a_standby_stops_the_standby_too() {
        let sandbox = Sandbox::new();
        sandbox.migrations(QUICK_SLOW_NEVER);
        let scenario = sandbox.scenario(&dumps().path("custom"), "observe:\n  standby: true\n");
        let out = run_and_signal(&sandbox, &["run", scenario.to_str().unwrap()], "migration 2/3", Signal::SIGINT);
        let report = assert_interrupted(&out, "rehearse");
        assert_stopped_in_the_slow_migration(&report);
        assert!(report.standby.is_some(), "the standby ran");
        // Its server ran with the run's TMPDIR: a process of it left would be found here.
        sandbox.assert_no_leaks();
    }

    #[test]
    fn sigterm_while_the_standby_is_copied_leaves_nothing() {
        let sandbox = Sandbox::new();
        sandbox.migrations(&[("9001_quick.sql", "SELECT 1;")]);
        let scenario = sandbox.scenario(&demo_dump(), "observe:\n  standby: true\n");
        let (out, took) =
            run_and_signal_times(&sandbox, &["run", scenario.to_str().unwrap()], "standby:", Signal::SIGTERM, 1);
        assert_interrupted(&out, "standby");
        assert!(took.as_secs_f64() < 5.0, "exited {took:?} after the signal");
        sandbox.assert_no_leaks();
    }

    #[test]
    fn sigint_while_reporting_ends_as_interrupted_with_the_migrations_applied() {
        let sandbox = Sandbox::new();
        sandbox.migrations(&[("9001_quick.sql", "CREATE TABLE public.quick (id int);")]);
        // Measuring the backup (a pg_dump of 170 MB) is the longest step of reporting.
        let scenario = sandbox.scenario(&demo_dump(), "report:\n  measure_backup: true\n");
        let (out, took) =
            run_and_signal_times(&sandbox, &["run", scenario.to_str().unwrap()], "backup:", Signal::SIGINT, 1);
        assert!(took.as_secs_f64() < 5.0, "exited {took:?} after the signal");
        let report = assert_interrupted(&out, "backup");
        assert_eq!(report.migrations[0].status, MigrationStatus::Applied);
        sandbox.assert_no_leaks();
    }

    /// A `tool: command` migration whose command ignores SIGTERM, and so
    /// does the `sleep` it starts (an ignored signal stays ignored in a
    /// child, across exec): only SIGKILL ends them. Signalled `times` times
    /// `spacing` apart; the run, and how long it took to exit after the
    /// first signal.
    fn stubborn_command_signalled(times: usize, spacing: Duration) -> (Sandbox, RunOutput, Duration) {
        let sandbox = Sandbox::new();
        let scenario = sandbox.write(
            "command.yaml",
            &format!(
                "name: stubborn\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: command\n  dir: .\n  \
                 revisions: [m1_stubborn]\n  apply: \"trap '' TERM; sleep 60\"\n",
                tiny_demo_dump().display()
            ),
        );
        let (out, took) = run_and_signal_spaced(
            &sandbox,
            &["run", scenario.to_str().unwrap()],
            "migration 1/1",
            Signal::SIGINT,
            times,
            spacing,
        );
        (sandbox, out, took)
    }

    #[test]
    fn a_second_signal_skips_the_grace_period() {
        // One signal: the command gets SIGTERM, ignores it, and is killed
        // when its grace period (3 s, sys::process) ends.
        let (once_sandbox, once, once_took) = stubborn_command_signalled(1, Duration::ZERO);
        // A second signal 200 ms later ends the grace period at once.
        let (twice_sandbox, twice, twice_took) = stubborn_command_signalled(2, Duration::from_millis(200));
        eprintln!("exited {once_took:?} after one signal, {twice_took:?} after the first of two");
        let grace = Duration::from_millis(2500);
        assert!(once_took >= grace, "one signal: the grace is honoured, yet exited after {once_took:?}");
        assert!(twice_took < grace, "a second signal skips the grace, yet exited after {twice_took:?}");
        for (sandbox, out) in [(once_sandbox, once), (twice_sandbox, twice)] {
            let report = assert_interrupted(&out, "rehearse");
            // The command's whole process group is gone, its `sleep` too.
            sandbox.assert_no_leaks();
            let status = report.migrations[0].status;
            assert_eq!(status, MigrationStatus::Interrupted, "the command was running when the signal came");
        }
    }
}

/// A signal during the up-front checks, before anything is made: exit 130
/// within seconds, no report, nothing left (the wrappers' `sleep`s inherit
/// the run's TMPDIR, so one left running would be found). The checks are
/// made slow by real means: a server binary or an interpreter that takes
/// 30 s to start (as on a cold network mount), a baseline still coming
/// down a pipe, a dump of gigabytes being hashed for the snapshot cache.
mod upfront {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::support::{pg_bin_dir, read_offset, signal_when_reached, venv_python};

    /// Far below the 13.6 s a signal here once took, generous for a loaded machine.
    const PROMPTLY: Duration = Duration::from_secs(4);
    /// How long a run that does not heed the signal gets before the test kills it.
    const PATIENCE: Duration = Duration::from_secs(40);

    /// An executable script at `path` that leaves `marker`, sleeps `delay`
    /// seconds, then runs `program` with its arguments.
    fn slow_wrapper(path: &Path, marker: &Path, delay: u32, program: &Path) {
        let script =
            format!("#!/bin/sh\ntouch '{}'\nsleep {delay}\nexec '{}' \"$@\"\n", marker.display(), program.display());
        std::fs::write(path, script).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The PostgreSQL bin dir, linked, with an initdb that takes `delay`
    /// seconds to start; and the file it leaves when it starts.
    fn slow_initdb(sandbox: &Sandbox, delay: u32) -> (PathBuf, PathBuf) {
        let real = PathBuf::from(pg_bin_dir());
        let bin = sandbox.path().join("slow-bin");
        std::fs::create_dir(&bin).unwrap();
        for entry in std::fs::read_dir(&real).unwrap().flatten() {
            if entry.file_name() != "initdb" {
                std::os::unix::fs::symlink(entry.path(), bin.join(entry.file_name())).unwrap();
            }
        }
        let marker = sandbox.path().join("initdb-started");
        slow_wrapper(&bin.join("initdb"), &marker, delay, &real.join("initdb"));
        (bin, marker)
    }

    /// Exit 130 within `PROMPTLY` of the signal, saying so, with nothing
    /// printed on stdout and no report (nothing had started).
    fn assert_interrupted_up_front(out: &RunOutput, took: Duration) {
        out.assert_code(130);
        assert!(took < PROMPTLY, "exited {took:?} after the signal; stderr:\n{}", out.stderr);
        assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
        out.assert_nothing_ran();
    }

    fn interrupted_checking_the_server_binaries(signal: Signal) {
        let sandbox = Sandbox::new();
        sandbox.migrations(&[("9001_quick.sql", "SELECT 1;")]);
        let (bin, marker) = slow_initdb(&sandbox, 30);
        let scenario = sandbox.scenario(&demo_dump(), "");
        let cmd = sandbox.command(&["run", scenario.to_str().unwrap(), "--pg-bin", bin.to_str().unwrap()]);
        let (out, took) = signal_when_reached(cmd, &sandbox, |_| marker.exists(), signal, PATIENCE);
        assert_interrupted_up_front(&out, took);
        sandbox.assert_no_leaks();
    }

    #[test]
    fn sigint_while_the_server_binaries_are_checked() {
        interrupted_checking_the_server_binaries(Signal::SIGINT);
    }

    #[test]
    fn sigterm_while_the_server_binaries_are_checked() {
        interrupted_checking_the_server_binaries(Signal::SIGTERM);
    }

    #[test]
    fn sigterm_while_the_alembic_interpreter_is_checked() {
        let sandbox = Sandbox::new();
        let python = sandbox.path().join("slow-python");
        let marker = sandbox.path().join("python-started");
        slow_wrapper(&python, &marker, 30, Path::new(&venv_python()));
        let scenario = sandbox.write(
            "alembic.yaml",
            &format!(
                "name: slow-python\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: alembic\n  \
                 dir: {REPO}/tests/fixtures/alembic_dburl\n  python: {}\n",
                demo_dump().display(),
                python.display()
            ),
        );
        let cmd = sandbox.command(&["run", scenario.to_str().unwrap()]);
        let (out, took) = signal_when_reached(cmd, &sandbox, |_| marker.exists(), Signal::SIGTERM, PATIENCE);
        assert_interrupted_up_front(&out, took);
        sandbox.assert_no_leaks();
    }

    /// `--baseline <(curl ...)`: last night's report read from a pipe while
    /// it is still being downloaded. The read blocks in the kernel, where no
    /// cancellation reaches: the run must not wait for it.
    #[test]
    fn sigint_while_a_baseline_is_read_from_a_pipe() {
        use std::os::unix::fs::OpenOptionsExt;
        let sandbox = Sandbox::new();
        sandbox.migrations(&[("9001_quick.sql", "SELECT 1;")]);
        let fifo = sandbox.path().join("baseline.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let scenario = sandbox.scenario(&demo_dump(), "");
        let cmd = sandbox.command(&["run", scenario.to_str().unwrap(), "--baseline", fifo.to_str().unwrap()]);
        // Opening the write end without blocking succeeds once the run opened the read end.
        let download = std::cell::RefCell::new(None);
        let reading = |_| {
            let opened = std::fs::OpenOptions::new().write(true).custom_flags(nix::libc::O_NONBLOCK).open(&fifo);
            let Ok(mut pipe) = opened else { return false };
            std::io::Write::write_all(&mut pipe, br#"{"schema": "rehearse.report/v1", "#).unwrap();
            *download.borrow_mut() = Some(pipe);
            true
        };
        let (out, took) = signal_when_reached(cmd, &sandbox, reading, Signal::SIGINT, PATIENCE);
        drop(download);
        assert_interrupted_up_front(&out, took);
        sandbox.assert_no_leaks();
    }

    /// With the snapshot cache on, the dump's sha256 is its key, read before
    /// the server is made: a dump of gigabytes takes seconds to minutes.
    /// The signal finds the run reading it (by the read offset of its open
    /// file) and the report shows the hash was never finished.
    #[test]
    fn sigint_while_the_dump_is_hashed_for_the_cache() {
        let sandbox = Sandbox::new();
        sandbox.migrations(&[("9001_quick.sql", "SELECT 1;")]);
        // A plain dump of 2 GB: SQL comments, then a hole (no disk used).
        let dump = sandbox.path().join("big.sql");
        let mut head = String::from("-- PostgreSQL database dump\n");
        while head.len() < 70_000 {
            head.push_str("-- a comment line, so the format is told from text without NUL bytes\n");
        }
        std::fs::write(&dump, head).unwrap();
        std::fs::OpenOptions::new().write(true).open(&dump).unwrap().set_len(2 << 30).unwrap();
        let scenario = sandbox.scenario(&dump, "");
        let cmd = sandbox.command(&["run", scenario.to_str().unwrap(), "--use-cache"]);
        // Past the 64 KiB the format check reads: hashing.
        let hashing = |pid| read_offset(pid, &dump).is_some_and(|pos| pos > 1 << 20);
        let (out, took) = signal_when_reached(cmd, &sandbox, hashing, Signal::SIGINT, PATIENCE);
        assert!(took < PROMPTLY, "exited {took:?} after the signal; stderr:\n{}", out.stderr);
        let report = assert_interrupted(&out, "provision");
        assert_eq!(report.dump.sha256, None, "the hash was stopped, not finished");
        sandbox.assert_no_leaks();
    }
}

mod docker {
    use super::*;
    use crate::support::{assert_no_containers, docker_backend, docker_lock, run_and_signal, tiny_demo_dump};

    /// Signals at one stage of a docker rehearsal: exit 130, a partial report
    /// that names the stage, no container and nothing else left.
    fn interrupted(signal: Signal, during: &str) {
        let _docker = docker_lock();
        let sandbox = Sandbox::new();
        let (dump, when) = match during {
            "restore" => (demo_dump(), "restore:"),
            "analyze" => (demo_dump(), "analyze:"),
            // Starting a container takes seconds too.
            "provision" => (tiny_demo_dump().clone(), "provision:"),
            _ => (tiny_demo_dump().clone(), "migration 2/3"),
        };
        sandbox.migrations(QUICK_SLOW_NEVER);
        let scenario = sandbox.scenario_on(&docker_backend(), &dump, "");
        let started = std::time::Instant::now();
        let out = run_and_signal(&sandbox, &["run", scenario.to_str().unwrap()], when, signal);
        assert!(started.elapsed().as_secs() < 90, "the interrupted step was stopped, not waited for");
        let stage = if during == "migration" { "rehearse" } else { during };
        let report = assert_interrupted(&out, stage);
        if during == "migration" {
            assert_stopped_in_the_slow_migration(&report);
        }
        assert_no_containers();
        sandbox.assert_no_leaks();
    }

    #[test]
    fn sigint_during_a_migration_with_a_standby_removes_both_containers() {
        let _docker = docker_lock();
        let sandbox = Sandbox::new();
        sandbox.migrations(QUICK_SLOW_NEVER);
        let scenario = sandbox.scenario_on(&docker_backend(), tiny_demo_dump(), "observe:\n  standby: true\n");
        let out = run_and_signal(&sandbox, &["run", scenario.to_str().unwrap()], "migration 2/3", Signal::SIGINT);
        let report = assert_interrupted(&out, "rehearse");
        assert_eq!(report.standby.as_ref().map(|s| s.source), Some(BackendKind::Docker));
        assert_no_containers();
        sandbox.assert_no_leaks();
    }

    #[test]
    fn sigterm_during_provisioning_removes_the_container() {
        interrupted(Signal::SIGTERM, "provision");
    }

    #[test]
    fn sigint_during_a_restore_removes_the_container() {
        interrupted(Signal::SIGINT, "restore");
    }

    #[test]
    fn sigterm_during_a_restore_removes_the_container() {
        interrupted(Signal::SIGTERM, "restore");
    }

    #[test]
    fn sigint_during_analyze_removes_the_container() {
        interrupted(Signal::SIGINT, "analyze");
    }

    #[test]
    fn sigint_during_a_migration_removes_the_container() {
        interrupted(Signal::SIGINT, "migration");
    }

    #[test]
    fn sigterm_during_a_migration_removes_the_container() {
        interrupted(Signal::SIGTERM, "migration");
    }
}

mod url {
    use super::*;
    use crate::support::{url_run_signalled_in_its_second_migration, OwnedServer};

    #[test]
    fn sigint_during_a_migration_drops_the_database() {
        let server = OwnedServer::start();
        let before = server.state();
        let (sandbox, out) = url_run_signalled_in_its_second_migration(&server, Signal::SIGINT);
        out.assert_code(130);
        assert_eq!(out.report().status, RunStatus::Interrupted);
        assert_eq!(server.state(), before, "the throwaway database was dropped");
        sandbox.assert_no_leaks();
    }
}
