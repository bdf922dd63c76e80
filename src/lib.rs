//! rehearse: rehearse PostgreSQL schema migrations on a throwaway copy of
//! production. The binary is a thin shell around `cli::main`; everything
//! else is this library. The pipeline of DESIGN.md, in the tree:
//!
//! ```text
//! cli ─► plan ─► run: provision ─► restore ─► prepare ─► discover ─► rehearse each ─► [race] ─► report ─► gate
//!                     (backend)    (restore)  (prepare)  (migrations) (migrations, observe,  (race)     (report) (gate)
//!                                                                     findings, compat)
//! ```
//!
//! Below the stages: `pipeline` (stage runner, events, signals), `catalog`
//! (every catalog and statistics query), `pg` (PostgreSQL's facts as types),
//! `kinds` (rehearse's own closed sets, and the macro every set is declared
//! with), `sys` (processes, connections, the machine) and `error`.

pub mod backend;
pub mod catalog;
pub mod cli;
pub mod comment;
pub mod compat;
pub mod drift;
pub mod error;
pub mod estimate;
pub mod findings;
pub mod gate;
pub mod kinds;
pub mod load;
pub mod migrations;
pub mod observe;
pub mod pg;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod prepare;
pub mod race;
pub mod report;
pub mod restore;
pub mod run;
pub mod sys;
pub mod watch;

pub use error::{Error, Result};
