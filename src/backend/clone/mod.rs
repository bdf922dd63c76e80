//! The clone backend (`postgres.backend: clone`): production's data is
//! already in a clone another engine makes, however big it is (Database
//! Lab, a Neon branch, CloudNativePG from a VolumeSnapshot, an RDS snapshot
//! restore). `postgres.clone.create` makes it and prints its URL; rehearse
//! rehearses in that database as the url backend does on a server it does
//! not own (`UrlDatabase::given`: no restore, no restart, per-database
//! settings only, its copies dropped at the end, the database itself never
//! dropped); `postgres.clone.destroy` removes the clone on every path:
//! success, failure, a signal (cleanup runs once the stages stop), a panic
//! (`Drop`), and SIGKILL (the marker file, for `rehearse cleanup`).
//!
//! The marker, `$TMPDIR/rehearse-clone-<name>.json`, is written before
//! `create` runs and holds what `destroy` needs, the URL with its password
//! included: it is created 0600, and removed once `destroy` succeeded.

mod lease;
mod marker;

pub use lease::*;
pub use marker::*;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::copy::Template;
use super::local::PgBin;
use super::url::{self, UrlDatabase};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::db::ConnInfo;
use crate::sys::process::{ChildCommand, ChildError};
use crate::sys::text::last_lines;

/// The default `postgres.clone.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Marker files are `rehearse-clone-*.json` in the temp dir.
const MARKER_PREFIX: &str = "rehearse-clone-";
/// How messages name the clone's server.
const SHOWN: &str = "the clone postgres.clone.create made";
/// The name rehearse gives `create` to name the clone after (and `destroy`).
const NAME_VAR: &str = "REHEARSE_CLONE_NAME";
const URL_VAR: &str = "REHEARSE_CLONE_URL";
const ID_VAR: &str = "REHEARSE_CLONE_ID";

/// `postgres.clone`, resolved.
#[derive(Debug, Clone)]
pub struct ClonePlan {
    pub create: String,
    pub destroy: String,
    /// Bounds `create`, and `destroy`.
    pub timeout: Duration,
    /// The scenario's folder: both commands run there.
    pub dir: PathBuf,
    /// The clone's volumes load lazily from a snapshot (`postgres.clone.lazy_load`).
    pub lazy_load: bool,
    /// Local client tools (`pg_dump` for `report.measure_backup`), when found.
    pub bin: Option<PgBin>,
    /// `postgres.clone.password_command`: the password for the URL `create` printed.
    pub password_command: Option<String>,
}

impl ClonePlan {
    /// What the report and the progress show of `create`: its program.
    pub fn program(&self) -> String {
        program(&self.create)
    }
}

/// A command's program ("dblab", "./make-clone.sh"): never its arguments
/// nor a leading `VAR=value`, which may hold secrets.
fn program(command: &str) -> String {
    command.split_whitespace().find(|w| !w.contains('=')).unwrap_or("sh").to_string()
}

/// What `create` printed on stdout: `id=...` on any line, the URL on the
/// first other one. An id may come first, printed before a long wait, so a
/// `create` stopped during that wait still names what `destroy` removes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Printed {
    url: Option<String>,
    id: Option<String>,
}

fn read_printed(stdout: &str) -> Printed {
    let mut printed = Printed::default();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.strip_prefix("id=") {
            Some(id) if !id.trim().is_empty() => printed.id = Some(id.trim().to_string()),
            Some(_) => {}
            // Only the first: a chatty first line is checked as a URL and refused, not skipped.
            None if printed.url.is_none() => printed.url = Some(line.to_string()),
            None => {}
        }
    }
    printed
}

/// The clone this run rehearses on: the database, and the clone to destroy.
#[derive(Debug)]
pub struct CloneDatabase {
    database: UrlDatabase,
    lease: Lease,
    program: String,
    lazy_load: bool,
}

impl CloneDatabase {
    /// Runs `create` (the provision stage), then connects to the database it printed.
    pub async fn create(plan: &ClonePlan, cancel: &CancellationToken) -> Result<CloneDatabase> {
        let mut lease = Lease::start(plan)?;
        let ran = ChildCommand::new("/bin/sh")
            .arg("-c")
            .arg(&plan.create)
            .label("postgres.clone.create")
            .cwd(&plan.dir)
            .env(NAME_VAR, &lease.marker.name)
            .keep_all_stdout()
            .deadline(plan.timeout)
            .run(cancel)
            .await;
        let (stdout, stderr, failure) = match ran {
            Ok(out) => (out.stdout, out.stderr, None),
            Err(e) => (printed_before(&e).to_string(), String::new(), Some(e)),
        };
        let printed = read_printed(&stdout);
        lease.record(&printed)?;
        let connected = match failure {
            Some(e) => Err(create_failed(plan, &lease.marker, e)),
            None => connect(plan, &lease.marker, &printed, &stderr, cancel).await,
        };
        match connected {
            Ok(database) => Ok(CloneDatabase { database, lease, program: plan.program(), lazy_load: plan.lazy_load }),
            Err(e) => Err(lease.undo(e).await),
        }
    }

