//! Provisioning the throwaway Postgres. One file per backend; this enum lists
//! them, and every stage after provisioning talks to a `Throwaway` only.

pub mod local;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::db::ConnInfo;
use crate::error::Result;
use crate::plan::BackendPlan;

pub use local::{LocalCluster, PgBin};

/// A running throwaway server that this run owns and must clean up.
#[derive(Debug)]
pub enum Throwaway {
    Local(LocalCluster),
}

impl Throwaway {
    pub async fn provision(plan: &BackendPlan, cancel: &CancellationToken) -> Result<Throwaway> {
        match plan {
            BackendPlan::Local { bin } => Ok(Throwaway::Local(LocalCluster::start(bin.clone(), cancel).await?)),
        }
    }

    /// Starts a copy of a snapshot cache entry (local backend only).
    pub async fn provision_from_snapshot(
        plan: &BackendPlan,
        entry: &crate::cache::Entry,
        cancel: &CancellationToken,
    ) -> Result<Throwaway> {
        match plan {
            BackendPlan::Local { bin } => {
                let password = crate::db::Secret::from(entry.manifest.password.clone());
                Ok(Throwaway::Local(
                    LocalCluster::start_from_snapshot(bin.clone(), &entry.data_dir(), password, cancel).await?,
                ))
            }
        }
    }

    /// Whether this backend can save and reuse snapshots.
    pub fn caches(plan: &BackendPlan) -> bool {
        matches!(plan, BackendPlan::Local { .. })
    }

    /// Copies the server's stopped data dir into `dest/data`, then restarts it.
    pub async fn save_snapshot(&mut self, dest: &Path, cancel: &CancellationToken) -> Result<()> {
        match self {
            Throwaway::Local(c) => c.save_snapshot(&dest.join("data"), cancel).await,
        }
    }

    /// The password of the throwaway server (for a cache manifest only).
    pub fn password(&self) -> &crate::db::Secret {
        &self.conn().password
    }

    /// The backend's name as the report spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Throwaway::Local(_) => "local",
        }
    }

    pub fn conn(&self) -> &ConnInfo {
        match self {
            Throwaway::Local(c) => c.conn(),
        }
    }

    /// Directory of the client tools (pg_restore, psql) matching the server.
    pub fn client_bin(&self) -> PathBuf {
        match self {
            Throwaway::Local(c) => c.bin().dir.clone(),
        }
    }

    /// Version of the client tools (pg_restore, psql), e.g. "15.18".
    pub fn client_version(&self) -> String {
        match self {
            Throwaway::Local(c) => c.bin().version.clone(),
        }
    }

    /// Where the server keeps its private files, if it has any here.
    pub fn private_dir(&self) -> Option<&Path> {
        match self {
            Throwaway::Local(c) => Some(c.root()),
        }
    }

    /// Restarts the server so settings that need a restart take effect.
    pub async fn restart(&mut self, cancel: &CancellationToken) -> Result<()> {
        match self {
            Throwaway::Local(c) => c.restart(cancel).await,
        }
    }

    /// Stops the server and removes everything it left.
    pub async fn cleanup(self) -> Result<()> {
        match self {
            Throwaway::Local(c) => c.stop().await,
        }
    }

    /// Leaves the server running; returns how to connect and how to remove it.
    pub fn keep(self) -> String {
        match self {
            Throwaway::Local(c) => c.keep(),
        }
    }
}
