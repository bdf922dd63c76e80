//! How long a backup of this database takes: a timed `pg_dump -Fc` of the
//! rehearsal database (`report.measure_backup`), run after the migrations and
//! before cleanup so it cannot warm the cache or add WAL under the
//! migrations' measurements. The archive goes to a private temp dir (it holds
//! production data) and is deleted straight away; only its size is kept.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::Throwaway;
use crate::catalog;
use crate::report::BackupInfo;
use crate::sys::db;
use crate::sys::process::ChildError;

/// A backup of a very large snapshot can take hours; the run's own
/// cancellation (Ctrl-C) still stops it at once.
const DEADLINE: Duration = Duration::from_secs(12 * 3600);

pub const COMMAND: &str = "pg_dump -Fc";

/// Measures; a failure is recorded in the result, not raised: the backup
/// figure is evidence for the checklist, not part of the rehearsal.
pub async fn measure(server: &Throwaway, cancel: &CancellationToken) -> BackupInfo {
    let mut info = BackupInfo { command: COMMAND.into(), ..Default::default() };
    let conn = server.conn();
    if let Ok(client) = db::connect(conn, &conn.dbname, "rehearse-backup").await {
        info.database_bytes = catalog::database_size(&client).await.ok();
    }
    // tempfile makes the directory 0700 under $TMPDIR.
    let dir = match tempfile::Builder::new().prefix("rehearse-backup-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            info.error = Some(format!("cannot create a private temp dir for the archive: {e}; check TMPDIR"));
            return info;
        }
    };
    let archive = dir.path().join("backup.dump");
    if server.runs_in_container() {
        // pg_dump runs inside the container there; its archive would not be
        // on this machine to measure.
        info.error = Some("measuring the backup is not supported on the docker backend yet".into());
        return info;
    }
    let run = server
        .client_command("pg_dump", &conn.dbname, "rehearse-backup")
        .args(["-Fc", "--no-password", "-f"])
        .arg(&archive)
        .deadline(DEADLINE)
        .run(cancel)
        .await;
    match run {
        Ok(out) => {
            info.duration_ms = Some(out.elapsed.as_millis() as u64);
            info.bytes = std::fs::metadata(&archive).map(|m| m.len()).ok();
        }
        Err(ChildError::Failed { stderr, .. }) => {
            info.error = Some(format!("pg_dump failed: {}", stderr.lines().last().unwrap_or("no message")))
        }
        Err(e) => info.error = Some(e.to_string()),
    }
    info
}
