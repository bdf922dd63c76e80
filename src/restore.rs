//! Restoring the dump: its format detected from content, the roles it names
//! created first, then `pg_restore -j` or `psql` streaming it in.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pg_query::protobuf::RoleSpecType;
use pg_query::NodeEnum;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::backend::Throwaway;
use crate::catalog;
use crate::db::quote_ident;
use crate::error::{Error, Result};
use crate::process::{ChildError, ChildInput};

/// How long a restore may take before it is stopped.
const RESTORE_DEADLINE: Duration = Duration::from_secs(12 * 3600);
/// How much of the dump is read to tell its format.
const SNIFF_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpFormat {
    /// `pg_dump -Fc`
    Custom,
    /// `pg_dump -Fd`
    Directory,
    /// `pg_dump -Ft`
    Tar,
    /// `pg_dump -Fp`
    Plain,
    /// `pg_dump -Fp | gzip`
    PlainGzip,
}

impl DumpFormat {
    /// Tells the format from the content, never from the name.
    pub fn detect(path: &Path) -> Result<DumpFormat> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::bad_input_because(format!("dump {shown} cannot be read: check the path (or pass --dump PATH)"), e)
        })?;
        if meta.is_dir() {
            return if path.join("toc.dat").is_file() {
                Ok(DumpFormat::Directory)
            } else {
                Err(Error::bad_input(format!(
                    "dump {shown} is a directory without toc.dat, so not a pg_dump directory-format (-Fd) dump"
                )))
            };
        }
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        File::open(path)
            .and_then(|f| f.take(SNIFF_BYTES as u64).read_to_end(&mut head))
            .map_err(|e| Error::bad_input_because(format!("dump {shown} cannot be read"), e))?;
        if head.is_empty() {
            return Err(Error::bad_input(format!("dump {shown} is empty (0 bytes): make it again with pg_dump")));
        }
        if head.starts_with(b"PGDMP") {
            return Ok(DumpFormat::Custom);
        }
        // POSIX tar: "ustar" at offset 257 of the first header.
        if head.len() >= 262 && &head[257..262] == b"ustar" {
            return Ok(DumpFormat::Tar);
        }
        if head.starts_with(&[0x1f, 0x8b]) {
            let mut text = Vec::with_capacity(SNIFF_BYTES);
            let _ = flate2::read::GzDecoder::new(
                File::open(path).map_err(|e| Error::bad_input_because(format!("dump {shown} cannot be read"), e))?,
            )
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut text);
            return if looks_like_sql(&text) {
                Ok(DumpFormat::PlainGzip)
            } else {
                Err(Error::bad_input(format!(
                    "dump {shown} is gzip-compressed but does not hold a plain SQL dump (or is truncated): \
                     rehearse reads gzip only around `pg_dump -Fp`; use pg_dump -Fc for compressed dumps"
                )))
            };
        }
        if looks_like_sql(&head) {
            return Ok(DumpFormat::Plain);
        }
        let preview: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Err(Error::bad_input(format!(
            "dump {shown} is not pg_dump output (it starts with bytes {}): expected custom (-Fc), directory (-Fd), \
             tar (-Ft), plain SQL (-Fp) or gzip-compressed plain SQL",
            preview.join(" ")
        )))
    }

    /// Whether `pg_restore` reads it (as opposed to psql).
    fn is_archive(self) -> bool {
        matches!(self, DumpFormat::Custom | DumpFormat::Directory | DumpFormat::Tar)
    }

    /// Opens a plain dump as SQL text, decompressing if needed.
    fn open_text(self, path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
        let file = File::open(path)?;
        Ok(match self {
            DumpFormat::PlainGzip => Box::new(flate2::read::GzDecoder::new(file)),
            _ => Box::new(file),
        })
    }
}

/// Text with no NUL byte, valid UTF-8 (but for a cut last character), with
/// something SQL-like in it.
fn looks_like_sql(head: &[u8]) -> bool {
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if head.len() - e.valid_up_to() < 4 && e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return false,
    };
    valid.lines().any(|l| {
        let l = l.trim_start().to_ascii_uppercase();
        ["--", "SET ", "CREATE ", "SELECT ", "BEGIN", "COPY ", "INSERT ", "ALTER "].iter().any(|k| l.starts_with(k))
    })
}

/// What the restore stage did.
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    pub duration: Duration,
    pub roles_created: Vec<String>,
    pub jobs: u32,
}

