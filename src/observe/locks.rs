//! The lock sampler: a session of its own that reads pg_locks every
//! `sample_interval` while a migration runs, and keeps, per (relation, mode),
//! the longest continuous hold and the longest wait. It covers every backend
//! of the migration, including those of an external tool; the exact
//! per-statement capture (migrations/sql.rs) covers what sampling misses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, LockRow};
use crate::pg::{LockMode, RelationKind};

/// Longest continuous span between sightings. A span ends only when a
/// sample sees the lock gone: a sampler starved of CPU on a busy machine
/// samples late, and a late sample that still sees the lock continues the
/// span rather than starting a new one (a gap between samples is not a release).
#[derive(Debug, Default, Clone, Copy)]
struct Spans {
    current: Option<(Instant, Instant)>,
    longest: Duration,
    seen: bool,
}

impl Spans {
    fn see(&mut self, now: Instant) {
        self.seen = true;
        let (start, _) = self.current.unwrap_or((now, now));
        self.current = Some((start, now));
        self.longest = self.longest.max(now - start);
    }

    /// A sample saw it gone.
    fn close(&mut self) {
        if let Some((start, last)) = self.current.take() {
            self.longest = self.longest.max(last - start);
        }
    }
}

/// What the sampler saw of one (relation, mode).
#[derive(Debug, Clone)]
pub struct SampledLock {
    pub oid: i64,
    pub name: String,
    pub kind: RelationKind,
    pub mode: LockMode,
    /// Longest hold: last sighting − first sighting + one interval (the
    /// lock may have been taken up to an interval before it was first seen).
    /// None when only seen waiting.
    pub held: Option<Duration>,
    pub waited: Option<Duration>,
}

#[derive(Debug, Default)]
struct Track {
    name: String,
    kind: RelationKind,
    held: Spans,
    waited: Spans,
    /// Whether the latest sample saw it (held, waited).
    seen_now: (bool, bool),
}

/// Per (relation oid, mode): what was seen; the first error a sample hit.
type SamplerResult = (HashMap<(i64, LockMode), Track>, Option<tokio_postgres::Error>);

pub struct Sampler {
    stop: CancellationToken,
    task: JoinHandle<SamplerResult>,
    interval: Duration,
}

/// What the latest sample saw: (relation as `schema.name`, mode) of every
/// lock held or awaited by a session other than rehearse's own.
pub type Sighting = Arc<Vec<(String, LockMode)>>;

impl Sampler {
    /// Starts sampling; each sample's locks are also published on `sightings`
    /// (the probes run only while they could be blocked).
    pub fn start(
        client: Arc<Client>,
        db_oid: i64,
        exclude: Vec<i32>,
        interval: Duration,
        sightings: tokio::sync::watch::Sender<Sighting>,
    ) -> Sampler {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut tracks: HashMap<(i64, LockMode), Track> = HashMap::new();
            let mut failure = None;
            let prepared = match client.prepare(catalog::RELATION_LOCKS).await {
                Ok(statement) => statement,
                Err(e) => return (tracks, Some(e)),
            };
            let mut pace = super::Pace::new(interval, token);
            while pace.tick().await {
                let rows = match catalog::relation_locks(&client, &prepared, db_oid, &exclude).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        failure.get_or_insert(e);
                        continue;
                    }
                };
                let now = Instant::now();
                let seen: Vec<(String, LockMode)> =
                    rows.iter().filter(|r| !r.name.is_empty()).map(|r| (r.name.clone(), r.mode)).collect();
                sightings.send_if_modified(|latest| {
                    let changed = **latest != seen;
                    if changed {
                        *latest = Arc::new(seen);
                    }
                    changed
                });
                for track in tracks.values_mut() {
                    track.seen_now = (false, false);
                }
                for LockRow { oid, name, kind, mode, granted } in rows {
                    let track = tracks.entry((oid, mode)).or_default();
                    if !name.is_empty() {
                        track.name = name;
                        track.kind = kind;
                    }
                    if granted {
                        track.held.see(now);
                        track.seen_now.0 = true;
                    } else {
                        track.waited.see(now);
                        track.seen_now.1 = true;
                    }
                }
                for track in tracks.values_mut() {
                    if !track.seen_now.0 {
                        track.held.close();
                    }
                    if !track.seen_now.1 {
                        track.waited.close();
                    }
                }
            }
            (tracks, failure)
        });
        Sampler { stop, task, interval }
    }

    /// Stops sampling; returns every (relation, mode) seen, or the first
    /// error a sample hit.
    pub async fn finish(self) -> Result<Vec<SampledLock>, tokio_postgres::Error> {
        self.stop.cancel();
        let (tracks, failure) = self.task.await.unwrap_or_default();
        if let Some(e) = failure {
            return Err(e);
        }
        let interval = self.interval;
        let locks = tracks
            .into_iter()
            .map(|((oid, mode), mut t)| {
                t.held.close();
                t.waited.close();
                SampledLock {
                    oid,
                    name: t.name,
                    kind: t.kind,
                    mode,
                    held: t.held.seen.then(|| t.held.longest + interval),
                    waited: t.waited.seen.then(|| t.waited.longest + interval),
                }
            })
            .collect();
        Ok(locks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_ends_only_when_a_sample_sees_the_lock_gone() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Spans::default();
        for i in 0..10 {
            s.see(t0 + ms(i * 10));
        }
        // A starved sampler: the next sample 2 s late still sees the lock: one hold, not two.
        s.see(t0 + ms(2090));
        s.close();
        s.see(t0 + ms(3000));
        s.see(t0 + ms(3010));
        s.close();
        assert_eq!(s.longest, ms(2090));
    }
}
