//! Integration tests: real PostgreSQL servers started by the code under
//! test, the real `rehearse` binary, no mocks. One binary, one module per
//! capability; `support` holds the fixtures and assertions.

mod auto_backend;
mod cleanup;
mod docker;
mod hazards;
mod interrupt;
mod observe;
mod restore_formats;
mod scenario_errors;
mod sql_migrations;
mod support;
mod url_backend;
