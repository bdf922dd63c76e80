//! Observers: what each migration does to the live database, measured while
//! it runs. `Observers::begin` snapshots the server and starts the lock
//! sampler and the probes; `Observing::finish` stops them and turns what
//! they saw into the report's per-migration figures.

pub mod conflicts;
pub mod locks;
pub mod probes;
pub mod queries;
pub mod relations;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::db::{self, ConnInfo};
use crate::error::{Error, Result};
use crate::report::{BlockReport, LockReport, MigrationReport, StatementReport, TopStatement, Wal};
use locks::{SampledLock, Sampler, Sighting};
use probes::{ProbeSession, RunningProbes};
use relations::RelationSnapshot;

/// Tracking tables (and their indexes) the migration tools write after each
/// migration: bookkeeping, not the migration's doing.
const TRACKING_TABLES: [&str; 2] = ["public.rehearse_schema_migrations", "public.alembic_version"];
/// How many pg_stat_statements rows each migration lists.
const TOP_STATEMENTS: i64 = 10;
/// How many of the largest tables get probes when the scenario names none.
const DEFAULT_HOT_TABLES: usize = 5;

/// Sessions and server facts shared by every migration's observation.
pub struct Observers {
    observer: Client,
    sampler: Arc<Client>,
    /// Connected to the maintenance database, where pg_stat_statements is
    /// created, so the rehearsal database gets no extra extension (on a
    /// shared server, `admin_dbname` is the rehearsal database itself).
    statements: Option<Client>,
    db_oid: i64,
    version_num: i32,
    interval: Duration,
    own_pids: Vec<i32>,
    probes: Vec<ProbeSession>,
    pub hot_tables: Vec<String>,
    pub limitations: Vec<String>,
    /// Off (`--no-observe`): only time and WAL position, to measure what
    /// observation itself costs.
    enabled: bool,
}

/// One migration being observed.
pub struct Observing {
    before: RelationSnapshot,
    wal_before: u64,
    counters_before: Option<(u64, u64, u64)>,
    checkpoints_before: Option<u64>,
    sampler: Option<Sampler>,
    probes: Option<RunningProbes>,
    started: Instant,
}

/// What was observed of one migration, in the report's terms.
pub struct Observed {
    pub wal: Wal,
    pub locks: Vec<LockReport>,
    pub longest_read_block: Option<BlockReport>,
    pub longest_write_block: Option<BlockReport>,
    pub probes: Vec<crate::report::ProbeReport>,
    pub rewrites: Vec<crate::report::Rewrite>,
    pub size_changes: Vec<crate::report::Rewrite>,
    pub top_statements: Vec<TopStatement>,
    /// The relations as they were before the migration (sizes, rows).
    pub before: RelationSnapshot,
    pub after: RelationSnapshot,
}

