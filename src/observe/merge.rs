//! Putting the readings of one migration's locks together, per (relation,
//! mode): exact per-statement readings first, then what the watcher and the
//! sampler saw, then what the manual documents for a statement no reading
//! caught. A hold timed exactly from boundaries (from the statement that took
//! it to its transaction's end) wins over the samples, which only add what
//! boundaries cannot know (a command tool's locks, a statement that cannot
//! run in a transaction block). A hold is never longer than the migration
//! that took it, except when its transaction stayed open into later ones
//! ([`extend_hold`]), and never shorter than the longest probe wait it caused.

use std::time::Instant;

use super::infer;
use super::locks::SampledLock;
use super::progress::SeenCommand;
use super::relations::RelationSnapshot;
use crate::pg::{LockMode, RelationKind};
use crate::report::{
    BlockReport, LockReport, LockSource, Observation, ProbeReport, ProgressReport, StatementLock, StatementReport,
};

/// Tracking tables (and their indexes) the migration tools write after each
/// migration: bookkeeping, not the migration's doing.
const TRACKING_TABLES: [&str; 2] = ["public.rehearse_schema_migrations", "public.alembic_version"];

fn is_bookkeeping(relation: &str) -> bool {
    TRACKING_TABLES.iter().any(|t| relation.starts_with(t))
}

/// Names locks on relations a statement dropped (pg_class no longer has
/// them) from the snapshot before the migration; what is still nameless was
/// created and dropped within the migration, such as a rewrite's transient
/// heap, and is left out.
pub fn name_dropped(before: &RelationSnapshot, statements: &mut [StatementReport]) {
    for stmt in statements {
        for lock in stmt.locks.iter_mut().filter(|l| l.relation.is_empty()) {
            if let Some(r) = before.by_oid(lock.oid) {
                lock.relation = r.name.clone();
                lock.kind = r.kind;
            }
        }
        stmt.locks.retain(|l| !l.relation.is_empty());
    }
}

/// Adds to each statement that cannot run in a transaction block and shows
/// no lock the locks the manual documents for it, marked `inferred`.
pub fn infer_unseen(before: &RelationSnapshot, statements: &mut [StatementReport], sampled: &[SampledLock]) {
    for stmt in statements.iter_mut() {
        for (table, mode) in infer::documented_locks(&stmt.query) {
            let seen = stmt.locks.iter().any(|l| l.relation == table && l.mode == mode)
                || sampled.iter().any(|s| s.name == table && s.mode == mode);
            if seen {
                continue;
            }
            let kind = before.get(&table).map(|r| r.kind).unwrap_or(RelationKind::Table);
            let oid = before.get(&table).map(|r| r.oid).unwrap_or(0);
            stmt.locks.push(StatementLock {
                relation: table,
                oid,
                kind,
                mode,
                held_ms: stmt.duration_ms,
                source: LockSource::Inferred,
                exact_hold: false,
            });
        }
    }
}

/// What one migration's locks are merged from, besides its statements.
pub struct Readings<'a> {
    /// What the lock sampler saw.
    pub sampled: Vec<SampledLock>,
    /// Locks earlier migrations took whose transaction was still open when
    /// this one started: the sampler saw them, but they are not this one's.
    pub inherited: &'a [(String, LockMode)],
    /// What the probes waited: a hold is never shorter than a wait it caused.
    pub probes: &'a [ProbeReport],
}

