//! What the server shows while the copies run, read every [`INTERVAL`] from
//! a session of its own in the rehearsal database (never the race's: an
//! index built CONCURRENTLY there waits for every snapshot in its database,
//! ours included): the copies' sessions (`pg_stat_activity`, with
//! `pg_blocking_pids` for those waiting on a lock) and the advisory locks of
//! the race's database (`pg_locks`). Each reading is added up into how long
//! each copy waited on locks, the lock the copies serialized on, and what a
//! copy killed by `kill_one` left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_postgres::Client;

use crate::catalog::{self, AdvisoryLockRow, RaceSession};
use crate::error::{Error, ErrorKind, Result};
use crate::pg::ActivityState;
use crate::report::{AdvisoryLockKind, RaceKill, RaceLock, StaleLock, Survivor};
use crate::sys::db::{self, ConnInfo};

/// How often the server is read: often enough to catch a lock held for a
/// statement's length, rarely enough that `pg_blocking_pids` (which takes
/// the lock manager's locks) costs the copies nothing noticeable.
pub const INTERVAL: Duration = Duration::from_millis(50);
/// The copies' sessions are told apart by their application_name:
/// `rehearse-race-copy-<n>`, set in PGAPPNAME and in DATABASE_URL.
pub const APP_PREFIX: &str = "rehearse-race-copy-";
/// A statement running at least this long is the copy's migration at work,
/// not its driver's start-up queries: `kill_one` may kill it there.
const BUSY: i64 = 100;

/// The application_name of copy `n`'s sessions.
pub fn application_name(n: usize) -> String {
    format!("{APP_PREFIX}{n}")
}

/// The copy a session belongs to, by its application_name.
pub fn copy_of(session: &RaceSession) -> Option<usize> {
    session.application_name.strip_prefix(APP_PREFIX)?.parse().ok()
}

/// One reading of the server.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Since the race started.
    pub at: Duration,
    pub sessions: Vec<RaceSession>,
    pub locks: Vec<AdvisoryLockRow>,
}

impl Sample {
    /// Whether `session` waits on a lock (a heavyweight one: relation, advisory, transaction id, ...).
    pub fn waiting(session: &RaceSession) -> bool {
        session.wait_event_type.as_deref() == Some("Lock")
    }
}

/// The readings added up.
pub struct Watch {
    client: Client,
    /// The race's database.
    database: String,
    last: Option<Duration>,
    waited: BTreeMap<usize, Duration>,
    /// copy → the first and the last reading that showed a session of it.
    seen: BTreeMap<usize, (Duration, Duration)>,
    /// Every session seen, and its copy.
    pids: BTreeMap<i32, usize>,
    lock: Option<LockSeen>,
    killed: Option<Killed>,
}

/// The advisory lock, as the readings showed it.
struct LockSeen {
    key: String,
    /// Seen held by a session outside any transaction: a session-level lock.
    held_while_idle: bool,
    /// The lock functions the holders' and waiters' queries called.
    calls: BTreeSet<AdvisoryLockKind>,
    holders: Vec<usize>,
    waiters: Vec<usize>,
}

/// The copy kill_one killed, and what it left.
struct Killed {
    copy: usize,
    at: Duration,
    doing: String,
    pids: BTreeSet<i32>,
    /// pid → (last seen, after the kill; its query).
    survivors: BTreeMap<i32, (Duration, String)>,
    stale: Option<StaleLock>,
}

impl Watch {
    pub async fn connect(conn: &ConnInfo, database: &str) -> Result<Watch> {
        let client = db::connect(conn, &conn.dbname, "rehearse-race-watch")
            .await
            .map_err(|e| ErrorKind::ConnectionFailed.because("cannot connect to watch the racing copies", e))?;
        Ok(Watch {
            client,
            database: database.to_string(),
            last: None,
            waited: BTreeMap::new(),
            seen: BTreeMap::new(),
            pids: BTreeMap::new(),
            lock: None,
            killed: None,
        })
    }

    /// Reads the server once and adds the reading up; the copies' lock
    /// waits only once `released` (a wait at the barrier is rehearse's).
    pub async fn sample(&mut self, at: Duration, released: bool) -> Result<Sample> {
        let env = |e| ErrorKind::CatalogReadFailed.because("cannot read the racing copies' sessions and locks", e);
        let sessions = catalog::race_sessions(&self.client, &self.database, APP_PREFIX).await.map_err(env)?;
        let locks = catalog::advisory_locks(&self.client, &self.database).await.map_err(env)?;
        let sample = Sample { at, sessions, locks };
        let dt = at.saturating_sub(self.last.unwrap_or(at.saturating_sub(INTERVAL)));
        self.last = Some(at);
        self.add(&sample, dt, released);
        Ok(sample)
    }

