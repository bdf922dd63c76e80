//! `rehearse calibrate`: how much faster production's server computes than
//! the rehearsal's, for `estimate.speed`. A short CPU- and memory-bound
//! benchmark: sorting and hashing rows generated on the fly, in a read-only
//! transaction with enough `work_mem` to stay in memory. No table is read or
//! written and nothing is left behind. Disk speed is not measured: a
//! migration that is I/O-bound on production scales by more than this ratio
//! says.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

/// One round: a sort of 300,000 md5 strings (in the "C" collation: a
/// database's own, ICU or glibc, would time the collation library instead) and a hash aggregate of a
/// million integers (about half a second each on a 2-core CI machine).
const ROUND: &str = "/*rehearse calibrate*/
    SELECT (SELECT count(*) FROM (SELECT md5(g::text) COLLATE \"C\" AS h FROM generate_series(1, 300000) g ORDER BY 1 OFFSET 1) s),
           (SELECT count(*) FROM (SELECT g % 1000 AS k, count(*) FROM generate_series(1, 1000000) g GROUP BY 1) s)";

/// Rounds per server; the median counts.
pub const ROUNDS: usize = 3;

/// The median time of [`ROUNDS`] rounds on the connected server, each in a
/// read-only transaction (safe on a primary or a hot standby) with
/// `statement_timeout`, one worker (parallelism differs from server to
/// server; this compares one core with one core) and `work_mem` large
/// enough that nothing spills to disk.
pub async fn measure(client: &Client, timeout: Duration) -> Result<Duration, tokio_postgres::Error> {
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        client
            .batch_execute(&format!(
                "BEGIN READ ONLY; SET LOCAL statement_timeout = '{}ms'; SET LOCAL work_mem = '256MB'; \
                 SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL jit = off",
                timeout.as_millis()
            ))
            .await?;
        let started = Instant::now();
        let ran = client.query_one(ROUND, &[]).await;
        times.push(started.elapsed());
        client.batch_execute("ROLLBACK").await?;
        ran?;
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// `estimate.speed`: how many times faster production (`theirs`) ran the
/// benchmark than the rehearsal server (`ours`), to two decimals.
pub fn speed(ours: Duration, theirs: Duration) -> f64 {
    let ratio = ours.as_secs_f64() / theirs.as_secs_f64().max(1e-6);
    (ratio * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faster_production_is_more_than_one() {
        assert_eq!(speed(Duration::from_millis(1000), Duration::from_millis(500)), 2.0);
        assert_eq!(speed(Duration::from_millis(300), Duration::from_millis(900)), 0.33);
    }
}
