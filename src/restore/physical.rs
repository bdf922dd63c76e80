//! What a physical backup says of itself (PG_VERSION, `backup_label`,
//! `backup_manifest`), whether a copied data directory is one that can
//! recover, and what recovering it wrote in the server log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::sys::process::{ChildCommand, ChildError};

/// The lines of `backup_label` the report shows (PostgreSQL 15 and 18 write
/// `START WAL LOCATION: 0/2000028 (file ...)`, `START TIME: ...`, `LABEL: ...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupLabel {
    pub label: Option<String>,
    pub start_lsn: Option<String>,
    pub started_at: Option<String>,
}

impl BackupLabel {
    /// The `backup_label` in the data directory `data`; None without one
    /// (a copy of a stopped server's directory has none).
    pub fn read(data: &Path) -> Option<BackupLabel> {
        let text = std::fs::read_to_string(data.join("backup_label")).ok()?;
        let value = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string());
        Some(BackupLabel {
            label: value("LABEL:"),
            start_lsn: value("START WAL LOCATION:").and_then(|v| v.split_whitespace().next().map(str::to_string)),
            started_at: value("START TIME:"),
        })
    }
}

/// The text of the `backup_label` a base backup holds, read before it is
/// copied: the file of a `-Fp` directory, or the member of a `-Ft` base tar.
/// pg_basebackup writes `backup_label` as the base tar's first member
/// (PostgreSQL 15 and 18, `src/backend/backup/basebackup.c`: "In the main
/// tar, include the backup_label first"), so `--occurrence=1` stops tar (and
/// its decompressor) right after it instead of reading the whole archive.
/// None when there is none: the copy then says what is wrong.
pub async fn label_text(backup: &Path, tar: bool, cancel: &CancellationToken) -> Option<String> {
    if !tar {
        return std::fs::read_to_string(backup.join("backup_label")).ok();
    }
    let out = ChildCommand::new("tar")
        .args(["--occurrence=1", "-xOf"])
        .arg(backup)
        .arg("backup_label")
        .deadline(Duration::from_secs(600))
        .run(cancel)
        .await
        .ok()?;
    Some(out.stdout).filter(|text| text.contains("START WAL LOCATION:"))
}

/// `backup_manifest`'s own checksum (`Manifest-Checksum`, PostgreSQL 13+):
/// a digest of the manifest, which lists every file of the backup with its
/// size and checksum.
pub fn manifest_checksum(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("Manifest-Checksum")?.as_str().map(str::to_string)
}

/// The end of the backup's WAL range: the last `End-LSN` of
/// `backup_manifest`'s `WAL-Ranges` (PostgreSQL 13+ writes the manifest).
pub fn manifest_end_lsn(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let ranges = json.get("WAL-Ranges")?.as_array()?;
    ranges.last()?.get("End-LSN")?.as_str().map(str::to_string)
}

/// `X/Y` as a byte position in the WAL.
pub fn lsn_value(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) + u64::from_str_radix(lo, 16).ok()?)
}

/// The major version the copied data directory `data` is (its PG_VERSION),
/// or why it is not a base backup at all.
pub fn check_base_backup(data: &Path, shown: &str) -> Result<u32> {
    let not_a_backup = |what: &str| {
        Err(ErrorKind::BackupInvalid.error(format!(
            "{shown} is not a base backup ({what}): take one with `pg_basebackup -D DIR -Ft -X stream` \
             (or -Fp), and point physical.basebackup at DIR"
        )))
    };
    let Ok(text) = std::fs::read_to_string(data.join("PG_VERSION")) else {
        return not_a_backup("it holds no PG_VERSION");
    };
    if !data.join("global").join("pg_control").is_file() {
        return not_a_backup("it holds no global/pg_control");
    }
    match text.trim().parse() {
        Ok(major) => Ok(major),
        Err(_) => not_a_backup(&format!("its PG_VERSION reads `{}`", text.trim())),
    }
}

