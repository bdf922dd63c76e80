//! Production-scale estimates: a rehearsal on a smaller (or sampled) copy,
//! scaled by production's own size statistics (`rehearse stats`) into a
//! range per migration and per lock, with the basis of every figure.
//!
//! Each statement's measured time and WAL are scaled by the kind of work it
//! did (`work.rs`) on which relation, by how much bigger production's
//! relation is (`scale.rs`), and divided by `speed` (production's server
//! against this one, `rehearse calibrate`). Time the statements do not
//! account for (a tool's round trips) is kept as measured. A lock held while
//! scaled work ran grows with that work; a wait behind another session does
//! not. Migrations without a statement trace (command tools) are scaled as a
//! whole by their largest rewritten or write-locked table.

pub mod calibrate;
pub mod limits;
mod scale;
mod spill;
pub mod stats;
mod timeout;
mod work;

use std::path::PathBuf;

use crate::observe::relations::RelationSnapshot;
use crate::pg::RelationKind;
use crate::report::{format_ms, BlockReport, Estimate, EstimateInfo, LockReport, MigrationReport, Range};
pub use limits::Limits;
pub use stats::{ProductionStats, RelationStats, DDL_SETTINGS, STATS_SCHEMA};
use work::Work;

/// How the ranges are made, for the report.
pub const METHOD: &str = "each statement's measured time and WAL × production's size of the relation it worked on \
     over the rehearsed size (linear for scans, rewrites and row changes; n·log n for index builds and for row \
     changes that join or aggregate other tables, in the largest table read; catalog-only work not scaled), an \
     index build, CLUSTER, VACUUM or COPY seen in PostgreSQL's progress views scaled as what it is for as long as \
     it was seen; ÷ speed; low and high widen the model by the spread of each kind of work";

/// Production's statistics and the speed ratio, ready to scale migrations.
#[derive(Debug)]
pub struct Estimator {
    pub stats: ProductionStats,
    pub path: PathBuf,
    /// How much faster production's server is than this one.
    pub speed: f64,
    /// How often the progress views are read (`observe.sample_interval` ×
    /// `observe::progress::EVERY`): a command seen from `first_ms` to
    /// `last_ms` ran about this much longer.
    pub progress_step_ms: u64,
}

/// A stretch of a migration at scale: see [`Estimator::span`].
struct Span {
    time: Range,
    /// The factor its WAL grows by.
    wal: f64,
    basis: Vec<String>,
}

/// One statement's measured figures and their estimate.
struct Scaled {
    started_ms: u64,
    duration_ms: u64,
    time: Range,
}

impl Estimator {
    /// What the report says the estimates rest on.
    pub fn info(&self, apply_to: crate::report::BudgetsApplyTo) -> EstimateInfo {
        EstimateInfo {
            production: self.path.display().to_string(),
            taken_at: self.stats.taken_at.clone(),
            server_version: self.stats.server_version.clone(),
            database: self.stats.database.clone(),
            speed: self.speed,
            budgets_apply_to: apply_to,
            method: METHOD.into(),
        }
    }

