//! Alembic projects: pending revisions and their upgrade order come from
//! Alembic itself, through a small Python helper (alembic_helper.py) run
//! with the user's interpreter; each revision is applied in a process of its
//! own, in-process to Alembic, with every statement traced (text, time, rows,
//! WAL and the locks its session holds right after it).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Applied, Migration, OfflineSql, Target};
use crate::error::{Error, Result};
use crate::observe::queries::kind_name;
use crate::plan::AlembicPlan;
use crate::process::{ChildCommand, ChildError};
use crate::report::{MigrationError, StatementLock, StatementReport};

const HELPER: &str = include_str!("alembic_helper.py");
const MARK: &str = "@@rehearse@@ ";
/// The application_name of Alembic's sessions, so observers can tell them.
const APP_NAME: &str = "rehearse-alembic";
/// How long one revision may run; budgets (max_runtime) are the real limit.
const REVISION_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// The interpreter behind `alembic` on PATH (its shebang), else `python3`.
pub fn default_python() -> PathBuf {
    let from_shebang = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|d| d.join("alembic")).find(|p| p.is_file()).and_then(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            let line = text.lines().next()?.strip_prefix("#!")?.trim().to_string();
            (!line.contains(' ')).then(|| PathBuf::from(line))
        })
    });
    from_shebang.unwrap_or_else(|| PathBuf::from("python3"))
}

/// Fails fast, before anything is provisioned, when the interpreter is
/// missing or cannot import Alembic and SQLAlchemy.
pub async fn check_python(python: &Path, cancel: &CancellationToken) -> Result<()> {
    let out = ChildCommand::new(python)
        .args(["-c", "import alembic, sqlalchemy; print(alembic.__version__)"])
        .deadline(Duration::from_secs(60))
        .run(cancel)
        .await;
    match out {
        Ok(_) => Ok(()),
        Err(ChildError::Spawn { source, .. }) => Err(Error::environment_because(
            format!(
                "Python interpreter {} for Alembic was not found: set migrations.python to your app's interpreter \
                 (e.g. .venv/bin/python), or put `alembic` on PATH",
                python.display()
            ),
            source,
        )),
        Err(ChildError::Cancelled { .. }) => Err(Error::Interrupted),
        Err(e) => Err(Error::environment(format!(
            "{} cannot import Alembic and SQLAlchemy ({}): install them in that environment \
             (`{} -m pip install alembic psycopg2-binary`) or set migrations.python to the interpreter that has them",
            python.display(),
            e.stderr().and_then(|s| s.lines().last()).unwrap_or("no output"),
            python.display()
        ))),
    }
}

pub struct AlembicProject {
    plan: AlembicPlan,
}

/// The helper's JSON lines, and how the process ended.
struct HelperRun {
    events: Vec<Value>,
    failure: Option<ChildError>,
}

impl HelperRun {
    fn find(&self, kind: &str) -> Option<&Value> {
        self.events.iter().find(|e| e["type"] == kind)
    }
}

impl AlembicProject {
    pub fn new(plan: AlembicPlan) -> AlembicProject {
        AlembicProject { plan }
    }

    async fn helper(&self, args: &[&str], target: &Target<'_>, deadline: Duration) -> HelperRun {
        let mut cmd = ChildCommand::new(&self.plan.python)
            .args(["-c", HELPER])
            .args(args)
            .arg("--config")
            .arg(&self.plan.config)
            .envs(self.plan.env.clone())
            .envs(target.tool_env(APP_NAME))
            .env("REHEARSE_ALEMBIC_URL", target.url(Some(&target.conn.password), APP_NAME))
            .env("PYTHONUNBUFFERED", "1")
            .cwd(&self.plan.dir)
            .deadline(deadline)
            .keep_all_stdout();
        cmd = cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        let (stdout, failure) = match cmd.run(target.cancel).await {
            Ok(out) => (out.stdout, None),
            Err(ChildError::Failed { label, status, stderr, stdout }) => {
                (stdout.clone(), Some(ChildError::Failed { label, status, stderr, stdout }))
            }
            Err(e) => (String::new(), Some(e)),
        };
        let events =
            stdout.lines().filter_map(|l| l.strip_prefix(MARK)).filter_map(|l| serde_json::from_str(l).ok()).collect();
        HelperRun { events, failure }
    }

