//! Provisioning the throwaway Postgres. One file per backend, `choose` picks
//! one from the scenario and the machine, and every stage after
//! provisioning talks to a `Throwaway` only. The snapshot cache (restored
//! servers kept for the next run) and `rehearse cleanup` (what a killed run
//! left) live here too: both are about the servers this module makes.

pub mod cache;
pub mod choose;
pub mod clone;
pub mod copy;
pub mod docker;
pub mod leftovers;
pub mod local;
pub mod settings;
pub mod standby;
pub mod url;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::sys::db::ConnInfo;
use crate::sys::process::ChildCommand;

pub use crate::kinds::BackendKind;
pub use choose::{choose, BackendRequest};
pub use clone::{CloneDatabase, ClonePlan};
pub use docker::{DockerContainer, DockerPlan};
pub use local::{LocalCluster, PgBin};
pub use standby::Standby;
pub use url::{UrlDatabase, UrlPlan};

/// The backend a run uses, resolved against this machine.
#[derive(Debug)]
pub enum BackendPlan {
    Local { bin: PgBin },
    Docker(DockerPlan),
    Url(UrlPlan),
    Clone(ClonePlan),
}

/// A running throwaway server (or database) that this run owns and must clean up.
#[derive(Debug)]
pub struct Throwaway {
    server: Server,
    /// What this backend could not do as the scenario asked, for the report.
    limitations: Vec<String>,
    /// The streaming standby observed (`observe.standby`), once started.
    standby: Option<Standby>,
}

#[derive(Debug)]
enum Server {
    Local(LocalCluster),
    Docker(DockerContainer),
    Url(UrlDatabase),
    // Boxed: the database and the clone's marker make it the largest by far.
    Clone(Box<CloneDatabase>),
}

impl BackendPlan {
    /// The backend, as the report names it.
    pub fn name(&self) -> BackendKind {
        match self {
            BackendPlan::Local { .. } => BackendKind::Local,
            BackendPlan::Docker(_) => BackendKind::Docker,
            BackendPlan::Url(_) => BackendKind::Url,
            BackendPlan::Clone(_) => BackendKind::Clone,
        }
    }

    /// Whether the data is already on the server (a clone): nothing to restore.
    pub fn has_data(&self) -> bool {
        matches!(self, BackendPlan::Clone(_))
    }
}

/// How the url and clone backends' WAL figures must be read.
const WAL_IS_SERVER_WIDE: &str = "WAL figures are server-wide readings (pg_current_wal_insert_lsn, pg_stat_wal): \
                                  writes to other databases on the server during a migration are counted too";

impl Throwaway {
    pub async fn provision(plan: &BackendPlan, cancel: &CancellationToken) -> Result<Throwaway> {
        let (server, limitations) = match plan {
            BackendPlan::Local { bin } => (Server::Local(LocalCluster::start(bin.clone(), cancel).await?), Vec::new()),
            BackendPlan::Docker(p) => (Server::Docker(DockerContainer::start(p, cancel).await?), Vec::new()),
            BackendPlan::Url(p) => (Server::Url(UrlDatabase::create(p).await?), vec![WAL_IS_SERVER_WIDE.to_string()]),
            BackendPlan::Clone(p) => {
                let clone = CloneDatabase::create(p, cancel).await?;
                let limitations = [clone.limitations(), vec![WAL_IS_SERVER_WIDE.to_string()]].concat();
                (Server::Clone(Box::new(clone)), limitations)
            }
        };
        Ok(Throwaway { server, limitations, standby: None })
    }

    /// A private directory for a physical backup's copy (local backend
    /// only): nothing copied or started yet, but cleaned up like a server.
    pub fn provision_physical(plan: &BackendPlan) -> Result<Throwaway> {
        match plan {
            BackendPlan::Local { bin } => Ok(Throwaway {
                server: Server::Local(LocalCluster::for_physical(bin.clone())?),
                limitations: Vec::new(),
                standby: None,
            }),
            other => Err(crate::error::Error::environment(format!(
                "a physical backup is recovered by the local backend, not {}",
                other.name()
            ))),
        }
    }

