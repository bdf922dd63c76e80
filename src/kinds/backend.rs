//! Which backend provides the throwaway server.

use serde::{Deserialize, Serialize};

use super::closed_set;

closed_set! {
    /// `postgres.backend` in the scenario, and the backend a run used as
    /// the report names it (`postgres.backend`, `standby.source`): a
    /// resolved backend is never `auto`.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum BackendKind {
        /// The local binaries when found, else Docker when it answers (or the url backend when a URL is given).
        #[default]
        Auto = "auto",
        Local = "local",
        Docker = "docker",
        Url = "url",
        /// A clone of production another engine makes (`postgres.clone`): no restore.
        Clone = "clone",
    }
}
