//! A loaded machine for tests whose subject is timing: busy-loop processes
//! that take the CPUs away from everything else for as long as they live.

use std::process::{Child, Command, Stdio};

/// `n` shell busy loops (`while :; do :; done`), killed when dropped.
pub struct CpuHog(Vec<Child>);

impl CpuHog {
    pub fn start(n: usize) -> CpuHog {
        let spawn = || {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .spawn()
                .expect("a busy loop starts")
        };
        CpuHog((0..n).map(|_| spawn()).collect())
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
