//! Events the pipeline emits; the progress display consumes them. Logic
//! never prints.

use std::time::Duration;

use crate::report::{MigrationStatus, Stage};
use crate::sys::redact;

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

/// Passes events on with production's row values taken out of their texts
/// (`report.redact`): a stage's detail or a note may quote an error.
pub struct Redacting(pub Box<dyn EventSink>);

impl EventSink for Redacting {
    fn emit(&self, event: Event) {
        let text = |t: String| redact::values(&t).into_owned();
        self.0.emit(match event {
            Event::StageStarted { stage, detail } => Event::StageStarted { stage, detail: text(detail) },
            Event::StageFinished { stage, elapsed, detail } => {
                Event::StageFinished { stage, elapsed, detail: text(detail) }
            }
            Event::Note(note) => Event::Note(text(note)),
            started @ Event::MigrationStarted { .. } => started,
            finished @ Event::MigrationFinished { .. } => finished,
        })
    }
}

/// Discards events (tests, `--quiet`).
pub struct Silent;

impl EventSink for Silent {
    fn emit(&self, _: Event) {}
}
