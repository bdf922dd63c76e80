//! Starting one copy: the one place that knows how a replica's command is
//! run: a child process through the one spawn helper (its own process
//! group, output drained, SIGTERM and a grace period at a signal, SIGKILL
//! to the group from the kill switch), on this machine or in a container of
//! the app's image (`migrations.image`, `migrations::launch`). In the image,
//! the container is removed as soon as the copy ends, however it ended: a
//! killed copy's container dies with it, as a killed replica's pod would.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::migrations::launch::Launch;
use crate::migrations::network::ToolNetwork;
use crate::sys::process::ChildError;

/// One copy's command line, working directory and environment.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The program and its arguments.
    pub argv: Vec<String>,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// Here, or in the app's image.
    pub launch: Launch,
    /// Starts it (its namespace, the variables it does not inherit).
    pub network: ToolNetwork,
}

/// How one copy ended, with the end of what it wrote.
#[derive(Debug, Clone, Default)]
pub struct CopyExit {
    /// Its exit code; None when a signal ended it or it never started.
    pub code: Option<i32>,
    /// The kill switch killed it.
    pub killed: bool,
    /// The run's signal stopped it.
    pub interrupted: bool,
    /// Why it could not start, or why its supervision ended it.
    pub trouble: Option<String>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs one copy to its end. `cancel` is the run's signal (SIGTERM, grace,
/// SIGKILL); `kill` SIGKILLs it at once (kill_one, or the race's deadline);
/// `deadline` is only a backstop behind the race's own.
pub async fn launch(
    invocation: Invocation,
    label: &str,
    deadline: Duration,
    cancel: &CancellationToken,
    kill: CancellationToken,
) -> CopyExit {
    let Some((program, args)) = invocation.argv.split_first() else {
        return CopyExit { trouble: Some("an empty command line".into()), ..CopyExit::default() };
    };
    let (command, container) =
        invocation.network.command(&invocation.launch, program, args, &invocation.env, &invocation.dir);
    let run = command.label(label).deadline(deadline).kill_switch(kill).run(cancel).await;
    drop(container);
    match run {
        Ok(out) => CopyExit { code: Some(0), stdout: out.stdout, stderr: out.stderr, ..CopyExit::default() },
        Err(ChildError::Failed { status, stderr, stdout, .. }) => {
            CopyExit { code: status.code(), stdout, stderr, ..CopyExit::default() }
        }
        Err(ChildError::Killed { stdout, stderr, .. }) => {
            CopyExit { killed: true, stdout, stderr, ..CopyExit::default() }
        }
        Err(ChildError::Cancelled { .. }) => CopyExit { interrupted: true, ..CopyExit::default() },
        Err(e) => {
            let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
            CopyExit { trouble: Some(format!("{e}{cause}")), ..CopyExit::default() }
        }
    }
}
