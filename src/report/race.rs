//! The report model's race section (`race`): N replicas of the full upgrade
//! started at once on a fresh copy, what each did, the lock they used, a
//! hang and its wait chain, and how the end state differs from the
//! sequential rehearsal's. Keys are part of `rehearse.report/v1` (docs/report.md).

use serde::{Deserialize, Serialize};

use crate::kinds::closed_set;
use crate::pg::ActivityState;

/// The race, as judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceReport {
    /// How many copies started at once (`race.replicas`).
    pub replicas: usize,
    /// `safe`: the copies met, every copy exited 0 and the database ended as
    /// the sequential rehearsal left it; `unsafe`: `reasons` say why not;
    /// `inconclusive`: nothing went wrong, but the copies never met (or had
    /// nothing to race on), so the race proved nothing: `reasons` say why.
    pub verdict: RaceVerdict,
    /// What each copy ran, e.g. `alembic upgrade head`.
    pub command: String,
    /// The fresh copy of the restored database the copies ran against.
    pub database: String,
    /// `race.jitter`: each copy started after a random delay up to this.
    pub jitter_ms: u64,
    /// The deadline: `race.timeout`, or 10 × the sequential rehearsal, at least 30s.
    pub timeout_ms: u64,
    /// From the first copy's start to the last one's end (or the deadline).
    pub duration_ms: u64,
    /// The replicas, then (with `kill_one`) the fresh copy started after the others ended.
    pub copies: Vec<RaceCopy>,
    /// The barrier that held the copies until they had all reached the
    /// database; null in reports written before it existed.
    #[serde(default)]
    pub barrier: Option<RaceBarrier>,
    /// When every replica was first at the database at once, ms after the
    /// race started (from the watch's readings); null when they never were.
    #[serde(default)]
    pub met_ms: Option<u64>,
    /// The advisory lock the copies took, as pg_locks showed it; null when none was seen.
    pub lock: Option<RaceLock>,
    /// Copies still running at the deadline, and who waited for whom; null without a hang.
    pub hang: Option<RaceHang>,
    /// `kill_one`: the copy killed, when, and what it left; null without kill_one.
    pub kill: Option<RaceKill>,
    /// The version table's rows after the sequential rehearsal (`expected`) and
    /// after the race (`found`): Alembic's `alembic_version`, the SQL files recorded as applied.
    pub versions: VersionState,
    /// How the schema after the race differs from the schema after the
    /// sequential rehearsal (tables, columns, indexes, constraints), one line each.
    pub schema_differences: Vec<String>,
    /// Why the verdict is `unsafe` or `inconclusive`, one line each; empty when safe.
    pub reasons: Vec<String>,
}

closed_set! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RaceVerdict {
        Safe = "safe",
        Unsafe = "unsafe",
        /// Nothing went wrong, and nothing was tested: the copies never met.
        Inconclusive = "inconclusive",
    }
}

/// The barrier: rehearse's own session held ACCESS EXCLUSIVE on the
/// version table, so each copy stopped at its first read of it, until every
/// copy had reached the database; then released them together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaceBarrier {
    /// The tables held, `schema.name`; empty when none was in the race's
    /// database (`release` is then `not_held`).
    pub tables: Vec<String>,
    /// Why it was released.
    pub release: BarrierRelease,
    /// When, ms after the race started; null when it was not held.
    pub released_ms: Option<u64>,
    /// Copies that had reached the database by then: waiting on a lock (the
    /// barrier, or a lock of a copy waiting at it), or connected for a while
    /// without waiting inside PostgreSQL (polling a lock in their own code).
    pub arrived: Vec<usize>,
    /// Copies still running that had not reached the database by then.
    pub missing: Vec<usize>,
    /// Copies that failed while held at the barrier (their own lock_timeout
    /// or statement_timeout, shorter than the others' start-up): rehearse's doing.
    #[serde(default)]
    pub failed_at_barrier: Vec<usize>,
}

closed_set! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum BarrierRelease {
        /// Every copy still running had reached the database.
        AllArrived = "all_arrived",
        /// Half the race's deadline passed first: some copies were still starting.
        Patience = "patience",
        /// The first copy at the barrier had waited half of the server's
        /// lock_timeout / statement_timeout / transaction_timeout: released
        /// before the wait could fail it.
        TimeoutSetting = "timeout_setting",
        /// No version table to hold in the race's database: the copies ran unheld.
        NotHeld = "not_held",
    }
}

/// One copy of the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceCopy {
    /// 1..replicas; the fresh copy of `kill_one` is replicas + 1. Its sessions'
    /// application_name is `rehearse-race-copy-<copy>`.
    pub copy: usize,
    /// Its exit code; null when it did not exit by itself (killed, or hung).
    pub exit: Option<i32>,
    /// Its error, as its output gave it (the exception's message), password removed.
    pub error: Option<String>,
    /// What kind of failure that is; null when it exited 0.
    pub failure: Option<RaceFailure>,
    /// How long its sessions waited on locks (`wait_event_type = 'Lock'`), sampled.
    pub waited_ms: u64,
    /// When it started and ended, ms after the race started (the end is null when it never did).
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// When the watch first and last saw a session of it in the race's
    /// database, ms after the race started; null when it never did.
    #[serde(default)]
    pub first_seen_ms: Option<u64>,
    #[serde(default)]
    pub last_seen_ms: Option<u64>,
    /// The copy `kill_one` killed.
    #[serde(default)]
    pub killed: bool,
    /// The copy `kill_one` started once the others had ended.
    #[serde(default)]
    pub fresh: bool,
    /// The end of its output (stderr, then stdout), password removed.
    pub output: String,
}

