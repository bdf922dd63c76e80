//! The cancel, as production's operator sends it, and what it takes for
//! the database to let go: the migration starts as the rehearsal ran it;
//! when `at` comes, an SQL file's session gets `pg_cancel_backend` (psql's
//! Ctrl-C sends that very cancel request) and a tool (Alembic, a command)
//! gets SIGINT to its process group (a terminal's Ctrl-C). From then on,
//! every 10ms: are any of the migration's sessions' locks left in
//! pg_locks; and a read of the table it locked hardest waits in the lock
//! queue, as the app's next read would, until it is granted.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Sessions;
use crate::catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::{Applied, Migration, MigrationSource, MigrationTool, Target};
use crate::pg::RelationKind;
use crate::plan::abort::{AbortAt, AbortPlan};
use crate::report::AbortReport;

/// How often pg_locks is read, while waiting for `lock_granted` and for the locks to go.
const POLL: Duration = Duration::from_millis(10);
/// How long the cancelled migration gets to let go before rehearse ends
/// its sessions (pg_terminate_backend) and its tool (SIGTERM, then
/// SIGKILL): PostgreSQL notices a client gone only when it next talks to
/// it, so a tool that exits mid-statement may leave the statement running.
const LET_GO: Duration = Duration::from_secs(60);

/// One migration started and cancelled.
pub(super) struct Cancel<'a> {
    pub plan: &'a AbortPlan,
    pub rehearsed_ms: u64,
    pub sessions: &'a Sessions,
    pub source: &'a MigrationSource,
    /// Stops the tool for good (SIGTERM, grace, SIGKILL) when SIGINT was not enough.
    pub stop: &'a CancellationToken,
}

/// What the cancel measured.
pub(super) struct Cancelled {
    /// None: the migration ended before `at` came.
    cancelled_at: Option<Duration>,
    locks_released: Option<Duration>,
    app_resumed: Option<Duration>,
    probed_table: Option<String>,
    /// Why a figure is missing, or what rehearse had to do beyond the operator's cancel.
    error: Option<String>,
}

impl Cancelled {
    pub(super) fn into_report(self, report: &mut AbortReport) {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        report.cancelled_at_ms = ms(self.cancelled_at);
        report.locks_released_ms = ms(self.locks_released);
        report.app_resumed_ms = ms(self.app_resumed);
        report.probed_table = self.probed_table;
        report.error = self.error;
    }
}

