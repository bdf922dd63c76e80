//! Restoring the dump: the roles it names created first (`roles.rs`), then
//! `pg_restore -j` or `psql` streaming it in; the room it needs is checked
//! before the run starts (`space.rs`).

pub mod physical;
pub mod roles;
pub mod space;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::backend::Throwaway;
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::pg::DumpFormat;
use crate::sys::db::quote_ident;
use crate::sys::process::{ChildError, ChildInput};
use crate::sys::text::last_lines;
use roles::roles_in_script;
pub use space::Room;

/// How long a restore may take before it is stopped.
const RESTORE_DEADLINE: Duration = Duration::from_secs(12 * 3600);

/// What to restore, and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct Dump<'a> {
    pub path: &'a Path,
    pub format: DumpFormat,
    /// `pg_restore --jobs` (custom and directory dumps).
    pub jobs: u32,
    /// The room the data has, when rehearse knows (local and docker backends).
    pub room: Option<&'a Room>,
}

/// What the restore stage did.
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    pub duration: Duration,
    pub roles_created: Vec<String>,
    pub jobs: u32,
}

/// Restores the dump into the throwaway database. A dump that pg_restore or
/// psql rejects is bad input, reported with the tool's own message; a disk
/// that fills up is the environment's.
pub async fn restore(
    server: &mut Throwaway,
    admin: &Client,
    dump: Dump<'_>,
    cancel: &CancellationToken,
) -> Result<RestoreOutcome> {
    let started = Instant::now();
    let roles = roles_named(server, dump, cancel).await?;
    let (roles_created, without_owners) = create_missing_roles(server, admin, dump, roles).await?;
    let dbname = server.conn().dbname.clone();
    let client = |tool: &str| server.client_command(tool, &dbname, "rehearse-restore");
    // The path the client tools see: inside the container for docker.
    let seen = server.client_path(dump.path);
    let format = dump.format;
    let jobs = if matches!(format, DumpFormat::Custom | DumpFormat::Directory) { dump.jobs.max(1) } else { 1 };
    let cmd = if format.is_archive() {
        let owners: &[&str] = if without_owners { &["--no-owner", "--no-privileges"] } else { &[] };
        client("pg_restore")
            .args(["--exit-on-error", "--no-password", "-d", dbname.as_str()])
            .args(owners)
            .arg(format!("--jobs={jobs}"))
            .arg(&seen)
    } else {
        let psql = client("psql").args(["-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1"]);
        match format {
            DumpFormat::Plain => psql.arg("-f").arg(&seen),
            _ => psql.input(ChildInput::Reader(format.open_text(dump.path).map_err(|e| unreadable(dump.path, e))?)),
        }
    };
    cmd.deadline(RESTORE_DEADLINE).run(cancel).await.map_err(|e| rejected(dump, server, e))?;
    Ok(RestoreOutcome { duration: started.elapsed(), roles_created, jobs })
}

fn unreadable(dump: &Path, e: std::io::Error) -> Error {
    ErrorKind::DumpUnreadable.because(format!("cannot read dump {}", dump.display()), e)
}

/// The roles the dump names as owners and grantees.
async fn roles_named(server: &Throwaway, dump: Dump<'_>, cancel: &CancellationToken) -> Result<BTreeSet<String>> {
    if dump.format.is_archive() {
        let dbname = &server.conn().dbname;
        let out = server
            .client_command("pg_restore", dbname, "rehearse-restore")
            .args(["--schema-only", "-f", "-"])
            .arg(server.client_path(dump.path))
            .keep_all_stdout()
            .deadline(Duration::from_secs(600))
            .run(cancel)
            .await
            .map_err(|e| rejected(dump, server, e))?;
        return roles_in_script(out.stdout.as_bytes()).map_err(|e| {
            ErrorKind::DumpUnreadable.because(format!("cannot read the schema of {}", dump.path.display()), e)
        });
    }
    let (path, format) = (dump.path.to_path_buf(), dump.format);
    tokio::task::spawn_blocking(move || format.open_text(&path).and_then(|r| roles_in_script(BufReader::new(r))))
        .await
        .map_err(|e| Error::environment_because("the role scan stopped unexpectedly", e))?
        .map_err(|e| unreadable(dump.path, e))
}

/// Creates the roles the server lacks (NOLOGIN); returns them, and whether
/// the restore must go without owners and grants instead (a shared server,
/// where rehearse creates no roles).
async fn create_missing_roles(
    server: &mut Throwaway,
    admin: &Client,
    dump: Dump<'_>,
    roles: BTreeSet<String>,
) -> Result<(Vec<String>, bool)> {
    let existing: BTreeSet<String> = catalog::role_names(admin)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because("cannot list roles on the throwaway server", e))?
        .into_iter()
        .collect();
    let missing: Vec<String> = roles.difference(&existing).cloned().collect();
    if !missing.is_empty() && !server.may_create_roles() {
        // Roles are server-wide: on a shared server (url backend) rehearse creates none.
        if !dump.format.is_archive() {
            return Err(Error::environment(format!(
                "dump {} (plain SQL) names roles this server does not have ({}), and the url backend creates no \
                 roles on a shared server: create them first (CREATE ROLE name NOLOGIN), or use a custom-format \
                 dump (pg_dump -Fc), which rehearse then restores without owners and grants",
                dump.path.display(),
                missing.join(", ")
            )));
        }
        server.note_limitations([format!(
            "the dump names roles this server does not have ({}): restored without owners and grants \
             (--no-owner --no-privileges), since the url backend creates no roles on a shared server",
            missing.join(", ")
        )]);
        return Ok((Vec::new(), true));
    }
    for role in &missing {
        admin
            .batch_execute(&format!("CREATE ROLE {} NOLOGIN", quote_ident(role)))
            .await
            .map_err(|e| Error::environment_because(format!("cannot create role {role} named by the dump"), e))?;
    }
    Ok((missing, false))
}

