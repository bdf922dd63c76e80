//! `physical:` resolved: which backup, laid out how, recovered how far, and
//! the database rehearsed on the copy. Checked from the files alone; whether
//! a tar really holds a base backup is known once it is extracted (reading
//! a compressed tar to its end here would cost the copy's time twice).

use std::path::{Path, PathBuf};

use super::scenario::{PhysicalSection, Scenario};
use super::Origin;
use crate::backend::BackendKind;
use crate::error::{ErrorKind, Result};
pub use crate::report::RecoveryTargetKind;

/// A physical source, validated.
#[derive(Debug, Clone)]
pub struct PhysicalPlan {
    pub source: PhysicalSource,
    /// The archive's `restore_command`, exactly as the scenario gives it.
    pub restore_command: Option<String>,
    pub target: RecoveryTarget,
    /// The database the migrations run on (`database:`).
    pub database: String,
    /// `--pg-bin` or `postgres.pg_bin` named the binaries: the backup must be their version.
    pub pg_bin_named: bool,
}

#[derive(Debug, Clone)]
pub enum PhysicalSource {
    BaseBackup(BaseBackup),
    /// A backup tool's command that fills `{datadir}`.
    Restore(String),
}

/// A `pg_basebackup` output.
#[derive(Debug, Clone)]
pub struct BaseBackup {
    pub path: PathBuf,
    pub layout: BackupLayout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupLayout {
    /// `-Fp`: a data directory.
    Plain,
    /// `-Ft`: `base.tar[.gz|.lz4|.zst]`, `pg_wal.tar[...]` with `-X stream`,
    /// and one `<oid>.tar[...]` per tablespace other than the default ones.
    Tar { base: PathBuf, wal: Option<PathBuf>, tablespaces: Vec<(String, PathBuf)> },
}

impl BaseBackup {
    /// Whether the backup holds tablespaces of its own (`-Fp`: links in
    /// `pg_tblspc`; `-Ft`: a tar per tablespace).
    pub fn has_tablespaces(&self) -> bool {
        match &self.layout {
            BackupLayout::Plain => std::fs::read_dir(self.path.join("pg_tblspc")).is_ok_and(|mut d| d.next().is_some()),
            BackupLayout::Tar { tablespaces, .. } => !tablespaces.is_empty(),
        }
    }
}

/// How far the copy is recovered before it is promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// The end of the WAL the backup holds: its consistent point (no archive).
    Consistent,
    /// The end of the archive `restore_command` reads.
    Latest,
    /// `recovery_target_time`.
    Time(String),
    /// `recovery_target_lsn`.
    Lsn(String),
}

impl RecoveryTarget {
    pub fn kind(&self) -> RecoveryTargetKind {
        match self {
            RecoveryTarget::Consistent => RecoveryTargetKind::Consistent,
            RecoveryTarget::Latest => RecoveryTargetKind::Latest,
            RecoveryTarget::Time(_) => RecoveryTargetKind::Time,
            RecoveryTarget::Lsn(_) => RecoveryTargetKind::Lsn,
        }
    }

    /// The time or LSN, for the target kinds that have one.
    pub fn value(&self) -> Option<&str> {
        match self {
            RecoveryTarget::Time(v) | RecoveryTarget::Lsn(v) => Some(v),
            _ => None,
        }
    }
}

impl PhysicalPlan {
    /// What the report calls the source: the backup's path, or the restore command's program.
    pub fn shown(&self) -> String {
        match &self.source {
            PhysicalSource::BaseBackup(b) => b.path.display().to_string(),
            // The program only: a command's arguments may hold secrets.
            PhysicalSource::Restore(c) => c.split_whitespace().next().unwrap_or("").to_string(),
        }
    }

