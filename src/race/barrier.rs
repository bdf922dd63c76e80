//! The barrier that makes the copies meet. Replicas start together in
//! production (their pods once the image is pulled), but here each copy's
//! interpreter starts on a machine that may be busy: under load a copy can
//! finish every revision before another has imported its code, and a race
//! whose copies never met proves nothing.
//!
//! So before the copies start, a session of rehearse holds ACCESS EXCLUSIVE
//! on the version table in the race's database, in an open transaction. A
//! copy's first read of it waits there: measured with Alembic 1.20.1 and
//! SQLAlchemy 2.1 on PostgreSQL 15, a copy connects, reads the server's
//! settings and asks `pg_class` whether the table exists (no lock on it),
//! then `SELECT version_num FROM alembic_version` waits. A copy whose app
//! first takes its own advisory lock waits for that lock behind a copy
//! waiting here. Once every copy still running has reached the database
//! (waits on a lock, or has been connected for [`SETTLE`] without waiting
//! inside PostgreSQL, as a copy polling its app's lock does), the
//! transaction ends and every waiting copy's read is granted at once: the
//! copies go on together, as replicas started at the same moment would.
//!
//! Bounded: half the race's deadline, for copies that never reach the
//! database (a crash at import ends a copy, which is then not waited for);
//! and half the shortest lock/statement/transaction timeout the copies'
//! role has in the race's database, counted from the first copy's wait,
//! so the wait at the barrier cannot fail them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_postgres::Client;

use super::watch::{copy_of, Sample};
use crate::catalog::{self, BarrierHold, HISTORY_TABLES};
use crate::error::{Error, Result};
use crate::migrations::MigrationSource;
use crate::report::{BarrierRelease, RaceBarrier};
use crate::sys::db::{self, ConnInfo};

/// How long a copy may be connected without waiting on a lock before it
/// counts as arrived: it waits in its own code (polling its app's lock).
/// Measured: an Alembic copy goes from connecting to waiting at the barrier
/// in 70 ms on an idle machine; two seconds leave room for a loaded one.
pub const SETTLE: Duration = Duration::from_secs(2);

/// The barrier: held, then released once.
pub struct Barrier {
    /// The session holding it, until the release.
    client: Option<Client>,
    /// What it holds; None when there was nothing to hold.
    hold: Option<BarrierHold>,
    patience: Duration,
    arrivals: Arrivals,
    released: Option<Released>,
}

struct Released {
    at: Duration,
    why: BarrierRelease,
    arrived: Vec<usize>,
    missing: Vec<usize>,
}

impl Barrier {
    /// Holds the barrier on `copy`'s database, on the tables `source`'s tool
    /// records its history in; not held when none is there. `patience`: how
    /// long, from the race's start, to wait for copies that never arrive.
    pub async fn hold(copy: &ConnInfo, source: &MigrationSource, patience: Duration) -> Result<Barrier> {
        let env = |e| Error::environment_because(format!("cannot hold the race's barrier on {}", copy.dbname), e);
        let client = db::connect(copy, &copy.dbname, "rehearse-race-barrier").await.map_err(env)?;
        let hold = catalog::hold_barrier(&client, &history_tables(source)).await.map_err(env)?;
        let released = hold.is_none().then(|| Released {
            at: Duration::ZERO,
            why: BarrierRelease::NotHeld,
            arrived: Vec::new(),
            missing: Vec::new(),
        });
        let client = hold.is_some().then_some(client);
        Ok(Barrier { client, hold, patience, arrivals: Arrivals::default(), released })
    }

    /// Whether the copies have been let go (or were never held).
    pub fn released(&self) -> bool {
        self.released.is_some()
    }

