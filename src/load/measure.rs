//! What the app felt, from the generator's samples: latencies against the
//! baseline measured right before the migration, errors by SQLSTATE, and
//! the stall: the longest stretch during which the app's statements on one
//! table waited longer than the stall threshold.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::generator::{Outcome, Phase, Sample};
use crate::report::{Latency, MigrationLoad};

/// Where the phase's samples split: the baseline is what started before
/// `migration`, the migration's what started from then to `end`; and the
/// table the app's sessions queued on behind the migration, if they did.
pub struct Marks {
    pub migration: Instant,
    pub end: Instant,
    pub queued_on: Option<String>,
}

/// The migration's figures from one phase's samples (the verdict is the gate's).
/// `tables`: each replayed statement's tables, in the generator's order.
pub fn migration(phase: &Phase, marks: &Marks, tables: &[Vec<String>], threshold: Duration) -> MigrationLoad {
    let samples = &phase.samples;
    let (baseline, during): (Vec<&Sample>, Vec<&Sample>) = samples.iter().partition(|s| s.start < marks.migration);
    let during: Vec<&Sample> = during.into_iter().filter(|s| s.start <= marks.end).collect();
    let mut errors = BTreeMap::new();
    for s in &during {
        if let Outcome::Failed(code) = &s.outcome {
            *errors.entry(code.clone()).or_insert(0) += 1;
        }
    }
    let (stall, stall_table) = stall(&during, tables, threshold, marks.queued_on.as_deref());
    MigrationLoad {
        statements: during.len() as u64,
        completed: during.iter().filter(|s| s.outcome == Outcome::Completed).count() as u64,
        cut: during.iter().filter(|s| s.outcome == Outcome::Cut).count() as u64,
        not_issued: phase.dropped.iter().filter(|t| **t >= marks.migration && **t <= marks.end).count() as u64,
        errors,
        latency_ms: latency(&during),
        baseline_ms: latency(&baseline),
        baseline_statements: baseline.len() as u64,
        stall_ms: millis(stall),
        stall_table,
        max_queue: 0,
        duration_ms: millis(marks.end.saturating_duration_since(marks.migration)),
        verdict: None,
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// p50, p95, p99 and max of the samples' latencies (nearest rank), in ms
/// rounded to a tenth; zeros when there is none.
pub fn latency(samples: &[&Sample]) -> Latency {
    let mut ms: Vec<f64> = samples.iter().map(|s| s.latency.as_secs_f64() * 1000.0).collect();
    if ms.is_empty() {
        return Latency::default();
    }
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    let round = |v: f64| (v * 10.0).round() / 10.0;
    Latency {
        p50: round(rank(0.50)),
        p95: round(rank(0.95)),
        p99: round(rank(0.99)),
        max: round(*ms.last().expect("not empty")),
    }
}

/// The stall and its table: per table, the union of the spans of the
/// statements on it that waited longer than `threshold`; the stall is the
/// longest continuous stretch of any. Its table is the one the app queued
/// on behind the migration (`queued_on`, from the lock queue: the cause,
/// where a join or a foreign key's check stalls statements that name other
/// tables, or only other tables), otherwise the stretch's own.
fn stall(
    samples: &[&Sample],
    tables: &[Vec<String>],
    threshold: Duration,
    queued_on: Option<&str>,
) -> (Duration, Option<String>) {
    let stretches = stretches(samples, tables, threshold);
    let longest = stretches.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
    match longest {
        Some((table, d)) => (d, Some(queued_on.map_or(table, str::to_string))),
        None => (Duration::ZERO, None),
    }
}

/// Per table with a statement over `threshold`, its longest continuous
/// stretch of slow statements.
fn stretches(samples: &[&Sample], tables: &[Vec<String>], threshold: Duration) -> Vec<(String, Duration)> {
    let mut spans: BTreeMap<&str, Vec<(Instant, Instant)>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.latency > threshold) {
        for table in &tables[s.statement] {
            spans.entry(table).or_default().push((s.start, s.start + s.latency));
        }
    }
    let mut found = Vec::new();
    for (table, mut spans) in spans {
        spans.sort();
        let (mut longest, mut current): (Duration, Option<(Instant, Instant)>) = (Duration::ZERO, None);
        for (start, end) in spans {
            current = match current {
                Some((s, e)) if start <= e => Some((s, e.max(end))),
                Some((s, e)) => {
                    longest = longest.max(e - s);
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some((s, e)) = current {
            longest = longest.max(e - s);
        }
        found.push((table.to_string(), longest));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replayable(table: &str) -> Vec<String> {
        vec![table.into()]
    }

    fn sample(statement: usize, t0: Instant, start_ms: u64, latency_ms: u64) -> Sample {
        Sample {
            statement,
            start: t0 + Duration::from_millis(start_ms),
            latency: Duration::from_millis(latency_ms),
            outcome: Outcome::Completed,
        }
    }

    #[test]
    fn the_stall_is_the_longest_union_of_slow_statements_on_one_table() {
        let t0 = Instant::now();
        let statements = [replayable("public.orders"), replayable("public.users")];
        let samples = [
            sample(0, t0, 0, 3000),    // 0..3000
            sample(0, t0, 2000, 2500), // 2000..4500: joins the first
            sample(0, t0, 6000, 1500), // 6000..7500: a stretch of its own
            sample(1, t0, 0, 4000),    // another table, shorter than 4500
            sample(0, t0, 100, 5),     // fast: not a stall
        ];
        let refs: Vec<&Sample> = samples.iter().collect();
        let (ms, table) = stall(&refs, &statements, Duration::from_secs(1), None);
        assert_eq!((ms.as_millis(), table.as_deref()), (4500, Some("public.orders")));
        let (none, _) = stall(&refs, &statements, Duration::from_secs(10), None);
        assert_eq!(none, Duration::ZERO);
        // The table the app queued on behind the migration names the stall,
        // whether its own statements stalled as long or none names it (a
        // foreign key's check waits on the parent's lock).
        for queued_on in ["public.users", "public.coupons"] {
            let (ms, table) = stall(&refs, &statements, Duration::from_secs(1), Some(queued_on));
            assert_eq!((ms.as_millis(), table.as_deref()), (4500, Some(queued_on)));
        }
        let (none, table) = stall(&refs, &statements, Duration::from_secs(10), Some("public.users"));
        assert_eq!((none, table), (Duration::ZERO, None), "no stall, no table");
    }

    #[test]
    fn baseline_and_migration_split_at_the_mark() {
        let t0 = Instant::now();
        let statements = [replayable("public.orders")];
        let mut samples: Vec<Sample> = (0..100).map(|i| sample(0, t0, i * 10, 2)).collect();
        samples.push(sample(0, t0, 1500, 5000));
        samples[60].outcome = Outcome::Failed("55P03".into());
        let marks =
            Marks { migration: t0 + Duration::from_millis(500), end: t0 + Duration::from_secs(7), queued_on: None };
        let dropped = vec![t0, t0 + Duration::from_secs(2)];
        let m = migration(&Phase { samples, dropped, ..Phase::default() }, &marks, &statements, Duration::from_secs(1));
        assert_eq!(m.not_issued, 1, "the drop during the migration");
        assert_eq!((m.baseline_statements, m.statements), (50, 51));
        assert_eq!(m.baseline_ms.max, 2.0);
        assert_eq!(m.latency_ms.max, 5000.0);
        assert_eq!(m.errors.get("55P03"), Some(&1));
        assert_eq!((m.stall_ms, m.stall_table.as_deref()), (5000, Some("public.orders")));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let t0 = Instant::now();
        let samples: Vec<Sample> = (1..=200).map(|i| sample(0, t0, 0, i)).collect();
        let refs: Vec<&Sample> = samples.iter().collect();
        let l = latency(&refs);
        assert_eq!((l.p50, l.p95, l.p99, l.max), (100.0, 190.0, 198.0, 200.0));
        assert_eq!(latency(&[]), Latency::default());
    }
}
