//! Reliability and safety on the local backend: every interruption point
//! leaves nothing behind, the password never leaks, the server is reachable
//! from this machine only, and bad inputs get one clear answer.

use std::os::unix::fs::PermissionsExt;

use nix::sys::signal::Signal;
use rehearse::report::RunStatus;

use crate::support::{dumps, run_and_signal_times, Sandbox, REPO};

fn demo_dump() -> std::path::PathBuf {
    std::path::Path::new(REPO).join("snapshots/demo.dump")
}

/// Signals at one stage: exit 130 within 5 seconds, a partial report that
/// names the stage, nothing left.
fn interrupted_at(stage_line: &str, stage: &str, signal: Signal, times: usize) {
    let sandbox = Sandbox::new();
    // Numbered after the demo dump's recorded migrations (1 and 2).
    sandbox.migrations(&[("9001_slow.sql", "SELECT pg_sleep(30);")]);
    let scenario = sandbox.scenario(&demo_dump(), "");
    let (out, took) = run_and_signal_times(&sandbox, &["run", scenario.to_str().unwrap()], stage_line, signal, times);
    out.assert_code(130);
    assert!(took.as_secs_f64() < 5.0, "exited {took:?} after the signal");
    let report = out.report();
    assert_eq!(report.status, RunStatus::Interrupted);
    assert_eq!(report.stopped_at_stage.map(|s| s.as_str()), Some(stage), "{}", out.stderr);
    sandbox.assert_no_leaks();
}

#[test]
fn sigterm_during_provision() {
    interrupted_at("provision:", "provision", Signal::SIGTERM, 1);
}

#[test]
fn sigint_during_analyze() {
    interrupted_at("analyze:", "analyze", Signal::SIGINT, 1);
}

#[test]
fn sigterm_during_restore() {
    interrupted_at("restore:", "restore", Signal::SIGTERM, 1);
}

#[test]
fn a_second_ctrl_c_does_not_abort_the_cleanup() {
    interrupted_at("migration 1/1", "rehearse", Signal::SIGINT, 3);
}

#[test]
fn password_never_appears_and_the_server_is_private() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "CREATE TABLE public.kept (id int);")]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--keep"]);
    out.assert_code(0);
    // --keep leaves the cluster and says how to reach it without the password.
    let tmp = sandbox.path().join("tmp");
    let cluster = std::fs::read_dir(&tmp).unwrap().flatten().next().expect("the kept cluster dir").path();
    let pgpass = std::fs::read_to_string(cluster.join("pgpass")).unwrap();
    let password = pgpass.trim().rsplit(':').next().unwrap().to_string();
    assert_eq!(password.len(), 32);
    assert!(out.stderr.contains("PGPASSFILE="), "{}", out.stderr);
    let mut outputs = vec![out.stdout.clone(), out.stderr.clone()];
    for entry in std::fs::read_dir(&out.reports).unwrap().flatten() {
        outputs.push(std::fs::read_to_string(entry.path()).unwrap());
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is readable by others ({mode:o})", entry.path().display());
    }
    for text in &outputs {
        assert!(!text.contains(&password), "the password leaked");
    }
    assert_eq!(std::fs::metadata(&cluster).unwrap().permissions().mode() & 0o777, 0o700);

    // The kept server listens on loopback and a private socket only.
    let conf = std::fs::read_to_string(cluster.join("data/rehearse.conf")).unwrap();
    assert!(conf.contains("listen_addresses = '127.0.0.1'") && conf.contains("unix_socket_permissions = 0700"));
    let port: u16 = conf.lines().find_map(|l| l.strip_prefix("port = ")).unwrap().parse().unwrap();
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let hex = format!(":{port:04X} ");
    let sockets: Vec<&str> = listening
        .lines()
        .filter(|l| {
            l.split_whitespace().nth(1).is_some_and(|a| a.ends_with(&hex[..hex.len() - 1]))
                && l.split_whitespace().nth(3) == Some("0A")
        })
        .collect();
    assert!(!sockets.is_empty(), "the kept server listens on {port}");
    for s in sockets {
        let local = s.split_whitespace().nth(1).unwrap();
        assert!(local.starts_with("0100007F:"), "listening on {local}, not only 127.0.0.1");
    }
    // Stop it the way the printed instructions say.
    let stop = out.stderr.lines().find(|l| l.contains("stop && rm -rf")).expect("stop instructions");
    let status = std::process::Command::new("sh").args(["-c", stop.trim()]).status().unwrap();
    assert!(status.success());
    sandbox.assert_no_leaks();
}

