//! `migrations.retry` in the rehearse stage: a migration that gave up on
//! its lock_timeout (SQLSTATE 55P03) is applied again after a pause, up to
//! the policy's tries, within the one observation of the migration and
//! its one deadline (`max_runtime` covers every try and pause). What the
//! report keeps: each try, the time lost, and the last try's statements,
//! on the migration's clock (from its first try).

use std::time::{Duration, Instant};

use super::millis;
use crate::error::Result;
use crate::migrations::retry::{self, RetryPolicy, LOCK_NOT_AVAILABLE};
use crate::migrations::{Applied, Migration, MigrationSource, Target};
use crate::report::{Attempt, LockReport, MigrationError};

/// What trying a migration under a policy left, besides its last try.
#[derive(Debug, Default)]
pub(super) struct Tries {
    /// Each try; empty without a policy.
    pub attempts: Vec<Attempt>,
    /// From the first try's start to the last's: None without a policy.
    pub lost_ms: Option<u64>,
    /// The last try gave up on its lock_timeout and no other followed.
    pub gave_up: Option<GaveUp>,
}

/// Why the last try that gave up on its lock_timeout was the last.
#[derive(Debug)]
pub(super) struct GaveUp {
    pub policy: RetryPolicy,
    /// None: every try was used; else why it could not be tried again alone.
    pub cannot_retry: Option<String>,
}

/// Applies `migration`, again after each failure on its lock_timeout while
/// `policy` allows (without one: once). The pauses end early on
/// `target.cancel` (a signal, or the deadline): the last try's failure is
/// then the migration's, marked interrupted.
pub(super) async fn apply(
    source: &MigrationSource,
    migration: &Migration,
    target: &Target<'_>,
    policy: Option<RetryPolicy>,
) -> Result<(Applied, Tries)> {
    let Some(policy) = policy else { return Ok((source.apply(migration, target).await?, Tries::default())) };
    let first = Instant::now();
    let mut tries = Tries::default();
    let mut released = Vec::new();
    loop {
        let started = first.elapsed();
        let mut applied = source.apply(migration, target).await?;
        released.append(&mut applied.released);
        let sqlstate = applied.error.as_ref().and_then(|e| e.sqlstate.clone());
        let gave_up = !applied.interrupted && sqlstate.as_deref() == Some(LOCK_NOT_AVAILABLE);
        tries.attempts.push(Attempt {
            started_ms: millis(started),
            duration_ms: millis(first.elapsed() - started),
            sqlstate,
            lock_timeout_ms: millis(policy.lock_timeout).max(1),
        });
        let last = match gave_up {
            false => true,
            true if tries.attempts.len() >= policy.attempts as usize => {
                tries.gave_up = Some(GaveUp { policy, cannot_retry: None });
                true
            }
            true => match source.why_not_again(migration, target.client).await? {
                Some(why) => {
                    tries.gave_up = Some(GaveUp { policy, cannot_retry: Some(why) });
                    true
                }
                None if pause(policy.pause(tries.attempts.len() as u32), target, &mut applied).await => false,
                None => {
                    // Stopped in the pause: all of it was lost, up to now.
                    applied.released = released;
                    applied.duration = first.elapsed();
                    tries.lost_ms = Some(millis(applied.duration));
                    return Ok((applied, tries));
                }
            },
        };
        if last {
            applied.released = released;
            on_the_migrations_clock(&mut applied, started);
            tries.lost_ms = Some(millis(started));
            return Ok((applied, tries));
        }
    }
}

/// Waits `pause` before the next try; false when the run's cancellation or
/// the deadline ended it first (the try's failure is then the migration's,
/// interrupted: the deadline's says so in its own words).
async fn pause(pause: Duration, target: &Target<'_>, applied: &mut Applied) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = target.cancel.cancelled() => {
            applied.interrupted = true;
            if let Some(e) = applied.error.as_mut() {
                e.message = format!("interrupted while waiting to try again after lock_timeout: {}", e.message);
            }
            false
        }
    }
}

/// The last try's times from the migration's first try: its duration
/// includes the tries and pauses before it, as production's deploy would wait them.
fn on_the_migrations_clock(applied: &mut Applied, started: Duration) {
    applied.duration += started;
    let shift = millis(started);
    for s in &mut applied.statements {
        s.started_ms += shift;
    }
}

/// The error of a migration whose last try gave up on its lock_timeout:
/// how many tries, on which relation (the lock it waited for longest, when
/// the observers saw it), the last error, and what to do.
pub(super) fn explain(error: &mut Option<MigrationError>, tries: &Tries, locks: &[LockReport]) {
    let (Some(gave_up), Some(e)) = (&tries.gave_up, error.as_mut()) else { return };
    let waited = locks.iter().filter(|l| l.waited_ms > 0).max_by_key(|l| l.waited_ms);
    let on = waited.map_or(String::new(), |l| format!(" on {}", l.relation));
    let timeout = retry::setting(gave_up.policy.lock_timeout);
    let last = e.message.lines().next().unwrap_or_default().trim().to_string();
    let holder = waited.map_or("the lock".to_string(), |l| format!("a lock on {}", l.relation));
    let when = format!("when no transaction holds {holder} for long (a low-traffic window)");
    e.message = match &gave_up.cannot_retry {
        None => format!(
            "lock_timeout {timeout}: {} attempts failed to get the lock{on}; the last error: {last}; raise \
             migrations.retry.attempts (or its backoff) or run it {when}\n\n{}",
            tries.attempts.len(),
            e.message
        ),
        Some(why) => format!(
            "lock_timeout {timeout}: attempt {} failed to get the lock{on} and cannot be tried again alone: {why}; \
             the last error: {last}\n\n{}",
            tries.attempts.len(),
            e.message
        ),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::LockMode;

    #[test]
    fn a_migration_out_of_tries_says_how_many_on_which_relation_and_what_to_do() {
        let policy = RetryPolicy { lock_timeout: Duration::from_millis(300), attempts: 2, backoff: Duration::ZERO };
        let attempt = |sqlstate: &str| Attempt {
            started_ms: 0,
            duration_ms: 300,
            sqlstate: Some(sqlstate.into()),
            lock_timeout_ms: 300,
        };
        let tries = Tries {
            attempts: vec![attempt("55P03"), attempt("55P03")],
            lost_ms: Some(500),
            gave_up: Some(GaveUp { policy, cannot_retry: None }),
        };
        let lock = LockReport {
            relation: "public.t".into(),
            kind: crate::pg::RelationKind::Table,
            mode: LockMode::AccessExclusiveLock,
            held_ms: 0,
            waited_ms: 290,
            blocks: Vec::new(),
            source: Vec::new(),
            statement: None,
            line: None,
            created: false,
        };
        let mut error = Some(MigrationError::new("canceling statement due to lock timeout"));
        explain(&mut error, &tries, &[lock]);
        let message = error.unwrap().message;
        assert!(
            message.starts_with(
                "lock_timeout 300ms: 2 attempts failed to get the lock on public.t; the last error: canceling \
                 statement due to lock timeout; raise migrations.retry.attempts"
            ),
            "{message}"
        );
        assert!(message.contains("when no transaction holds a lock on public.t for long"), "{message}");

        let mut untouched = Some(MigrationError::new("syntax error"));
        explain(&mut untouched, &Tries { gave_up: None, ..tries }, &[]);
        assert_eq!(untouched.unwrap().message, "syntax error");
    }
}
