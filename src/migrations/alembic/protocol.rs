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
    /// Interpreter and imports done; the revision starts now.
    Ready { at: f64 },
    /// One statement Alembic (or SQLAlchemy) sent, traced.
    Statement {
        sql: String,
        ms: f64,
        /// The cursor's rowcount (-1 when the driver does not know).
        rows: i64,
        /// WAL insert position after the statement; None when the probe failed.
        wal: Option<u64>,
        lock_timeout: Option<u64>,
        /// Locks the statement added to those its session already held.
        locks: Vec<OwnLockEntry>,
        at: f64,
    },
    /// The revision raised.
    Failed { message: String, sqlstate: Option<String>, statement: Option<String>, traceback: String, at: f64 },
    /// The revision applied.
    Done { at: f64 },
    /// What `alembic upgrade <range> --sql` printed for a revision, or why it could not.
    Offline { revision: String, sql: Option<String>, error: Option<String> },
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
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(MARK))
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|source| UnreadableEvent { line: crate::sys::text::one_line(line, 200), source })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_and_anything_else_is_refused() {
        let out = format!(
            "env.py says hi\n{MARK}{{\"type\": \"ready\", \"started\": 1.0, \"at\": 2.5}}\n\
             {MARK}{{\"type\": \"statement\", \"sql\": \"ALTER TABLE t ADD c int\", \"ms\": 1.5, \"rows\": -1, \
             \"wal\": 100, \"lock_timeout\": 0, \"locks\": [[16400, \"public.t\", \"r\", \"AccessExclusiveLock\"]], \"at\": 3.0}}\n"
        );
        let events = read_events(&out).unwrap();
        assert!(matches!(events[0], HelperEvent::Ready { at } if at == 2.5));
        let HelperEvent::Statement { locks, rows, .. } = &events[1] else { panic!("{events:?}") };
        assert_eq!((locks[0].0, *rows), (16400, -1));

        let unknown = read_events(&format!("{MARK}{{\"type\": \"surprise\"}}\n")).unwrap_err();
        assert!(unknown.to_string().contains("Alembic helper") && unknown.to_string().contains("surprise"));
        let wrong = format!(
            "{MARK}{{\"type\": \"wrong_database\", \"dialect\": \"sqlite\", \"driver\": \"pysqlite\", \"host\": null, \
             \"port\": null, \"database\": \"/srv/airflow/airflow.db\"}}\n"
        );
        let HelperEvent::WrongDatabase(w) = &read_events(&wrong).unwrap()[0] else { panic!("{wrong}") };
        assert_eq!((w.dialect.as_str(), w.database.as_deref()), ("sqlite", Some("/srv/airflow/airflow.db")));

        let malformed = read_events(&format!("{MARK}{{\"type\": \"done\"}}\n")).unwrap_err();
        assert!(malformed.source.to_string().contains("at"), "{malformed}: a missing field is an error, not 0");
    }
}