fn bad_input(sandbox: &Sandbox, args: &[&str], expected: &[&str]) {
    let out = sandbox.rehearse(args);
    out.assert_code(3);
    for e in expected {
        assert!(out.stderr.contains(e), "expected {e:?} in:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"), "{}", out.stderr);
    sandbox.assert_no_leaks();
}

#[test]
fn no_scenario_file() {
    let s = Sandbox::new();
    bad_input(&s, &["run", "nowhere.yaml"], &["cannot read scenario file", "nowhere.yaml"]);
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let s = Sandbox::new();
    let p = s.write("broken.yaml", "dump: x.dump\nmigrations: {tool: sql, dir: .\n");
    bad_input(&s, &["run", p.to_str().unwrap()], &["broken.yaml", "line 3"]);
}

#[test]
fn missing_and_empty_migration_folders() {
    let s = Sandbox::new();
    let dump = dumps().path("custom");
    let p = s.write("s.yaml", &format!("dump: {}\nmigrations: {{tool: sql, dir: nowhere}}\n", dump.display()));
    bad_input(&s, &["run", p.to_str().unwrap()], &["nowhere is not a directory"]);
    std::fs::create_dir(s.path().join("empty")).unwrap();
    let p = s.write("s.yaml", &format!("dump: {}\nmigrations: {{tool: sql, dir: empty}}\n", dump.display()));
    bad_input(&s, &["run", p.to_str().unwrap()], &["holds no *.sql migration files"]);
}

#[test]
fn empty_dump() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    std::fs::write(s.path().join("empty.dump"), b"").unwrap();
    let p = s.write("s.yaml", "dump: empty.dump\nmigrations: {tool: sql, dir: migrations}\n");
    bad_input(&s, &["run", p.to_str().unwrap()], &["is empty (0 bytes)"]);
}

#[test]
fn a_dump_from_a_newer_pg_dump_names_the_versions() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    // The custom format's header: "PGDMP", then the archive version (major,
    // minor, revision). 1.99 is newer than any pg_restore knows.
    let mut bytes = std::fs::read(dumps().path("custom")).unwrap();
    bytes[6] = 99;
    std::fs::write(s.path().join("future.dump"), &bytes).unwrap();
    let p = s.write("s.yaml", "dump: future.dump\nmigrations: {tool: sql, dir: migrations}\n");
    bad_input(&s, &["run", p.to_str().unwrap()], &["unsupported version (1.99", "pg_restore 15"]);
}

#[test]
fn sigint_while_reporting_ends_as_interrupted_with_the_migrations_applied() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("9001_quick.sql", "CREATE TABLE public.quick (id int);")]);
    // Measuring the backup (a pg_dump of 170 MB) is the longest step of reporting.
    let scenario = sandbox.scenario(&demo_dump(), "report:\n  measure_backup: true\n");
    let (out, took) =
        run_and_signal_times(&sandbox, &["run", scenario.to_str().unwrap()], "backup:", Signal::SIGINT, 1);
    out.assert_code(130);
    assert!(took.as_secs_f64() < 5.0, "exited {took:?} after the signal");
    let report = out.report();
    assert_eq!(report.status, RunStatus::Interrupted);
    assert_eq!(report.stopped_at_stage.map(|s| s.as_str()), Some("backup"));
    assert_eq!(report.migrations[0].status, rehearse::report::MigrationStatus::Applied);
    sandbox.assert_no_leaks();
}
