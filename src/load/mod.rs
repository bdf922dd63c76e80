//! The app's traffic during each migration (`load:`): the workload replayed
//! at production's rate by a generator of its own, the long transactions
//! production has held open on their tables, and what the app felt,
//! measured against a baseline of the same workload right before each
//! migration. Per migration:
//!
//! 1. the generator starts and runs alone for `load.baseline`;
//! 2. the long transactions take their locks;
//! 3. the migration runs (observed as without load; the load's sessions are
//!    left out of every observer's readings), the lock queue behind it sampled;
//! 4. the generator stops issuing, gives the statements still waiting a
//!    moment to finish, cancels the rest; the long transactions end.
//!
//! The workload changes the copy (its writes are replayed): the WAL, sizes
//! and statistics each migration reports include the app's share of them.

pub mod fill;
pub mod generator;
mod long;
pub mod measure;
mod queue;
pub mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::report::{LoadInfo, LongTransactionInfo, MigrationLoad, NotReplayedInfo};
use crate::sys::db::{self, ConnInfo};
use generator::Generator;
pub use long::LongTransaction;
use long::{Holding, LongSessions};
use queue::QueueSampler;
use workload::Workload;

/// How long statements still running when a migration ended get to
/// finish before they are cancelled: those queued behind its locks get
/// them as soon as it commits, so a second is plenty; what still waits
/// then waits on something else (a transaction left open).
const GRACE: Duration = Duration::from_secs(1);

/// How often the lock queue is sampled (`pg_blocking_pids` is not free:
/// the manual warns against calling it often).
const QUEUE_INTERVAL: Duration = Duration::from_millis(100);

/// How fast to replay the workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// The rates the workload carries.
    Production,
    /// A multiple of them (`2x`, `0.2x`).
    Times(f64),
    /// Statements per second in all, shared as the workload's rates say (evenly without).
    PerSecond(f64),
}

impl Rate {
    /// `production`, `2x`, `50/s` or `600/min`; None when it is none of them.
    pub fn parse(text: &str) -> Option<Rate> {
        let t = text.trim();
        let positive = |v: &str| v.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0);
        if t == "production" {
            Some(Rate::Production)
        } else if let Some(k) = t.strip_suffix('x') {
            positive(k).map(Rate::Times)
        } else if let Some(n) = t.strip_suffix("/s") {
            positive(n).map(Rate::PerSecond)
        } else if let Some(n) = t.strip_suffix("/min") {
            positive(n).map(|n| Rate::PerSecond(n / 60.0))
        } else {
            None
        }
    }

    /// Each statement's rate (statements per second), from their production
    /// rates (None where the workload has none).
    pub fn per_statement(self, production: &[Option<f64>]) -> Option<Vec<f64>> {
        let all: Option<Vec<f64>> = production.iter().copied().collect();
        match (self, all) {
            (Rate::Production, all) => all,
            (Rate::Times(k), all) => Some(all?.iter().map(|r| r * k).collect()),
            (Rate::PerSecond(total), Some(all)) if all.iter().sum::<f64>() > 0.0 => {
                let sum: f64 = all.iter().sum();
                Some(all.iter().map(|r| r / sum * total).collect())
            }
            (Rate::PerSecond(total), _) => Some(vec![total / production.len().max(1) as f64; production.len()]),
        }
    }
}

/// The scenario's `load:`, checked.
#[derive(Debug)]
pub struct LoadPlan {
    pub workload: Workload,
    pub rate: Rate,
    /// As the scenario writes it.
    pub rate_shown: String,
    pub window_rate: Option<Rate>,
    pub clients: u32,
    /// Tables as the scenario names them (resolved on the copy).
    pub long_transactions: Vec<LongTransaction>,
    pub baseline: Duration,
    pub stall_threshold: Duration,
}

/// The load, connected to the copy for the whole rehearse stage.
pub struct Load {
    generator: Generator,
    long: LongSessions,
    queue: Arc<Client>,
    queue_pid: i32,
    /// Each replayed statement's tables, in the generator's order.
    tables: Vec<Vec<String>>,
    baseline: Duration,
    stall_threshold: Duration,
    /// Sessions that are neither the app's nor the migration's.
    not_migration: Vec<i32>,
    info: LoadInfo,
    /// Statements issued during the baselines, and their time.
    baseline_issued: u64,
    baseline_time: Duration,
    load_time: Duration,
    cpu: Duration,
}

