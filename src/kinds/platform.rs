//! Which managed platform production runs on (`postgres.platform`).

use serde::{Deserialize, Serialize};

use super::closed_set;

closed_set! {
    /// `postgres.platform` in the scenario: the managed service whose limits
    /// the copy reproduces for a non-superuser (the profiles are in `data/platforms/`).
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum Platform {
        Rds = "rds",
        Aurora = "aurora",
        CloudSql = "cloudsql",
        Azure = "azure",
        /// No managed platform's limits: today's behaviour.
        #[default]
        SelfManaged = "self-managed",
    }
}
