//! The embedded default backend: a private cluster made with `initdb` and
//! `pg_ctl` from locally installed PostgreSQL binaries.
//!
//! The cluster lives in a private temp dir (0700) holding the data dir, the
//! unix socket and the server log. It listens on that socket and on
//! 127.0.0.1 only, with a random scram-sha-256 password. `initdb` refuses to
//! run as root, so when we are root the server runs as the unprivileged
//! `postgres` user Debian creates. A server started by `pg_ctl` puts itself
//! in its own session (pg_ctl calls setsid), so neither a terminal's Ctrl-C
//! nor killing our children reaches it: cleanup is an explicit `pg_ctl stop`
//! plus removing the dir, with `Drop` as a backstop.

mod binaries;
mod physical;

pub use binaries::*;
pub use physical::RecoverySettings;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::settings;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::db::{self, ConnInfo, Secret};
use crate::sys::process::{ChildCommand, ChildError, RunAs};
use crate::sys::text::last_lines;

/// The superuser initdb creates; also the role the rehearsal connects as.
const SUPERUSER: &str = "rehearse";
/// The database the dump is restored into.
const DATABASE: &str = "rehearse";
/// A file in every cluster dir, so `rehearse cleanup` can tell ours apart.
pub const MARKER_FILE: &str = "rehearse.marker";

/// The marker file's content: the run that owns the cluster (so `rehearse
/// cleanup` leaves a live run's cluster alone) and the binaries that can
/// stop its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub pid: u32,
    pub bin: Option<PathBuf>,
}

impl Marker {
    fn render(&self) -> String {
        let mut text = format!("pid={}\n", self.pid);
        if let Some(bin) = &self.bin {
            text.push_str(&format!("bin={}\n", bin.display()));
        }
        text
    }

    /// The marker in `dir`, if `dir` is a cluster dir made by rehearse.
    pub fn read(dir: &Path) -> Option<Marker> {
        let text = std::fs::read_to_string(dir.join(MARKER_FILE)).ok()?;
        let value = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='));
        Some(Marker { pid: value("pid")?.trim().parse().ok()?, bin: value("bin").map(PathBuf::from) })
    }
}

/// A running private cluster. Call `stop` (or `keep`); `Drop` is only a backstop.
#[derive(Debug)]
pub struct LocalCluster {
    bin: PgBin,
    root: PathBuf,
    run_as: Option<RunAs>,
    conn: ConnInfo,
    stopped: bool,
    /// Settings written to its rehearse.conf beyond the connection and
    /// observation ones (a standby's).
    extra_conf: Vec<(String, String)>,
}

impl LocalCluster {
    pub async fn start(bin: PgBin, cancel: &CancellationToken) -> Result<LocalCluster> {
        // From here on, an error drops `cluster`, whose Drop removes the dir.
        let mut cluster = LocalCluster::new_private_dir(bin, Secret::generate())?;
        cluster.init(cancel).await?;
        cluster.boot(true, cancel).await?;
        Ok(cluster)
    }

