//! The running app's queries (`compat.queries`): a `.sql` file of
//! statements with `$1`-style parameters, or the JSON `rehearse queries`
//! exports from production's pg_stat_statements (`rehearse.queries/v1`),
//! told apart by content. Utility statements are counted and left out.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::statement::{self, InsertTarget, Parsed};
pub use crate::catalog::QueryStats;
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::sql::Pieces;
use crate::sys::json::{read_versioned, Refusal};

pub const QUERIES_SCHEMA: &str = "rehearse.queries/v1";

/// What `rehearse queries` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppQueries {
    /// Always `rehearse.queries/v1`.
    pub schema: String,
    /// When they were read (RFC 3339, UTC).
    pub taken_at: String,
    /// `server_version` of the server they were read from, e.g. "15.18".
    pub server_version: String,
    /// The database whose statements they are.
    pub database: String,
    /// Most called first.
    pub queries: Vec<QueryStats>,
    /// How many seconds the calls were counted over (pg_stat_statements'
    /// last reset, or the server's start, to `taken_at`). Absent in files
    /// written before rates were exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<f64>,
    /// When that window starts (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<String>,
}

/// One query of the running app, ready to check.
#[derive(Debug, Clone)]
pub struct AppQuery {
    /// As the corpus has it.
    pub sql: String,
    /// How often production ran it (a `rehearse queries` file).
    pub calls: Option<i64>,
    /// The INSERTs in it, whose omitted columns are checked.
    pub inserts: Vec<InsertTarget>,
}

impl AppQuery {
    /// Whether its text is pg_stat_statements' normalized one (a `rehearse queries` file).
    pub fn normalized(&self) -> bool {
        self.calls.is_some()
    }
}

/// The corpus, loaded and checked.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub path: PathBuf,
    pub queries: Vec<AppQuery>,
    /// Statements that are not queries (SET, BEGIN, CREATE, ...).
    pub ignored_utility: usize,
    /// Statements of a `rehearse queries` file whose normalized text does not parse.
    pub ignored_unparsable: usize,
    /// Show a query whose error quoted a value with its constants as `$1`,
    /// `$2`, … (`report.redact`): the value came from a constant, and a
    /// corpus taken from a log holds those production ran it with. The
    /// check itself prepares the text as the corpus has it.
    pub redact_constants: bool,
}

impl Corpus {
    /// A query's text as the report and the messages show it, given the
    /// error it failed with (None: an error of the check's own, shown
    /// without constants). The constants of a query whose error quoted none
    /// are kept: they explain errors such as `repeat(unknown, bigint)`.
    pub fn shown(&self, query: &AppQuery, error: Option<&str>) -> String {
        let quoted_a_value = error.is_none_or(|e| crate::sys::redact::values(e) != e);
        match self.redact_constants && quoted_a_value {
            true => crate::sys::redact::sql_constants(&query.sql),
            false => query.sql.clone(),
        }
    }

