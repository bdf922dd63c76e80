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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Keeps what it is sent.
    struct Kept(Arc<Mutex<Vec<Event>>>);

    impl EventSink for Kept {
        fn emit(&self, event: Event) {
            self.0.lock().unwrap().push(event);
        }
    }

    #[test]
    fn redacting_takes_values_out_of_details_and_notes_only() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = Redacting(Box::new(Kept(kept.clone())));
        let detail = "DETAIL: Key (email)=(alice@example.com) already exists.";
        sink.emit(Event::StageStarted { stage: Stage::Race, detail: detail.into() });
        sink.emit(Event::Note(format!("drift check: {detail}")));
        sink.emit(Event::MigrationStarted { index: 1, total: 1, id: "0001_key_(x)=(y)".into() });
        let shown = format!("{:?}", kept.lock().unwrap());
        assert!(!shown.contains("alice@example.com"), "{shown}");
        assert_eq!(shown.matches("Key (email)=(…) already exists.").count(), 2, "{shown}");
        assert!(shown.contains("0001_key_(x)=(y)"), "a migration's id is a file name: kept");
    }
}
