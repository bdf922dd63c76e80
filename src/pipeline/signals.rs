//! The signal supervisor: SIGINT and SIGTERM cancel the run's token. The
//! first signal cancels the current step (children get SIGTERM and a grace
//! period, queries are cancelled); the run then cleans up and writes its
//! partial report. A second signal ends every grace period at once
//! (`sys::interrupt`): children are killed without waiting. No signal ever
//! aborts the cleanup: once installed, the handlers replace the default
//! "terminate" action, and cleanup runs on a token nobody cancels.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Supervisor {
    cancel: CancellationToken,
    received: Arc<AtomicUsize>,
}

impl Supervisor {
    /// Installs the SIGINT and SIGTERM handlers (needs a tokio runtime).
    pub fn install() -> Result<Supervisor> {
        let sup = Supervisor::unhooked();
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| Error::environment_because("cannot handle SIGINT", e))?;
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| Error::environment_because("cannot handle SIGTERM", e))?;
        let s = sup.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                }
                if s.received.fetch_add(1, Ordering::SeqCst) >= 1 {
                    crate::sys::interrupt::trip();
                }
                s.cancel.cancel();
            }
        });
        Ok(sup)
    }

    /// A supervisor with no signal handlers (for tests that drive the library).
    pub fn unhooked() -> Supervisor {
        Supervisor { cancel: CancellationToken::new(), received: Arc::new(AtomicUsize::new(0)) }
    }

    pub fn token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn interrupted(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn signals_received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}
