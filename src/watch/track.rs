//! Following the release from one reading of production to the next:
//! which migration started (a session runs one of its statements) and
//! finished (its history row is committed), the lock queue behind it, its
//! time against the rehearsal's, the standbys' lag, and the budgets each
//! crosses, as events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use super::events::Event;
use super::release::{normalize_sql, same_statement, Expected, Release};
use crate::catalog::{ProgressNow, WatchedSession};
use crate::report::format_ms;

/// How often a running migration's progress, queue and lag are repeated when nothing changes.
const REPEAT: Duration = Duration::from_secs(5);

/// A slower migration is called out only past its expected time by this much:
/// a migration rehearsed in 5 ms is not "slow" at 50 ms.
const SLOWER_MARGIN_MS: u64 = 1000;

/// One reading of production.
pub struct Reading {
    pub now: SystemTime,
    /// Indexes (into the release's migrations) their history tables record as applied.
    pub applied: BTreeSet<usize>,
    pub sessions: Vec<WatchedSession>,
    pub progress: Vec<ProgressNow>,
    pub lags: Vec<LagReading>,
}

/// One standby's lag at a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct LagReading {
    pub standby: String,
    pub bytes: Option<u64>,
    pub ms: Option<u64>,
    pub wal_bytes_per_second: Option<u64>,
    pub unreachable: bool,
}

/// What the watch saw of one migration.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub started: Option<SystemTime>,
    /// Production had applied it before the watch began: not followed.
    pub before_watch: bool,
    /// Its first statement was seen (not only its history row).
    pub statement_seen: bool,
    pub pid: Option<i32>,
    pub finished: Option<SystemTime>,
    /// Most sessions waiting behind it at once, and the longest wait of one.
    pub peak_queue: usize,
    pub longest_wait_ms: u64,
    /// The longest it waited for a lock itself.
    pub own_wait_ms: u64,
    pub peak_lag_bytes: Option<u64>,
    /// (budget, message) of each threshold it crossed.
    pub breaches: Vec<(String, String)>,
    slower: bool,
    repeated: Option<Instant>,
    phase: Option<String>,
    queue: (usize, bool),
}

impl Seen {
    pub fn duration_ms(&self) -> Option<u64> {
        let (start, end) = (self.started?, self.finished?);
        self.statement_seen.then(|| end.duration_since(start).unwrap_or_default().as_millis() as u64)
    }
}

/// The release as seen so far.
pub struct Tracker {
    pub release: Release,
    pub seen: Vec<Seen>,
    lag_repeated: Option<Instant>,
    /// The lag last told of each standby (bytes).
    lag_told: BTreeMap<String, u64>,
    unreachable: BTreeSet<String>,
}

impl Tracker {
    pub fn new(release: Release) -> Tracker {
        let seen = vec![Seen::default(); release.migrations.len()];
        Tracker { release, seen, lag_repeated: None, lag_told: BTreeMap::new(), unreachable: BTreeSet::new() }
    }

    /// Marks the migrations production had applied before the watch
    /// began (its first reading); how many.
    pub fn applied_before(&mut self, reading: &Reading) -> usize {
        for &i in &reading.applied {
            self.seen[i].finished = Some(reading.now);
            self.seen[i].before_watch = true;
        }
        reading.applied.len()
    }

    /// Every migration has finished.
    pub fn done(&self) -> bool {
        self.seen.iter().all(|s| s.finished.is_some())
    }

    /// The migration running now: the last one started and not finished.
    pub fn running(&self) -> Option<usize> {
        (0..self.seen.len()).rev().find(|&i| self.seen[i].started.is_some() && self.seen[i].finished.is_none())
    }