/// Restores `dump` into the throwaway database. A dump that pg_restore or
/// psql rejects is bad input, reported with the tool's own message.
pub async fn restore(
    server: &mut Throwaway,
    admin: &Client,
    dump: &Path,
    format: DumpFormat,
    jobs: u32,
    cancel: &CancellationToken,
) -> Result<RestoreOutcome> {
    let started = Instant::now();
    let dbname = server.conn().dbname.clone();
    let client = |tool: &str| server.client_command(tool, &dbname, "rehearse-restore");
    // The path the client tools see: inside the container for docker.
    let seen = server.client_path(dump);

    let roles = match format.is_archive() {
        true => {
            let out = client("pg_restore")
                .args(["--schema-only", "-f", "-"])
                .arg(&seen)
                .keep_all_stdout()
                .deadline(Duration::from_secs(600))
                .run(cancel)
                .await
                .map_err(|e| rejected(dump, &server.client_version(), e))?;
            roles_in_script(out.stdout.as_bytes())
                .map_err(|e| Error::bad_input_because(format!("cannot read the schema of {}", dump.display()), e))?
        }
        false => {
            let path = dump.to_path_buf();
            tokio::task::spawn_blocking(move || {
                format.open_text(&path).and_then(|r| roles_in_script(BufReader::new(r)))
            })
            .await
            .map_err(|e| Error::environment_because("the role scan stopped unexpectedly", e))?
            .map_err(|e| Error::bad_input_because(format!("cannot read dump {}", dump.display()), e))?
        }
    };
    let existing: BTreeSet<String> = catalog::role_names(admin)
        .await
        .map_err(|e| Error::environment_because("cannot list roles on the throwaway server", e))?
        .into_iter()
        .collect();
    let missing: Vec<String> = roles.difference(&existing).cloned().collect();
    let mut roles_created = Vec::new();
    let mut without_owners = false;
    if !missing.is_empty() && !server.may_create_roles() {
        // Roles are server-wide: on a shared server (url backend) rehearse creates none.
        if !format.is_archive() {
            return Err(Error::environment(format!(
                "dump {} (plain SQL) names roles this server does not have ({}), and the url backend creates no \
                 roles on a shared server: create them first (CREATE ROLE name NOLOGIN), or use a custom-format \
                 dump (pg_dump -Fc), which rehearse then restores without owners and grants",
                dump.display(),
                missing.join(", ")
            )));
        }
        without_owners = true;
        server.note_limitations([format!(
            "the dump names roles this server does not have ({}): restored without owners and grants \
             (--no-owner --no-privileges), since the url backend creates no roles on a shared server",
            missing.join(", ")
        )]);
    }
    for role in missing.iter().filter(|_| !without_owners) {
        admin
            .batch_execute(&format!("CREATE ROLE {} NOLOGIN", quote_ident(role)))
            .await
            .map_err(|e| Error::environment_because(format!("cannot create role {role} named by the dump"), e))?;
        roles_created.push(role.clone());
    }

    let client = |tool: &str| server.client_command(tool, &dbname, "rehearse-restore");
    let jobs = if matches!(format, DumpFormat::Custom | DumpFormat::Directory) { jobs.max(1) } else { 1 };
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
            _ => psql.input(ChildInput::Reader(
                format
                    .open_text(dump)
                    .map_err(|e| Error::bad_input_because(format!("cannot read dump {}", dump.display()), e))?,
            )),
        }
    };
    cmd.deadline(RESTORE_DEADLINE).run(cancel).await.map_err(|e| rejected(dump, &server.client_version(), e))?;
    Ok(RestoreOutcome { duration: started.elapsed(), roles_created, jobs })
}

