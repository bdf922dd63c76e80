//! A child rehearse talks to while it runs (the Alembic helper, which
//! applies one revision each time rehearse says so): lines to its stdin,
//! lines from its stdout. Started by the one spawn helper
//! ([`ChildCommand::spawn_interactive`](super::process::ChildCommand)), so
//! it has the same process group, pipe draining and stopping as every other
//! child: stdout is read into a channel by a task of its own and stderr is
//! drained with a bounded tail, so a chatty child never blocks on a full
//! pipe while rehearse is busy elsewhere (observing between two revisions).

use std::time::Duration;

use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::process::{drain, stop_group, ChildError, GroupGuard, GRACE};

pub struct InteractiveChild {
    label: String,
    child: Option<Child>,
    pgid: Option<Pid>,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Option<JoinHandle<String>>,
    /// Kills the group if this is dropped before the child was reaped.
    group: Option<GroupGuard>,
}

impl InteractiveChild {
    pub(super) fn new(label: String, child: &mut Child, pgid: Option<Pid>) -> InteractiveChild {
        let stdout = child.stdout.take().expect("stdout was piped");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        InteractiveChild {
            label,
            child: None,
            pgid,
            stdin: child.stdin.take(),
            lines,
            stderr: Some(tokio::spawn(drain(child.stderr.take().expect("stderr was piped"), false))),
            group: Some(GroupGuard(pgid)),
        }
    }

    pub(super) fn with_child(mut self, child: Child) -> InteractiveChild {
        self.child = Some(child);
        self
    }

    /// Writes one line to the child's stdin. A child that already exited
    /// (a closed pipe) is not an error here: its exit says why.
    pub async fn send(&mut self, line: &str) -> Result<(), ChildError> {
        let Some(stdin) = self.stdin.as_mut() else { return Ok(()) };
        let written = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        match written.await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(source) => Err(ChildError::Io { label: self.label.clone(), source }),
        }
    }

    /// The next line the child wrote to stdout; None once it closed stdout
    /// (it exited). `cancel` stops the child's group (SIGTERM, a grace
    /// period, SIGKILL); so does `deadline`, without the grace.
    pub async fn next_line(
        &mut self,
        cancel: &CancellationToken,
        deadline: Duration,
    ) -> Result<Option<String>, ChildError> {
        tokio::select! {
            line = self.lines.recv() => Ok(line),
            _ = cancel.cancelled() => {
                self.stop(GRACE).await;
                Err(ChildError::Cancelled { label: self.label.clone(), stdout: String::new(), stderr: self.stderr().await })
            }
            _ = tokio::time::sleep(deadline) => {
                self.stop(Duration::ZERO).await;
                Err(ChildError::Deadline {
                    label: self.label.clone(),
                    deadline,
                    stdout: String::new(),
                    stderr: self.stderr().await,
                })
            }
        }
    }

    /// Closes stdin and waits for the child to exit (within `deadline`,
    /// else it is stopped); a non-zero exit is an error carrying stderr's tail.
    pub async fn finish(&mut self, deadline: Duration) -> Result<(), ChildError> {
        self.stdin = None;
        let Some(child) = self.child.as_mut() else { return Ok(()) };
        let status = match tokio::time::timeout(deadline, child.wait()).await {
            Ok(status) => status.map_err(|source| ChildError::Io { label: self.label.clone(), source })?,
            Err(_) => {
                self.stop(Duration::ZERO).await;
                let stderr = self.stderr().await;
                return Err(ChildError::Deadline {
                    label: self.label.clone(),
                    deadline,
                    stdout: String::new(),
                    stderr,
                });
            }
        };
        self.child = None;
        if let Some(group) = self.group.take() {
            group.disarm();
        }
        if status.success() {
            return Ok(());
        }
        let stderr = self.stderr().await.trim_end().to_string();
        Err(ChildError::Failed { label: self.label.clone(), status, stderr, stdout: String::new() })
    }

    /// SIGTERM to the child's group, `grace` to exit, then SIGKILL.
    pub async fn stop(&mut self, grace: Duration) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            stop_group(&mut child, self.pgid, grace).await;
        }
        if let Some(group) = self.group.take() {
            group.disarm();
        }
    }

    /// What the child wrote to stderr (its tail), once.
    async fn stderr(&mut self) -> String {
        let Some(task) = self.stderr.take() else { return String::new() };
        // The group is gone (or exited), so the pipe closes; unless something
        // outside the group holds it, which is waited for a moment only.
        tokio::time::timeout(Duration::from_secs(1), task).await.ok().and_then(|r| r.ok()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::process::ChildCommand;
    use super::*;

    #[tokio::test]
    async fn lines_go_both_ways_and_the_exit_is_reported() {
        let script = "while read line; do echo \"got $line\"; [ \"$line\" = bye ] && exit 3; done";
        let mut child = ChildCommand::new("/bin/sh").args(["-c", script]).spawn_interactive().unwrap();
        let cancel = CancellationToken::new();
        let minute = Duration::from_secs(60);
        child.send("hello").await.unwrap();
        assert_eq!(child.next_line(&cancel, minute).await.unwrap().as_deref(), Some("got hello"));
        child.send("bye").await.unwrap();
        assert_eq!(child.next_line(&cancel, minute).await.unwrap().as_deref(), Some("got bye"));
        assert_eq!(child.next_line(&cancel, minute).await.unwrap(), None, "stdout closed at exit");
        let err = child.finish(minute).await.unwrap_err();
        assert!(matches!(err, ChildError::Failed { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn cancel_stops_a_child_waiting_for_input() {
        let mut child = ChildCommand::new("/bin/sh")
            .args(["-c", "echo waiting; echo why >&2; read line; sleep 30"])
            .spawn_interactive()
            .unwrap();
        let cancel = CancellationToken::new();
        assert_eq!(child.next_line(&cancel, Duration::from_secs(60)).await.unwrap().as_deref(), Some("waiting"));
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c.cancel();
        });
        let started = Instant::now();
        let err = child.next_line(&cancel, Duration::from_secs(60)).await.unwrap_err();
        let ChildError::Cancelled { stderr, .. } = err else { panic!("cancelled, not {err:?}") };
        assert_eq!(stderr.trim(), "why");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
