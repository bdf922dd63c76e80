//! The one spawn helper every child process goes through (initdb, pg_ctl,
//! pg_restore, psql, pg_dump, python, docker, a migration tool's command).
//!
//! Each child gets stdin from /dev/null (or a reader we feed from a blocking
//! thread), its own process group, and stdout and stderr drained concurrently
//! so a chatty child can never block on a full pipe. Stderr's tail is kept
//! for the error message. Every child has a deadline, and the run's
//! cancellation token stops it: SIGTERM to its whole group (pg_restore -j
//! forks workers, which a plain kill of the leader would orphan), a grace
//! period, then SIGKILL.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

pub use super::interactive::InteractiveChild;

/// How much of a child's stderr (and of stdout, unless it is captured whole) is kept.
const TAIL_BYTES: usize = 64 * 1024;
/// How long a child gets between SIGTERM and SIGKILL when the run is cancelled.
pub const GRACE: Duration = Duration::from_secs(3);

/// Unprivileged identity a child runs as (the server refuses to run as root).
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub enum ChildInput {
    Null,
    /// Copied into the child's stdin from a blocking thread (e.g. a gunzipping reader).
    Reader(Box<dyn Read + Send>),
}

pub struct ChildCommand {
    /// Short name for messages ("pg_restore").
    label: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    /// Inherited variables the child must not see (removed before `env` is set).
    env_removed: Vec<OsString>,
    /// Run in a network namespace of its own (`netns`).
    network_namespace: Option<super::netns::Unshare>,
    cwd: Option<PathBuf>,
    run_as: Option<RunAs>,
    input: ChildInput,
    deadline: Duration,
    keep_all_stdout: bool,
    /// Cancelled: SIGKILL to the whole group at once, no grace (`kill_switch`).
    kill: Option<CancellationToken>,
}

#[derive(Debug)]
pub struct ChildOutput {
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("could not start {label} ({program})")]
    Spawn {
        label: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{label} failed ({status}):\n{stderr}")]
    Failed { label: String, status: ExitStatus, stderr: String, stdout: String },
    #[error("{label} did not finish within {}; it was stopped", humantime::format_duration(*.deadline))]
    Deadline { label: String, deadline: Duration, stdout: String, stderr: String },
    #[error("{label} was stopped because the run was interrupted")]
    Cancelled { label: String, stdout: String, stderr: String },
    #[error("{label} was killed (SIGKILL to its process group)")]
    Killed { label: String, stderr: String, stdout: String },
    #[error("lost contact with {label}")]
    Io {
        label: String,
        #[source]
        source: std::io::Error,
    },
}

impl ChildError {
    /// The child's own complaint, when it ran and failed.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            ChildError::Failed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

impl ChildCommand {
    pub fn new(program: impl AsRef<Path>) -> Self {
        let program = program.as_ref().to_path_buf();
        let label = program.file_name().unwrap_or(program.as_os_str()).to_string_lossy().into_owned();
        ChildCommand {
            label,
            program,
            args: Vec::new(),
            env: Vec::new(),
            env_removed: Vec::new(),
            network_namespace: None,
            cwd: None,
            run_as: None,
            input: ChildInput::Null,
            deadline: Duration::from_secs(60),
            keep_all_stdout: false,
            kill: None,
        }
    }

    /// Names the child in messages when the program is a launcher
    /// (`docker exec ... pg_restore` is "pg_restore", not "docker").
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Removes an inherited variable from the child's environment (one that
    /// `env` sets is still set).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env_removed.push(key.as_ref().to_owned());
        self
    }

