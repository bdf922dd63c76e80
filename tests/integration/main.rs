//! Integration tests: real PostgreSQL servers started by the code under
//! test, the real `rehearse` binary, no mocks. One binary, one module per
//! capability; `support` holds the fixtures and assertions.

mod alembic;
mod alembic_env;
mod alembic_process;
mod app_image;
mod apps;
mod auto_backend;
mod baseline;
mod budgets;
mod cache;
mod calibrate;
mod cleanup;
mod clone;
mod compat;
mod docker;
mod drift;
mod drift_catalog;
mod drift_demo;
mod estimate;
mod fidelity;
mod flyway;
mod hazards;
mod image;
mod kubernetes;
mod observe;
mod plan_errors;
mod postgres18;
mod queries;
mod race;
mod refused;
mod reliability;
mod report_dir;
mod report_formats;
mod restore_formats;
mod restore_room;
mod signals;
mod sql_migrations;
mod standby;
mod stats;
mod support;
mod test_containers;
mod tls;
mod trust;
mod trust_isolation;
mod url_backend;
