//! Checking the corpus against the schema as it is: each query prepared
//! (parsed and analyzed by the server, which resolves every table, column,
//! function and operator with the parameter types it infers; not planned,
//! not executed) in a transaction that is rolled back, and each INSERT's
//! omitted columns held against the table's NOT NULL columns without a
//! default, which PREPARE alone cannot see.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::corpus::{AppQuery, Corpus};
use super::statement::{InsertTarget, Supplied};
use crate::catalog::{self, MARK};
use crate::error::{Error, ErrorKind, Result};
use crate::report::{BrokenQuery, CompatInfo, CompatReport};
use crate::sys::db::{self, ConnInfo};

/// The SQLSTATE of a not-null violation, which the INSERT check reports.
const NOT_NULL_VIOLATION: &str = "23502";
/// The SQLSTATE of a syntax error, which no schema causes.
const SYNTAX_ERROR: &str = "42601";
/// How long a check waits for a lock a query's analysis needs. Nothing of
/// rehearse's holds one between migrations, but a session a migration tool
/// left open may: the run then stops saying so, rather than hang.
const LOCK_TIMEOUT: &str = "60s";

/// Checks the corpus before the first migration and after each one,
/// blaming a migration for the queries that failed only once it applied.
pub struct Checker<'a> {
    /// A session of its own: not the migration's, whose settings a
    /// migration may change, and not an observer's. It runs only between
    /// one migration's observation and the next's, so no lock it takes and
    /// no statement it prepares is counted in a migration's figures.
    session: Client,
    corpus: &'a Corpus,
    /// The queries checked, by index in the corpus.
    checked: Vec<usize>,
    /// Those that failed at the last check.
    failing: BTreeSet<usize>,
    cancel: &'a CancellationToken,
}

impl<'a> Checker<'a> {
    pub async fn connect(conn: &ConnInfo, corpus: &'a Corpus, cancel: &'a CancellationToken) -> Result<Checker<'a>> {
        let env = |e| {
            ErrorKind::CatalogReadFailed.because("cannot start the session that checks the running app's queries", e)
        };
        let session = db::connect(conn, &conn.dbname, "rehearse-compat").await.map_err(env)?;
        session.batch_execute(&format!("{MARK} SET lock_timeout = '{LOCK_TIMEOUT}'")).await.map_err(env)?;
        let checked = (0..corpus.queries.len()).collect();
        Ok(Checker { session, corpus, checked, failing: BTreeSet::new(), cancel })
    }

    /// The check before the first migration: what fails already is broken
    /// before this release, and never blamed on one of its migrations.
    /// pg_stat_statements' normalized text the server cannot parse (`date
    /// $1`, which libpg_query accepts) is left out of the checks from here on.
    pub async fn before_first_migration(&mut self) -> Result<CompatInfo> {
        let mut failures = self.check_all().await?;
        let unparsable: Vec<usize> = failures
            .iter()
            .filter(|(i, b)| b.code == SYNTAX_ERROR && self.corpus.queries[**i].normalized())
            .map(|(i, _)| *i)
            .collect();
        for i in &unparsable {
            failures.remove(i);
        }
        self.checked.retain(|i| !unparsable.contains(i));
        self.failing = failures.keys().copied().collect();
        Ok(CompatInfo {
            queries: self.corpus.path.display().to_string(),
            checked: self.checked.len(),
            ignored_utility: self.corpus.ignored_utility,
            ignored_unparsable: self.corpus.ignored_unparsable + unparsable.len(),
            already_broken: failures.into_values().collect(),
        })
    }

    /// The check after a migration applied: the queries that fail now and
    /// did not at the check before are this migration's doing.
    pub async fn after_migration(&mut self) -> Result<CompatReport> {
        let failures = self.check_all().await?;
        let failing: BTreeSet<usize> = failures.keys().copied().collect();
        let broken = failures.into_iter().filter(|(i, _)| !self.failing.contains(i)).map(|(_, b)| b).collect();
        self.failing = failing;
        Ok(CompatReport { checked: self.checked.len(), broken })
    }

    /// Every query checked that fails now, by its index in the corpus.
    async fn check_all(&self) -> Result<BTreeMap<usize, BrokenQuery>> {
        let mut failures = BTreeMap::new();
        for &i in &self.checked {
            let query = &self.corpus.queries[i];
            if self.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            let failed = |e| check_failed(&self.corpus.shown(query, None), e);
            let failure = match self.prepare(query).await.map_err(failed)? {
                Some(failure) => Some(failure),
                None => self.omitted_not_null(query).await.map_err(failed)?,
            };
            if let Some((code, message)) = failure {
                failures.insert(
                    i,
                    BrokenQuery { query: self.corpus.shown(query, Some(&message)), code, message, calls: query.calls },
                );
            }
        }
        Ok(failures)
    }

    /// PREPAREs the query (tokio-postgres sends Parse without parameter
    /// types, so the server infers them): PostgreSQL's code and message
    /// when it refuses. In a transaction rolled back at once, so the locks
    /// analysis takes (ROW EXCLUSIVE on an INSERT's table) end with it.
    /// Marked, so pg_stat_statements output can leave it out.
    async fn prepare(&self, query: &AppQuery) -> Result<Option<(String, String)>, tokio_postgres::Error> {
        self.session.batch_execute(&format!("{MARK} BEGIN")).await?;
        let prepared = self.session.prepare(&format!("{MARK} {}", query.sql)).await;
        self.session.batch_execute(&format!("{MARK} ROLLBACK")).await?;
        match prepared {
            Ok(_) => Ok(None),
            Err(e) => match e.as_db_error() {
                // Waiting for a lock says nothing of the query.
                Some(db) if db.code() == &SqlState::LOCK_NOT_AVAILABLE => Err(e),
                Some(db) => Ok(Some((db.code().code().to_string(), db.message().to_string()))),
                // No answer from the server: the session is gone, not the query.
                None => Err(e),
            },
        }
    }

    /// The first NOT NULL column without a default that one of the query's
    /// INSERTs leaves out, as PostgreSQL would report executing it.
    async fn omitted_not_null(&self, query: &AppQuery) -> Result<Option<(String, String)>, tokio_postgres::Error> {
        for insert in &query.inserts {
            let Some((relation, columns)) = catalog::insert_columns(&self.session, &insert.table).await? else {
                continue;
            };
            if let Some(column) = omitted_required(insert, &columns) {
                let message = format!(
                    "null value in column \"{column}\" of relation \"{relation}\" violates not-null constraint \
                     (rehearse's check: the INSERT leaves out this column, which is NOT NULL without a default; \
                     PREPARE alone does not see that)"
                );
                return Ok(Some((NOT_NULL_VIOLATION.into(), message)));
            }
        }
        Ok(None)
    }
}

