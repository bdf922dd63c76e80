//! The load generator: `clients` sessions replaying the workload at the
//! asked rate, on a thread of their own (a single-threaded runtime), so the
//! CPU it takes from the box it shares with the server is measured on its
//! own (`getrusage(RUSAGE_THREAD)`) and its sessions stay connected from
//! one migration to the next (their pids are left out of every observer's
//! readings, and the proof that a command connected to the copy counts
//! sessions established during the migration).
//!
//! Open loop: a dispatcher issues the statements at the rate, each to the
//! next free session, whatever the server does; when every session is busy
//! (all waiting on a lock, say) and the queue of statements for them is
//! full, a statement is not issued and is counted as dropped, so a rate
//! the machine could not reach is seen, never silently lowered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::fill::Replayable;
use crate::sys::db::{self, ConnInfo};

/// How the dispatcher paces itself: statements due in each tick are issued
/// together (a timer finer than this costs more than it brings on 2 cores).
const TICK: Duration = Duration::from_millis(5);

/// One statement the generator issued.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Its index in the replayed statements.
    pub statement: usize,
    pub start: Instant,
    pub latency: Duration,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// The server's SQLSTATE, or `connection` when the session failed.
    Failed(String),
    /// Still running when the phase stopped (it waited this long at least).
    Cut,
}

/// What one phase (from `start` to `stop`) issued.
#[derive(Debug, Default)]
pub struct Phase {
    pub samples: Vec<Sample>,
    /// When statements were due while every session was busy and the queue full: not issued.
    pub dropped: Vec<Instant>,
    /// The generator thread's CPU time during the phase.
    pub cpu: Duration,
    pub elapsed: Duration,
}

enum Command {
    Start(oneshot::Sender<()>),
    Stop(Duration, oneshot::Sender<Phase>),
}

/// The generator's thread and its sessions.
pub struct Generator {
    commands: mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The sessions' backend pids.
    pub pids: Vec<i32>,
}

/// What the generator replays, and how fast.
pub struct Workload {
    pub statements: Arc<Vec<Replayable>>,
    /// Statements per second of each statement (same order).
    pub rates: Vec<f64>,
    pub clients: u32,
}

impl Generator {
    /// Starts the thread and connects the sessions (idle until [`Generator::start`]).
    pub async fn connect(conn: &ConnInfo, workload: Workload) -> Result<Generator, tokio_postgres::Error> {
        let (commands, receiver) = mpsc::unbounded_channel();
        let (ready, connected) = oneshot::channel();
        let conn = conn.clone();
        let thread = std::thread::Builder::new()
            .name("rehearse-load".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                let runtime = runtime.expect("a single-threaded tokio runtime builds");
                runtime.block_on(serve(conn, workload, ready, receiver));
            })
            .expect("the load generator's thread starts");
        match connected.await {
            Ok(Ok(pids)) => Ok(Generator { commands, thread: Some(thread), pids }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => panic!("the load generator's thread ended before connecting"),
        }
    }

    /// Starts issuing statements.
    pub async fn start(&self) {
        let (reply, started) = oneshot::channel();
        if self.commands.send(Command::Start(reply)).is_ok() {
            let _ = started.await;
        }
    }

    /// Stops issuing; statements still running get `grace` to finish before
    /// they are cancelled (and counted as cut).
    pub async fn stop(&self, grace: Duration) -> Phase {
        let (reply, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(grace, reply)).is_err() {
            return Phase::default();
        }
        stopped.await.unwrap_or_default()
    }
}

