//! Observers: what each migration does to the live database, measured while
//! it runs. `Observers::begin` snapshots the server and starts the lock
//! sampler and the probes; `Observers::finish` stops them and turns what
//! they saw into the report's per-migration figures. The statement watcher
//! (`watch.rs`) reads the locks of statements that cannot run in a
//! transaction block; `merge.rs` puts every reading together.

mod infer;
pub mod locks;
mod merge;
pub mod probes;
pub mod progress;
pub mod relations;
pub mod standby;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::catalog::{self, WalCounters};
use crate::error::{ErrorKind, Result};
use crate::pg::{LockMode, PgVersion};
use crate::report::{Observation, StatementReport, TopStatement, Wal};
use crate::sys::db::{self, ConnInfo};
use locks::{Sampler, Sighting};
pub use merge::extend_hold;
use probes::{ProbeSession, RunningProbes};
use progress::ProgressSampler;
use relations::RelationSnapshot;
use standby::{StandbyObserver, StandbyWatch};
pub use watch::StatementWatcher;

/// The pace of an observer's loop: [`Pace::tick`] waits for the next
/// interval (a late tick is not made up for) and says false once `stop` is cancelled.
pub(crate) struct Pace {
    ticker: tokio::time::Interval,
    stop: tokio_util::sync::CancellationToken,
}

impl Pace {
    pub(crate) fn new(interval: Duration, stop: tokio_util::sync::CancellationToken) -> Pace {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pace { ticker, stop }
    }

    pub(crate) async fn tick(&mut self) -> bool {
        tokio::select! {
            _ = self.ticker.tick() => true,
            _ = self.stop.cancelled() => false,
        }
    }
}

/// How many pg_stat_statements rows each migration lists.
const TOP_STATEMENTS: i64 = 10;
/// How many of the largest tables get probes when the scenario names none.
const DEFAULT_HOT_TABLES: usize = 5;

/// What the observers are asked to do.
#[derive(Debug, Clone)]
pub struct ObserveOptions {
    pub interval: Duration,
    /// Tables the scenario names for probes; empty: the largest few.
    pub hot_tables: Vec<String>,
    /// Off (`--no-observe`): only time and WAL position, to measure what
    /// observation itself costs.
    pub enabled: bool,
    /// Trace each statement of an Alembic revision (off: `--no-trace`, an
    /// internal switch to measure what tracing itself costs, bench/tracing.sh).
    pub trace: bool,
    /// A streaming standby to observe (`observe.standby`, `observe.standby_url`).
    pub standby: Option<StandbyOptions>,
}

/// The standby the scenario asks for.
#[derive(Debug, Clone)]
pub struct StandbyOptions {
    /// An existing standby of the url backend's server; None: the backend starts one.
    pub url: Option<ConnInfo>,
    /// How often its lag is read.
    pub interval: Duration,
    /// Lag above this counts as over threshold.
    pub threshold: Duration,
    /// Its settings as rehearsed, for a standby the backend starts.
    pub settings: Vec<(String, String)>,
}

/// Sessions and server facts shared by every migration's observation.
pub struct Observers {
    observer: Client,
    sampler: Arc<Client>,
    /// Connected to the maintenance database, where pg_stat_statements is
    /// created, so the rehearsal database gets no extra extension (on a
    /// shared server, `admin_dbname` is the rehearsal database itself).
    statements: Option<Client>,
    db_oid: i64,
    version: PgVersion,
    options: ObserveOptions,
    own_pids: Vec<i32>,
    probes: Vec<ProbeSession>,
    /// The streaming standby's observer, when the run has one.
    standby: Option<StandbyObserver>,
    pub hot_tables: Vec<String>,
    pub limitations: Vec<String>,
}

/// One migration being observed.
pub struct Observing {
    before: RelationSnapshot,
    wal_before: u64,
    counters_before: Option<WalCounters>,
    checkpoints_before: Option<u64>,
    sampler: Option<Sampler>,
    progress: Option<ProgressSampler>,
    probes: Option<RunningProbes>,
    standby: Option<StandbyWatch>,
    started: Instant,
}

/// What was observed of one migration, and the relations before and after it.
pub struct Observed {
    pub observation: Observation,
    /// The relations as they were before the migration (sizes, rows).
    pub before: RelationSnapshot,
    pub after: RelationSnapshot,
}

