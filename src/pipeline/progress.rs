//! Progress on stderr: indicatif spinners on a terminal, plain timestamped
//! lines otherwise (CI logs).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};

use super::events::{Event, EventSink};
use crate::report::format_ms;

pub struct Progress {
    spinner: Option<Mutex<Option<ProgressBar>>>,
}

impl Progress {
    /// Spinners when stderr is a terminal, plain lines when it is not.
    pub fn for_stderr() -> Progress {
        Progress { spinner: std::io::stderr().is_terminal().then(|| Mutex::new(None)) }
    }

    fn line(&self, text: &str) {
        match &self.spinner {
            Some(slot) => {
                let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
                match slot.as_ref() {
                    Some(bar) => bar.println(text),
                    None => eprintln!("{text}"),
                }
            }
            None => eprintln!("{} {text}", humantime::format_rfc3339_seconds(SystemTime::now())),
        }
    }

    fn spin(&self, message: String) {
        let Some(slot) = &self.spinner else {
            self.line(&message);
            return;
        };
        let bar = ProgressBar::new_spinner().with_message(message);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.replace(bar) {
            old.finish_and_clear();
        }
    }

    fn done(&self, message: String) {
        if let Some(slot) = &self.spinner {
            if let Some(bar) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                bar.finish_and_clear();
            }
            eprintln!("✓ {message}");
        } else {
            self.line(&message);
        }
    }
}

impl EventSink for Progress {
    fn emit(&self, event: Event) {
        match event {
            Event::StageStarted { stage, detail } => self.spin(format!("{}: {detail}", stage.as_str())),
            Event::StageFinished { stage, elapsed, detail } => self.done(format!(
                "{} done in {}{}",
                stage.as_str(),
                format_ms(elapsed.as_millis() as u64),
                if detail.is_empty() { String::new() } else { format!(": {detail}") }
            )),
            Event::MigrationStarted { index, total, id } => self.spin(format!("migration {index}/{total} {id}")),
            Event::MigrationFinished { index, total, id, status, elapsed } => self.done(format!(
                "migration {index}/{total} {id}: {} in {}",
                status.as_str(),
                format_ms(elapsed.as_millis() as u64)
            )),
            Event::Note(text) => self.line(&format!("note: {text}")),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(slot) = &self.spinner {
            if let Some(bar) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                bar.finish_and_clear();
            }
        }
    }
}