    pub fn database(&self) -> &UrlDatabase {
        &self.database
    }

    pub fn conn(&self) -> &ConnInfo {
        self.database.conn()
    }

    /// The report's account of where the data came from.
    pub fn source(&self) -> crate::report::CloneSource {
        crate::report::CloneSource {
            create: self.program.clone(),
            id: self.lease.marker.id.clone(),
            lazy_load: self.lazy_load,
        }
    }

    /// What the report must say this backend did not control.
    pub fn limitations(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "the data is a clone made by postgres.clone.create (`{}`), not a restore: the clone's server \
             (its configuration, hardware, caches and any other activity on it) is the clone engine's; rehearse \
             never restarts it and changes only per-database settings there",
            self.program
        )];
        if self.lazy_load {
            lines.push(
                "postgres.clone.lazy_load: the clone's volumes were restored from a snapshot and load their blocks \
                 on first read, so the first read of each table and index was slow: times are pessimistic unless \
                 the clone was pre-warmed (read every table once, or pg_prewarm, before the rehearsal)"
                    .into(),
            );
        }
        lines
    }

    /// A second database on the clone's server (race, drift): recorded in
    /// the marker first, so whatever happens next it is dropped before `destroy`.
    pub async fn create_copy(&mut self, name: &str, template: Template) -> Result<ConnInfo> {
        self.lease.marker.copies.push(name.to_string());
        self.lease.save()?;
        self.database
            .create_copy(name, template)
            .await
            .map_err(|e| e.context("on the clone's server (postgres.backend: clone)"))
    }

    /// What `destroy` (this type's) does, for the progress.
    pub fn cleanup_detail(&self) -> String {
        let copies = match self.database.copies().len() {
            0 => String::new(),
            n => format!("dropping rehearse's {n} database(s) on the clone, then "),
        };
        format!("{copies}postgres.clone.destroy (`{}`)", program(&self.lease.marker.destroy))
    }

    /// Drops the copies, then runs `destroy`; both are tried, the first error returned.
    pub async fn destroy(mut self) -> Result<()> {
        let copies = self.database.drop_database().await;
        if copies.is_ok() {
            self.lease.marker.copies.clear();
        }
        let destroyed = self.lease.destroy().await;
        copies.and(destroyed)
    }

    /// Leaves the clone (`--keep`); `rehearse cleanup` destroys it once this run has ended.
    pub fn keep(mut self) -> String {
        self.lease.done = true;
        format!(
            "{}\n(the password is in {}, readable by you only). Remove the clone with `rehearse cleanup` once \
             this run has ended (it runs postgres.clone.destroy with {ID_VAR}={}), or with the engine's own tools.",
            self.database.keep(),
            self.lease.path.display(),
            self.lease.marker.id()
        )
    }
}

/// What a stopped `create` printed before it stopped.
fn printed_before(e: &ChildError) -> &str {
    match e {
        ChildError::Failed { stdout, .. }
        | ChildError::Deadline { stdout, .. }
        | ChildError::Cancelled { stdout, .. }
        | ChildError::Killed { stdout, .. } => stdout,
        _ => "",
    }
}

/// Why `create` did not give a clone, as the user fixes it (exit 4), or an interruption.
fn create_failed(plan: &ClonePlan, marker: &Marker, e: ChildError) -> Error {
    let what = format!("postgres.clone.create (`{}`)", plan.program());
    let tail = |stderr: &str| stderr_tail(marker, stderr);
    let named = match marker.made() {
        true => "postgres.clone.destroy is run for what it printed".to_string(),
        false => format!(
            "if it had begun making a clone, remove it with the engine's own tools: rehearse named it {} ({NAME_VAR})",
            marker.name
        ),
    };
    match e {
        ChildError::Cancelled { .. } => Error::Interrupted,
        ChildError::Failed { status, stderr, .. } => ErrorKind::ServerStartFailed.error(format!(
            "{what} failed ({status}) in {}{}\nFix the command (run it there by hand to see why); it must print \
             the clone's connection URL on stdout",
            plan.dir.display(),
            tail(&stderr)
        )),
        ChildError::Deadline { deadline, stderr, .. } => ErrorKind::ServerStartFailed.error(format!(
            "{what} did not finish within {} (postgres.clone.timeout) and was stopped{}\nRaise \
             postgres.clone.timeout, or see why the engine is slow; {named}",
            humantime::format_duration(deadline),
            tail(&stderr)
        )),
        other => ErrorKind::ServerStartFailed
            .because(format!("{what} could not run (with /bin/sh -c in {})", plan.dir.display()), other),
    }
}