impl Cancel<'_> {
    /// Starts `migration` on `target`, cancels it when `at` comes, and measures the release.
    pub(super) async fn run(&self, migration: &Migration, target: &Target<'_>) -> Result<Cancelled> {
        let started = Instant::now();
        let apply = self.source.apply(migration, target);
        tokio::pin!(apply);
        let finished = tokio::select! {
            applied = &mut apply => Some(applied?),
            reached = self.at() => { reached?; None }
        };
        if let Some(applied) = finished {
            let why = match applied.error {
                Some(e) => format!("the migration failed before the cancel came: {}", e.message),
                None => format!(
                    "the migration finished after {} ms, before `at: {}` came: nothing was cancelled",
                    started.elapsed().as_millis(),
                    self.plan.at_text
                ),
            };
            return Ok(Cancelled {
                cancelled_at: None,
                locks_released: None,
                app_resumed: None,
                probed_table: None,
                error: Some(why),
            });
        }
        let observer = &self.sessions.observer;
        let read = |e| ErrorKind::CatalogReadFailed.because("cannot read the abort copy's sessions and locks", e);
        let pids = catalog::database_sessions(observer, &self.sessions.own).await.map_err(read)?;
        let probed_table = self.hardest_locked_table().await?;
        let cancelled_at = started.elapsed();
        self.send_cancel().await?;
        let cancel_sent = Instant::now();
        let (ended, released, resumed) = tokio::join!(
            self.let_go(&mut apply, target),
            self.locks_gone(&pids, cancel_sent),
            self.app_reads(probed_table.as_deref(), cancel_sent),
        );
        let error = ended?;
        Ok(Cancelled {
            cancelled_at: Some(cancelled_at),
            locks_released: released?,
            app_resumed: resumed?,
            probed_table,
            error,
        })
    }

    /// Waits for `at`: a share of the rehearsed time, a duration, or the
    /// first lock that blocks reads or writes granted to a session of the migration.
    async fn at(&self) -> Result<()> {
        match self.plan.at {
            AbortAt::Share(share) => {
                tokio::time::sleep(Duration::from_millis((self.rehearsed_ms as f64 * share) as u64)).await
            }
            AbortAt::After(d) => tokio::time::sleep(d).await,
            AbortAt::LockGranted => loop {
                if self.blocking_lock_granted().await? {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            },
        }
        Ok(())
    }

    async fn blocking_lock_granted(&self) -> Result<bool> {
        let locks = self.relation_locks().await?;
        Ok(locks.iter().any(|l| l.granted && (l.mode.blocks_reads() || l.mode.blocks_writes())))
    }

    /// Relation locks of every session on the copy but rehearse's own.
    async fn relation_locks(&self) -> Result<Vec<catalog::LockRow>> {
        let observer = &self.sessions.observer;
        let read = |e| ErrorKind::CatalogReadFailed.because("cannot read pg_locks on the abort's copy", e);
        let (db_oid, _) = catalog::database_oid_and_pid(observer).await.map_err(read)?;
        let prepared = observer.prepare(catalog::RELATION_LOCKS).await.map_err(read)?;
        catalog::relation_locks(observer, &prepared, db_oid, &self.sessions.own).await.map_err(read)
    }

    /// The table the migration holds its strongest granted lock on, which
    /// the app's read probes; None when it holds none on a visible table.
    async fn hardest_locked_table(&self) -> Result<Option<String>> {
        let locks = self.relation_locks().await?;
        Ok(locks
            .into_iter()
            .filter(|l| l.granted && !l.name.is_empty())
            .filter(|l| matches!(l.kind, RelationKind::Table | RelationKind::PartitionedTable))
            .max_by_key(|l| l.mode)
            .map(|l| l.name))
    }

    /// The operator's cancel: `pg_cancel_backend` of the session running
    /// an SQL file (rehearse's runner); SIGINT to the tool's process group.
    async fn send_cancel(&self) -> Result<()> {
        match self.source.tool() {
            MigrationTool::Sql => {
                let pid = self.sessions.runner_pid;
                catalog::cancel_backend(&self.sessions.observer, pid).await.map_err(|e| {
                    Error::environment_because("cannot cancel the migration's statement (pg_cancel_backend)", e)
                })?;
            }
            MigrationTool::Alembic | MigrationTool::Command | MigrationTool::Django => {
                crate::sys::process::interrupt_children();
            }
        }
        Ok(())
    }

    /// The migration's own end after the cancel, as the operator's client
    /// ends it: the statement's error, then its session's transaction
    /// rolled back (psql exits on the error; a tool's process exits and
    /// its connection closes). Past [`LET_GO`], rehearse ends it. Says what
    /// rehearse had to do, if anything.
    async fn let_go(
        &self,
        apply: &mut std::pin::Pin<&mut impl std::future::Future<Output = Result<Applied>>>,
        target: &Target<'_>,
    ) -> Result<Option<String>> {
        let mut note = None;
        let applied = match tokio::time::timeout(LET_GO, apply.as_mut()).await {
            Ok(applied) => applied,
            Err(_) => {
                self.stop.cancel();
                note = Some(format!(
                    "the migration did not stop within {}s of the cancel: rehearse stopped it (SIGTERM, then SIGKILL \
                     to a tool; pg_terminate_backend of its sessions)",
                    LET_GO.as_secs()
                ));
                self.terminate_sessions().await;
                apply.as_mut().await
            }
        };
        let applied = applied?;
        if applied.error.is_none() && !applied.interrupted {
            note = Some("the migration finished despite the cancel (it came between two statements)".into());
        }
        if self.source.tool() == MigrationTool::Sql {
            // A file's own BEGIN leaves the session in a failed transaction: psql's exit would roll it back.
            let _ = target.client.batch_execute("ROLLBACK; RESET ALL").await;
        }
        Ok(note)
    }

    async fn terminate_sessions(&self) {
        let observer = &self.sessions.observer;
        if let Ok(pids) = catalog::database_sessions(observer, &self.sessions.own).await {
            for pid in pids {
                let _ = catalog::terminate_backend(observer, pid).await;
            }
        }
    }

    /// From the cancel until the sessions `pids` hold no lock in pg_locks.
    async fn locks_gone(&self, pids: &[i32], cancelled: Instant) -> Result<Option<Duration>> {
        let read = |e| ErrorKind::CatalogReadFailed.because("cannot read pg_locks on the abort's copy", e);
        loop {
            let held = catalog::locks_of(&self.sessions.observer, pids).await.map_err(read)?;
            if held == 0 {
                return Ok(Some(cancelled.elapsed()));
            }
            if cancelled.elapsed() > LET_GO + LET_GO {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// From the cancel until a read of `table` is granted (None without a table).
    async fn app_reads(&self, table: Option<&str>, cancelled: Instant) -> Result<Option<Duration>> {
        let Some(table) = table else { return Ok(None) };
        let read = |e| {
            ErrorKind::CatalogReadFailed.because(format!("cannot read {table} as the app would on the abort's copy"), e)
        };
        match catalog::probe_read(&self.sessions.prober, table, LET_GO + LET_GO).await.map_err(read)? {
            true => Ok(Some(cancelled.elapsed())),
            false => Ok(None),
        }
    }
}