    /// What changed since the previous reading.
    pub fn observe(&mut self, reading: &Reading) -> Vec<Event> {
        let mut events = Vec::new();
        self.starts(reading, &mut events);
        self.finishes(reading, &mut events);
        // One reading can see a migration's row and the next one's
        // statement: the release is sequential, so starts and ends are told
        // in the release's order (the sort is stable: a start before its end).
        let position = |e: &Event| match e {
            Event::MigrationStarted { migration, .. } | Event::MigrationFinished { migration, .. } => {
                self.release.migrations.iter().position(|m| &m.id == migration)
            }
            _ => None,
        };
        events.sort_by_key(|e| position(e));
        if let Some(i) = self.running() {
            self.follow(i, reading, &mut events);
        }
        self.lags(reading, &mut events);
        events
    }

    /// Migrations whose statements a session runs (or ran last) for the first time.
    fn starts(&mut self, reading: &Reading, events: &mut Vec<Event>) {
        for session in &reading.sessions {
            let query = normalize_sql(&session.query);
            let Some(i) = (0..self.seen.len()).find(|&i| {
                self.seen[i].finished.is_none()
                    && self.release.migrations[i].statements.iter().any(|s| same_statement(&query, s))
            }) else {
                continue;
            };
            let seen = &mut self.seen[i];
            if session.state != "idle" {
                seen.pid = Some(session.pid);
            }
            if seen.started.is_none() {
                let started = reading.now - Duration::from_millis(session.query_ms.max(0) as u64);
                seen.started = Some(started);
                seen.statement_seen = true;
                events.push(started_event(&self.release.migrations[i], seen.pid, started));
            }
        }
    }

    /// Migrations whose history rows appeared.
    fn finishes(&mut self, reading: &Reading, events: &mut Vec<Event>) {
        for &i in &reading.applied {
            let m = &self.release.migrations[i];
            let seen = &mut self.seen[i];
            if seen.finished.is_some() {
                continue;
            }
            if seen.started.is_none() {
                seen.started = Some(reading.now);
                events.push(started_event(m, None, reading.now));
            }
            seen.finished = Some(reading.now);
            events.push(Event::MigrationFinished {
                migration: m.id.clone(),
                duration_ms: seen.duration_ms(),
                rehearsed_ms: m.rehearsed_ms,
                estimate_ms: m.estimate_ms,
            });
        }
    }

    /// The running migration's queue, progress and budgets.
    fn follow(&mut self, i: usize, reading: &Reading, events: &mut Vec<Event>) {
        let m = self.release.migrations[i].clone();
        let seen = &mut self.seen[i];
        let elapsed = reading.now.duration_since(seen.started.unwrap_or(reading.now)).unwrap_or_default();
        let elapsed_ms = elapsed.as_millis() as u64;
        let due = seen.repeated.is_none_or(|at| at.elapsed() >= REPEAT);
        if let Some(pid) = seen.pid {
            let queue = lock_queue(pid, &reading.sessions);
            seen.peak_queue = seen.peak_queue.max(queue.queue);
            seen.longest_wait_ms = seen.longest_wait_ms.max(queue.longest_wait_ms);
            seen.own_wait_ms = seen.own_wait_ms.max(queue.waited_ms);
            let shape = (queue.queue, queue.waiting_for.is_some());
            if (shape.0 > 0 || shape.1) && (shape != seen.queue || due) {
                events.push(queue.event(&m.id, pid));
            }
            seen.queue = shape;
            for crossing in crossed(&m, &queue, elapsed_ms) {
                breach(seen, &m, pid, crossing, events);
            }
        }
        let expected = m.estimate_ms.map_or(m.rehearsed_ms, |e| e.mid);
        let high = m.estimate_ms.map_or(m.rehearsed_ms, |e| e.high.max(m.rehearsed_ms));
        let slower = elapsed_ms > high + SLOWER_MARGIN_MS;
        let phase = seen.pid.and_then(|pid| reading.progress.iter().find(|p| p.pid == pid)).map(phase_line);
        if due || phase != seen.phase || slower != seen.slower {
            events.push(Event::Progress {
                migration: m.id.clone(),
                elapsed_ms,
                rehearsed_ms: m.rehearsed_ms,
                estimate_ms: m.estimate_ms,
                eta_ms: expected.saturating_sub(elapsed_ms),
                slower_than_expected: slower,
                phase: phase.clone(),
            });
            seen.repeated = Some(Instant::now());
        }
        (seen.phase, seen.slower) = (phase, slower);
    }