/// Why pg_restore or psql failed, as the user can act on it: the dump's
/// fault (exit 3), or the server's (exit 4: no room, no extension).
fn rejected(dump: Dump<'_>, server: &Throwaway, e: ChildError) -> Error {
    let shown = dump.path.display();
    let missing = e.stderr().and_then(missing_extension);
    match e {
        ChildError::Cancelled { .. } => Error::Interrupted,
        ChildError::Failed { .. } if is_out_of_room(&e) && dump.room.is_some() => {
            space::out_of_room(dump.room.expect("checked above"), e)
        }
        ChildError::Failed { .. } if is_out_of_room(&e) => ErrorKind::DiskFull.because(
            format!("the server ran out of disk space restoring dump {shown}: free space where its data lives"),
            e,
        ),
        ChildError::Failed { label, stderr, .. } if missing.is_some() => {
            let extension = missing.expect("checked above");
            ErrorKind::ExtensionMissing.error(format!(
                "dump {shown} needs the extension {extension}, which the server does not have installed; {label} \
                 said:\n{}\n  ({}. The dump is fine.)",
                last_lines(&stderr, 15),
                server.extension_remedy(&extension)
            ))
        }
        ChildError::Failed { label, stderr, .. } => {
            let (kind, advice) = if stderr.contains("unsupported version") {
                let advice = format!(
                    "the dump was made by a newer pg_dump than this pg_restore {}: rehearse it with the \
                     PostgreSQL version production runs (--pg-bin DIR, or the docker backend with its image)",
                    server.client_version()
                );
                (ErrorKind::DumpUnsupported, advice)
            } else {
                let advice = "fix or re-make the dump; rehearse restores it exactly, owners and grants included";
                (ErrorKind::DumpRejected, advice.to_string())
            };
            kind.error(format!("{label} could not restore dump {shown}:\n{}\n  ({advice})", last_lines(&stderr, 15)))
        }
        other => Error::environment_because(format!("restoring dump {shown} failed"), other),
    }
}

/// The extension the server lacks, from its refusal of `CREATE EXTENSION`
/// as pg_restore or psql passes it on: `extension "postgis" is not
/// available` from PostgreSQL 15 on, `could not open extension control file
/// ".../postgis.control": No such file or directory` before it (a docker
/// image of an older server). Either way the extension's files are not
/// installed where the server runs.
fn missing_extension(stderr: &str) -> Option<String> {
    let quoted = |line: &str, before: &str| Some(line.split(before).nth(1)?.split('"').next()?.to_string());
    stderr.lines().find_map(|line| {
        if line.contains("\" is not available") {
            return quoted(line, "extension \"");
        }
        let control = quoted(line, "could not open extension control file \"")?;
        let name = Path::new(&control).file_stem()?.to_string_lossy().into_owned();
        line.contains("No such file").then_some(name)
    })
}

/// The server's "could not extend file ...: No space left on device" (or
/// "wrote only 4096 of 8192 bytes ... HINT: Check free disk space.", as a
/// full tmpfs reports it; or its WAL write failing the same way), as
/// pg_restore or psql passes it on.
fn is_out_of_room(e: &ChildError) -> bool {
    e.stderr().is_some_and(|s| {
        s.contains("No space left on device")
            || s.contains("could not extend file")
            || s.contains("Check free disk space")
    })
}

/// A dump's identity for the report: size and sha256 of its bytes (for a
/// directory dump, of its files in name order). A dump of many GB takes
/// seconds to minutes to read, so a signal stops the reading (an error).
pub fn fingerprint(path: &Path, cancel: &CancellationToken) -> std::io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    let mut files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    let mut hasher = Sha256::new();
    let mut bytes = 0;
    let mut chunk = vec![0u8; 1 << 20];
    for file in files {
        let mut file = File::open(file)?;
        loop {
            if cancel.is_cancelled() {
                return Err(std::io::Error::other("the run was interrupted"));
            }
            match std::io::Read::read(&mut file, &mut chunk)? {
                0 => break,
                n => {
                    hasher.update(&chunk[..n]);
                    bytes += n as u64;
                }
            }
        }
    }
    Ok((bytes, format!("{:x}", hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::missing_extension;

    #[test]
    fn a_missing_extension_is_named_from_the_servers_refusal() {
        // psql and pg_restore passing on PostgreSQL 15's message.
        let pg15 = "psql:/tmp/dump.sql:25: ERROR:  extension \"postgis\" is not available\n\
                    DETAIL:  Could not open extension control file \"/usr/share/postgresql/15/extension/postgis.control\": No such file or directory.\n\
                    HINT:  The extension must first be installed on the system where PostgreSQL is running.";
        assert_eq!(missing_extension(pg15).as_deref(), Some("postgis"));
        // PostgreSQL 14 and older.
        let pg13 = "pg_restore: error: could not execute query: ERROR:  could not open extension control file \
                    \"/usr/share/postgresql/13/extension/timescaledb.control\": No such file or directory";
        assert_eq!(missing_extension(pg13).as_deref(), Some("timescaledb"));
        // A dump's own fault is not the server's.
        let broken = "psql:/tmp/dump.sql:40: ERROR:  relation \"public.orders\" does not exist";
        assert_eq!(missing_extension(broken), None);
    }
}