/// "; the end of its stderr: ...", redacted, for a message about `create`.
fn stderr_tail(marker: &Marker, stderr: &str) -> String {
    match last_lines(stderr, 20) {
        t if t.is_empty() => " (it wrote nothing on stderr)".to_string(),
        t => format!("; the end of its stderr:\n{}", marker.redact(&t)),
    }
}

/// The clone's database, from the URL `create` printed.
async fn connect(
    plan: &ClonePlan,
    marker: &Marker,
    printed: &Printed,
    stderr: &str,
    cancel: &CancellationToken,
) -> Result<UrlDatabase> {
    let what = format!("postgres.clone.create (`{}`)", plan.program());
    let Some(url) = &printed.url else {
        return Err(ErrorKind::ServerStartFailed.error(format!(
            "{what} printed no connection URL on stdout{}\nIt must print the clone's URL \
             (postgres://USER:PASSWORD@HOST:PORT/DATABASE) on a line of its stdout, and may print id=<id> on \
             another; everything else goes to stderr (>&2)",
            stderr_tail(marker, stderr)
        )));
    };
    let conn = url::parse_config(url).map_err(|e| match e {
        url::UrlError::Tls(refused) => {
            ErrorKind::TlsRequested.error(refused.explain(&format!("the URL {what} printed")))
        }
        url::UrlError::TlsSetup(e) => e.explain(&format!("the URL {what} printed")),
        url::UrlError::Syntax(e) => ErrorKind::ServerStartFailed.because(
            format!(
                "{what} printed a line on stdout that is not a PostgreSQL connection URL (the first one that is not \
                 id=...): print only the clone's URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE) and id=<id> on \
                 stdout, and send everything else to stderr (>&2)"
            ),
            marker.redact(&e.to_string()),
        ),
    })?;
    let conn = url::with_password_command(conn, plan.password_command.as_deref(), "postgres.clone.password_command");
    UrlDatabase::given(conn, plan.bin.clone(), SHOWN, cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_any_id_line_and_the_url_the_first_other_line() {
        let p = read_printed("postgres://u:p@h:5/db\nid=clone_1\n");
        assert_eq!((p.url.as_deref(), p.id.as_deref()), (Some("postgres://u:p@h:5/db"), Some("clone_1")));
        let chatty = read_printed("Creating clone...\npostgres://u:p@h/db\n");
        assert_eq!(chatty.url.as_deref(), Some("Creating clone..."), "the first line, checked as a URL later");
        assert_eq!(read_printed("\n  \n"), Printed::default());
        assert_eq!(read_printed("id=only\n").url, None);
        let id_first = read_printed("id=db-1\npostgres://u:p@h/db\n");
        assert_eq!((id_first.url.as_deref(), id_first.id.as_deref()), (Some("postgres://u:p@h/db"), Some("db-1")));
    }

    #[test]
    fn the_program_never_shows_arguments_or_assignments() {
        assert_eq!(program("PGPASSWORD=s3cret dblab clone create --password s3cret"), "dblab");
        assert_eq!(program("  ./make-clone.sh x"), "./make-clone.sh");
    }

    #[test]
    fn passwords_are_redacted_as_parsed_and_as_written() {
        let marker = Marker {
            pid: 1,
            host: String::new(),
            name: "rehearse-x".into(),
            dir: PathBuf::new(),
            destroy: String::new(),
            timeout_ms: 0,
            url: "postgres://app:p%40ss@db:5432/app".into(),
            id: None,
            copies: Vec::new(),
            password_command: None,
        };
        let text = marker.redact("psql postgres://app:p%40ss@db/app: password p@ss rejected");
        assert!(!text.contains("p%40ss") && !text.contains("p@ss"), "{text}");
        assert_eq!(marker.id(), "rehearse-x", "the name stands for an id create did not print");
    }
}
