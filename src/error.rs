//! The one error type the library returns, its kinds, and the exit code each
//! kind maps to.
//!
//! Migration failures and budget breaches are not errors: they are outcomes
//! recorded in the report (see `report::RunStatus`). An `Error` means the run
//! could not do its job at all, and its [`ErrorKind`] says which class of
//! failure that was, for a caller (a CI script reading `report.json`'s
//! `error_kind`, a test) to tell apart without reading the message.

use std::error::Error as StdError;

use serde::{Deserialize, Serialize};

use crate::kinds::closed_set;

/// Exit codes, as documented in docs/exit-codes.md.
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

closed_set! {
    /// Which class of failure stopped a run: a closed set, each kind one exit
    /// code ([`ErrorKind::exit_code`]), listed under its code in
    /// docs/exit-codes.md and written as `error_kind` in `report.json`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum ErrorKind {
        // Exit 3: the user fixes their input.
        /// The scenario file cannot be read or parsed, or a value in it is wrong,
        /// contradicts another, or is refused by the server or the restored
        /// database (`postgres.settings`, `observe.hot_tables`, `drift.role`).
        ScenarioInvalid = "scenario_invalid",
        /// A command-line flag is wrong, or flags and scenario keys name servers
        /// of different backends (`--url` with `backend: clone`, a `--pg-bin`
        /// without initdb).
        ArgumentsInvalid = "arguments_invalid",
        /// A connection URL (`postgres.url`, `--url`, `observe.standby_url`)
        /// is not one.
        UrlInvalid = "url_invalid",
        /// A connection URL has a TLS setting rehearse does not support
        /// (`sslcrl`, `sslpassword`, `sslnegotiation=direct`, ...).
        TlsRequested = "tls_requested",
        /// The dump is missing, unreadable or empty.
        DumpUnreadable = "dump_unreadable",
        /// The dump is not in a format rehearse restores, or a newer pg_dump made it.
        DumpUnsupported = "dump_unsupported",
        /// pg_restore or psql could not restore the dump.
        DumpRejected = "dump_rejected",
        /// The physical source (`physical:`) is not a base backup, lacks its
        /// WAL, or its recovery target cannot be reached from it.
        BackupInvalid = "backup_invalid",
        /// The migrations cannot run as given: a misnamed, clashing or unreadable
        /// file, an unknown placeholder, a dirty or unreadable history table, a
        /// database at a revision the tree lacks, a `migrations.target` that
        /// does not fit, two apps sharing a history table, a failing
        /// `migrations.list`, a Job manifest without the Job.
        MigrationsInvalid = "migrations_invalid",
        /// The baseline (`--baseline`, `report.baseline`) is missing or not a
        /// `rehearse.report/v1` report.
        BaselineInvalid = "baseline_invalid",
        /// Production's statistics (`estimate.production`) are missing or not
        /// what `rehearse stats` writes.
        StatisticsInvalid = "statistics_invalid",
        /// The running app's queries (`compat.queries`) are missing, empty or
        /// not SQL.
        AppQueriesInvalid = "app_queries_invalid",
        /// The workload replayed under load (`load.queries`) is missing, in
        /// no known format, empty, or wrong at a line (a `\set` or `-- rate:`
        /// that does not parse, a `:name` never set, a utility statement).
        WorkloadInvalid = "workload_invalid",
        /// The report directory (`--out`, `report.dir`) is a file or lies under one.
        ReportDirInvalid = "report_dir_invalid",
        /// Any other bad input.
        OtherBadInput = "other_bad_input",

        // Exit 4: the user installs, starts or frees something on this machine.
        /// No PostgreSQL server or client binaries, or not the version asked for.
        ServerBinariesMissing = "server_binaries_missing",
        /// The docker CLI is not installed, or the Docker engine does not answer.
        DockerUnavailable = "docker_unavailable",
        /// A docker image (the server's, or the app's `migrations.image`) is not
        /// on this machine and could not be pulled (or was not to be).
        ImageUnavailable = "image_unavailable",
        /// `backend: auto` found no backend that can run here.
        BackendUnavailable = "backend_unavailable",
        /// The throwaway server, its database or its standby could not be made
        /// or started (initdb, pg_ctl, the container, `postgres.clone.create`).
        ServerStartFailed = "server_start_failed",
        /// A server did not accept rehearse's connection, or never answered
        /// (a pg_hba.conf with no line for it without TLS included), its TLS
        /// failed or could not be set up, or a `password_command` failed.
        ConnectionFailed = "connection_failed",
        /// The migration tool cannot run: no such Python, no Alembic or
        /// SQLAlchemy in it, or no PostgreSQL driver SQLAlchemy can load.
        MigrationToolMissing = "migration_tool_missing",
        /// The migrations did not run against the throwaway database: the tool
        /// connected elsewhere, read another history, never opened a session on
        /// the copy, or the copy's history did not move.
        WrongDatabase = "wrong_database",
        /// The copy of a physical backup did not recover: the server stopped
        /// during WAL replay, or the restore command failed.
        RecoveryFailed = "recovery_failed",
        /// No room for the restore, up front or when the disk filled during it.
        DiskFull = "disk_full",
        /// The dump creates an extension the server does not have installed.
        ExtensionMissing = "extension_missing",
        /// A query rehearse runs to prepare, observe or read a server failed.
        CatalogReadFailed = "catalog_read_failed",
        /// `rehearse queries`: pg_stat_statements is not created, not loaded, or
        /// holds no query the role may see.
        StatementStatisticsUnavailable = "statement_statistics_unavailable",
        /// A read of production (`stats`, `queries`) or a `calibrate` round ran
        /// past `--timeout`.
        TimedOut = "timed_out",
        /// Something rehearse made could not be removed (a database on a shared
        /// server, a cluster directory, a container, a clone).
        CleanupFailed = "cleanup_failed",
        /// The report directory cannot be made or written, has too little room,
        /// or a report file cannot be written.
        ReportUnwritable = "report_unwritable",
        /// `rehearse comment` could not read or write the pull or merge
        /// request's comments: the API did not answer, refused the token
        /// (401), did not let it write (403), or has no such pull request (404).
        CommentFailed = "comment_failed",
        /// Any other environment problem.
        OtherEnvironment = "other_environment",

        /// SIGINT or SIGTERM arrived (exit 130).
        Interrupted = "interrupted",
    }
}

