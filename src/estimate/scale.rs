//! How much bigger production's relation is than the rehearsed one, and how
//! a kind of work grows with that: the factors an estimate multiplies the
//! measured time and WAL by, as a range.

use super::stats::{ProductionStats, RelationStats};
use super::work::Work;
use crate::catalog::RelationRow;
use crate::observe::relations::RelationSnapshot;
use crate::report::format_bytes;

/// The factors one piece of work is multiplied by: time (low, mid, high)
/// and WAL (mid), and what that rests on.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    pub time: (f64, f64, f64),
    pub wal: f64,
    /// "rewrite of public.orders ×40.2 (its size 52.1 MB here, 2.0 GB in production)".
    pub basis: String,
}

impl Factor {
    fn unscaled(basis: String) -> Factor {
        Factor { time: (1.0, 1.0, 1.0), wal: 1.0, basis }
    }
}

/// Uncertainty of the time of each kind of work at scale, as multipliers of
/// the model's mid: a scan or a DML is close to linear; a sort's memory and
/// spills, and a rewrite's index rebuilds, vary more. Checked against
/// measurements at 4× by `make bench-estimate` (bench/ESTIMATE.md).
const LINEAR_SPREAD: (f64, f64) = (0.75, 1.35);
const SORT_SPREAD: (f64, f64) = (0.7, 1.5);

/// How production's size of `work`'s relation compares with the rehearsed
/// one, and the factors that follow; `None` for catalog work.
pub fn factor(work: &Work, before: &RelationSnapshot, stats: &ProductionStats) -> Option<Factor> {
    let table = work.table()?;
    let s = match Sizes::of(table, before, stats)? {
        Ok(s) => s,
        Err(unscaled) => return Some(unscaled),
    };
    Some(match work {
        Work::Catalog => return None,
        Work::Scan(_) => linear(s.bytes, s.basis("scan", "")),
        Work::Rows(_) => linear(s.rows, s.basis("row changes", "")),
        Work::Rewrite(_) => {
            // The copy is linear in bytes; rebuilding its indexes sorts rows.
            let sort = s.n_log_n();
            Factor {
                time: (s.bytes * LINEAR_SPREAD.0, 0.85 * s.bytes + 0.15 * sort, sort.max(s.bytes) * LINEAR_SPREAD.1),
                wal: s.bytes,
                basis: s.basis("rewrite", ""),
            }
        }
        Work::IndexBuild(_) => sorted(&s, s.basis("index build", ", n·log n")),
        Work::Join { target, .. } => {
            // The time goes to hashing or sorting what it reads; the WAL, to the rows it changes.
            let written = match Sizes::of(target, before, stats)? {
                Ok(w) => (w.rows, w.basis("row changes", "")),
                Err(unscaled) => (1.0, unscaled.basis),
            };
            let read = s.basis("reading", ", n·log n");
            Factor { wal: written.0, ..sorted(&s, format!("{}; joined or aggregated with {read}", written.1)) }
        }
    })
}

/// How many times more rows `table` has in production (its bytes' ratio
/// when production never analyzed it); None when it did not exist before
/// the migration or production's statistics do not list it.
pub fn rows_ratio(table: &str, before: &RelationSnapshot, stats: &ProductionStats) -> Option<f64> {
    Sizes::of(table, before, stats)?.ok().map(|s| s.rows)
}

/// One relation's size here and in production.
struct Sizes<'a> {
    table: &'a str,
    here: &'a RelationRow,
    prod: &'a RelationStats,
    /// production / here, in main-fork bytes and in rows.
    bytes: f64,
    rows: f64,
}

impl<'a> Sizes<'a> {
    /// `None` when the relation did not exist before the migration;
    /// `Err(unscaled)` when production's statistics do not list it.
    fn of(
        table: &'a str,
        before: &'a RelationSnapshot,
        stats: &'a ProductionStats,
    ) -> Option<Result<Sizes<'a>, Factor>> {
        let here = before.get(table)?;
        let Some(prod) = stats.relation(table) else {
            return Some(Err(Factor::unscaled(format!(
                "no production statistics for {table}: estimated at its size here ({})",
                format_bytes(here.main_bytes.max(0) as u64)
            ))));
        };
        let bytes = ratio(prod.bytes, here.main_bytes);
        // reltuples is -1 on production for a table never vacuumed or analyzed: fall back to its bytes.
        let rows = if prod.rows >= 0 && here.rows > 0 { ratio(prod.rows, here.rows) } else { bytes };
        Some(Ok(Sizes { table, here, prod, bytes, rows }))
    }

    fn n_log_n(&self) -> f64 {
        n_log_n(self.rows, self.here.rows, self.prod.rows)
    }

    /// "rewrite of public.orders ×10.0 (42.2 MB here, 422 MB in production)".
    fn basis(&self, what: &str, shape: &str) -> String {
        let in_rows = matches!(what, "index build" | "row changes" | "reading");
        let size =
            |bytes: i64, rows: i64| if in_rows { format!("{rows} rows") } else { format_bytes(bytes.max(0) as u64) };
        format!(
            "{what} of {} ×{}{shape} ({} here, {} in production)",
            self.table,
            round1(if in_rows { self.rows } else { self.bytes }),
            size(self.here.main_bytes, self.here.rows),
            size(self.prod.bytes, self.prod.rows)
        )
    }
}

/// Work that sorts or hashes the relation's rows: n·log n, with the wider spread.
fn sorted(s: &Sizes, basis: String) -> Factor {
    let sort = s.n_log_n();
    Factor { time: (s.rows * SORT_SPREAD.0, sort, sort * SORT_SPREAD.1), wal: s.rows, basis }
}

fn linear(r: f64, basis: String) -> Factor {
    Factor { time: (r * LINEAR_SPREAD.0, r, r * LINEAR_SPREAD.1), wal: r, basis }
}

/// A sort of n rows grows as n·log n: the linear ratio times the ratio of the logs.
fn n_log_n(linear: f64, here_rows: i64, prod_rows: i64) -> f64 {
    let log = |n: i64| (n.max(2) as f64).ln();
    if prod_rows <= 0 || here_rows <= 0 {
        return linear;
    }
    linear * log(prod_rows) / log(here_rows)
}

/// production / here, 1 when either is unknown or empty.
fn ratio(prod: i64, here: i64) -> f64 {
    if prod <= 0 || here <= 0 {
        1.0
    } else {
        prod as f64 / here as f64
    }
}

fn round1(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_grow_a_little_faster_than_linear() {
        let r = n_log_n(10.0, 100_000, 1_000_000);
        assert!(r > 10.0 && r < 12.5, "{r}");
        assert_eq!(n_log_n(10.0, 0, 5), 10.0);
        assert_eq!(ratio(0, 10), 1.0);
        assert_eq!(ratio(40, 10), 4.0);
    }
}
