//! A clone `create` made (or may have made), until it is destroyed or kept; and `destroy` from a marker.

use super::*;

/// A clone `create` made (or may have made): destroyed once, or kept for
/// `rehearse cleanup`; `Drop` destroys it as a backstop for a panic or a
/// provision stage dropped at the end of its wind-down.
#[derive(Debug)]
pub(super) struct Lease {
    pub(super) marker: Marker,
    pub(super) path: PathBuf,
    pub(super) done: bool,
}

impl Lease {
    /// The marker of a clone about to be made, written before `create` runs.
    pub(super) fn start(plan: &ClonePlan) -> Result<Lease> {
        use rand::distr::{Alphanumeric, SampleString};
        let suffix = Alphanumeric.sample_string(&mut rand::rng(), 10).to_lowercase();
        let marker = Marker {
            pid: std::process::id(),
            host: super::super::docker::hostname(),
            // Lowercase letters, digits and a hyphen, starting with a letter: a valid
            // RDS instance identifier, Kubernetes name, Neon branch and Database Lab clone id.
            name: format!("rehearse-{suffix}"),
            dir: plan.dir.clone(),
            destroy: plan.destroy.clone(),
            timeout_ms: plan.timeout.as_millis() as u64,
            url: String::new(),
            id: None,
            copies: Vec::new(),
            password_command: plan.password_command.clone(),
        };
        let path = std::env::temp_dir().join(format!("{MARKER_PREFIX}{suffix}.json"));
        marker.write(&path)?;
        Ok(Lease { marker, path, done: false })
    }

    pub(super) fn save(&self) -> Result<()> {
        self.marker.write(&self.path)
    }

    /// What `create` printed, into the marker.
    pub(super) fn record(&mut self, printed: &Printed) -> Result<()> {
        self.marker.url = printed.url.clone().unwrap_or_default();
        self.marker.id = printed.id.clone();
        if self.marker.made() {
            self.save()?;
        }
        Ok(())
    }

    /// After `error` stopped the provisioning: destroys what `create` said
    /// it made (a URL or an id, whatever its exit status), or forgets the
    /// marker when it said nothing. Returns `error`, with destroy's failure.
    pub(super) async fn undo(mut self, error: Error) -> Error {
        if !self.marker.made() {
            self.done = true;
            // Stopped by a signal before it said anything, `create` may have begun a clone: the
            // marker stays, so `rehearse cleanup` names it. Otherwise create ended by itself, or
            // the timeout's message names it.
            if !matches!(error, Error::Interrupted) {
                let _ = std::fs::remove_file(&self.path);
            }
            return error;
        }
        match (self.destroy().await, error) {
            (_, Error::Interrupted) => Error::Interrupted,
            (Ok(()), error) => {
                let message = format!(
                    "{}\n(postgres.clone.destroy was run for the clone it printed, and succeeded)",
                    error.with_causes()
                );
                // Still the user's input to fix (a URL asking for TLS): exit 3, not 4.
                error.kind().error(message)
            }
            (Err(destroy), error) => {
                ErrorKind::CleanupFailed.error(format!("{}\n{}", error.with_causes(), destroy.with_causes()))
            }
        }
    }

    /// Done once `destroy` returned: if this future is dropped before
    /// (a stage dropped at the end of its wind-down), `Drop` runs it again.
    pub(super) async fn destroy(&mut self) -> Result<()> {
        let destroyed = destroy(&self.marker, &self.path).await;
        self.done = true;
        destroyed
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Not made (dropped while `create` ran): the marker stays, for `rehearse cleanup` to report.
        if self.done || !self.marker.made() {
            return;
        }
        // A runtime of its own on a thread of its own: this may run inside (and block) an async task.
        let (marker, path) = (self.marker.clone(), self.path.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(destroy(&marker, &path)).ok()
        })
        .join();
    }
}

/// Drops the copies the marker lists, runs `destroy`, and removes the
/// marker once both succeeded. `destroy` never gets a cancellable token:
/// a signal must not stop the cleanup; its timeout bounds it.
pub async fn destroy(marker: &Marker, path: &Path) -> Result<()> {
    drop_copies(marker).await?;
    let script = marker.destroy.replace("{url}", &marker.url).replace("{id}", marker.id());
    let ran = ChildCommand::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .label("postgres.clone.destroy")
        .cwd(&marker.dir)
        .env(NAME_VAR, &marker.name)
        .env(URL_VAR, &marker.url)
        .env(ID_VAR, marker.id())
        .deadline(Duration::from_millis(marker.timeout_ms))
        .run(&CancellationToken::new())
        .await;
    let why = match ran {
        Ok(_) => {
            let _ = std::fs::remove_file(path);
            return Ok(());
        }
        Err(ChildError::Failed { status, stderr, .. }) => format!("failed ({status}): {}", last_lines(&stderr, 20)),
        Err(e) => e.to_string(),
    };
    Err(ErrorKind::CleanupFailed.error(marker.redact(&format!(
        "postgres.clone.destroy (`{}`) {why}\nThe clone {} may still exist: fix the command and run `rehearse cleanup` \
         (the marker {} keeps what it needs), or remove the clone with the engine's own tools",
        program(&marker.destroy),
        marker.id(),
        path.display()
    ))))
}

/// Drops the databases rehearse made on the clone's server (through another database there).
pub(super) async fn drop_copies(marker: &Marker) -> Result<()> {
    if marker.copies.is_empty() {
        return Ok(());
    }
    let conn = url::parse_config(&marker.url).map_err(|e| {
        Error::environment_because("the marker's URL is not a connection URL", marker.redact(&e.to_string()))
    })?;
    let admin_db = if conn.dbname == "postgres" { "template1" } else { "postgres" };
    // The run's password_command, when the URL create printed has no password.
    let conn = url::with_password_command(conn, marker.password_command.as_deref(), "postgres.clone.password_command");
    let server = ConnInfo { dbname: admin_db.into(), admin_dbname: admin_db.into(), ..conn };
    let version = url::server_version_num(&server, SHOWN).await?;
    for copy in &marker.copies {
        url::drop_on(&server, copy, version, SHOWN).await?;
    }
    Ok(())
}
