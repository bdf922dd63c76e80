//! The race itself: the sequential rehearsal's end state read first, then N
//! copies started (each after its jitter), the server read every
//! `watch::INTERVAL` until every copy has ended or the deadline passes,
//! kill_one's kill and fresh copy, then whatever the copies left stopped
//! and the race's end state judged against the sequential one.
//!
//! Every copy runs under the run's cancellation token (a signal: SIGTERM to
//! its group, a grace period, SIGKILL) and a kill switch of its own (kill_one,
//! the deadline: SIGKILL at once); the copies are tasks of a `JoinSet`,
//! which aborts them when dropped, and an aborted copy's process group is
//! killed by the spawn helper's guard, so no path leaves one running.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::barrier::Barrier;
use super::launch::{launch, CopyExit};
use super::verdict::{self, CopyEnd, Evidence};
use super::watch::{self, Watch, INTERVAL};
use super::{hang, RacePlan};
use crate::catalog::{self, SchemaObject};
use crate::error::{Error, ErrorKind, Result};
use crate::migrations::network::ToolNetwork;
use crate::migrations::{redact, MigrationSource};
use crate::pipeline::{Event, EventSink};
use crate::report::{BarrierRelease, RaceCopy, RaceHang, RaceReport, VersionState};
use crate::sys::db::{self, ConnInfo};

/// What the race needs from the run.
pub struct RaceInputs<'a> {
    pub plan: &'a RacePlan,
    /// The rehearsal database, as the sequential rehearsal left it.
    pub rehearsed: &'a ConnInfo,
    /// The fresh copy the copies race on (rehearse's own login: the barrier, the reads).
    pub copy: &'a ConnInfo,
    /// The same database as the migrations' role logs in to it (production's
    /// with `production.as_role`, else `copy`): what each copy is given.
    pub login: &'a ConnInfo,
    pub source: &'a MigrationSource,
    /// How long the sequential rehearsal took (for the default deadline).
    pub sequential: Duration,
    /// How many migrations it applied: none leaves the copies nothing to race on.
    pub applied: usize,
    pub events: &'a dyn EventSink,
    /// How the copies start and reach their database.
    pub network: &'a ToolNetwork,
    pub cancel: &'a CancellationToken,
}

/// How long the copies' sessions may take to end once terminated.
const TERMINATE_PATIENCE: Duration = Duration::from_secs(10);
/// The spawn helper's own deadline for a copy, beyond the race's: a backstop only.
const BACKSTOP: Duration = Duration::from_secs(60);

/// Runs the race and judges it.
pub async fn race(i: RaceInputs<'_>) -> Result<RaceReport> {
    let (expected_versions, expected_schema) = end_state(i.source, i.rehearsed).await?;
    let mut watch = Watch::connect(i.rehearsed, &i.copy.dbname).await?;
    let deadline = i.plan.deadline(i.sequential);
    // As the copies' role: its timeouts bound the wait (see `barrier`).
    let mut barrier = Barrier::hold(i.login, i.source, deadline / 2).await?;
    let mut copies = Copies::new(&i, deadline + BACKSTOP)?;
    for n in 1..=i.plan.replicas {
        copies.start(n, jitter(i.plan.jitter));
    }
    let watched = watch_until_done(&i, &mut copies, &mut watch, &mut barrier, deadline).await;
    // Released before the end state is read: reading the version table waits on it.
    let released = barrier.release().await;
    let duration = copies.started.elapsed();
    let stopped = watch.terminate(TERMINATE_PATIENCE).await;
    let hang = watched?;
    released?;
    stopped?;
    let redact = |t: &str| redact(i.copy, &redact(i.login, t));
    let (found_versions, found_schema) = end_state(i.source, i.copy).await?;
    let versions = VersionState { expected: expected_versions, found: found_versions };
    let schema_differences = verdict::schema_differences(&expected_schema, &found_schema);
    let copy_reports = copies.report(&watch, i.plan.replicas, &redact);
    let barrier = barrier.report(&verdict::failed_when(&copy_reports));
    let kill = watch.kill_report(redact);
    let evidence = Evidence {
        copies: &copy_reports,
        hang: hang.as_ref(),
        kill: kill.as_ref(),
        versions: &versions,
        schema_differences: &schema_differences,
        barrier: &barrier,
        applied: i.applied,
    };
    let (verdict, reasons) = verdict::judge(&evidence);
    Ok(RaceReport {
        replicas: i.plan.replicas,
        verdict,
        command: i.plan.command.shown(),
        database: i.copy.dbname.clone(),
        jitter_ms: millis(i.plan.jitter),
        timeout_ms: millis(deadline),
        duration_ms: millis(duration),
        met_ms: verdict::met(&copy_reports),
        copies: copy_reports,
        barrier: Some(barrier),
        lock: watch.lock(),
        hang,
        kill,
        versions,
        schema_differences,
        reasons,
    })
}

