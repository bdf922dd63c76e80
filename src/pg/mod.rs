//! Facts about PostgreSQL as types: lock modes and their conflicts, relation
//! kinds, pg_dump's formats, kinds of schema objects, what a backend is
//! doing. Compared as enums
//! everywhere, serialized to the strings the report has always used
//! (`rehearse.report/v1`).

mod activity;
mod dump;
pub mod guc;
mod lock;
mod names;
mod relation;
mod schema_kind;
mod version;

pub use activity::ActivityState;
pub use dump::DumpFormat;
pub use lock::{Blocked, LockMode};
pub use names::{format_ident, quote_ident, quote_literal, range_var_name};
pub use relation::RelationKind;
pub use schema_kind::{DriftKind, SchemaEntryKind};
pub use version::PgVersion;
