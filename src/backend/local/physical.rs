//! A private cluster made from production's physical backup instead of
//! `initdb`: the backup copied into the private data directory, the
//! server's configuration replaced by rehearse's own, WAL replayed to the
//! target, the copy promoted, and rehearse's superuser made in it.
//!
//! PostgreSQL 15 and 18, "Continuous Archiving and Point-in-Time Recovery
//! (PITR)", *Recovering Using a Continuous Archive Backup*: restore the
//! backup's files, remove `postmaster.pid`, set `restore_command` (and a
//! recovery target) in the configuration, create `recovery.signal`, start the
//! server; "Making a Base Backup": a backup taken with its WAL (`-X stream`
//! or `fetch`) can be started as it is, and replays that WAL from
//! `backup_label`'s checkpoint to a consistent point by crash recovery.

use std::io::Cursor;
use std::time::{Duration, Instant};

use super::*;
use crate::sys::process::ChildInput;

/// What the copy's server reads during recovery, beyond its connection settings.
#[derive(Debug, Clone, Default)]
pub struct RecoverySettings {
    /// `recovery_target_time` / `recovery_target_lsn` and their values, if any.
    pub target: Option<(&'static str, String)>,
    /// The archive's `restore_command` (the scenario's only).
    pub restore_command: Option<String>,
    /// Whether to start with `recovery.signal` (archive recovery) or by crash recovery alone.
    pub archive_recovery: bool,
}

/// Production's own configuration files in the copy: set aside as
/// `NAME.production` (they name production's archive, certificates,
/// paths and port), and replaced by rehearse's.
const PRODUCTION_CONFIG: &[&str] = &["postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf"];

/// Files that would make the copy something other than a promoted primary
/// of its own: a standby (`-R`), a stale recovery request, a dead server's pid.
const STALE_FILES: &[&str] =
    &["standby.signal", "recovery.signal", "recovery.conf", "postmaster.pid", "postmaster.opts"];

/// How long WAL replay may take: replay runs at disk speed, and a day of
/// archive on a busy server can take hours.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// Settings every physical copy keeps, during recovery and after: the copy
/// never archives (PostgreSQL 15 and 18, `archive_mode`: with `off`, no WAL
/// segment is handed to `archive_command`, so nothing reaches production's
/// archive), and the server log speaks English for the lines rehearse reads.
const COPY_SETTINGS: &[(&str, &str)] = &[("archive_mode", "off"), ("lc_messages", "C")];

fn copy_settings() -> Vec<(String, String)> {
    COPY_SETTINGS.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

impl LocalCluster {
    /// A private dir for a physical copy, with the run's marker: nothing copied or started yet.
    pub fn for_physical(bin: PgBin) -> Result<LocalCluster> {
        let mut cluster = LocalCluster::claimed_private_dir(bin, Secret::generate())?;
        cluster.use_admin_database("template1");
        Ok(cluster)
    }

    /// A snapshot cache entry of a recovered copy, started: with the copy's
    /// settings (`archive_mode = off`) from its first start, as `recover` leaves it.
    pub async fn start_physical_from_snapshot(
        bin: PgBin,
        data: &Path,
        password: Secret,
        cancel: &CancellationToken,
    ) -> Result<LocalCluster> {
        // template1 until the copy's databases are read (`use_admin_database`).
        LocalCluster::from_snapshot(bin, data, password, copy_settings(), "template1", cancel).await
    }

    /// The user the server runs as (when rehearse runs as root).
    pub fn runs_as(&self) -> Option<&RunAs> {
        self.run_as.as_ref()
    }

    /// Where the copy's data directory is (or goes).
    pub fn data_path(&self) -> PathBuf {
        self.data_dir()
    }

    /// Where the copy's tablespaces go: inside the cluster's own directory,
    /// so they are deleted with it.
    pub fn tablespaces_path(&self) -> PathBuf {
        self.root.join("tablespaces")
    }

    /// The server's log (recovery's lines are read from it).
    pub fn log_path(&self) -> PathBuf {
        self.log_file()
    }

    /// Switches to other binaries (the backup's major version), before the
    /// server first starts; the marker names them, so `rehearse cleanup`
    /// stops a crashed run's server with the binaries that started it.
    pub fn use_binaries(&mut self, bin: PgBin) -> Result<()> {
        self.bin = bin;
        self.write_marker()
    }

    /// The database rehearse's own sessions connect to: production may have
    /// dropped `postgres`, so a physical copy starts with `template1`, which
    /// every cluster has (PostgreSQL 15 and 18, "Template Databases").
    pub fn use_admin_database(&mut self, name: &str) {
        self.conn.admin_dbname = name.to_string();
    }

    /// Hands the copied data directory to the server's user, private (0700)
    /// as PostgreSQL requires of a data directory.
    pub async fn claim_data_dir(&self, cancel: &CancellationToken) -> Result<()> {
        let data = self.data_dir();
        let tablespaces = self.tablespaces_path();
        if let Some(who) = &self.run_as {
            ChildCommand::new("chown")
                .args(["-R", &format!("{}:{}", who.uid, who.gid)])
                .arg(&data)
                .args(tablespaces.exists().then_some(&tablespaces))
                .deadline(Duration::from_secs(3600))
                .run(cancel)
                .await
                .map_err(|e| match e {
                    ChildError::Cancelled { .. } => Error::Interrupted,
                    other => ErrorKind::ServerStartFailed
                        .because(format!("cannot hand {} to the {} user", data.display(), who.name), other),
                })?;
        }
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ErrorKind::ServerStartFailed.because(format!("cannot make {} private", data.display()), e))
    }

    /// Replaces production's configuration with the copy's own, then replays
    /// WAL to the target and promotes; stops the server again and makes
    /// rehearse's superuser, then starts it for the rehearsal. Returns how
    /// long the replay took.
    pub async fn recover(&mut self, settings: &RecoverySettings, cancel: &CancellationToken) -> Result<Duration> {
        self.force_configuration(settings)?;
        self.conn.port = free_port()?;
        self.write_server_conf()?;
        let started = Instant::now();
        // hot_standby = off: the server accepts no connection before it is
        // promoted. pg_ctl -w returns as soon as replay begins, though
        // (`wait_promoted` says why), so the end of replay is waited for after.
        ChildCommand::new(self.bin.tool("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", &RECOVERY_DEADLINE.as_secs().to_string(), "start"])
            .cwd(&self.root)
            .run_as(self.run_as.as_ref())
            .deadline(RECOVERY_DEADLINE + Duration::from_secs(60))
            .run(cancel)
            .await
            .map_err(|e| self.child_error("the copy of the backup did not recover", e))?;
        self.wait_promoted(started + RECOVERY_DEADLINE, cancel).await?;
        let replay = started.elapsed();
        self.pg_ctl(&["-m", "fast", "-w", "-t", "600", "stop"], cancel).await?;
        self.extra_conf = copy_settings();
        self.make_superuser(cancel).await?;
        self.boot(false, cancel).await?;
        write_private(&self.root.join("pgpass"), &format!("*:*:*:{}:{}\n", SUPERUSER, self.conn.password.expose()))?;
        Ok(replay)
    }

    /// Waits until the server has replayed its WAL and promoted itself.
    /// With hot_standby off, the postmaster marks itself `standby` in
    /// postmaster.pid as soon as archive recovery starts, and pg_ctl -w
    /// takes that as started (PostgreSQL 15 and 18, postmaster.c: "If we
    /// aren't planning to enter hot standby mode later, treat RECOVERY
    /// STARTED as meaning we're out of startup"; pg_ctl.c accepts `ready`
    /// or `standby`). The status line becomes `ready` once the startup
    /// process has ended recovery and the server opens for connections.
    /// A server that stops instead (a FATAL in replay: an unreachable
    /// target, a missing segment) removes its postmaster.pid on exit.
    async fn wait_promoted(&self, deadline: Instant, cancel: &CancellationToken) -> Result<()> {
        let pid_file = self.data_dir().join("postmaster.pid");
        loop {
            let status = std::fs::read_to_string(&pid_file).ok();
            let pid = status.as_deref().and_then(|s| s.lines().next()?.trim().parse::<u32>().ok());
            if status.as_deref().and_then(|s| s.lines().nth(7)).map(str::trim) == Some("ready") {
                return Ok(());
            }
            if !pid.is_some_and(crate::sys::process::process_alive) {
                return Err(
                    self.start_failure("the copy of the backup did not recover: the server stopped during replay")
                );
            }
            if Instant::now() > deadline {
                return Err(self.start_failure(&format!(
                    "the copy of the backup did not recover within {}: WAL replay is still running",
                    humantime::format_duration(RECOVERY_DEADLINE)
                )));
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(Error::Interrupted),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// The database the rehearsal runs on (a physical copy holds all of production's).
    pub fn rehearse_database(&mut self, name: &str) {
        self.conn.dbname = name.to_string();
    }

    fn force_configuration(&mut self, settings: &RecoverySettings) -> Result<()> {
        let data = self.data_dir();
        let fail = |what: &str, e: std::io::Error| ErrorKind::ServerStartFailed.because(what.to_string(), e);
        for name in PRODUCTION_CONFIG {
            let path = data.join(name);
            if path.exists() {
                std::fs::rename(&path, data.join(format!("{name}.production")))
                    .map_err(|e| fail(&format!("cannot set aside production's {}", path.display()), e))?;
            }
        }
        for name in STALE_FILES {
            let _ = std::fs::remove_file(data.join(name));
        }
        // Loopback and the private socket only, by password: as initdb --auth=scram-sha-256 writes
        // it, with replication for a standby of the copy (`observe.standby`).
        let hba = "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n\
                   local replication all scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n";
        let files = [
            ("postgresql.conf", "# rehearse: a copy of production's backup (production's own file is postgresql.conf.production)\ninclude 'rehearse.conf'\n"),
            ("postgresql.auto.conf", "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n"),
            ("pg_hba.conf", hba),
            ("pg_ident.conf", ""),
        ];
        for (name, text) in files {
            self.write_owned(&data.join(name), text)?;
        }
        if settings.archive_recovery {
            self.write_owned(&data.join("recovery.signal"), "")?;
        }
        let mut conf = copy_settings();
        conf.push(("hot_standby".into(), "off".into()));
        if let Some((name, value)) = &settings.target {
            conf.push((name.to_string(), value.clone()));
            // The default is `pause`, which with hot_standby off shuts the server down (PostgreSQL 15, 18).
            conf.push(("recovery_target_action".into(), "promote".into()));
        }
        if settings.archive_recovery {
            // Archive recovery refuses to start without one (PostgreSQL 12+: "must specify
            // restore_command when standby mode is not enabled"); `false` finds nothing in an
            // archive, so the WAL comes from the backup's own pg_wal.
            let command = settings.restore_command.clone().unwrap_or_else(|| "false".into());
            conf.push(("restore_command".into(), command));
        }
        self.extra_conf = conf;
        Ok(())
    }

    /// Writes `text` to `path` (replacing it), 0600, owned by the server's user.
    fn write_owned(&self, path: &Path, text: &str) -> Result<()> {
        let fail =
            |e: std::io::Error| ErrorKind::ServerStartFailed.because(format!("cannot write {}", path.display()), e);
        std::fs::write(path, text).map_err(fail)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        if let Some(who) = &self.run_as {
            std::os::unix::fs::chown(path, Some(who.uid), Some(who.gid)).map_err(fail)?;
        }
        Ok(())
    }

    /// Makes rehearse's superuser with this cluster's password, in
    /// single-user mode: production's roles and their passwords are not
    /// rehearse's to know, and a standalone backend runs as the bootstrap
    /// superuser whatever it is called (PostgreSQL 15 and 18, `postgres
    /// --single`). Production may have a role of that name: it is altered
    /// (on the copy only) to log in with the password.
    async fn make_superuser(&self, cancel: &CancellationToken) -> Result<()> {
        let password = self.conn.password.expose().replace('\'', "''");
        let role = db::quote_ident(SUPERUSER);
        // One statement a line: single-user mode ends a statement at a newline.
        let sql = format!(
            "SET password_encryption = 'scram-sha-256'\n\
             DO $rehearse$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{SUPERUSER}') THEN \
             ALTER ROLE {role} SUPERUSER LOGIN PASSWORD '{password}'; ELSE \
             CREATE ROLE {role} SUPERUSER LOGIN PASSWORD '{password}'; END IF; END $rehearse$\n"
        );
        let out = ChildCommand::new(self.bin.tool("postgres"))
            // No statement in the log: it holds the password.
            .args(["--single", "-c", "log_min_error_statement=panic", "-D"])
            .arg(self.data_dir())
            // template1: the one database every cluster has.
            .arg("template1")
            .input(ChildInput::Reader(Box::new(Cursor::new(sql.into_bytes()))))
            .cwd(&self.root)
            .run_as(self.run_as.as_ref())
            .deadline(Duration::from_secs(600))
            .run(cancel)
            .await
            .map_err(|e| self.child_error("could not make rehearse's superuser in the copy (postgres --single)", e))?;
        // Single-user mode exits 0 after a failed statement: its ERROR lines say so.
        if let Some(line) = out.stderr.lines().chain(out.stdout.lines()).find(|l| l.contains("ERROR:")) {
            return Err(ErrorKind::ServerStartFailed
                .error(format!("could not make rehearse's superuser in the copy (postgres --single): {line}")));
        }
        Ok(())
    }
}
