//! The migration tool, and where it runs.

use serde::{Deserialize, Serialize};

use super::closed_set;

closed_set! {
    /// `migrations.tool` in the scenario, and a source's `tool` in the report.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum MigrationTool {
        Sql = "sql",
        Alembic = "alembic",
        Command = "command",
        Django = "django",
    }
}

closed_set! {
    /// Where the migration tool ran (the report's `launch.runs_in`).
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RunsIn {
        /// On this machine, as rehearse's child.
        #[default]
        ThisMachine = "this machine",
        /// In a container of the app's image (`migrations.image`, `migrations.job`).
        Image = "image",
    }
}
