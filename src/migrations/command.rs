//! Any migration tool, by command line (Flyway, sqlx, golang-migrate,
//! Django, a custom runner): `list` prints the pending ids one per line (or
//! the scenario gives `revisions:`), and `apply` is run once per id with
//! `{rev}` and `{url}` replaced. Both run through `sh -c` in the scenario's
//! folder, with DATABASE_URL and the PG* variables set. `{url}` carries no
//! password (a command line is visible to every user of the machine); the
//! tool gets it from PGPASSWORD or DATABASE_URL in its environment.

use std::time::{Duration, Instant};

use super::launch::Container;
use super::retry::{says_lock_not_available, LOCK_NOT_AVAILABLE};
use super::CommandPlan;
use super::{expand_placeholders, Applied, Migration, Target};
use crate::error::{Error, ErrorKind, Result};
use crate::report::MigrationError;
use crate::sys::db::ConnInfo;
use crate::sys::process::{ChildCommand, ChildError};
use crate::sys::text::last_lines;

const APP_NAME: &str = "rehearse-command";
/// How long `list` may take.
const LIST_DEADLINE: Duration = Duration::from_secs(300);
/// How long one `apply` may take; budgets (max_runtime) are the real limit.
const APPLY_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// How often the copy is asked whether the tool's first session appeared.
const SESSION_POLL: Duration = Duration::from_millis(5);

/// Waits for the tool's first session on the copy (rehearse's own session
/// is idle while the command runs, so it asks); false when it cannot ask.
/// A tool that never connects keeps it waiting until the command ends.
async fn first_session(client: &tokio_postgres::Client) -> bool {
    loop {
        match crate::catalog::tool_session_connected(client, APP_NAME).await {
            Ok(true) => return true,
            Ok(false) => tokio::time::sleep(SESSION_POLL).await,
            Err(_) => return false,
        }
    }
}

pub struct CommandTool {
    plan: CommandPlan,
}

impl CommandTool {
    pub fn new(plan: CommandPlan) -> CommandTool {
        CommandTool { plan }
    }

    /// `sh -c script` with the tool's environment, here or in the image
    /// (with the container to remove when it ends).
    /// `migrations.env`'s `{url}` and `{sqlalchemy_url}` are replaced (see
    /// [`expand_placeholders`]); `target` is the server as the tool reaches it.
    fn shell(&self, script: &str, target: &Target<'_>) -> (ChildCommand, Option<Container>) {
        let url = target.url(Some(&target.conn.current_password()), APP_NAME);
        let mut env = expand_placeholders(&self.plan.env, &url, self.plan.driver.as_ref().map(|d| d.name.as_str()));
        env.extend(target.tool_env(APP_NAME));
        super::retry::with_lock_timeout(&mut env, target.lock_timeout);
        let args = ["-c".to_string(), script.to_string()];
        target.network.command(&self.plan.launch, "/bin/sh", &args, &env, &self.plan.dir)
    }

    /// The server as the tool reaches it (see `ToolNetwork::reachable`).
    fn reachable(&self, target: &Target<'_>) -> Result<ConnInfo> {
        target.network.reachable(&self.plan.launch, target.conn)
    }

    pub async fn pending(&self, target: &Target<'_>) -> Result<Vec<Migration>> {
        let ids: Vec<String> = match (&self.plan.revisions, &self.plan.list) {
            (Some(revs), _) => revs.clone(),
            (None, Some(list)) => {
                let conn = self.reachable(target)?;
                let target = &Target { conn: &conn, ..*target };
                let (cmd, _container) = self.shell(list, target);
                let out = cmd.keep_all_stdout().deadline(LIST_DEADLINE).run(target.cancel).await;
                match out {
                    Ok(out) => out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
                    Err(ChildError::Cancelled { .. }) => return Err(Error::Interrupted),
                    Err(e) => {
                        // Pasted, not attached as a source: the tool's output may
                        // hold the password (DATABASE_URL), so it is redacted first.
                        let hint = e.stderr().and_then(|s| target.network.unreachable_hint(&self.plan.launch, s));
                        return Err(ErrorKind::MigrationsInvalid.error(format!(
                            "migrations.list `{list}` failed: {}\n  ({})",
                            target.redact(&e.to_string()),
                            hint.unwrap_or("it must print the pending migration ids, one per line")
                        )));
                    }
                }
            }
            (None, None) => Vec::new(),
        };
        Ok(ids.into_iter().map(|id| Migration { version: id.clone(), id, ..Migration::default() }).collect())
    }

    pub async fn apply(&self, migration: &Migration, target: &Target<'_>) -> Result<Applied> {
        let conn = self.reachable(target)?;
        let target = &Target { conn: &conn, ..*target };
        let script = self.plan.apply.replace("{rev}", &migration.id).replace("{url}", &target.url(None, APP_NAME));
        let started = Instant::now();
        let (cmd, _container) = self.shell(&script, target);
        let run = cmd.deadline(APPLY_DEADLINE).run(target.cancel);
        tokio::pin!(run);
        let mut watching = true;
        let mut startup = None;
        let out = loop {
            tokio::select! {
                out = &mut run => break out,
                seen = first_session(target.client), if watching => {
                    watching = false;
                    startup = seen.then(|| started.elapsed());
                }
            }
        };
        // The tool's start-up (its interpreter or JVM, its config, its connect)
        // is reported apart, as a tool run in-process reports it.
        let elapsed = started.elapsed();
        let mut applied =
            Applied { duration: elapsed.saturating_sub(startup.unwrap_or_default()), startup, ..Applied::default() };
        match out {
            Ok(_) => {}
            Err(ChildError::Cancelled { .. }) => {
                applied.interrupted = true;
                applied.error = Some(MigrationError::new("interrupted by a signal while the command ran"));
            }
            Err(ChildError::Failed { status, stderr, stdout, .. }) => {
                let tail = last_lines(&stderr, 25);
                // The tool's exit status is all a command says: a lock_timeout
                // is read from what it printed (see `says_lock_not_available`).
                let gave_up = says_lock_not_available(&stderr) || says_lock_not_available(&stdout);
                applied.error = Some(MigrationError {
                    message: target.redact(&format!("`{script}` failed ({status}):\n{tail}")),
                    statement: None,
                    file: None,
                    line: None,
                    sqlstate: gave_up.then(|| LOCK_NOT_AVAILABLE.to_string()),
                });
            }
            Err(e) => applied.error = Some(MigrationError::new(target.redact(&format!("`{script}`: {e}")))),
        }
        target.network.explain(&self.plan.launch, &mut applied.error);
        Ok(applied)
    }
}
