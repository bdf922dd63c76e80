//! The machine the rehearsal runs on: cores and memory, for the report and
//! the default number of restore jobs.

/// Logical CPUs available to this process.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Total RAM in bytes (`MemTotal` of /proc/meminfo, Linux); None elsewhere.
pub fn memory_bytes() -> Option<u64> {
    mem_total(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// `MemTotal:   24588416 kB` → bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_total() {
        assert_eq!(mem_total("MemFree: 1 kB\nMemTotal:       24588416 kB\n"), Some(24588416 * 1024));
        assert_eq!(mem_total("nothing"), None);
        assert!(memory_bytes().is_some_and(|b| b > 0), "this test runs on Linux");
        assert!(cpus() >= 1);
    }
}
