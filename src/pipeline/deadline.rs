//! A migration's deadline: its `max_runtime` budget with `on_exceed: cancel`.
//!
//! The deadline is a child of the run's cancellation token, so a migration
//! source stops at the deadline exactly as it stops on Ctrl-C (the backend's
//! running query is cancelled, a tool's process group is signalled), with
//! nothing source-specific to add. The run tells the two apart afterwards:
//! the deadline expired and the run's own token was not cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::report::{format_ms, MigrationError};

pub struct Deadline {
    token: CancellationToken,
    limit: Option<Duration>,
    expired: Arc<AtomicBool>,
    timer: Option<JoinHandle<()>>,
}

impl Deadline {
    /// Starts the clock now; `None` never expires (the token still follows `run`).
    pub fn start(run: &CancellationToken, limit: Option<Duration>) -> Deadline {
        let token = run.child_token();
        let expired = Arc::new(AtomicBool::new(false));
        let timer = limit.map(|limit| {
            let (token, expired) = (token.clone(), expired.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(limit) => {
                        expired.store(true, Ordering::SeqCst);
                        token.cancel();
                    }
                    _ = token.cancelled() => {}
                }
            })
        });
        Deadline { token, limit, expired, timer }
    }

    /// The token to hand the migration source.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The deadline passed (whether or not the migration had finished by then).
    pub fn expired(&self) -> bool {
        self.expired.load(Ordering::SeqCst)
    }

    /// Rewrites the source's "cancelled" error to say why it was cancelled,
    /// keeping the statement and line it was running.
    pub fn explain(&self, error: &mut Option<MigrationError>) {
        let limit = self.limit.map(|l| format_ms(l.as_millis() as u64)).unwrap_or_default();
        let message = format!(
            "cancelled: the migration ran past its max_runtime budget of {limit} (on_exceed: cancel); \
             later migrations were skipped. Make it faster, or accept it as a maintenance-window job with \
             budgets.overrides.<id>.max_runtime"
        );
        match error {
            Some(e) => e.message = message,
            None => *error = Some(MigrationError::new(message)),
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expires_and_cancels_its_token_but_not_the_run() {
        let run = CancellationToken::new();
        let d = Deadline::start(&run, Some(Duration::from_millis(50)));
        tokio::time::timeout(Duration::from_secs(5), d.token().cancelled()).await.unwrap();
        assert!(d.expired());
        assert!(!run.is_cancelled());
    }

    #[tokio::test]
    async fn a_signal_cancels_without_expiring() {
        let run = CancellationToken::new();
        let d = Deadline::start(&run, Some(Duration::from_secs(60)));
        run.cancel();
        assert!(d.token().is_cancelled());
        assert!(!d.expired());
        let none = Deadline::start(&CancellationToken::new(), None);
        assert!(!none.token().is_cancelled() && !none.expired());
    }
}