    /// Why the snapshot cache cannot keep this copy, if it cannot: the
    /// cache is keyed by what makes the recovered copy what it is, read
    /// before the copy, and these sources have no such key.
    pub fn uncached(&self) -> Option<&'static str> {
        if let PhysicalSource::Restore(_) = self.source {
            // Keying after the restore would save the recovery only, the cheap part, at the cost of
            // a second full copy on disk: not worth an entry.
            return Some(
                "physical.restore is not cached: the backup tool picks its backup (pgBackRest's newest set, \
                 WAL-G's LATEST) only when its command runs, so which backup it is is known only once the \
                 copy is made; each run restores again",
            );
        }
        if let PhysicalSource::BaseBackup(b) = &self.source {
            if b.has_tablespaces() {
                return Some(
                    "a backup with tablespaces is not cached yet: the cache keeps the data directory, and \
                     a tablespace lives outside it; each run copies the backup again",
                );
            }
        }
        if self.target == RecoveryTarget::Latest {
            return Some(
                "a copy recovered to `latest` is not cached: the end of the archive moves as production \
                 archives WAL, so a cached copy would be stale; name a point with physical.target_time or \
                 target_lsn to cache it",
            );
        }
        None
    }
}

/// Settings a physical copy must never take from the scenario: they would
/// archive into production's repository, or stream from production.
const REFUSED_SETTINGS: &[&str] = &["archive_mode", "archive_command", "archive_library", "primary_conninfo"];

pub(super) fn plan(s: &Scenario, origin: &Origin, pg_bin_named: bool) -> Result<Option<PhysicalPlan>> {
    let shown = origin.shown();
    let bad = |message: String| Err(ErrorKind::ScenarioInvalid.error(format!("{shown}: {message}")));
    let Some(p) = &s.physical else {
        return match &s.database {
            Some(_) => bad("`database:` names the database of a physical copy, but there is no `physical:`: \
                            remove `database:` (a dump restores into the rehearsal's own database)"
                .into()),
            None => Ok(None),
        };
    };
    if !matches!(s.postgres.backend, BackendKind::Local | BackendKind::Auto) {
        return bad(format!(
            "`physical:` is recovered by the local backend (a private data directory and this machine's \
             binaries), but postgres.backend is {}: set `backend: local`",
            s.postgres.backend
        ));
    }
    let Some(database) = s.database.clone() else {
        return bad("`physical:` copies every database of production: name the one to rehearse with \
                    `database: NAME`"
            .into());
    };
    if let Some(name) = s.postgres.settings.keys().find(|k| REFUSED_SETTINGS.contains(&k.as_str())) {
        return bad(format!(
            "postgres.settings.{name} is refused on a physical copy: it could write into production's backup \
             repository or WAL archive, or stream from production (the copy runs with archive_mode = off): remove it"
        ));
    }
    Ok(Some(PhysicalPlan {
        source: source(p, origin)?,
        restore_command: p.restore_command.as_ref().map(|c| c.as_str().to_string()),
        target: target(p, origin)?,
        database,
        pg_bin_named,
    }))
}

fn source(p: &PhysicalSection, origin: &Origin) -> Result<PhysicalSource> {
    let shown = origin.shown();
    match (&p.basebackup, &p.restore) {
        (Some(path), None) => {
            let path = origin.in_scenario(path.as_str());
            Ok(PhysicalSource::BaseBackup(BaseBackup { layout: layout(&path)?, path }))
        }
        (None, Some(command)) if command.as_str().contains("{datadir}") => {
            Ok(PhysicalSource::Restore(command.as_str().to_string()))
        }
        (None, Some(_)) => Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: physical.restore must say where the backup goes with {{datadir}}, e.g. \
             `pgbackrest --stanza=main --pg1-path={{datadir}} restore`"
        ))),
        (Some(_), Some(_)) => Err(ErrorKind::ScenarioInvalid
            .error(format!("{shown}: physical.basebackup and physical.restore are two sources: keep one"))),
        (None, None) => Err(ErrorKind::ScenarioInvalid.error(format!(
            "{shown}: `physical:` needs its source: `basebackup: PATH` (pg_basebackup's output) or \
             `restore: \"COMMAND {{datadir}}\"` (pgBackRest, WAL-G)"
        ))),
    }
}