    fn add(&mut self, sample: &Sample, dt: Duration, released: bool) {
        for s in &sample.sessions {
            if let Some(copy) = copy_of(s) {
                self.pids.insert(s.pid, copy);
                self.seen.entry(copy).or_insert((sample.at, sample.at)).1 = sample.at;
            }
        }
        let waiting: BTreeSet<usize> =
            sample.sessions.iter().filter(|s| Sample::waiting(s)).filter_map(copy_of).collect();
        for copy in waiting.into_iter().filter(|_| released) {
            *self.waited.entry(copy).or_default() += dt;
        }
        self.add_locks(sample);
        if let Some(killed) = &mut self.killed {
            killed.add(sample, dt);
        }
    }

    fn add_locks(&mut self, sample: &Sample) {
        let session = |pid: i32| sample.sessions.iter().find(|s| s.pid == pid);
        for row in &sample.locks {
            let Some(copy) = self.pids.get(&row.pid).copied() else { continue };
            let seen = self.lock.get_or_insert_with(|| LockSeen {
                key: row.key.clone(),
                held_while_idle: false,
                calls: BTreeSet::new(),
                holders: Vec::new(),
                waiters: Vec::new(),
            });
            if seen.key != row.key {
                continue;
            }
            let list = if row.granted { &mut seen.holders } else { &mut seen.waiters };
            if !list.contains(&copy) {
                list.push(copy);
            }
            let s = session(row.pid);
            seen.held_while_idle |= row.granted && s.is_some_and(|s| s.state == ActivityState::Idle);
            if let Some(call) = s.and_then(|s| advisory_call(&s.query)) {
                seen.calls.insert(call);
            }
        }
    }

    /// How long copy `n`'s sessions waited on locks, as the readings saw.
    pub fn waited_ms(&self, n: usize) -> u64 {
        self.waited.get(&n).map_or(0, |d| d.as_millis() as u64)
    }

    /// When the readings first and last showed a session of copy `n`.
    pub fn seen(&self, n: usize) -> Option<(Duration, Duration)> {
        self.seen.get(&n).copied()
    }

    /// The lock the copies serialized on, if one was seen.
    pub fn lock(&self) -> Option<RaceLock> {
        let seen = self.lock.as_ref()?;
        let kind = match (seen.calls.iter().next(), seen.held_while_idle) {
            (Some(call), _) if seen.calls.len() == 1 => *call,
            (_, true) => AdvisoryLockKind::Session,
            _ => AdvisoryLockKind::Unknown,
        };
        Some(RaceLock { kind, key: seen.key.clone(), holders: seen.holders.clone(), waiters: seen.waiters.clone() })
    }

    /// The copy kill_one should kill now, among `running`, and what it is
    /// doing: one holding an advisory lock, else one running a statement of
    /// its migration (for at least [`BUSY`] ms).
    pub fn kill_target(&self, sample: &Sample, running: &[usize]) -> Option<(usize, String)> {
        let of = |copy: usize| sample.sessions.iter().filter(move |s| copy_of(s) == Some(copy));
        let holder = sample.locks.iter().filter(|l| l.granted).find_map(|l| {
            let copy = self.pids.get(&l.pid).copied().filter(|c| running.contains(c))?;
            Some((copy, format!("holding advisory lock {} (pid {})", l.key, l.pid)))
        });
        let busy = || {
            let copy = running
                .iter()
                .copied()
                .find(|&c| of(c).any(|s| s.state == ActivityState::Active && s.running_ms >= BUSY))?;
            Some((copy, String::new()))
        };
        let (copy, mut doing) = holder.or_else(busy)?;
        for s in of(copy).filter(|s| s.state == ActivityState::Active) {
            let what = format!("running `{}` (pid {})", crate::sys::text::one_line(&s.query, 120), s.pid);
            doing = if doing.is_empty() { what } else { format!("{doing}; {what}") };
        }
        Some((copy, doing))
    }

    /// Records that copy `n` was killed now, doing `doing`.
    pub fn killed(&mut self, n: usize, at: Duration, doing: String) {
        let pids = self.pids.iter().filter(|(_, c)| **c == n).map(|(p, _)| *p).collect();
        self.killed = Some(Killed { copy: n, at, doing, pids, survivors: BTreeMap::new(), stale: None });
    }

    /// What kill_one did and what the killed copy left; None when it killed none.
    pub fn kill_report(&self, redact: impl Fn(&str) -> String) -> Option<RaceKill> {
        let k = self.killed.as_ref()?;
        let survivors = k
            .survivors
            .iter()
            .map(|(pid, (seen, query))| Survivor {
                pid: *pid,
                seen_ms: seen.saturating_sub(k.at).as_millis() as u64,
                query: redact(query),
            })
            .collect();
        Some(RaceKill {
            copy: k.copy,
            at_ms: k.at.as_millis() as u64,
            doing: redact(&k.doing),
            survivors,
            stale_lock: k.stale.clone(),
        })
    }

