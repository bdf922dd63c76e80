//! What `rehearse watch` saw, as events: one line each on the terminal (a
//! CI log reads the same), and one JSON object a line in `--events FILE`
//! (`event` and `migration` in every object, `at` in RFC 3339 UTC).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::error::{ErrorKind, Result};
use crate::report::{format_bytes, format_ms, Range};

/// One thing the watch saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A session of production ran one of the migration's statements, or its
    /// history row appeared before any was seen (`pid` null).
    MigrationStarted {
        migration: String,
        pid: Option<i32>,
        /// When its first statement started, as `pg_stat_activity.query_start` says.
        started_at: String,
        rehearsed_ms: u64,
        estimate_ms: Option<Range>,
    },
    /// Its history row is committed.
    MigrationFinished {
        migration: String,
        /// From its first statement to the reading that saw its row; null
        /// when no statement of it was seen (it ran between two readings).
        duration_ms: Option<u64>,
        rehearsed_ms: u64,
        estimate_ms: Option<Range>,
    },
    /// How a running migration compares with the rehearsal.
    Progress {
        migration: String,
        elapsed_ms: u64,
        rehearsed_ms: u64,
        estimate_ms: Option<Range>,
        /// Until the estimate's mid (the measured time without an estimate); 0 once past it.
        eta_ms: u64,
        /// Past the estimate's high (the measured time without an estimate).
        slower_than_expected: bool,
        /// What a progress view shows its session doing: `CREATE INDEX: building index 1200/5400 blocks`.
        phase: Option<String>,
    },
    /// Sessions of the app waiting behind the migration, or the migration waiting for a lock.
    LockQueue {
        migration: String,
        pid: i32,
        /// Sessions waiting on the migration's session (`pg_blocking_pids`).
        queue: usize,
        longest_wait_ms: u64,
        /// The lock the migration itself waits for, and for how long, and behind whom.
        waiting_for: Option<String>,
        waited_ms: u64,
        blocked_by: Vec<i32>,
    },
    /// A standby's replay lag.
    Lag {
        migration: Option<String>,
        standby: String,
        lag_bytes: Option<u64>,
        lag_ms: Option<u64>,
        /// The primary's WAL rate since the previous reading.
        wal_bytes_per_second: Option<u64>,
        /// The most the rehearsal's standby fell behind during this migration.
        rehearsed_peak_bytes: Option<u64>,
        /// The WAL rate this migration wrote at in the rehearsal.
        rehearsed_wal_bytes_per_second: Option<u64>,
        /// The standby did not answer (it keeps being retried).
        unreachable: bool,
    },
    /// A threshold crossed, with the abort plan. `watch` never cancels anything itself.
    Breach {
        migration: String,
        /// The budget's key, as in the scenario: `max_probe_wait`, `max_exclusive_lock`, ...
        budget: String,
        figure: u64,
        limit: u64,
        message: String,
        /// What to run to abort, in order.
        abort: Vec<String>,
    },
    /// The watch ended: `applied`, `already_applied`, `timeout`, `interrupted`, `breach`.
    Ended { migration: Option<String>, reason: String },
}

/// Where events go: stderr lines, and `--events FILE`.
pub struct EventLog {
    file: Option<BufWriter<File>>,
    quiet: bool,
}

impl EventLog {
    pub fn create(path: Option<&Path>, quiet: bool) -> Result<EventLog> {
        let file = match path {
            Some(path) => Some(BufWriter::new(File::create(path).map_err(|e| {
                ErrorKind::ReportUnwritable
                    .because(format!("cannot create --events {}: name a file in a writable folder", path.display()), e)
            })?)),
            None => None,
        };
        Ok(EventLog { file, quiet })
    }

    /// Records `event`: flushed at once, so a pipeline reading the file follows along.
    pub fn emit(&mut self, event: &Event) {
        let at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        if !self.quiet {
            eprintln!("{} {}", &at[11..19], line(event));
        }
        if let Some(file) = &mut self.file {
            let mut value = serde_json::to_value(event).unwrap_or_default();
            value["at"] = serde_json::Value::String(at);
            // A full disk loses lines, not the watch.
            let _ = writeln!(file, "{value}").and_then(|_| file.flush());
        }
    }
}

fn range(r: &Option<Range>) -> String {
    r.map(|r| format!(", estimated {}–{} in production", format_ms(r.low), format_ms(r.high))).unwrap_or_default()
}

/// The event as one line for a terminal or a CI log.
pub fn line(event: &Event) -> String {
    match event {
        Event::MigrationStarted { migration, pid, rehearsed_ms, estimate_ms, .. } => format!(
            "{migration} started{} (rehearsed {}{})",
            pid.map(|p| format!(" in session {p}")).unwrap_or_default(),
            format_ms(*rehearsed_ms),
            range(estimate_ms)
        ),
        Event::MigrationFinished { migration, duration_ms, rehearsed_ms, .. } => format!(
            "{migration} finished{} (rehearsed {})",
            duration_ms.map(|d| format!(" in {}", format_ms(d))).unwrap_or_else(|| " between two readings".into()),
            format_ms(*rehearsed_ms)
        ),
        Event::Progress { migration, elapsed_ms, eta_ms, slower_than_expected, phase, .. } => format!(
            "{migration} running {}{}{}",
            format_ms(*elapsed_ms),
            match slower_than_expected {
                true => ": slower than the rehearsal expected".to_string(),
                false => format!(", about {} to go", format_ms(*eta_ms)),
            },
            phase.as_ref().map(|p| format!("; {p}")).unwrap_or_default()
        ),
        Event::LockQueue { migration, pid, queue, longest_wait_ms, waiting_for, waited_ms, blocked_by } => {
            let own = waiting_for
                .as_ref()
                .map(|w| format!("; it waits {} for {w} behind session(s) {blocked_by:?}", format_ms(*waited_ms)));
            format!(
                "{migration} (session {pid}): {queue} session(s) wait behind it, the longest {}{}",
                format_ms(*longest_wait_ms),
                own.unwrap_or_default()
            )
        }
        Event::Lag {
            standby,
            lag_bytes,
            lag_ms,
            wal_bytes_per_second,
            rehearsed_peak_bytes,
            rehearsed_wal_bytes_per_second,
            unreachable,
            ..
        } => match unreachable {
            true => format!("standby {standby} does not answer: its lag is unknown until it does"),
            false => format!(
                "standby {standby} {} behind{}{}{}",
                lag_bytes.map(format_bytes).unwrap_or_else(|| "?".into()),
                lag_ms.map(|ms| format!(" ({})", format_ms(ms))).unwrap_or_default(),
                rehearsed_peak_bytes.map(|b| format!(", rehearsed peak {}", format_bytes(b))).unwrap_or_default(),
                wal_bytes_per_second
                    .map(|r| format!(
                        "; WAL {}/s{}",
                        format_bytes(r),
                        rehearsed_wal_bytes_per_second
                            .map(|w| format!(" (rehearsed {}/s)", format_bytes(w)))
                            .unwrap_or_default()
                    ))
                    .unwrap_or_default()
            ),
        },
        Event::Breach { message, abort, .. } => {
            format!("BREACH {message}. Abort plan: {}", abort.join("; then "))
        }
        Event::Ended { reason, .. } => format!("watch ended: {}", reason.replace('_', " ")),
    }
}
