//! The second signal. The first SIGINT or SIGTERM cancels the run's token:
//! children get SIGTERM and a grace period, stages a moment to finish what
//! they were doing. A second signal means "now": every grace period ends at
//! once (children are SIGKILLed), though never the cleanup. The signal
//! supervisor (`pipeline::signals`) trips it; it is process-wide, as signals are.

use std::sync::LazyLock;

use tokio_util::sync::CancellationToken;

static HURRY: LazyLock<CancellationToken> = LazyLock::new(CancellationToken::new);

/// Cancelled once a second signal arrived: grace periods end when it is.
pub fn hurry() -> &'static CancellationToken {
    &HURRY
}

/// Ends every grace period now (the second signal).
pub fn trip() {
    HURRY.cancel();
}