/// Every lock of the migration, per (relation, mode), most disruptive first.
/// `duration_ms`: the migration's own time, the ceiling of every hold.
pub fn merge_locks(
    before: &RelationSnapshot,
    readings: Readings<'_>,
    statements: &[StatementReport],
    duration_ms: u64,
) -> Vec<LockReport> {
    let Readings { mut sampled, inherited, probes } = readings;
    sampled.retain(|l| !is_bookkeeping(&l.name) && !inherited.contains(&(l.name.clone(), l.mode)));
    let mut out: Vec<LockReport> = Vec::new();
    for stmt in statements {
        for lock in stmt.locks.iter().filter(|l| !is_bookkeeping(&l.relation)) {
            match out.iter_mut().find(|l| l.relation == lock.relation && l.mode == lock.mode) {
                Some(known) => add_source(known, lock.source),
                None => out.push(LockReport {
                    relation: lock.relation.clone(),
                    kind: lock.kind,
                    mode: lock.mode,
                    held_ms: lock.held_ms,
                    waited_ms: 0,
                    blocks: lock.mode.blocks(),
                    source: vec![lock.source],
                    statement: Some(stmt.query.clone()),
                    line: stmt.line,
                    created: !before.contains(&lock.relation),
                }),
            }
        }
    }
    let exact: Vec<(String, LockMode)> = statements
        .iter()
        .flat_map(|s| s.locks.iter().filter(|l| l.exact_hold).map(|l| (l.relation.clone(), l.mode)))
        .collect();
    for s in sampled {
        let held = s.held.map(|d| d.as_millis() as u64).unwrap_or(0);
        let waited = s.waited.map(|d| d.as_millis() as u64).unwrap_or(0);
        match out.iter_mut().find(|l| l.relation == s.name && l.mode == s.mode) {
            Some(l) => {
                if !exact.contains(&(s.name.clone(), s.mode)) {
                    l.held_ms = l.held_ms.max(held);
                }
                l.waited_ms = waited;
                add_source(l, LockSource::Sampled);
            }
            None => out.push(LockReport {
                created: !before.contains(&s.name),
                relation: s.name,
                kind: s.kind,
                blocks: s.mode.blocks(),
                mode: s.mode,
                held_ms: held,
                waited_ms: waited,
                source: vec![LockSource::Sampled],
                statement: None,
                line: None,
            }),
        }
    }
    for l in &mut out {
        l.held_ms = l.held_ms.min(duration_ms);
        l.waited_ms = l.waited_ms.min(duration_ms);
    }
    floor_by_probes(&mut out, probes);
    sort(&mut out);
    out
}

/// No hold is shorter than the longest wait of a probe it blocked: a
/// writer's wait on a relation is charged to the longest-held lock there
/// that blocks writes, a reader's to the one that blocks reads. (A sampler
/// starved of CPU sees a hold in pieces; the probe waited all along.)
fn floor_by_probes(out: &mut [LockReport], probes: &[ProbeReport]) {
    for p in probes {
        let waits = [(p.writes.max_ms, true), (p.reads.max_ms, false)];
        for (waited, writes) in waits {
            let blocks = |mode: LockMode| if writes { mode.blocks_writes() } else { mode.blocks_reads() };
            let waited = waited.ceil() as u64;
            let blocker =
                out.iter_mut().filter(|l| l.relation == p.relation && blocks(l.mode)).max_by_key(|l| l.held_ms);
            if let Some(l) = blocker.filter(|_| waited > 0) {
                l.held_ms = l.held_ms.max(waited);
            }
        }
    }
}

/// Most disruptive first: what it blocks, for how long, tables before their indexes.
fn sort(out: &mut [LockReport]) {
    out.sort_by_key(|l| {
        (
            std::cmp::Reverse(l.blocks.len()),
            std::cmp::Reverse(l.held_ms),
            l.kind != RelationKind::Table,
            l.relation.clone(),
        )
    });
}

/// A lock of a migration held longer than it ran: its transaction stayed
/// open into later migrations and ended during one of them, after
/// `held_ms` (rehearse's pauses between migrations left out). The hold, in
/// what was observed and in the statement that took it, and the longest
/// blocks, say so.
pub fn extend_hold(
    observed: &mut Observation,
    statements: &mut [StatementReport],
    before: &RelationSnapshot,
    relation: &str,
    mode: LockMode,
    held_ms: u64,
) {
    if let Some(l) = observed.locks.iter_mut().find(|l| l.relation == relation && l.mode == mode) {
        l.held_ms = l.held_ms.max(held_ms);
    }
    let mut taken = statements.iter_mut().flat_map(|s| s.locks.iter_mut());
    if let Some(l) = taken.find(|l| l.relation == relation && l.mode == mode) {
        l.held_ms = l.held_ms.max(held_ms);
    }
    sort(&mut observed.locks);
    observed.longest_read_block = longest_block(&observed.locks, before, LockMode::blocks_reads);
    observed.longest_write_block = longest_block(&observed.locks, before, LockMode::blocks_writes);
}