impl Drop for Generator {
    /// Closing the channel ends the thread, which closes the sessions.
    fn drop(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.commands, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's work: connect, then run phases as told until the channel closes.
async fn serve(
    conn: ConnInfo,
    workload: Workload,
    ready: oneshot::Sender<Result<Vec<i32>, tokio_postgres::Error>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut clients = Vec::new();
    for _ in 0..workload.clients {
        let connected = async {
            let client = db::connect(&conn, &conn.dbname, "rehearse-load").await?;
            let pid = crate::catalog::backend_pid(&client).await?;
            Ok::<_, tokio_postgres::Error>((Arc::new(client), pid))
        };
        match connected.await {
            Ok(c) => clients.push(c),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    }
    let _ = ready.send(Ok(clients.iter().map(|(_, pid)| *pid).collect()));
    let clients: Vec<Arc<Client>> = clients.into_iter().map(|(c, _)| c).collect();
    let mut running: Option<Running> = None;
    let mut seed = 0x5eed_u64;
    while let Some(command) = commands.recv().await {
        match command {
            Command::Start(reply) => {
                seed += 1;
                running = Some(Running::start(&clients, &workload, seed, conn.tls.clone()));
                let _ = reply.send(());
            }
            Command::Stop(grace, reply) => {
                let phase = match running.take() {
                    Some(r) => r.stop(grace).await,
                    None => Phase::default(),
                };
                let _ = reply.send(phase);
            }
        }
    }
}

/// One phase being issued.
struct Running {
    /// Stop taking statements.
    stop: CancellationToken,
    /// Cancel the statements still running.
    cut: CancellationToken,
    dispatcher: tokio::task::JoinHandle<Vec<Instant>>,
    sessions: Vec<(tokio::task::JoinHandle<Vec<Sample>>, Arc<Client>)>,
    cpu: Duration,
    started: Instant,
    /// For cancel requests, over the sessions' TLS.
    tls: crate::sys::tls::Tls,
}

impl Running {
    fn start(clients: &[Arc<Client>], workload: &Workload, seed: u64, tls: crate::sys::tls::Tls) -> Running {
        let (stop, cut) = (CancellationToken::new(), CancellationToken::new());
        let (jobs, queue) = mpsc::channel::<(usize, String)>(clients.len() * 2);
        let queue = Arc::new(Mutex::new(queue));
        let dispatcher =
            tokio::spawn(dispatch(workload.statements.clone(), workload.rates.clone(), jobs, stop.clone(), seed));
        let sessions = clients
            .iter()
            .map(|c| (tokio::spawn(session(c.clone(), queue.clone(), stop.clone(), cut.clone())), c.clone()))
            .collect();
        Running { stop, cut, dispatcher, sessions, cpu: thread_cpu(), started: Instant::now(), tls }
    }

    async fn stop(self, grace: Duration) -> Phase {
        self.stop.cancel();
        let dropped = self.dispatcher.await.unwrap_or_default();
        let waited = Instant::now();
        let mut samples = Vec::new();
        for (mut task, client) in self.sessions {
            let left = grace.saturating_sub(waited.elapsed());
            let done = match tokio::time::timeout(left, &mut task).await {
                Ok(done) => done,
                Err(_) => {
                    self.cut.cancel();
                    db::cancel(&self.tls, &client).await;
                    task.await
                }
            };
            samples.extend(done.unwrap_or_default());
        }
        samples.sort_by_key(|s| s.start);
        Phase { samples, dropped, cpu: thread_cpu().saturating_sub(self.cpu), elapsed: self.started.elapsed() }
    }
}

/// Issues the statements at their rates until stopped; returns when
/// statements were due while the queue was full.
async fn dispatch(
    statements: Arc<Vec<Replayable>>,
    rates: Vec<f64>,
    jobs: mpsc::Sender<(usize, String)>,
    stop: CancellationToken,
    seed: u64,
) -> Vec<Instant> {
    let total: f64 = rates.iter().sum();
    let cumulative: Vec<f64> = rates
        .iter()
        .scan(0.0, |sum, r| {
            *sum += r;
            Some(*sum)
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut pace = crate::observe::Pace::new(TICK, stop);
    let (mut due, mut dropped, mut last) = (0.0_f64, Vec::new(), Instant::now());
    while pace.tick().await {
        let now = Instant::now();
        due += total * (now - last).as_secs_f64();
        last = now;
        while due >= 1.0 {
            due -= 1.0;
            let pick = rng.random::<f64>() * total;
            let i = cumulative.partition_point(|c| *c <= pick).min(statements.len() - 1);
            let sql = format!("{} /*rehearse*/", statements[i].render(&mut rng));
            if jobs.try_send((i, sql)).is_err() {
                dropped.push(now);
            }
        }
    }
    dropped
}

/// One session: takes the next statement, times it, until stopped (or cut).
async fn session(
    client: Arc<Client>,
    queue: Arc<Mutex<mpsc::Receiver<(usize, String)>>>,
    stop: CancellationToken,
    cut: CancellationToken,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    loop {
        let job = {
            let mut queue = queue.lock().await;
            tokio::select! {
                biased;
                _ = stop.cancelled() => None,
                job = queue.recv() => job,
            }
        };
        let Some((statement, sql)) = job else { return samples };
        let start = Instant::now();
        let outcome = tokio::select! {
            r = client.simple_query(&sql) => match r {
                Ok(_) => Outcome::Completed,
                Err(e) => Outcome::Failed(e.code().map_or_else(|| "connection".to_string(), |c| c.code().to_string())),
            },
            _ = cut.cancelled() => Outcome::Cut,
        };
        let cut_off = outcome == Outcome::Cut;
        samples.push(Sample { statement, start, latency: start.elapsed(), outcome });
        if cut_off {
            return samples;
        }
    }
}

/// This thread's CPU time so far (user + system).
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}
