//! Room for the restore, checked before anything starts: a dump that plainly
//! cannot fit where the server keeps its data is refused in a second (exit
//! 4, naming the directory), and one that may not fit gets a warning. When a
//! restore runs out of room anyway, the error says where and how much.
//!
//! How much a restore needs cannot be known before it runs: a compressed
//! dump says nothing of its data's size, and indexes are built during the
//! restore. Two figures bound it. At least: a compressed dump's size (the
//! restored data is no smaller than its zlib-compressed text: TOAST's pglz
//! compresses less) or half an uncompressed one's (numbers take less room
//! in binary than as text, rows more); plus a fresh cluster. Likely: ten
//! times a compressed dump (the demo's 13.3 MB custom dump restores to
//! 177 MB: 13×) or twice an uncompressed one, indexes included.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::pg::DumpFormat;
use crate::report::format_bytes;

/// A fresh cluster (initdb's files, the first WAL segments) before any data.
const CLUSTER_BYTES: u64 = 64 << 20;

/// How much room a restore of a dump needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub at_least: u64,
    pub likely: u64,
}

/// Where the restored data goes, and how much room it had before the run.
#[derive(Debug, Clone)]
pub struct Room {
    pub dir: PathBuf,
    pub free: u64,
    pub need: Need,
    /// The dump's size on disk.
    pub dump_bytes: u64,
    /// What the directory is to the user: "TMPDIR", "Docker's data root".
    pub what: String,
}

pub fn need(dump_bytes: u64, format: DumpFormat) -> Need {
    let compressed = matches!(format, DumpFormat::Custom | DumpFormat::Directory | DumpFormat::PlainGzip);
    let (at_least, likely) = if compressed { (dump_bytes, dump_bytes * 10) } else { (dump_bytes / 2, dump_bytes * 2) };
    Need { at_least: at_least + CLUSTER_BYTES, likely: likely + CLUSTER_BYTES }
}

/// Bytes free for an unprivileged user in the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// Size of a dump file, or of a directory dump's files.
pub fn dump_bytes(path: &Path) -> std::io::Result<u64> {
    if !path.is_dir() {
        return Ok(std::fs::metadata(path)?.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Checks that a restore of `dump` can fit in `dir`: an error when it
/// plainly cannot; the room (with a warning to give, if any) otherwise.
pub fn check(dump: &Path, format: DumpFormat, dir: &Path, what: &str) -> Result<(Room, Option<String>)> {
    let dump_bytes = dump_bytes(dump)
        .map_err(|e| ErrorKind::DumpUnreadable.because(format!("cannot read dump {}", dump.display()), e))?;
    let free = free_bytes(dir).map_err(|e| {
        Error::environment_because(format!("cannot tell how much room {} ({what}) has", dir.display()), e)
    })?;
    let room = Room { dir: dir.to_path_buf(), free, need: need(dump_bytes, format), dump_bytes, what: what.into() };
    if free < room.need.at_least {
        return Err(ErrorKind::DiskFull.error(format!(
            "not enough room to restore dump {} ({}) in {} ({what}): it has {} free, and the restored database \
             needs at least {} (likely about {}). Free some space there, or {}",
            dump.display(),
            format_bytes(dump_bytes),
            dir.display(),
            format_bytes(free),
            format_bytes(room.need.at_least),
            format_bytes(room.need.likely),
            remedy(what)
        )));
    }
    let warning = (free < room.need.likely).then(|| {
        format!(
            "{} ({what}) has {} free; restoring {} ({}) likely needs about {}: the restore may run out of room \
             ({})",
            dir.display(),
            format_bytes(free),
            dump.display(),
            format_bytes(dump_bytes),
            format_bytes(room.need.likely),
            remedy(what)
        )
    });
    Ok((room, warning))
}

fn remedy(what: &str) -> &'static str {
    if what.contains("Docker") {
        "move Docker's data root (`data-root` in /etc/docker/daemon.json) to a bigger disk"
    } else {
        "set TMPDIR to a directory on a bigger disk"
    }
}

/// The error for a restore that ran out of room: where, how much it had,
/// what it needs. `cause` is the tool's failure, with the server's message.
pub fn out_of_room(room: &Room, cause: impl Into<crate::error::BoxError>) -> Error {
    ErrorKind::DiskFull.because(
        format!(
            "the restore ran out of disk space in {} ({}): it had {} free when the run started, and a {} dump \
             likely needs about {} restored. Free space there, or {}",
            room.dir.display(),
            room.what,
            format_bytes(room.free),
            format_bytes(room.dump_bytes),
            format_bytes(room.need.likely),
            remedy(&room.what)
        ),
        cause,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_dumps_need_more_than_their_size() {
        let mb = 1 << 20;
        assert_eq!(need(14 * mb, DumpFormat::Custom), Need { at_least: 78 * mb, likely: 204 * mb });
        assert_eq!(need(100 * mb, DumpFormat::Plain), Need { at_least: 114 * mb, likely: 264 * mb });
        assert!(free_bytes(Path::new("/")).unwrap() > 0);
    }

    #[test]
    fn a_dump_that_cannot_fit_is_refused_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("big.dump");
        std::fs::write(&dump, b"PGDMP").unwrap();
        // Pretend the dump is huge by checking against a directory's real room.
        let free = free_bytes(dir.path()).unwrap();
        let huge = std::fs::File::create(dir.path().join("sparse.dump")).unwrap();
        huge.set_len(free + (1 << 30)).unwrap();
        let err = check(&dir.path().join("sparse.dump"), DumpFormat::Custom, dir.path(), "TMPDIR").unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::ENVIRONMENT);
        let text = err.to_string();
        assert!(text.contains(&dir.path().display().to_string()) && text.contains("TMPDIR"), "{text}");
        let (room, warning) = check(&dump, DumpFormat::Custom, dir.path(), "TMPDIR").unwrap();
        assert!(warning.is_none() && room.free > 0);
    }
}