    /// Migration `m` (observed, with the relations as they were before and
    /// after it) at production's scale.
    pub fn migration(&self, m: &MigrationReport, before: &RelationSnapshot, after: &RelationSnapshot) -> Estimate {
        let mut basis = Vec::new();
        if m.statements.is_empty() {
            return self.whole(m, before);
        }
        let limits = Limits::of(&self.stats);
        let (mut scaled, mut spills) = (Vec::new(), Vec::new());
        let (mut time, mut wal) = (Range::default(), Range::default());
        for stmt in &m.statements {
            let work = work::classify(stmt, m, before);
            let ratio = work.table().and_then(|t| scale::rows_ratio(t, before, &self.stats)).unwrap_or(1.0);
            let built = match &work {
                Work::IndexBuild(table) => spill::index_build(stmt, table, ratio, &limits, (before, after)),
                _ => None,
            };
            let mut span = self.span(stmt.started_ms, stmt.duration_ms, work, m, before);
            let mut found = spill::spills(stmt, ratio, &limits);
            found.extend(built);
            let widened = spill::widen(span.time, stmt, &found);
            span.basis.extend(found.iter().map(|s| spill::basis(s, &limits, widened != span.time)));
            span.time = widened;
            spills.extend(found);
            for line in span.basis {
                push_once(&mut basis, line);
            }
            time = time + span.time;
            wal = wal + Range::exactly(scaled_by(stmt.wal_bytes.unwrap_or(0), span.wal));
            scaled.push(Scaled { started_ms: stmt.started_ms, duration_ms: stmt.duration_ms, time: span.time });
        }
        // What the statements do not account for (round trips, a tool's own work) stays as measured.
        let traced: u64 = m.statements.iter().map(|s| s.duration_ms).sum();
        let traced_wal: u64 = m.statements.iter().map(|s| s.wal_bytes.unwrap_or(0)).sum();
        let duration = time + Range::exactly(m.duration_ms.saturating_sub(traced));
        let wal = widen(wal + Range::exactly(m.wal.bytes.saturating_sub(traced_wal)), duration);
        if self.speed != 1.0 {
            basis.push(format!("statement times ÷ {} (estimate.speed)", self.speed));
        }
        if m.statements.iter().any(|s| !s.memory.is_empty()) || !spills.is_empty() {
            basis.push(limits.basis());
        }
        let timed: Vec<_> = m.statements.iter().zip(&scaled).map(|(s, x)| (s, x.time)).collect();
        let over_statement_timeout = timeout::over(&timed, &limits);
        Estimate {
            spills,
            over_statement_timeout,
            longest_read_block_ms: self.hold(m.longest_read_block.as_ref(), m, &scaled, duration),
            longest_write_block_ms: self.hold(m.longest_write_block.as_ref(), m, &scaled, duration),
            duration_ms: duration,
            wal_bytes: wal,
            basis,
        }
    }

    /// A migration without a statement trace (a command tool): scaled as a
    /// whole by the largest table it rewrote, or wrote under a lock that
    /// blocks writes, or not at all.
    fn whole(&self, m: &MigrationReport, before: &RelationSnapshot) -> Estimate {
        let biggest = |names: Vec<&str>| {
            names.into_iter().max_by_key(|t| before.get(t).map_or(0, |r| r.main_bytes)).map(String::from)
        };
        let rewritten =
            biggest(m.rewrites.iter().filter(|r| r.kind == RelationKind::Table).map(|r| r.relation.as_str()).collect());
        let locked = biggest(
            m.locks
                .iter()
                .filter(|l| l.kind == RelationKind::Table && !l.created && l.mode.blocks_writes())
                .map(|l| l.relation.as_str())
                .collect(),
        );
        let work = match (rewritten, locked) {
            (Some(t), _) => Work::Rewrite(t),
            (None, Some(t)) => Work::Rows(t),
            (None, None) => Work::Catalog,
        };
        let span = self.span(0, m.duration_ms, work, m, before);
        let mut basis =
            vec!["no statement trace (a command tool): the whole migration scaled as one piece of work".to_string()];
        basis.extend(span.basis);
        let (time, wal) = (span.time, scaled_by(m.wal.bytes, span.wal));
        let ratio = |held: u64| self.stretch(held, time, m.duration_ms);
        Estimate {
            duration_ms: time,
            longest_read_block_ms: m.longest_read_block.as_ref().map_or(Range::default(), |b| ratio(b.held_ms)),
            longest_write_block_ms: m.longest_write_block.as_ref().map_or(Range::default(), |b| ratio(b.held_ms)),
            wal_bytes: widen(Range::exactly(wal), time),
            basis,
            ..Default::default()
        }
    }

    /// `duration` ms from `start` (a statement, or a whole migration) that
    /// did `work`, at scale. Commands the progress views showed inside it
    /// that `work` does not account for (a DO block's index build, a tool's
    /// VACUUM FULL) are scaled as what they are, for as long as they were
    /// seen; the rest of the time as `work`. The WAL grows by the factors'
    /// mean, weighted by time.
    fn span(&self, start: u64, duration: u64, work: Work, m: &MigrationReport, before: &RelationSnapshot) -> Span {
        let mut basis = Vec::new();
        let mut rest = duration;
        let (mut time, mut wal_weighted) = (Range::default(), 0.0);
        let inside = m.progress.iter().filter(|p| p.first_ms >= start && p.first_ms <= start + duration);
        for p in inside {
            let Some(seen) = work::from_progress(p, before).filter(|w| !work.covers(w)) else { continue };
            let ms = (p.last_ms - p.first_ms + self.progress_step_ms).min(rest);
            rest -= ms;
            let (t, w, line) = self.piece(ms, &seen, before);
            time = time + t;
            wal_weighted += w * ms as f64;
            basis.push(format!("{line}; seen in the progress views as {} for about {}", p.command, format_ms(ms)));
        }
        let (t, w, line) = self.piece(rest, &work, before);
        if rest > 0 || basis.is_empty() {
            basis.insert(0, line);
        }
        wal_weighted += w * rest as f64;
        let wal = if duration == 0 { w } else { wal_weighted / duration as f64 };
        Span { time: time + t, wal, basis }
    }

