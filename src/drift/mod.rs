//! Drift: does production plus the release equal what the migration
//! history builds from empty? This module is the pure half: two schema
//! snapshots ([`crate::catalog::schema_snapshot`]) in, findings out, with
//! the scenario's `drift.ignore` patterns applied. Building the history
//! database and rendering the findings belong to the drift stage.

mod compare;
mod ignore;
mod likely;

pub use compare::{changed_keys, compare, Comparison};
pub use ignore::Ignore;

#[cfg(test)]
mod tests;
