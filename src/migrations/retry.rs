//! `migrations.retry`: each migration's statements run under a
//! `lock_timeout`, and a migration that failed on it (SQLSTATE 55P03,
//! `lock_not_available`) is tried again after a pause, as the
//! safe-migration guides advise: a DDL statement queued behind a long
//! transaction blocks every later query on its table, so it gives up
//! quickly and comes back, rather than waiting in the queue. What each
//! tool needs to run under the timeout is here; the loop is the rehearse
//! stage's (`run/retry.rs`).

use std::time::Duration;

/// `lock_not_available`: what Postgres raises when `lock_timeout` (or NOWAIT) gives up.
pub const LOCK_NOT_AVAILABLE: &str = "55P03";
/// The longest pause between two tries, unless `backoff` itself is longer.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// A source's retry policy, as the plan validated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Above zero.
    pub lock_timeout: Duration,
    /// Tries in all, the first included; at least 1.
    pub attempts: u32,
    /// The pause after the first failed try, doubled after each next one.
    pub backoff: Duration,
}

impl RetryPolicy {
    pub const DEFAULT_ATTEMPTS: u32 = 5;
    pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

    /// The pause after the `failed`-th failed try (1 for the first):
    /// `backoff` doubled each time, up to 30s (or `backoff`, when longer).
    pub fn pause(&self, failed: u32) -> Duration {
        let cap = BACKOFF_CAP.max(self.backoff);
        let doubled = self.backoff.saturating_mul(2u32.saturating_pow(failed.saturating_sub(1).min(31)));
        doubled.min(cap)
    }
}

/// `lock_timeout`'s value as the server takes it: whole milliseconds, at
/// least 1 (0 would turn the timeout off).
pub fn setting(lock_timeout: Duration) -> String {
    format!("{}ms", (lock_timeout.as_millis() as u64).max(1))
}

/// Adds `-c lock_timeout=<ms>ms` to the tool's `PGOPTIONS` (libpq, and so
/// psql, psycopg and psycopg2, send it as the session's setting at
/// connection): appended to the one `migrations.env` already sets, so the
/// user's options stay; the last value of a setting wins in the server.
pub fn with_lock_timeout(env: &mut Vec<(String, String)>, lock_timeout: Option<Duration>) {
    let Some(timeout) = lock_timeout else { return };
    let option = format!("-c lock_timeout={}", setting(timeout));
    match env.iter_mut().rev().find(|(k, _)| k == "PGOPTIONS") {
        Some((_, v)) if !v.trim().is_empty() => *v = format!("{v} {option}"),
        Some((_, v)) => *v = option,
        None => env.push(("PGOPTIONS".into(), option)),
    }
}

/// Whether a tool's output says a statement gave up waiting for a lock:
/// the SQLSTATE printed (`psql` with VERBOSITY verbose, most drivers'
/// exceptions), psycopg's exception name, or Postgres's own messages for
/// 55P03 (English, as the server's `lc_messages` writes them by default).
/// A command tool's failure is known only from its exit status and its
/// output: this is how rehearse reads the SQLSTATE there.
pub fn says_lock_not_available(output: &str) -> bool {
    const SIGNS: &[&str] = &[
        LOCK_NOT_AVAILABLE,
        "canceling statement due to lock timeout",
        "could not obtain lock on",
        "LockNotAvailable",
        "lock_not_available",
    ];
    SIGNS.iter().any(|s| output.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff_ms: u64) -> RetryPolicy {
        RetryPolicy {
            lock_timeout: Duration::from_millis(300),
            attempts: 10,
            backoff: Duration::from_millis(backoff_ms),
        }
    }

    #[test]
    fn the_pause_doubles_up_to_thirty_seconds_or_the_backoff_when_longer() {
        let p = policy(200);
        let pauses: Vec<u64> = (1..=10).map(|n| p.pause(n).as_millis() as u64).collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
        assert_eq!(policy(45_000).pause(3), Duration::from_secs(45));
        assert_eq!(policy(1000).pause(u32::MAX), Duration::from_secs(30), "no overflow");
    }

    #[test]
    fn pgoptions_gets_the_lock_timeout_appended_to_the_users_own() {
        let t = Some(Duration::from_millis(300));
        let mut env = vec![("PGHOST".to_string(), "/tmp".to_string())];
        with_lock_timeout(&mut env, t);
        assert_eq!(env[1], ("PGOPTIONS".into(), "-c lock_timeout=300ms".into()));
        let mut env = vec![("PGOPTIONS".to_string(), "-c search_path=app".to_string())];
        with_lock_timeout(&mut env, t);
        assert_eq!(env, [("PGOPTIONS".into(), "-c search_path=app -c lock_timeout=300ms".into())]);
        let mut env = Vec::new();
        with_lock_timeout(&mut env, None);
        assert!(env.is_empty());
    }

    #[test]
    fn lock_not_available_is_read_from_psql_and_drivers_output() {
        assert!(says_lock_not_available("psql:/m.sql:1: ERROR:  canceling statement due to lock timeout"));
        assert!(says_lock_not_available("ERROR:  55P03: canceling statement due to lock timeout"));
        assert!(says_lock_not_available("psycopg.errors.LockNotAvailable: canceling statement"));
        assert!(says_lock_not_available("ERROR:  could not obtain lock on relation \"t\""));
        assert!(!says_lock_not_available("ERROR:  relation \"t\" does not exist"));
        assert!(!says_lock_not_available("ERROR:  canceling statement due to statement timeout"));
    }
}