    /// The standbys' lag: repeated every few seconds, at once when one stops or starts answering.
    fn lags(&mut self, reading: &Reading, events: &mut Vec<Event>) {
        // Lag trails the WAL: once a migration ends, the lag is still its own
        // until the next one starts (the rehearsal's catch_up_ms says so too).
        let running =
            self.running().or_else(|| self.seen.iter().rposition(|s| s.finished.is_some() && !s.before_watch));
        let due = self.lag_repeated.is_none_or(|at| at.elapsed() >= REPEAT);
        let mut any = false;
        for lag in &reading.lags {
            let changed = lag.unreachable != self.unreachable.contains(&lag.standby);
            if lag.unreachable {
                self.unreachable.insert(lag.standby.clone());
            } else {
                self.unreachable.remove(&lag.standby);
            }
            if let Some(i) = running {
                let seen = &mut self.seen[i];
                seen.peak_lag_bytes = seen.peak_lag_bytes.max(lag.bytes);
                if seen.finished.is_none() {
                    self.judge_lag(i, lag, events);
                }
            }
            let last = self.lag_told.get(&lag.standby).copied().unwrap_or(0);
            if due || changed || lag_moved(last, lag.bytes.unwrap_or(0)) {
                any = true;
                self.lag_told.insert(lag.standby.clone(), lag.bytes.unwrap_or(0));
                events.push(Event::Lag {
                    migration: running.map(|i| self.release.migrations[i].id.clone()),
                    standby: lag.standby.clone(),
                    lag_bytes: lag.bytes,
                    lag_ms: lag.ms,
                    wal_bytes_per_second: lag.wal_bytes_per_second,
                    rehearsed_peak_bytes: running.and_then(|i| self.release.migrations[i].standby_peak_bytes),
                    rehearsed_wal_bytes_per_second: running
                        .and_then(|i| self.release.migrations[i].wal_bytes_per_second),
                    unreachable: lag.unreachable,
                });
            }
        }
        if any && due {
            self.lag_repeated = Some(Instant::now());
        }
    }

    fn judge_lag(&mut self, i: usize, lag: &LagReading, events: &mut Vec<Event>) {
        let m = self.release.migrations[i].clone();
        let limit = m.limits.max_standby_lag_ms.or(self.release.max_standby_lag_ms);
        let (Some(limit), Some(ms), Some(pid)) = (limit, lag.ms, self.seen[i].pid) else { return };
        if ms > limit {
            let what = format!("standby {} is {} behind", lag.standby, format_ms(ms));
            let crossing = Crossing { budget: "max_standby_lag", figure: ms, limit, what };
            breach(&mut self.seen[i], &m, pid, crossing, events);
        }
    }
}

/// A lag worth a line between the regular ones: at least 1 MB and twice
/// what was last told, or down to half of it (catching up).
fn lag_moved(told: u64, now: u64) -> bool {
    const MB: u64 = 1 << 20;
    (now >= MB && now >= told.saturating_mul(2)) || (told >= MB && now <= told / 2)
}

fn started_event(m: &Expected, pid: Option<i32>, started: SystemTime) -> Event {
    Event::MigrationStarted {
        migration: m.id.clone(),
        pid,
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        rehearsed_ms: m.rehearsed_ms,
        estimate_ms: m.estimate_ms,
    }
}

/// `CREATE INDEX on public.users: building index 1200/5400 blocks`.
fn phase_line(p: &ProgressNow) -> String {
    let counted = match (p.done, p.total) {
        (Some(done), Some(total)) if p.command.starts_with("COPY") => format!(" {done}/{total} bytes"),
        (Some(done), Some(total)) => format!(" {done}/{total} blocks"),
        _ => String::new(),
    };
    format!("{} on {}: {}{counted}", p.command, p.relation, p.phase)
}