fn target(p: &PhysicalSection, origin: &Origin) -> Result<RecoveryTarget> {
    let bad = |message: &str| Err(ErrorKind::ScenarioInvalid.error(format!("{}: {message}", origin.shown())));
    let latest = match p.target.as_deref() {
        None => false,
        Some("latest") => true,
        Some(_) => return bad("physical.target takes `latest` only; name a point with target_time or target_lsn"),
    };
    match (&p.target_time, &p.target_lsn, latest) {
        (Some(_), Some(_), _) | (Some(_), _, true) | (_, Some(_), true) => {
            bad("physical.target_time, target_lsn and target: latest are alternatives: keep one")
        }
        (Some(t), None, false) if is_zoned_time(t) => Ok(RecoveryTarget::Time(t.clone())),
        (Some(_), None, false) => {
            bad("physical.target_time is a date and time with its zone, as `SELECT now()` prints it: \
             2026-12-05 23:00:00+00 (or 2026-12-05T23:00:00Z, +01:00): a time without a zone would be read in \
             the copy's zone (UTC), not production's")
        }
        (None, Some(lsn), false) if is_lsn(lsn) => Ok(RecoveryTarget::Lsn(lsn.clone())),
        (None, Some(_), false) => bad("physical.target_lsn is a WAL location like 0/3000060 (pg_current_wal_lsn())"),
        (None, None, true) if p.restore_command.is_none() => {
            bad("physical.target: latest recovers to the end of the WAL archive, and there is no \
             physical.restore_command to read it: add the archive's restore_command")
        }
        (None, None, true) => Ok(RecoveryTarget::Latest),
        (None, None, false) if p.restore_command.is_some() => Ok(RecoveryTarget::Latest),
        (None, None, false) => Ok(RecoveryTarget::Consistent),
    }
}

/// `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]]` and a zone (`Z`, `UTC`, `±HH`, `±HH:MM`,
/// `±HHMM`): the ISO 8601 subset of what `timestamptz` input accepts
/// (PostgreSQL 15 and 18, "Date/Time Input"), which `recovery_target_time`
/// takes without its special values. Hand-written: no crate in the tree
/// parses PostgreSQL's `+00` offsets, and only the shape is checked here
/// (the server still parses the value itself).
fn is_zoned_time(text: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_digit());
    let within = |s: &str, lo: u32, hi: u32| s.parse::<u32>().is_ok_and(|v| (lo..=hi).contains(&v));
    let Some((date, rest)) = text.trim().split_once([' ', 'T']) else { return false };
    let date_ok = match date.split('-').collect::<Vec<_>>()[..] {
        [y, m, d] => digits(y, 4) && digits(m, 2) && digits(d, 2) && within(m, 1, 12) && within(d, 1, 31),
        _ => false,
    };
    let rest = rest.trim();
    let (clock, zone) = match rest.find(['+', '-', 'Z', 'U', ' ']) {
        Some(at) => (&rest[..at], rest[at..].trim()),
        None => return false,
    };
    let clock_ok = match clock.split(':').collect::<Vec<_>>()[..] {
        [h, m] => digits(h, 2) && digits(m, 2) && within(h, 0, 23) && within(m, 0, 59),
        [h, m, s] => {
            let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
            digits(h, 2)
                && digits(m, 2)
                && digits(whole, 2)
                && within(h, 0, 23)
                && within(m, 0, 59)
                && within(whole, 0, 60)
                && (1..=6).contains(&fraction.len())
                && fraction.chars().all(|c| c.is_ascii_digit())
        }
        _ => false,
    };
    let zone_ok = match zone {
        "Z" | "UTC" => true,
        z if z.starts_with(['+', '-']) => {
            let offset = z[1..].replace(':', "");
            (digits(&offset, 2) || digits(&offset, 4)) && within(&offset[..2], 0, 15)
        }
        _ => false,
    };
    date_ok && clock_ok && zone_ok
}

/// `X/Y`, two hexadecimal numbers: how `pg_lsn` is written.
fn is_lsn(text: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.len() <= 8 && s.chars().all(|c| c.is_ascii_hexdigit());
    text.split_once('/').is_some_and(|(a, b)| hex(a) && hex(b))
}