fn rejected(dump: &Path, client_version: &str, e: ChildError) -> Error {
    match e {
        ChildError::Cancelled { .. } => Error::Interrupted,
        ChildError::Failed { label, stderr, .. } => {
            let advice = if stderr.contains("unsupported version") {
                format!(
                    "the dump was made by a newer pg_dump than this pg_restore {client_version}: rehearse it with the \
                     PostgreSQL version production runs (--pg-bin DIR, or the docker backend with its image)"
                )
            } else {
                "fix or re-make the dump; rehearse restores it exactly, owners and grants included".to_string()
            };
            Error::bad_input(format!(
                "{label} could not restore dump {}:\n{}\n  ({advice})",
                dump.display(),
                stderr.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        }
        other => Error::environment_because(format!("restoring dump {} failed", dump.display()), other),
    }
}

/// Roles a pg_dump script names as owners or grantees. Reads line by line,
/// skipping COPY data, and parses each candidate line (pg_dump writes these
/// statements on one line each) with Postgres's own parser.
pub fn roles_in_script(reader: impl BufRead) -> std::io::Result<BTreeSet<String>> {
    let mut roles = BTreeSet::new();
    let mut in_copy = false;
    for line in reader.split(b'\n') {
        let line = line?;
        if in_copy {
            in_copy = line.as_slice() != b"\\.";
            continue;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        if text.starts_with("COPY ") && text.trim_end().ends_with("FROM stdin;") {
            in_copy = true;
            continue;
        }
        let candidate = (text.starts_with("ALTER ") && text.contains(" OWNER TO "))
            || text.starts_with("GRANT ")
            || text.starts_with("REVOKE ")
            || text.starts_with("ALTER DEFAULT PRIVILEGES ")
            || (text.starts_with("CREATE SCHEMA ") && text.contains(" AUTHORIZATION "));
        if candidate {
            roles.extend(roles_in_statement(text));
        }
    }
    Ok(roles)
}

fn roles_in_statement(sql: &str) -> Vec<String> {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return Vec::new();
    };
    let mut specs: Vec<pg_query::protobuf::RoleSpec> = Vec::new();
    let nodes = |list: &Vec<pg_query::protobuf::Node>| -> Vec<NodeEnum> {
        list.iter().filter_map(|n| n.node.clone()).collect()
    };
    for raw in &parsed.protobuf.stmts {
        let Some(stmt) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        let mut grants = Vec::new();
        match stmt {
            NodeEnum::AlterTableStmt(s) => {
                for cmd in nodes(&s.cmds) {
                    if let NodeEnum::AlterTableCmd(c) = cmd {
                        specs.extend(c.newowner.clone());
                    }
                }
            }
            NodeEnum::AlterOwnerStmt(s) => specs.extend(s.newowner.clone()),
            NodeEnum::CreateSchemaStmt(s) => specs.extend(s.authrole.clone()),
            NodeEnum::GrantStmt(s) => grants.push(s.clone()),
            NodeEnum::AlterDefaultPrivilegesStmt(s) => {
                grants.extend(s.action.clone());
                for opt in nodes(&s.options) {
                    if let NodeEnum::DefElem(d) = opt {
                        if let Some(NodeEnum::List(l)) = d.arg.as_ref().and_then(|a| a.node.clone()) {
                            for item in nodes(&l.items) {
                                if let NodeEnum::RoleSpec(r) = item {
                                    specs.push(r);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        for g in grants {
            for grantee in nodes(&g.grantees) {
                if let NodeEnum::RoleSpec(r) = grantee {
                    specs.push(r);
                }
            }
        }
    }
    specs
        .into_iter()
        .filter(|r| r.roletype == RoleSpecType::RolespecCstring as i32 && !r.rolename.is_empty())
        .map(|r| r.rolename)
        .collect()
}

/// A dump's identity for the report: size and sha256 of its bytes (for a
/// directory dump, of its files in name order).
pub fn fingerprint(path: &Path) -> std::io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    let mut files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    let mut hasher = Sha256::new();
    let mut bytes = 0;
    for file in files {
        bytes += std::io::copy(&mut File::open(file)?, &mut hasher)?;
    }
    Ok((bytes, format!("{:x}", hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_owner_and_grant_lines_not_copy_data() {
        let script = "\
ALTER TABLE public.users OWNER TO app;
GRANT SELECT ON TABLE public.users TO readonly;
GRANT ALL ON SCHEMA public TO \"Mixed Case\";
REVOKE ALL ON TABLE public.users FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES TO reporter;
COPY public.notes (id, body) FROM stdin;
1\tALTER TABLE x OWNER TO intruder;
\\.
ALTER FUNCTION public.f() OWNER TO fn_owner;
";
        let roles = roles_in_script(script.as_bytes()).unwrap();
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        assert_eq!(roles, vec!["Mixed Case", "app", "fn_owner", "readonly", "reporter"]);
    }

    #[test]
    fn detects_formats_from_content() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        assert_eq!(DumpFormat::detect(&write("a.sql.gz", b"PGDMP\x01\x0e")).unwrap(), DumpFormat::Custom);
        assert_eq!(
            DumpFormat::detect(&write("b.dump", b"--\n-- PostgreSQL database dump\n")).unwrap(),
            DumpFormat::Plain
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"SET statement_timeout = 0;\n").unwrap();
        assert_eq!(DumpFormat::detect(&write("c", &gz.finish().unwrap())).unwrap(), DumpFormat::PlainGzip);
        let err = DumpFormat::detect(&write("d", &[0x00, 0x9f, 0x12, 0xff])).unwrap_err();
        assert!(err.to_string().contains("starts with bytes 00 9f 12 ff"), "{err}");
        let err = DumpFormat::detect(&write("e", b"")).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        assert!(DumpFormat::detect(&dir.path().join("missing")).is_err());
    }
}