impl Observers {
    /// Connects the observer, sampler, statistics and probe sessions;
    /// `largest_tables` are probed when the scenario names no hot tables.
    pub async fn connect(
        conn: &ConnInfo,
        options: ObserveOptions,
        largest_tables: &[String],
        standby: Option<&ConnInfo>,
    ) -> Result<Observers> {
        let env = |e| ErrorKind::CatalogReadFailed.because("cannot start the observer sessions", e);
        let observer = db::connect(conn, &conn.dbname, "rehearse-observer").await.map_err(env)?;
        let (db_oid, observer_pid) = catalog::database_oid_and_pid(&observer).await.map_err(env)?;
        let version = catalog::server_version_num(&observer).await.map_err(env)?;
        let sampler = db::connect(conn, &conn.dbname, "rehearse-sampler").await.map_err(env)?;
        let sampler_pid = catalog::backend_pid(&sampler).await.map_err(env)?;
        let mut own_pids = vec![observer_pid, sampler_pid];
        let mut limitations = Vec::new();
        let statements = statement_statistics(conn, &mut limitations).await;
        if !version.at_least(15) {
            limitations.push(
                "WAL records and full-page images are read from pg_stat_wal on PostgreSQL 15+ only \
                 (14 flushes it asynchronously, older servers lack it): not reported"
                    .into(),
            );
        }
        let hot = if !options.enabled {
            limitations.push("observation was off (--no-observe): no locks, probes or statement statistics".into());
            Vec::new()
        } else if options.hot_tables.is_empty() {
            largest_tables.iter().take(DEFAULT_HOT_TABLES).cloned().collect()
        } else {
            resolve_hot_tables(&observer, &options.hot_tables).await?
        };
        let standby = match (standby, &options.standby, options.enabled) {
            (Some(at), Some(o), true) => Some(StandbyObserver::connect(conn, at, o.clone(), &hot).await?),
            _ => None,
        };
        own_pids.extend(standby.iter().flat_map(|s| s.pids.iter().copied()));
        let mut probes = Vec::new();
        for table in &hot {
            for write in [false, true] {
                let p = ProbeSession::connect(conn, table, write).await.map_err(env)?;
                own_pids.push(p.pid);
                probes.push(p);
            }
        }
        Ok(Observers {
            observer,
            sampler: Arc::new(sampler),
            statements,
            db_oid,
            version,
            options,
            own_pids,
            probes,
            standby,
            hot_tables: hot,
            limitations,
        })
    }

    pub fn observer(&self) -> &Client {
        &self.observer
    }

    /// rehearse's own sessions, left out of every reading.
    pub fn own_pids(&self) -> &[i32] {
        &self.own_pids
    }

    /// Leaves more sessions out of every reading (the load's: the app's
    /// locks are not the migration's).
    pub fn exclude(&mut self, pids: &[i32]) {
        self.own_pids.extend(pids);
    }

    /// A watcher for the statements of `session` (rehearse's migration
    /// session) that cannot run in a transaction block; None with observation off.
    pub async fn watcher(&mut self, conn: &ConnInfo, session: &Client) -> Result<Option<StatementWatcher>> {
        if !self.options.enabled {
            return Ok(None);
        }
        let env = |e| ErrorKind::CatalogReadFailed.because("cannot start the statement watcher session", e);
        let target = catalog::backend_pid(session).await.map_err(env)?;
        let watcher = StatementWatcher::connect(conn, target, self.options.interval).await.map_err(env)?;
        self.own_pids.push(watcher.pid);
        Ok(Some(watcher))
    }