/// The compressions `pg_basebackup -Ft` writes (PostgreSQL 15: gzip, lz4, zstd), which tar reads by suffix.
const TAR_NAMES: &[&str] = &[".tar", ".tar.gz", ".tar.lz4", ".tar.zst"];

/// What `path` holds: a `-Fp` data directory, or `-Ft` tars.
fn layout(path: &Path) -> Result<BackupLayout> {
    let shown = path.display();
    let find =
        |dir: &Path, stem: &str| TAR_NAMES.iter().map(|ext| dir.join(format!("{stem}{ext}"))).find(|p| p.is_file());
    if path.is_dir() {
        if path.join("PG_VERSION").is_file() {
            return Ok(BackupLayout::Plain);
        }
        if let Some(base) = find(path, "base") {
            return Ok(BackupLayout::Tar { base, wal: find(path, "pg_wal"), tablespaces: tablespace_tars(path) });
        }
        return Err(ErrorKind::BackupInvalid.error(format!(
            "physical.basebackup {shown} is not a base backup: a pg_basebackup -Fp directory holds PG_VERSION, \
             a -Ft one base.tar (or base.tar.gz): point it at pg_basebackup's -D directory"
        )));
    }
    if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new("/"));
        return Ok(BackupLayout::Tar {
            base: path.to_path_buf(),
            wal: find(dir, "pg_wal"),
            tablespaces: tablespace_tars(dir),
        });
    }
    Err(ErrorKind::BackupInvalid.error(format!(
        "physical.basebackup {shown} does not exist (or cannot be read): point it at pg_basebackup's -D directory"
    )))
}

/// `-Ft`'s tablespace tars in `dir`: `<oid>.tar[...]`, by oid.
fn tablespace_tars(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let oid = TAR_NAMES.iter().find_map(|ext| name.strip_suffix(ext))?;
            (!oid.is_empty() && oid.chars().all(|c| c.is_ascii_digit())).then(|| (oid.to_string(), e.path()))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_base_backup_recovered_to_a_fixed_point_is_cached() {
        let plan = |source, target| PhysicalPlan {
            source,
            restore_command: None,
            target,
            database: "app".into(),
            pg_bin_named: false,
        };
        let base = PhysicalSource::BaseBackup(BaseBackup { path: "/backup".into(), layout: BackupLayout::Plain });
        assert_eq!(plan(base.clone(), RecoveryTarget::Consistent).uncached(), None);
        assert_eq!(plan(base.clone(), RecoveryTarget::Lsn("0/3000060".into())).uncached(), None);
        assert!(plan(base, RecoveryTarget::Latest).uncached().is_some_and(|why| why.contains("latest")));
        let restore = PhysicalSource::Restore("wal-g backup-fetch {datadir} LATEST".into());
        assert!(plan(restore, RecoveryTarget::Consistent)
            .uncached()
            .is_some_and(|why| why.contains("physical.restore")));
    }

    #[test]
    fn a_target_time_has_its_zone() {
        for good in [
            "2026-12-05 23:00:00+00",
            "2026-12-06 04:09:49.770984+00",
            "2026-12-05T23:00:00Z",
            "2026-12-05 23:00+01:00",
            "2026-12-05 23:00:00 UTC",
            "2026-12-05 23:00:00-0530",
        ] {
            assert!(is_zoned_time(good), "{good}");
        }
        for bad in [
            "2026-12-05 23:00:00",
            "yesterday",
            "2026-13-05 23:00:00+00",
            "2026-12-05 25:00:00+00",
            "2026-12-05 23:00:00+0",
            "05/12/2026 23:00+00",
            "2026-12-05 23:00:00.1234567+00",
        ] {
            assert!(!is_zoned_time(bad), "{bad}");
        }
    }

    #[test]
    fn an_lsn_is_two_hexadecimal_numbers() {
        assert!(is_lsn("0/3000060") && is_lsn("1A/FF"));
        assert!(!is_lsn("3000060") && !is_lsn("0/xyz") && !is_lsn("/1"));
    }
}