impl ErrorKind {
    /// The process exit code of a run stopped by this kind of error: the one
    /// place each kind meets its code (docs/exit-codes.md lists them).
    pub fn exit_code(self) -> i32 {
        use ErrorKind::*;
        match self {
            ScenarioInvalid | ArgumentsInvalid | UrlInvalid | TlsRequested | DumpUnreadable | DumpUnsupported
            | DumpRejected | BackupInvalid | MigrationsInvalid | BaselineInvalid | StatisticsInvalid
            | AppQueriesInvalid | WorkloadInvalid | ReportDirInvalid | OtherBadInput => exit::BAD_INPUT,
            ServerBinariesMissing
            | DockerUnavailable
            | ImageUnavailable
            | BackendUnavailable
            | ServerStartFailed
            | ConnectionFailed
            | MigrationToolMissing
            | WrongDatabase
            | RecoveryFailed
            | DiskFull
            | ExtensionMissing
            | CatalogReadFailed
            | StatementStatisticsUnavailable
            | TimedOut
            | CleanupFailed
            | ReportUnwritable
            | CommentFailed
            | OtherEnvironment => exit::ENVIRONMENT,
            Interrupted => exit::INTERRUPTED,
        }
    }

    /// An error of this kind: `ErrorKind::DumpUnreadable.error(message)` is
    /// [`Error::new`] in the shape call sites format best.
    pub fn error(self, message: impl Into<String>) -> Error {
        Error::new(self, message)
    }

    /// An error of this kind caused by `source`: [`Error::because`].
    pub fn because(self, message: impl Into<String>, source: impl Into<BoxError>) -> Error {
        Error::because(self, message, source)
    }
}

/// Why a run could not complete. Each message says what failed, with which
/// input, and what to do next; causes hang off `source()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The run could not do its job; `kind` says which class of failure.
    #[error("{message}")]
    Failed {
        kind: ErrorKind,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// SIGINT or SIGTERM arrived.
    #[error("stopped by a signal; what it had started was cleaned up")]
    Interrupted,
}