    /// Adds a reading; releases the barrier when it is due, and says why.
    pub async fn check(&mut self, sample: &Sample, running: &[usize]) -> Result<Option<BarrierRelease>> {
        let Some(hold) = self.hold.as_ref().filter(|_| self.released.is_none()) else { return Ok(None) };
        self.arrivals.add(sample);
        let timeout = hold.timeout_ms.map(|ms| Duration::from_millis(ms.max(0) as u64));
        let Some(why) = self.arrivals.due(sample, running, self.patience, timeout) else { return Ok(None) };
        let (arrived, missing) = running.iter().partition(|c| self.arrivals.arrived(**c, sample));
        self.released = Some(Released { at: sample.at, why, arrived, missing });
        self.release().await?;
        Ok(Some(why))
    }

    /// Ends the barrier's transaction and session, if still there.
    pub async fn release(&mut self) -> Result<()> {
        if let Some(client) = self.client.take() {
            catalog::release_barrier(&client)
                .await
                .map_err(|e| Error::environment_because("cannot release the race's barrier", e))?;
        }
        Ok(())
    }

    /// The barrier as the report shows it. `failed_early`: the copies that
    /// failed, and when they ended.
    pub fn report(&self, failed_early: &[(usize, Duration)]) -> RaceBarrier {
        let released_at = self.released.as_ref().map(|r| r.at);
        let failed_at_barrier = failed_early
            .iter()
            .filter(|(c, ended)| released_at.is_some_and(|at| *ended <= at) && self.arrivals.waited.contains(c))
            .map(|(c, _)| *c)
            .collect();
        let tables = self.hold.as_ref().map(|h| h.tables.clone()).unwrap_or_default();
        match &self.released {
            Some(r) => RaceBarrier {
                tables,
                release: r.why,
                released_ms: (r.why != BarrierRelease::NotHeld).then_some(r.at.as_millis() as u64),
                arrived: r.arrived.clone(),
                missing: r.missing.clone(),
                failed_at_barrier,
            },
            // Still held when the race ended (a signal, an error): nobody was let go.
            None => RaceBarrier {
                tables,
                release: BarrierRelease::Patience,
                released_ms: None,
                arrived: Vec::new(),
                missing: Vec::new(),
                failed_at_barrier,
            },
        }
    }
}

/// The tables a copy reads its tool's history from: the barrier's place.
/// Alembic: its version table; SQL: `migrations.table`, the table the
/// replicas' tool records in; a command tool: every history table rehearse
/// knows (the barrier holds those that are there).
fn history_tables(source: &MigrationSource) -> Vec<String> {
    match source {
        MigrationSource::Alembic(a) => vec![a.version_table()],
        MigrationSource::Sql(s) => s.table().map(str::to_string).into_iter().collect(),
        MigrationSource::Command(_) => HISTORY_TABLES.iter().map(|(t, _)| t.to_string()).collect(),
        MigrationSource::Django(_) => vec![crate::migrations::django::HISTORY_TABLE.to_string()],
    }
}

/// Where the copies stand at the barrier, from the readings.
#[derive(Default)]
struct Arrivals {
    /// copy → the first reading that showed a session of it.
    connected: BTreeMap<usize, Duration>,
    /// Copies seen waiting on a lock while the barrier was held.
    waited: BTreeSet<usize>,
    /// The first reading that showed a copy waiting on a lock.
    first_wait: Option<Duration>,
}

impl Arrivals {
    fn add(&mut self, sample: &Sample) {
        for s in &sample.sessions {
            let Some(copy) = copy_of(s) else { continue };
            self.connected.entry(copy).or_insert(sample.at);
            if Sample::waiting(s) {
                self.waited.insert(copy);
                self.first_wait.get_or_insert(sample.at);
            }
        }
    }

    /// Copy `copy` has reached the database: a session of it waits on a
    /// lock now, or it has been connected for [`SETTLE`].
    fn arrived(&self, copy: usize, sample: &Sample) -> bool {
        let waiting = sample.sessions.iter().any(|s| copy_of(s) == Some(copy) && Sample::waiting(s));
        waiting || self.connected.get(&copy).is_some_and(|t| sample.at.saturating_sub(*t) >= SETTLE)
    }