    /// Snapshots the server and starts sampling and probing.
    pub async fn begin(&self) -> Result<Observing> {
        let env = |e| ErrorKind::CatalogReadFailed.because("cannot read the server's state before a migration", e);
        let before = RelationSnapshot::take(&self.observer).await.map_err(env)?;
        let counters_before = match self.version.at_least(15) {
            true => Some(catalog::wal_counters(&self.observer).await.map_err(env)?),
            false => None,
        };
        let checkpoints_before = catalog::checkpoints(&self.observer, self.version).await.ok();
        if let (Some(s), true) = (&self.statements, self.options.enabled) {
            // Needs superuser or a grant; without it the top statements
            // include earlier ones of this database, which the report's
            // per-statement capture (SQL files) does not depend on.
            let _ = catalog::reset_statements(s, self.db_oid).await;
        }
        let progress = self.options.enabled.then(|| {
            ProgressSampler::start(
                self.sampler.clone(),
                self.version,
                self.db_oid,
                self.own_pids.clone(),
                self.options.interval,
            )
        });
        let (sampler, probes) = match self.options.enabled {
            true => {
                let (sightings, seen) = tokio::sync::watch::channel(Sighting::default());
                let sampler = Sampler::start(
                    self.sampler.clone(),
                    self.db_oid,
                    self.own_pids.clone(),
                    self.options.interval,
                    sightings,
                );
                (Some(sampler), Some(probes::start(&self.probes, Some(&seen))))
            }
            false => (None, None),
        };
        let standby = match &self.standby {
            Some(s) => Some(s.begin().await?),
            None => None,
        };
        let wal_before = catalog::wal_position(&self.observer).await.map_err(env)?;
        Ok(Observing {
            before,
            wal_before,
            counters_before,
            checkpoints_before,
            sampler,
            progress,
            probes,
            standby,
            started: Instant::now(),
        })
    }

    /// Stops observing and computes the migration's figures. `statements`
    /// carry the exact per-statement locks (relations the migration dropped
    /// are named here, and the locks the manual documents for a statement
    /// no reading caught are added); `duration_ms` is the migration's own
    /// time, the ceiling of every hold. `runner` is the migration's own
    /// session when rehearse runs it (its statistics are flushed first).
    pub async fn finish(
        &self,
        mut o: Observing,
        runner: Option<&Client>,
        statements: &mut [StatementReport],
        duration_ms: u64,
        inherited: &[(String, LockMode)],
    ) -> Result<Observed> {
        let env = |e| ErrorKind::CatalogReadFailed.because("cannot read the server's state after a migration", e);
        if let (Some(runner), true) = (runner, self.version.at_least(15)) {
            // A session whose statistics are not flushed would leave its WAL out of pg_stat_wal.
            catalog::force_stats_flush(runner).await.map_err(env)?;
        }
        let wal_after = catalog::wal_position(&self.observer).await.map_err(env)?;
        let elapsed = o.started.elapsed();
        let sampled = match o.sampler.take() {
            Some(s) => s
                .finish()
                .await
                .map_err(|e| ErrorKind::CatalogReadFailed.because("the lock sampler's query failed", e))?,
            None => Vec::new(),
        };
        let progress = match o.progress.take() {
            Some(p) => p
                .finish()
                .await
                .map_err(|e| ErrorKind::CatalogReadFailed.because("the progress views' query failed", e))?,
            None => Vec::new(),
        };
        let probes = match o.probes.take() {
            Some(p) => p.finish().await,
            None => Vec::new(),
        };
        let standby = match (&self.standby, o.standby.take()) {
            (Some(observer), Some(watch)) => Some(observer.finish(watch).await?),
            _ => None,
        };
        let after = RelationSnapshot::take(&self.observer).await.map_err(env)?;
        let wal = self.wal(&o, wal_after, elapsed).await.map_err(env)?;
        let sampled = self.name_unnamed(&o.before, sampled).await;
        merge::name_dropped(&o.before, statements);
        if self.options.enabled {
            merge::infer_unseen(&o.before, statements, &sampled);
        }
        let readings = merge::Readings { sampled, inherited, probes: &probes };
        let locks = merge::merge_locks(&o.before, readings, statements, duration_ms);
        let (rewrites, size_changes) = relations::compare(&o.before, &after);
        let observation = Observation {
            wal,
            longest_read_block: merge::longest_block(&locks, &o.before, LockMode::blocks_reads),
            longest_write_block: merge::longest_block(&locks, &o.before, LockMode::blocks_writes),
            locks,
            probes,
            rewrites,
            size_changes,
            progress: merge::progress(&o.before, &after, progress, o.started),
            top_statements: self.top_statements().await.map_err(env)?,
            standby,
        };
        Ok(Observed { observation, before: o.before, after })
    }