/// Reads the server while the copies run: the barrier's release, kill_one's
/// kill and its fresh copy, until every copy has ended; at the deadline, the
/// hang, and every copy killed. A signal ends it once the copies have stopped.
async fn watch_until_done(
    i: &RaceInputs<'_>,
    copies: &mut Copies,
    watch: &mut Watch,
    barrier: &mut Barrier,
    deadline: Duration,
) -> Result<Option<RaceHang>> {
    let mut pace = tokio::time::interval(INTERVAL);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut killed = false;
    loop {
        tokio::select! {
            _ = pace.tick() => {}
            _ = i.cancel.cancelled() => {
                // Each copy got SIGTERM from the spawn helper; wait for them.
                copies.wait_all().await;
                return Err(Error::Interrupted);
            }
        }
        let at = copies.started.elapsed();
        copies.collect();
        // Not at the barrier, nor on the reading that released it: a copy
        // held there has done nothing yet.
        let let_go = barrier.released();
        let sample = match read(i, copies, watch, barrier, at).await {
            Ok(sample) => sample,
            Err(e) => {
                copies.kill_all();
                copies.wait_all().await;
                return Err(e);
            }
        };
        if i.plan.kill_one && !killed && let_go {
            if let Some((n, doing)) = watch.kill_target(&sample, &copies.running_replicas(i.plan.replicas)) {
                i.events.emit(Event::Note(format!("race: kill_one killed copy {n} (SIGKILL) while {doing}")));
                copies.kill(n);
                watch.killed(n, at, doing);
                killed = true;
            }
        }
        if copies.running.is_empty() {
            if killed && !copies.fresh_started {
                copies.fresh_started = true;
                copies.start(i.plan.replicas + 1, Duration::ZERO);
                continue;
            }
            if i.plan.kill_one && !killed {
                i.events.emit(Event::Note(
                    "race: kill_one killed no copy: none held an advisory lock or ran a statement long enough to be seen"
                        .into(),
                ));
            }
            return Ok(None);
        }
        if at >= deadline {
            let redact = |t: &str| redact(i.copy, &redact(i.login, t));
            let hang = hang::explain(&sample, at, &redact);
            i.events.emit(Event::Note(format!(
                "race: {} copies still running at the deadline: killed",
                copies.running.len()
            )));
            copies.hung = copies.running.clone();
            copies.kill_all();
            copies.wait_all().await;
            return Ok(Some(hang));
        }
    }
}

/// One reading of the server, and the barrier's release when it is due.
async fn read(
    i: &RaceInputs<'_>,
    copies: &Copies,
    watch: &mut Watch,
    barrier: &mut Barrier,
    at: Duration,
) -> Result<watch::Sample> {
    let sample = watch.sample(at, barrier.released()).await?;
    let running = copies.running_replicas(i.plan.replicas);
    if let Some(release) = barrier.check(&sample, &running).await? {
        if release != BarrierRelease::AllArrived {
            i.events.emit(Event::Note(format!(
                "race: the barrier let the copies go at {} before every copy had reached the database ({})",
                crate::report::format_ms(millis(at)),
                release.as_str()
            )));
        }
    }
    Ok(sample)
}

/// The copies started so far: running, and how each ended.
struct Copies {
    set: JoinSet<(usize, Duration, Duration, CopyExit)>,
    kills: BTreeMap<usize, CancellationToken>,
    running: BTreeSet<usize>,
    /// copy → (started, finished, how), since the race started.
    ended: BTreeMap<usize, Ended>,
    hung: BTreeSet<usize>,
    fresh_started: bool,
    started: Instant,
    command: super::CopyCommand,
    /// The race's database, as the copies reach it.
    database: ConnInfo,
    network: ToolNetwork,
    backstop: Duration,
    cancel: CancellationToken,
}

struct Ended {
    started: Duration,
    finished: Duration,
    exit: CopyExit,
}