/// One migration's load, from its baseline to its end.
pub struct Measuring {
    migration: Instant,
    holding: Holding,
    queue: QueueSampler,
}

impl Load {
    /// Fills the workload's parameters from the copy, resolves the long
    /// transactions' tables (one the copy lacks is the scenario's mistake)
    /// and connects every session; nothing runs yet.
    pub async fn connect(plan: &LoadPlan, conn: &ConnInfo) -> Result<Load> {
        let env = |what: &str| {
            let what = what.to_string();
            move |e| ErrorKind::CatalogReadFailed.because(format!("cannot start the load: {what}"), e)
        };
        let queue = db::connect(conn, &conn.dbname, "rehearse-load-queue").await.map_err(env("its queue sampler"))?;
        let queue_pid = crate::catalog::backend_pid(&queue).await.map_err(env("its queue sampler"))?;
        let (statements, not_replayed) = fill::prepare(&queue, &plan.workload).await?;
        if statements.is_empty() {
            return Err(ErrorKind::ScenarioInvalid.error(format!(
                "load.queries {}: none of its {} statement(s) can be replayed (listed with --verbose in the report: \
                 {}); give statements whose parameters are compared with a column, or `\\set` values",
                plan.workload.path.display(),
                not_replayed.len(),
                not_replayed.first().map_or(String::new(), |n| format!("line {}: {}", n.line, n.reason)),
            )));
        }
        let transactions = resolve_tables(&queue, &plan.long_transactions).await?;
        let production: Vec<Option<f64>> = statements.iter().map(|s| s.rate).collect();
        let rates = plan.rate.per_statement(&production).ok_or_else(|| no_rates(plan))?;
        let window = plan.window_rate.map(|w| w.per_statement(&production).ok_or_else(|| no_rates(plan)));
        let window_rate = window.transpose()?.map(|w| w.iter().sum());
        let info = LoadInfo {
            queries: plan.workload.path.display().to_string(),
            rate: plan.rate_shown.clone(),
            rate_asked: round(rates.iter().sum()),
            window_rate: window_rate.map(round),
            clients: plan.clients,
            baseline_ms: plan.baseline.as_millis() as u64,
            stall_threshold_ms: plan.stall_threshold.as_millis() as u64,
            long_transactions: transactions
                .iter()
                .map(|t| LongTransactionInfo { table: t.table.clone(), duration_ms: t.duration.as_millis() as u64 })
                .collect(),
            replayed: statements.len(),
            not_replayed: not_replayed
                .into_iter()
                .map(|n| NotReplayedInfo { line: n.line, sql: n.sql, reason: n.reason })
                .collect(),
            ..LoadInfo::default()
        };
        let statements = Arc::new(statements);
        let workload = generator::Workload { statements: statements.clone(), rates, clients: plan.clients };
        let generator = Generator::connect(conn, workload).await.map_err(env("its client sessions"))?;
        let long = LongSessions::connect(conn, &transactions).await.map_err(env("its long transactions"))?;
        let mut not_migration = long.pids.clone();
        not_migration.push(queue_pid);
        Ok(Load {
            generator,
            long,
            queue: Arc::new(queue),
            queue_pid,
            tables: statements.iter().map(|s| s.tables.clone()).collect(),
            baseline: plan.baseline,
            stall_threshold: plan.stall_threshold,
            not_migration,
            info,
            baseline_issued: 0,
            baseline_time: Duration::ZERO,
            load_time: Duration::ZERO,
            cpu: Duration::ZERO,
        })
    }

