//! Compatibility with the running app version: the SQL the app version in
//! production issues (`compat.queries`: a `.sql` file, or what `rehearse
//! queries` exports from pg_stat_statements) is checked against the schema
//! before the first migration and after each one. A query that passed the
//! check before a migration and fails it after is that migration's
//! incompatibility; one that fails before the first is already broken.
//!
//! `corpus.rs` loads the queries, `statement.rs` reads their parse trees,
//! `check.rs` checks them on a session of its own.

mod check;
pub mod corpus;
mod statement;

pub use check::Checker;
pub use corpus::{AppQueries, Corpus, QUERIES_SCHEMA};
pub use statement::is_utility;