    /// Why the barrier is to be released now, if it is.
    fn due(
        &self,
        sample: &Sample,
        running: &[usize],
        patience: Duration,
        timeout: Option<Duration>,
    ) -> Option<BarrierRelease> {
        if running.iter().all(|c| self.arrived(*c, sample)) {
            return Some(BarrierRelease::AllArrived);
        }
        let waited = self.first_wait.map(|w| sample.at.saturating_sub(w));
        if let (Some(waited), Some(timeout)) = (waited, timeout) {
            if waited >= timeout / 2 {
                return Some(BarrierRelease::TimeoutSetting);
            }
        }
        (sample.at >= patience).then_some(BarrierRelease::Patience)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::RaceSession;
    use crate::pg::ActivityState;

    fn session(pid: i32, copy: usize, state: ActivityState, waiting: bool) -> RaceSession {
        RaceSession {
            pid,
            application_name: super::super::watch::application_name(copy),
            state,
            wait_event_type: waiting.then(|| "Lock".to_string()),
            wait_event: waiting.then(|| "relation".to_string()),
            query: "SELECT alembic_version.version_num FROM alembic_version".into(),
            running_ms: 0,
            blocked_by: if waiting { vec![1] } else { Vec::new() },
        }
    }

    fn at(ms: u64, sessions: Vec<RaceSession>) -> Sample {
        Sample { at: Duration::from_millis(ms), sessions, locks: Vec::new() }
    }

    const PATIENCE: Duration = Duration::from_secs(15);

    #[test]
    fn the_barrier_waits_until_every_running_copy_waits_on_a_lock() {
        let mut a = Arrivals::default();
        let first =
            at(3000, vec![session(10, 1, ActivityState::Active, true), session(11, 2, ActivityState::Active, false)]);
        a.add(&first);
        assert_eq!(a.due(&first, &[1, 2, 3], PATIENCE, None), None, "copy 3 has not connected");
        let all = at(
            3400,
            vec![
                session(10, 1, ActivityState::Active, true),
                session(11, 2, ActivityState::Active, true),
                session(12, 3, ActivityState::Active, true),
            ],
        );
        a.add(&all);
        assert_eq!(a.due(&all, &[1, 2, 3], PATIENCE, None), Some(BarrierRelease::AllArrived));
        // A copy that ended (a crash at import) is not waited for.
        assert_eq!(a.due(&first, &[1], PATIENCE, None), Some(BarrierRelease::AllArrived));
    }

    #[test]
    fn a_copy_connected_without_waiting_counts_after_settling_and_a_missing_one_after_patience() {
        let mut a = Arrivals::default();
        let polling =
            |ms| at(ms, vec![session(10, 1, ActivityState::Active, true), session(11, 2, ActivityState::Idle, false)]);
        a.add(&polling(1000));
        assert_eq!(a.due(&polling(2500), &[1, 2], PATIENCE, None), None);
        assert_eq!(a.due(&polling(3000), &[1, 2], PATIENCE, None), Some(BarrierRelease::AllArrived));
        assert!(a.arrived(2, &polling(3000)) && !a.arrived(3, &polling(3000)));
        assert_eq!(a.due(&polling(14_950), &[1, 2, 3], PATIENCE, None), None);
        assert_eq!(a.due(&polling(15_000), &[1, 2, 3], PATIENCE, None), Some(BarrierRelease::Patience));
    }

    #[test]
    fn the_barrier_is_released_at_half_the_copies_lock_timeout_counted_from_the_first_wait() {
        let mut a = Arrivals::default();
        let waiting = |ms| at(ms, vec![session(10, 1, ActivityState::Active, true)]);
        a.add(&waiting(4000));
        let timeout = Some(Duration::from_secs(2));
        assert_eq!(a.due(&waiting(4950), &[1, 2], PATIENCE, timeout), None);
        assert_eq!(a.due(&waiting(5000), &[1, 2], PATIENCE, timeout), Some(BarrierRelease::TimeoutSetting));
    }
}
