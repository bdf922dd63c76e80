//! The streaming hot standby a run observes (`observe.standby`): a second
//! private cluster made by `pg_basebackup` from the local backend's
//! primary, a second container on the docker backend's primary's network,
//! or the user's own standby of the url backend's server. The first two
//! belong to the run and are removed with the primary, on every path; the
//! third is only connected to.

use tokio_util::sync::CancellationToken;

use super::{BackendKind, DockerContainer, LocalCluster};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::db::ConnInfo;

#[derive(Debug)]
pub enum Standby {
    Local(LocalCluster),
    Docker(DockerContainer),
    /// An existing standby (`observe.standby_url`), connected to the run's database.
    Url(ConnInfo),
}

impl Standby {
    pub fn conn(&self) -> &ConnInfo {
        match self {
            Standby::Local(c) => c.conn(),
            Standby::Docker(c) => c.conn(),
            Standby::Url(conn) => conn,
        }
    }

    /// Where it came from, as the report says: `local` and `docker` (started
    /// by this run) or `url` (the user's).
    pub fn source(&self) -> BackendKind {
        match self {
            Standby::Local(_) => BackendKind::Local,
            Standby::Docker(_) => BackendKind::Docker,
            Standby::Url(_) => BackendKind::Url,
        }
    }

    /// Stops and removes a standby this run started; leaves the user's alone.
    pub async fn cleanup(self) -> Result<()> {
        match self {
            Standby::Local(c) => c.stop().await,
            Standby::Docker(c) => c.remove().await,
            Standby::Url(_) => Ok(()),
        }
    }

    /// Leaves a standby this run started running; how to reach and remove it.
    pub fn keep(self) -> Option<String> {
        match self {
            Standby::Local(c) => Some(format!("The standby:\n{}", c.keep())),
            Standby::Docker(c) => Some(format!("The standby:\n{}", c.keep())),
            Standby::Url(_) => None,
        }
    }

    /// Waits until the run's database is there: on the url backend's
    /// standby, the database rehearse created on the primary appears once
    /// its creation is replayed.
    pub async fn wait_for_database(&self, cancel: &CancellationToken) -> Result<()> {
        let conn = self.conn();
        let started = std::time::Instant::now();
        loop {
            let tried = tokio::select! {
                r = crate::sys::db::connect(conn, &conn.dbname, "rehearse") => r,
                _ = cancel.cancelled() => return Err(Error::Interrupted),
            };
            match tried {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > std::time::Duration::from_secs(60) => {
                    return Err(ErrorKind::ConnectionFailed.because(
                        format!(
                            "the standby ({}) did not serve the run's database within a minute: is it a streaming \
                             standby of postgres.url's server, and does pg_hba.conf let this user in?",
                            conn.masked(&conn.dbname)
                        ),
                        e,
                    ))
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    }
}