    /// Runs the child in a network namespace of its own (see `netns`):
    /// spawning fails if it cannot be entered, never runs it without.
    pub fn network_namespace(mut self, how: super::netns::Unshare) -> Self {
        self.network_namespace = Some(how);
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn run_as(mut self, who: Option<&RunAs>) -> Self {
        self.run_as = who.cloned();
        self
    }

    pub fn input(mut self, input: ChildInput) -> Self {
        self.input = input;
        self
    }

    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Keep all of stdout rather than its tail (for output we parse).
    pub fn keep_all_stdout(mut self) -> Self {
        self.keep_all_stdout = true;
        self
    }

    /// Cancelling `kill` sends SIGKILL to the child's whole group at once, as
    /// an orchestrator killing a pod's container does: no SIGTERM, no grace,
    /// so the child cannot release what it holds on its way out.
    pub fn kill_switch(mut self, kill: CancellationToken) -> Self {
        self.kill = Some(kill);
        self
    }

    /// The child's command: stdout and stderr piped, stdin as `stdin`, its own process group.
    fn command(&self, stdin: Stdio) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.program);
        for key in &self.env_removed {
            cmd.env_remove(key);
        }
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(stdin)
            // Its own group: a terminal's Ctrl-C reaches us only, and we can
            // signal the child together with anything it forked.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if let Some(who) = &self.run_as {
            // std drops root's supplementary groups (setgroups(0)) when uid is set.
            cmd.uid(who.uid).gid(who.gid);
        }
        if let Some(how) = self.network_namespace.clone() {
            // SAFETY: `enter` only makes syscalls (unshare, open, write), as
            // the child of a multi-threaded process may between fork and exec.
            unsafe {
                cmd.pre_exec(move || how.enter());
            }
        }
        cmd
    }

    fn spawn(&self, stdin: Stdio) -> Result<(tokio::process::Child, Option<Pid>), ChildError> {
        let child = self.command(stdin).spawn().map_err(|source| ChildError::Spawn {
            label: self.label.clone(),
            program: self.program.display().to_string(),
            source,
        })?;
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        Ok((child, pgid))
    }

    /// Starts the child to talk to while it runs: lines to its stdin, lines
    /// from its stdout (see [`InteractiveChild`]). The input and the
    /// deadline set here are not used: each read takes its own.
    pub fn spawn_interactive(self) -> Result<InteractiveChild, ChildError> {
        let (mut child, pgid) = self.spawn(Stdio::piped())?;
        Ok(InteractiveChild::new(self.label, &mut child, pgid).with_child(child))
    }

    /// Runs the child to completion; a non-zero exit is an error carrying stderr.
    pub async fn run(self, cancel: &CancellationToken) -> Result<ChildOutput, ChildError> {
        let label = self.label.clone();
        let started = Instant::now();
        let (mut child, pgid) = self.spawn(match self.input {
            ChildInput::Null => Stdio::null(),
            ChildInput::Reader(_) => Stdio::piped(),
        })?;

        let feeder = match self.input {
            ChildInput::Reader(mut reader) => {
                let stdin = child.stdin.take().expect("stdin was piped");
                let fd = stdin.into_owned_fd().map_err(|source| ChildError::Io { label: label.clone(), source })?;
                Some(tokio::task::spawn_blocking(move || {
                    let mut pipe = std::fs::File::from(fd);
                    match std::io::copy(&mut reader, &mut pipe) {
                        // The child exiting early closes the pipe; its exit status tells why.
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                        other => other.map(|_| ()),
                    }
                }))
            }
            ChildInput::Null => None,
        };
        let stdout = tokio::spawn(drain(child.stdout.take().expect("stdout was piped"), self.keep_all_stdout));
        let stderr = tokio::spawn(drain(child.stderr.take().expect("stderr was piped"), false));

        // Dropped before the child is reaped (a stage dropped at the end of
        // its wind-down): the whole group is killed, not just the leader
        // that kill_on_drop reaches.
        let group = GroupGuard(pgid);
        let kill = self.kill.clone().unwrap_or_default();
        let status = tokio::select! {
            status = child.wait() => status.map_err(|source| ChildError::Io { label: label.clone(), source })?,
            _ = tokio::time::sleep(self.deadline) => {
                stop_group(&mut child, pgid, Duration::ZERO).await;
                let (stdout, stderr) = written(stdout, stderr).await;
                return Err(ChildError::Deadline { label, deadline: self.deadline, stdout, stderr });
            }
            _ = cancel.cancelled() => {
                stop_group(&mut child, pgid, GRACE).await;
                let (stdout, stderr) = written(stdout, stderr).await;
                return Err(ChildError::Cancelled { label, stdout, stderr });
            }
            _ = kill.cancelled(), if self.kill.is_some() => {
                kill_group(&mut child, pgid).await;
                // The group is gone, so its pipes are closed: what it wrote is all there.
                let (stdout, stderr) = (stdout.await.unwrap_or_default(), stderr.await.unwrap_or_default());
                return Err(ChildError::Killed { label, stdout, stderr });
            }
        };
        group.disarm();
        let stdout = stdout.await.unwrap_or_default();
        let stderr = stderr.await.unwrap_or_default();
        if let Some(feeder) = feeder {
            match feeder.await {
                Ok(Err(source)) if status.success() => return Err(ChildError::Io { label, source }),
                _ => {}
            }
        }
        if !status.success() {
            return Err(ChildError::Failed { label, status, stderr: stderr.trim_end().to_string(), stdout });
        }
        Ok(ChildOutput { stdout, stderr, elapsed: started.elapsed() })
    }
}

/// SIGKILL to a child's process group when dropped, unless disarmed once
/// the child has exited by itself.
pub(super) struct GroupGuard(pub(super) Option<Pid>);

impl GroupGuard {
    pub(super) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// `kill(pid, 0)`: delivered or refused for permission means the process exists.
pub fn process_alive(pid: u32) -> bool {
    use nix::errno::Errno;
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// SIGINT to the process group of every child rehearse started that leads
/// one (each child does: see [`ChildCommand::command`]), as a terminal's
/// Ctrl-C reaches the foreground job: the abort rehearsal's cancel of a
/// migration tool, which it runs as the only child at that moment. Found
/// in /proc (Linux: each `/proc/<pid>/stat` gives the parent and the
/// group); elsewhere nothing is sent. Returns the groups signalled.
pub fn interrupt_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut groups = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses, so read after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(ppid), Some(pgrp)) = (fields.get(1), fields.get(2)) else { continue };
        if ppid.parse() == Ok(me) && pgrp.parse() == Ok(pid) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGINT);
            groups.push(pid);
        }
    }
    groups
}

