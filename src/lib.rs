//! rehearse: rehearse PostgreSQL schema migrations on a throwaway copy of
//! production. The binary is a thin shell around `cli::main`; everything
//! else is this library, one module per pipeline stage.

pub mod backend;
pub mod backup;
pub mod baseline;
pub mod budget;
pub mod cache;
pub mod catalog;
pub mod cleanup;
pub mod cli;
pub mod db;
pub mod deadline;
pub mod destructive;
pub mod doctor;
pub mod error;
pub mod events;
pub mod gate;
pub mod hazards;
pub mod migrations;
pub mod observe;
pub mod plan;
pub mod prepare;
pub mod process;
pub mod progress;
pub mod recovery;
pub mod report;
pub mod restore;
pub mod run;
pub mod scenario;
pub mod signals;

pub use error::{Error, Result};