    /// A cluster value over a new private temp dir (0700 whatever the umask:
    /// it will hold a copy of production data); nothing started yet.
    fn new_private_dir(bin: PgBin, password: Secret) -> Result<LocalCluster> {
        let run_as = server_user()?;
        let root = tempfile::Builder::new()
            .prefix("rehearse-")
            .tempdir()
            .map_err(|e| {
                ErrorKind::ServerStartFailed
                    .because("cannot create a private temp dir for the throwaway cluster (check TMPDIR)", e)
            })?
            .keep();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ErrorKind::ServerStartFailed.because(format!("cannot make {} private", root.display()), e))?;
        Ok(LocalCluster {
            conn: ConnInfo {
                host: root.display().to_string(),
                port: 0,
                user: SUPERUSER.into(),
                password,
                dbname: DATABASE.into(),
                admin_dbname: "postgres".into(),
                tls: Default::default(),
                password_command: None,
            },
            bin,
            root,
            run_as,
            stopped: false,
            extra_conf: Vec::new(),
        })
    }

    /// Starts a copy of a cached cluster: the restored database is already
    /// there. The cached password is replaced by a new random one at once.
    pub async fn start_from_snapshot(
        bin: PgBin,
        data: &Path,
        password: Secret,
        cancel: &CancellationToken,
    ) -> Result<LocalCluster> {
        LocalCluster::from_snapshot(bin, data, password, Vec::new(), "postgres", cancel).await
    }

    /// `start_from_snapshot`, with `extra_conf` in its rehearse.conf from the first start.
    async fn from_snapshot(
        bin: PgBin,
        data: &Path,
        password: Secret,
        extra_conf: Vec<(String, String)>,
        admin_dbname: &str,
        cancel: &CancellationToken,
    ) -> Result<LocalCluster> {
        let mut cluster = LocalCluster::claimed_private_dir(bin, password)?;
        copy_tree(data, &cluster.data_dir(), cancel).await?;
        cluster.extra_conf = extra_conf;
        cluster.conn.admin_dbname = admin_dbname.to_string();
        cluster.boot(false, cancel).await?;
        let fresh = Secret::generate();
        db::set_password(&cluster.conn, &fresh, cancel).await?;
        cluster.conn.password = fresh;
        write_private(
            &cluster.root.join("pgpass"),
            &format!("*:*:*:{}:{}\n", SUPERUSER, cluster.conn.password.expose()),
        )?;
        Ok(cluster)
    }

    /// The run's marker: this process, and the binaries `rehearse cleanup` stops the server with.
    fn write_marker(&self) -> Result<()> {
        let marker = Marker { pid: std::process::id(), bin: Some(self.bin.dir.clone()) };
        std::fs::write(self.root.join(MARKER_FILE), marker.render())
            .map_err(|e| ErrorKind::ServerStartFailed.because(format!("cannot write to {}", self.root.display()), e))
    }

    /// A new private dir with the run's marker in it, handed to the server's
    /// user: for a data dir that comes from elsewhere (a copy, a base backup).
    fn claimed_private_dir(bin: PgBin, password: Secret) -> Result<LocalCluster> {
        let cluster = LocalCluster::new_private_dir(bin, password)?;
        cluster.write_marker()?;
        if let Some(who) = &cluster.run_as {
            std::os::unix::fs::chown(&cluster.root, Some(who.uid), Some(who.gid)).map_err(|e| {
                ErrorKind::ServerStartFailed
                    .because(format!("cannot hand {} to {}", cluster.root.display(), who.name), e)
            })?;
        }
        Ok(cluster)
    }

    /// Starts a streaming hot standby of this cluster: `pg_basebackup -X
    /// stream -R` (a checkpoint, a copy of the data files, `standby.signal`
    /// and `primary_conninfo` over this cluster's socket), then the server
    /// on a port and socket of its own with `settings` and `hot_standby = on`.
    /// It is another private cluster: stopped and removed like this one.
    pub async fn start_standby(
        &self,
        settings: &[(String, String)],
        cancel: &CancellationToken,
    ) -> Result<LocalCluster> {
        // From here on, an error drops `standby`, whose Drop removes the dir.
        let mut standby = LocalCluster::claimed_private_dir(self.bin.clone(), self.conn.password.clone())?;
        ChildCommand::new(self.bin.tool("pg_basebackup"))
            .arg("-D")
            .arg(standby.data_dir())
            .args(["-X", "stream", "-R", "--checkpoint=fast", "--no-sync", "-h"])
            .arg(&self.conn.host)
            .args(["-p", &self.conn.port.to_string(), "-U", SUPERUSER])
            // -R writes the password into the standby's own primary_conninfo (a 0700 dir).
            .env("PGPASSWORD", self.conn.password.expose())
            .env("PGAPPNAME", "rehearse-standby")
            .cwd(&standby.root)
            .run_as(standby.run_as.as_ref())
            .deadline(Duration::from_secs(6 * 3600))
            .run(cancel)
            .await
            .map_err(|e| match e {
                ChildError::Cancelled { .. } => Error::Interrupted,
                other => ErrorKind::ServerStartFailed.because(
                    "pg_basebackup could not copy the throwaway primary for the standby (observe.standby)",
                    other,
                ),
            })?;
        standby.extra_conf = settings.to_vec();
        standby.extra_conf.push(("hot_standby".into(), "on".into()));
        standby.boot(false, cancel).await?;
        Ok(standby)
    }

    /// Copies the stopped data directory to `dest` (a snapshot cache entry),
    /// then starts the server again. Connections made before are gone.
    pub async fn save_snapshot(&mut self, dest: &Path, cancel: &CancellationToken) -> Result<()> {
        self.pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"], cancel).await?;
        let copied = copy_tree(&self.data_dir(), dest, cancel).await;
        self.pg_ctl(&["-w", "-t", "60", "start"], cancel).await?;
        db::connect_when_ready(&self.conn, &self.conn.admin_dbname, "rehearse", Duration::from_secs(30), cancel)
            .await?;
        copied
    }

    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    pub fn bin(&self) -> &PgBin {
        &self.bin
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("server.log")
    }

    async fn init(&mut self, cancel: &CancellationToken) -> Result<()> {
        let marker = Marker { pid: std::process::id(), bin: Some(self.bin.dir.clone()) };
        std::fs::write(self.root.join(MARKER_FILE), marker.render())
            .map_err(|e| ErrorKind::ServerStartFailed.because(format!("cannot write to {}", self.root.display()), e))?;
        let pwfile = self.root.join("pwfile");
        write_private(&pwfile, self.conn.password.expose())?;
        // A pgpass file for `--keep`: connect without ever seeing the password.
        write_private(&self.root.join("pgpass"), &format!("*:*:*:{}:{}\n", SUPERUSER, self.conn.password.expose()))?;
        if let Some(who) = &self.run_as {
            for path in [self.root.clone(), pwfile.clone(), self.root.join(MARKER_FILE)] {
                std::os::unix::fs::chown(&path, Some(who.uid), Some(who.gid)).map_err(|e| {
                    ErrorKind::ServerStartFailed
                        .because(format!("cannot hand {} to the {} user", path.display(), who.name), e)
                })?;
            }
        }
        let result = ChildCommand::new(self.bin.tool("initdb"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"])
            // A throwaway cluster needs no fsync at creation; durability is set later.
            .arg("--no-sync")
            .arg(format!("--pwfile={}", pwfile.display()))
            .cwd(&self.root)
            .run_as(self.run_as.as_ref())
            .deadline(Duration::from_secs(120))
            .run(cancel)
            .await;
        let _ = std::fs::remove_file(&pwfile);
        result.map_err(|e| self.child_error("initdb could not create the throwaway cluster", e))?;
        let conf = self.data_dir().join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|e| ErrorKind::ServerStartFailed.because(format!("cannot edit {}", conf.display()), e))?;
        writeln!(f, "\n# rehearse: connection and observation settings\ninclude 'rehearse.conf'")
            .map_err(|e| ErrorKind::ServerStartFailed.because(format!("cannot edit {}", conf.display()), e))?;
        Ok(())
    }

    /// Starts the server on a free loopback port, retrying when another
    /// process grabs the port between our probe and the server's bind.
    async fn boot(&mut self, create_database: bool, cancel: &CancellationToken) -> Result<()> {
        let mut last_error = None;
        for _ in 0..3 {
            self.conn.port = free_port()?;
            self.write_server_conf()?;
            match self.pg_ctl(&["-w", "-t", "60", "start"], cancel).await {
                Ok(()) => {
                    let client = db::connect_when_ready(
                        &self.conn,
                        &self.conn.admin_dbname,
                        "rehearse",
                        Duration::from_secs(30),
                        cancel,
                    )
                    .await?;
                    if !create_database {
                        return Ok(());
                    }
                    client
                        .batch_execute(&format!("CREATE DATABASE {}", db::quote_ident(DATABASE)))
                        .await
                        .map_err(|e| ErrorKind::ServerStartFailed.because("cannot create the rehearsal database", e))?;
                    return Ok(());
                }
                Err(e) => {
                    let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
                    if !log.contains("could not bind") && !log.contains("already in use") {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("three attempts were made"))
    }

    fn write_server_conf(&self) -> Result<()> {
        // Each line's why: loopback and a private socket only (prod data);
        // pg_stat_statements must be preloaded for statement observation;
        // logging to server.log (pg_ctl -l) so errors can be quoted.
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{socket}'\n\
             unix_socket_permissions = 0700\n\
             logging_collector = off\n",
            port = self.conn.port,
            socket = self.root.display().to_string().replace('\'', "''"),
        );
        for (name, value) in settings::OBSERVATION {
            conf.push_str(&format!("{name} = '{value}'\n"));
        }
        for (name, value) in &self.extra_conf {
            conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        // 0600 like PostgreSQL's own files (the data dir goes into the
        // snapshot cache), so it must belong to the server's user to be read.
        let path = self.data_dir().join("rehearse.conf");
        let fail =
            |e: std::io::Error| ErrorKind::ServerStartFailed.because(format!("cannot write {}", path.display()), e);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(fail)?;
        f.write_all(conf.as_bytes()).map_err(fail)?;
        // A cache entry an older rehearse made has it 0644: mode() only applies to a new file.
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        if let Some(who) = &self.run_as {
            std::os::unix::fs::chown(&path, Some(who.uid), Some(who.gid)).map_err(fail)?;
        }
        Ok(())
    }

    async fn pg_ctl(&self, args: &[&str], cancel: &CancellationToken) -> Result<()> {
        ChildCommand::new(self.bin.tool("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(args)
            .cwd(&self.root)
            .run_as(self.run_as.as_ref())
            .deadline(Duration::from_secs(90))
            .run(cancel)
            .await
            .map(|_| ())
            .map_err(|e| self.child_error(&format!("pg_ctl {} failed", args.last().unwrap_or(&"")), e))
    }

    fn child_error(&self, what: &str, e: ChildError) -> Error {
        if matches!(e, ChildError::Cancelled { .. }) {
            return Error::Interrupted;
        }
        ErrorKind::ServerStartFailed.because(self.with_log_tail(what), e)
    }

    /// The server failed to start (or to finish starting), with its log's tail.
    fn start_failure(&self, what: &str) -> Error {
        ErrorKind::ServerStartFailed.error(self.with_log_tail(what))
    }

    fn with_log_tail(&self, what: &str) -> String {
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let tail = last_lines(&log, 10);
        let mut message = what.to_string();
        if !tail.is_empty() {
            message.push_str(&format!("; server log:\n{tail}"));
        }
        message
    }

    /// Restarts the server (for settings that only take effect at start).
    pub async fn restart(&mut self, cancel: &CancellationToken) -> Result<()> {
        self.pg_ctl(&["-m", "fast", "-w", "-t", "60", "restart"], cancel).await?;
        db::connect_when_ready(&self.conn, &self.conn.admin_dbname, "rehearse", Duration::from_secs(30), cancel)
            .await
            .map(|_| ())
    }

    /// Stops the server and deletes every file of the cluster.
    pub async fn stop(mut self) -> Result<()> {
        self.stopped = true;
        // Cleanup must not be cancelled by a second Ctrl-C: use a token nobody cancels.
        let never = CancellationToken::new();
        // Immediate: the data is thrown away, so the shutdown checkpoint a
        // fast stop writes (seconds after a migration dirtied a GB) is wasted.
        // PostgreSQL 15's pg_ctl docs: immediate mode aborts every server
        // process without a clean shutdown, and the next start runs crash
        // recovery; there is no next start here. What keeps its data
        // directory (`save_snapshot`, `restart`; `--keep` does not stop)
        // stops with -m fast, so that directory starts cleanly.
        let _ = self.pg_ctl(&["-m", "immediate", "-w", "-t", "30", "stop"], &never).await;
        // The files are most of cleanup's time (sys::tree): off the async threads.
        let root = self.root.clone();
        let removed = tokio::task::spawn_blocking(move || crate::sys::tree::remove_tree(&root)).await;
        removed.unwrap_or_else(|e| Err(std::io::Error::other(e))).map_err(|e| {
            ErrorKind::CleanupFailed
                .because(format!("could not remove the throwaway cluster dir {}", self.root.display()), e)
        })
    }

    /// Leaves the server running and returns how to reach and stop it.
    pub fn keep(mut self) -> String {
        self.stopped = true;
        let as_user = self.run_as.as_ref().map(|w| format!("runuser -u {} -- ", w.name)).unwrap_or_default();
        format!(
            "The throwaway server is still running (--keep). Connect with:\n  \
             PGPASSFILE={root}/pgpass psql \"{conn}\"\n\
             (the password is in {root}/pgpass). Stop and delete it with:\n  \
             {as_user}{pg_ctl} -D {root}/data stop && rm -rf {root}",
            root = self.root.display(),
            conn = self.conn.masked(&self.conn.dbname),
            pg_ctl = self.bin.tool("pg_ctl").display(),
        )
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // Backstop for a panic or an early return: synchronous, immediate stop.
        let mut cmd = std::process::Command::new(self.bin.tool("pg_ctl"));
        cmd.arg("-D").arg(self.data_dir()).args(["-m", "immediate", "-w", "-t", "20", "stop"]);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .current_dir(&self.root);
        if let Some(who) = &self.run_as {
            use std::os::unix::process::CommandExt;
            cmd.uid(who.uid).gid(who.gid);
        }
        if self.data_dir().join("postmaster.pid").exists() {
            let _ = cmd.status();
        }
        let _ = crate::sys::tree::remove_tree(&self.root);
    }
}

/// When we are root, the server must run as an unprivileged user.
pub(crate) fn server_user() -> Result<Option<RunAs>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some(RunAs { name: user.name, uid: user.uid.as_raw(), gid: user.gid.as_raw() })),
        _ => Err(ErrorKind::ServerStartFailed.error(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` user to run it as: \
             install Debian's postgresql package (it creates the user), `useradd --system postgres`, or run rehearse as a normal user",
        )),
    }
}

pub(crate) fn free_port() -> Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ErrorKind::ServerStartFailed.because("cannot find a free port on 127.0.0.1", e))
}

/// Creates `path` (it must not exist) readable by its owner only (0600), with `content`.
pub(crate) fn write_private(path: &Path, content: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ErrorKind::ServerStartFailed.because(format!("cannot write {}", path.display()), e))?;
    f.write_all(content.as_bytes())
        .map_err(|e| ErrorKind::ServerStartFailed.because(format!("cannot write {}", path.display()), e))?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    Ok(())
}

/// `cp -a --reflink=auto`: a copy-on-write clone where the filesystem can
/// (btrfs, XFS), a plain copy elsewhere; ownership and modes are kept, so a
/// data dir owned by `postgres` stays usable by the server.
pub(crate) async fn copy_tree(from: &Path, to: &Path, cancel: &CancellationToken) -> Result<()> {
    ChildCommand::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(from)
        .arg(to)
        .deadline(Duration::from_secs(6 * 3600))
        .run(cancel)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            ChildError::Cancelled { .. } => Error::Interrupted,
            other => Error::environment_because(format!("cannot copy {} to {}", from.display(), to.display()), other),
        })
}
