//! A hot standby of a test's own server (`OwnedServer`), for the tests of
//! what rehearse reads or observes on a standby.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use rehearse::sys::db::ConnInfo;

use super::OwnedServer;

fn bin_dir() -> PathBuf {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    rt.block_on(rehearse::backend::local::find_binaries(None, &cancel)).unwrap().dir
}

/// A hot standby of a server, streaming from it: made by pg_basebackup -R
/// into a private temp dir of its own, run as the user the primary runs as,
/// stopped and removed when dropped.
pub struct HotStandby {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
}

impl HotStandby {
    pub fn of(primary: &OwnedServer) -> HotStandby {
        HotStandby::with(primary, "")
    }

    /// A standby whose server also gets `options` (`-c name=value ...`).
    pub fn with(primary: &OwnedServer, options: &str) -> HotStandby {
        // The server refuses to run as root: as root, the `postgres` user runs it (as the local backend does).
        let run_as = nix::unistd::geteuid().is_root().then(|| {
            let user = nix::unistd::User::from_name("postgres").unwrap().expect("a postgres user");
            (user.uid.as_raw(), user.gid.as_raw())
        });
        let dir = tempfile::Builder::new().prefix("rht-standby-").tempdir_in("/tmp").unwrap();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let port = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port();
        let standby = HotStandby { dir, bin: bin_dir(), port, run_as };
        standby.run("pg_basebackup", |c| {
            c.args(["-R", "-c", "fast", "-D"]).arg(standby.data()).envs(primary.conn.libpq_env("postgres", "standby"))
        });
        let socket = standby.dir.path().display().to_string();
        let options =
            format!("-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{socket}' {options}");
        standby.run("pg_ctl", |c| {
            c.arg("-D")
                .arg(standby.data())
                .arg("-l")
                .arg(standby.dir.path().join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"])
        });
        standby
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: impl FnOnce(&mut Command) -> &mut Command) {
        let mut cmd = Command::new(self.bin.join(tool));
        args(&mut cmd).current_dir(self.dir.path()).stdin(std::process::Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().unwrap();
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        assert!(out.status.success(), "{tool}: {}\n{log}", String::from_utf8_lossy(&out.stderr));
    }

    /// A URL for `user` of `primary`'s connection on the standby, to database `dbname`.
    pub fn url(&self, conn: &ConnInfo, dbname: &str) -> String {
        format!("postgres://{}:{}@127.0.0.1:{}/{dbname}", conn.user, conn.password.expose(), self.port)
    }

    /// `conn` (a primary's role) on the standby, over TCP on the loopback.
    pub fn conn(&self, conn: &ConnInfo) -> ConnInfo {
        ConnInfo { host: "127.0.0.1".into(), port: self.port, ..conn.clone() }
    }
}

impl Drop for HotStandby {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let mut cmd = Command::new(self.bin.join("pg_ctl"));
            cmd.arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "-t", "20", "stop"]);
            cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
            if let Some((uid, gid)) = self.run_as {
                cmd.uid(uid).gid(gid);
            }
            let _ = cmd.status();
        }
        // The TempDir removes the directory (as root, or as its owner).
    }
}