    /// Reads a corpus; a missing file, SQL that does not parse, JSON that
    /// is not `rehearse.queries/v1`, or no query at all is bad input naming
    /// the file. Linear in the file's size; `cancel` (a signal) stops it
    /// between statements, as [`Error::Interrupted`].
    pub fn load(path: &Path, cancel: &CancellationToken) -> Result<Corpus> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ErrorKind::AppQueriesInvalid.because(
                format!(
                    "cannot read the running app's queries {shown} (compat.queries): give a .sql file of its queries, \
                     or what `rehearse queries --url URL --out FILE` exports from production"
                ),
                e,
            )
        })?;
        let mut corpus = Corpus {
            path: path.to_path_buf(),
            queries: Vec::new(),
            ignored_utility: 0,
            ignored_unparsable: 0,
            redact_constants: false,
        };
        // SQL cannot start with `{`; a JSON object does.
        match text.trim_start().starts_with('{') {
            true => corpus.add_exported(&text, cancel)?,
            false => corpus.add_sql(&text, cancel)?,
        }
        if corpus.queries.is_empty() {
            return Err(ErrorKind::AppQueriesInvalid.error(format!(
                "the running app's queries {shown} (compat.queries) hold no query to check ({} utility statement(s), \
                 {} unparsable): list the SELECT, INSERT, UPDATE, DELETE and MERGE statements the app runs",
                corpus.ignored_utility, corpus.ignored_unparsable
            )));
        }
        Ok(corpus)
    }

    /// Statements of a `.sql` file, split as PostgreSQL splits them.
    fn add_sql(&mut self, text: &str, cancel: &CancellationToken) -> Result<()> {
        let shown = self.path.display().to_string();
        let not_sql = |e: String| {
            ErrorKind::AppQueriesInvalid.error(format!(
                "the running app's queries {shown} (compat.queries) are not SQL PostgreSQL can parse: {e}"
            ))
        };
        for piece in Pieces::new(text) {
            let s = piece.map_err(not_sql)?;
            let parsed = statement::parse(s.sql).map_err(|e| not_sql(format!("line {}: {e}", s.line)))?;
            self.add(s.sql, None, parsed);
            interrupted(cancel)?;
        }
        Ok(())
    }

    /// The statements of a `rehearse queries` file.
    fn add_exported(&mut self, text: &str, cancel: &CancellationToken) -> Result<()> {
        let shown = self.path.display().to_string();
        let kind = ErrorKind::AppQueriesInvalid;
        let exported: AppQueries = read_versioned(text, QUERIES_SCHEMA, kind, |refusal| match refusal {
            Refusal::NotJson => {
                format!("the running app's queries {shown} are not JSON: make them again with `rehearse queries`")
            }
            Refusal::OtherSchema(other) => format!(
                "{shown} is not {QUERIES_SCHEMA} (its schema is {}): make it with this version's \
                 `rehearse queries`, or give a .sql file of queries",
                other.map(|s| format!("`{s}`")).unwrap_or_else(|| "missing".into())
            ),
            Refusal::Incomplete => format!(
                "the running app's queries {shown} lack what a check needs: make them again with `rehearse queries`"
            ),
        })?;
        for q in exported.queries {
            // pg_stat_statements' normalized text is not always SQL: counted, not checked.
            match statement::parse(&q.query) {
                Ok(parsed) => self.add(&q.query, Some(q.calls), parsed),
                Err(_) => self.ignored_unparsable += 1,
            }
            interrupted(cancel)?;
        }
        Ok(())
    }

    fn add(&mut self, sql: &str, calls: Option<i64>, parsed: Parsed) {
        match parsed {
            Parsed::Query(inserts) => self.queries.push(AppQuery { sql: sql.to_string(), calls, inserts }),
            Parsed::Utility => self.ignored_utility += 1,
        }
    }
}