    /// Terminates every session of the copies still there (a killed copy's
    /// backend finishing its statement, a hung copy's waits) and waits, up
    /// to `patience`, until they are gone: the race's end state is read only
    /// once nothing of the copies can change it.
    pub async fn terminate(&self, patience: Duration) -> Result<()> {
        let env = |e| Error::environment_because("cannot stop the racing copies' sessions", e);
        let started = std::time::Instant::now();
        loop {
            let left = catalog::terminate_sessions(&self.client, &self.database, APP_PREFIX).await.map_err(env)?;
            if left == 0 {
                return Ok(());
            }
            if started.elapsed() > patience {
                return Err(Error::environment(format!(
                    "{left} session(s) of the racing copies did not end within {} of pg_terminate_backend",
                    humantime::format_duration(patience)
                )));
            }
            tokio::time::sleep(INTERVAL).await;
        }
    }
}

/// The kind of advisory lock a query takes: `pg_advisory_xact_lock` and
/// `pg_try_advisory_xact_lock` a transaction-level one, `pg_advisory_lock`
/// and `pg_try_advisory_lock` a session-level one (the `_shared` variants alike).
fn advisory_call(query: &str) -> Option<AdvisoryLockKind> {
    let q = query.to_ascii_lowercase();
    match (q.contains("advisory_xact_lock"), q.contains("advisory_lock")) {
        (true, _) => Some(AdvisoryLockKind::Transaction),
        (false, true) => Some(AdvisoryLockKind::Session),
        _ => None,
    }
}

impl Killed {
    fn add(&mut self, sample: &Sample, dt: Duration) {
        for s in sample.sessions.iter().filter(|s| self.pids.contains(&s.pid)) {
            self.survivors.insert(s.pid, (sample.at, s.query.clone()));
        }
        let blocked = sample.sessions.iter().filter(|s| Sample::waiting(s) && !self.pids.contains(&s.pid));
        for s in blocked {
            let (Some(copy), Some(pid)) = (copy_of(s), s.blocked_by.iter().find(|p| self.pids.contains(p))) else {
                continue;
            };
            let stale = self.stale.get_or_insert_with(|| StaleLock {
                pid: *pid,
                blocked_copy: copy,
                wait_event: s.wait_event.clone().unwrap_or_default(),
                blocked_ms: 0,
            });
            stale.blocked_ms += dt.as_millis() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_function_in_a_query_tells_a_session_lock_from_a_transaction_lock() {
        assert_eq!(advisory_call("SELECT pg_advisory_lock($1)"), Some(AdvisoryLockKind::Session));
        assert_eq!(advisory_call("select PG_TRY_ADVISORY_LOCK(1, 2)"), Some(AdvisoryLockKind::Session));
        assert_eq!(advisory_call("SELECT pg_advisory_xact_lock(7)"), Some(AdvisoryLockKind::Transaction));
        assert_eq!(advisory_call("COMMIT"), None);
        let s = RaceSession {
            pid: 1,
            application_name: application_name(12),
            state: ActivityState::Idle,
            wait_event_type: None,
            wait_event: None,
            query: String::new(),
            running_ms: 0,
            blocked_by: Vec::new(),
        };
        assert_eq!(copy_of(&s), Some(12));
    }

    fn session(pid: i32, copy: usize, wait: Option<&str>, query: &str, blocked_by: &[i32]) -> RaceSession {
        RaceSession {
            pid,
            application_name: application_name(copy),
            state: ActivityState::Active,
            wait_event_type: wait.map(|_| "Lock".to_string()),
            wait_event: wait.map(String::from),
            query: query.into(),
            running_ms: 500,
            blocked_by: blocked_by.to_vec(),
        }
    }

    #[test]
    fn a_killed_copy_s_session_that_lives_on_and_blocks_another_copy_is_a_stale_lock() {
        let at = Duration::from_millis(300);
        let mut k = Killed {
            copy: 1,
            at,
            doing: "holding advisory lock 7 (pid 10)".into(),
            pids: BTreeSet::from([10]),
            survivors: BTreeMap::new(),
            stale: None,
        };
        for n in 1..=3u32 {
            let sample = Sample {
                at: at + INTERVAL * n,
                sessions: vec![
                    session(10, 1, None, "SELECT pg_sleep(1)", &[]),
                    session(20, 2, Some("advisory"), "SELECT pg_advisory_lock($1)", &[10]),
                    session(30, 3, Some("advisory"), "SELECT pg_advisory_lock($1)", &[20]),
                ],
                locks: Vec::new(),
            };
            k.add(&sample, INTERVAL);
        }
        assert_eq!(k.survivors[&10], (at + INTERVAL * 3, "SELECT pg_sleep(1)".to_string()));
        let stale = k.stale.unwrap();
        assert_eq!(
            (stale.pid, stale.blocked_copy, stale.wait_event.as_str(), stale.blocked_ms),
            (10, 2, "advisory", 150)
        );
    }
}
