//! What the Alembic helper (helper.py) prints: one JSON object per line
//! after a marker, each with a `type`. Read into [`HelperEvent`]; a line
//! that is not one of these events is an error naming the helper, never a
//! default value.

use serde::Deserialize;

use crate::catalog::OwnLockEntry;

/// Marks the helper's lines on stdout; anything else (an env.py that prints) is ignored.
pub const MARK: &str = "@@rehearse@@ ";

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HelperEvent {
    /// The interpreter cannot import Alembic or SQLAlchemy.
    Missing { message: String },
    /// The database is at a revision the migration tree lacks.
    UnknownRevision { revision: String, heads: Vec<String> },
    /// Alembic cannot upgrade to the target from the database's revisions.
    BadTarget { message: String, current: Vec<String> },
    /// The interpreter, Alembic, SQLAlchemy and a PostgreSQL driver are
    /// there (`check`): the driver SQLAlchemy will use, and who named it.
    Checked { driver: String, said_in: String },
    /// No PostgreSQL driver SQLAlchemy can load: the one named (and where), or none of the defaults.
    NoDriver(NoDriver),
    /// A connection env.py opened is not the throwaway database: where it went (never a password).
    WrongDatabase(WrongDatabase),
    /// The database's heads as env.py read them, and the version table it records them in.
    History { current: Vec<String>, version_table: Option<String>, version_table_schema: Option<String> },
    /// The pending revisions, in upgrade order.
    Discovered { pending: Vec<PendingRevision> },
    /// Interpreter and imports done; Alembic is called now.
    Ready {},
    /// Alembic is about to run this revision: the helper waits for rehearse's
    /// `go` (times are on the helper's clock, which leaves rehearse's pauses out).
    RevisionStart {
        revision: String,
        /// Wall time (seconds since the epoch), for the start-up.
        at: f64,
        clock: f64,
    },
    /// The revision ran (and, with a transaction per migration, committed).
    RevisionEnd {
        clock: f64,
        /// The last revision of this process: its transaction ends next.
        last: bool,
    },
    /// A batch of statements Alembic (or SQLAlchemy) sent, traced:
    /// consecutive data statements of one shape, or one other statement.
    Statement {
        /// The batch's first statement.
        sql: String,
        /// The statements' own time, summed.
        ms: f64,
        /// The cursors' rowcounts, summed (-1 counted as 0).
        rows: i64,
        /// How many statements the batch holds.
        count: u64,
        /// WAL insert position after the batch; None when the probe failed.
        wal: Option<u64>,
        lock_timeout: Option<u64>,
        /// Locks the batch added to those its session already held.
        locks: Vec<OwnLockEntry>,
        /// When its first statement started.
        clock: f64,
    },
    /// A transaction ended: every lock it took is released now.
    Transaction { state: TransactionEnd, clock: f64 },
    /// The revision raised.
    Failed { message: String, sqlstate: Option<String>, statement: Option<String>, traceback: String, clock: f64 },
    /// What the tool does after its last migration starts (Django: the
    /// models' re-rendering and the post_migrate handlers): no migration's.
    Epilogue { clock: f64 },
    /// `alembic upgrade` (`manage.py migrate`) returned.
    Done { clock: Option<f64> },
    /// What `alembic upgrade <range> --sql` printed for a revision, or why it could not.
    Offline { revision: String, sql: Option<String>, error: Option<String> },
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionEnd {
    Commit,
    Rollback,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NoDriver {
    /// The driver named; None: none was, and no default loads.
    pub driver: Option<String>,
    /// Where it was named (`migrations.driver`, `sqlalchemy.url in alembic.ini`, ...).
    pub said_in: Option<String>,
    pub tried: Vec<String>,
    /// Why it did not load.
    pub message: String,
    /// What to `pip install` for it.
    pub install: String,
    pub python: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WrongDatabase {
    /// SQLAlchemy's dialect (`postgresql`, `sqlite`, ...) and driver.
    pub dialect: String,
    pub driver: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    /// The database connected to (`current_database()`), or the file of a SQLite one.
    pub database: Option<String>,
}

impl WrongDatabase {
    /// Where a PostgreSQL connection went (never a password); None for another dialect.
    pub fn postgres_place(&self) -> Option<String> {
        (self.dialect == "postgresql").then(|| {
            format!(
                "database {} on host {} port {} (not the throwaway database)",
                self.database.as_deref().unwrap_or("?"),
                self.host.as_deref().unwrap_or("(default)"),
                self.port.as_deref().unwrap_or("(default)")
            )
        })
    }
}

/// One pending revision as Alembic's ScriptDirectory describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct PendingRevision {
    pub revision: String,
    /// The revisions it follows: two or more for a merge.
    pub down: Vec<String>,
    pub message: String,
    pub path: Option<String>,
}

/// Why a helper line could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the Alembic helper printed a line rehearse cannot read: {line}")]
pub struct UnreadableEvent {
    pub line: String,
    #[source]
    pub source: serde_json::Error,
}

/// The helper's events in `stdout`, in order.
pub fn read_events(stdout: &str) -> Result<Vec<HelperEvent>, UnreadableEvent> {
    stdout.lines().filter_map(read_line).collect()
}

/// The event on one line of the helper's stdout; None for a line that is not one (an env.py printing).
pub fn read_line(line: &str) -> Option<Result<HelperEvent, UnreadableEvent>> {
    let line = line.strip_prefix(MARK)?;
    Some(
        serde_json::from_str(line)
            .map_err(|source| UnreadableEvent { line: crate::sys::text::one_line(line, 200), source }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_and_anything_else_is_refused() {
        let out = format!(
            "env.py says hi\n{MARK}{{\"type\": \"ready\", \"started\": 1.0, \"at\": 2.5}}\n\
             {MARK}{{\"type\": \"statement\", \"sql\": \"ALTER TABLE t ADD c int\", \"ms\": 1.5, \"rows\": -1, \
             \"count\": 1, \"wal\": 100, \"lock_timeout\": 0, \"locks\": [[16400, \"public.t\", \"r\", \"AccessExclusiveLock\"]], \
             \"clock\": 3.0}}\n\
             {MARK}{{\"type\": \"transaction\", \"state\": \"commit\", \"clock\": 3.5}}\n"
        );
        let events = read_events(&out).unwrap();
        assert!(matches!(events[0], HelperEvent::Ready {}));
        let HelperEvent::Statement { locks, rows, .. } = &events[1] else { panic!("{events:?}") };
        assert_eq!((locks[0].0, *rows), (16400, -1));
        assert!(matches!(events[2], HelperEvent::Transaction { state: TransactionEnd::Commit, clock } if clock == 3.5));

        let unknown = read_events(&format!("{MARK}{{\"type\": \"surprise\"}}\n")).unwrap_err();
        assert!(unknown.to_string().contains("Alembic helper") && unknown.to_string().contains("surprise"));
        let wrong = format!(
            "{MARK}{{\"type\": \"wrong_database\", \"dialect\": \"sqlite\", \"driver\": \"pysqlite\", \"host\": null, \
             \"port\": null, \"database\": \"/srv/airflow/airflow.db\"}}\n"
        );
        let HelperEvent::WrongDatabase(w) = &read_events(&wrong).unwrap()[0] else { panic!("{wrong}") };
        assert_eq!((w.dialect.as_str(), w.database.as_deref()), ("sqlite", Some("/srv/airflow/airflow.db")));

        let malformed = read_events(&format!("{MARK}{{\"type\": \"revision_end\", \"last\": true}}\n")).unwrap_err();
        assert!(malformed.source.to_string().contains("clock"), "{malformed}: a missing field is an error, not 0");
    }
}