    /// Starts a copy of a snapshot cache entry of a recovered physical copy,
    /// on `bin`: the binaries of the backup's major version it was recovered with.
    pub async fn provision_physical_from_snapshot(
        bin: &PgBin,
        entry: &cache::Entry,
        cancel: &CancellationToken,
    ) -> Result<Throwaway> {
        let password = crate::sys::db::Secret::from(entry.manifest.password.clone());
        let cluster =
            LocalCluster::start_physical_from_snapshot(bin.clone(), &entry.data_dir(), password, cancel).await?;
        Ok(Throwaway { server: Server::Local(cluster), limitations: Vec::new(), standby: None })
    }

    /// The local backend's cluster (a physical copy is made in it).
    pub fn local_cluster_mut(&mut self) -> Option<&mut LocalCluster> {
        match &mut self.server {
            Server::Local(c) => Some(c),
            _ => None,
        }
    }

    /// Starts a copy of a snapshot cache entry (local backend only).
    pub async fn provision_from_snapshot(
        plan: &BackendPlan,
        entry: &cache::Entry,
        cancel: &CancellationToken,
    ) -> Result<Throwaway> {
        match plan {
            BackendPlan::Local { bin } => {
                let password = crate::sys::db::Secret::from(entry.manifest.password.clone());
                let cluster =
                    LocalCluster::start_from_snapshot(bin.clone(), &entry.data_dir(), password, cancel).await?;
                Ok(Throwaway { server: Server::Local(cluster), limitations: Vec::new(), standby: None })
            }
            BackendPlan::Docker(p) => {
                let Some(image) = &entry.manifest.image else {
                    return Err(crate::error::Error::environment(
                        "the snapshot cache entry holds a data directory, not a docker image: run with --no-cache",
                    ));
                };
                let password = crate::sys::db::Secret::from(entry.manifest.password.clone());
                let container = DockerContainer::start_from_snapshot(p, image, password, cancel).await?;
                Ok(Throwaway { server: Server::Docker(container), limitations: Vec::new(), standby: None })
            }
            other => Err(crate::error::Error::environment(format!(
                "the snapshot cache is for the local and docker backends, not {}",
                other.name()
            ))),
        }
    }

    /// Whether this backend can save and reuse snapshots (local: a copy of
    /// the data dir; docker: a committed image; url: never, the server is the user's).
    pub fn caches(plan: &BackendPlan) -> bool {
        matches!(plan, BackendPlan::Local { .. } | BackendPlan::Docker(_))
    }

