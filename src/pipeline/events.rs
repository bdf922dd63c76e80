//! Events the pipeline emits; the progress display consumes them. Logic
//! never prints.

use std::time::Duration;

use crate::report::{MigrationStatus, Stage};

#[derive(Debug, Clone)]
pub enum Event {
    StageStarted {
        stage: Stage,
        detail: String,
    },
    StageFinished {
        stage: Stage,
        elapsed: Duration,
        detail: String,
    },
    MigrationStarted {
        index: usize,
        total: usize,
        id: String,
    },
    MigrationFinished {
        index: usize,
        total: usize,
        id: String,
        status: MigrationStatus,
        elapsed: Duration,
    },
    /// Something the user should know that is not an error.
    Note(String),
}

pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Discards events (tests, `--quiet`).
pub struct Silent;

impl EventSink for Silent {
    fn emit(&self, _: Event) {}
}