/// The sessions waiting behind the migration's session, and what it waits for itself.
pub struct Queue {
    pub queue: usize,
    pub longest_wait_ms: u64,
    pub waiting_for: Option<String>,
    pub waited_ms: u64,
    pub blocked_by: Vec<i32>,
    /// The mode it waits for blocks reads (or only writes).
    pub blocks_reads: bool,
    pub blocks_writes: bool,
}

fn lock_queue(pid: i32, sessions: &[WatchedSession]) -> Queue {
    let behind: Vec<_> =
        sessions.iter().filter_map(|s| s.waiting.as_ref()).filter(|w| w.blocked_by.contains(&pid)).collect();
    let own = sessions.iter().find(|s| s.pid == pid).and_then(|s| s.waiting.as_ref());
    Queue {
        queue: behind.len(),
        longest_wait_ms: behind.iter().map(|w| w.waited_ms.max(0) as u64).max().unwrap_or(0),
        waiting_for: own.map(|w| match w.mode {
            Some(mode) => format!("{} on {}", mode.as_str(), w.object),
            None => w.object.clone(),
        }),
        waited_ms: own.map_or(0, |w| w.waited_ms.max(0) as u64),
        blocked_by: own.map(|w| w.blocked_by.clone()).unwrap_or_default(),
        blocks_reads: own.and_then(|w| w.mode).is_some_and(|m| m.blocks_reads()),
        blocks_writes: own.and_then(|w| w.mode).is_some_and(|m| m.blocks_writes()),
    }
}

impl Queue {
    fn event(&self, migration: &str, pid: i32) -> Event {
        Event::LockQueue {
            migration: migration.to_string(),
            pid,
            queue: self.queue,
            longest_wait_ms: self.longest_wait_ms,
            waiting_for: self.waiting_for.clone(),
            waited_ms: self.waited_ms,
            blocked_by: self.blocked_by.clone(),
        }
    }
}

/// A budget crossed: its key, the figure and the limit (ms), and what crossed it.
pub struct Crossing {
    pub budget: &'static str,
    pub figure: u64,
    pub limit: u64,
    pub what: String,
}

/// The budgets the running migration crosses now.
/// The app's sessions waiting behind it are judged by `max_probe_wait`
/// (what the rehearsal's probes waited); the migration waiting for a lock
/// that blocks reads (writes) by `max_exclusive_lock` (`max_write_block`),
/// because while it waits in the queue every later request that conflicts
/// with its lock waits behind it ("Table-Level Locks", PostgreSQL 15 and 18).
fn crossed(m: &Expected, q: &Queue, elapsed_ms: u64) -> Vec<Crossing> {
    let l = &m.limits;
    let own = q.waiting_for.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut check = |budget, applies: bool, figure: u64, limit: Option<u64>, what: String| {
        if let Some(limit) = limit.filter(|&limit| applies && figure > limit) {
            out.push(Crossing { budget, figure, limit, what });
        }
    };
    let app = format!("{} session(s) of the app wait behind it, the longest {}", q.queue, format_ms(q.longest_wait_ms));
    check("max_probe_wait", q.queue > 0, q.longest_wait_ms, l.max_probe_wait_ms, app);
    let waited = format!("it has waited {} for {own}", format_ms(q.waited_ms));
    let reads = format!("{waited}, and reads of the table queue behind it");
    check("max_exclusive_lock", q.blocks_reads, q.waited_ms, l.max_exclusive_lock_ms, reads);
    let writes = format!("{waited}, and writes to the table queue behind it");
    check("max_write_block", q.blocks_writes && !q.blocks_reads, q.waited_ms, l.max_write_block_ms, writes);
    check("max_runtime", true, elapsed_ms, l.max_runtime_ms, format!("it has run {}", format_ms(elapsed_ms)));
    out
}