    /// `ms` of `work` at scale: time, WAL factor and what it rests on.
    fn piece(&self, ms: u64, work: &Work, before: &RelationSnapshot) -> (Range, f64, String) {
        match scale::factor(work, before, &self.stats) {
            Some(f) => (self.times(ms, f.time), f.wal, f.basis),
            None => (self.times(ms, (1.0, 1.0, 1.0)), 1.0, "catalog-only statements: not scaled".into()),
        }
    }

    /// A measured time scaled by (low, mid, high) factors and the speed.
    fn times(&self, ms: u64, (low, mid, high): (f64, f64, f64)) -> Range {
        let s = self.speed;
        Range { low: scaled_by(ms, low / s), mid: scaled_by(ms, mid / s), high: scaled_by(ms, high / s) }
    }

    /// A lock's hold at scale: the statements that ran while it was held
    /// take their estimated time instead of their measured one; the rest of
    /// the hold (commit, waits, round trips) stays. Without a statement
    /// trace for it, the hold grows as the migration does.
    fn hold(&self, block: Option<&BlockReport>, m: &MigrationReport, scaled: &[Scaled], duration: Range) -> Range {
        let Some(b) = block else { return Range::default() };
        let lock: Option<&LockReport> = m.locks.iter().find(|l| l.relation == b.relation && l.mode == b.mode);
        let taken_by = lock.and_then(|l| l.statement.as_deref());
        let first = taken_by.and_then(|q| m.statements.iter().position(|s| s.query == q));
        let Some(first) = first else { return self.stretch(b.held_ms, duration, m.duration_ms) };
        let start = m.statements[first].started_ms;
        let end = start + b.held_ms;
        let during: Vec<&Scaled> =
            scaled.iter().filter(|s| s.started_ms >= start && s.started_ms < end.max(start + 1)).collect();
        let measured: u64 = during.iter().map(|s| s.duration_ms).sum();
        let rest = b.held_ms.saturating_sub(measured);
        during.iter().fold(Range::exactly(rest), |acc, s| acc + s.time)
    }

    /// `held` grown as the migration's time grew from `measured` to `estimated`.
    fn stretch(&self, held: u64, estimated: Range, measured: u64) -> Range {
        if measured == 0 {
            return Range::exactly(held);
        }
        let f = |v: u64| scaled_by(held, v as f64 / measured as f64);
        Range { low: f(estimated.low), mid: f(estimated.mid), high: f(estimated.high) }
    }

    /// The release: the sum of the migrations' estimates.
    pub fn totals(&self, migrations: &[MigrationReport]) -> Option<Estimate> {
        let estimated: Vec<&Estimate> = migrations.iter().filter_map(|m| m.estimate.as_ref()).collect();
        if estimated.is_empty() {
            return None;
        }
        let sum = |f: fn(&Estimate) -> Range| estimated.iter().fold(Range::default(), |acc, e| acc + f(e));
        let longest =
            |f: fn(&Estimate) -> Range| estimated.iter().map(|e| f(e)).max_by_key(|r| r.mid).unwrap_or_default();
        Some(Estimate {
            duration_ms: sum(|e| e.duration_ms),
            longest_read_block_ms: longest(|e| e.longest_read_block_ms),
            longest_write_block_ms: longest(|e| e.longest_write_block_ms),
            wal_bytes: sum(|e| e.wal_bytes),
            basis: vec![format!(
                "the sum of {} migration estimate(s); the longest blocks are the longest of any migration",
                estimated.len()
            )],
            ..Default::default()
        })
    }
}

/// The WAL range: its mid scaled with the work, low and high as wide as the time's.
fn widen(wal: Range, time: Range) -> Range {
    if time.mid == 0 {
        return wal;
    }
    let f = |t: u64| scaled_by(wal.mid, t as f64 / time.mid as f64);
    Range { low: f(time.low).min(wal.mid), mid: wal.mid, high: f(time.high).max(wal.mid) }
}

fn scaled_by(v: u64, factor: f64) -> u64 {
    (v as f64 * factor).round() as u64
}

fn push_once(basis: &mut Vec<String>, line: String) {
    if !basis.contains(&line) {
        basis.push(line);
    }
}