    /// Every session of the load, to leave out of the observers' readings.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = self.generator.pids.clone();
        pids.extend(&self.long.pids);
        pids.push(self.queue_pid);
        pids
    }

    /// rehearse's own sessions (observers, probes): not the migration's.
    pub fn also_not_migration(&mut self, pids: &[i32]) {
        self.not_migration.extend(pids);
    }

    /// The baseline, then the long transactions: the migration starts when this returns.
    pub async fn before_migration(&mut self, cancel: &CancellationToken) -> Result<Measuring> {
        self.generator.start().await;
        tokio::select! {
            _ = tokio::time::sleep(self.baseline) => {}
            _ = cancel.cancelled() => {
                self.generator.stop(Duration::ZERO).await;
                return Err(Error::Interrupted);
            }
        }
        let holding = match self.long.begin().await {
            Ok(h) => h,
            Err(e) => {
                self.generator.stop(Duration::ZERO).await;
                return Err(ErrorKind::CatalogReadFailed.because("cannot open the load's long transactions", e));
            }
        };
        let app = self.generator.pids.clone();
        let queue = QueueSampler::start(self.queue.clone(), app, self.not_migration.clone(), QUEUE_INTERVAL);
        Ok(Measuring { migration: Instant::now(), holding, queue })
    }

    /// Stops the load once the migration ended (at `end`): what the app felt.
    pub async fn after_migration(&mut self, m: Measuring, end: Instant) -> MigrationLoad {
        let queue = m.queue.finish().await;
        let phase = self.generator.stop(GRACE).await;
        m.holding.end().await;
        let marks = measure::Marks { migration: m.migration, end, queued_on: queue.table };
        let mut load = measure::migration(&phase, &marks, &self.tables, self.stall_threshold);
        load.max_queue = queue.longest;
        self.baseline_issued += load.baseline_statements;
        self.baseline_time += self.baseline;
        self.load_time += phase.elapsed;
        self.cpu += phase.cpu;
        self.info.dropped += phase.dropped.len() as u64;
        load
    }

    /// The load as a whole, so far.
    pub fn info(&self) -> LoadInfo {
        let per_second = |n: u64, t: Duration| if t.is_zero() { 0.0 } else { round(n as f64 / t.as_secs_f64()) };
        LoadInfo {
            rate_reached: per_second(self.baseline_issued, self.baseline_time),
            generator_cpu_ms: self.cpu.as_millis() as u64,
            generator_cpu_share: match self.load_time.is_zero() {
                true => 0.0,
                false => (self.cpu.as_secs_f64() / self.load_time.as_secs_f64() * 100.0).round() / 100.0,
            },
            ..self.info.clone()
        }
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn no_rates(plan: &LoadPlan) -> Error {
    ErrorKind::ScenarioInvalid.error(format!(
        "load.rate is {}, but load.queries {} has statements without a rate: export it with `rehearse queries` \
         (which carries each statement's calls per second), put `-- rate: N/s` above each statement, or give \
         load.rate as statements per second (`load.rate: 50/s`)",
        plan.rate_shown,
        plan.workload.path.display()
    ))
}

/// The long transactions' tables as the catalog names them.
async fn resolve_tables(client: &Client, transactions: &[LongTransaction]) -> Result<Vec<LongTransaction>> {
    let mut resolved = Vec::new();
    for t in transactions {
        let found = crate::catalog::canonical_name(client, &t.table).await.map_err(|e| {
            ErrorKind::CatalogReadFailed.because(format!("cannot look up load.long_transactions table {}", t.table), e)
        })?;
        let table = found.ok_or_else(|| {
            ErrorKind::ScenarioInvalid.error(format!(
                "load.long_transactions names table {}, which the restored database does not have: name a table \
                 as `schema.table` or `table`",
                t.table
            ))
        })?;
        resolved.push(LongTransaction { table, duration: t.duration });
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_as_the_scenario_writes_them() {
        assert_eq!(Rate::parse("production"), Some(Rate::Production));
        assert_eq!(Rate::parse("2x"), Some(Rate::Times(2.0)));
        assert_eq!(Rate::parse("50/s"), Some(Rate::PerSecond(50.0)));
        assert_eq!(Rate::parse("600/min"), Some(Rate::PerSecond(10.0)));
        for bad in ["fast", "0x", "-3/s", "50", "x"] {
            assert_eq!(Rate::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn per_statement_rates() {
        let prod = [Some(30.0), Some(10.0)];
        assert_eq!(Rate::Production.per_statement(&prod), Some(vec![30.0, 10.0]));
        assert_eq!(Rate::Times(2.0).per_statement(&prod), Some(vec![60.0, 20.0]));
        assert_eq!(Rate::PerSecond(8.0).per_statement(&prod), Some(vec![6.0, 2.0]));
        let none = [None, Some(1.0)];
        assert_eq!(Rate::Production.per_statement(&none), None, "production needs every rate");
        assert_eq!(Rate::PerSecond(8.0).per_statement(&none), Some(vec![4.0, 4.0]), "evenly without");
    }
}