/// A breach line, once per migration and budget.
fn breach(seen: &mut Seen, m: &Expected, pid: i32, crossing: Crossing, events: &mut Vec<Event>) {
    let Crossing { budget, figure, limit, what } = crossing;
    if seen.breaches.iter().any(|(b, _)| b == budget) {
        return;
    }
    let message = format!(
        "{}: {what}, over {budget} {} ({figure} ms > {limit} ms, the rehearsal's budget)",
        m.id,
        format_ms(limit)
    );
    seen.breaches.push((budget.to_string(), message.clone()));
    events.push(Event::Breach {
        migration: m.id.clone(),
        budget: budget.to_string(),
        figure,
        limit,
        message,
        abort: abort_plan(m, pid),
    });
}

/// Cancel the migration's statement, then the recovery the abort rehearsal
/// proved for it; without one, check the history before running it again.
pub fn abort_plan(m: &Expected, pid: i32) -> Vec<String> {
    let mut plan = vec![format!("SELECT pg_cancel_backend({pid});  -- cancels {}'s statement", m.id)];
    match m.abort_recovery.is_empty() {
        true => plan.push(format!(
            "check the migration's history table and leftovers (an INVALID index) before running {} again: \
             its abort was not rehearsed (scenario `abort:`)",
            m.id
        )),
        false => plan.extend(m.abort_recovery.iter().cloned()),
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::LockWait;
    use crate::pg::LockMode;
    use crate::report::Report;

    fn tracker() -> Tracker {
        let report: Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report-v1-demo.json")).expect("a report");
        let mut release = Release::of(&report);
        release.migrations[0].limits.max_probe_wait_ms = Some(500);
        Tracker::new(release)
    }

    fn session(pid: i32, query: &str, waiting: Option<LockWait>) -> WatchedSession {
        let (application_name, state) = (String::new(), "active".to_string());
        WatchedSession { pid, application_name, state, query: query.to_string(), query_ms: 10, waiting }
    }

    fn reading(applied: &[usize], sessions: Vec<WatchedSession>) -> Reading {
        let applied = applied.iter().copied().collect();
        Reading { now: SystemTime::now(), applied, sessions, progress: Vec::new(), lags: Vec::new() }
    }

    fn kinds(events: &[Event]) -> Vec<String> {
        events.iter().map(|e| serde_json::to_value(e).unwrap()["event"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn a_breach_is_told_once_and_a_release_in_order() {
        let mut t = tracker();
        let first = t.release.migrations[0].statements[0].clone();
        let app = LockWait {
            object: "public.users".into(),
            mode: Some(LockMode::AccessShareLock),
            waited_ms: 800,
            blocked_by: vec![41],
        };
        let now = reading(&[], vec![session(41, &first, None), session(42, "select 1", Some(app))]);
        let events = t.observe(&now);
        assert_eq!(kinds(&events), ["migration_started", "lock_queue", "breach", "progress"]);
        let Event::Breach { budget, abort, .. } = &events[2] else { panic!("{events:?}") };
        assert_eq!(budget, "max_probe_wait");
        assert!(abort[0].starts_with("SELECT pg_cancel_backend(41);"), "{abort:?}");
        assert!(!kinds(&t.observe(&now)).contains(&"breach".to_string()), "told once");

        // One reading sees the first's row and the second's statement: the end is told first.
        let second = t.release.migrations[1].statements[0].clone();
        let events = t.observe(&reading(&[0], vec![session(43, &second, None)]));
        assert_eq!(kinds(&events)[..2], ["migration_finished", "migration_started"]);
        assert!(t.seen[0].duration_ms().is_some() && t.running() == Some(1));
    }

    #[test]
    fn lag_is_told_again_when_it_doubles_past_a_megabyte_or_halves() {
        assert!(lag_moved(0, 2 << 20) && lag_moved(1 << 20, 2 << 20) && lag_moved(4 << 20, 1 << 20));
        assert!(!lag_moved(0, 1000) && !lag_moved(3 << 20, 4 << 20));
    }
}