    pub async fn pending(&self, target: &Target<'_>) -> Result<Vec<Migration>> {
        let dir = self.plan.dir.display();
        let run = self.helper(&["discover", "--target", &self.plan.target], target, Duration::from_secs(300)).await;
        if let Some(e) = run.find("unknown_revision") {
            return Err(Error::bad_input(format!(
                "the restored database is at Alembic revision {}, which the migration tree in {dir} does not contain \
                 (production is ahead of this code, or history was edited); its heads are {}: rehearse the code \
                 production runs, or a dump that matches this tree",
                e["revision"].as_str().unwrap_or("?"),
                e["heads"]
            )));
        }
        if let Some(e) = run.find("bad_target") {
            return Err(Error::bad_input(format!(
                "Alembic cannot upgrade to migrations.target {} from the database's revision(s) {}: {}; \
                 with several heads, set migrations.target to one revision, `<branch>@head`, or `heads`",
                self.plan.target,
                e["current"],
                target.redact(e["message"].as_str().unwrap_or(""))
            )));
        }
        if let Some(e) = run.find("missing") {
            return Err(Error::environment(format!(
                "{} cannot import Alembic: {}",
                self.plan.python.display(),
                e["message"].as_str().unwrap_or("")
            )));
        }
        let Some(found) = run.find("discovered") else {
            if let Some(ChildError::Cancelled { .. }) = run.failure {
                return Err(Error::Interrupted);
            }
            let why = run.failure.as_ref().map(|e| target.redact(&e.to_string())).unwrap_or_default();
            return Err(Error::bad_input(format!("Alembic could not list the revisions of {dir}: {why}")));
        };
        let mut pending: Vec<Migration> = found["pending"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Migration {
                id: r["revision"].as_str().unwrap_or("").to_string(),
                version: r["revision"].as_str().unwrap_or("").to_string(),
                description: r["message"].as_str().unwrap_or("").trim().to_string(),
                file: r["path"].as_str().map(PathBuf::from),
                parents: r["down"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect(),
                offline_sql: None,
            })
            .collect();
        self.attach_offline_sql(&mut pending, target).await;
        Ok(pending)
    }

    /// What `alembic upgrade <parent>:<rev> --sql` prints for each revision,
    /// for reviewers; merges and env.py files without offline support say why.
    async fn attach_offline_sql(&self, pending: &mut [Migration], target: &Target<'_>) {
        let ranges: Vec<Value> = pending
            .iter()
            .filter(|m| m.parents.len() <= 1)
            .map(|m| {
                let range = match m.parents.first() {
                    Some(p) => format!("{p}:{}", m.id),
                    None => m.id.clone(),
                };
                serde_json::json!({"revision": m.id, "range": range})
            })
            .collect();
        let run = self
            .helper(&["offline", "--revisions", &Value::Array(ranges).to_string()], target, Duration::from_secs(300))
            .await;
        for m in pending.iter_mut() {
            if m.parents.len() > 1 {
                m.offline_sql =
                    Some(OfflineSql::Unavailable("a merge revision has no single `from` revision for --sql".into()));
                continue;
            }
            let event = run.events.iter().find(|e| e["type"] == "offline" && e["revision"] == m.id.as_str());
            m.offline_sql = Some(match event {
                Some(e) if e["sql"].is_string() => OfflineSql::Sql(target.redact(e["sql"].as_str().unwrap_or(""))),
                Some(e) => OfflineSql::Unavailable(target.redact(e["error"].as_str().unwrap_or("offline mode failed"))),
                None => OfflineSql::Unavailable("the offline run did not report this revision".into()),
            });
        }
    }

    pub async fn apply(&self, migration: &Migration, target: &Target<'_>) -> Applied {
        let spawned = SystemTime::now();
        let run = self.helper(&["upgrade", "--revision", &migration.id], target, REVISION_DEADLINE).await;
        let mut applied = Applied::default();
        let at = |e: &Value| e["at"].as_f64().map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s));
        let ready = run.find("ready").and_then(at);
        let end = run.find("done").or_else(|| run.find("failed")).and_then(at);
        applied.startup = ready.and_then(|r| r.duration_since(spawned).ok());
        applied.duration = match (ready, end) {
            (Some(r), Some(e)) => e.duration_since(r).unwrap_or_default(),
            _ => spawned.elapsed().unwrap_or_default(),
        };
        let mut wal_before: Option<u64> = None;
        for e in run.events.iter().filter(|e| e["type"] == "statement") {
            let sql = e["sql"].as_str().unwrap_or("");
            let wal = e["wal"].as_u64();
            let wal_bytes = match (wal_before, wal) {
                (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                _ => None,
            };
            wal_before = wal.or(wal_before);
            if is_bookkeeping(sql) {
                continue;
            }
            let ms = e["ms"].as_f64().unwrap_or(0.0);
            let started = at(e).map(|t| t - Duration::from_secs_f64(ms / 1000.0));
            applied.statements.push(StatementReport {
                query: target.redact(sql.trim()),
                line: None,
                duration_ms: ms.round() as u64,
                rows: e["rows"].as_i64().unwrap_or(0).max(0) as u64,
                wal_bytes,
                locks: e["locks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| StatementLock {
                        oid: l[0].as_i64().unwrap_or(0),
                        relation: l[1].as_str().unwrap_or("").to_string(),
                        kind: kind_name(l[2].as_str().unwrap_or("")),
                        mode: l[3].as_str().unwrap_or("").to_string(),
                        held_ms: 0,
                    })
                    .collect(),
                lock_timeout_ms: e["lock_timeout"].as_u64(),
                started_ms: match (started, ready) {
                    (Some(s), Some(r)) => s.duration_since(r).map(|d| d.as_millis() as u64).unwrap_or(0),
                    _ => 0,
                },
            });
        }
        if let Some(f) = run.find("failed") {
            let message = f["message"].as_str().unwrap_or("the revision raised an exception");
            let traceback = f["traceback"].as_str().unwrap_or("");
            applied.error = Some(MigrationError {
                message: target.redact(&format!("{message}\n\nTraceback (its last lines):\n{}", traceback.trim_end())),
                statement: f["statement"].as_str().map(|s| target.redact(s)),
                file: migration.file.as_ref().map(|p| p.display().to_string()),
                line: None,
                sqlstate: f["sqlstate"].as_str().map(String::from),
            });
        } else if let Some(failure) = run.failure {
            match failure {
                ChildError::Cancelled { .. } => {
                    applied.interrupted = true;
                    applied.error = Some(MigrationError::new("interrupted by a signal while the revision ran"));
                }
                other => {
                    let text = match &other {
                        ChildError::Failed { stderr, .. } => stderr
                            .lines()
                            .rev()
                            .take(25)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect::<Vec<_>>()
                            .join("\n"),
                        e => e.to_string(),
                    };
                    applied.error = Some(MigrationError::new(
                        target.redact(&format!("alembic upgrade {} failed:\n{text}", migration.id)),
                    ));
                }
            }
        } else if run.find("done").is_none() {
            applied.error =
                Some(MigrationError::new("the Alembic helper ended without reporting the revision's outcome"));
        }
        applied
    }
}

/// Statements SQLAlchemy and Alembic send for themselves: dialect probes on
/// connect and the alembic_version bookkeeping. Their locks still count.
fn is_bookkeeping(sql: &str) -> bool {
    let s = sql.trim_start().to_ascii_lowercase();
    s.contains("alembic_version")
        || s.starts_with("select pg_catalog.version()")
        || s.starts_with("select current_schema()")
        || s.starts_with("show standard_conforming_strings")
        || s.starts_with("select pg_catalog.pg_class.relname")
        || s.starts_with("show transaction isolation level")
        || s.starts_with("select current_setting(")
}