/// Whether `pg_wal` holds a WAL segment (24 hexadecimal digits): a backup
/// taken with `-X none` has none, and cannot reach a consistent point
/// without the archive.
pub fn has_wal(data: &Path) -> bool {
    let segment = |name: &str| name.len() == 24 && name.chars().all(|c| c.is_ascii_hexdigit());
    std::fs::read_dir(data.join("pg_wal"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_str().is_some_and(segment))
}

/// What recovery wrote in the server log (PostgreSQL 15 and 18, with
/// `lc_messages = 'C'`): where replay ended, and the last transaction it replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// "redo done at 0/3000148".
    pub redo_end_lsn: Option<String>,
    /// "last completed transaction was at log time 2026-12-06 01:02:03.456+00".
    pub last_transaction: Option<String>,
}

impl Replayed {
    pub fn read(log: &str) -> Replayed {
        let after = |key: &str| {
            log.lines().filter_map(|l| l.split_once(key).map(|(_, rest)| rest.trim().to_string())).next_back()
        };
        Replayed {
            redo_end_lsn: after("redo done at ").and_then(|r| r.split_whitespace().next().map(str::to_string)),
            last_transaction: after("last completed transaction was at log time "),
        }
    }
}

/// A recovery the server refused, told apart by its log: a target it cannot
/// reach from this backup is the scenario's to fix (exit 3); anything else
/// is left to the caller.
pub fn refused_target(log: &str, target: &str) -> Option<Error> {
    let has = |needle: &str| log.lines().any(|l| l.contains(needle));
    if has("requested recovery stop point is before consistent recovery point") {
        return Some(ErrorKind::BackupInvalid.error(format!(
            "the recovery target {target} lies before the end of the backup: a copy is consistent only from the \
             backup's end on (its backup_label's START TIME, and the manifest's End-LSN): pick a later target, or \
             an older backup"
        )));
    }
    if has("recovery ended before configured recovery target was reached") {
        return Some(ErrorKind::BackupInvalid.error(format!(
            "the WAL ends before the recovery target {target}: the archive physical.restore_command reads has \
             nothing after it yet; pick an earlier target, or `target: latest`"
        )));
    }
    if has("could not locate required checkpoint record") || has("could not find redo location") {
        return Some(ErrorKind::BackupInvalid.error(
            "the backup's WAL is missing (the checkpoint its backup_label names is not in pg_wal, and \
             physical.restore_command, if any, did not fetch it: see the log below): take the backup with \
             `-X stream` or `-X fetch`, or give a physical.restore_command that reads the archive",
        ));
    }
    None
}

/// Extracts the tar `archive` (plain, or compressed as `pg_basebackup -Ft`
/// compresses: tar picks the decompressor by the file's suffix) into `into`.
pub async fn extract(archive: &Path, into: &Path, cancel: &CancellationToken) -> Result<()> {
    std::fs::create_dir_all(into)
        .map_err(|e| Error::environment_because(format!("cannot create {}", into.display()), e))?;
    ChildCommand::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .deadline(Duration::from_secs(24 * 3600))
        .run(cancel)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            ChildError::Cancelled { .. } => Error::Interrupted,
            other if other.stderr().is_some() => ErrorKind::BackupInvalid.because(
                format!(
                    "{} could not be extracted: physical.basebackup takes pg_basebackup -Ft's base.tar \
                     (or .tar.gz, .tar.lz4, .tar.zst) and pg_wal.tar",
                    archive.display()
                ),
                other,
            ),
            other => Error::environment_because(format!("tar could not extract {}", archive.display()), other),
        })
}