closed_set! {
    /// How a copy failed, from its exit and its output.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RaceFailure {
        /// Another copy had already made it: `... already exists` (42P07, 42701,
        /// 42710), or a unique violation on a system catalog's index (two copies
        /// creating the same name at once).
        AlreadyExists = "already_exists",
        /// A unique violation (23505), e.g. two copies inserting the first version row.
        UniqueViolation = "unique_violation",
        /// The version table was not where the copy expected it (Alembic: "expected
        /// to match one row ... 0 found"): another copy had moved it on.
        VersionTable = "version_table",
        /// PostgreSQL's deadlock detector chose this copy (40P01).
        DeadlockDetected = "deadlock_detected",
        /// Still running at the deadline: killed.
        Hung = "hung",
        /// Killed by `kill_one`.
        Killed = "killed",
        /// Any other non-zero exit, or a copy that could not start.
        Failed = "failed",
    }
}

impl RaceFailure {
    /// The failure in words, for readers: `version table moved on`.
    pub fn in_words(self) -> &'static str {
        match self {
            RaceFailure::AlreadyExists => "already exists",
            RaceFailure::UniqueViolation => "unique violation",
            RaceFailure::VersionTable => "version table moved on",
            RaceFailure::DeadlockDetected => "deadlock detected",
            RaceFailure::Hung => "hung",
            RaceFailure::Killed => "killed",
            RaceFailure::Failed => "failed",
        }
    }
}

/// The advisory lock the copies serialized on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaceLock {
    /// `session` (pg_advisory_lock, pg_try_advisory_lock: in a holder's or a
    /// waiter's query, or seen held by a session outside any transaction),
    /// `transaction` (pg_advisory_xact_lock in such a query), or `unknown`.
    pub kind: AdvisoryLockKind,
    /// The key as the app wrote it: one bigint (`72707`) or two integers (`1,2`).
    pub key: String,
    /// Copies seen holding it, in the order they first did.
    pub holders: Vec<usize>,
    /// Copies seen waiting for it inside PostgreSQL (pg_advisory_lock); a
    /// copy that polls with pg_try_advisory_lock never waits there.
    pub waiters: Vec<usize>,
}

closed_set! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum AdvisoryLockKind {
        Session = "session",
        Transaction = "transaction",
        Unknown = "unknown",
    }
}

/// Copies still running at the deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceHang {
    /// When the deadline passed, ms after the race started.
    pub after_ms: u64,
    /// The copies' sessions at the deadline: each waiting one with the
    /// sessions blocking it (`pg_blocking_pids`), and those blockers.
    pub chain: Vec<WaitLink>,
    /// A wait cycle among them, as pids in order, each waiting for the next
    /// and the last for the first; empty when there is none.
    pub cycle: Vec<i32>,
    /// The cycle passes through a client: a session that waits for nothing
    /// in PostgreSQL but whose copy is busy waiting on its other session.
    /// PostgreSQL's deadlock detector sees only its own locks, so it never
    /// breaks such a cycle: the copies wait forever.
    pub invisible_to_postgres: bool,
    /// The cycle (or the longest wait) in words.
    pub summary: String,
}

/// One session of a copy at the deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitLink {
    pub pid: i32,
    /// The copy it belongs to (its application_name); null for another session.
    pub copy: Option<usize>,
    /// `pg_stat_activity.state`: `active`, `idle`, `idle in transaction`, ...; `""` for NULL.
    pub state: ActivityState,
    pub wait_event_type: Option<String>,
    pub wait_event: Option<String>,
    /// Its query (the current one, or the last one when idle), password removed.
    pub query: String,
    /// `pg_blocking_pids(pid)`.
    pub blocked_by: Vec<i32>,
}

/// The copy `kill_one` killed with SIGKILL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceKill {
    pub copy: usize,
    /// ms after the race started.
    pub at_ms: u64,
    /// What it was doing: holding the lock, or running a statement.
    pub doing: String,
    /// Its sessions that outlived it, and for how long (the server notices a
    /// client is gone only when it next reads from or writes to it).
    pub survivors: Vec<Survivor>,
    /// A session of the killed copy that blocked the fresh copy; null when none did.
    pub stale_lock: Option<StaleLock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survivor {
    pub pid: i32,
    /// How long after the kill it was last seen.
    pub seen_ms: u64,
    pub query: String,
}

/// The killed copy's session blocking a live one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleLock {
    pub pid: i32,
    /// The copy it blocked (the fresh copy, or a replica).
    pub blocked_copy: usize,
    /// What the blocked session waited for (`advisory`, `relation`, `virtualxid`, ...).
    pub wait_event: String,
    /// How long, sampled.
    pub blocked_ms: u64,
}

/// The version table after the sequential rehearsal and after the race.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionState {
    pub expected: Vec<String>,
    pub found: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_race_written_before_the_barrier_still_reads() {
        let old = r#"{"replicas": 2, "verdict": "safe", "command": "alembic upgrade head", "database": "d",
            "jitter_ms": 200, "timeout_ms": 30000, "duration_ms": 900,
            "copies": [{"copy": 1, "exit": 0, "error": null, "failure": null, "waited_ms": 0, "started_ms": 5,
                        "finished_ms": 800, "killed": false, "fresh": false, "output": ""}],
            "lock": null, "hang": null, "kill": null, "versions": {"expected": [], "found": []},
            "schema_differences": [], "reasons": []}"#;
        let race: RaceReport = serde_json::from_str(old).unwrap();
        assert!(race.barrier.is_none() && race.met_ms.is_none());
        assert_eq!((race.copies[0].first_seen_ms, race.copies[0].last_seen_ms), (None, None));
    }
}