/// SIGTERM to the child's group, `grace` to exit (cut short by a second
/// signal: `interrupt::hurry`), then SIGKILL to the group.
pub(super) async fn stop_group(child: &mut tokio::process::Child, pgid: Option<Pid>, grace: Duration) {
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGTERM);
        let exited = tokio::select! {
            r = tokio::time::timeout(grace, child.wait()) => r.is_ok(),
            _ = super::interrupt::hurry().cancelled() => false,
        };
        // Either way the group gets SIGKILL: when the leader is gone, its
        // stragglers get no grace.
        let _ = killpg(pgid, Signal::SIGKILL);
        if exited {
            return;
        }
    }
    let _ = child.kill().await;
}

/// What a stopped child wrote before it was stopped (a `create` that
/// printed its clone's URL and was then stopped still made a clone). Its
/// group is gone, so its pipes are closed unless something outside the
/// group holds them: that is waited for a moment only.
async fn written(stdout: tokio::task::JoinHandle<String>, stderr: tokio::task::JoinHandle<String>) -> (String, String) {
    let drained = async { (stdout.await.unwrap_or_default(), stderr.await.unwrap_or_default()) };
    tokio::time::timeout(Duration::from_secs(1), drained).await.unwrap_or_default()
}

/// SIGKILL to the child's group, and reap it.
async fn kill_group(child: &mut tokio::process::Child, pgid: Option<Pid>) {
    match pgid {
        Some(pgid) => {
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait().await;
        }
        None => {
            let _ = child.kill().await;
        }
    }
}

/// Reads a pipe to its end, keeping everything or only the last TAIL_BYTES.
pub(super) async fn drain(mut pipe: impl AsyncRead + Unpin, keep_all: bool) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if !keep_all && kept.len() > 2 * TAIL_BYTES {
                    kept.drain(..kept.len() - TAIL_BYTES);
                }
            }
        }
    }
    if !keep_all && kept.len() > TAIL_BYTES {
        kept.drain(..kept.len() - TAIL_BYTES);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chatty_child_does_not_block_and_stderr_is_kept() {
        let out = ChildCommand::new("/bin/sh")
            .args(["-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo oops >&2"])
            .run(&CancellationToken::new())
            .await
            .unwrap();
        assert!(out.stdout.len() <= TAIL_BYTES);
        assert_eq!(out.stderr.trim(), "oops");
    }

    #[tokio::test]
    async fn failure_carries_stderr() {
        let err = ChildCommand::new("/bin/sh")
            .args(["-c", "echo 'no such table' >&2; exit 3"])
            .run(&CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(err.stderr(), Some("no such table"));
    }

    #[tokio::test]
    async fn deadline_stops_the_whole_group() {
        let started = Instant::now();
        let err = ChildCommand::new("/bin/sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .deadline(Duration::from_millis(200))
            .run(&CancellationToken::new())
            .await
            .unwrap_err();
        assert!(matches!(err, ChildError::Deadline { .. }));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_stopped_child_keeps_what_it_wrote() {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.cancel();
        });
        let err = ChildCommand::new("/bin/sh")
            .args(["-c", "echo postgres://made; echo working >&2; sleep 30"])
            .run(&cancel)
            .await
            .unwrap_err();
        let ChildError::Cancelled { stdout, stderr, .. } = err else { panic!("cancelled, not {err:?}") };
        assert_eq!((stdout.trim(), stderr.trim()), ("postgres://made", "working"));
        let err = ChildCommand::new("/bin/sh")
            .args(["-c", "echo half; sleep 30"])
            .deadline(Duration::from_millis(300))
            .run(&CancellationToken::new())
            .await
            .unwrap_err();
        let ChildError::Deadline { stdout, .. } = err else { panic!("deadline, not {err:?}") };
        assert_eq!(stdout.trim(), "half");
    }

    #[tokio::test]
    async fn the_kill_switch_kills_the_whole_group_without_a_signal_it_could_catch() {
        let kill = CancellationToken::new();
        let k = kill.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            k.cancel();
        });
        let started = Instant::now();
        // A trap on TERM would print and exit 0: SIGKILL gives it no chance.
        let err = ChildCommand::new("/bin/sh")
            .args(["-c", "trap 'echo caught; exit 0' TERM; echo started; sleep 30 & wait"])
            .kill_switch(kill)
            .run(&CancellationToken::new())
            .await
            .unwrap_err();
        let ChildError::Killed { stdout, .. } = err else { panic!("killed, not {err:?}") };
        assert_eq!(stdout.trim(), "started", "what it wrote before is kept, and it caught nothing");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn reader_input_is_fed_to_stdin() {
        let out = ChildCommand::new("/bin/cat")
            .input(ChildInput::Reader(Box::new(std::io::Cursor::new(b"hello".to_vec()))))
            .keep_all_stdout()
            .run(&CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(out.stdout, "hello");
    }

    #[test]
    fn own_process_is_alive_and_a_dead_one_is_not() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_alive(pid));
    }
}
