//! Every query rehearse runs against PostgreSQL's catalogs and statistics
//! views, one documented function each, with the versions it supports
//! (PostgreSQL 12 and later unless a function says otherwise). Stages and
//! observers call these; none writes its own catalog SQL. Queries sent while
//! a migration runs or to production (`rehearse stats`, `rehearse queries`)
//! carry [`MARK`], so pg_stat_statements output can leave rehearse's own
//! queries out.
//!
//! `format('%I.%I')` raises on NULL, so names of relations not (yet)
//! visible in pg_class -- created in another session's open transaction,
//! or a rewrite's transient heap -- come back as '' and are named later or by oid.

mod abort;
mod locks;
mod platform;
mod production;
mod progress;
mod queries;
mod race;
mod relations;
mod role;
mod samples;
mod schema;
mod server;
mod standby;
mod stats;
mod watch;

pub use abort::*;
pub use locks::*;
pub use platform::*;
pub use production::*;
pub use progress::*;
pub use queries::*;
pub use race::*;
pub use relations::*;
pub use role::*;
pub use samples::*;
pub use schema::*;
pub use server::*;
pub use standby::*;
pub use stats::*;
pub use watch::*;

/// Marker in every query rehearse sends while a migration runs, or to production.
pub const MARK: &str = "/*rehearse*/";
