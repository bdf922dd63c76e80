//! The one error type the library returns, and the exit code each kind maps to.
//!
//! Migration failures and budget breaches are not errors: they are outcomes
//! recorded in the report (see `report::RunStatus`). An `Error` means the run
//! could not do its job at all.

use std::error::Error as StdError;

/// Exit codes, as documented in DESIGN.md and the README.
pub mod exit {
    /// Every migration applied within budget.
    pub const OK: i32 = 0;
    /// A budget was breached.
    pub const BUDGET_BREACHED: i32 = 1;
    /// A migration failed.
    pub const MIGRATION_FAILED: i32 = 2;
    /// Bad input: scenario, dump or arguments.
    pub const BAD_INPUT: i32 = 3;
    /// Environment problem: no Postgres binaries, cannot start or connect.
    pub const ENVIRONMENT: i32 = 4;
    /// Interrupted by SIGINT or SIGTERM.
    pub const INTERRUPTED: i32 = 130;
}

pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a run could not complete. Each message says what failed, with which
/// input, and what to do next; causes hang off `source()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario, the dump or the arguments are wrong: the user fixes them.
    #[error("{message}")]
    BadInput {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// This machine cannot do what was asked: the user installs or starts something.
    #[error("{message}")]
    Environment {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// SIGINT or SIGTERM arrived.
    #[error("stopped by a signal; what it had started was cleaned up")]
    Interrupted,
}

impl Error {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::BadInput { message: message.into(), source: None }
    }

    pub fn bad_input_because(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::BadInput { message: message.into(), source: Some(source.into()) }
    }

    pub fn environment(message: impl Into<String>) -> Self {
        Error::Environment { message: message.into(), source: None }
    }

    pub fn environment_because(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Environment { message: message.into(), source: Some(source.into()) }
    }

    /// The same error, its message prefixed with where it happened ("app billing: ...").
    pub fn context(self, prefix: impl std::fmt::Display) -> Self {
        match self {
            Error::BadInput { message, source } => Error::BadInput { message: format!("{prefix}: {message}"), source },
            Error::Environment { message, source } => {
                Error::Environment { message: format!("{prefix}: {message}"), source }
            }
            Error::Interrupted => Error::Interrupted,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadInput { .. } => exit::BAD_INPUT,
            Error::Environment { .. } => exit::ENVIRONMENT,
            Error::Interrupted => exit::INTERRUPTED,
        }
    }

    /// The message followed by every cause, one per line, as the user sees
    /// it: an `error:` line, or for an interruption (not an error: the user
    /// asked for it) one `interrupted:` line, as docs/exit-codes.md says.
    pub fn render(&self) -> String {
        match self {
            Error::Interrupted => format!("interrupted: {self} (exit {})", exit::INTERRUPTED),
            _ => format!("error: {}", self.with_causes()),
        }
    }

    /// The message and every cause under it (`caused by: ...`), without the
    /// `error:` prefix: for the report and for lists of failures.
    pub fn with_causes(&self) -> String {
        let mut out = self.to_string();
        let mut cause = self.source();
        while let Some(c) = cause {
            let text = c.to_string();
            // tokio-postgres repeats its cause in Display; skip empty or echoed lines.
            if !text.is_empty() && !out.contains(&text) {
                out.push_str(&format!("\n  caused by: {text}"));
            }
            cause = c.source();
        }
        out
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interruption_is_the_interrupted_line_docs_exit_codes_quotes() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/exit-codes.md")).unwrap();
        let line = Error::Interrupted.render();
        assert!(line.starts_with("interrupted: ") && !line.contains('\n'), "{line}");
        assert!(doc.contains(&format!("`{line}`")), "docs/exit-codes.md does not quote {line:?}");
        assert!(Error::environment("x").render().starts_with("error: x"));
    }
}