/// A check that could not be made: the session, not the query.
fn check_failed(query: &str, e: tokio_postgres::Error) -> Error {
    let what = crate::sys::text::one_line(query, 80);
    let message = match e.code() {
        Some(&SqlState::LOCK_NOT_AVAILABLE) => format!(
            "checking the running app's query `{what}` waited {LOCK_TIMEOUT} for a lock another session holds \
             (one a migration tool left open?): rehearse with --keep and look at pg_locks"
        ),
        _ => format!("cannot check the running app's query `{what}`"),
    };
    ErrorKind::CatalogReadFailed.because(message, e)
}

/// The first required column (by position) `insert` gives no value.
fn omitted_required<'c>(insert: &InsertTarget, columns: &'c [catalog::InsertColumn]) -> Option<&'c str> {
    let omitted = |(i, c): &(usize, &catalog::InsertColumn)| match &insert.supplies {
        Supplied::Named(names) => !names.contains(&c.name),
        Supplied::First(n) => *i >= *n,
        Supplied::Unknown => false,
    };
    columns.iter().enumerate().filter(omitted).map(|(_, c)| c).find(|c| c.required).map(|c| c.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::InsertColumn;

    #[test]
    fn omitted_columns_are_those_outside_the_list_or_past_the_values() {
        let columns: Vec<InsertColumn> = [("id", false), ("email", true), ("plan", false), ("region", true)]
            .iter()
            .map(|(name, required)| InsertColumn { name: name.to_string(), required: *required })
            .collect();
        let check = |supplies: Supplied| omitted_required(&InsertTarget { table: "\"t\"".into(), supplies }, &columns);
        assert_eq!(check(Supplied::Named(vec!["email".into()])), Some("region"));
        assert_eq!(check(Supplied::Named(vec!["email".into(), "region".into()])), None);
        assert_eq!(check(Supplied::First(0)), Some("email"));
        assert_eq!(check(Supplied::First(3)), Some("region"));
        assert_eq!(check(Supplied::First(4)), None);
        assert_eq!(check(Supplied::Unknown), None);
    }
}
