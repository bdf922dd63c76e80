//! A network namespace of its own for a child process (Linux): entered
//! between fork and exec, so the child and everything it starts have no
//! network but a loopback interface that is down. No TCP connection reaches
//! anything, not even this machine's loopback; unix sockets on the file
//! system still work (their names live in the file system, not in the
//! network namespace), which is how the migration tool reaches the copy.
//!
//! As root (CAP_SYS_ADMIN), `unshare(CLONE_NEWNET)` alone. Otherwise a user
//! namespace comes with it, mapping the caller's own uid and gid to
//! themselves, so the child runs as the same user with the same file access;
//! it only gains capabilities over namespaces it owns, nothing on the host.
//!
//! The syscalls go through `nix`, already a dependency for signals and
//! users: typed flags and errno, and no allocation on the way, which matters
//! between fork and exec in a multi-threaded process.

use std::ffi::CStr;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::{getegid, geteuid, write};

/// How to enter a namespace: the identity maps, written before the fork
/// (formatting allocates; the child must not).
#[derive(Debug, Clone)]
pub struct Unshare {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl Unshare {
    /// Maps for the caller's effective uid and gid, each to itself.
    pub fn for_caller() -> Unshare {
        Unshare::for_ids(geteuid().as_raw(), getegid().as_raw())
    }

    /// Maps for a child that runs as `uid`/`gid` (set before the hook runs).
    fn for_ids(uid: u32, gid: u32) -> Unshare {
        Unshare { uid_map: format!("{uid} {uid} 1\n").into_bytes(), gid_map: format!("{gid} {gid} 1\n").into_bytes() }
    }

    /// Moves the calling process into a new network namespace. Meant for a
    /// `pre_exec` hook: only syscalls, no allocation, no lock.
    pub fn enter(&self) -> std::io::Result<()> {
        match unshare(CloneFlags::CLONE_NEWNET) {
            Ok(()) => return Ok(()),
            // Not privileged: a user namespace of its own makes it so.
            Err(Errno::EPERM) => {}
            Err(e) => return Err(e.into()),
        }
        // A process whose uid changed (run as another user) is not dumpable,
        // which makes its /proc/self files root's: the maps below could not
        // be written. exec resets the flag as the program requires.
        nix::sys::prctl::set_dumpable(true)?;
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)?;
        // setgroups must be denied before an unprivileged process may write
        // its gid_map (user_namespaces(7)); kernels before 3.19 lack the file.
        match write_file(c"/proc/self/setgroups", b"deny") {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        write_file(c"/proc/self/uid_map", &self.uid_map)?;
        write_file(c"/proc/self/gid_map", &self.gid_map)?;
        Ok(())
    }
}

fn write_file(path: &CStr, bytes: &[u8]) -> Result<(), Errno> {
    let fd = open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    let written = write(&fd, bytes)?;
    // /proc's map files take the whole map in one write, or none of it.
    if written != bytes.len() {
        return Err(Errno::EIO);
    }
    Ok(())
}

/// Whether a child can get a network namespace of its own on this machine,
/// asked once per process (a container without CAP_SYS_ADMIN whose seccomp
/// profile refuses unshare, a kernel with unprivileged user namespaces
/// off): Err says why not.
pub fn available() -> Result<(), String> {
    static PROBED: OnceLock<Result<(), String>> = OnceLock::new();
    PROBED.get_or_init(probe).clone()
}

/// Forks a child that enters a namespace and exits, and reads how it went.
fn probe() -> Result<(), String> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    let how = Unshare::for_caller();
    // SAFETY: the child only makes syscalls (unshare, open, write) and
    // _exits: nothing that takes a lock or allocates, as a fork of a
    // multi-threaded process requires.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = match how.enter() {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(255).clamp(1, 255),
            };
            unsafe { nix::libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(WaitStatus::Exited(_, errno)) => Err(format!(
                "unshare(CLONE_NEWNET), and with a user namespace, failed here: {}",
                Errno::from_raw(errno).desc()
            )),
            Ok(other) => Err(format!("the probe for a network namespace ended as {other:?}")),
            Err(e) => Err(format!("the probe for a network namespace was lost: {}", e.desc())),
        },
        Err(e) => Err(format!("cannot fork the probe for a network namespace: {}", e.desc())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// A child in its own namespace cannot reach a TCP listener on this
    /// machine's loopback, while one outside can.
    #[test]
    fn a_child_in_the_namespace_reaches_no_tcp_port_not_even_the_loopback() {
        if let Err(why) = available() {
            eprintln!("skipped: {why}");
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo reached");
        let outside = std::process::Command::new("bash").args(["-c", &probe]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&outside.stdout).trim(), "reached");
        let how = Unshare::for_caller();
        let mut inside = std::process::Command::new("bash");
        inside.args(["-c", &probe]);
        // SAFETY: enter only makes syscalls.
        unsafe { inside.pre_exec(move || how.enter()) };
        let inside = inside.output().unwrap();
        assert!(!inside.status.success(), "{}", String::from_utf8_lossy(&inside.stdout));
        assert!(String::from_utf8_lossy(&inside.stderr).contains("unreachable"), "{inside:?}");
    }

    /// Without privileges (a child that is `nobody`), the namespace comes
    /// with a user namespace, and the child is still `nobody` inside it: the
    /// same files are open to it. Needs root to become nobody.
    #[test]
    fn unprivileged_the_child_keeps_its_uid_and_gid() {
        if !geteuid().is_root() || available().is_err() {
            eprintln!("skipped: needs root, and namespaces");
            return;
        }
        let how = Unshare::for_ids(65534, 65534);
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "id -u; id -g; readlink /proc/self/ns/user; readlink /proc/self/ns/net"]).uid(65534).gid(65534);
        // SAFETY: enter only makes syscalls; std runs the hook after setuid.
        unsafe { cmd.pre_exec(move || how.enter()) };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
        assert_eq!(&lines[..2], ["65534", "65534"]);
        let ours = |ns: &str| std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap().display().to_string();
        assert_ne!(lines[2], ours("user"), "a user namespace of its own");
        assert_ne!(lines[3], ours("net"), "a network namespace of its own");
    }
}