impl Observers {
    /// Connects the observer, sampler, statistics and probe sessions.
    /// `hot_tables` come from the scenario; when empty, the largest tables are probed.
    pub async fn connect(
        conn: &ConnInfo,
        interval: Duration,
        hot_tables: &[String],
        largest_tables: &[String],
        enabled: bool,
    ) -> Result<Observers> {
        let env = |e| Error::environment_because("cannot start the observer sessions", e);
        let observer = db::connect(conn, &conn.dbname, "rehearse-observer").await.map_err(env)?;
        let (db_oid, observer_pid) = queries::database_oid_and_pid(&observer).await.map_err(env)?;
        let version_num = queries::server_version_num(&observer).await.map_err(env)?;
        let sampler = db::connect(conn, &conn.dbname, "rehearse-sampler").await.map_err(env)?;
        let sampler_pid = queries::backend_pid(&sampler).await.map_err(env)?;
        let mut own_pids = vec![observer_pid, sampler_pid];
        let mut limitations = Vec::new();

        let statements = match db::connect(conn, &conn.admin_dbname, "rehearse-statements").await {
            Ok(c) => match queries::ensure_pg_stat_statements(&c).await {
                Ok(()) => Some(c),
                Err(e) => {
                    limitations.push(format!(
                        "per-statement statistics unavailable (pg_stat_statements: {})",
                        db::describe_pg_error(&e)
                    ));
                    None
                }
            },
            Err(e) => {
                limitations.push(format!("per-statement statistics unavailable: {e}"));
                None
            }
        };
        if version_num < 150000 {
            limitations.push(
                "WAL records and full-page images are read from pg_stat_wal on PostgreSQL 15+ only \
                 (14 flushes it asynchronously, older servers lack it): not reported"
                    .into(),
            );
        }

        let hot: Vec<String> = if !enabled {
            limitations.push("observation was off (--no-observe): no locks, probes or statement statistics".into());
            Vec::new()
        } else if hot_tables.is_empty() {
            largest_tables.iter().take(DEFAULT_HOT_TABLES).cloned().collect()
        } else {
            let mut resolved = Vec::new();
            for t in hot_tables {
                let row = observer
                    .query_opt(
                        "/*rehearse*/ SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
                        &[t],
                    )
                    .await
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        Error::bad_input(format!(
                            "observe.hot_tables names {t}, which the restored database does not have: \
                             name a table as `schema.table` or `table`"
                        ))
                    })?;
                resolved.push(row.get(0));
            }
            resolved
        };
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
            version_num,
            interval,
            own_pids,
            probes,
            hot_tables: hot,
            limitations,
            enabled,
        })
    }

    pub fn version_num(&self) -> i32 {
        self.version_num
    }

    pub fn observer(&self) -> &Client {
        &self.observer
    }

    /// Snapshots the server and starts sampling and probing.
    pub async fn begin(&self) -> Result<Observing> {
        let env = |e| Error::environment_because("cannot read the server's state before a migration", e);
        let before = RelationSnapshot::take(&self.observer).await.map_err(env)?;
        let counters_before = match self.version_num >= 150000 {
            true => Some(queries::wal_counters(&self.observer).await.map_err(env)?),
            false => None,
        };
        let checkpoints_before = queries::checkpoints(&self.observer, self.version_num).await.ok();
        if let (Some(s), true) = (&self.statements, self.enabled) {
            let _ = queries::reset_statements(s, self.db_oid).await;
        }
        let (sampler, probes) = match self.enabled {
            true => {
                let (sightings, seen) = tokio::sync::watch::channel(Sighting::default());
                let sampler =
                    Sampler::start(self.sampler.clone(), self.db_oid, self.own_pids.clone(), self.interval, sightings);
                (Some(sampler), Some(probes::start(&self.probes, &seen)))
            }
            false => (None, None),
        };
        let wal_before = queries::wal_position(&self.observer).await.map_err(env)?;
        Ok(Observing {
            before,
            wal_before,
            counters_before,
            checkpoints_before,
            sampler,
            probes,
            started: Instant::now(),
        })
    }

    /// Stops observing and computes the migration's figures. `runner` is the
    /// migration's own session when rehearse runs it (its statistics are
    /// flushed first); `statements` carry the exact per-statement locks.
    pub async fn finish(
        &self,
        o: Observing,
        runner: Option<&Client>,
        statements: &mut [StatementReport],
    ) -> Result<Observed> {
        let env = |e| Error::environment_because("cannot read the server's state after a migration", e);
        if let (Some(runner), true) = (runner, self.version_num >= 150000) {
            let _ = queries::force_stats_flush(runner).await;
        }
        let wal_after = queries::wal_position(&self.observer).await.map_err(env)?;
        let elapsed = o.started.elapsed();
        let (sampled, _samples, failure) = match o.sampler {
            Some(s) => s.finish().await,
            None => (Vec::new(), 0, None),
        };
        if let Some(e) = failure {
            return Err(Error::environment(format!("the lock sampler's query failed: {e}")));
        }
        let probes = match o.probes {
            Some(p) => p.finish().await,
            None => Vec::new(),
        };
        let after = RelationSnapshot::take(&self.observer).await.map_err(env)?;

        let bytes = wal_after.saturating_sub(o.wal_before);
        let mut wal = Wal {
            bytes,
            bytes_per_second: (elapsed.as_secs_f64() > 0.0).then(|| (bytes as f64 / elapsed.as_secs_f64()).round()),
            ..Wal::default()
        };
        if let Some((records, fpi, stat_bytes)) = o.counters_before {
            let (r, f, b) = queries::wal_counters(&self.observer).await.map_err(env)?;
            wal.records = Some(r.saturating_sub(records));
            wal.fpi = Some(f.saturating_sub(fpi));
            wal.stat_bytes = Some(b.saturating_sub(stat_bytes));
        }
        if let Some(before) = o.checkpoints_before {
            wal.checkpoints =
                queries::checkpoints(&self.observer, self.version_num).await.ok().map(|a| a.saturating_sub(before));
        }

        let sampled = self.name_unnamed(&o.before, sampled).await;
        name_dropped(&o.before, statements);
        let locks = merge_locks(&o.before, sampled, statements);
        let longest = |pred: fn(&str) -> bool| {
            locks
                .iter()
                .filter(|l| pred(&l.mode) && o.before.contains(&l.relation))
                .max_by_key(|l| (l.held_ms, l.kind == "table"))
                .map(|l| BlockReport { relation: l.relation.clone(), mode: l.mode.clone(), held_ms: l.held_ms })
        };
        let longest_read_block = longest(conflicts::blocks_reads);
        let longest_write_block = longest(conflicts::blocks_writes);
        let (rewrites, size_changes) = relations::compare(&o.before, &after);
        let top_statements = match self.statements.as_ref().filter(|_| self.enabled) {
            Some(s) => queries::top_statements(s, self.db_oid, TOP_STATEMENTS)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(query, calls, ms, rows, wal)| TopStatement {
                    query,
                    calls,
                    duration_ms: (ms * 10.0).round() / 10.0,
                    rows,
                    wal_bytes: Some(wal.max(0) as u64),
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(Observed {
            wal,
            locks,
            longest_read_block,
            longest_write_block,
            probes,
            rewrites,
            size_changes,
            top_statements,
            before: o.before,
            after,
        })
    }

    /// Names relations the sampler saw before they were visible to it.
    async fn name_unnamed(&self, before: &RelationSnapshot, mut sampled: Vec<SampledLock>) -> Vec<SampledLock> {
        let oids: Vec<i64> = sampled.iter().filter(|l| l.name.is_empty()).map(|l| l.oid).collect();
        if oids.is_empty() {
            return sampled;
        }
        let names = queries::relation_names(&self.observer, &oids).await.unwrap_or_default();
        for lock in sampled.iter_mut().filter(|l| l.name.is_empty()) {
            if let Some((_, name, kind)) = names.iter().find(|(oid, _, _)| *oid == lock.oid) {
                lock.name = name.clone();
                lock.kind = kind.clone();
            } else if let Some(r) = before.by_oid(lock.oid) {
                lock.name = r.name.clone();
                lock.kind = r.kind.clone();
            }
        }
        // Still nameless: dropped before the migration ended, such as the
        // transient heap of a table rewrite; nothing the app could wait on.
        sampled.retain(|l| !l.name.is_empty());
        sampled
    }
}

/// Names locks on relations a statement dropped (pg_class no longer has
/// them) from the snapshot before the migration; what is still nameless was
/// created and dropped within the migration, such as a rewrite's transient
/// heap, and is left out.
fn name_dropped(before: &RelationSnapshot, statements: &mut [StatementReport]) {
    for stmt in statements {
        for lock in stmt.locks.iter_mut().filter(|l| l.relation.is_empty()) {
            if let Some(r) = before.by_oid(lock.oid) {
                lock.relation = r.name.clone();
                lock.kind = r.kind.clone();
            }
        }
        stmt.locks.retain(|l| !l.relation.is_empty());
    }
}

/// Puts exact (per statement) and sampled sightings together per (relation, mode).
fn merge_locks(
    before: &RelationSnapshot,
    mut sampled: Vec<SampledLock>,
    statements: &[StatementReport],
) -> Vec<LockReport> {
    // rehearse's own bookkeeping is not the migration's doing.
    sampled.retain(|l| !TRACKING_TABLES.iter().any(|t| l.name.starts_with(t)));
    let mut out: Vec<LockReport> = Vec::new();
    for stmt in statements {
        for lock in stmt.locks.iter().filter(|l| !TRACKING_TABLES.iter().any(|t| l.relation.starts_with(t))) {
            if out.iter().any(|l| l.relation == lock.relation && l.mode == lock.mode) {
                continue;
            }
            out.push(LockReport {
                relation: lock.relation.clone(),
                kind: lock.kind.clone(),
                mode: lock.mode.clone(),
                held_ms: lock.held_ms,
                waited_ms: 0,
                blocks: conflicts::blocks(&lock.mode),
                source: vec!["statement".into()],
                statement: Some(stmt.query.clone()),
                line: stmt.line,
                created: !before.contains(&lock.relation),
            });
        }
    }
    for s in sampled {
        let held = s.held.map(|d| d.as_millis() as u64).unwrap_or(0);
        let waited = s.waited.map(|d| d.as_millis() as u64).unwrap_or(0);
        match out.iter_mut().find(|l| l.relation == s.name && l.mode == s.mode) {
            Some(l) => {
                l.held_ms = l.held_ms.max(held);
                l.waited_ms = waited;
                l.source.push("sampled".into());
            }
            None => out.push(LockReport {
                created: !before.contains(&s.name),
                relation: s.name,
                kind: s.kind,
                blocks: conflicts::blocks(&s.mode),
                mode: s.mode,
                held_ms: held,
                waited_ms: waited,
                source: vec!["sampled".into()],
                statement: None,
                line: None,
            }),
        }
    }
    // Most disruptive first: what it blocks, for how long, tables before their indexes.
    out.sort_by_key(|l| {
        (std::cmp::Reverse(l.blocks.len()), std::cmp::Reverse(l.held_ms), l.kind != "table", l.relation.clone())
    });
    out
}

/// Fills a migration's report from what was observed; returns the
/// snapshots before and after it.
pub fn fill(m: &mut MigrationReport, o: Observed) -> (RelationSnapshot, RelationSnapshot) {
    m.wal = o.wal;
    m.locks = o.locks;
    m.longest_read_block = o.longest_read_block;
    m.longest_write_block = o.longest_write_block;
    m.probes = o.probes;
    m.rewrites = o.rewrites;
    m.size_changes = o.size_changes;
    m.top_statements = o.top_statements;
    (o.before, o.after)
}