    /// WAL written between `begin` and now: bytes by LSN, records and
    /// full-page images by pg_stat_wal (15+), checkpoints started.
    async fn wal(&self, o: &Observing, wal_after: u64, elapsed: Duration) -> Result<Wal, tokio_postgres::Error> {
        let bytes = wal_after.saturating_sub(o.wal_before);
        let mut wal = Wal {
            bytes,
            bytes_per_second: (elapsed.as_secs_f64() > 0.0).then(|| (bytes as f64 / elapsed.as_secs_f64()).round()),
            ..Wal::default()
        };
        if let Some(before) = o.counters_before {
            let now = catalog::wal_counters(&self.observer).await?;
            wal.records = Some(now.records.saturating_sub(before.records));
            wal.fpi = Some(now.fpi.saturating_sub(before.fpi));
            wal.stat_bytes = Some(now.bytes.saturating_sub(before.bytes));
        }
        if let Some(before) = o.checkpoints_before {
            wal.checkpoints =
                catalog::checkpoints(&self.observer, self.version).await.ok().map(|a| a.saturating_sub(before));
        }
        Ok(wal)
    }

    async fn top_statements(&self) -> Result<Vec<TopStatement>, tokio_postgres::Error> {
        let Some(s) = self.statements.as_ref().filter(|_| self.options.enabled) else { return Ok(Vec::new()) };
        Ok(catalog::top_statements(s, self.db_oid, TOP_STATEMENTS)
            .await?
            .into_iter()
            .map(|s| TopStatement {
                query: s.query,
                calls: s.calls,
                duration_ms: (s.total_ms * 10.0).round() / 10.0,
                rows: s.rows,
                wal_bytes: Some(s.wal_bytes.max(0) as u64),
            })
            .collect())
    }

    /// Names relations the sampler saw before they were visible to it.
    async fn name_unnamed(
        &self,
        before: &RelationSnapshot,
        mut sampled: Vec<locks::SampledLock>,
    ) -> Vec<locks::SampledLock> {
        let oids: Vec<i64> = sampled.iter().filter(|l| l.name.is_empty()).map(|l| l.oid).collect();
        if oids.is_empty() {
            return sampled;
        }
        let names = catalog::relation_names(&self.observer, &oids).await.unwrap_or_default();
        for lock in sampled.iter_mut().filter(|l| l.name.is_empty()) {
            if let Some((_, name, kind)) = names.iter().find(|(oid, _, _)| *oid == lock.oid) {
                lock.name = name.clone();
                lock.kind = *kind;
            } else if let Some(r) = before.by_oid(lock.oid) {
                lock.name = r.name.clone();
                lock.kind = r.kind;
            }
        }
        // Still nameless: dropped before the migration ended, such as the
        // transient heap of a table rewrite; nothing the app could wait on.
        sampled.retain(|l| !l.name.is_empty());
        sampled
    }
}

/// The session for pg_stat_statements, or a limitation saying why there is
/// none: top statements are optional, so a server that cannot give them
/// (a staging server without the library preloaded) still rehearses.
async fn statement_statistics(conn: &ConnInfo, limitations: &mut Vec<String>) -> Option<Client> {
    let client = match db::connect(conn, &conn.admin_dbname, "rehearse-statements").await {
        Ok(c) => c,
        Err(e) => {
            limitations.push(format!("per-statement statistics unavailable: {}", db::describe_pg_error(&e)));
            return None;
        }
    };
    // CREATE EXTENSION succeeds without the library preloaded; only reading
    // the view fails then (55000, "must be loaded via
    // shared_preload_libraries"). So the view is read once here, with the
    // query the report uses, rather than failing after the first migration.
    let ready = match catalog::ensure_pg_stat_statements(&client).await {
        Ok(()) => catalog::top_statements(&client, 0, 1).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match ready {
        Ok(()) => Some(client),
        Err(e) => {
            limitations.push(format!(
                "per-statement statistics unavailable (pg_stat_statements: {}); to list top statements, add pg_stat_statements to the \
                 server's shared_preload_libraries (a restart) and let this role create it",
                db::describe_pg_error(&e)
            ));
            None
        }
    }
}

/// The scenario's hot tables as the catalog names them. A table the
/// database lacks is the scenario's mistake; a query that fails is not.
async fn resolve_hot_tables(observer: &Client, tables: &[String]) -> Result<Vec<String>> {
    let mut resolved = Vec::new();
    for t in tables {
        let found = catalog::canonical_name(observer, t).await.map_err(|e| {
            ErrorKind::CatalogReadFailed.because(format!("cannot look up observe.hot_tables entry {t}"), e)
        })?;
        resolved.push(found.ok_or_else(|| {
            ErrorKind::ScenarioInvalid.error(format!(
                "observe.hot_tables names {t}, which the restored database does not have: \
                 name a table as `schema.table` or `table`"
            ))
        })?);
    }
    Ok(resolved)
}