/// A `-Ft` backup's tablespaces moved inside the copy: each `<oid>.tar`
/// extracted into `into/<oid>`, and `tablespace_map` rewritten to point
/// there. pg_basebackup's tar format records each tablespace's location in
/// `tablespace_map` (one `<oid> <path>` line each) instead of the
/// `pg_tblspc` links, and the server makes the links from it when recovery
/// starts (PostgreSQL 15 and 18, "Making a Base Backup Using the Low Level
/// API" and pg_basebackup `-Ft`): left as it is, the copy would write into
/// production's tablespace directories.
pub async fn extract_tablespaces(
    tars: &[(String, PathBuf)],
    data: &Path,
    into: &Path,
    cancel: &CancellationToken,
) -> Result<()> {
    let map_path = data.join("tablespace_map");
    let map = std::fs::read_to_string(&map_path).unwrap_or_default();
    let mut lines = Vec::new();
    for (oid, tar) in tars {
        if !map.lines().any(|l| l.split_once(' ').is_some_and(|(o, _)| o == oid)) {
            return Err(ErrorKind::BackupInvalid.error(format!(
                "{} is a tablespace's tar, but the backup's tablespace_map does not name tablespace {oid}: \
                 point physical.basebackup at one pg_basebackup -Ft directory, as it was written",
                tar.display()
            )));
        }
        let dir = into.join(oid);
        extract(tar, &dir, cancel).await?;
        lines.push(format!("{oid} {}\n", dir.display()));
    }
    std::fs::write(&map_path, lines.concat())
        .map_err(|e| Error::environment_because(format!("cannot write {}", map_path.display()), e))
}

/// Tablespaces linked from outside the copy, moved inside it. A `-Fp`
/// backup's `pg_tblspc/<oid>` (and a backup tool's restore) is a symbolic
/// link to a directory outside the data directory: the backup's own copy of
/// the tablespace, or production's path itself. Each such directory is
/// copied into `into/<oid>` and the link re-pointed there, so the copy
/// never writes outside its own directory. Returns how many were moved.
pub async fn relocate_tablespace_links(data: &Path, into: &Path, cancel: &CancellationToken) -> Result<usize> {
    let links = data.join("pg_tblspc");
    let Ok(entries) = std::fs::read_dir(&links) else { return Ok(0) };
    let mut moved = 0;
    for entry in entries.flatten() {
        let link = entry.path();
        let Ok(target) = std::fs::read_link(&link) else { continue };
        if target.starts_with(into) {
            continue;
        }
        let fail = |what: String, e: std::io::Error| Error::environment_because(what, e);
        std::fs::create_dir_all(into).map_err(|e| fail(format!("cannot create {}", into.display()), e))?;
        let dir = into.join(entry.file_name());
        crate::backend::local::copy_tree(&target, &dir, cancel)
            .await
            .map_err(|e| e.context_after(format!("; the tablespace {} links to must be readable", link.display())))?;
        std::fs::remove_file(&link).map_err(|e| fail(format!("cannot remove {}", link.display()), e))?;
        std::os::unix::fs::symlink(&dir, &link).map_err(|e| fail(format!("cannot re-point {}", link.display()), e))?;
        moved += 1;
    }
    Ok(moved)
}

/// The bytes of the regular files under `dir`.
pub fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_label_gives_label_start_and_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("backup_label"),
            "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\n\
             BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-06 01:00:00 UTC\n\
             LABEL: nightly\nSTART TIMELINE: 1\n",
        )
        .unwrap();
        let label = BackupLabel::read(dir.path()).unwrap();
        assert_eq!(label.start_lsn.as_deref(), Some("0/2000028"));
        assert_eq!(label.label.as_deref(), Some("nightly"));
        assert_eq!(label.started_at.as_deref(), Some("2026-12-06 01:00:00 UTC"));
    }

    #[test]
    fn the_log_says_where_replay_ended_and_the_last_transaction() {
        let log = "LOG:  redo starts at 0/2000028\nLOG:  redo done at 0/3000148 system usage: CPU: user: 0.00 s\n\
                   LOG:  last completed transaction was at log time 2026-12-06 01:02:03.456+00\n";
        let r = Replayed::read(log);
        assert_eq!(r.redo_end_lsn.as_deref(), Some("0/3000148"));
        assert_eq!(r.last_transaction.as_deref(), Some("2026-12-06 01:02:03.456+00"));
    }

    #[test]
    fn lsns_are_byte_positions() {
        assert_eq!(lsn_value("0/10"), Some(16));
        assert_eq!(lsn_value("1/0"), Some(1 << 32));
        assert_eq!(lsn_value("x"), None);
    }
}
