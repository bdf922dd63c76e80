//! Removing a throwaway server's data directory, and its copies in the
//! snapshot cache: many thousands of files (a database of 2,000 tables has
//! about 15,000), unlinked from several threads at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads unlinking at once: each spends its time waiting on the
/// filesystem, not computing.
const UNLINKERS: usize = 16;

/// Removes `root` and everything in it, as `std::fs::remove_dir_all` does
/// (a symbolic link is removed, never followed: a tablespace's link in
/// `pg_tblspc` leaves the tablespace alone), its files unlinked from
/// [`UNLINKERS`] threads first.
///
/// Why threads: on a filesystem that discards freed blocks at each journal
/// commit (ext4 mounted with `discard`, as cloud disks often are, and this
/// machine's), an unlink of a file whose blocks are on disk waits for a
/// commit, and one after another they add up: a 2,000-table data directory
/// (15,287 files, 368 MB) took 14-45 s to remove, so cleanup took longer
/// than the rehearsal. Unlinks from many threads share commits: 5,000
/// files of 16 kB took 12-18 s one at a time and 0.9-1.7 s from 8-16 threads.
pub fn remove_tree(root: &Path) -> std::io::Result<()> {
    let files = files_under(root);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..UNLINKERS.min(files.len()) {
            // A thread that cannot start leaves its share to the others, and to remove_dir_all.
            let _ = std::thread::Builder::new().spawn_scoped(scope, || {
                while let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let _ = std::fs::remove_file(file);
                }
            });
        }
    });
    // The directories, whatever a thread could not unlink or appeared
    // since, and the verdict.
    std::fs::remove_dir_all(root)
}

/// Every entry under `root` that is not a directory (symbolic links
/// included, not followed); what cannot be listed is left to `remove_dir_all`.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => dirs.push(entry.path()),
                Ok(_) => files.push(entry.path()),
                Err(_) => {}
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_deep_tree_and_never_follows_a_link_out_of_it() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"tablespace data").unwrap();
        let root = tempfile::tempdir().unwrap().keep();
        for d in 0..20 {
            let dir = root.join(format!("base/{d}/sub"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..50 {
                std::fs::write(dir.join(format!("{f}")), b"x").unwrap();
            }
        }
        std::fs::create_dir(root.join("pg_tblspc")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("pg_tblspc/16384")).unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        assert!(outside.path().join("keep").exists(), "the link was removed, not followed");
    }

    #[test]
    fn a_missing_tree_is_an_error_as_for_remove_dir_all() {
        let gone = tempfile::tempdir().unwrap().path().join("never-made");
        assert_eq!(remove_tree(&gone).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }
}