impl Error {
    /// An error of `kind` (not [`ErrorKind::Interrupted`]: that is [`Error::Interrupted`]).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        debug_assert_ne!(kind, ErrorKind::Interrupted, "an interruption is Error::Interrupted");
        Error::Failed { kind, message: message.into(), source: None }
    }

    /// An error of `kind` caused by `source` (shown as `caused by:` lines, never in the message).
    pub fn because(kind: ErrorKind, message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        debug_assert_ne!(kind, ErrorKind::Interrupted, "an interruption is Error::Interrupted");
        Error::Failed { kind, message: message.into(), source: Some(source.into()) }
    }

    /// Bad input of no more specific kind ([`ErrorKind::OtherBadInput`]).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::OtherBadInput, message)
    }

    pub fn bad_input_because(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::because(ErrorKind::OtherBadInput, message, source)
    }

    /// An environment problem of no more specific kind ([`ErrorKind::OtherEnvironment`]).
    pub fn environment(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::OtherEnvironment, message)
    }

    pub fn environment_because(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::because(ErrorKind::OtherEnvironment, message, source)
    }

    /// Which class of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Failed { kind, .. } => *kind,
            Error::Interrupted => ErrorKind::Interrupted,
        }
    }

    /// The same error, its message prefixed with where it happened ("app billing: ...").
    pub fn context(self, prefix: impl std::fmt::Display) -> Self {
        match self {
            Error::Failed { kind, message, source } => {
                Error::Failed { kind, message: format!("{prefix}: {message}"), source }
            }
            Error::Interrupted => Error::Interrupted,
        }
    }

    /// The same error, `suffix` appended to its message (what a log said, say).
    pub fn context_after(self, suffix: impl std::fmt::Display) -> Self {
        match self {
            Error::Failed { kind, message, source } => {
                Error::Failed { kind, message: format!("{message}{suffix}"), source }
            }
            Error::Interrupted => Error::Interrupted,
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
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
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn exit_codes_doc() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/exit-codes.md")).unwrap()
    }

    /// The kinds docs/exit-codes.md lists under each `### Exit N` of its
    /// "Error kinds" section, by their JSON names.
    fn documented_kinds(doc: &str) -> BTreeMap<String, i32> {
        let section = doc.split("\n## Error kinds\n").nth(1).expect("docs/exit-codes.md has an Error kinds section");
        let mut code = None;
        let mut kinds = BTreeMap::new();
        for line in section.lines() {
            if let Some(n) = line.strip_prefix("### Exit ") {
                code = Some(n.trim().parse::<i32>().expect("### Exit <code>"));
            } else if let Some(row) = line.strip_prefix("| `") {
                let name = row.split('`').next().unwrap().to_string();
                let code = code.unwrap_or_else(|| panic!("{name} is listed before any ### Exit heading"));
                assert!(kinds.insert(name.clone(), code).is_none(), "{name} is listed twice");
            }
        }
        kinds
    }

    /// The codes in the first column of the table at the top of docs/exit-codes.md.
    fn documented_codes(doc: &str) -> BTreeSet<i32> {
        doc.lines().filter_map(|l| l.strip_prefix("| ")?.split(" |").next()?.trim().parse().ok()).collect()
    }

    #[test]
    fn every_kind_is_listed_under_its_exit_code_in_docs_exit_codes() {
        let doc = exit_codes_doc();
        let listed = documented_kinds(&doc);
        for kind in ErrorKind::ALL {
            let name = serde_json::to_value(kind).unwrap().as_str().unwrap().to_string();
            assert_eq!(listed.get(&name), Some(&kind.exit_code()), "{name} under ### Exit {}", kind.exit_code());
        }
        for name in listed.keys() {
            let kind: Result<ErrorKind, _> = serde_json::from_value(serde_json::Value::String(name.clone()));
            assert!(kind.is_ok(), "docs/exit-codes.md lists {name}, which is no ErrorKind");
        }
    }

    #[test]
    fn each_exit_code_an_error_can_have_is_documented_and_has_a_kind() {
        let doc = exit_codes_doc();
        let codes = documented_codes(&doc);
        assert!(codes.is_superset(&[exit::OK, exit::BUDGET_BREACHED, exit::MIGRATION_FAILED].into()), "{codes:?}");
        // 0, 1 and 2 are outcomes (the report's status), not errors.
        let error_codes: BTreeSet<i32> = codes.into_iter().filter(|c| *c > exit::MIGRATION_FAILED).collect();
        let kind_codes: BTreeSet<i32> = ErrorKind::ALL.iter().map(|k| k.exit_code()).collect();
        assert_eq!(kind_codes, error_codes, "exit codes of the kinds vs of docs/exit-codes.md's table");
    }

    #[test]
    fn every_kind_is_written_as_its_name() {
        crate::kinds::assert_serde_spells_as_str(&ErrorKind::ALL, ErrorKind::as_str);
        assert_eq!(serde_json::to_string(&ErrorKind::WrongDatabase).unwrap(), "\"wrong_database\"");
    }

    #[test]
    fn the_kind_decides_the_exit_code_and_survives_context() {
        let e = ErrorKind::DumpUnreadable.error("dump x cannot be read");
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::DumpUnreadable, exit::BAD_INPUT));
        let e = ErrorKind::ConnectionFailed.because("cannot connect", std::io::Error::other("refused")).context("app");
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::ConnectionFailed, exit::ENVIRONMENT));
        assert_eq!(e.with_causes(), "app: cannot connect\n  caused by: refused");
        assert_eq!(Error::bad_input("x").kind(), ErrorKind::OtherBadInput);
        assert_eq!(Error::environment("x").kind(), ErrorKind::OtherEnvironment);
        assert_eq!((Error::Interrupted.kind(), Error::Interrupted.exit_code()), (ErrorKind::Interrupted, 130));
    }

    #[test]
    fn an_interruption_is_the_interrupted_line_docs_exit_codes_quotes() {
        let doc = exit_codes_doc();
        let line = Error::Interrupted.render();
        assert!(line.starts_with("interrupted: ") && !line.contains('\n'), "{line}");
        assert!(doc.contains(&format!("`{line}`")), "docs/exit-codes.md does not quote {line:?}");
        assert!(Error::environment("x").render().starts_with("error: x"));
    }
}