impl Copies {
    fn new(i: &RaceInputs<'_>, backstop: Duration) -> Result<Copies> {
        Ok(Copies {
            set: JoinSet::new(),
            kills: BTreeMap::new(),
            running: BTreeSet::new(),
            ended: BTreeMap::new(),
            hung: BTreeSet::new(),
            fresh_started: false,
            started: Instant::now(),
            command: i.plan.command.clone(),
            database: i.network.reachable(&i.plan.command.launch, i.login)?,
            network: i.network.clone(),
            backstop,
            cancel: i.cancel.clone(),
        })
    }

    /// Starts copy `n` after `delay`.
    fn start(&mut self, n: usize, delay: Duration) {
        let invocation = self.command.for_copy(&self.database, &watch::application_name(n), &self.network);
        let kill = CancellationToken::new();
        self.kills.insert(n, kill.clone());
        self.running.insert(n);
        let (race_started, backstop, cancel) = (self.started, self.backstop, self.cancel.clone());
        let label = format!("race copy {n} (`{}`)", self.command.shown());
        self.set.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => {
                    let at = race_started.elapsed();
                    return (n, at, at, CopyExit { interrupted: true, ..CopyExit::default() });
                }
                _ = kill.cancelled() => {
                    let at = race_started.elapsed();
                    return (n, at, at, CopyExit { killed: true, ..CopyExit::default() });
                }
            }
            let started = race_started.elapsed();
            let exit = launch(invocation, &label, backstop, &cancel, kill).await;
            (n, started, race_started.elapsed(), exit)
        });
    }

    /// Records the copies that have ended since the last call.
    fn collect(&mut self) {
        while let Some(done) = self.set.try_join_next() {
            self.record(done);
        }
    }

    async fn wait_all(&mut self) {
        while let Some(done) = self.set.join_next().await {
            self.record(done);
        }
    }

    fn record(&mut self, done: Result<(usize, Duration, Duration, CopyExit), tokio::task::JoinError>) {
        // A copy's task only ends by returning (the set is never aborted while in use).
        if let Ok((n, started, finished, exit)) = done {
            self.running.remove(&n);
            self.ended.insert(n, Ended { started, finished, exit });
        }
    }

    /// The replicas still running (not the fresh copy).
    fn running_replicas(&self, replicas: usize) -> Vec<usize> {
        self.running.iter().copied().filter(|n| *n <= replicas).collect()
    }

    fn kill(&self, n: usize) {
        if let Some(k) = self.kills.get(&n) {
            k.cancel();
        }
    }

    fn kill_all(&self) {
        for n in &self.running {
            self.kill(*n);
        }
    }

    /// Each copy as the report shows it.
    fn report(self, watch: &Watch, replicas: usize, redact: &dyn Fn(&str) -> String) -> Vec<RaceCopy> {
        // Set only at the deadline: the copies still running then.
        let hung = &self.hung;
        self.ended
            .into_iter()
            .map(|(n, f)| {
                let seen = watch.seen(n);
                let end = CopyEnd {
                    copy: n,
                    exit: f.exit,
                    started_ms: millis(f.started),
                    finished_ms: (!hung.contains(&n)).then(|| millis(f.finished)),
                    first_seen_ms: seen.map(|(first, _)| millis(first)),
                    last_seen_ms: seen.map(|(_, last)| millis(last)),
                    hung: hung.contains(&n),
                    fresh: n > replicas,
                    waited_ms: watch.waited_ms(n),
                };
                end.report(redact)
            })
            .collect()
    }
}

/// The version rows and the schema of `db`'s database.
async fn end_state(source: &MigrationSource, db: &ConnInfo) -> Result<(Vec<String>, Vec<SchemaObject>)> {
    let client = db::connect(db, &db.dbname, "rehearse-race-check").await.map_err(|e| {
        ErrorKind::ConnectionFailed
            .because(format!("cannot connect to {} to read its schema", db.masked(&db.dbname)), e)
    })?;
    let versions = source.version_state(&client).await?;
    let except = [crate::migrations::sql::DEFAULT_TABLE, catalog::HEARTBEAT_TABLE];
    let schema = catalog::schema_objects(&client, &except)
        .await
        .map_err(|e| ErrorKind::CatalogReadFailed.because(format!("cannot read the schema of {}", db.dbname), e))?;
    Ok((versions, schema))
}

/// A random delay in 0..=jitter.
fn jitter(max: Duration) -> Duration {
    Duration::from_millis(rand::rng().random_range(0..=max.as_millis() as u64))
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}