    /// Saves the stopped server for the snapshot cache, then starts it
    /// again: local, a copy of its data dir in `dest/data`; docker, an image
    /// tagged `key`, whose id and size are returned.
    pub async fn save_snapshot(
        &mut self,
        dest: &Path,
        key: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<(String, u64)>> {
        match &mut self.server {
            Server::Local(c) => c.save_snapshot(&dest.join("data"), cancel).await.map(|_| None),
            Server::Docker(c) => c.commit_snapshot(key, cancel).await.map(Some),
            Server::Url(_) | Server::Clone(_) => {
                Err(crate::error::Error::environment(format!("the {} backend has no snapshot cache", self.name())))
            }
        }
    }

    /// The password of the throwaway server (for a cache manifest only).
    pub fn password(&self) -> &crate::sys::db::Secret {
        &self.conn().password
    }

    /// The backend, as the report names it.
    pub fn name(&self) -> BackendKind {
        match &self.server {
            Server::Local(_) => BackendKind::Local,
            Server::Docker(_) => BackendKind::Docker,
            Server::Url(_) => BackendKind::Url,
            Server::Clone(_) => BackendKind::Clone,
        }
    }

    /// Where the data came from, when it is a clone (the report's `dump.clone`).
    pub fn clone_source(&self) -> Option<crate::report::CloneSource> {
        match &self.server {
            Server::Clone(c) => Some(c.source()),
            _ => None,
        }
    }

    /// Whether the server runs in a container (its client tools write files there, not here).
    pub fn runs_in_container(&self) -> bool {
        matches!(self.server, Server::Docker(_))
    }

    pub fn conn(&self) -> &ConnInfo {
        match &self.server {
            Server::Local(c) => c.conn(),
            Server::Docker(c) => c.conn(),
            Server::Url(d) => d.conn(),
            Server::Clone(c) => c.conn(),
        }
    }

    /// A client tool (pg_restore, psql) whose version matches the server,
    /// with the libpq environment to reach `dbname`: the local binaries, or
    /// the container's own through `docker exec`.
    pub fn client_command(&self, tool: &str, dbname: &str, application_name: &str) -> ChildCommand {
        match &self.server {
            Server::Local(c) => {
                ChildCommand::new(c.bin().tool(tool)).envs(c.conn().libpq_env(dbname, application_name))
            }
            Server::Docker(c) => c.client_command(tool, dbname, application_name),
            Server::Url(d) => d.client_command(tool, dbname, application_name),
            Server::Clone(c) => c.database().client_command(tool, dbname, application_name),
        }
    }

    /// Where the client tools see the dump at `dump` (the docker backend
    /// mounts it into the container).
    pub fn client_path(&self, dump: &Path) -> PathBuf {
        match &self.server {
            Server::Docker(c) => c.dump_path().to_path_buf(),
            _ => dump.to_path_buf(),
        }
    }

    /// Version of the client tools (pg_restore, psql), e.g. "15.18", where
    /// it is known here (the docker backend uses the container's own).
    pub fn client_version(&self) -> String {
        match &self.server {
            Server::Local(c) => c.bin().version.clone(),
            _ => "of the server's version".into(),
        }
    }

    /// Where to install an extension a dump needs and this server lacks.
    pub fn extension_remedy(&self, extension: &str) -> String {
        match &self.server {
            Server::Local(c) => {
                let major = c.bin().major;
                format!(
                    "install {extension} for the local PostgreSQL {major}: Debian and Ubuntu package it as \
                     postgresql-{major}-{extension} or similar, e.g. postgresql-15-postgis-3; or rehearse in a \
                     server image that has it, with --image"
                )
            }
            Server::Docker(_) => format!(
                "use a server image that has {extension} installed, with --image or postgres.image: for PostGIS, \
                 postgis/postgis:<version>; or build one FROM the image you use"
            ),
            Server::Url(_) | Server::Clone(_) => format!(
                "install {extension} on that server, an administrator's job; or rehearse on a local or docker \
                 server that has it"
            ),
        }
    }

    /// Where the server keeps its private files, if it has any here.
    pub fn private_dir(&self) -> Option<&Path> {
        match &self.server {
            Server::Local(c) => Some(c.root()),
            _ => None,
        }
    }

    /// The throwaway database on a server rehearse does not own (url
    /// backend) or a clone's, where server-wide changes (ALTER SYSTEM,
    /// roles, restarts) are off limits.
    pub fn shared_database(&self) -> Option<&UrlDatabase> {
        match &self.server {
            Server::Url(d) => Some(d),
            Server::Clone(c) => Some(c.database()),
            _ => None,
        }
    }

    /// Whether the dump's missing roles may be created (not on a shared server).
    pub fn may_create_roles(&self) -> bool {
        self.shared_database().is_none()
    }

    pub fn limitations(&self) -> &[String] {
        &self.limitations
    }

    pub fn note_limitations(&mut self, more: impl IntoIterator<Item = String>) {
        self.limitations.extend(more);
    }

    /// Restarts the server so settings that need a restart take effect.
    pub async fn restart(&mut self, cancel: &CancellationToken) -> Result<()> {
        match &mut self.server {
            Server::Local(c) => c.restart(cancel).await,
            Server::Docker(c) => c.restart(cancel).await,
            Server::Url(_) | Server::Clone(_) => Ok(()),
        }
    }

    /// Starts the streaming standby `options` ask for (local and docker
    /// backends), or connects to the user's (`observe.standby_url`, url backend).
    pub async fn start_standby(
        &mut self,
        plan: &BackendPlan,
        options: &crate::observe::StandbyOptions,
        cancel: &CancellationToken,
    ) -> Result<&Standby> {
        let standby = match (&self.server, plan, &options.url) {
            (Server::Url(d), _, Some(url)) => {
                let conn =
                    ConnInfo { dbname: d.conn().dbname.clone(), admin_dbname: d.conn().dbname.clone(), ..url.clone() };
                let standby = Standby::Url(conn);
                standby.wait_for_database(cancel).await?;
                standby
            }
            (Server::Local(c), _, None) => Standby::Local(c.start_standby(&options.settings, cancel).await?),
            (Server::Docker(c), BackendPlan::Docker(p), None) => {
                Standby::Docker(c.start_standby(p, &options.settings, cancel).await?)
            }
            _ => {
                return Err(crate::error::Error::environment(format!(
                    "the {} backend cannot start the standby the scenario asks for",
                    self.name()
                )))
            }
        };
        Ok(self.standby.insert(standby))
    }

    /// A copy of the rehearsal database, `<dbname>_<suffix>`, made with it
    /// as the template (`copy.rs`). On the url backend it is dropped with
    /// the throwaway database and marked for `rehearse cleanup --url`; on
    /// the clone backend it is recorded in the clone's marker and dropped
    /// before `destroy`; on the others it goes with the server.
    pub async fn copy_database(&mut self, suffix: &str, template: copy::Template) -> Result<ConnInfo> {
        let name = copy::copy_name(self.conn(), suffix);
        match &mut self.server {
            Server::Url(d) => return d.create_copy(&name, template).await,
            Server::Clone(c) => return c.create_copy(&name, template).await,
            _ => {}
        }
        let conn = self.conn().clone();
        let admin = crate::sys::db::connect(&conn, &conn.admin_dbname, "rehearse-admin").await.map_err(|e| {
            crate::error::ErrorKind::ConnectionFailed
                .because(format!("cannot connect to {}", conn.masked(&conn.admin_dbname)), e)
        })?;
        let created = copy::create(&admin, &conn, &name, template).await?;
        copy::copy_settings(&admin, &conn.dbname, &name).await?;
        Ok(created)
    }

    /// The standby, once started.
    pub fn standby(&self) -> Option<&Standby> {
        self.standby.as_ref()
    }

    /// What [`cleanup`](Self::cleanup) does, for the progress.
    pub fn cleanup_detail(&self) -> String {
        match &self.server {
            Server::Clone(c) => c.cleanup_detail(),
            Server::Url(_) => "dropping the throwaway database".into(),
            _ => "stopping the throwaway server".into(),
        }
    }

    /// Stops the server (drops the database) and removes everything it left.
    pub async fn cleanup(mut self) -> Result<()> {
        // The standby first: the docker backend's shares the primary's network.
        let standby = match self.standby.take() {
            Some(s) => s.cleanup().await,
            None => Ok(()),
        };
        let primary = match self.server {
            Server::Local(c) => c.stop().await,
            Server::Docker(c) => c.remove().await,
            Server::Url(d) => d.drop_database().await,
            Server::Clone(c) => c.destroy().await,
        };
        primary.and(standby)
    }

    /// Leaves the server (and a standby it started) running; returns how to
    /// connect and how to remove them.
    pub fn keep(mut self) -> String {
        let standby = self.standby.take().and_then(Standby::keep);
        let primary = match self.server {
            Server::Local(c) => c.keep(),
            Server::Docker(c) => c.keep(),
            Server::Url(d) => d.keep(),
            Server::Clone(c) => c.keep(),
        };
        match standby {
            Some(s) => format!("{primary}\n{s}"),
            None => primary,
        }
    }
}