/// A signal arrived: the read stops (the plan is resolved before anything
/// runs, so there is nothing to clean up).
fn interrupted(cancel: &CancellationToken) -> Result<()> {
    match cancel.is_cancelled() {
        true => Err(Error::Interrupted),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn sql_files_split_as_postgres_does_and_utility_statements_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let sql = "-- the app\nSET search_path = public;\nSELECT ';' AS semi FROM t WHERE id = $1;\n\
                   /* c */ INSERT INTO t (a) VALUES ($1);\nBEGIN;\n";
        let corpus = Corpus::load(&write(&dir, "q.sql", sql), &CancellationToken::new()).unwrap();
        let texts: Vec<&str> = corpus.queries.iter().map(|q| q.sql.as_str()).collect();
        assert_eq!(texts, ["SELECT ';' AS semi FROM t WHERE id = $1", "INSERT INTO t (a) VALUES ($1)"]);
        assert_eq!((corpus.ignored_utility, corpus.ignored_unparsable), (2, 0));
        assert_eq!(corpus.queries[1].inserts.len(), 1);
        assert_eq!(corpus.queries[0].calls, None);
    }

    #[test]
    fn exported_files_keep_calls_and_count_what_does_not_parse() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"{"schema": "rehearse.queries/v1", "taken_at": "2026-11-29T00:00:00Z", "server_version": "15.8",
            "database": "app", "queries": [
              {"query": "SELECT * FROM t WHERE id = $1", "calls": 120, "mean_ms": 0.2},
              {"query": "SELECT 1 FROM WHERE", "calls": 3, "mean_ms": 0.1},
              {"query": "COMMIT", "calls": 900, "mean_ms": 0.0}]}"#;
        let corpus = Corpus::load(&write(&dir, "q.json", json), &CancellationToken::new()).unwrap();
        assert_eq!(corpus.queries.len(), 1);
        assert_eq!(corpus.queries[0].calls, Some(120));
        assert_eq!((corpus.ignored_utility, corpus.ignored_unparsable), (1, 1));
    }

    /// About 3.5 MB of the app's statements (seven chunks of the splitter),
    /// with `;` in strings, comments and dollar quotes all through it; and
    /// the SQL of each query in order, with the table each INSERT writes to.
    fn big_corpus() -> (String, Vec<(String, Option<String>)>) {
        let (mut text, mut queries) = (String::new(), Vec::new());
        for i in 0..80_000 {
            let (sql, insert) = match i % 4 {
                0 => (format!("SELECT 'x;\ny' AS s FROM t WHERE id = ${}", i % 9 + 1), None),
                1 => (format!("INSERT INTO t{} (a, b) VALUES ($1, $2)", i % 7), Some(format!("\"t{}\"", i % 7))),
                2 => ("SET search_path = app".to_string(), None),
                _ => (format!("UPDATE t SET note = $$;{i};$$ WHERE id = $1"), None),
            };
            text.push_str(&format!("-- statement {i}; the next\n{sql};\n"));
            if i % 4 != 2 {
                queries.push((sql, insert));
            }
        }
        (text, queries)
    }

    #[test]
    fn a_big_corpus_is_read_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (text, want) = big_corpus();
        assert!(text.len() > 3_000_000, "{}", text.len());
        let corpus = Corpus::load(&write(&dir, "big.sql", &text), &CancellationToken::new()).unwrap();
        assert_eq!((corpus.queries.len(), corpus.ignored_utility), (want.len(), 20_000));
        for (q, (sql, insert)) in corpus.queries.iter().zip(&want) {
            assert_eq!(&q.sql, sql);
            assert_eq!(q.inserts.first().map(|t| &t.table), insert.as_ref(), "{sql}");
        }
    }

    #[test]
    fn a_signal_stops_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "big.sql", &big_corpus().0);
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(matches!(Corpus::load(&path, &cancel), Err(Error::Interrupted)));
    }

    #[test]
    fn bad_corpora_are_bad_input_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let check = |name: &str, text: &str, expected: &str| {
            let err = Corpus::load(&write(&dir, name, text), &CancellationToken::new()).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
            let text = err.render();
            assert!(text.contains(expected) && text.contains(name), "{text}");
        };
        check("a.sql", "SELECT FROM WHERE (;", "are not SQL PostgreSQL can parse");
        check(
            "b.json",
            r#"{"schema": "rehearse.stats/v1"}"#,
            "is not rehearse.queries/v1 (its schema is `rehearse.stats/v1`)",
        );
        check("c.json", r#"{"schema": "rehearse.queries/v1"}"#, "lack what a check needs");
        check("d.json", "{ not json", "are not JSON");
        check("e.sql", "SET x = 1; -- nothing else\n", "hold no query to check (1 utility statement(s)");
        let missing = Corpus::load(&dir.path().join("missing.sql"), &CancellationToken::new()).unwrap_err().render();
        assert!(missing.contains("cannot read the running app's queries") && missing.contains("rehearse queries"));
    }
}