fn add_source(lock: &mut LockReport, source: LockSource) {
    if !lock.source.contains(&source) {
        lock.source.push(source);
    }
}

/// The longest hold, among locks on relations that existed before the
/// migration, of a mode that blocks what `blocks` says (reads or writes).
pub fn longest_block(
    locks: &[LockReport],
    before: &RelationSnapshot,
    blocks: fn(LockMode) -> bool,
) -> Option<BlockReport> {
    locks
        .iter()
        .filter(|l| blocks(l.mode) && before.contains(&l.relation))
        .max_by_key(|l| (l.held_ms, l.kind == RelationKind::Table))
        .map(|l| BlockReport { relation: l.relation.clone(), mode: l.mode, held_ms: l.held_ms })
}

/// The progress views' sightings as the report lists them, in the order
/// they started: times in ms after the migration `started`, tables named
/// as the snapshots after or before the migration name them when the
/// sampler could not (a table created in the migration's open transaction).
pub fn progress(
    before: &RelationSnapshot,
    after: &RelationSnapshot,
    seen: Vec<SeenCommand>,
    started: Instant,
) -> Vec<ProgressReport> {
    let ms = |t: Instant| t.saturating_duration_since(started).as_millis() as u64;
    let mut out: Vec<ProgressReport> = seen
        .into_iter()
        .filter_map(|s| {
            let known = || after.by_oid(s.oid).or_else(|| before.by_oid(s.oid)).map(|r| r.name.clone());
            let relation = Some(s.name.clone()).filter(|n| !n.is_empty()).or_else(known)?;
            Some(ProgressReport {
                command: s.command,
                relation,
                phases: s.phases,
                first_ms: ms(s.first),
                last_ms: ms(s.last),
            })
        })
        .collect();
    out.sort_by_key(|p| p.first_ms);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn statement(locks: Vec<StatementLock>) -> StatementReport {
        StatementReport {
            query: "ALTER TABLE public.store ADD FOREIGN KEY (owner) REFERENCES public.owners".into(),
            line: Some(1),
            duration_ms: 4,
            rows: 0,
            count: 1,
            wal_bytes: None,
            locks,
            lock_timeout_ms: Some(0),
            started_ms: 0,
            memory: Vec::new(),
        }
    }

    fn lock(relation: &str, held_ms: u64, exact_hold: bool) -> StatementLock {
        StatementLock {
            relation: relation.into(),
            oid: 1,
            kind: RelationKind::Table,
            mode: LockMode::ShareRowExclusiveLock,
            held_ms,
            source: LockSource::Statement,
            exact_hold,
        }
    }

    fn sampled(name: &str, held_ms: u64) -> SampledLock {
        SampledLock {
            oid: 1,
            name: name.into(),
            kind: RelationKind::Table,
            mode: LockMode::ShareRowExclusiveLock,
            held: Some(Duration::from_millis(held_ms)),
            waited: None,
        }
    }

    fn readings(sampled: Vec<SampledLock>) -> Readings<'static> {
        Readings { sampled, inherited: &[], probes: &[] }
    }

    fn probe(relation: &str, reads_ms: f64, writes_ms: f64) -> ProbeReport {
        let stats = |max_ms| crate::report::WaitStats { probes: 1, max_ms, p99_ms: max_ms };
        ProbeReport { relation: relation.into(), reads: stats(reads_ms), writes: stats(writes_ms) }
    }

    #[test]
    fn no_hold_is_shorter_than_the_probe_wait_it_caused() {
        // A starved sampler saw 40 ms of a hold the write probe waited 2.5 s on.
        let exclusive = SampledLock { mode: LockMode::AccessExclusiveLock, ..sampled("public.store", 40) };
        let share = SampledLock { mode: LockMode::AccessShareLock, ..sampled("public.store", 3000) };
        let probes = [probe("public.store", 0.0, 2500.2), probe("public.other", 900.0, 900.0)];
        let readings = Readings { sampled: vec![exclusive, share], inherited: &[], probes: &probes };
        let merged = merge_locks(&RelationSnapshot::default(), readings, &[], 5000);
        let held = |mode| merged.iter().find(|l| l.mode == mode).unwrap().held_ms;
        assert_eq!(held(LockMode::AccessExclusiveLock), 2501, "floored by the write probe's wait");
        assert_eq!(held(LockMode::AccessShareLock), 3000, "blocks nothing the probes take: untouched");
        assert_eq!(merged.len(), 2, "no lock made up for a wait on another table");
    }

    #[test]
    fn locks_an_earlier_migrations_open_transaction_holds_are_not_this_ones() {
        let inherited = [("public.store".to_string(), LockMode::ShareRowExclusiveLock)];
        let readings = Readings { sampled: vec![sampled("public.store", 30)], inherited: &inherited, probes: &[] };
        assert!(merge_locks(&RelationSnapshot::default(), readings, &[], 40).is_empty());
    }

    #[test]
    fn a_hold_released_by_a_later_migration_is_extended_past_this_one() {
        let before = RelationSnapshot::default();
        let locks = merge_locks(&before, readings(vec![sampled("public.store", 30)]), &[], 40);
        let mut observed = Observation { locks, ..Default::default() };
        extend_hold(&mut observed, &mut [], &before, "public.store", LockMode::ShareRowExclusiveLock, 9000);
        assert_eq!(observed.locks[0].held_ms, 9000);
    }

    #[test]
    fn no_hold_is_longer_than_the_migration() {
        // A 4 ms migration whose lock one sample saw: the sample rounds up by its 10 ms interval.
        let merged = merge_locks(&RelationSnapshot::default(), readings(vec![sampled("public.store", 10)]), &[], 4);
        assert_eq!(merged[0].held_ms, 4);
        assert_eq!(merged[0].source, [LockSource::Sampled]);
    }

    #[test]
    fn an_exact_hold_wins_over_the_samples() {
        let statements = [statement(vec![lock("public.store", 3, true)])];
        let merged =
            merge_locks(&RelationSnapshot::default(), readings(vec![sampled("public.store", 13)]), &statements, 40);
        assert_eq!(merged[0].held_ms, 3, "timed from the statement to its commit");
        assert_eq!(merged[0].source, [LockSource::Statement, LockSource::Sampled]);
        // Not timed exactly (a file with its own BEGIN/COMMIT): the sampler's longer span counts.
        let statements = [statement(vec![lock("public.store", 0, false)])];
        let merged =
            merge_locks(&RelationSnapshot::default(), readings(vec![sampled("public.store", 13)]), &statements, 40);
        assert_eq!(merged[0].held_ms, 13);
    }

    #[test]
    fn a_concurrent_index_no_reading_caught_gets_the_manuals_lock() {
        let mut statements = [StatementReport {
            query: "CREATE INDEX CONCURRENTLY i ON public.users (email)".into(),
            duration_ms: 2,
            ..statement(Vec::new())
        }];
        infer_unseen(&RelationSnapshot::default(), &mut statements, &[]);
        let merged = merge_locks(&RelationSnapshot::default(), readings(Vec::new()), &statements, 2);
        assert_eq!(merged.len(), 1);
        assert_eq!((merged[0].relation.as_str(), merged[0].mode), ("public.users", LockMode::ShareUpdateExclusiveLock));
        assert_eq!(merged[0].source, [LockSource::Inferred]);
        // Seen by the sampler: nothing to infer.
        let mut seen = [StatementReport { query: "VACUUM FULL public.users".into(), ..statement(Vec::new()) }];
        let sample = SampledLock { mode: LockMode::AccessExclusiveLock, ..sampled("public.users", 5) };
        infer_unseen(&RelationSnapshot::default(), &mut seen, &[sample]);
        assert!(seen[0].locks.is_empty());
    }
}
