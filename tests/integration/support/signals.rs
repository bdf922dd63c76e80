//! Running `rehearse` and signalling it at a given point of its progress.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{RunOutput, Sandbox};

/// Starts `rehearse ARGS` and sends `signal` once a stderr line contains `when`.
pub fn run_and_signal(sandbox: &Sandbox, args: &[&str], when: &str, signal: nix::sys::signal::Signal) -> RunOutput {
    run_and_signal_with(sandbox.command(args), sandbox, when, signal)
}

/// `run_and_signal` for a prepared command (extra environment, say).
pub fn run_and_signal_with(
    command: Command,
    sandbox: &Sandbox,
    when: &str,
    signal: nix::sys::signal::Signal,
) -> RunOutput {
    signal_command(command, sandbox, when, signal, 1, Duration::ZERO).0
}

/// Like `run_and_signal`, sending the signal `times` times 100ms apart;
/// also returns how long the run took to exit after the first signal.
pub fn run_and_signal_times(
    sandbox: &Sandbox,
    args: &[&str],
    when: &str,
    signal: nix::sys::signal::Signal,
    times: usize,
) -> (RunOutput, Duration) {
    run_and_signal_spaced(sandbox, args, when, signal, times, Duration::from_millis(100))
}

/// Like `run_and_signal_times`, with `spacing` between the signals.
pub fn run_and_signal_spaced(
    sandbox: &Sandbox,
    args: &[&str],
    when: &str,
    signal: nix::sys::signal::Signal,
    times: usize,
    spacing: Duration,
) -> (RunOutput, Duration) {
    signal_command(sandbox.command(args), sandbox, when, signal, times, spacing)
}

fn signal_command(
    mut command: Command,
    sandbox: &Sandbox,
    when: &str,
    signal: nix::sys::signal::Signal,
    times: usize,
    spacing: Duration,
) -> (RunOutput, Duration) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    let mut signalled_at = None;
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        seen.push_str(&line);
        if signalled_at.is_none() && line.contains(when) {
            std::thread::sleep(Duration::from_millis(300));
            signalled_at = Some(std::time::Instant::now());
            for i in 0..times {
                if i > 0 {
                    std::thread::sleep(spacing);
                }
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
            }
        }
        line.clear();
    }
    let out = child.wait_with_output().unwrap();
    let signalled_at = signalled_at.unwrap_or_else(|| panic!("never saw {when:?} on stderr:\n{seen}"));
    let run = RunOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: seen,
        reports: sandbox.reports(),
    };
    (run, signalled_at.elapsed())
}

/// Starts `command`, waits until `reached` (given the run's pid) says the
/// run is where the signal must find it (it gives up, and so does the test, after a minute), sends
/// `signal`, and gives the run `patience` to exit; a run still going then
/// is killed (exit code -1). Returns the run and how long after the signal
/// it exited.
pub fn signal_when_reached(
    mut command: Command,
    sandbox: &Sandbox,
    reached: impl Fn(u32) -> bool,
    signal: nix::sys::signal::Signal,
    patience: Duration,
) -> (RunOutput, Duration) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = std::time::Instant::now();
    while !reached(child.id()) {
        if started.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the run never got where the signal was due; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let signalled_at = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    while child.try_wait().unwrap().is_none() && signalled_at.elapsed() < patience {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = signalled_at.elapsed();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let run = RunOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        reports: sandbox.reports(),
    };
    (run, took)
}

/// How far process `pid` has read `path`, while it has the file open.
pub fn read_offset(pid: u32, path: &std::path::Path) -> Option<u64> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    fds.flatten().find_map(|fd| {
        if std::fs::read_link(fd.path()).ok()? != path {
            return None;
        }
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_str()?)).ok()?;
        info.lines().find_map(|l| l.strip_prefix("pos:")).and_then(|pos| pos.trim().parse().ok())
    })
}
